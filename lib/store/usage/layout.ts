/**
 * Where usage lives in Deno KV, and the one builder of the mutations that
 * add to it (used by the live writer and by the Luna import alike). Every
 * value is a `Deno.KvU64` changed only by atomic `sum` (and `max` for the
 * last use), never read-modify-write, so concurrent writers never lose
 * counts.
 *
 * - `["usage","k",keyId,day,hour,model,provider,field]`: by key, then time
 * - `["usage","t",day,hour,keyId,model,provider,field]`: by time, then key
 * - `["usage","key",keyId,field]`: running totals per key, plus `last_used` (ms)
 *
 * A request's commit may also carry `set` mutations for other records of
 * that request (the request log), so they are written in the same batched
 * commit as its usage, never in a commit of their own.
 */
import type { Bucket } from "../../ops/clock.ts";
import { type Field, FIELDS, type UsageLine } from "./counters.ts";

/** A counter mutation: atomic `sum` (or `max` for the last use) of a `Deno.KvU64`. */
export interface CounterMutation {
  /** The KV key's identity, for merging. */
  id: string;
  key: Deno.KvKey;
  /** An upper bound of the key's encoded size. */
  bytes: number;
  value: bigint;
  op: "sum" | "max";
}

/** A plain `set` of a value, expiring after `expireIn` ms when given. */
export interface SetMutation {
  id: string;
  key: Deno.KvKey;
  bytes: number;
  /** An upper bound of the value's encoded size. */
  valueBytes: number;
  value: unknown;
  op: "set";
  expireIn?: number;
}

/** One mutation of a request's commit. */
export type UsageMutation = CounterMutation | SetMutation;

/** Deno KV allows 1000 mutations per atomic commit; keep a margin. */
export const MAX_MUTATIONS = 900;
/** Deno KV allows 80 KiB of keys per atomic commit; keep a margin. */
export const MAX_KEY_BYTES = 64 * 1024;
/** Deno KV allows 800 KiB of keys and values per atomic commit; keep a margin. */
export const MAX_PAYLOAD_BYTES = 640 * 1024;
/** The encoded size of a `Deno.KvU64` value. */
const U64_BYTES = 8;

/** An upper bound of a mutation's keys and values in KV's per-commit payload limit. */
export function payloadBytes(m: UsageMutation): number {
  return m.bytes + (m.op === "set" ? m.valueBytes : U64_BYTES);
}

/**
 * A `set` mutation of a plain JSON-like value (strings, numbers, booleans,
 * null, arrays, objects). Its size bound: V8 serialization stores a string
 * in at most two bytes per UTF-16 unit and a number in at most nine bytes,
 * both within three times the value's JSON text, plus a small header.
 */
export function setMutation(key: Deno.KvKey, value: unknown, expireIn?: number): SetMutation {
  const ref = keyRef(key);
  return {
    ...ref,
    valueBytes: 3 * JSON.stringify(value).length + 16,
    value,
    op: "set",
    expireIn,
  };
}

/** An upper bound of a key's encoded size: the UTF-8 length of its JSON id (never shorter). */
function keyBytes(id: string): number {
  let n = id.length;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c >= 0x80) n += c >= 0x800 ? 2 : 1;
  }
  return n;
}

/** A built KV key: its identity for merging, the key, and an upper bound of its encoded size. */
export interface KeyRef {
  id: string;
  key: Deno.KvKey;
  bytes: number;
}

function keyRef(key: Deno.KvKey): KeyRef {
  const id = JSON.stringify(key);
  return { id, key, bytes: keyBytes(id) };
}

/** The three keys one counter of a bucket is summed into. */
function fieldKeys(keyId: string, b: Bucket, model: string, provider: string, f: Field) {
  return [
    ["usage", "k", keyId, b.day, b.hour, model, provider, f],
    ["usage", "t", b.day, b.hour, keyId, model, provider, f],
    ["usage", "key", keyId, f],
  ];
}

/** Most buckets whose keys a builder keeps built. */
const CACHE = 10_000;

/**
 * Builds usage mutations. The keys of a bucket are built once and reused
 * (they repeat for every request of a key and model within an hour).
 */
export class UsageMutations {
  #keys = new Map<string, KeyRef[][]>();
  #lastUsed = new Map<string, KeyRef>();

  /** The mutations that add one request's lines to `bucket` and raise `last_used` to `at`. */
  build(keyId: string, bucket: Bucket, lines: UsageLine[], at?: number): CounterMutation[] {
    const out: CounterMutation[] = [];
    for (const l of lines) {
      const keys = this.keysFor(keyId, bucket, l.model, l.provider);
      for (let f = 0; f < FIELDS.length; f++) {
        const n = l.counters[FIELDS[f]];
        if (n <= 0) continue;
        const value = BigInt(n);
        for (const k of keys[f]) out.push({ ...k, value, op: "sum" });
      }
    }
    if (at !== undefined) out.push({ ...this.lastUsedKey(keyId), value: BigInt(at), op: "max" });
    return out;
  }

  /** The keys of one bucket's counters: per field (in {@link FIELDS} order), the three keys it is summed into. */
  keysFor(keyId: string, b: Bucket, model: string, provider: string): KeyRef[][] {
    const tid = JSON.stringify([keyId, b.day, b.hour, model, provider]);
    let keys = this.#keys.get(tid);
    if (!keys) {
      keys = FIELDS.map((f) => fieldKeys(keyId, b, model, provider, f).map(keyRef));
      if (this.#keys.size >= CACHE) this.#keys.clear();
      this.#keys.set(tid, keys);
    }
    return keys;
  }

  /** The key of `keyId`'s last use. */
  lastUsedKey(keyId: string): KeyRef {
    let k = this.#lastUsed.get(keyId);
    if (!k) {
      k = keyRef(["usage", "key", keyId, "last_used"]);
      if (this.#lastUsed.size >= CACHE) this.#lastUsed.clear();
      this.#lastUsed.set(keyId, k);
    }
    return k;
  }
}

/** Adds mutations to an atomic operation. */
export function applyMutations(
  op: Deno.AtomicOperation,
  muts: Iterable<UsageMutation>,
): Deno.AtomicOperation {
  for (const m of muts) {
    if (m.op === "set") {
      op.set(m.key, m.value, m.expireIn === undefined ? undefined : { expireIn: m.expireIn });
    } else if (m.op === "sum") op.sum(m.key, m.value);
    else op.max(m.key, m.value);
  }
  return op;
}

/** A stored bucket's coordinates, parsed back from its key. */
export interface BucketCoordinates {
  keyId: string;
  day: string;
  hour: string;
  model: string;
  provider: string;
}

/** The two bucket indexes: by key then time, and by time then key. */
export const INDEXES = {
  byKey: {
    prefix: (keyId: string): Deno.KvKey => ["usage", "k", keyId],
    parse: (k: Deno.KvKey): BucketCoordinates => ({
      keyId: k[2] as string,
      day: k[3] as string,
      hour: k[4] as string,
      model: k[5] as string,
      provider: k[6] as string,
    }),
  },
  byTime: {
    prefix: (): Deno.KvKey => ["usage", "t"],
    parse: (k: Deno.KvKey): BucketCoordinates => ({
      day: k[2] as string,
      hour: k[3] as string,
      keyId: k[4] as string,
      model: k[5] as string,
      provider: k[6] as string,
    }),
  },
} as const;

/** The prefix of the running totals (of one key, or of all keys). */
export function totalsPrefix(keyId?: string): Deno.KvKey {
  return keyId === undefined ? ["usage", "key"] : ["usage", "key", keyId];
}
