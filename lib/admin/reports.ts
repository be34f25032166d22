/**
 * Usage reports: stored rows folded into Luna's report shapes (same field
 * names, plus the four token buckets by name). Pure functions.
 *
 * Definitions (docs/admin-api.md, "What the numbers mean"): `input` / `total_input` is the whole
 * prompt, `input_uncached + cache_read + cache_write` (OpenAI's convention);
 * `output` is all generated tokens; a model's `total` is input + output.
 * `cost_usd` is the cost of the priced usage, or null when none of it had a
 * price; `unpriced_requests` counts the requests (and advisor uses) whose
 * model had none, so a cost beside a non-zero count is a lower bound.
 */
import { usd } from "../metering/cost.ts";
import { addCounters, type Counters, zeroCounters } from "../store/usage/counters.ts";
import type { UsageRow } from "../store/usage/reader.ts";

/** Per-model figures in reports. */
export interface ModelStats {
  total: number;
  requests: number;
  input: number;
  output: number;
  input_uncached: number;
  cache_read: number;
  cache_write: number;
  failed: number;
  incomplete: number;
  cost_usd: number | null;
  unpriced_requests: number;
}

/** Counters as report fields (without `total`). */
export function bucketFields(c: Counters) {
  return {
    input_uncached: c.input_uncached,
    cache_read: c.cache_read,
    cache_write: c.cache_write,
    failed: c.failed,
    incomplete: c.incomplete,
    web_search_requests: c.web_search_requests,
    web_fetch_requests: c.web_fetch_requests,
  };
}

/** Cost fields of a set of counters: USD of the priced usage (null when none was), and the unpriced count. */
export function costFields(c: Counters): { cost_usd: number | null; unpriced_requests: number } {
  return { cost_usd: c.priced > 0 ? usd(c.cost_micro_usd) : null, unpriced_requests: c.unpriced };
}

/** The whole prompt of a set of counters. */
export function inputOf(c: Counters): number {
  return c.input_uncached + c.cache_read + c.cache_write;
}

/** Per-model stats from counters. */
function modelStats(c: Counters): ModelStats {
  const input = inputOf(c);
  return {
    total: input + c.output,
    requests: c.requests,
    input,
    output: c.output,
    input_uncached: c.input_uncached,
    cache_read: c.cache_read,
    cache_write: c.cache_write,
    failed: c.failed,
    incomplete: c.incomplete,
    ...costFields(c),
  };
}

/** Groups rows by a string key, summing counters. */
function sumBy(rows: UsageRow[], key: (r: UsageRow) => string): Map<string, Counters> {
  const out = new Map<string, Counters>();
  for (const r of rows) {
    const k = key(r);
    const c = out.get(k);
    if (c) addCounters(c, r.counters);
    else out.set(k, addCounters(zeroCounters(), r.counters));
  }
  return out;
}

/** `by_model`: model -> stats, sorted by total descending (then name). */
export function byModel(rows: UsageRow[]): Record<string, ModelStats> {
  const stats = [...sumBy(rows, (r) => r.model)].map(([m, c]) => [m, modelStats(c)] as const);
  stats.sort((a, b) => b[1].total - a[1].total || (a[0] < b[0] ? -1 : 1));
  return Object.fromEntries(stats);
}

/** Sum of all rows' counters. */
export function total(rows: UsageRow[]): Counters {
  const c = zeroCounters();
  for (const r of rows) addCounters(c, r.counters);
  return c;
}

/** Rows grouped by a key, in ascending key order. */
export function groupSorted(
  rows: UsageRow[],
  key: (r: UsageRow) => string,
): [string, UsageRow[]][] {
  const m = new Map<string, UsageRow[]>();
  for (const r of rows) {
    const k = key(r);
    const list = m.get(k);
    if (list) list.push(r);
    else m.set(k, [r]);
  }
  return [...m].sort((a, b) => (a[0] < b[0] ? -1 : a[0] > b[0] ? 1 : 0));
}

/** `by_tenant`: key name -> model -> stats (keys with one name are merged, as Luna did). */
export function byTenant(rows: UsageRow[], nameOf: (keyId: string) => string) {
  const out: Record<string, Record<string, ModelStats>> = {};
  for (const [name, list] of groupSorted(rows, (r) => nameOf(r.keyId))) out[name] = byModel(list);
  return out;
}

/** A period's figures in Luna's per-key shape: input, output, requests, buckets, `by_model`. */
export function periodStats(rows: UsageRow[]) {
  const c = total(rows);
  return {
    input: inputOf(c),
    output: c.output,
    requests: c.requests,
    ...bucketFields(c),
    ...costFields(c),
    by_model: byModel(rows),
  };
}

/** A period's totals in Luna's report shape, with `by_model` and `by_tenant`. */
export function periodTotals(rows: UsageRow[], nameOf: (keyId: string) => string) {
  const c = total(rows);
  return {
    total_input: inputOf(c),
    total_output: c.output,
    total_requests: c.requests,
    ...bucketFields(c),
    ...costFields(c),
    by_model: byModel(rows),
    by_tenant: byTenant(rows, nameOf),
  };
}

/** The per-key usage report (`GET /admin/keys/{id}/usage`), without key fields. */
export function keyUsage(rows: UsageRow[], lastUsed: number | null) {
  const t = total(rows);
  const daily: Record<string, unknown> = {};
  for (const [day, list] of groupSorted(rows, (r) => r.day)) daily[day] = periodStats(list);
  const hourly: Record<string, unknown> = {};
  for (const [hour, list] of groupSorted(rows, (r) => `${r.day} ${r.hour}:00`)) {
    hourly[hour] = periodStats(list);
  }
  return {
    total_input: inputOf(t),
    total_output: t.output,
    total_requests: t.requests,
    last_used: lastUsed !== null ? new Date(lastUsed).toISOString() : null,
    ...bucketFields(t),
    ...costFields(t),
    daily,
    hourly,
    total_by_model: byModel(rows),
  };
}
