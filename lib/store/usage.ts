/**
 * The usage store: per key x day x hour x model (x provider) counters in
 * Deno KV, written only with atomic `sum` (and `max` for last use), never
 * read-modify-write, so concurrent requests and gateways never lose counts.
 *
 * Finished requests are coalesced for a short window (`USAGE_FLUSH_MS`) and
 * committed together; one request's mutations always land in one atomic
 * commit. `flush()` writes everything pending (reports call it first, and
 * shutdown awaits it).
 *
 * KV layout (all values `Deno.KvU64`):
 * - `["usage","k",keyId,day,hour,model,provider,field]`: by key, then time
 * - `["usage","t",day,hour,keyId,model,provider,field]`: by time, then key
 * - `["usage","key",keyId,field]`: running totals per key, plus `last_used` (ms)
 */
import type { Bucket, BucketClock } from "../ops/clock.ts";
import type { Tokens } from "../metering/tokens.ts";

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

/** Counters for one request's tokens. */
export function countersOf(
  tokens: Tokens,
  requests: number,
  failed: boolean,
  incomplete: boolean,
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
  };
}

/** Usage to add to one bucket. */
export interface UsageEntry {
  keyId: string;
  bucket: Bucket;
  model: string;
  provider: string;
  counters: Counters;
}

/** One stored bucket, as read back. */
export interface UsageRow {
  keyId: string;
  day: string;
  hour: string;
  model: string;
  provider: string;
  counters: Counters;
}

type Mutation = { key: Deno.KvKey; value: bigint; op: "sum" | "max" };

/** The three KV keys one counter of a bucket is summed into (the layout in the module doc). */
function fieldKeys(
  keyId: string,
  b: Bucket,
  model: string,
  provider: string,
  f: Field,
): Deno.KvKey[] {
  return [
    ["usage", "k", keyId, b.day, b.hour, model, provider, f],
    ["usage", "t", b.day, b.hour, keyId, model, provider, f],
    ["usage", "key", keyId, f],
  ];
}

/** The KV key of a key's last use (a `max` mutation). */
function lastUsedKey(keyId: string): Deno.KvKey {
  return ["usage", "key", keyId, "last_used"];
}

/** The KV mutations that add `entries` (and optionally raise `last_used`). */
export function usageMutations(entries: UsageEntry[], lastUsed?: Map<string, number>): Mutation[] {
  const out: Mutation[] = [];
  for (const e of entries) {
    for (const f of FIELDS) {
      const n = e.counters[f];
      if (n <= 0) continue;
      const value = BigInt(n);
      for (const key of fieldKeys(e.keyId, e.bucket, e.model, e.provider, f)) {
        out.push({ key, value, op: "sum" });
      }
    }
  }
  for (const [keyId, ms] of lastUsed ?? []) {
    out.push({ key: lastUsedKey(keyId), value: BigInt(ms), op: "max" });
  }
  return out;
}

/** Adds the mutations to an atomic operation. */
export function applyMutations(op: Deno.AtomicOperation, muts: Mutation[]): Deno.AtomicOperation {
  for (const m of muts) {
    if (m.op === "sum") op.sum(m.key, m.value);
    else op.max(m.key, m.value);
  }
  return op;
}

/** Deno KV allows 1000 mutations per atomic commit; keep a margin. */
export const MAX_MUTATIONS = 900;
/** Deno KV allows 80 KiB of keys per atomic commit; keep a margin. */
export const MAX_KEY_BYTES = 64 * 1024;

/** An upper bound of a usage key's encoded size: the UTF-8 length of its JSON (never shorter). */
export function keyBytes(id: string): number {
  let n = id.length;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c >= 0x80) n += c >= 0x800 ? 2 : 1;
  }
  return n;
}

/** A usage KV key with its map id and size, cached per bucket. */
interface KeyRef {
  id: string;
  key: Deno.KvKey;
  bytes: number;
}

/** One mutation of a request on its way into a batch. */
interface Pending extends KeyRef {
  value: bigint;
  op: "sum" | "max";
}

function keyRef(key: Deno.KvKey): KeyRef {
  const id = JSON.stringify(key);
  return { id, key, bytes: keyBytes(id) };
}

interface Batch {
  muts: Map<string, Mutation>;
  /** Sum of {@link keyBytes} over `muts`. */
  bytes: number;
}

