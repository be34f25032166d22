/**
 * The write-behind usage writer. Finished requests are coalesced for a short
 * window (`USAGE_FLUSH_MS`) and committed together: one atomic commit for
 * many requests, each request's mutations always in one commit.
 *
 * A request may bring its request-log entry; it travels in the request's
 * commit (entries of one commit share rows) and is split and set aside
 * with it.
 *
 * One request can never block another's usage: when Deno KV refuses a
 * commit outright (a `TypeError`: a key or the commit over KV's limits),
 * the batch is split into its requests, and a request KV refuses on its own
 * is set aside with one error line and a metric, never retried.
 *
 * When KV fails or does not answer within `KV_TIMEOUT_MS`, usage is held in
 * memory and retried with growing pauses; past `USAGE_BACKLOG_MAX_REQUESTS`
 * or `USAGE_BACKLOG_MAX_BYTES`, the oldest batches go to the spill file
 * (and, when there is none or it is full, are dropped with an error line and
 * a metric: never silently). Stopping writes what it can and spills the
 * rest; the next start replays the file. Every commit goes along a
 * {@link Chain}, so a batch committed twice (a retry after a lost answer, a
 * replay) counts once.
 */
import type { BucketClock } from "../../ops/clock.ts";
import { newId } from "../../ops/ids.ts";
import { isKvBusy } from "../kv_busy.ts";
import { KvTimeout, type Settled, settled, withTimeout } from "../kv_timeout.ts";
import { Batch, hasWrites, type RequestUsage, weightOf } from "./batch.ts";
import { Chain, type ChainResult, isBatchPosition, partPosition } from "./chain.ts";
import type { UsageLine } from "./counters.ts";
import { UsageMutations } from "./layout.ts";
import type { LogRecord } from "../request_log.ts";
import type { SpillEntry, SpillFile } from "./spill.ts";

/** What the writer reports to its owner. */
export interface UsageWriterEvents {
  /** A commit failed (or timed out) and will be retried. */
  onRetry?: (e: unknown) => void;
  /** KV refused one request's usage; it is set aside. */
  onRejected?: (keyId: string, e: unknown) => void;
  /** A commit succeeded in `ms` with `mutations` mutations. */
  onCommit?: (ms: number, mutations: number) => void;
  /** KV stopped taking usage: from now on it is held (the first failure of a run of them). */
  onDown?: (e: unknown) => void;
  /** KV takes usage again, after `downMs`. */
  onUp?: (downMs: number) => void;
  /** Batches went to the spill file. */
  onSpilled?: (requests: number) => void;
  /** Usage could not be kept anywhere: `requests` requests of `keys` (key id: requests) are lost. */
  onDropped?: (requests: number, keys: Record<string, number>, why: string) => void;
  /** A spill file was found at start. */
  onSpillFound?: (bytes: number) => void;
  /** The spill file was written to KV (what was in it when the replay began). */
  onReplayed?: (requests: number) => void;
  /** A line of the spill file could not be read; it was moved to `<spill file>.rejected`. */
  onBadLine?: (offset: number) => void;
}

/** Bounds and the spill file, for when KV fails. */
export interface UsageWriterBounds {
  /** Longest a commit is waited for (default 5 s). */
  timeoutMs?: number;
  /** Most requests held in memory (default 100,000). */
  maxRequests?: number;
  /** Most bytes held in memory, as {@link UsageBacklog.bytes} counts them (default 64 MiB). */
  maxBytes?: number;
  /** Where usage goes beyond the bounds, and at shutdown (none: it is dropped, loudly). */
  spill?: SpillFile;
  /** This writer's chain id (default: a new ULID). */
  chainId?: string;
  /** Epoch ms, for `failingSince` (default `Date.now`). */
  now?: () => number;
}

/** Usage waiting to reach KV. */
export interface UsageBacklog {
  /** Requests held in memory (being written to the spill file included). */
  requests: number;
  /** About the memory they hold. */
  bytes: number;
  /** Bytes in the spill file. */
  spillBytes: number;
  /** Requests dropped since start (no spill file, or it was full). */
  dropped: number;
  /** Epoch ms since when usage commits fail; undefined while they work. */
  failingSince?: number;
  /** The last failure's message, while they fail. */
  lastError?: string;
}

/** True when KV will never accept the write (a key or commit over its limits), not when it is busy. */
function refused(e: unknown): boolean {
  return e instanceof TypeError && !isKvBusy(e);
}

/** Quick attempts per flush while KV is thought healthy. */
const ATTEMPTS = 5;
/** Pauses between flushes while KV fails: from this, doubling... */
const MIN_BACKOFF_MS = 100;
/** ...up to this. */
const MAX_BACKOFF_MS = 5_000;
/** Spilled batches replayed per flush, so new usage is not kept waiting behind a long replay. */
const REPLAY_SLICE = 50;
const MiB = 1024 * 1024;

