/**
 * The command line of the gateway's single entry point (`main.ts`, or the
 * compiled binary): `serve` (the default) and admin commands that work
 * directly on Deno KV, so an admin can create the first key before the
 * server ever runs. A running gateway sees key changes within
 * `KEYS_REFRESH_MS`.
 */
import { parseArgs } from "node:util";
import bundledModels from "../../models.json" with { type: "json" };
import { BucketClock } from "../ops/clock.ts";
import { type Config, loadConfig } from "../config/env.ts";
import { VERSION } from "../ops/health.ts";
import { type KeyRecord, KeyStore } from "../store/keys.ts";
import { importLunaFile } from "../store/luna_import.ts";
import { loadRegistry, parseRegistry, type Registry } from "../config/registry.ts";
import { inputOf } from "../admin/reports.ts";
import { openKv, startGateway } from "../ops/server.ts";
import { type Counters, FIELDS, UsageStore, zeroCounters } from "../store/usage.ts";

/** Where a command writes. */
export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  env: Record<string, string | undefined>;
}

/** A failure the user caused: printed as one line, exit status 2 (usage) or 1. */
export class CliError extends Error {
  constructor(message: string, readonly status = 1) {
    super(message);
  }
}

const HELP: Record<string, string> = {
  main: `llm-gateway ${VERSION}: an LLM API gateway (Anthropic Messages, OpenAI Chat Completions)

Usage: llm-gateway [command] [options]

Commands:
  serve                      start the gateway (the default)
  keys create <name>         create a client API key (the secret is shown once)
  keys list                  list keys
  keys show <id>             one key with its totals
  keys disable <id>          disable a key (a running gateway stops accepting it)
  keys enable <id>           enable a key again
  keys delete <id>           delete a key (its usage history is kept)
  keys rotate <id>           give a key a new secret (the old one stops working)
  usage                      usage table by day, key and model
  import-luna <keys.json>    import keys and usage history from Luna API Proxy
  check-config [models.json] validate a model registry and print its routing table
  healthcheck                exit 0 when the local gateway answers /health

Every command reads the same environment as the server (KV_PATH, MODELS_CONFIG,
USAGE_TZ, ...; see README). Run "llm-gateway <command> --help" for its options.`,
  serve: `Usage: llm-gateway serve

Starts the gateway on HOST:PORT (default 0.0.0.0:8180) with KV at KV_PATH and the
registry at MODELS_CONFIG (when that is unset and ./models.json is missing, the
bundled models.json is used). Stops cleanly on SIGTERM or SIGINT.`,
  keys: `Usage:
  llm-gateway keys create <name> [--allow <provider,...>] [--disabled] [--json]
  llm-gateway keys list [--json]
  llm-gateway keys show <id> [--json]
  llm-gateway keys disable|enable|delete <id>
  llm-gateway keys rotate <id> [--json]

Works directly on the KV at KV_PATH. Keys are addressed by id (see "keys list").`,
  usage:
    `Usage: llm-gateway usage [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--key <id>] [--model <id>] [--json]

Prints usage by day, key and model (days in USAGE_TZ). Input buckets: input_uncached,
cache_read, cache_write; "input" is their sum (the whole prompt).`,
  "import-luna": `Usage: llm-gateway import-luna <keys.json>

Imports a Luna API Proxy keys.json: keys (stored hashed), names, enabled, created,
allowed_providers, and daily/hourly usage history. Importing the same file again changes
nothing.`,
  "check-config": `Usage: llm-gateway check-config [models.json]

Validates a model registry (default: MODELS_CONFIG, else ./models.json) and prints its
providers, routing table and known models. Exit status 1 when it is invalid; fields it
ignores (unknown names, often typos) are reported as warnings on stderr.`,
  healthcheck: `Usage: llm-gateway healthcheck [--url <url>] [--timeout <ms>]

Exits 0 when GET <url> (default http://127.0.0.1:$PORT/health) answers 200 with status "ok",
1 otherwise. Used by the Docker HEALTHCHECK.`,
};

type Opts = Record<string, { type: "string" | "boolean" }>;
type Values<O extends Opts> =
  & { [K in keyof O]?: O[K]["type"] extends "string" ? string : boolean }
  & { help?: boolean };

function parse<O extends Opts>(
  args: string[],
  options: O,
): { values: Values<O>; positionals: string[] } {
  try {
    const r = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    return { values: r.values as Values<O>, positionals: r.positionals };
  } catch (e) {
    throw new CliError((e as Error).message, 2);
  }
}

