/**
 * The request log: one entry per request in Deno KV, kept for
 * `REQUEST_LOG_DAYS` through KV's `expireIn`. It holds figures only (time,
 * key, model, provider, status, tokens, cost, timings), never any prompt or
 * completion text.
 *
 * Entries are written by the usage writer in the batched commit of their
 * requests, several to a row: a commit's entries arriving within the same
 * second ({@link slotOf}: the first 8 characters of the request's ULID, 1024
 * ms) share a row, as a JSON array of {@link EntryTuple}s.
 *
 * - `["reqlog_rows", slot, firstId]`: every key's entries of that second;
 * - `["reqlog_key_rows", keyId, slot, firstId]`: one key's, so its requests
 *   are listed without scanning everyone's.
 *
 * (A row per entry cost two KV rows per request; sharing rows measured 581
 * -> 397 ms of KV commit time in a 10 s JSON profile at c=16.) Entries
 * written before, one per row, are still read:
 *
 * - `["reqlog", id]`: the entry as an object;
 * - `["reqlog_key", keyId, id]`: `null`, the key's index.
 */
import { encodeTime } from "ulid";
import type { SetMutation } from "./usage/layout.ts";

/** One logged request as stored (its id is in the KV key). */
export interface RequestLogEntry {
  /** Epoch ms when the request arrived. */
  time: number;
  key_id: string;
  /** The model the client asked for. */
  model: string;
  /** The provider that served (or last failed) it; null when none was tried. */
  provider: string | null;
  endpoint: string;
  stream: boolean;
  /** The HTTP status the client got. */
  status: number;
  input_uncached: number;
  cache_read: number;
  cache_write: number;
  output: number;
  /** Cost in whole micro-dollars; null when nothing it used had a price. */
  cost_micro_usd: number | null;
  latency_ms: number;
  ttfb_ms: number | null;
  retries: number;
  /** False when its usage is a lower bound (a cut stream, a client gone). */
  complete: boolean;
  /** Why it failed or was refused: a reason code or the gateway's words; never upstream text. */
  error: string | null;
}

/** A logged request with its id. */
export interface LoggedRequest extends RequestLogEntry {
  id: string;
}

const DAY_MS = 86_400_000;
/** Longest `error` kept. */
const MAX_ERROR = 200;
/** Most log entries one page examines, whatever its filters. */
export const MAX_SCAN = 10_000;
/** Deno KV reads at most this many keys in one `getMany`. */
const GET_MANY = 10;
/** Characters of JSON per row: at two bytes each (V8's two-byte strings), within KV's 64 KiB values. */
const ROW_CHARS = 30_000;
/** Characters of a ULID that name its row's second (40 of its 48 time bits: 1024 ms). */
const SLOT_CHARS = 8;

/**
 * An entry as stored in a row: `[id, time, key_id, model, provider,
 * endpoint, stream, status, input_uncached, cache_read, cache_write, output,
 * cost_micro_usd, latency_ms, ttfb_ms, retries, complete, error]`.
 */
type EntryTuple = [
  string,
  number,
  string,
  string,
  string | null,
  string,
  boolean,
  number,
  number,
  number,
  number,
  number,
  number | null,
  number,
  number | null,
  number,
  boolean,
  string | null,
];

/** One request's log entry on its way to KV: written in its usage commit, several to a row. */
export interface LogRecord {
  /** The request's id (a ULID). */
  id: string;
  keyId: string;
  /** The entry as the JSON of its {@link EntryTuple}. */
  text: string;
  /** How long it is kept once written, in ms. */
  keepMs: number;
}

/** The record that logs `e` under request id `id`, kept for `days` days. */
export function requestLogRecord(id: string, e: RequestLogEntry, days: number): LogRecord {
  const error = e.error !== null && e.error.length > MAX_ERROR
    ? e.error.slice(0, MAX_ERROR)
    : e.error;
  const t: EntryTuple = [
    id,
    e.time,
    e.key_id,
    e.model,
    e.provider,
    e.endpoint,
    e.stream,
    e.status,
    e.input_uncached,
    e.cache_read,
    e.cache_write,
    e.output,
    e.cost_micro_usd,
    e.latency_ms,
    e.ttfb_ms,
    e.retries,
    e.complete,
    error,
  ];
  return { id, keyId: e.key_id, text: JSON.stringify(t), keepMs: days * DAY_MS };
}

