/**
 * `requests`: recent requests from the request log, newest first, as a table
 * or as the JSON `GET /admin/requests` answers. Filters are checked as the
 * admin API checks them (`lib/admin/requests.ts`).
 */
import { parseRequestFilters, requestPage } from "../admin/requests.ts";
import { noMoreThan, parse } from "./args.ts";
import { withContext } from "./context.ts";
import { HELP } from "./help.ts";
import { type Command, printJson } from "./io.ts";
import { decimal, shortTime, table } from "./table.ts";

const HEAD = [
  "TIME",
  "ID",
  "KEY",
  "MODEL",
  "PROVIDER",
  "STATUS",
  "UNCACHED",
  "CACHE_READ",
  "CACHE_WRITE",
  "OUTPUT",
  "COST_USD",
  "MS",
  "TTFB_MS",
  "RETRIES",
  "COMPLETE",
  "ERROR",
];

/** `requests [--key] [--model] [--status] [--since] [--until] [--limit] [--cursor] [--json]` */
export const requestsCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {
    key: { type: "string" },
    model: { type: "string" },
    status: { type: "string" },
    since: { type: "string" },
    until: { type: "string" },
    limit: { type: "string" },
    cursor: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) {
    io.out(HELP.requests);
    return 0;
  }
  noMoreThan(positionals, 0, "requests");
  return await withContext(io, async (ctx) => {
    const q = parseRequestFilters(values, {
      keys: ctx.keys,
      buckets: ctx.buckets,
      now: Date.now(),
      days: ctx.config.requestLogDays,
    }, (f) => `--${f}`);
    const page = await requestPage(ctx.kv, q, ctx.keys);
    if (values.json) {
      printJson(io, page);
      return 0;
    }
    if (page.requests.length === 0) io.out("no requests logged for this selection");
    else {
      const rows = page.requests.map((r) => [
        shortTime(r.time),
        r.id,
        r.key_name,
        r.model,
        r.provider,
        r.status,
        r.input_uncached,
        r.cache_read,
        r.cache_write,
        r.output,
        r.cost_usd === null ? null : decimal(r.cost_usd, 6),
        r.latency_ms,
        r.ttfb_ms,
        r.retries,
        r.complete ? "yes" : "no",
        r.error ?? "",
      ]);
      for (const l of table(HEAD, rows)) io.out(l);
      io.out("(times in UTC)");
    }
    if (page.next_cursor) io.out(`more: --cursor ${page.next_cursor}`);
    return 0;
  });
};
