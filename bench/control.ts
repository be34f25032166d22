/**
 * The benchmark's side of the fake upstream's control endpoints: its
 * counters, and the hold that ends every run at a clean point.
 */
import type { UpstreamStats } from "./upstream.ts";

/** Talks to a running fake upstream at `base` (e.g. `http://127.0.0.1:9000`). */
export class UpstreamControl {
  readonly base: string;

  constructor(base: string) {
    this.base = base;
  }

  async #call(method: string, path: string): Promise<UpstreamStats> {
    const res = await fetch(this.base + path, { method, signal: AbortSignal.timeout(10_000) });
    if (!res.ok) throw new Error(`upstream ${method} ${path}: HTTP ${res.status}`);
    return await res.json() as UpstreamStats;
  }

  /** Current counters. */
  stats(): Promise<UpstreamStats> {
    return this.#call("GET", "/stats");
  }

  /** Zeroes the counters (gauges such as `inflight` stay). */
  reset(): Promise<UpstreamStats> {
    return this.#call("POST", "/stats/reset");
  }

  /** Parks every new request until its client leaves or {@link release}. */
  hold(): Promise<UpstreamStats> {
    return this.#call("POST", "/stats/hold");
  }

  /** Ends the hold and answers the requests still parked. */
  release(): Promise<UpstreamStats> {
    return this.#call("POST", "/stats/release");
  }

  /** Ends every open slow stream (normally, with its final usage). */
  finishSlow(): Promise<UpstreamStats> {
    return this.#call("POST", "/stats/finish-slow");
  }

  /** Polls the counters every `everyMs` until `cond` holds; returns the last counters and whether it held. */
  async waitFor(
    cond: (s: UpstreamStats) => boolean,
    timeoutMs: number,
    everyMs = 10,
  ): Promise<{ ok: boolean; stats: UpstreamStats }> {
    const until = performance.now() + timeoutMs;
    for (;;) {
      const stats = await this.stats();
      if (cond(stats)) return { ok: true, stats };
      if (performance.now() >= until) return { ok: false, stats };
      await new Promise((r) => setTimeout(r, everyMs));
    }
  }
}