function config(io: Io): Config {
  return loadConfig(io.env);
}

/** The registry to serve: MODELS_CONFIG, else ./models.json, else the bundled copy. */
async function registryFor(
  cfg: Config,
  io: Io,
): Promise<{ registry?: Registry; bundled: boolean }> {
  if (io.env.MODELS_CONFIG) return { bundled: false };
  try {
    await Deno.stat(cfg.modelsPath);
    return { bundled: false };
  } catch {
    return { registry: parseRegistry(bundledModels, "bundled models.json"), bundled: true };
  }
}

async function withKv<T>(
  io: Io,
  fn: (kv: Deno.Kv, keys: KeyStore, cfg: Config) => Promise<T>,
): Promise<T> {
  const cfg = config(io);
  const kv = await openKv(cfg.kvPath);
  try {
    const keys = new KeyStore(kv);
    await keys.load();
    return await fn(kv, keys, cfg);
  } finally {
    kv.close();
  }
}

/** Formats rows as an aligned text table. */
export function table(head: string[], rows: (string | number)[][]): string[] {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const numeric = head.map((_, i) =>
    rows.length > 0 && rows.every((r) => typeof r[i] === "number")
  );
  return cells.map((r) =>
    r.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ").trimEnd()
  );
}

function keyJson(k: KeyRecord) {
  return {
    id: k.id,
    name: k.name,
    key: k.masked,
    enabled: k.enabled,
    created: k.created,
    allowed_providers: k.allowedProviders ?? null,
    source: k.source,
  };
}

function needId(positionals: string[], cmd: string): string {
  const id = positionals[0];
  if (!id) throw new CliError(`keys ${cmd}: missing <id> (see "keys list")`, 2);
  if (positionals.length > 1) {
    throw new CliError(`keys ${cmd}: unexpected argument "${positionals[1]}"`, 2);
  }
  return id;
}

async function keysCommand(args: string[], io: Io): Promise<number> {
  const [sub, ...rest] = args;
  const { values, positionals } = parse(rest, {
    allow: { type: "string" },
    disabled: { type: "boolean" },
    json: { type: "boolean" },
  });
  if (values.help || !sub || sub === "--help" || sub === "-h") {
    (sub ? io.out : io.err)(HELP.keys);
    return sub ? 0 : 2;
  }
  return await withKv(io, async (kv, keys) => {
    const find = (id: string) => {
      const k = keys.get(id);
      if (!k || k.deleted) throw new CliError(`no API key with id ${id}`);
      return k;
    };
    switch (sub) {
      case "create": {
        const name = positionals.join(" ").trim();
        if (!name) throw new CliError("keys create: missing <name>", 2);
        const allowed = values.allow?.split(",").map((s) => s.trim()).filter(Boolean);
        const { record, secret } = await keys.create({
          name,
          allowedProviders: allowed?.length ? allowed : undefined,
          enabled: !values.disabled,
        });
        if (values.json) io.out(JSON.stringify({ api_key: secret, ...keyJson(record) }));
        else {
          io.out(`created key "${record.name}" (id ${record.id})`);
          io.out(`secret: ${secret}`);
          io.out("store it now: it is not shown again");
        }
        return 0;
      }
      case "list": {
        const usage = new UsageStore(kv, new BucketClock("UTC"), 0);
        const totals = await usage.totals();
        const list = keys.list();
        if (values.json) {
          io.out(
            JSON.stringify(list.map((k) => ({ ...keyJson(k), totals: totals.get(k.id) ?? null }))),
          );
          return 0;
        }
        if (list.length === 0) {
          io.out('no keys yet: create one with "keys create <name>"');
          return 0;
        }
        for (
          const line of table(
            ["ID", "NAME", "KEY", "ENABLED", "CREATED", "REQUESTS", "INPUT", "OUTPUT", "LAST USED"],
            list.map((k) => {
              const t = totals.get(k.id);
              const c = t?.counters ?? zeroCounters();
              return [
                k.id,
                k.name,
                k.masked,
                k.enabled ? "yes" : "no",
                k.created.slice(0, 19).replace("T", " "),
                c.requests,
                inputOf(c),
                c.output,
                t?.lastUsed
                  ? new Date(t.lastUsed).toISOString().slice(0, 19).replace("T", " ")
                  : "-",
              ];
            }),
          )
        ) io.out(line);
        return 0;
      }
      case "show": {
        const k = find(needId(positionals, sub));
        const t = await new UsageStore(kv, new BucketClock("UTC"), 0).keyTotals(k.id);
        if (values.json) io.out(JSON.stringify({ ...keyJson(k), totals: t }));
        else {
          for (const [f, v] of Object.entries(keyJson(k))) io.out(`${f}: ${v ?? "-"}`);
          for (const f of FIELDS) io.out(`${f}: ${t.counters[f]}`);
          io.out(`last_used: ${t.lastUsed ? new Date(t.lastUsed).toISOString() : "-"}`);
        }
        return 0;
      }
      case "disable":
      case "enable": {
        const k = await keys.setEnabled(find(needId(positionals, sub)).id, sub === "enable");
        io.out(`key "${k.name}" (${k.id}) ${sub}d`);
        return 0;
      }
      case "delete": {
        const k = await keys.delete(find(needId(positionals, sub)).id);
        io.out(`key "${k.name}" (${k.id}) deleted; its usage history is kept`);
        return 0;
      }
      case "rotate": {
        const { record, secret } = await keys.rotate(find(needId(positionals, sub)).id);
        if (values.json) io.out(JSON.stringify({ api_key: secret, ...keyJson(record) }));
        else {
          io.out(`new secret for "${record.name}" (${record.id}): ${secret}`);
          io.out("the old secret no longer works; store this one now: it is not shown again");
        }
        return 0;
      }
      default:
        throw new CliError(
          `keys: unknown subcommand "${sub}" (create, list, show, disable, enable, delete, rotate)`,
          2,
        );
    }
  });
}

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