function fromTuple(t: EntryTuple): LoggedRequest {
  return {
    id: t[0],
    time: t[1],
    key_id: t[2],
    model: t[3],
    provider: t[4],
    endpoint: t[5],
    stream: t[6],
    status: t[7],
    input_uncached: t[8],
    cache_read: t[9],
    cache_write: t[10],
    output: t[11],
    cost_micro_usd: t[12],
    latency_ms: t[13],
    ttfb_ms: t[14],
    retries: t[15],
    complete: t[16],
    error: t[17],
  };
}

/** The row slot of request id `id`: the second it arrived in. */
function slotOf(id: string): string {
  return id.slice(0, SLOT_CHARS);
}

/** An upper bound of a key's encoded size: the UTF-8 length of its JSON. */
function keyBytes(key: Deno.KvKey): number {
  const id = JSON.stringify(key);
  let n = id.length;
  for (let i = 0; i < id.length; i++) {
    const c = id.charCodeAt(i);
    if (c >= 0x80) n += c >= 0x800 ? 2 : 1;
  }
  return n;
}

interface Row {
  key: Deno.KvKey;
  bytes: number;
  texts: string[];
  chars: number;
  keepMs: number;
}

/** What adding a record adds to a commit: rows (mutations), key bytes, keys and values. */
export interface RowCost {
  rows: number;
  keyBytes: number;
  payload: number;
}

/**
 * The rows of a commit's log entries, filled in the order records are
 * added: each record goes to its second's row and to its key's row of that
 * second, and a row that would outgrow {@link ROW_CHARS} is followed by
 * another. Holds the records' texts, not copies.
 */
export class LogRows {
  /** The row being filled, per second (`g` + slot) and per key and second (`k` + slot + key). */
  #open = new Map<string, Row>();
  #rows: Row[] = [];

  /** Rows written. */
  get size(): number {
    return this.#rows.length;
  }

  /** What adding `r` would add (nothing is changed). */
  cost(r: LogRecord, out: RowCost): RowCost {
    const slot = slotOf(r.id);
    this.#costIn(this.#open.get("g" + slot), r, () => ["reqlog_rows", slot, r.id], out);
    this.#costIn(
      this.#open.get("k" + slot + r.keyId),
      r,
      () => ["reqlog_key_rows", r.keyId, slot, r.id],
      out,
    );
    return out;
  }

  #costIn(row: Row | undefined, r: LogRecord, key: () => Deno.KvKey, out: RowCost): void {
    if (row && row.chars + r.text.length + 1 <= ROW_CHARS) {
      out.payload += 2 * (r.text.length + 1);
      return;
    }
    const bytes = keyBytes(key());
    out.rows++;
    out.keyBytes += bytes;
    out.payload += bytes + 2 * (r.text.length + 2) + 16;
  }

  /** Adds `r` to its rows. */
  add(r: LogRecord): void {
    const slot = slotOf(r.id);
    this.#addTo("g" + slot, r, () => ["reqlog_rows", slot, r.id]);
    this.#addTo("k" + slot + r.keyId, r, () => ["reqlog_key_rows", r.keyId, slot, r.id]);
  }

  #addTo(group: string, r: LogRecord, key: () => Deno.KvKey): void {
    let row = this.#open.get(group);
    if (!row || row.chars + r.text.length + 1 > ROW_CHARS) {
      const k = key();
      row = { key: k, bytes: keyBytes(k), texts: [], chars: 1, keepMs: 0 };
      this.#open.set(group, row);
      this.#rows.push(row);
    }
    row.texts.push(r.text);
    row.chars += r.text.length + 1;
    if (r.keepMs > row.keepMs) row.keepMs = r.keepMs;
  }

  /** The rows as `set` mutations, each kept as long as its longest-kept entry. */
  mutations(): SetMutation[] {
    return this.#rows.map((row) => ({
      id: JSON.stringify(row.key),
      key: row.key,
      bytes: row.bytes,
      valueBytes: 2 * row.chars + 16,
      value: `[${row.texts.join(",")}]`,
      op: "set",
      expireIn: row.keepMs,
    }));
  }
}

/** What to list: all filters optional; times are epoch ms, both ends inclusive. */
export interface RequestLogQuery {
  keyId?: string;
  model?: string;
  /** Inclusive range of HTTP statuses (a code, or a class such as 400..499). */
  status?: { min: number; max: number };
  since?: number;
  until?: number;
  limit: number;
  /** Continue below this id (the previous page's `nextCursor`). */
  cursor?: string;
}

/** One page, newest first; `nextCursor` is null when nothing older is left to examine. */
export interface RequestLogPage {
  requests: LoggedRequest[];
  nextCursor: string | null;
}

/** The first 10 characters of every ULID minted at `ms` (or later, as a lower bound). */
function timePrefix(ms: number): string {
  return encodeTime(Math.min(Math.max(0, Math.floor(ms)), 2 ** 48 - 1), 10);
}

