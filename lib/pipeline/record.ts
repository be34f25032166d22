/**
 * Stage "record": the outcome of one proxied request, and where it goes once
 * known: the usage store (tokens and cost), the request log, metrics and the
 * request's log line.
 */
import type { Context } from "../context.ts";
import type { Registry } from "../config/registry.ts";
import type { KeyRecord } from "../store/keys.ts";
import { type Tokens, zeroTokens } from "../metering/tokens.ts";
import type { Metered } from "../metering/tokens.ts";
import { costMicroUsd, usd } from "../metering/cost.ts";
import { countersOf, type UsageLine } from "../store/usage/counters.ts";
import { type RequestLogEntry, requestLogRecord } from "../store/request_log.ts";

/** Everything known about a finished request (no secrets, no prompt text). */
export interface RequestOutcome {
  /** Gateway request id (ULID). */
  id: string;
  key: KeyRecord;
  /** The model id the client asked for. */
  model: string;
  /** The gateway path called, e.g. `/v1/messages`. */
  endpoint: string;
  stream: boolean;
  /** The provider that served (or last failed) the request. */
  provider?: string;
  /** Providers tried, in order. */
  tried: string[];
  /** HTTP status the client received. */
  status: number;
  /** True once a request was sent upstream (only then is usage recorded). */
  reachedUpstream: boolean;
  metered?: Metered;
  failed: boolean;
  incomplete: boolean;
  /** Why it failed, in words (no secrets). */
  error?: string;
  /** Same-provider retries plus fallbacks. */
  retries: number;
  /** Epoch ms when the request arrived. */
  startedAt: number;
  durationMs: number;
  /** Ms until the first response byte went to the client. */
  ttfbMs?: number;
  /** Ms the upstream took to answer with headers (last attempt). */
  upstreamMs?: number;
  /** Upstream request id, when it sent one. */
  upstreamRequestId?: string;
  /** The registry the request started with: prices and metric labels. */
  registry: Registry;
}

const TOKEN_TYPES = [
  ["input_uncached", "inputUncached"],
  ["cache_read", "cacheRead"],
  ["cache_write", "cacheWrite"],
  ["output", "output"],
] as const;

/** One model's share of a request: the request's own model, or an advisor model it used. */
interface Share {
  model: string;
  tokens: Tokens;
  /** Micro-dollars; undefined when the model has no price through this provider. */
  cost?: number;
}

/** The request's shares, each priced at the price of the provider that served it. */
function shares(o: RequestOutcome, tokens: Tokens): Share[] {
  const all = [{ model: o.model, tokens }, ...(o.metered?.extra ?? [])];
  return all.map(({ model, tokens }) => {
    const price = o.registry.pricing(model, o.provider);
    return { model, tokens, cost: price && costMicroUsd(tokens, price) };
  });
}

/** The request's cost in micro-dollars: the sum of its priced shares, undefined when none is. */
function totalCost(list: Share[]): number | undefined {
  let sum: number | undefined;
  for (const s of list) if (s.cost !== undefined) sum = (sum ?? 0) + s.cost;
  return sum;
}

/**
 * Records the outcome: usage with its cost (when it reached an upstream),
 * the request-log entry, metrics and one log line. Returns the cost in
 * micro-dollars (undefined when nothing in the request had a price).
 */
export function record(ctx: Context, o: RequestOutcome): number | undefined {
  const tokens: Tokens = o.metered?.tokens ?? zeroTokens();
  const priced = shares(o, tokens);
  const cost = totalCost(priced);
  const m = ctx.metrics;
  const k: Record<string, string> = m.perKey ? { key_id: o.key.id } : {};
  const label = o.registry.modelLabel(o.model);
  m.requests.inc({
    endpoint: o.endpoint,
    model: label,
    provider: o.provider ?? "none",
    status_class: `${Math.floor(o.status / 100)}xx`,
    ...k,
  });
  for (const s of priced) {
    const model = s === priced[0] ? label : o.registry.modelLabel(s.model);
    for (const [type, field] of TOKEN_TYPES) m.tokens.inc({ model, type, ...k }, s.tokens[field]);
    if (s.cost) m.cost.inc({ model, ...k }, usd(s.cost));
  }
  if (o.incomplete) m.incomplete.inc({ model: label, ...k });
  m.duration.observe({ endpoint: o.endpoint }, o.durationMs / 1000);
  if (o.ttfbMs !== undefined) m.ttfb.observe({ endpoint: o.endpoint }, o.ttfbMs / 1000);
  const provider = o.provider ?? "none";
  const lines: UsageLine[] = !o.reachedUpstream ? [] : priced.map((s, i) => ({
    model: s.model,
    provider,
    counters: i === 0
      ? countersOf(s.tokens, 1, o.failed, o.incomplete, s.cost)
      : countersOf(s.tokens, 0, false, false, s.cost),
  }));
  const days = ctx.config.requestLogDays;
  const logged = days > 0 ? requestLogRecord(o.id, logEntry(o, tokens, cost), days) : undefined;
  ctx.usageWriter.record(o.key.id, ctx.clock.now(), lines, logged);
  if (ctx.log.enabled("info")) logLine(ctx, o, tokens, cost);
  return cost;
}

