/**
 * Usage commits that count once, however often they are retried.
 *
 * Usage is written with `sum` mutations, which are not idempotent, and a
 * commit whose answer was lost (a timeout, a dropped connection to a remote
 * KV, a process stopped while it waited) may or may not have been applied.
 * Each writer therefore commits along a chain: the KV entry
 * `["usage_chain", id]` holds the position of the last batch applied, and
 * every batch's commit checks that entry's versionstamp and sets it to the
 * batch's position, in the same atomic commit as the batch. A retry carries
 * the same check, so at most one of the attempts can be applied; when the
 * check fails, the entry says whether this batch is already in (its position
 * or a later one) and the batch is done.
 *
 * Positions only grow, and a batch is committed only once every earlier
 * position of its chain has been settled, so "the chain is at or past this
 * position" means "this batch was applied". A batch is `seq * PARTS + PARTS
 * - 1`; after KV refuses a batch outright, its requests are committed alone
 * at `seq * PARTS + 1 + i`, below the whole batch's position and above every
 * earlier batch.
 *
 * One small entry per chain (one per process, one per process that spilled
 * usage) replaces a marker per batch: the cost is one check and one `set`
 * per commit, and nothing accumulates in KV.
 */
import { applyMutations, type UsageMutation } from "./layout.ts";

/** Positions per batch: the whole batch and up to `PARTS - 2` requests alone. */
const PARTS = 16_384;
/** Most requests one batch may hold (each may need a position of its own). */
export const MAX_BATCH_REQUESTS = PARTS - 2;
/** How long a chain entry outlives its last commit (a spill file replayed later may double count). */
const CHAIN_TTL_MS = 90 * 86_400_000;
/** Encoded size bound of a chain entry's key (`["usage_chain", <26-char ULID>]`) and value. */
export const CHAIN_ENTRY_BYTES = 64;

/** The position of batch number `seq` (from 1). */
function batchPosition(seq: number): number {
  return seq * PARTS + PARTS - 1;
}

/** The position of request `i` (from 0) of the batch at `pos`, committed alone. */
export function partPosition(pos: number, i: number): number {
  return Math.floor(pos / PARTS) * PARTS + 1 + i;
}

/** True for a whole batch's position (not one request's). */
export function isBatchPosition(pos: number): boolean {
  return pos % PARTS === PARTS - 1;
}

/** The KV key of chain `id`. */
function chainKey(id: string): Deno.KvKey {
  return ["usage_chain", id];
}

/** How a chained commit ended. */
export type ChainResult = "applied" | "already";

/** One chain: its id and, once known, its entry as last read or written. */
export class Chain {
  readonly id: string;
  #seq = 0;
  #cursor?: { pos: number; versionstamp: string | null };

  /** A chain; `fresh` when it is new (its entry cannot exist yet, so no read is needed). */
  constructor(id: string, fresh: boolean) {
    this.id = id;
    if (fresh) this.#cursor = { pos: 0, versionstamp: null };
  }

  /** The position of this chain's next batch. */
  next(): number {
    return batchPosition(++this.#seq);
  }

  /**
   * Commits `muts` at `pos`, once: "applied" now, or "already" by an earlier
   * attempt. Throws what KV throws (a `TypeError` when it refuses the
   * commit; anything else leaves the outcome unknown: commit again later).
   */
  async commit(kv: Deno.Kv, pos: number, muts: UsageMutation[]): Promise<ChainResult> {
    const key = chainKey(this.id);
    for (let attempt = 0; attempt < 3; attempt++) {
      if (!this.#cursor) {
        const e = await kv.get<number>(key);
        this.#cursor = { pos: e.value ?? 0, versionstamp: e.versionstamp };
      }
      if (this.#cursor.pos >= pos) return "already";
      // Step by step, not chained: a wrapped AtomicOperation may return its target.
      const op = kv.atomic();
      op.check({ key, versionstamp: this.#cursor.versionstamp });
      op.set(key, pos, { expireIn: CHAIN_TTL_MS });
      applyMutations(op, muts);
      const res = await op.commit();
      if (res.ok) {
        this.#cursor = { pos, versionstamp: res.versionstamp };
        return "applied";
      }
      // The entry moved: an earlier attempt of this batch was applied after all. Read it.
      this.#cursor = undefined;
    }
    throw new Error(`usage chain ${this.id} changed under its only writer`);
  }
}
