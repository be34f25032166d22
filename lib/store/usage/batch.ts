/**
 * A batch of finished requests' usage, committed together: each request as
 * recorded (so a batch can be split into its requests, or written to the
 * spill file compactly) and their mutations merged by KV key.
 */
import type { Bucket } from "../../ops/clock.ts";
import { type Chain, CHAIN_ENTRY_BYTES, MAX_BATCH_REQUESTS } from "./chain.ts";
import type { UsageLine } from "./counters.ts";
import {
  MAX_KEY_BYTES,
  MAX_MUTATIONS,
  MAX_PAYLOAD_BYTES,
  payloadBytes,
  type SetMutation,
  type UsageMutation,
  type UsageMutations,
} from "./layout.ts";

/** One finished request's usage, as recorded. */
export interface RequestUsage {
  keyId: string;
  /** The day/hour bucket it is filed under (fixed when recorded). */
  bucket: Bucket;
  /** When it finished (epoch ms): its key's `last_used`. */
  at: number;
  /** Its counters per model; none for a request that only logs. */
  lines: UsageLine[];
  /** Its other records (the request log), written in the same commit. */
  sets: SetMutation[];
}

/** The mutations of one request. */
export function mutationsOf(u: RequestUsage, builder: UsageMutations): UsageMutation[] {
  const muts: UsageMutation[] = u.lines.length > 0
    ? builder.build(u.keyId, u.bucket, u.lines, u.at)
    : [];
  for (const s of u.sets) muts.push(s);
  return muts;
}

/**
 * About what one request takes in memory as recorded (and as a line of the
 * spill file). Cheap: the request-log values were sized when their
 * mutations were made. The merged mutations a batch adds for it are counted
 * by the batch.
 */
export function weightOf(u: RequestUsage): number {
  let n = 64 + u.keyId.length;
  for (const l of u.lines) n += l.model.length + l.provider.length + 120;
  for (const s of u.sets) n += s.bytes + (s.valueBytes - 16) / 3 + 16;
  return Math.ceil(n);
}

/** What one merged mutation holds in memory beyond its key and value: its object and id. */
const ENTRY_OVERHEAD = 96;

/** Requests to be committed together, their mutations merged by key. */
export class Batch {
  readonly merged = new Map<string, UsageMutation>();
  readonly requests: RequestUsage[] = [];
  /** Sum of key sizes over `merged`. */
  bytes = CHAIN_ENTRY_BYTES;
  /** Sum of key and value sizes over `merged`. */
  payload = CHAIN_ENTRY_BYTES;
  /** About the memory it holds: its requests ({@link weightOf}) and its merged mutations. */
  weight = 0;
  /** The chain and position it commits at, once sealed; a sealed batch never changes. */
  chain?: Chain;
  pos?: number;

  /** True when adding `muts` keeps the commit within KV's limits (the chain's entry included). */
  fits(muts: UsageMutation[]): boolean {
    if (this.requests.length >= MAX_BATCH_REQUESTS) return false;
    let added = 0, addedBytes = 0, addedPayload = 0;
    for (const m of muts) {
      const prev = this.merged.get(m.id);
      if (!prev) {
        added++;
        addedBytes += m.bytes;
        addedPayload += payloadBytes(m);
      } else if (m.op === "set") addedPayload += payloadBytes(m);
    }
    // One mutation more: the chain's entry.
    return this.merged.size + added + 1 <= MAX_MUTATIONS &&
      this.bytes + addedBytes <= MAX_KEY_BYTES &&
      this.payload + addedPayload <= MAX_PAYLOAD_BYTES;
  }

  /** Adds a request with its mutations (`muts` are copied, never kept). */
  add(u: RequestUsage, muts: UsageMutation[], weight: number): void {
    this.requests.push(u);
    this.weight += weight;
    for (const m of muts) {
      const prev = this.merged.get(m.id);
      if (!prev) {
        this.merged.set(m.id, { ...m });
        this.bytes += m.bytes;
        this.payload += payloadBytes(m);
        this.weight += m.bytes + ENTRY_OVERHEAD;
      } else if (m.op === "set" || prev.op === "set") {
        // The same key set twice: the later value wins, as two commits would leave it.
        this.payload += payloadBytes(m) - payloadBytes(prev);
        this.merged.set(m.id, { ...m });
      } else if (m.op === "sum") prev.value += m.value;
      else if (m.value > prev.value) prev.value = m.value;
    }
  }

  /** True once it has a chain position (it is being, or has been, committed). */
  get sealed(): boolean {
    return this.pos !== undefined;
  }
}
