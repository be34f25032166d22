/**
 * Resilience policy per provider: timeouts, retries, circuit breaker and
 * what to do when a client disconnects. Defaults live here; `models.json`
 * may override any of them in a top-level `defaults` object and per
 * provider (same fields).
 *
 * The defaults suit agent traffic: Claude Code streams can run ten minutes
 * and think silently for minutes, and Claude Code retries failed requests
 * itself, so the gateway errs towards waiting rather than failing.
 */
import { z } from "zod";

const ms = (max = 24 * 3600_000) => z.number().int().min(0).max(max);

/** The policy fields as written in `models.json` (all optional). */
export const PolicySchema = z.strictObject({
  timeouts: z.strictObject({
    /** TCP connect (checked when a provider has had no recent success). */
    connect_ms: ms().optional(),
    /** Response headers of a non-streaming request. */
    ttfb_ms: ms().optional(),
    /** Response headers of a streaming request. */
    stream_ttfb_ms: ms().optional(),
    /** Longest silence between two chunks of a response body. */
    idle_ms: ms().optional(),
    /** Whole request, first byte sent to last byte received. */
    total_ms: ms().optional(),
  }).optional(),
  retries: z.strictObject({
    /** Retries on the same provider before falling back to the next one. */
    max: z.number().int().min(0).max(10).optional(),
    base_delay_ms: ms(600_000).optional(),
    max_delay_ms: ms(600_000).optional(),
    /** No new attempt (retry or fallback) starts later than this after the request arrived. */
    deadline_ms: ms().optional(),
  }).optional(),
  breaker: z.strictObject({
    /** Consecutive failures that open the breaker (0 disables it). */
    failures: z.number().int().min(0).max(1000).optional(),
    /** Failure rate (0..1) over `window_ms` that opens it, given `min_requests`. */
    failure_rate: z.number().min(0).max(1).optional(),
    window_ms: ms().optional(),
    min_requests: z.number().int().min(1).max(100).optional(),
    /** How long an open breaker skips the provider before one probe is let through. */
    cooldown_ms: ms().optional(),
  }).optional(),
  /** `cancel`: stop the upstream when the client goes away; `drain`: read on to meter exact usage. */
  on_disconnect: z.enum(["cancel", "drain"]).optional(),
  /** Longest a drained stream is read after its client left. */
  drain_timeout_ms: ms().optional(),
  /**
   * With `cancel`: when a client leaves a stream whose content is complete,
   * how long to read on for the usage event that follows (0: not at all).
   */
  usage_wait_ms: ms(600_000).optional(),
});

/** Policy fields as written. */
export type PolicyInput = z.infer<typeof PolicySchema>;

/** A complete policy. */
export interface Policy {
  connectMs: number;
  ttfbMs: number;
  streamTtfbMs: number;
  idleMs: number;
  totalMs: number;
  retries: number;
  baseDelayMs: number;
  maxDelayMs: number;
  deadlineMs: number;
  breakerFailures: number;
  breakerRate: number;
  breakerWindowMs: number;
  breakerMinRequests: number;
  cooldownMs: number;
  onDisconnect: "cancel" | "drain";
  drainTimeoutMs: number;
  usageWaitMs: number;
}

/** Built-in defaults (docs/models-json.md, "Resilience policy", lists them). */
export const DEFAULT_POLICY: Policy = {
  connectMs: 10_000,
  ttfbMs: 600_000,
  streamTtfbMs: 180_000,
  idleMs: 300_000,
  totalMs: 3_600_000,
  retries: 1,
  baseDelayMs: 500,
  maxDelayMs: 10_000,
  deadlineMs: 60_000,
  breakerFailures: 5,
  breakerRate: 0.5,
  breakerWindowMs: 60_000,
  breakerMinRequests: 20,
  cooldownMs: 30_000,
  onDisconnect: "cancel",
  drainTimeoutMs: 120_000,
  usageWaitMs: 5_000,
};

/** `base` with the fields `p` sets. */
export function mergePolicy(base: Policy, p: PolicyInput | undefined): Policy {
  if (!p) return base;
  const t = p.timeouts ?? {}, r = p.retries ?? {}, b = p.breaker ?? {};
  return {
    connectMs: t.connect_ms ?? base.connectMs,
    ttfbMs: t.ttfb_ms ?? base.ttfbMs,
    streamTtfbMs: t.stream_ttfb_ms ?? base.streamTtfbMs,
    idleMs: t.idle_ms ?? base.idleMs,
    totalMs: t.total_ms ?? base.totalMs,
    retries: r.max ?? base.retries,
    baseDelayMs: r.base_delay_ms ?? base.baseDelayMs,
    maxDelayMs: r.max_delay_ms ?? base.maxDelayMs,
    deadlineMs: r.deadline_ms ?? base.deadlineMs,
    breakerFailures: b.failures ?? base.breakerFailures,
    breakerRate: b.failure_rate ?? base.breakerRate,
    breakerWindowMs: b.window_ms ?? base.breakerWindowMs,
    breakerMinRequests: b.min_requests ?? base.breakerMinRequests,
    cooldownMs: b.cooldown_ms ?? base.cooldownMs,
    onDisconnect: p.on_disconnect ?? base.onDisconnect,
    drainTimeoutMs: p.drain_timeout_ms ?? base.drainTimeoutMs,
    usageWaitMs: p.usage_wait_ms ?? base.usageWaitMs,
  };
}

/** Upstream statuses worth another attempt (here or on the next provider). */
export const RETRYABLE_STATUS = new Set([408, 409, 429, 500, 502, 503, 504, 529]);

/**
 * How long to wait before retry number `attempt` (0-based): the upstream's
 * `retry-after-ms` / `Retry-After` when given, else exponential backoff with
 * full jitter. `random` is injectable for tests.
 */
export function retryDelay(
  policy: Policy,
  attempt: number,
  headers: Headers | undefined,
  now: number,
  random = Math.random,
): number {
  const hinted = retryAfterMs(headers, now);
  if (hinted !== undefined) return hinted;
  const cap = Math.min(policy.maxDelayMs, policy.baseDelayMs * 2 ** attempt);
  return Math.round(cap / 2 + random() * (cap / 2));
}

const HTTP_DATE =
  /^(?:(?:Mon|Tue|Wed|Thu|Fri|Sat|Sun), \d{2} [A-Z][a-z]{2} \d{4} \d{2}:\d{2}:\d{2} GMT|[A-Z][a-z]+, \d{2}-[A-Z][a-z]{2}-\d{2} \d{2}:\d{2}:\d{2} GMT|[A-Z][a-z]{2} [A-Z][a-z]{2} [ \d]\d \d{2}:\d{2}:\d{2} \d{4})$/;

/** The wait an upstream asked for, from `retry-after-ms` or `Retry-After` (seconds or a date). */
export function retryAfterMs(headers: Headers | undefined, now: number): number | undefined {
  if (!headers) return undefined;
  const precise = headers.get("retry-after-ms");
  if (precise !== null && /^\d+(\.\d+)?$/.test(precise.trim())) return Math.ceil(Number(precise));
  const ra = headers.get("retry-after")?.trim();
  if (!ra) return undefined;
  if (/^\d+(\.\d+)?$/.test(ra)) return Math.ceil(Number(ra) * 1000);
  // Only an HTTP date ("Sun, 06 Nov 1994 08:49:37 GMT" and its two obsolete forms):
  // Date.parse reads text such as "soon 5" or "-1" as dates long past.
  if (!HTTP_DATE.test(ra)) return undefined;
  const at = Date.parse(ra);
  return Number.isNaN(at) ? undefined : Math.max(0, at - now);
}
