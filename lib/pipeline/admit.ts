/**
 * Stage "admit": the home of per-key policy. Decides whether this key may
 * make this request before any provider is chosen:
 *
 * - its model allowlist (exact ids and `*` / `?` globs, matched without
 *   regard to case, as routing matches);
 * - its limits (`rpm`, `tpm`, `max_concurrent`, daily and monthly token
 *   quotas and money budgets): the request reserves its worst case (body
 *   bytes as input tokens, plus its `max_tokens`, priced at the model's
 *   highest rates) and is admitted only if that fits; when it ends, the
 *   reservation is replaced by what it used (`Admission.settle`).
 *
 * When KV cannot be asked, `RATE_LIMITS_ON_KV_FAILURE` and
 * `QUOTAS_ON_KV_FAILURE` decide: counted by this process alone, not
 * counted, or refused with 503 `limits_unavailable`.
 *
 * The provider allowlist is applied when the chain is chosen (`chain.ts`),
 * since it filters providers rather than requests.
 */
import type { Pricing, Registry } from "../config/registry.ts";
import type { Context } from "../context.ts";
import type { FormatEndpoint } from "../formats/format.ts";
import { quote } from "../http/client_text.ts";
import { GatewayError } from "../http/errors.ts";
import { count, type Metered, type Tokens } from "../metering/tokens.ts";
import type { KeyRecord } from "../store/keys.ts";
import type { Claim, Exceeded, Standing } from "../store/limits/ledger.ts";
import { type Admitted, hasLimits } from "../store/limits/store.ts";
import type { RequestBody } from "./body.ts";
import { ok, refused, type Result } from "./result.ts";

/** An admitted request's standing with its key's limits. */
export interface Admission {
  /** The gateway's own rate-limit headers (`x-gateway-ratelimit-*`) for the response. */
  headers: [string, string][];
  /** Replaces the reservation with what the request used. Call exactly once, on every path. */
  settle(metered: Metered | undefined, cost: number | undefined): void;
}

const UNLIMITED: Admission = { headers: [], settle: () => {} };

/** True when `text` matches a glob of `*` (any run) and `?` (one character); case-insensitive. */
function globMatch(glob: string, text: string): boolean {
  const g = glob.toLowerCase(), t = text.toLowerCase();
  let gi = 0, ti = 0, star = -1, mark = 0;
  while (ti < t.length) {
    if (gi < g.length && (g[gi] === "?" || g[gi] === t[ti])) {
      gi++;
      ti++;
    } else if (gi < g.length && g[gi] === "*") {
      star = gi++;
      mark = ti;
    } else if (star !== -1) {
      gi = star + 1;
      ti = ++mark;
    } else return false;
  }
  while (gi < g.length && g[gi] === "*") gi++;
  return gi === g.length;
}

/** True when the key's `allowed_models` (absent: all) lets it use `model`. */
export function keyMayUseModel(key: KeyRecord, model: string): boolean {
  return !key.allowedModels || key.allowedModels.some((g) => globMatch(g, model));
}

/** True when the key's `allowed_providers` (absent: all) lets it use provider `id`. */
export function keyMayUseProvider(key: KeyRecord, id: string): boolean {
  return !key.allowedProviders || key.allowedProviders.includes(id);
}

/** Every token a request used, across the models it was billed under. */
function tokensUsed(m: Metered | undefined): number {
  if (!m) return 0;
  const sum = (t: Tokens) => t.inputUncached + t.cacheRead + t.cacheWrite + t.output;
  return m.extra.reduce((n, e) => n + sum(e.tokens), sum(m.tokens));
}

/** The highest price any input token of the model can cost (USD per million). */
function maxInputPrice(p: Pricing): number {
  return Math.max(p.input, p.cacheRead, p.cacheWrite, p.cacheWrite1h);
}

/** What the request may use at most; undefined money when a budget key meets an unpriced model. */
function claimOf(
  ctx: Context,
  registry: Registry,
  key: KeyRecord,
  body: RequestBody,
  endpoint: FormatEndpoint,
): Result<Claim> {
  if (!endpoint.metered) {
    // Free calls (count_tokens) use no tokens; Claude Code sends them in bursts.
    const n = ctx.config.limitCountTokens ? 1 : 0;
    return ok({ requests: n, concurrent: n, tokens: 0, microUsd: 0 });
  }
  const output = count(body.json.max_tokens) ?? count(body.json.max_completion_tokens) ??
    ctx.config.limitDefaultMaxTokens;
  // Every token is at least one byte of the body: its size bounds the input.
  const input = body.raw.length;
  const claim: Claim = { requests: 1, concurrent: 1, tokens: input + output, microUsd: 0 };
  const l = key.limits!;
  if (l.dailyMicroUsd !== undefined || l.monthlyMicroUsd !== undefined) {
    const p = registry.reservationPricing(body.model);
    if (!p) {
      return refused(
        new GatewayError(
          403,
          "model_not_priced",
          `model ${
            quote(body.model)
          } has no price in models.json, so API key "${key.name}" (which has a money budget) cannot use it`,
        ),
      );
    }
    claim.microUsd = Math.ceil(input * maxInputPrice(p) + output * p.output);
  }
  return ok(claim);
}