async function usageCommand(args: string[], io: Io): Promise<number> {
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
  if (positionals.length) throw new CliError(`usage: unexpected argument "${positionals[0]}"`, 2);
  for (const f of ["from", "to"] as const) {
    if (values[f] !== undefined && !DATE_RE.test(values[f]!)) {
      throw new CliError(`usage: --${f} must be a date as YYYY-MM-DD`, 2);
    }
  }
  return await withKv(io, async (kv, keys, cfg) => {
    const store = new UsageStore(kv, new BucketClock(cfg.usageTz), 0);
    let rows = values.key
      ? await store.byKey(values.key, values.from, values.to)
      : await store.byTime(values.from, values.to);
    if (values.model) rows = rows.filter((r) => r.model === values.model);
    const grouped = new Map<string, { day: string; keyId: string; model: string; c: Counters }>();
    for (const r of rows) {
      const id = `${r.day}|${r.keyId}|${r.model}`;
      const g = grouped.get(id) ??
        { day: r.day, keyId: r.keyId, model: r.model, c: zeroCounters() };
      for (const f of FIELDS) g.c[f] += r.counters[f];
      grouped.set(id, g);
    }
    const list = [...grouped.values()].sort((a, b) =>
      a.day.localeCompare(b.day) || a.keyId.localeCompare(b.keyId) || a.model.localeCompare(b.model)
    );
    const name = (id: string) => keys.get(id)?.name ?? id;
    if (values.json) {
      io.out(JSON.stringify(list.map((g) => ({
        date: g.day,
        key_id: g.keyId,
        key_name: name(g.keyId),
        model: g.model,
        input: inputOf(g.c),
        ...g.c,
      }))));
      return 0;
    }
    if (list.length === 0) {
      io.out("no usage recorded for this selection");
      return 0;
    }
    const total = zeroCounters();
    for (const g of list) for (const f of FIELDS) total[f] += g.c[f];
    const line = (day: string, key: string, model: string, c: Counters) => [
      day,
      key,
      model,
      c.requests,
      c.input_uncached,
      c.cache_read,
      c.cache_write,
      inputOf(c),
      c.output,
      c.failed,
      c.incomplete,
    ];
    for (
      const l of table(
        [
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
        ],
        [
          ...list.map((g) => line(g.day, name(g.keyId), g.model, g.c)),
          line("total", "", "", total),
        ],
      )
    ) io.out(l);
    io.out(`(days in ${cfg.usageTz})`);
    return 0;
  });
}

async function importCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {});
  if (values.help) {
    io.out(HELP["import-luna"]);
    return 0;
  }
  if (positionals.length !== 1) throw new CliError("import-luna: give exactly one <keys.json>", 2);
  return await withKv(io, async (kv, keys, cfg) => {
    const r = await importLunaFile(positionals[0], kv, keys, new BucketClock(cfg.usageTz));
    for (const k of r.keys) io.out(`${k.status.padEnd(8)} ${k.id}  ${k.name}`);
    io.out(`${r.imported} imported, ${r.skipped} skipped (already imported)`);
    return 0;
  });
}

