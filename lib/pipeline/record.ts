/**
 * Stage "record": the outcome of one proxied request, and where it goes once
 * known: the usage store, metrics and the request's log line.
 */
import type { Context } from "../context.ts";
import type { KeyRecord } from "../store/keys.ts";
import { type Metered, type Tokens, zeroTokens } from "../metering/tokens.ts";
import type { Pricing } from "../config/registry.ts";
import { countersOf } from "../store/usage/counters.ts";

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
  /** Prices of the model (from the registry the request started with). */
  pricing?: Pricing;
  /** The model as a metric label: a known model id or routing prefix, else `other`. */
  modelLabel: string;
}

/** Cost in USD of a token record at given prices. */
function costOf(t: Tokens, p: Pricing): number {
  return (t.inputUncached * p.input + t.cacheRead * p.cacheRead + t.cacheWrite * p.cacheWrite +
    t.output * p.output) / 1e6;
}

const TOKEN_TYPES = [
  ["input_uncached", "inputUncached"],
  ["cache_read", "cacheRead"],
  ["cache_write", "cacheWrite"],
  ["output", "output"],
] as const;

/** Records the outcome: usage (when it reached an upstream), metrics and one log line. */
export function record(ctx: Context, o: RequestOutcome): void {
  const tokens: Tokens = o.metered?.tokens ?? zeroTokens();
  const cost = o.pricing ? costOf(tokens, o.pricing) : undefined;
  const m = ctx.metrics;
  const k: Record<string, string> = m.perKey ? { key_id: o.key.id } : {};
  m.requests.inc({
    endpoint: o.endpoint,
    model: o.modelLabel,
    provider: o.provider ?? "none",
    status_class: `${Math.floor(o.status / 100)}xx`,
    ...k,
  });
  for (const [type, field] of TOKEN_TYPES) {
    m.tokens.inc({ model: o.modelLabel, type, ...k }, tokens[field]);
  }
  if (cost) m.cost.inc({ model: o.modelLabel, ...k }, cost);
  if (o.incomplete) m.incomplete.inc({ model: o.modelLabel, ...k });
  m.duration.observe({ endpoint: o.endpoint }, o.durationMs / 1000);
  if (o.ttfbMs !== undefined) m.ttfb.observe({ endpoint: o.endpoint }, o.ttfbMs / 1000);
  if (o.reachedUpstream) {
    const provider = o.provider ?? "none";
    ctx.usageWriter.record(o.key.id, ctx.clock.now(), [
      { model: o.model, provider, counters: countersOf(tokens, 1, o.failed, o.incomplete) },
      ...(o.metered?.extra ?? []).map((e) => ({
        model: e.model,
        provider,
        counters: countersOf(e.tokens, 0, false, false),
      })),
    ]);
  }
  if (!ctx.log.enabled("info")) return;
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
    cost_usd: cost !== undefined ? Number(cost.toFixed(8)) : null,
    latency_ms: Math.round(o.durationMs),
    ttfb_ms: o.ttfbMs !== undefined ? Math.round(o.ttfbMs) : null,
    upstream_ms: o.upstreamMs !== undefined ? Math.round(o.upstreamMs) : null,
    retries: o.retries,
    upstream_request_id: o.upstreamRequestId,
    error: o.error,
  });
}
