/**
 * The usage counter model: the named counters every usage bucket holds, and
 * how one request's metered tokens become counters.
 */
import type { Tokens } from "../../metering/tokens.ts";

/** Counter names as stored in KV and shown in reports. */
export const FIELDS = [
  "requests",
  "input_uncached",
  "cache_read",
  "cache_write",
  "output",
  "failed",
  "incomplete",
  "web_search_requests",
  "web_fetch_requests",
  /** Cost of the priced usage, in whole micro-dollars. */
  "cost_micro_usd",
  /** Usage lines (a request's model, or an advisor model it used) that had a price. */
  "priced",
  /** Usage lines that had no price: their tokens count, their cost is unknown. */
  "unpriced",
] as const;
/** One counter name. */
export type Field = typeof FIELDS[number];
/** A full set of counters. */
export type Counters = Record<Field, number>;

/** Zeroed counters. */
export function zeroCounters(): Counters {
  return Object.fromEntries(FIELDS.map((f) => [f, 0])) as Counters;
}

/** Adds `b` into `a` in place. */
export function addCounters(a: Counters, b: Counters): Counters {
  for (const f of FIELDS) a[f] += b[f];
  return a;
}

/**
 * Counters for one request's tokens of one model; `costMicro` is their cost
 * (undefined: the model has no price).
 */
export function countersOf(
  tokens: Tokens,
  requests: number,
  failed: boolean,
  incomplete: boolean,
  costMicro?: number,
): Counters {
  return {
    requests,
    input_uncached: tokens.inputUncached,
    cache_read: tokens.cacheRead,
    cache_write: tokens.cacheWrite,
    output: tokens.output,
    failed: failed ? 1 : 0,
    incomplete: incomplete ? 1 : 0,
    web_search_requests: tokens.webSearch,
    web_fetch_requests: tokens.webFetch,
    cost_micro_usd: costMicro ?? 0,
    priced: costMicro === undefined ? 0 : 1,
    unpriced: costMicro === undefined ? 1 : 0,
  };
}

/** Usage of one model within one request (a request may bill several models). */
export interface UsageLine {
  model: string;
  provider: string;
  counters: Counters;
}
