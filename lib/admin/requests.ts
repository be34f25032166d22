/**
 * The request log as the admin API (`GET /admin/requests`) and the command
 * line (`requests`) show it: the filters both accept, checked alike, and the
 * wire form of one logged request.
 */
import type { Context } from "../context.ts";
import type { Call } from "../http/call.ts";
import { jsonResponse } from "../http/json.ts";
import { usd } from "../metering/cost.ts";
import type { BucketClock } from "../ops/clock.ts";
import type { KeyStore } from "../store/keys.ts";
import { type LoggedRequest, readRequestLog, type RequestLogQuery } from "../store/request_log.ts";
import { InvalidInput, type Label, parseDate } from "./validation.ts";

/** Raw filters, as a query string or command line gives them (absent or empty: not set). */
export interface RequestFilters {
  key?: string | null;
  model?: string | null;
  status?: string | null;
  since?: string | null;
  until?: string | null;
  limit?: string | null;
  cursor?: string | null;
}

/** What parsing the filters needs besides them. */
export interface FilterContext {
  keys: KeyStore;
  buckets: BucketClock;
  /** Now, epoch ms (the retention window ends here). */
  now: number;
  /** `REQUEST_LOG_DAYS`: older entries are not shown even before KV has removed them. */
  days: number;
}

const DAY_MS = 86_400_000;
const DEFAULT_LIMIT = 100;
const MAX_LIMIT = 1000;
const MAX_MODEL = 256;
const ULID_RE = /^[0-9A-HJKMNP-TV-Z]{26}$/;
const TIME_RE = /^\d{4}-\d{2}-\d{2}T\d{2}:\d{2}(:\d{2}(\.\d{1,9})?)?(Z|[+-]\d{2}:\d{2})$/i;

const given = (v: string | null | undefined): v is string =>
  v !== null && v !== undefined &&
  v !== "";

/**
 * A time filter: an ISO time with its offset, or a `YYYY-MM-DD` day in
 * `USAGE_TZ` (its first instant for `since`, its last for `until`).
 */
function parseTime(
  value: string,
  end: "start" | "end",
  name: string,
  buckets: BucketClock,
): number {
  if (value.length === 10) {
    const day = parseDate(value, name)!;
    if (end === "start") return buckets.startOf(day);
    const next = new Date(Date.parse(day) + DAY_MS).toISOString().slice(0, 10);
    return buckets.startOf(next) - 1;
  }
  const ms = TIME_RE.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms)) {
    throw new InvalidInput(
      400,
      "invalid_time",
      `${name} must be an ISO time with its offset (2026-03-01T12:00:00Z) or a day (YYYY-MM-DD)`,
    );
  }
  return ms;
}

function parseStatus(value: string, name: string): { min: number; max: number } {
  if (/^[1-5]\d\d$/.test(value)) return { min: Number(value), max: Number(value) };
  if (/^[1-5]xx$/i.test(value)) {
    const c = Number(value[0]) * 100;
    return { min: c, max: c + 99 };
  }
  throw new InvalidInput(
    400,
    "invalid_status",
    `${name} must be an HTTP status (429) or a class (2xx, 4xx, 5xx)`,
  );
}

/** The filters as a query of the log; a bad value is refused (400, or 404 for an unknown key). */
export function parseRequestFilters(
  f: RequestFilters,
  c: FilterContext,
  label: Label = (x) => x,
): RequestLogQuery {
  const q: RequestLogQuery = { limit: DEFAULT_LIMIT };
  if (given(f.key)) {
    // Deleted keys keep their log; the message never repeats what was sent (it may be a secret).
    if (f.key.length > 64 || !c.keys.get(f.key)) {
      throw new InvalidInput(404, "key_not_found", `${label("key")}: no API key with that id`);
    }
    q.keyId = f.key;
  }
  if (given(f.model)) {
    if (f.model.length > MAX_MODEL) {
      throw new InvalidInput(
        400,
        "invalid_model",
        `${label("model")} is longer than ${MAX_MODEL} characters`,
      );
    }
    q.model = f.model;
  }
  if (given(f.status)) q.status = parseStatus(f.status, label("status"));
  if (given(f.since)) q.since = parseTime(f.since, "start", label("since"), c.buckets);
  if (given(f.until)) q.until = parseTime(f.until, "end", label("until"), c.buckets);
  if (q.since !== undefined && q.until !== undefined && q.since > q.until) {
    throw new InvalidInput(
      400,
      "invalid_time_range",
      `${label("since")} is after ${label("until")}; give the earlier time first`,
    );
  }
  if (given(f.limit)) {
    const n = Number(f.limit);
    if (!/^\d+$/.test(f.limit) || n < 1 || n > MAX_LIMIT) {
      throw new InvalidInput(
        400,
        "invalid_limit",
        `${label("limit")} must be a whole number from 1 to ${MAX_LIMIT}`,
      );
    }
    q.limit = n;
  }
  if (given(f.cursor)) {
    if (!ULID_RE.test(f.cursor)) {
      throw new InvalidInput(
        400,
        "invalid_cursor",
        `${label("cursor")} must be a next_cursor from an earlier page`,
      );
    }
    q.cursor = f.cursor;
  }
  if (c.days > 0) q.since = Math.max(q.since ?? 0, c.now - c.days * DAY_MS);
  return q;
}

/** The wire form of a logged request (`GET /admin/requests`, `requests --json`). */
function requestView(r: LoggedRequest, keyName: (id: string) => string) {
  return {
    id: r.id,
    time: new Date(r.time).toISOString(),
    key_id: r.key_id,
    key_name: keyName(r.key_id),
    model: r.model,
    provider: r.provider,
    endpoint: r.endpoint,
    stream: r.stream,
    status: r.status,
    input_uncached: r.input_uncached,
    cache_read: r.cache_read,
    cache_write: r.cache_write,
    output: r.output,
    cost_usd: r.cost_micro_usd === null ? null : usd(r.cost_micro_usd),
    latency_ms: r.latency_ms,
    ttfb_ms: r.ttfb_ms,
    retries: r.retries,
    complete: r.complete,
    error: r.error,
  };
}

/** One page of the log in wire form. */
export async function requestPage(
  kv: Deno.Kv,
  q: RequestLogQuery,
  keys: KeyStore,
): Promise<{ requests: ReturnType<typeof requestView>[]; next_cursor: string | null }> {
  const page = await readRequestLog(kv, q);
  const name = (id: string) => keys.get(id)?.name ?? id;
  return { requests: page.requests.map((r) => requestView(r, name)), next_cursor: page.nextCursor };
}

/** `GET /admin/requests?key=&model=&status=&since=&until=&limit=&cursor=` */
export async function listRequests(_req: Request, ctx: Context, { url }: Call): Promise<Response> {
  const p = url.searchParams;
  const q = parseRequestFilters(
    {
      key: p.get("key"),
      model: p.get("model"),
      status: p.get("status"),
      since: p.get("since"),
      until: p.get("until"),
      limit: p.get("limit"),
      cursor: p.get("cursor"),
    },
    {
      keys: ctx.keys,
      buckets: ctx.buckets,
      now: ctx.clock.now(),
      days: ctx.config.requestLogDays,
    },
  );
  // Requests that finished before this call are in the log.
  await ctx.usageWriter.flush();
  return jsonResponse(200, await requestPage(ctx.kv, q, ctx.keys));
}