const LABEL: Record<string, string> = {
  rpm: "requests per minute (rpm)",
  tpm: "tokens per minute (tpm)",
  max_concurrent: "concurrent requests (max_concurrent)",
  daily_token_quota: "daily token quota",
  monthly_token_quota: "monthly token quota",
  daily_budget_usd: "daily budget",
  monthly_budget_usd: "monthly budget",
};

const usd = (micro: number) => `$${(micro / 1e6).toFixed(micro % 10_000 === 0 ? 2 : 6)}`;

/** The 429 (or 413-like 429 when the request can never fit) for an exceeded limit. */
function refusal(key: KeyRecord, x: Exceeded, now: number, headers: [string, string][]) {
  const money = x.limit.endsWith("_usd");
  const show = (n: number) => (money ? usd(n) : String(n));
  const quota = x.limit.includes("quota") || money;
  const h: Record<string, string> = Object.fromEntries(headers);
  let message: string;
  if (x.needed > x.value) {
    message = `this request may use up to ${show(x.needed)}${
      money ? "" : x.limit === "rpm" ? " requests" : " tokens"
    }, more than API key "${key.name}"'s ${LABEL[x.limit]} of ${show(x.value)}`;
  } else {
    const wait = x.resetsAt !== undefined ? Math.max(0, x.resetsAt - now) : 1000;
    h["retry-after"] = String(Math.max(1, Math.ceil(wait / 1000)));
    h["retry-after-ms"] = String(Math.max(1, wait));
    message = x.limit === "max_concurrent"
      ? `API key "${key.name}" has ${x.used} requests open, its limit of ${
        LABEL[x.limit]
      }; retry when one finishes`
      : `API key "${key.name}" has used ${show(x.used)} of its ${LABEL[x.limit]} of ${
        show(x.value)
      }; it resets at ${new Date(x.resetsAt!).toISOString()}`;
  }
  const code = quota ? "insufficient_quota" : "rate_limit_exceeded";
  return new GatewayError(429, code, message, h);
}

/** The gateway's own rate-limit headers, never confused with a provider's. */
function rateHeaders(s: Standing[], now: number): [string, string][] {
  const out: [string, string][] = [];
  let reset: number | undefined;
  for (const x of s) {
    if (x.limit !== "rpm" && x.limit !== "tpm") continue;
    const unit = x.limit === "rpm" ? "requests" : "tokens";
    out.push([`x-gateway-ratelimit-limit-${unit}`, String(x.value)]);
    out.push([
      `x-gateway-ratelimit-remaining-${unit}`,
      String(Math.max(0, x.value - x.used - x.reserved)),
    ]);
    reset = x.resetsAt;
  }
  if (reset !== undefined) {
    out.push(["x-gateway-ratelimit-reset", String(Math.max(0, Math.ceil((reset - now) / 1000)))]);
  }
  return out;
}

/**
 * Admits a request by `key`, or refuses it: 403 for a model the key may not
 * use (or an unpriced model under a money budget), 429 for an exceeded limit.
 */
export async function admit(
  ctx: Context,
  registry: Registry,
  key: KeyRecord,
  body: RequestBody,
  endpoint: FormatEndpoint,
): Promise<Result<Admission>> {
  if (!keyMayUseModel(key, body.model)) {
    return refused(
      new GatewayError(
        403,
        "model_not_allowed",
        `API key "${key.name}" may not use model ${
          quote(body.model)
        } (GET /v1/models lists the models it may use)`,
      ),
    );
  }
  if (!hasLimits(key.limits)) return ok(UNLIMITED);
  const claim = claimOf(ctx, registry, key, body, endpoint);
  if (!claim.ok) return claim;
  const c = claim.value;
  if (c.requests === 0 && c.concurrent === 0 && c.tokens === 0 && c.microUsd === 0) {
    return ok(UNLIMITED);
  }
  let decided: Admitted;
  try {
    decided = await ctx.limits.admit(key.id, key.limits, c);
  } catch (e) {
    // KV cannot be asked: the configured policy decides (the store logs the outage once).
    const off = ctx.limits.admitOffline(key.id, key.limits, c, ctx.config.limitsOnKvFailure);
    const policy = "closed" in off ? "closed" : off.policy;
    ctx.metrics.limitFallbacks.inc({ policy });
    if ("closed" in off) {
      ctx.log.debug("limit check failed", { key_id: key.id, error: (e as Error).message });
      const what = off.closed === "quota" ? "quotas and budgets" : "rate limits";
      return refused(
        new GatewayError(
          503,
          "limits_unavailable",
          `the gateway cannot check API key "${key.name}"'s ${what} right now; retry shortly`,
          { "retry-after": "1" },
        ),
      );
    }
    decided = off;
  }
  const now = ctx.clock.now();
  const headers = rateHeaders(decided.standings, now);
  if (!decided.ok) return refused(refusal(key, decided.exceeded, now, headers));
  const ticket = decided.ticket;
  return ok({
    headers,
    settle: (metered, cost) => {
      // Committed in the background; the key's next request waits at the same gate.
      ticket.settle({ tokens: tokensUsed(metered), microUsd: cost });
    },
  });
}
