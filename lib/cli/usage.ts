/**
 * `usage`: usage by day, key and model, as a table or JSON. Dates and key
 * ids are checked as the admin API checks them, and figures come from the
 * API's report functions (`lib/admin/reports.ts`), so both always agree.
 */
import { groupSorted, periodStats } from "../admin/reports.ts";
import { parseDateRange } from "../admin/validation.ts";
import type { UsageRow } from "../store/usage/reader.ts";
import { noMoreThan, parse } from "./args.ts";
import { withContext } from "./context.ts";
import { HELP } from "./help.ts";
import { type Command, printJson } from "./io.ts";
import { type Cell, decimal, table } from "./table.ts";

const HEAD = [
  "DATE",
  "KEY",
  "MODEL",
  "REQUESTS",
  "UNCACHED",
  "CACHE_READ",
  "CACHE_WRITE",
  "INPUT",
  "OUTPUT",
  "FAILED",
  "INCOMPLETE",
  "COST_USD",
  "UNPRICED",
];

/** A table line: the figures of `rows` under the given labels. */
function line(day: string, key: string, model: string, rows: UsageRow[]): Cell[] {
  const s = periodStats(rows);
  return [
    day,
    key,
    model,
    s.requests,
    s.input_uncached,
    s.cache_read,
    s.cache_write,
    s.input,
    s.output,
    s.failed,
    s.incomplete,
    s.cost_usd === null ? null : decimal(s.cost_usd, 6),
    s.unpriced_requests,
  ];
}

/** `usage [--from] [--to] [--key] [--model] [--json]` */
export const usageCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {
    from: { type: "string" },
    to: { type: "string" },
    key: { type: "string" },
    model: { type: "string" },
    json: { type: "boolean" },
  });
  if (values.help) {
    io.out(HELP.usage);
    return 0;
  }
  noMoreThan(positionals, 0, "usage");
  const { from, to } = parseDateRange({ from: values.from, to: values.to }, (f) => `--${f}`);
  return await withContext(io, async (ctx) => {
    const keyId = values.key === undefined ? undefined : ctx.key(values.key).id;
    let rows = keyId ? await ctx.usage.byKey(keyId, from, to) : await ctx.usage.byTime(from, to);
    if (values.model !== undefined) rows = rows.filter((r) => r.model === values.model);
    const groups = groupSorted(rows, (r) => `${r.day}\u0000${r.keyId}\u0000${r.model}`);
    const name = (id: string) => ctx.keys.get(id)?.name ?? id;
    if (values.json) {
      printJson(
        io,
        groups.map(([, list]) => {
          const { day, keyId, model } = list[0];
          const { by_model: _, ...stats } = periodStats(list);
          return { date: day, key_id: keyId, key_name: name(keyId), model, ...stats };
        }),
      );
      return 0;
    }
    if (groups.length === 0) {
      io.out("no usage recorded for this selection");
      return 0;
    }
    const lines = groups.map(([, list]) => {
      const { day, keyId, model } = list[0];
      return line(day, name(keyId), model, list);
    });
    for (const l of table(HEAD, [...lines, line("total", "", "", rows)])) io.out(l);
    io.out(`(days in ${ctx.config.usageTz})`);
    return 0;
  });
};
