/**
 * How a key is shown by the admin API, the CLI and the self-service
 * endpoint: its fields (never the secret), its totals, and, when read, each
 * limit's consumption and reset time.
 */
import type { KeyRecord } from "../store/keys.ts";
import type { Standing } from "../store/limits/ledger.ts";
import type { LimitStore } from "../store/limits/store.ts";
import { zeroCounters } from "../store/usage/counters.ts";
import type { KeyTotals, UsageReader } from "../store/usage/reader.ts";
import { bucketFields, costFields, inputOf } from "./reports.ts";

const iso = (ms: number) => new Date(ms).toISOString();
const usd = (micro: number | undefined) => (micro === undefined ? null : micro / 1e6);

/** Each limit's standing by name; money in USD. */
export function limitsView(standings: Standing[]) {
  const out: Record<string, unknown> = {};
  for (const s of standings) {
    const money = s.limit.endsWith("_usd");
    const v = (n: number) => (money ? n / 1e6 : n);
    out[s.limit] = {
      limit: v(s.value),
      used: v(s.used),
      reserved: v(s.reserved),
      remaining: v(Math.max(0, s.value - s.used - s.reserved)),
      resets_at: s.resetsAt !== undefined ? iso(s.resetsAt) : null,
    };
  }
  return out;
}

/** A key's fields and limit settings (no totals, no secret). */
export function keyFields(k: KeyRecord, now: number) {
  const l = k.limits ?? {};
  return {
    id: k.id,
    key: k.masked,
    name: k.name,
    enabled: k.enabled,
    created: k.created,
    allowed_providers: k.allowedProviders ?? null,
    allowed_models: k.allowedModels ?? null,
    rpm: l.rpm ?? null,
    tpm: l.tpm ?? null,
    max_concurrent: l.maxConcurrent ?? null,
    daily_token_quota: l.dailyTokens ?? null,
    monthly_token_quota: l.monthlyTokens ?? null,
    daily_budget_usd: usd(l.dailyMicroUsd),
    monthly_budget_usd: usd(l.monthlyMicroUsd),
    expires_at: k.expiresAt ?? null,
    expired: k.expiresAt !== undefined && now >= Date.parse(k.expiresAt),
    metadata: k.metadata ?? null,
    previous_key_valid_until: k.previous && Date.parse(k.previous.until) > now
      ? k.previous.until
      : null,
    source: k.source,
  };
}

/** The listing form of a key: fields, totals and each limit's standing. */
export function keyView(
  k: KeyRecord,
  now: number,
  t: KeyTotals | undefined,
  standings: Standing[],
) {
  const c = t?.counters ?? zeroCounters();
  return {
    ...keyFields(k, now),
    limits: limitsView(standings),
    total_input: inputOf(c),
    total_output: c.output,
    total_requests: c.requests,
    last_used: t?.lastUsed ? iso(t.lastUsed) : null,
    ...bucketFields(c),
    ...costFields(c),
  };
}

/** Where a key's full view is read from. */
export interface KeyViewSources {
  usage: UsageReader;
  limits: LimitStore;
  now: number;
}

/** A key's limit standings, read from KV (none when it has no limits). */
export function standingsOf(src: KeyViewSources, k: KeyRecord): Promise<Standing[]> {
  return k.limits ? src.limits.standings(k.id, k.limits) : Promise.resolve([]);
}

/** A key's full view: fields, totals and each limit's standing. */
export async function fullKeyView(src: KeyViewSources, k: KeyRecord) {
  const [totals, standings] = await Promise.all([
    src.usage.keyTotals(k.id),
    standingsOf(src, k),
  ]);
  return keyView(k, src.now, totals, standings);
}
