/**
 * A batch of finished requests' usage, committed together: each request as
 * recorded (so a batch can be split into its requests, or written to the
 * spill file compactly), their counters merged by KV key, and their
 * request-log entries gathered into rows. The mutations are built only when
 * the batch is committed: until then a request holds its compact lines, not
 * KV mutations (fewer objects survive to be promoted by the garbage
 * collector; with the shared log rows, heap 54.1 -> 51.4 KiB and GC pauses
 * 20.0 -> 16.5 us per request in the JSON profile at c=16).
 */
import type { Bucket } from "../../ops/clock.ts";
import { type Chain, CHAIN_ENTRY_BYTES, MAX_BATCH_REQUESTS } from "./chain.ts";
import { FIELDS, type UsageLine } from "./counters.ts";
import {
  type KeyRef,
  MAX_KEY_BYTES,
  MAX_MUTATIONS,
  MAX_PAYLOAD_BYTES,
  payloadBytes,
  type SetMutation,
  type UsageMutation,
  type UsageMutations,
} from "./layout.ts";
import { type LogRecord, LogRows, type RowCost } from "../request_log.ts";

/** One finished request's usage, as recorded. */
export interface RequestUsage {
  keyId: string;
  /** The day/hour bucket it is filed under (fixed when recorded). */
  bucket: Bucket;
  /** When it finished (epoch ms): its key's `last_used`. */
  at: number;
  /** Its counters per model; none for a request that only logs. */
  lines: UsageLine[];
  /** Its request-log entry, written in the same commit. */
  log?: LogRecord;
  /** Plain records of its own (request-log entries of spill files written before log rows). */
  sets: SetMutation[];
}

/** True when a request has something to write. */
export function hasWrites(u: RequestUsage): boolean {
  return u.lines.length > 0 || u.log !== undefined || u.sets.length > 0;
}

/**
 * About what one request takes in memory as recorded (and as a line of the
 * spill file). The merged counters and log rows a batch adds for it are
 * counted by the batch.
 */
export function weightOf(u: RequestUsage): number {
  let n = 64 + u.keyId.length;
  for (const l of u.lines) n += l.model.length + l.provider.length + 120;
  if (u.log) n += 2 * (u.log.text.length + u.log.id.length) + 64;
  for (const s of u.sets) n += s.bytes + (s.valueBytes - 16) / 3 + 16;
  return Math.ceil(n);
}

/** What one merged mutation or log row holds in memory beyond its key and value: its object and id. */
const ENTRY_OVERHEAD = 96;
/** The encoded size of a `Deno.KvU64` value. */
const U64_BYTES = 8;

/** A counter merged over the batch's requests (a number until it is committed). */
interface Counter {
  ref: KeyRef;
  value: number;
  op: "sum" | "max";
}

/** Requests to be committed together: counters merged by key, log entries gathered into rows. */
export class Batch {
  readonly requests: RequestUsage[] = [];
  #counters = new Map<string, Counter>();
  #sets = new Map<string, SetMutation>();
  #log = new LogRows();
  /** Sum of key sizes over its mutations. */
  bytes = CHAIN_ENTRY_BYTES;
  /** Sum of key and value sizes over its mutations. */
  payload = CHAIN_ENTRY_BYTES;
  /** About the memory it holds: its requests ({@link weightOf}), merged counters and log rows. */
  weight = 0;
  /** The chain and position it commits at, once sealed; a sealed batch never changes. */
  chain?: Chain;
  pos?: number;

  /** Mutations its commit holds (the chain's entry aside). */
  get size(): number {
    return this.#counters.size + this.#sets.size + this.#log.size;
  }

