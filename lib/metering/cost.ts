/**
 * Cost of metered usage in integer micro-USD, from the disjoint token
 * buckets and the per-million prices of `models.json`. Undefined when a
 * model billed in the request has no price: an unknown cost is never 0.
 */
import type { Pricing } from "../config/registry.ts";
import type { Metered, Tokens } from "./tokens.ts";

/** Micro-USD of one token record at per-million prices (1e-6 USD x tokens x USD per million). */
export function microUsd(t: Tokens, p: Pricing): number {
  return Math.round(
    t.inputUncached * p.input + t.cacheRead * p.cacheRead + t.cacheWrite * p.cacheWrite +
      t.output * p.output,
  );
}

/** The cost of a request's usage (extra lines at their own model's price), or undefined. */
export function requestCost(
  metered: Metered | undefined,
  price: (model: string) => Pricing | undefined,
  model: string,
): number | undefined {
  if (!metered) return 0;
  const main = price(model);
  if (!main) return undefined;
  let total = microUsd(metered.tokens, main);
  for (const e of metered.extra) {
    const p = price(e.model);
    if (!p) return undefined;
    total += microUsd(e.tokens, p);
  }
  return total;
}
