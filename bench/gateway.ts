/**
 * The gateway under test, as in production: `main.ts` in its own process
 * (`deno run --unstable-kv --unstable-net --unstable-no-legacy-abort -A main.ts`,
 * with `WORKERS` worker processes when asked) with a
 * temporary KV file holding one client key (created with `KeyStore` before
 * start, with or without limits), a temporary models.json whose two
 * providers point at the fake upstream and price every model, `LOG_LEVEL=warn`,
 * and the admin API on for the usage checks.
 */
import { type KeyLimits, KeyStore } from "../lib/store/keys.ts";
import { freePort, type Proc, spawn } from "./procs.ts";

/** The gateway entry point: this checkout's main.ts, or `BENCH_GATEWAY_MAIN` (another checkout). */
const MAIN = Deno.env.get("BENCH_GATEWAY_MAIN") || new URL("../main.ts", import.meta.url).pathname;

/** Extra settings for the gateways from `BENCH_GATEWAY_ENV` (`NAME=value,NAME=value`). */
function extraEnv(): Record<string, string> {
  const out: Record<string, string> = {};
  for (const pair of (Deno.env.get("BENCH_GATEWAY_ENV") ?? "").split(",")) {
    const at = pair.indexOf("=");
    if (at > 0) out[pair.slice(0, at).trim()] = pair.slice(at + 1).trim();
  }
  return out;
}

/** Usage totals as `GET /admin/usage` reports them. */
export interface UsageTotals {
  requests: number;
  inputUncached: number;
  cacheRead: number;
  cacheWrite: number;
  output: number;
  failed: number;
  incomplete: number;
}

/** A prepared gateway home: its KV file, models.json and client key. */
export interface GatewayHome {
  dir: string;
  secret: string;
  adminKey: string;
}

/** Secrets the gateway sends to the fake upstream. */
export interface ProviderSecrets {
  anthropic: string;
  openai: string;
}

/**
 * The limits of the `gw-limits` target's key: every limit the gateway has,
 * each far above what a benchmark can use (no request is ever refused), so
 * the run measures what enforcing them costs: a reservation at admission and
 * a settlement at the end of every request, committed to KV.
 */
export const BENCH_KEY_LIMITS: Required<KeyLimits> = {
  rpm: 1_000_000_000,
  tpm: 1_000_000_000_000,
  maxConcurrent: 1_000_000,
  dailyTokens: 1_000_000_000_000_000,
  monthlyTokens: 1_000_000_000_000_000,
  dailyMicroUsd: 1_000_000_000_000_000,
  monthlyMicroUsd: 1_000_000_000_000_000,
};

/** Prices of every benchmark model (USD per million tokens), so money budgets apply. */
const PRICING = { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 };

/**
 * `BENCH_COMPAT=1`: measure builds older than priced routing entries and
 * this key store (with `BENCH_GATEWAY_MAIN`): Luna's plain routing lists,
 * and the key created by the measured build's own `keys create`.
 */
const COMPAT = Deno.env.get("BENCH_COMPAT") === "1";

/** Creates the client key with the measured build's `keys create` and returns its secret. */
async function compatKey(dir: string): Promise<string> {
  const out = await new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-kv", "-A", MAIN, "keys", "create", "bench", "--json"],
    env: { KV_PATH: `${dir}/gateway.kv`, MODELS_CONFIG: `${dir}/models.json` },
    stderr: "inherit",
  }).output();
  if (!out.success) throw new Error(`BENCH_COMPAT: keys create failed (${MAIN})`);
  const created = JSON.parse(new TextDecoder().decode(out.stdout));
  return created.api_key;
}

/**
 * Writes models.json and creates the client key in a fresh KV file under
 * `dir`, with `limits` when given.
 */
