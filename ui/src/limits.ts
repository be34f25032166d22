/**
 * Limit standings as the key view reports them (`limits`): which limits a
 * key has, how full each is, and which keys are close to one.
 */
import { type KeyView, LIMIT_FIELDS, type LimitField, type LimitUse } from "./types.ts";

/** Display names of the limits, by field. */
export const LIMIT_LABELS: Readonly<Record<LimitField, string>> = {
  rpm: "Requests / min",
  tpm: "Tokens / min",
  max_concurrent: "Concurrent",
  daily_token_quota: "Tokens today",
  monthly_token_quota: "Tokens this month",
  daily_budget_usd: "Spend today",
  monthly_budget_usd: "Spend this month",
};

/** A limit counts as near when at most this share of it remains (within 20%). */
export const NEAR = 0.2;

/** One limit of one key, with how full it is. */
export interface LimitState extends LimitUse {
  name: LimitField;
  label: string;
  /** Committed share of the limit, 0..1. */
  usedShare: number;
  /** Committed and held share, 0..1: what the next request is measured against. */
  takenShare: number;
  money: boolean;
  near: boolean;
}

const share = (part: number, whole: number) =>
  whole > 0 ? Math.min(1, Math.max(0, part / whole)) : 1;

/** The key's limits in display order; empty when it has none. */
export function limitStates(k: Pick<KeyView, "limits">): LimitState[] {
  const out: LimitState[] = [];
  for (const name of LIMIT_FIELDS) {
    const l = k.limits?.[name];
    if (!l) continue;
    out.push({
      ...l,
      name,
      label: LIMIT_LABELS[name],
      usedShare: share(l.used, l.limit),
      takenShare: share(l.limit - l.remaining, l.limit),
      money: name.endsWith("_usd"),
      near: l.remaining <= l.limit * NEAR,
    });
  }
  return out;
}

/** Keys with a limit within 20% of being reached, fullest first. */
export function nearLimits(
  keys: readonly KeyView[],
): { key: KeyView; limit: LimitState }[] {
  const out: { key: KeyView; limit: LimitState }[] = [];
  for (const key of keys) {
    for (const limit of limitStates(key)) {
      if (limit.near) out.push({ key, limit });
    }
  }
  return out.sort((a, b) => b.limit.takenShare - a.limit.takenShare);
}
