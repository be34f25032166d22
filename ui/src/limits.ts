/**
 * Limit consumption as the key view reports it (`limits`, present once the
 * gateway enforces per-key limits): which limits a key has, how full each
 * is, and which keys are close to one.
 */
import type { KeyView, LimitUse } from "./types.ts";

/** Display names of the limits the admin API reports, in display order. */
export const LIMIT_LABELS: Readonly<Record<string, string>> = {
  rpm: "Requests / min",
  tpm: "Tokens / min",
  max_concurrent: "Concurrent",
  daily_token_quota: "Tokens today",
  monthly_token_quota: "Tokens this month",
  daily_budget_usd: "Spend today",
  monthly_budget_usd: "Spend this month",
};

/** A share at or above which a limit counts as near (within 20% of it). */
export const NEAR = 0.8;

/** One limit of one key, with how full it is (0..1, capped). */
export interface LimitState extends LimitUse {
  name: string;
  label: string;
  fraction: number;
  money: boolean;
}

/** The key's limits in display order; empty when it has none or the gateway reports none. */
export function limitStates(k: Pick<KeyView, "limits">): LimitState[] {
  const order = Object.keys(LIMIT_LABELS);
  return Object.entries(k.limits ?? {})
    .sort(([a], [b]) => (order.indexOf(a) >>> 0) - (order.indexOf(b) >>> 0) || (a < b ? -1 : 1))
    .map(([name, l]) => ({
      ...l,
      name,
      label: LIMIT_LABELS[name] ?? name,
      fraction: l.limit > 0 ? Math.min(1, Math.max(0, l.used / l.limit)) : 1,
      money: name.endsWith("_usd"),
    }));
}

/** Keys with a limit at 80% or more, fullest first. */
export function nearLimits(keys: readonly KeyView[]): { key: KeyView; limit: LimitState }[] {
  const out: { key: KeyView; limit: LimitState }[] = [];
  for (const key of keys) {
    for (const limit of limitStates(key)) if (limit.fraction >= NEAR) out.push({ key, limit });
  }
  return out.sort((a, b) => b.limit.fraction - a.limit.fraction);
}

/** True when the gateway reports limits at all (the governance API is present). */
export function reportsLimits(keys: readonly KeyView[]): boolean {
  return keys.some((k) => k.limits !== undefined);
}
