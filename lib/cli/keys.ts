/**
 * `keys`: create, list, show, enable, disable, delete and rotate client keys
 * directly on KV. Validation and JSON output are the admin API's own
 * (`lib/admin/validation.ts`, `keyView`), so `--json` prints what the API
 * answers and both refuse the same input.
 */
import { keyView } from "../admin/handlers.ts";
import { InvalidInput, newKeyFromBody } from "../admin/validation.ts";
import type { KeyRecord } from "../store/keys.ts";
import { exactlyOne, noMoreThan, parse, type Values } from "./args.ts";
import { type CliContext, withContext } from "./context.ts";
import { HELP } from "./help.ts";
import { CliError, type Command, exitStatus, type Io, printJson } from "./io.ts";
import { bodyFromFlags, flagLabel, keyFlagOptions } from "./key_flags.ts";
import { shortTime, table } from "./table.ts";

const OPTIONS = { ...keyFlagOptions(), json: { type: "boolean" } } as const;

interface Call {
  ctx: CliContext;
  io: Io;
  positionals: string[];
  values: Values<typeof OPTIONS> & Record<string, unknown>;
}

type Subcommand = (call: Call) => Promise<number>;

/** The key a subcommand's `<id>` names (404 in the API, exit status 1 here). */
function keyArg({ ctx, positionals }: Call, sub: string): KeyRecord {
  const id = exactlyOne(positionals, '<id> (see "keys list")', `keys ${sub}`);
  return ctx.key(id);
}

/** A key view as `field: value` lines. */
function printFields(io: Io, view: Record<string, unknown>): void {
  for (const [f, v] of Object.entries(view)) {
    io.out(`${f}: ${v === null ? "-" : Array.isArray(v) ? v.join(",") : v}`);
  }
}

const create: Subcommand = async ({ ctx, io, positionals, values }) => {
  const name = positionals.join(" ").trim();
  if (!name) throw new CliError("keys create: missing <name>", 2);
  const input = await newKeyFromBody(
    { name, ...bodyFromFlags(values) },
    () => ctx.registry(),
    flagLabel,
  );
  const { record, secret } = await ctx.keys.create(input);
  if (values.json) {
    printJson(io, { api_key: secret, ...keyView(record) });
    return 0;
  }
  io.out(`created key "${record.name}" (id ${record.id})`);
  io.out(`secret: ${secret}`);
  io.out("store it now: it is not shown again");
  return 0;
};

const list: Subcommand = async ({ ctx, io, positionals, values }) => {
  noMoreThan(positionals, 0, "keys list");
  const totals = await ctx.usage.totals();
  const views = ctx.keys.list().map((k) => keyView(k, totals.get(k.id)));
  if (values.json) {
    printJson(io, { keys: views });
    return 0;
  }
  if (views.length === 0) {
    io.out('no keys yet: create one with "keys create <name>"');
    return 0;
  }
  const head = ["ID", "NAME", "KEY", "ENABLED", "CREATED", "REQUESTS", "INPUT", "OUTPUT"];
  for (
    const line of table(
      [...head, "LAST USED"],
      views.map((v) => [
        v.id,
        v.name,
        v.key,
        v.enabled ? "yes" : "no",
        shortTime(v.created),
        v.total_requests,
        v.total_input,
        v.total_output,
        shortTime(v.last_used),
      ]),
    )
  ) io.out(line);
  return 0;
};

const show: Subcommand = async (call) => {
  const k = keyArg(call, "show");
  const view = keyView(k, await call.ctx.usage.keyTotals(k.id));
  if (call.values.json) printJson(call.io, view);
  else printFields(call.io, view);
  return 0;
};

function setEnabled(enabled: boolean): Subcommand {
  return async (call) => {
    const sub = enabled ? "enable" : "disable";
    const k = await call.ctx.keys.setEnabled(keyArg(call, sub).id, enabled);
    if (call.values.json) printJson(call.io, { status: `${sub}d`, name: k.name, id: k.id });
    else call.io.out(`key "${k.name}" (${k.id}) ${sub}d`);
    return 0;
  };
}

const remove: Subcommand = async (call) => {
  const k = await call.ctx.keys.delete(keyArg(call, "delete").id);
  if (call.values.json) printJson(call.io, { status: "deleted", name: k.name, id: k.id });
  else call.io.out(`key "${k.name}" (${k.id}) deleted; its usage history is kept`);
  return 0;
};

const rotate: Subcommand = async (call) => {
  const { ctx, io, values } = call;
  const { record, secret } = await ctx.keys.rotate(keyArg(call, "rotate").id);
  const view = keyView(record, await ctx.usage.keyTotals(record.id));
  if (values.json) {
    printJson(io, { status: "rotated", api_key: secret, ...view });
    return 0;
  }
  io.out(`new secret for "${record.name}" (${record.id}): ${secret}`);
  io.out("the old secret no longer works; store this one now: it is not shown again");
  printFields(io, view);
  return 0;
};

const SUBCOMMANDS: Record<string, Subcommand> = {
  create,
  list,
  show,
  disable: setEnabled(false),
  enable: setEnabled(true),
  delete: remove,
  rotate,
};

/** `keys <subcommand> ...` */
export const keysCommand: Command = async (args, io) => {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, OPTIONS);
  if (values.help || !sub || sub === "--help" || sub === "-h") {
    (sub ? io.out : io.err)(HELP.keys);
    return sub ? 0 : 2;
  }
  const run = SUBCOMMANDS[sub];
  if (!run) {
    throw new CliError(
      `keys: unknown subcommand "${sub}" (${Object.keys(SUBCOMMANDS).join(", ")})`,
      2,
    );
  }
  try {
    return await withContext(io, (ctx) => run({ ctx, io, positionals, values }));
  } catch (e) {
    // Name the subcommand, as the usage errors above do.
    if (e instanceof InvalidInput) throw new CliError(`keys ${sub}: ${e.message}`, exitStatus(e));
    throw e;
  }
};