function matches(e: RequestLogEntry, q: RequestLogQuery): boolean {
  if (q.model !== undefined && e.model !== q.model) return false;
  if (q.status && (e.status < q.status.min || e.status > q.status.max)) return false;
  return true;
}

type Found = [string, RequestLogEntry | null];

/**
 * Entries written one per row, of `selector`'s range, newest first: straight
 * from the log, or through a key's index, fetching the entries ten at a
 * time. An index entry whose log entry has expired yields null.
 */
async function* singles(
  kv: Deno.Kv,
  viaIndex: boolean,
  selector: Deno.KvListSelector,
): AsyncGenerator<Found> {
  const list = kv.list<RequestLogEntry | null>(selector, { reverse: true, batchSize: 500 });
  if (!viaIndex) {
    for await (const e of list) yield [e.key[1] as string, e.value];
    return;
  }
  let ids: string[] = [];
  const fetch = async function* () {
    const got = await kv.getMany<RequestLogEntry[]>(ids.map((id) => ["reqlog", id]));
    for (let i = 0; i < ids.length; i++) yield [ids[i], got[i].value] as Found;
    ids = [];
  };
  for await (const e of list) {
    ids.push(e.key[2] as string);
    if (ids.length === GET_MANY) yield* fetch();
  }
  if (ids.length > 0) yield* fetch();
}

/**
 * Entries written several to a row, with ids in [`low`, `high`), newest
 * first: the rows of one second are read together and their entries sorted
 * (a second's rows come from several commits), so what is held at once is
 * at most one second's entries.
 */
async function* rowed(
  kv: Deno.Kv,
  prefix: Deno.KvKey,
  low: string,
  high: string,
): AsyncGenerator<Found> {
  const selector = {
    start: [...prefix, slotOf(low)],
    end: [...prefix, high === "\uffff" ? high : slotOf(high), "\uffff"],
  };
  const list = kv.list<string>(selector, { reverse: true, batchSize: 100 });
  let slot: string | undefined;
  let held: EntryTuple[] = [];
  const release = function* (): Generator<Found> {
    held.sort((a, b) => a[0] < b[0] ? 1 : a[0] > b[0] ? -1 : 0);
    for (const t of held) {
      if (t[0] >= low && t[0] < high) {
        const { id, ...e } = fromTuple(t);
        yield [id, e];
      }
    }
    held = [];
  };
  for await (const row of list) {
    const s = row.key[prefix.length] as string;
    if (s !== slot) {
      yield* release();
      slot = s;
    }
    for (const t of JSON.parse(row.value) as EntryTuple[]) held.push(t);
  }
  yield* release();
}

/** Two newest-first streams of distinct ids as one. */
async function* merged(a: AsyncGenerator<Found>, b: AsyncGenerator<Found>): AsyncGenerator<Found> {
  try {
    let x = await a.next(), y = await b.next();
    while (!x.done || !y.done) {
      if (y.done || (!x.done && x.value[0] > y.value[0])) {
        yield x.value;
        x = await a.next();
      } else {
        yield y.value;
        y = await b.next();
      }
    }
  } finally {
    await a.return(undefined);
    await b.return(undefined);
  }
}

/**
 * One page of the log, newest first. At most {@link MAX_SCAN} entries are
 * examined: when the filters are rare and that bound is reached first, the
 * page holds what was found and `nextCursor` continues the scan.
 */
export async function readRequestLog(kv: Deno.Kv, q: RequestLogQuery): Promise<RequestLogPage> {
  const byKey = q.keyId !== undefined;
  const low = q.since === undefined ? "" : timePrefix(q.since);
  let high = q.until === undefined ? "\uffff" : timePrefix(q.until + 1);
  if (q.cursor !== undefined && q.cursor < high) high = q.cursor;
  const single: Deno.KvKey = byKey ? ["reqlog_key", q.keyId!] : ["reqlog"];
  const rows: Deno.KvKey = byKey ? ["reqlog_key_rows", q.keyId!] : ["reqlog_rows"];
  const found = merged(
    rowed(kv, rows, low, high),
    singles(kv, byKey, { start: [...single, low], end: [...single, high] }),
  );
  const out: LoggedRequest[] = [];
  let examined = 0;
  let last: string | undefined;
  for await (const [id, e] of found) {
    // Something is left: this page ends at the last entry examined.
    if (out.length === q.limit || examined === MAX_SCAN) {
      return { requests: out, nextCursor: last! };
    }
    examined++;
    last = id;
    if (e && matches(e, q)) out.push({ id, ...e });
  }
  return { requests: out, nextCursor: null };
}
