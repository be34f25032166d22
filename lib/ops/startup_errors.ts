/**
 * Start-up failures told in terms of the setting behind them: a busy port
 * says `PORT 8180 is already in use`, a bad KV path names `KV_PATH` and
 * what is wrong with it. Deno's own messages name a syscall or suggest
 * permission flags that `deno task start` already fixes, so they are kept
 * only as the last resort.
 */
import { dirname, resolve } from "node:path";
import { ConfigError } from "../config/env.ts";
import { errorMessage } from "./log.ts";

/** The reason in a Deno error, without its "run again with --allow-..." advice. */
function reason(e: unknown): string {
  if (e instanceof Deno.errors.NotCapable) {
    return "Deno's permissions for this process do not cover it";
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return "permission denied (the user running the gateway may not use it)";
  }
  return errorMessage(e).replace(/,? run again with the --allow-\S+ flag.*$/s, "")
    .replace(/ \(os error \d+\)/, "");
}

/** Why `Deno.serve` could not listen on HOST:PORT, as one line naming the setting. */
export function listenError(e: unknown, host: string, port: number): ConfigError {
  if (e instanceof Deno.errors.AddrInUse) {
    return new ConfigError(
      `PORT ${port} is already in use; stop the process that holds it or set PORT to a free port`,
    );
  }
  if (e instanceof Deno.errors.AddrNotAvailable) {
    return new ConfigError(`HOST ${host} is not an address of this machine; try HOST=0.0.0.0`);
  }
  if (e instanceof Deno.errors.PermissionDenied) {
    return new ConfigError(
      `PORT ${port}: permission denied${port < 1024 ? " (ports below 1024 need privileges)" : ""}`,
    );
  }
  return new ConfigError(`cannot listen on HOST ${host} PORT ${port}: ${reason(e)}`);
}

async function kind(path: string): Promise<"file" | "folder" | "missing" | "other"> {
  try {
    const s = await Deno.stat(path);
    return s.isDirectory ? "folder" : s.isFile ? "file" : "other";
  } catch (e) {
    // Under a file ("Not a directory"): absent too; the walk up finds the file.
    if (e instanceof Deno.errors.NotFound || e instanceof Deno.errors.NotADirectory) {
      return "missing";
    }
    throw e;
  }
}

/**
 * What is wrong with a KV file path before SQLite sees it (SQLite only
 * says "unable to open database file"): the path is a folder, or one of
 * its parents is a file.
 */
export async function kvPathProblem(path: string): Promise<string | undefined> {
  try {
    if (await kind(path) === "folder") {
      return `is a folder; KV_PATH names the database file (e.g. ${path}/gateway.kv)`;
    }
    for (let dir = dirname(resolve(path)); dir !== dirname(dir); dir = dirname(dir)) {
      const k = await kind(dir);
      if (k === "file") return `${dir} is a file, not a folder`;
      if (k !== "missing") break;
    }
  } catch (e) {
    return reason(e);
  }
  return undefined;
}

/** A KV failure at start, naming KV_PATH. */
export function kvError(path: string, what: string, e: unknown): ConfigError {
  const why = /not a database|malformed/i.test(reason(e))
    ? "the file is not a Deno KV database"
    : reason(e);
  return new ConfigError(`KV_PATH ${path}: ${what}: ${why}`);
}

/**
 * What is wrong with a path that must name a file (MODELS_CONFIG,
 * KEYS_FILE): it is a folder or does not exist.
 */
export async function filePathProblem(path: string): Promise<string | undefined> {
  try {
    const k = await kind(path);
    if (k === "folder") return "is a folder, not a file";
    if (k === "missing") return "does not exist";
  } catch (e) {
    return reason(e);
  }
  return undefined;
}