export async function prepareGateway(
  dir: string,
  upstream: string,
  limits?: KeyLimits,
): Promise<GatewayHome> {
  await Deno.mkdir(dir, { recursive: true });
  const models = {
    providers: {
      "bench-anthropic": {
        name: "Bench Anthropic",
        format: "anthropic",
        base_url: `${upstream}/anthropic/v1`,
        api_key_env: "BENCH_PROVIDER_KEY_A",
        auth_header: "x-api-key",
        chat_endpoint: "/messages",
        model_prefixes: ["claude"],
      },
      "bench-openai": {
        name: "Bench OpenAI",
        format: "openai",
        base_url: `${upstream}/openai/v1`,
        api_key_env: "BENCH_PROVIDER_KEY_O",
        auth_header: "authorization_bearer",
        chat_endpoint: "/chat/completions",
        model_prefixes: ["gpt"],
      },
    },
    routing: COMPAT ? { claude: ["bench-anthropic"], gpt: ["bench-openai"] } : {
      claude: { providers: ["bench-anthropic"], pricing: PRICING },
      gpt: { providers: ["bench-openai"], pricing: PRICING },
    },
    known_models: [
      { id: "claude-bench-json", provider: "bench-anthropic", owned_by: "bench" },
      { id: "gpt-bench-json", provider: "bench-openai", owned_by: "bench" },
    ],
  };
  await Deno.writeTextFile(`${dir}/models.json`, JSON.stringify(models, null, 2));
  if (COMPAT) {
    if (limits) {
      throw new Error("BENCH_COMPAT: gw-limits needs this build's key store; leave it out");
    }
    return { dir, secret: await compatKey(dir), adminKey: `bench-admin-${crypto.randomUUID()}` };
  }
  const kv = await Deno.openKv(`${dir}/gateway.kv`);
  try {
    const { secret } = await new KeyStore(kv).create({ name: "bench", limits });
    const adminKey = `bench-admin-${crypto.randomUUID()}`;
    return { dir, secret, adminKey };
  } finally {
    kv.close();
  }
}

/** A running gateway. */
export interface GatewayProc extends Proc {
  url: string;
  home: GatewayHome;
  /** Usage totals via the admin API (which flushes pending usage first). */
  usage(): Promise<UsageTotals>;
}

/** Starts `main.ts` on core `cpu` and waits until `/health` answers. */
export async function startGateway(o: {
  home: GatewayHome;
  secrets: ProviderSecrets;
  cpu?: string;
  log: string;
  /** Extra `deno run` flags, e.g. `--cpu-prof`. */
  denoFlags?: string[];
  /** `WORKERS` (default 1: one process, as before). */
  workers?: number;
  /** Another entry point than main.ts (bench/alloc_main.ts) and its settings. */
  main?: string;
  env?: Record<string, string>;
}): Promise<GatewayProc> {
  const workers = o.workers ?? 1;
  const port = freePort();
  const proc = spawn({
    name: "gateway",
    cmd: [
      Deno.execPath(),
      "run",
      "--unstable-kv",
      "--unstable-net",
      "--unstable-no-legacy-abort",
      ...(o.denoFlags ?? []),
      "-A",
      o.main ?? MAIN,
    ],
    env: {
      PORT: String(port),
      HOST: "127.0.0.1",
      KV_PATH: `${o.home.dir}/gateway.kv`,
      MODELS_CONFIG: `${o.home.dir}/models.json`,
      ADMIN_KEY: o.home.adminKey,
      LOG_LEVEL: "warn",
      WORKERS: String(workers),
      BENCH_PROVIDER_KEY_A: o.secrets.anthropic,
      BENCH_PROVIDER_KEY_O: o.secrets.openai,
      ...extraEnv(),
      ...o.env,
    },
    cpu: o.cpu,
    log: o.log,
  });
  const url = `http://127.0.0.1:${port}`;
  const until = performance.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/health`, { signal: AbortSignal.timeout(2000) });
      if (!res.ok) await res.body?.cancel();
      // With workers, ready once every one of them serves (older builds say nothing: one).
      else if (((await res.json()).workers ?? 1) === workers) break;
    } catch {
      // not listening yet
    }
    if (performance.now() > until) {
      await proc.stop(1000);
      throw new Error(`the gateway did not become healthy within 30 s (see ${o.log})`);
    }
    await new Promise((r) => setTimeout(r, 50));
  }
  const usage = async (): Promise<UsageTotals> => {
    const res = await fetch(`${url}/admin/usage`, {
      headers: { "x-api-key": o.home.adminKey },
      signal: AbortSignal.timeout(10_000),
    });
    if (!res.ok) throw new Error(`GET /admin/usage: HTTP ${res.status}`);
    const j = await res.json();
    return {
      requests: j.total_requests,
      inputUncached: j.input_uncached,
      cacheRead: j.cache_read,
      cacheWrite: j.cache_write,
      output: j.total_output_tokens,
      failed: j.failed,
      incomplete: j.incomplete,
    };
  };
  return { ...proc, url, home: o.home, usage };
}