/** Per-key running totals as read back. */
export interface KeyTotals {
  counters: Counters;
  lastUsed: number | null;
}

/** Writes and reads usage counters. */
export class UsageStore {
  #kv: Deno.Kv;
  #clock: BucketClock;
  #flushMs: number;
  #batches: Batch[] = [];
  #timer?: ReturnType<typeof setTimeout>;
  #flushing: Promise<void> = Promise.resolve();
  #onError: (e: unknown) => void;
  #keyCache = new Map<string, KeyRef[][]>();
  #lastUsedCache = new Map<string, KeyRef>();
  /** Latency of the last commits, for metrics (ms). */
  onCommit?: (ms: number, mutations: number) => void;

  constructor(
    kv: Deno.Kv,
    clock: BucketClock,
    flushMs: number,
    onError: (e: unknown) => void = () => {},
  ) {
    this.#kv = kv;
    this.#clock = clock;
    this.#flushMs = flushMs;
    this.#onError = onError;
  }

  /**
   * The three KV keys (by key, by time, key totals) of each field for one
   * bucket, with their ids: built once per bucket, not per request.
   */
  #keysFor(keyId: string, b: Bucket, model: string, provider: string): KeyRef[][] {
    const tid = JSON.stringify([keyId, b.day, b.hour, model, provider]);
    let keys = this.#keyCache.get(tid);
    if (!keys) {
      keys = FIELDS.map((f) => fieldKeys(keyId, b, model, provider, f).map(keyRef));
      if (this.#keyCache.size >= 10_000) this.#keyCache.clear();
      this.#keyCache.set(tid, keys);
    }
    return keys;
  }

  #lastUsedKey(keyId: string): KeyRef {
    let k = this.#lastUsedCache.get(keyId);
    if (!k) {
      k = keyRef(lastUsedKey(keyId));
      if (this.#lastUsedCache.size >= 10_000) this.#lastUsedCache.clear();
      this.#lastUsedCache.set(keyId, k);
    }
    return k;
  }

  /** The bucket clock (time zone) this store files usage under. */
  get bucketClock(): BucketClock {
    return this.#clock;
  }

  /**
   * Records one finished request's usage (one or more models) at instant
   * `at`. Returns at once; the write happens within the flush window.
   */
  record(keyId: string, at: number, rows: Omit<UsageEntry, "keyId" | "bucket">[]): void {
    const bucket = this.#clock.bucket(at);
    const muts: Pending[] = [];
    for (const r of rows) {
      const keys = this.#keysFor(keyId, bucket, r.model, r.provider);
      for (let f = 0; f < FIELDS.length; f++) {
        const n = r.counters[FIELDS[f]];
        if (n <= 0) continue;
        const value = BigInt(n);
        for (const k of keys[f]) muts.push({ ...k, value, op: "sum" });
      }
    }
    muts.push({ ...this.#lastUsedKey(keyId), value: BigInt(at), op: "max" });
    let batch: Batch | undefined = this.#batches[this.#batches.length - 1];
    if (batch) {
      let added = 0, addedBytes = 0;
      for (const m of muts) {
        if (!batch.muts.has(m.id)) {
          added++;
          addedBytes += m.bytes;
        }
      }
      if (batch.muts.size + added > MAX_MUTATIONS || batch.bytes + addedBytes > MAX_KEY_BYTES) {
        batch = undefined;
      }
    }
    if (!batch) {
      batch = { muts: new Map(), bytes: 0 };
      this.#batches.push(batch);
    }
    for (const m of muts) {
      const prev = batch.muts.get(m.id);
      if (!prev) {
        batch.muts.set(m.id, { key: m.key, value: m.value, op: m.op });
        batch.bytes += m.bytes;
      } else if (m.op === "sum") prev.value += m.value;
      else if (m.value > prev.value) prev.value = m.value;
    }
    this.#schedule();
  }

  #schedule(): void {
    if (this.#timer !== undefined) return;
    this.#timer = setTimeout(() => {
      this.#timer = undefined;
      this.flush().catch(this.#onError);
    }, this.#flushMs);
  }

  /** Writes every pending batch; resolves when they are committed. */
  flush(): Promise<void> {
    if (this.#timer !== undefined) {
      clearTimeout(this.#timer);
      this.#timer = undefined;
    }
    const batches = this.#batches;
    this.#batches = [];
    this.#flushing = this.#flushing.then(() => this.#commit(batches));
    return this.#flushing;
  }

  async #commit(batches: Batch[]): Promise<void> {
    for (let i = 0; i < batches.length; i++) {
      const muts = [...batches[i].muts.values()];
      for (let attempt = 0;; attempt++) {
        const t0 = performance.now();
        try {
          const res = await applyMutations(this.#kv.atomic(), muts).commit();
          if (!res.ok) throw new Error("usage commit was refused");
          this.onCommit?.(performance.now() - t0, muts.length);
          break;
        } catch (e) {
          this.#onError(e);
          if (attempt >= 4) {
            // Keep what could not be written for the next flush instead of losing it.
            this.#batches.unshift(...batches.slice(i));
            this.#schedule();
            return;
          }
          await new Promise((r) => setTimeout(r, 50 * 2 ** attempt));
        }
      }
    }
  }

  /** Batches waiting to be written. */
  get pending(): number {
    return this.#batches.length;
  }

  /** True when nothing is waiting to be written. */
  get idle(): boolean {
    return this.#batches.length === 0;
  }

  /** Rows for one key, optionally limited to days `from`..`to` (inclusive). */
  async byKey(keyId: string, from?: string, to?: string): Promise<UsageRow[]> {
    await this.flush();
    const prefix = ["usage", "k", keyId];
    return await this.#rows(prefix, from, to, (k) => ({
      keyId,
      day: k[3] as string,
      hour: k[4] as string,
      model: k[5] as string,
      provider: k[6] as string,
    }));
  }

