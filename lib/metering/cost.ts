/**
 * What a request's tokens cost: the disjoint buckets times their prices,
 * never a total together with its parts (docs/metering.md, "Cost").
 */
import type { Pricing } from "../config/registry.ts";
import type { Tokens } from "./tokens.ts";

/**
 * The cost of `t` at `p` in whole micro-dollars (prices are USD per million
 * tokens, so tokens × price is micro-dollars), rounded once. One-hour cache
 * writes are priced at `cacheWrite1h`, the other writes at `cacheWrite`;
 * server tool calls are not priced.
 */
export function costMicroUsd(t: Tokens, p: Pricing): number {
  const oneHour = Math.min(t.cacheWrite1h, t.cacheWrite);
  return Math.round(
    t.inputUncached * p.input +
      t.cacheRead * p.cacheRead +
      (t.cacheWrite - oneHour) * p.cacheWrite +
      oneHour * p.cacheWrite1h +
      t.output * p.output,
  );
}

/** Micro-dollars as USD. */
export function usd(micro: number): number {
  return micro / 1e6;
}
