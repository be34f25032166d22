/**
 * The write-behind usage writer. Finished requests are coalesced for a short
 * window (`USAGE_FLUSH_MS`) and committed together: one atomic commit for
 * many requests, each request's mutations always in one commit.
 *
 * A request may bring `set` mutations of its own (its request-log entry);
 * they travel in the request's commit and are split and set aside with it.
 *
 * One request can never block another's usage: when Deno KV refuses a
 * commit outright (a `TypeError`: a key or the commit over KV's limits),
 * the batch is split into its requests, and a request KV refuses on its own
 * is set aside with one error line and a metric, never retried. Other
 * failures (the store unreachable) are retried with backoff; nothing is
 * dropped.
 */
import type { Bucket, BucketClock } from "../../ops/clock.ts";
import { isKvBusy } from "../kv_busy.ts";
import type { UsageLine } from "./counters.ts";
import {
  applyMutations,
  MAX_KEY_BYTES,
  MAX_MUTATIONS,
  MAX_PAYLOAD_BYTES,
  payloadBytes,
  type SetMutation,
  type UsageMutation,
  UsageMutations,
} from "./layout.ts";

/** One pending request: its mutations, for splitting a refused batch. */
interface Pending {
  keyId: string;
  muts: UsageMutation[];
}

/** Requests to be committed together, their mutations merged by key. */
class Batch {
  readonly merged = new Map<string, UsageMutation>();
  /** Sum of key sizes over `merged`. */
  bytes = 0;
  /** Sum of key and value sizes over `merged`. */
  payload = 0;
  readonly requests: Pending[] = [];

  /** True when adding `muts` keeps the commit within KV's limits. */
  fits(muts: UsageMutation[]): boolean {
    let added = 0, addedBytes = 0, addedPayload = 0;
    for (const m of muts) {
      const prev = this.merged.get(m.id);
      if (!prev) {
        added++;
        addedBytes += m.bytes;
        addedPayload += payloadBytes(m);
      } else if (m.op === "set") addedPayload += payloadBytes(m);
    }
    return this.merged.size + added <= MAX_MUTATIONS && this.bytes + addedBytes <= MAX_KEY_BYTES &&
      this.payload + addedPayload <= MAX_PAYLOAD_BYTES;
  }

  add(p: Pending): void {
    this.requests.push(p);
    for (const m of p.muts) {
      const prev = this.merged.get(m.id);
      if (!prev) {
        this.merged.set(m.id, { ...m });
        this.bytes += m.bytes;
        this.payload += payloadBytes(m);
      } else if (m.op === "set" || prev.op === "set") {
        // The same key set twice: the later value wins, as two commits would leave it.
        this.payload += payloadBytes(m) - payloadBytes(prev);
        this.merged.set(m.id, { ...m });
      } else if (m.op === "sum") prev.value += m.value;
      else if (m.value > prev.value) prev.value = m.value;
    }
  }
}

/** What the writer reports to its owner. */
export interface UsageWriterEvents {
  /** A commit failed and will be retried. */
  onRetry?: (e: unknown) => void;
  /** KV refused one request's usage; it is set aside. */
  onRejected?: (keyId: string, e: unknown) => void;
  /** A commit succeeded in `ms` with `mutations` mutations. */
  onCommit?: (ms: number, mutations: number) => void;
}

/** True when KV will never accept the write (a key or commit over its limits), not when it is busy. */
function refused(e: unknown): boolean {
  return e instanceof TypeError && !isKvBusy(e);
}

/** Attempts per batch before it waits for the next flush. */
const ATTEMPTS = 5;

/** Writes usage counters, coalesced. */
export class UsageWriter {
  #kv: Deno.Kv;
  #clock: BucketClock;
  #flushMs: number;
  #events: UsageWriterEvents;
  #mutations = new UsageMutations();
  #batches: Batch[] = [];
  #timer?: ReturnType<typeof setTimeout>;
  #flushing: Promise<void> = Promise.resolve();

  constructor(kv: Deno.Kv, clock: BucketClock, flushMs: number, events: UsageWriterEvents = {}) {
    this.#kv = kv;
    this.#clock = clock;
    this.#flushMs = flushMs;
    this.#events = events;
  }

  /** The day/hour bucket instant `at` falls in. */
  bucket(at: number): Bucket {
    return this.#clock.bucket(at);
  }

  /**
   * Records one finished request's usage (one or more models) at instant
   * `at`, with `sets` (its other records) in the same commit. Without usage
   * lines only the sets are written (`last_used` stays). Returns at once;
   * the write happens within the flush window.
   */
  record(keyId: string, at: number, lines: UsageLine[], sets: SetMutation[] = []): void {
    const muts: UsageMutation[] = lines.length > 0
      ? this.#mutations.build(keyId, this.#clock.bucket(at), lines, at)
      : [];
    for (const s of sets) muts.push(s);
    if (muts.length === 0) return;
    let batch = this.#batches[this.#batches.length - 1];
    if (!batch?.fits(muts)) {
      batch = new Batch();
      this.#batches.push(batch);
    }
    batch.add({ keyId, muts });
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush().catch(this.#events.onRetry ?? (() => {}));
    }, this.#flushMs);
  }

  /** Writes every pending batch; resolves when they are committed (or set aside). */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batches = this.#batches;
    this.#batches = [];
    this.#flushing = this.#flushing.then(() => this.#commitAll(batches));
    return this.#flushing;
  }

  async #commitAll(batches: Batch[]): Promise<void> {
    for (let i = 0; i < batches.length; i++) {
      if (!await this.#commitBatch(batches[i])) {
        // Keep what could not be written for the next flush instead of losing it.
        this.#batches.unshift(...batches.slice(i));
        this.#schedule();
        return;
      }
    }
  }

  /** Commits one batch; false when the store kept failing (the batch is to be kept). */
  async #commitBatch(batch: Batch): Promise<boolean> {
    for (let attempt = 0; attempt < ATTEMPTS; attempt++) {
      try {
        await this.#commit(batch.merged.values(), batch.merged.size);
        return true;
      } catch (e) {
        if (refused(e)) return await this.#commitEach(batch);
        this.#events.onRetry?.(e);
        await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
      }
    }
    return false;
  }

  /** KV refused the merged batch: write its requests one by one, setting aside those it refuses. */
  async #commitEach(batch: Batch): Promise<boolean> {
    for (let i = 0; i < batch.requests.length; i++) {
      const r = batch.requests[i];
      try {
        await this.#commit(r.muts, r.muts.length);
      } catch (e) {
        if (refused(e)) {
          this.#events.onRejected?.(r.keyId, e);
          continue;
        }
        // The store failed meanwhile: keep the rest as a batch of its own.
        const keep = new Batch();
        for (const p of batch.requests.slice(i)) keep.add(p);
        this.#events.onRetry?.(e);
        this.#batches.unshift(keep);
        this.#schedule();
        return true;
      }
    }
    return true;
  }

  async #commit(muts: Iterable<UsageMutation>, count: number): Promise<void> {
    const t0 = performance.now();
    const res = await applyMutations(this.#kv.atomic(), muts).commit();
    if (!res.ok) throw new Error("usage commit was refused");
    this.#events.onCommit?.(performance.now() - t0, count);
  }

  /** Batches waiting to be written. */
  get pending(): number {
    return this.#batches.length;
  }
}
