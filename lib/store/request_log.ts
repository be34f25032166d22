/**
 * The request log: one entry per request in Deno KV, kept for
 * `REQUEST_LOG_DAYS` through KV's `expireIn`. It holds figures only (time,
 * key, model, provider, status, tokens, cost, timings), never any prompt or
 * completion text.
 *
 * - `["reqlog", id]`: the entry; `id` is the request's ULID, so keys sort by
 *   arrival time and a time range is a key range;
 * - `["reqlog_key", keyId, id]`: `null`, the index that lists one key's
 *   requests without scanning everyone's.
 *
 * Entries are written by the usage writer in the request's batched commit
 * (`requestLogMutations`), never in a commit of their own.
 */
import { encodeTime } from "ulid";
import { type SetMutation, setMutation } from "./usage/layout.ts";

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

/** The two `set` mutations that log `e` under request id `id`, expiring after `days` days. */
export function requestLogMutations(id: string, e: RequestLogEntry, days: number): SetMutation[] {
  const expireIn = days * DAY_MS;
  const entry = e.error !== null && e.error.length > MAX_ERROR
    ? { ...e, error: e.error.slice(0, MAX_ERROR) }
    : e;
  return [
    setMutation(["reqlog", id], entry, expireIn),
    setMutation(["reqlog_key", e.key_id, id], null, expireIn),
  ];
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

/**
 * Entries of `selector`'s range, newest first: straight from the log, or
 * through a key's index, fetching the entries ten at a time. An index entry
 * whose log entry has expired yields null.
 */
async function* entries(
  kv: Deno.Kv,
  viaIndex: boolean,
  selector: Deno.KvListSelector,
): AsyncGenerator<[string, RequestLogEntry | null]> {
  const list = kv.list<RequestLogEntry | null>(selector, { reverse: true, batchSize: 500 });
  if (!viaIndex) {
    for await (const e of list) yield [e.key[1] as string, e.value];
    return;
  }
  let ids: string[] = [];
  const fetch = async function* () {
    const got = await kv.getMany<RequestLogEntry[]>(ids.map((id) => ["reqlog", id]));
    for (let i = 0; i < ids.length; i++) yield [ids[i], got[i].value] as [string, RequestLogEntry];
    ids = [];
  };
  for await (const e of list) {
    ids.push(e.key[2] as string);
    if (ids.length === GET_MANY) yield* fetch();
  }
  if (ids.length > 0) yield* fetch();
}

/**
 * One page of the log, newest first. At most {@link MAX_SCAN} entries are
 * examined: when the filters are rare and that bound is reached first, the
 * page holds what was found and `nextCursor` continues the scan.
 */
export async function readRequestLog(kv: Deno.Kv, q: RequestLogQuery): Promise<RequestLogPage> {
  const prefix: Deno.KvKey = q.keyId === undefined ? ["reqlog"] : ["reqlog_key", q.keyId];
  const low = q.since === undefined ? "" : timePrefix(q.since);
  let high = q.until === undefined ? "\uffff" : timePrefix(q.until + 1);
  if (q.cursor !== undefined && q.cursor < high) high = q.cursor;
  const out: LoggedRequest[] = [];
  let examined = 0;
  let last: string | undefined;
  const selector = { start: [...prefix, low], end: [...prefix, high] };
  for await (const [id, e] of entries(kv, q.keyId !== undefined, selector)) {
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