/** A commit under way, awaited again (never started twice) when it outlives the timeout. */
interface InFlight {
  chain: Chain;
  pos: number;
  t0: number;
  done: Promise<Settled<ChainResult>>;
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function message(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}

/** Writes usage counters, coalesced, exactly once. */
export class UsageWriter {
  #kv: Deno.Kv;
  #clock: BucketClock;
  #flushMs: number;
  #events: UsageWriterEvents;
  #builder = new UsageMutations();
  #timeoutMs: number;
  #maxRequests: number;
  #maxBytes: number;
  #spill?: SpillFile;
  #now: () => number;
  /** Batches not yet written, oldest first; sealed ones (being committed) only at the front. */
  #queue: Batch[] = [];
  /** What `#queue` holds. */
  #held = { requests: 0, bytes: 0 };
  /** Batches on their way to the spill file, and what they hold. */
  #toSpill: Batch[] = [];
  #transit = { requests: 0, bytes: 0 };
  #spilling: Promise<void> = Promise.resolve();
  #live: Chain;
  /** Positions for batches this process spills (minted on the first spill). */
  #spillChain?: Chain;
  #inflight?: InFlight;
  #replay?: {
    offset: number;
    end: number;
    chains: Map<string, Chain>;
    requests: number;
    inflight?: InFlight;
  };
  #timer?: ReturnType<typeof setTimeout>;
  #flushing: Promise<void> = Promise.resolve();
  #closed = false;
  #down?: { since: number; error: string };
  #backoff = 0;
  #dropped = 0;

  constructor(
    kv: Deno.Kv,
    clock: BucketClock,
    flushMs: number,
    events: UsageWriterEvents = {},
    bounds: UsageWriterBounds = {},
  ) {
    this.#kv = kv;
    this.#clock = clock;
    this.#flushMs = flushMs;
    this.#events = events;
    this.#timeoutMs = bounds.timeoutMs ?? 5_000;
    this.#maxRequests = bounds.maxRequests ?? 100_000;
    this.#maxBytes = bounds.maxBytes ?? 64 * MiB;
    this.#spill = bounds.spill;
    this.#now = bounds.now ?? Date.now;
    this.#live = new Chain(bounds.chainId ?? newId(), true);
  }

