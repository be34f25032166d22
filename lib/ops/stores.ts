/**
 * The two KV writers of a running gateway, built from the configuration
 * with what they say wired to the log and metrics: the usage writer (its
 * backlog bounds and spill file) and the limit store (its KV timeout). An
 * outage is told in a few lines, not one per request: when KV starts
 * failing, when it is back, and what went to the spill file or was lost.
 */
import { basename, dirname, join } from "node:path";
import type { Config } from "../config/env.ts";
import type { BucketClock, Clock } from "./clock.ts";
import { errorMessage, type Logger } from "./log.ts";
import type { Metrics } from "./metrics.ts";
import { newId } from "./ids.ts";
import { LimitStore, type Seed } from "../store/limits/store.ts";
import type { Windows } from "../store/limits/windows.ts";
import { SpillFile } from "../store/usage/spill.ts";
import { UsageWriter } from "../store/usage/writer.ts";

/** Most key ids named in one "usage lost" line. */
const MAX_KEYS_LOGGED = 50;

/** The spill file of worker `id` of `count` (one file per process: appends never interleave). */
export function spillPathOf(base: string, id: number, count: number): string {
  return count > 1 ? `${base}.w${id}` : base;
}

/**
 * Moves what processes that no longer exist left in their spill files (a
 * run with more workers, or with one where there are several now) into
 * `own`, so it is replayed. Called by worker 1 (or the only process) at
 * start; the files of workers that exist now are skipped, so no file it
 * reads is being written.
 */
export async function adoptSpills(base: string, own: string, count: number): Promise<number> {
  const dir = dirname(base), name = basename(base);
  let adopted = 0;
  let entries: Deno.DirEntry[] = [];
  try {
    entries = await Array.fromAsync(Deno.readDir(dir));
  } catch {
    return 0; // no folder yet: nothing was spilled
  }
  for (const e of entries) {
    const m = e.isFile && (e.name === name || e.name.startsWith(`${name}.w`))
      ? /^(?:\.w(\d+))?$/.exec(e.name.slice(name.length))
      : null;
    if (!m) continue;
    const path = join(dir, e.name);
    const worker = m[1] === undefined ? 0 : Number(m[1]);
    // Files of workers that still exist are replayed by those workers themselves.
    if (path === own || (count > 1 && worker >= 1 && worker <= count)) continue;
    const text = await Deno.readTextFile(path);
    if (text.length > 0) {
      await Deno.writeTextFile(own, text.endsWith("\n") ? text : text + "\n", { append: true });
      adopted += text.length;
    }
    await Deno.remove(path);
  }
  return adopted;
}

/** The usage writer of a gateway process. Call `start()` before serving (it finds a spill file). */
export function createUsageWriter(
  kv: Deno.Kv,
  config: Config,
  buckets: BucketClock,
  clock: Clock,
  log: Logger,
  metrics: Metrics,
  spillPath = config.spillPath,
): UsageWriter {
  const spill = spillPath ? new SpillFile(spillPath, config.spillMaxBytes) : undefined;
  const backlog = () => {
    const b = writer.backlog;
    return { backlog_requests: b.requests, backlog_bytes: b.bytes, spill_bytes: b.spillBytes };
  };
  const writer: UsageWriter = new UsageWriter(kv, buckets, config.usageFlushMs, {
    onRetry: (e) => log.debug("usage write failed; will retry", { error: errorMessage(e) }),
    onRejected: (keyId, e) => {
      metrics.usageRejected.inc({});
      log.error("usage refused by KV; set aside", { key_id: keyId, error: errorMessage(e) });
    },
    onCommit: (ms) => metrics.kvWrite.observe({}, ms / 1000),
    onDown: (e) =>
      log.error("usage writes to KV are failing; holding usage in memory", {
        error: errorMessage(e),
        ...backlog(),
      }),
    onUp: (ms) =>
      log.warn("usage writes to KV work again; writing the backlog", {
        failed_for_ms: ms,
        ...backlog(),
      }),
    onSpilled: (requests) => {
      metrics.usageSpilled.inc({}, requests);
      log.warn("usage spilled to disk", { requests, spill_file: spill?.path, ...backlog() });
    },
    onDropped: (requests, keys, why) => {
      metrics.usageDropped.inc({}, requests);
      const ids = Object.entries(keys);
      log.error("usage lost: KV is failing and it cannot be kept", {
        requests,
        why,
        keys: Object.fromEntries(ids.slice(0, MAX_KEYS_LOGGED)),
        more_keys: ids.length > MAX_KEYS_LOGGED ? ids.length - MAX_KEYS_LOGGED : undefined,
      });
    },
    onSpillFound: (bytes) =>
      log.warn("spilled usage found; replaying it into KV", { spill_file: spill?.path, bytes }),
    onReplayed: (requests) =>
      log.info("spilled usage written to KV", { spill_file: spill?.path, requests }),
    onBadLine: (offset) =>
      log.error("spill file line unreadable; moved aside", {
        spill_file: spill?.path,
        offset,
        moved_to: `${spill?.path}.rejected`,
      }),
  }, {
    timeoutMs: config.kvTimeoutMs,
    maxRequests: config.usageBacklogMaxRequests,
    maxBytes: config.usageBacklogMaxBytes,
    spill,
    now: () => clock.now(),
  });
  return writer;
}

/** The limit store of a gateway process. */
export function createLimitStore(
  kv: Deno.Kv,
  config: Config,
  clock: Clock,
  windows: Windows,
  seed: Seed,
  log: Logger,
): LimitStore {
  return new LimitStore(kv, clock, windows, {
    processId: newId(),
    seed,
    heldTtlMs: config.limitHoldMs,
    timeoutMs: config.kvTimeoutMs,
    onDown: (e) =>
      log.error("limit store cannot reach KV; limits follow the fallback policy", {
        error: errorMessage(e),
        rate_limits: config.limitsOnKvFailure.rate,
        quotas: config.limitsOnKvFailure.quota,
      }),
    onUp: (ms) => log.warn("limit store reaches KV again", { failed_for_ms: ms }),
  });
}
