/**
 * Workers: one gateway host served by several processes on one port and one
 * KV. What a process knows about its place among them, how many there are,
 * and how the supervisor starts one more of itself.
 *
 * Workers are whole processes started by a supervisor (lib/ops/supervisor.ts)
 * that share the port with `SO_REUSEPORT`; see docs/architecture.md for why
 * not `deno serve --parallel`.
 */
import { ConfigError } from "../config/env.ts";

/** Another worker, as this one reaches it for `/metrics`. */
export interface Peer {
  /** The worker's number. */
  id: number;
  /** Its private port on 127.0.0.1 (metrics only). */
  port: number;
  /** What it wants in `authorization: Bearer`, so no other local process reads its metrics. */
  token: string;
}

/** This process's place among the gateway's workers (the context holds it). */
export interface WorkerInfo {
  /** This worker's number, 1 to `count`. */
  readonly id: number;
  /** Workers configured (1: the gateway is this one process, no supervisor). */
  readonly count: number;
  /** Workers serving now, this one included, as the supervisor last said. */
  serving: number;
  /** The other workers serving now. */
  peers: Peer[];
}

/** The context's worker view when the gateway is one process. */
export function singleProcess(): WorkerInfo {
  return { id: 1, count: 1, serving: 1, peers: [] };
}

/** A worker's view before the supervisor has said who else serves. */
export function workerInfo(id: number, count: number): WorkerInfo {
  return { id, count, serving: 1, peers: [] };
}

/** Platforms whose `SO_REUSEPORT` spreads connections over processes. */
const SHARES_PORT = new Set(["linux", "android"]);

/** How many workers to run, and why fewer than asked when so. */
export interface WorkerCount {
  count: number;
  /** Set when the platform cannot share a port between processes. */
  fallback?: string;
}

/**
 * The number of workers `WORKERS` asks for on this machine: `auto` is the
 * number of cores. Only Linux spreads one port's connections over processes
 * (`SO_REUSEPORT`); on macOS the last process to bind would get every
 * connection and on Windows the port cannot be shared, so elsewhere the
 * gateway runs as one process.
 */
export function resolveWorkers(
  setting: number | "auto",
  os: string = Deno.build.os,
  cores: number = navigator.hardwareConcurrency,
): WorkerCount {
  const asked = setting === "auto" ? Math.max(1, cores) : setting;
  if (asked > 1 && !SHARES_PORT.has(os)) {
    return {
      count: 1,
      fallback: `${os} cannot share one port between processes (SO_REUSEPORT); serving with 1`,
    };
  }
  return { count: asked };
}

/** The `--worker` value of the worker command line: `<id>/<count>`. */
export function parseWorkerArg(value: string): { id: number; count: number } {
  const m = /^(\d+)\/(\d+)$/.exec(value);
  const id = Number(m?.[1]);
  const count = Number(m?.[2]);
  if (!m || id < 1 || id > count) {
    throw new ConfigError(`--worker ${value}: expected <id>/<count> (set by the supervisor)`);
  }
  return { id, count };
}

/** A permission held without a list (`--allow-read`, not `--allow-read=./data`). */
function granted(desc: Deno.PermissionDescriptor): boolean {
  return Deno.permissions.querySync(desc).state === "granted";
}

/** The Deno flags a worker needs under `deno run`: the unstable APIs and this process's permissions. */
function denoRunFlags(): string[] {
  const flags = ["--unstable-kv", "--unstable-net", "--unstable-no-legacy-abort"];
  for (const name of ["net", "env", "read", "write", "run", "ffi"] as const) {
    if (granted({ name })) flags.push(`--allow-${name}`);
  }
  if (granted({ name: "sys" })) flags.push("--allow-sys");
  else if (granted({ name: "sys", kind: "hostname" })) flags.push("--allow-sys=hostname");
  return flags;
}

/**
 * The command that starts worker `id` of `count`: this executable again,
 * `serve --worker <id>/<count>`. A compiled binary carries its flags inside;
 * under `deno run` the worker gets the unstable flags the gateway needs and
 * each permission this process holds without a list (Deno exposes neither
 * its command line nor the lists of scoped grants).
 */
export function workerCommand(
  id: number,
  count: number,
  standalone: boolean = Deno.build.standalone,
): { command: string; args: string[] } {
  const worker = ["serve", "--worker", `${id}/${count}`];
  return {
    command: Deno.execPath(),
    args: standalone ? worker : ["run", ...denoRunFlags(), Deno.mainModule, ...worker],
  };
}

/**
 * Why this process cannot start workers, or undefined when it can: it needs
 * to run itself (`--allow-run`) and to listen with `reusePort`
 * (`--unstable-net`).
 */
export function workerPrerequisite(): string | undefined {
  if (!granted({ name: "run", command: Deno.execPath() })) {
    return "needs --allow-run (the gateway starts its workers as child processes)";
  }
  // Without --unstable-net a reusePort listen ends the process (status 70) rather than throwing;
  // the flag is seen by an API it brings.
  if (!("listenDatagram" in Deno)) {
    return "needs --unstable-net (workers share the port with reusePort)";
  }
  return undefined;
}
