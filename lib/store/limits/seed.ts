/**
 * The use a day or month window already holds when a quota or budget is
 * first counted in it (a limit set mid-day counts the day's usage so far),
 * read from the usage store.
 */
import type { UsageReader } from "../usage/reader.ts";
import type { Seed } from "./store.ts";
import type { Windows } from "./windows.ts";

/** A {@link Seed} reading the usage store on the `windows` calendar. */
export function usageSeed(usage: UsageReader, windows: Windows): Seed {
  return async (keyId, span, now) => {
    const day = windows.day(now).id.slice(1);
    const from = span === "day" ? day : `${day.slice(0, 7)}-01`;
    let tokens = 0, microUsd = 0;
    for (const r of await usage.byKey(keyId, from, day)) {
      const c = r.counters;
      tokens += c.input_uncached + c.cache_read + c.cache_write + c.output;
      microUsd += c.cost_micro_usd;
    }
    return { tokens, microUsd };
  };
}