  /**
   * True when adding `u` keeps the commit within KV's limits (the chain's
   * entry included). A key `u` would add twice (a key total of two models)
   * is counted twice: an upper bound.
   */
  fits(u: RequestUsage, builder: UsageMutations): boolean {
    if (this.requests.length >= MAX_BATCH_REQUESTS) return false;
    let added = 0, addedBytes = 0, addedPayload = 0;
    const counter = (k: KeyRef) => {
      if (this.#counters.has(k.id)) return;
      added++;
      addedBytes += k.bytes;
      addedPayload += k.bytes + U64_BYTES;
    };
    for (const l of u.lines) {
      const keys = builder.keysFor(u.keyId, u.bucket, l.model, l.provider);
      for (let f = 0; f < FIELDS.length; f++) {
        if (l.counters[FIELDS[f]] > 0) { for (const k of keys[f]) counter(k); }
      }
    }
    if (u.lines.length > 0) counter(builder.lastUsedKey(u.keyId));
    for (const m of u.sets) {
      if (!this.#sets.has(m.id)) {
        added++;
        addedBytes += m.bytes;
      }
      addedPayload += payloadBytes(m);
    }
    if (u.log) {
      const c: RowCost = this.#log.cost(u.log, { rows: 0, keyBytes: 0, payload: 0 });
      added += c.rows;
      addedBytes += c.keyBytes;
      addedPayload += c.payload;
    }
    // One mutation more: the chain's entry.
    return this.size + added + 1 <= MAX_MUTATIONS &&
      this.bytes + addedBytes <= MAX_KEY_BYTES &&
      this.payload + addedPayload <= MAX_PAYLOAD_BYTES;
  }

  /** Adds a request (kept as it is: its counters are merged, its log entry's text is shared). */
  add(u: RequestUsage, builder: UsageMutations, weight: number): void {
    this.requests.push(u);
    this.weight += weight;
    for (const l of u.lines) {
      const keys = builder.keysFor(u.keyId, u.bucket, l.model, l.provider);
      for (let f = 0; f < FIELDS.length; f++) {
        const n = l.counters[FIELDS[f]];
        if (n > 0) { for (const k of keys[f]) this.#merge(k, n, "sum"); }
      }
    }
    if (u.lines.length > 0) this.#merge(builder.lastUsedKey(u.keyId), u.at, "max");
    for (const m of u.sets) {
      const prev = this.#sets.get(m.id);
      if (!prev) {
        this.bytes += m.bytes;
        this.payload += payloadBytes(m);
        this.weight += m.bytes + ENTRY_OVERHEAD;
      } else {
        // The same key set twice: the later value wins, as two commits would leave it.
        this.payload += payloadBytes(m) - payloadBytes(prev);
      }
      this.#sets.set(m.id, m);
    }
    if (u.log) {
      const c = this.#log.cost(u.log, { rows: 0, keyBytes: 0, payload: 0 });
      this.#log.add(u.log);
      this.bytes += c.keyBytes;
      this.payload += c.payload;
      this.weight += c.keyBytes + c.rows * ENTRY_OVERHEAD;
    }
  }

  #merge(k: KeyRef, n: number, op: "sum" | "max"): void {
    const prev = this.#counters.get(k.id);
    if (!prev) {
      this.#counters.set(k.id, { ref: k, value: n, op });
      this.bytes += k.bytes;
      this.payload += k.bytes + U64_BYTES;
      this.weight += k.bytes + ENTRY_OVERHEAD;
    } else if (op === "sum") prev.value += n;
    else if (n > prev.value) prev.value = n;
  }

  /** The commit's mutations, built now (the chain's entry aside). */
  mutations(): UsageMutation[] {
    const out: UsageMutation[] = [];
    for (const c of this.#counters.values()) {
      out.push({ ...c.ref, value: BigInt(c.value), op: c.op });
    }
    for (const s of this.#sets.values()) out.push(s);
    for (const r of this.#log.mutations()) out.push(r);
    return out;
  }

  /** True once it has a chain position (it is being, or has been, committed). */
  get sealed(): boolean {
    return this.pos !== undefined;
  }
}