/** The request's one log line. */
function logLine(ctx: Context, o: RequestOutcome, tokens: Tokens, cost: number | undefined): void {
  ctx.log.info("request", {
    request_id: o.id,
    key_id: o.key.id,
    model: o.model,
    endpoint: o.endpoint,
    provider: o.provider ?? null,
    tried: o.tried.length > 1 ? o.tried : undefined,
    status: o.status,
    outcome: o.metered?.status ?? (o.failed ? "gateway_error" : "ok"),
    stream: o.stream,
    incomplete: o.incomplete,
    input_uncached: tokens.inputUncached,
    cache_read: tokens.cacheRead,
    cache_write: tokens.cacheWrite,
    output: tokens.output,
    cost_usd: cost !== undefined ? usd(cost) : null,
    latency_ms: Math.round(o.durationMs),
    ttfb_ms: o.ttfbMs !== undefined ? Math.round(o.ttfbMs) : null,
    upstream_ms: o.upstreamMs !== undefined ? Math.round(o.upstreamMs) : null,
    retries: o.retries,
    upstream_request_id: o.upstreamRequestId,
    error: o.error,
  });
}

/** The request-log entry of an outcome: figures only, never prompt or completion text. */
function logEntry(o: RequestOutcome, tokens: Tokens, cost: number | undefined): RequestLogEntry {
  return {
    time: o.startedAt,
    key_id: o.key.id,
    model: o.model,
    provider: o.provider ?? null,
    endpoint: o.endpoint,
    stream: o.stream,
    status: o.status,
    input_uncached: tokens.inputUncached,
    cache_read: tokens.cacheRead,
    cache_write: tokens.cacheWrite,
    output: tokens.output,
    cost_micro_usd: cost ?? null,
    latency_ms: Math.round(o.durationMs),
    ttfb_ms: o.ttfbMs !== undefined ? Math.round(o.ttfbMs) : null,
    retries: o.retries,
    complete: !o.incomplete,
    error: o.error ?? o.metered?.errorType ?? null,
  };
}

/** A request the gateway refused after authenticating its key (before any provider was tried). */
export interface Refusal {
  id: string;
  key: KeyRecord;
  /** The model asked for, when the body was read that far. */
  model?: string;
  endpoint: string;
  status: number;
  /** The refusal's reason code (`model_not_allowed`, `rate_limited`, ...). */
  code: string;
  startedAt: number;
  durationMs: number;
}

/**
 * Logs a refused request in the request log (no usage: nothing reached a
 * provider). The router writes its log line and metrics, as for every
 * request the gateway answers itself.
 */
export function recordRefusal(ctx: Context, r: Refusal): void {
  const days = ctx.config.requestLogDays;
  if (days <= 0) return;
  const ms = Math.round(r.durationMs);
  const entry: RequestLogEntry = {
    time: r.startedAt,
    key_id: r.key.id,
    model: r.model ?? "",
    provider: null,
    endpoint: r.endpoint,
    stream: false,
    status: r.status,
    input_uncached: 0,
    cache_read: 0,
    cache_write: 0,
    output: 0,
    cost_micro_usd: null,
    latency_ms: ms,
    ttfb_ms: ms,
    retries: 0,
    complete: true,
    error: r.code,
  };
  ctx.usageWriter.record(r.key.id, ctx.clock.now(), [], requestLogRecord(r.id, entry, days));
}