  /** Opens the spill file; what an earlier process left in it is replayed soon after. */
  async start(): Promise<void> {
    if (!this.#spill) return;
    const size = await this.#spill.open();
    if (size > 0) {
      this.#events.onSpillFound?.(size);
      this.#schedule();
    }
  }

  /** The day/hour bucket instant `at` falls in. */
  bucket(at: number) {
    return this.#clock.bucket(at);
  }

  /**
   * Records one finished request's usage (one or more models) at instant
   * `at`, with its request-log entry `log` in the same commit. Without usage
   * lines only the entry is written (`last_used` stays). Returns at once;
   * the write happens within the flush window.
   */
  record(keyId: string, at: number, lines: UsageLine[], log?: LogRecord): void {
    const u: RequestUsage = { keyId, bucket: this.#clock.bucket(at), at, lines, log, sets: [] };
    if (!hasWrites(u)) return;
    let batch = this.#queue[this.#queue.length - 1];
    if (!batch || batch.sealed || !batch.fits(u, this.#builder)) {
      batch = new Batch();
      this.#queue.push(batch);
    }
    const before = batch.weight;
    batch.add(u, this.#builder, weightOf(u));
    this.#held.requests++;
    this.#held.bytes += batch.weight - before;
    if (this.#closed) this.#spillAll();
    else if (this.#over()) this.#overflow();
    this.#schedule();
  }

  #over(): boolean {
    return this.#held.requests > this.#maxRequests || this.#held.bytes > this.#maxBytes;
  }

  /** Moves the oldest batches not being committed to the spill file until the rest fits. */
  #overflow(): void {
    let i = 0;
    while (this.#over()) {
      while (i < this.#queue.length && this.#queue[i].sealed) i++;
      if (i >= this.#queue.length) break;
      const [b] = this.#queue.splice(i, 1);
      this.#held.requests -= b.requests.length;
      this.#held.bytes -= b.weight;
      this.#toSpill.push(b);
      this.#transit.requests += b.requests.length;
      this.#transit.bytes += b.weight;
    }
    this.#writeSpill();
  }

  /** Writes what is on its way to the spill file; what cannot be written is dropped, loudly. */
  #writeSpill(): Promise<void> {
    this.#spilling = this.#spilling.then(async () => {
      const batches = this.#toSpill.splice(0);
      if (batches.length === 0) return;
      const entries = batches.map((b) => this.#entryOf(b));
      let written = 0;
      let why = "there is no spill file (KV_PATH is :memory: and SPILL_PATH is unset)";
      if (this.#spill) {
        try {
          written = await this.#spill.append(entries);
          why =
            `the spill file ${this.#spill.path} is full (SPILL_MAX_BYTES ${this.#spill.maxBytes})`;
        } catch (e) {
          why = `the spill file ${this.#spill.path} cannot be written: ${message(e)}`;
        }
      }
      let spilled = 0, lost = 0;
      const keys: Record<string, number> = {};
      batches.forEach((b, i) => {
        this.#transit.requests -= b.requests.length;
        this.#transit.bytes -= b.weight;
        if (i < written) spilled += b.requests.length;
        else {
          lost += b.requests.length;
          for (const u of b.requests) keys[u.keyId] = (keys[u.keyId] ?? 0) + 1;
        }
      });
      if (spilled > 0) this.#events.onSpilled?.(spilled);
      if (lost > 0) {
        this.#dropped += lost;
        this.#events.onDropped?.(lost, keys, why);
      }
    });
    return this.#spilling;
  }

  /** A batch as a spill entry: a sealed one keeps its place; others get one in this process's spill chain. */
  #entryOf(b: Batch): SpillEntry {
    if (b.sealed) return { chain: b.chain!.id, pos: b.pos!, requests: b.requests };
    this.#spillChain ??= new Chain(newId(), true);
    return { chain: this.#spillChain.id, pos: this.#spillChain.next(), requests: b.requests };
  }

  #schedule(): void {
    if (this.#timer !== undefined || this.#closed) return;
    const delay = this.#down ? Math.max(this.#flushMs, this.#backoff) : this.#flushMs;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush();
    }, delay);
  }

  /**
   * Writes every pending batch, then (a slice of) the spill file; resolves
   * when they are committed or set aside, or when KV failed (they are kept
   * and retried). Never rejects.
   */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    this.#flushing = this.#flushing.then(() => this.#drain());
    return this.#flushing;
  }

  /**
   * Writes what can be written, then spills the rest, for a stop: after it,
   * nothing is held in memory. New usage is no longer written.
   */
  async close(): Promise<void> {
    this.#closed = true;
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    // One last try (a single attempt when KV is known to fail), with no replay.
    this.#flushing = this.#flushing.then(() => this.#drain());
    await this.#flushing;
    this.#spillAll();
    await this.#spilling;
  }

  /** Sends every batch to the spill file; sealed ones keep their positions (replay settles them). */
  #spillAll(): void {
    if (this.#queue.length === 0) return;
    for (const b of this.#queue.splice(0)) this.#toSpill.push(b);
    this.#transit.requests += this.#held.requests;
    this.#transit.bytes += this.#held.bytes;
    this.#held = { requests: 0, bytes: 0 };
    this.#writeSpill();
  }

  async #drain(): Promise<void> {
    let failures = 0;
    while (this.#queue.length > 0) {
      const r = await this.#commitHead(this.#queue[0]);
      if (r === true) {
        failures = 0;
        continue;
      }
      this.#events.onRetry?.(r);
      if (r instanceof KvTimeout || this.#down || ++failures >= ATTEMPTS) return this.#failed(r);
      await sleep(50 * 2 ** (failures - 1));
    }
    if (this.#closed || !this.#spill || (this.#spill.size === 0 && !this.#replay)) return;
    const r = await this.#replaySome();
    if (r !== true) {
      this.#events.onRetry?.(r);
      return this.#failed(r);
    }
    if (this.#spill.size > 0 || this.#replay) this.#schedule();
  }

  /** Commits the front batch: true when it is done (written, already written, or set aside), else the error. */
  async #commitHead(b: Batch): Promise<true | unknown> {
    if (!b.sealed) {
      b.chain = this.#live;
      b.pos = this.#live.next();
    }
    const r = await this.#commitOnce(this.#inflight, b, (f) => this.#inflight = f);
    if (r !== true && !refused(r)) return r;
    this.#queue.shift();
    this.#held.requests -= b.requests.length;
    this.#held.bytes -= b.weight;
    if (r !== true) {
      const parts = this.#split(b, r);
      for (const p of parts) {
        this.#held.requests += p.requests.length;
        this.#held.bytes += p.weight;
      }
      this.#queue.unshift(...parts);
    }
    this.#recovered();
    return true;
  }

  /**
   * Commits sealed batch `b`, or waits again for the attempt already under
   * way at its position (a timed-out commit is never started twice at
   * once). True when it is in KV; else the error (a `TypeError`: KV refuses
   * it).
   */
  async #commitOnce(
    current: InFlight | undefined,
    b: Batch,
    keep: (f: InFlight | undefined) => void,
  ): Promise<true | unknown> {
    const chain = b.chain!, pos = b.pos!;
    let f = current;
    if (!f || f.chain !== chain || f.pos !== pos) {
      const muts = b.mutations();
      f = { chain, pos, t0: performance.now(), done: settled(chain.commit(this.#kv, pos, muts)) };
      keep(f);
    }
    let r: Settled<ChainResult>;
    try {
      r = await withTimeout(f.done, this.#timeoutMs, "a usage commit");
    } catch (e) {
      return e;
    }
    keep(undefined);
    if (!r.ok) return r.error;
    if (r.value === "applied") this.#events.onCommit?.(performance.now() - f.t0, b.size + 1);
    return true;
  }

  /**
   * KV refused sealed batch `b` outright: a request alone is set aside (no
   * parts); several become batches of one, at positions of their own.
   */
  #split(b: Batch, e: unknown): Batch[] {
    if (b.requests.length === 1 || !isBatchPosition(b.pos!)) {
      for (const u of b.requests) this.#events.onRejected?.(u.keyId, e);
      return [];
    }
    return b.requests.map((u, i) => {
      const p = new Batch();
      p.add(u, this.#builder, weightOf(u));
      p.chain = b.chain;
      p.pos = partPosition(b.pos!, i);
      return p;
    });
  }

  /** Replays up to {@link REPLAY_SLICE} spilled batches: true, or the error that stopped it. */
  async #replaySome(): Promise<true | unknown> {
    const spill = this.#spill!;
    const rp = this.#replay ??= { offset: 0, end: spill.size, chains: new Map(), requests: 0 };
    let n = 0;
    for await (const line of spill.read(rp.offset, rp.end, this.#now())) {
      if (!line.entry) {
        await spill.reject(line.bad ?? "");
        this.#events.onBadLine?.(rp.offset);
        rp.offset = line.next;
        continue;
      }
      const r = await this.#replayEntry(line.entry);
      if (r !== true) return r;
      rp.requests += line.entry.requests.length;
      rp.offset = line.next;
      if (++n >= REPLAY_SLICE) return true;
    }
    await spill.consume(rp.end);
    this.#replay = undefined;
    this.#events.onReplayed?.(rp.requests);
    return true;
  }

  /** Commits one spilled batch along its own chain (parts alone when KV refuses it whole). */
  async #replayEntry(e: SpillEntry): Promise<true | unknown> {
    const rp = this.#replay!;
    let chain = rp.chains.get(e.chain);
    if (!chain) {
      chain = new Chain(e.chain, false);
      rp.chains.set(e.chain, chain);
    }
    const whole = new Batch();
    for (const u of e.requests) {
      if (hasWrites(u)) whole.add(u, this.#builder, weightOf(u));
    }
    if (whole.requests.length === 0) return true; // only request-log entries, all expired since
    whole.chain = chain;
    whole.pos = e.pos;
    const keep = (f: InFlight | undefined) => rp.inflight = f;
    const r = await this.#commitOnce(rp.inflight, whole, keep);
    if (r !== true && !refused(r)) return r;
    if (r !== true) {
      for (const p of this.#split(whole, r)) {
        const pr = await this.#commitOnce(rp.inflight, p, keep);
        if (pr === true) continue;
        if (!refused(pr)) return pr;
        this.#events.onRejected?.(p.requests[0].keyId, pr);
      }
    }
    this.#recovered();
    return true;
  }

  #failed(e: unknown): void {
    if (!this.#down) {
      this.#down = { since: this.#now(), error: message(e) };
      this.#events.onDown?.(e);
    } else this.#down.error = message(e);
    this.#backoff = Math.min(MAX_BACKOFF_MS, Math.max(MIN_BACKOFF_MS, this.#backoff * 2));
    this.#schedule();
  }

  #recovered(): void {
    this.#backoff = 0;
    if (!this.#down) return;
    const since = this.#down.since;
    this.#down = undefined;
    this.#events.onUp?.(this.#now() - since);
  }

  /** Batches waiting to be written. */
  get pending(): number {
    return this.#queue.length + this.#toSpill.length;
  }

  /** What waits to reach KV, and since when KV fails. */
  get backlog(): UsageBacklog {
    return {
      requests: this.#held.requests + this.#transit.requests,
      bytes: this.#held.bytes + this.#transit.bytes,
      spillBytes: this.#spill?.size ?? 0,
      dropped: this.#dropped,
      failingSince: this.#down?.since,
      lastError: this.#down?.error,
    };
  }
}
