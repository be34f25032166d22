/**
 * `keys`: create, list, show, edit, enable, disable, delete and rotate
 * client keys directly on KV. Validation and JSON output are the admin API's
 * own (`lib/admin/validation.ts`, `lib/admin/key_view.ts`), so `--json`
 * prints what the API answers and both refuse the same input.
 */
import { fullKeyView, keyView, type KeyViewSources, standingsOf } from "../admin/key_view.ts";
import {
  InvalidInput,
  keyChangesFromBody,
  newKeyFromBody,
  rotationGraceMs,
} from "../admin/validation.ts";
import type { KeyRecord } from "../store/keys.ts";
import { exactlyOne, noMoreThan, parse, type Values } from "./args.ts";
import { type CliContext, withContext } from "./context.ts";
import { HELP } from "./help.ts";
import { CliError, type Command, exitStatus, type Io, printJson } from "./io.ts";
import { bodyFromFlags, flagLabel, keyFlagOptions } from "./key_flags.ts";
import { shortTime, table } from "./table.ts";

const OPTIONS = {
  ...keyFlagOptions(),
  name: { type: "string" },
  grace: { type: "string" },
  json: { type: "boolean" },
} as const;

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

/** A key view as `field: value` lines (limits one per line). */
function printFields(io: Io, view: Record<string, unknown>): void {
  for (const [f, v] of Object.entries(view)) {
    if (f === "limits" && v && typeof v === "object") {
      for (const [name, s] of Object.entries(v as Record<string, Record<string, unknown>>)) {
        io.out(
          `limit ${name}: ${s.used} used + ${s.reserved} reserved of ${s.limit}` +
            (s.resets_at ? `, resets ${s.resets_at}` : ""),
        );
      }
    } else if (v !== null && typeof v === "object" && !Array.isArray(v)) {
      io.out(`${f}: ${Object.entries(v).map(([k, x]) => `${k}=${x}`).join(",")}`);
    } else io.out(`${f}: ${v === null ? "-" : Array.isArray(v) ? v.join(",") : v}`);
  }
}

function sources(ctx: CliContext): KeyViewSources {
  return { usage: ctx.usage, limits: ctx.limits, now: Date.now() };
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
    printJson(io, { api_key: secret, ...await fullKeyView(sources(ctx), record) });
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
  const src = sources(ctx);
  const views = await Promise.all(
    ctx.keys.list().map(async (k) =>
      keyView(k, src.now, totals.get(k.id), await standingsOf(src, k))
    ),
  );
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
  const view = await fullKeyView(sources(call.ctx), k);
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

const edit: Subcommand = async (call) => {
  const { ctx, io, values } = call;
  const k = keyArg(call, "edit");
  const body = bodyFromFlags(values);
  if ("enabled" in body) throw new CliError("keys edit: use keys enable|disable <id>", 2);
  if (values.name !== undefined) body.name = values.name;
  const changes = await keyChangesFromBody(body, () => ctx.registry(), flagLabel);
  const record = await ctx.keys.update(k.id, changes);
  const view = await fullKeyView(sources(ctx), record);
  if (values.json) printJson(io, view);
  else {
    io.out(`key "${record.name}" (${record.id}) changed`);
    printFields(io, view);
  }
  return 0;
};

const rotate: Subcommand = async (call) => {
  const { ctx, io, values } = call;
  const k = keyArg(call, "rotate");
  const grace = values.grace === undefined ? undefined : Number(values.grace);
  const graceMs = rotationGraceMs(
    grace === undefined ? {} : { grace_seconds: Number.isFinite(grace) ? grace : values.grace },
    (f) => (f === "grace_seconds" ? "--grace" : f),
  );
  const { record, secret } = await ctx.keys.rotate(k.id, graceMs);
  const view = await fullKeyView(sources(ctx), record);
  if (values.json) {
    printJson(io, { status: "rotated", api_key: secret, ...view });
    return 0;
  }
  io.out(`new secret for "${record.name}" (${record.id}): ${secret}`);
  io.out(
    graceMs > 0
      ? `the old secret keeps working until ${view.previous_key_valid_until}; store this one now: it is not shown again`
      : "the old secret no longer works; store this one now: it is not shown again",
  );
  printFields(io, view);
  return 0;
};

const SUBCOMMANDS: Record<string, Subcommand> = {
  create,
  list,
  show,
  edit,
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
