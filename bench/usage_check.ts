/**
 * The usage check run after every gateway run: what the gateway recorded
 * must equal exactly what the fake upstream served.
 *
 * Runs end cleanly (see `measure.ts`): the upstream holds every new request,
 * waits until no response is half-written and every client connection has
 * one request parked, and only then is the load stopped. So every response
 * the upstream started was written to its end, and the parked requests
 * carry no tokens. A correct gateway then records exactly `started`
 * requests (parked ones included: they reached the upstream) and exactly
 * the tokens of the `completed` responses; losing or double counting any
 * request or any token fails, as does a stream the upstream saw cut.
 */
import type { UsageTotals } from "./gateway.ts";
import type { TagStats, UpstreamStats } from "./upstream.ts";

/** The outcome of one comparison. */
export interface UsageCheck {
  ok: boolean;
  /** What differs, in words (empty when ok). */
  problems: string[];
  expected: {
    requests: number;
    input: number;
    cacheRead: number;
    cacheWrite: number;
    output: number;
  };
  recorded: {
    requests: number;
    input: number;
    cacheRead: number;
    cacheWrite: number;
    output: number;
  };
  /** Requests the gateway marked incomplete / failed in this run (the parked ones, normally). */
  incomplete: number;
  failed: number;
}

/** `after - before`, field by field. */
export function usageDelta(before: UsageTotals, after: UsageTotals): UsageTotals {
  return {
    requests: after.requests - before.requests,
    inputUncached: after.inputUncached - before.inputUncached,
    cacheRead: after.cacheRead - before.cacheRead,
    cacheWrite: after.cacheWrite - before.cacheWrite,
    output: after.output - before.output,
    failed: after.failed - before.failed,
    incomplete: after.incomplete - before.incomplete,
  };
}

/**
 * Compares one run's recorded usage (a delta) with the upstream's counters
 * for that run: all of them, or those of one `x-bench-tag` when `tag` is given
 * (when other targets' requests reached the upstream in the same window).
 */
export function checkUsage(delta: UsageTotals, up: UpstreamStats, tag?: string): UsageCheck {
  const served: TagStats = tag
    ? up.tags[tag] ??
      {
        started: 0,
        completed: 0,
        cut: 0,
        tokens: { input: 0, cacheRead: 0, cacheWrite: 0, output: 0 },
      }
    : up;
  const expected = {
    requests: served.started,
    input: served.tokens.input,
    cacheRead: served.tokens.cacheRead,
    cacheWrite: served.tokens.cacheWrite,
    output: served.tokens.output,
  };
  const recorded = {
    requests: delta.requests,
    input: delta.inputUncached,
    cacheRead: delta.cacheRead,
    cacheWrite: delta.cacheWrite,
    output: delta.output,
  };
  const problems: string[] = [];
  for (const k of Object.keys(expected) as (keyof typeof expected)[]) {
    if (expected[k] !== recorded[k]) {
      problems.push(`${k}: recorded ${recorded[k]}, upstream served ${expected[k]}`);
    }
  }
  if (tag && !up.tags[tag]) problems.push(`the upstream saw no request tagged ${tag}`);
  if (served.cut > 0) problems.push(`${served.cut} upstream stream(s) cut before their end`);
  if (up.unauthorized > 0) problems.push(`${up.unauthorized} request(s) with a wrong provider key`);
  if (up.badRequests > 0) problems.push(`${up.badRequests} malformed request body(ies) upstream`);
  return {
    ok: problems.length === 0,
    problems,
    expected,
    recorded,
    incomplete: delta.incomplete,
    failed: delta.failed,
  };
}