async function checkConfigCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {});
  if (values.help) {
    io.out(HELP["check-config"]);
    return 0;
  }
  const path = positionals[0] ?? config(io).modelsPath;
  const reg = await loadRegistry(path).catch((e) => {
    throw new CliError((e as Error).message);
  });
  io.out(
    `${path}: valid (${reg.providers.size} providers, ${reg.knownModels.length} known models)`,
  );
  for (const w of reg.warnings) io.err(`warning: ${path}: ${w}`);
  io.out("");
  for (
    const l of table(
      ["PROVIDER", "FORMAT", "ENDPOINT", "KEY ENV", "KEY SET"],
      [...reg.providers.values()].map((p) => [
        p.id,
        p.format,
        p.endpointUrl,
        p.apiKeyEnv ?? "-",
        !p.apiKeyEnv ? "n/a" : io.env[p.apiKeyEnv] ? "yes" : "no",
      ]),
    )
  ) io.out(l);
  io.out("");
  const routes: (string | number)[][] = [...reg.routing].map(([prefix, chain]) => [
    `${prefix}*`,
    "routing",
    chain.map((p) => p.id).join(" -> "),
  ]);
  for (const p of reg.providers.values()) {
    for (const prefix of p.modelPrefixes) routes.push([`${prefix}*`, "model_prefixes", p.id]);
  }
  for (const l of table(["MODELS", "VIA", "PROVIDERS (in order)"], routes)) io.out(l);
  io.out("");
  for (
    const l of table(
      ["KNOWN MODEL", "PROVIDERS (in order)"],
      reg.knownModels.map((
        m,
      ) => [m.id, reg.resolve(m.id)?.chain.map((p) => p.id).join(" -> ") ?? "-"]),
    )
  ) io.out(l);
  return 0;
}

async function healthcheckCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parse(args, {
    url: { type: "string" },
    timeout: { type: "string" },
  });
  if (values.help) {
    io.out(HELP.healthcheck);
    return 0;
  }
  if (positionals.length) {
    throw new CliError(`healthcheck: unexpected argument "${positionals[0]}"`, 2);
  }
  const port = io.env.PORT || io.env.PROXY_PORT || "8180";
  const url = values.url ?? `http://127.0.0.1:${port}/health`;
  const timeout = Number(values.timeout ?? 5000);
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeout) });
    const body = await res.json().catch(() => ({}));
    if (res.status === 200 && body.status === "ok") {
      io.out(`ok: ${url}`);
      return 0;
    }
    io.err(`unhealthy: ${url} answered ${res.status} ${JSON.stringify(body.status ?? null)}`);
    return 1;
  } catch (e) {
    io.err(`unhealthy: ${url}: ${(e as Error).message}`);
    return 1;
  }
}

async function serveCommand(args: string[], io: Io): Promise<number | null> {
  const { values, positionals } = parse(args, {});
  if (values.help) {
    io.out(HELP.serve);
    return 0;
  }
  if (positionals.length) throw new CliError(`serve: unexpected argument "${positionals[0]}"`, 2);
  const cfg = config(io);
  const { registry, bundled } = await registryFor(cfg, io);
  const gw = await startGateway({ config: cfg, registry, watchConfig: !bundled });
  if (bundled) {
    gw.ctx.log.warn("no models.json found: using the bundled one", { path: cfg.modelsPath });
  }
  const stop = async () => {
    await gw.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  return null;
}

/**
 * Runs a command line. Returns the exit status, or null when the gateway
 * is serving (the process keeps running).
 */
export async function runCli(args: string[], io: Io): Promise<number | null> {
  const [cmd, ...rest] = args;
  try {
    switch (cmd) {
      case undefined:
      case "serve":
        return await serveCommand(rest, io);
      case "keys":
        return await keysCommand(rest, io);
      case "usage":
        return await usageCommand(rest, io);
      case "import-luna":
        return await importCommand(rest, io);
      case "check-config":
        return await checkConfigCommand(rest, io);
      case "healthcheck":
        return await healthcheckCommand(rest, io);
      case "--version":
      case "version":
        io.out(VERSION);
        return 0;
      case "-h":
      case "--help":
      case "help":
        io.out(HELP[rest[0]] ?? HELP.main);
        return 0;
      default:
        throw new CliError(`unknown command "${cmd}" (run with --help for the list)`, 2);
    }
  } catch (e) {
    const status = e instanceof CliError ? e.status : 1;
    io.err(`llm-gateway: ${(e as Error).message}`);
    return status;
  }
}
