/**
 * Process configuration from environment variables, validated with zod.
 *
 * Every variable is documented in docs/configuration.md. Nothing here has a
 * secret default: an unset `ADMIN_KEY` disables the admin API.
 */
import { z } from "zod";

const MiB = 1024 * 1024;

/** Most worker processes `WORKERS` may ask for (it bounds the `worker` metric label too). */
export const MAX_WORKERS = 256;

const int = (min: number, max = Number.MAX_SAFE_INTEGER) =>
  z.string().trim().regex(/^\d+$/, "must be a whole number").transform(Number).pipe(
    z.number().int().min(min).max(max),
  );

const bool = z.string().trim().toLowerCase().pipe(z.enum(["1", "0", "true", "false", "yes", "no"]))
  .transform((v) => v === "1" || v === "true" || v === "yes");

const timeZone = z.string().trim().refine((tz) => {
  try {
    new Intl.DateTimeFormat("en-US", { timeZone: tz });
    return true;
  } catch {
    return false;
  }
}, "must be an IANA time zone such as UTC or Europe/Berlin");

const EnvSchema = z.object({
  PORT: int(0, 65535).optional(),
  PROXY_PORT: int(0, 65535).optional(),
  HOST: z.string().trim().min(1).default("0.0.0.0"),
  MODELS_CONFIG: z.string().trim().min(1).default("./models.json"),
  KV_PATH: z.string().trim().min(1).default("./data/gateway.kv"),
  ADMIN_KEY: z.string().optional().transform((v) => (v && v.trim() !== "" ? v.trim() : undefined))
    .refine((v) => v === undefined || v.length >= 16, "must be at least 16 characters"),
  USAGE_TZ: timeZone.default("UTC"),
  KEYS_FILE: z.string().trim().optional().transform((v) => v || undefined),
  MAX_BODY_BYTES: int(1024).default(32 * MiB),
  MAX_RESPONSE_BYTES: int(1024).default(64 * MiB),
  BODY_TIMEOUT_MS: int(100, 3_600_000).default(60_000),
  USAGE_FLUSH_MS: int(0, 10_000).default(100),
  KEYS_REFRESH_MS: int(50, 3_600_000).default(250),
  SHUTDOWN_GRACE_MS: int(0, 3_600_000).default(30_000),
  LOG_FORMAT: z.enum(["json", "pretty"]).default("json"),
  LOG_LEVEL: z.enum(["debug", "info", "warn", "error"]).default("info"),
  METRICS_PUBLIC: bool.default(false),
  METRICS_PER_KEY: bool.default(false),
  LIMIT_COUNT_TOKENS: bool.default(false),
  LIMIT_DEFAULT_MAX_TOKENS: int(1, 10_000_000).default(4096),
  LIMIT_HOLD_MS: int(1000, 3_600_000).default(60_000),
  REQUEST_LOG_DAYS: int(0, 3650).default(7),
  WORKERS: z.union([
    z.string().trim().toLowerCase().pipe(z.literal("auto")),
    int(1, MAX_WORKERS),
  ], { error: `must be auto or a whole number 1 to ${MAX_WORKERS}` }).default(1),
  KV_TIMEOUT_MS: int(100, 600_000).default(5000),
  USAGE_BACKLOG_MAX_REQUESTS: int(1).default(100_000),
  USAGE_BACKLOG_MAX_BYTES: int(64 * 1024).default(64 * MiB),
  SPILL_PATH: z.string().trim().optional().transform((v) => v || undefined),
  SPILL_MAX_BYTES: int(0).default(1024 * MiB),
  RATE_LIMITS_ON_KV_FAILURE: z.enum(["local", "open", "closed"]).default("local"),
  QUOTAS_ON_KV_FAILURE: z.enum(["closed", "open"]).default("closed"),
});

/** What a limit does while Deno KV cannot be reached ([limits](../../docs/limits.md)). */
export interface KvFailurePolicy {
  /** `rpm`, `tpm`, `max_concurrent`: counted per process, not counted, or refused. */
  rate: "local" | "open" | "closed";
  /** Token quotas and money budgets: refused, or not counted. */
  quota: "closed" | "open";
}