  /** Rows for all keys on days `from`..`to` (inclusive; both optional). */
  async byTime(from?: string, to?: string): Promise<UsageRow[]> {
    await this.flush();
    return await this.#rows(["usage", "t"], from, to, (k) => ({
      day: k[2] as string,
      hour: k[3] as string,
      keyId: k[4] as string,
      model: k[5] as string,
      provider: k[6] as string,
    }));
  }

  async #rows(
    prefix: Deno.KvKey,
    from: string | undefined,
    to: string | undefined,
    parse: (k: Deno.KvKey) => Omit<UsageRow, "counters">,
  ): Promise<UsageRow[]> {
    const selector: Deno.KvListSelector = from || to
      ? {
        start: [...prefix, from ?? ""],
        end: to ? [...prefix, to + "\u0000"] : [...prefix, "\uffff"],
      }
      : { prefix };
    const rows = new Map<string, UsageRow>();
    for await (const e of this.#kv.list<Deno.KvU64>(selector, { batchSize: 1000 })) {
      const field = e.key[e.key.length - 1] as Field;
      const id = JSON.stringify(e.key.slice(0, -1));
      let row = rows.get(id);
      if (!row) {
        row = { ...parse(e.key), counters: zeroCounters() };
        rows.set(id, row);
      }
      if (field in row.counters) row.counters[field] += Number(e.value.value);
    }
    return [...rows.values()];
  }

  /** Running totals of every key that has usage. */
  async totals(): Promise<Map<string, KeyTotals>> {
    await this.flush();
    const out = new Map<string, KeyTotals>();
    for await (const e of this.#kv.list<Deno.KvU64>({ prefix: ["usage", "key"] })) {
      const keyId = e.key[2] as string;
      const field = e.key[3] as string;
      let t = out.get(keyId);
      if (!t) {
        t = { counters: zeroCounters(), lastUsed: null };
        out.set(keyId, t);
      }
      if (field === "last_used") t.lastUsed = Number(e.value.value);
      else if (field in t.counters) t.counters[field as Field] += Number(e.value.value);
    }
    return out;
  }

  /** Running totals of one key. */
  async keyTotals(keyId: string): Promise<KeyTotals> {
    await this.flush();
    const t: KeyTotals = { counters: zeroCounters(), lastUsed: null };
    for await (const e of this.#kv.list<Deno.KvU64>({ prefix: ["usage", "key", keyId] })) {
      const field = e.key[3] as string;
      if (field === "last_used") t.lastUsed = Number(e.value.value);
      else if (field in t.counters) t.counters[field as Field] += Number(e.value.value);
    }
    return t;
  }
}
