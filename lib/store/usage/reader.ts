/**
 * Reading usage back: bucket rows by key or by time (days inclusive), and
 * the running totals per key. Reads first wait for this process's pending
 * writes, so a report always includes the requests that finished before it.
 */
import { type Counters, type Field, zeroCounters } from "./counters.ts";
import { type BucketCoordinates, INDEXES, totalsPrefix } from "./layout.ts";

/** One stored bucket, as read back. */
export interface UsageRow extends BucketCoordinates {
  counters: Counters;
}

/** Per-key running totals as read back. */
export interface KeyTotals {
  counters: Counters;
  lastUsed: number | null;
}

/** Reads usage counters. */
export class UsageReader {
  #kv: Deno.Kv;
  #settle: () => Promise<void>;

  /** `settle` resolves once writes pending in this process are committed. */
  constructor(kv: Deno.Kv, settle: () => Promise<void> = () => Promise.resolve()) {
    this.#kv = kv;
    this.#settle = settle;
  }

  /** Rows for one key, optionally limited to days `from`..`to` (inclusive). */
  async byKey(keyId: string, from?: string, to?: string): Promise<UsageRow[]> {
    await this.#settle();
    return await this.#rows(INDEXES.byKey.prefix(keyId), from, to, INDEXES.byKey.parse);
  }

  /** Rows for all keys on days `from`..`to` (inclusive; both optional). */
  async byTime(from?: string, to?: string): Promise<UsageRow[]> {
    await this.#settle();
    return await this.#rows(INDEXES.byTime.prefix(), from, to, INDEXES.byTime.parse);
  }

  async #rows(
    prefix: Deno.KvKey,
    from: string | undefined,
    to: string | undefined,
    parse: (k: Deno.KvKey) => BucketCoordinates,
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
    await this.#settle();
    const out = new Map<string, KeyTotals>();
    for await (const e of this.#kv.list<Deno.KvU64>({ prefix: totalsPrefix() })) {
      const keyId = e.key[2] as string;
      let t = out.get(keyId);
      if (!t) {
        t = { counters: zeroCounters(), lastUsed: null };
        out.set(keyId, t);
      }
      addTotal(t, e.key[3] as string, e.value.value);
    }
    return out;
  }

  /** Running totals of one key. */
  async keyTotals(keyId: string): Promise<KeyTotals> {
    await this.#settle();
    const t: KeyTotals = { counters: zeroCounters(), lastUsed: null };
    for await (const e of this.#kv.list<Deno.KvU64>({ prefix: totalsPrefix(keyId) })) {
      addTotal(t, e.key[3] as string, e.value.value);
    }
    return t;
  }
}

function addTotal(t: KeyTotals, field: string, value: bigint): void {
  if (field === "last_used") t.lastUsed = Number(value);
  else if (field in t.counters) t.counters[field as Field] += Number(value);
}