/** Validated gateway configuration. */
export interface Config {
  port: number;
  host: string;
  modelsPath: string;
  kvPath: string;
  adminKey?: string;
  usageTz: string;
  keysFile?: string;
  maxBodyBytes: number;
  /** Limit on a non-streamed upstream response body, counted decoded. */
  maxResponseBytes: number;
  /** Time a client has to send its whole request body once the gateway reads it (408 after). */
  bodyTimeoutMs: number;
  /** Window in which finished requests' usage is coalesced into one KV commit. */
  usageFlushMs: number;
  /** How often the key cache checks KV for changes made by another process (workers, the CLI). */
  keysRefreshMs: number;
  shutdownGraceMs: number;
  logFormat: "json" | "pretty";
  logLevel: "debug" | "info" | "warn" | "error";
  metricsPublic: boolean;
  metricsPerKey: boolean;
  /** Count `count_tokens` calls against `rpm` and `max_concurrent` (they are free: off by default). */
  limitCountTokens: boolean;
  /** Output tokens a request without `max_tokens` reserves against token quotas and budgets. */
  limitDefaultMaxTokens: number;
  /** How long a stopped process's reservations and concurrency slots stay held. */
  limitHoldMs: number;
  /** Days each request-log entry is kept (0: no request log). */
  requestLogDays: number;
  /** Worker processes serving the port (`auto`: one per core); see lib/ops/workers.ts. */
  workers: number | "auto";
  /** Longest a KV read or commit is waited for before it counts as failed. */
  kvTimeoutMs: number;
  /** Most finished requests whose usage is held in memory while KV fails. */
  usageBacklogMaxRequests: number;
  /** Most bytes of usage held in memory while KV fails. */
  usageBacklogMaxBytes: number;
  /** Where usage beyond the in-memory bound goes (none: it is dropped, loudly). */
  spillPath?: string;
  /** Largest the spill file may grow. */
  spillMaxBytes: number;
  /** What limits do while KV cannot be reached. */
  limitsOnKvFailure: KvFailurePolicy;
}

/**
 * The spill file a KV_PATH implies: beside a KV file; `./data/` for a
 * remote KV; none for `:memory:` (nothing of it outlives the process).
 */
function defaultSpillPath(kvPath: string): string | undefined {
  if (kvPath === ":memory:") return undefined;
  if (/^https?:\/\//.test(kvPath)) return "./data/usage-spill.jsonl";
  return `${kvPath}.spill.jsonl`;
}

/** Names of every environment variable the gateway reads (besides provider secrets). */
export const CONFIG_ENV_VARS: readonly string[] = Object.keys(EnvSchema.shape);

/** Thrown when an environment variable holds a value the gateway cannot use. */
export class ConfigError extends Error {}

/** Reads and validates configuration from an environment map (defaults to `Deno.env`). */
export function loadConfig(env: Record<string, string | undefined> = Deno.env.toObject()): Config {
  const picked: Record<string, string> = {};
  for (const name of CONFIG_ENV_VARS) {
    const v = env[name];
    if (v !== undefined && v !== "") picked[name] = v;
  }
  const parsed = EnvSchema.safeParse(picked);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new ConfigError(`environment variable ${issue.path.join(".")}: ${issue.message}`);
  }
  const e = parsed.data;
  return {
    port: e.PORT ?? e.PROXY_PORT ?? 8180,
    host: e.HOST,
    modelsPath: e.MODELS_CONFIG,
    kvPath: e.KV_PATH,
    adminKey: e.ADMIN_KEY,
    usageTz: e.USAGE_TZ,
    keysFile: e.KEYS_FILE,
    maxBodyBytes: e.MAX_BODY_BYTES,
    maxResponseBytes: e.MAX_RESPONSE_BYTES,
    bodyTimeoutMs: e.BODY_TIMEOUT_MS,
    usageFlushMs: e.USAGE_FLUSH_MS,
    keysRefreshMs: e.KEYS_REFRESH_MS,
    shutdownGraceMs: e.SHUTDOWN_GRACE_MS,
    logFormat: e.LOG_FORMAT,
    logLevel: e.LOG_LEVEL,
    metricsPublic: e.METRICS_PUBLIC,
    metricsPerKey: e.METRICS_PER_KEY,
    limitCountTokens: e.LIMIT_COUNT_TOKENS,
    limitDefaultMaxTokens: e.LIMIT_DEFAULT_MAX_TOKENS,
    limitHoldMs: e.LIMIT_HOLD_MS,
    requestLogDays: e.REQUEST_LOG_DAYS,
    workers: e.WORKERS,
    kvTimeoutMs: e.KV_TIMEOUT_MS,
    usageBacklogMaxRequests: e.USAGE_BACKLOG_MAX_REQUESTS,
    usageBacklogMaxBytes: e.USAGE_BACKLOG_MAX_BYTES,
    spillPath: e.SPILL_PATH ?? defaultSpillPath(e.KV_PATH),
    spillMaxBytes: e.SPILL_MAX_BYTES,
    limitsOnKvFailure: { rate: e.RATE_LIMITS_ON_KV_FAILURE, quota: e.QUOTAS_ON_KV_FAILURE },
  };
}
