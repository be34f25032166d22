/**
 * The supervisor: the process `serve` becomes when `WORKERS` is above 1. It
 * serves nothing itself; it starts the workers (this executable again, see
 * `workerCommand`), relays their log lines, tells them who else serves,
 * restarts one that dies (with backoff, so a crash loop does not spin), and
 * on SIGTERM/SIGINT drains them all and exits once every one has exited.
 *
 * Worker 1 starts alone first: a start-up error (a bad setting, a busy
 * port, an unreadable KV) is then reported once and ends the supervisor
 * with worker 1's exit status, and a `PORT=0` listen's real port is known
 * before the others join it.
 */
import type { Config } from "../config/env.ts";
import { errorMessage, type Logger } from "./log.ts";
import { listenError } from "./startup_errors.ts";
import { peersLine, type Ready, relayWorkerOutput, writeStdout } from "./worker_channel.ts";
import { workerCommand } from "./workers.ts";

/** Restart delay after the first failure; doubled per failure in a row. */
const FIRST_RESTART_MS = 500;
/** Longest restart delay (a crash loop settles at one start per this). */
const MAX_RESTART_MS = 30_000;
/** A worker that served this long before dying starts a new failure count. */
const STABLE_MS = 30_000;
/** After the drain's grace period: time for a worker to end streams, close and write usage. */
const DRAIN_MARGIN_MS = 20_000;

/** How the supervisor starts a worker (tests and the real one: this executable). */
export type SpawnWorker = (id: number, count: number, port: number) => Deno.ChildProcess;

/** What {@link startSupervisor} needs. */
export interface SupervisorOptions {
  config: Config;
  count: number;
  log: Logger;
  /** Where relayed worker lines go (default: stdout). */
  out?: (bytes: Uint8Array) => void;
  spawn?: SpawnWorker;
}

/** The running supervisor. */
export interface Supervisor {
  /** The port every worker serves. */
  port: number;
  /** Drains every worker; resolves when all have exited. */
  stop(): Promise<void>;
  /** Passes SIGHUP (reload models.json) on to every worker. */
  reload(): void;
}

/** Thrown when worker 1 exits before it serves: the gateway cannot start. */
export class WorkerStartFailed extends Error {
  constructor(readonly code: number) {
    super(`worker 1 exited with status ${code} before serving (its error is above)`);
  }
}

interface Slot {
  id: number;
  proc?: Deno.ChildProcess;
  stdin?: WritableStreamDefaultWriter<Uint8Array>;
  ready?: Ready;
  readyAt?: number;
  failures: number;
  restart?: ReturnType<typeof setTimeout>;
  exited?: Promise<Deno.CommandStatus>;
}

/** Starts this executable again as worker `id` of `count`, serving `port`. */
function spawnSelf(id: number, count: number, port: number): Deno.ChildProcess {
  const { command, args } = workerCommand(id, count);
  return new Deno.Command(command, {
    args,
    env: { PORT: String(port) },
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

/**
 * Checks that HOST:PORT is free before the workers bind it with
 * `reusePort` (which would otherwise quietly share it with another process
 * of this user that also set `SO_REUSEPORT`).
 */
function checkPortFree(host: string, port: number): void {
  if (port === 0) return;
  let probe: Deno.Listener;
  try {
    probe = Deno.listen({ hostname: host, port });
  } catch (e) {
    throw listenError(e, host, port);
  }
  probe.close();
}

/** Starts `count` workers; resolves once worker 1 serves and the others serve or failed. */
export async function startSupervisor(opts: SupervisorOptions): Promise<Supervisor> {
  const { config, count, log } = opts;
  const spawn = opts.spawn ?? spawnSelf;
  const out = opts.out ?? writeStdout;
  checkPortFree(config.host, config.port);
  let port = config.port;
  /** Worker 1 has served: from then on a worker that exits is restarted. */
  let started = false;
  let stopping = false;
  const slots: Slot[] = Array.from({ length: count }, (_, i) => ({ id: i + 1, failures: 0 }));

  const tell = () => {
    const peers = slots.filter((s) => s.ready).map((s) => ({ id: s.id, ...s.ready!.metrics }));
    const line = peersLine({ serving: peers.length, peers });
    for (const s of slots) {
      if (s.ready) s.stdin?.write(line).catch(() => {});
    }
  };

  /** Starts a slot's worker; resolves true once it serves, false if it exits first. */
  const launch = (slot: Slot): Promise<boolean> => {
    const proc = spawn(slot.id, count, port);
    log.info("worker started", { worker: slot.id, pid: proc.pid });
    slot.proc = proc;
    slot.stdin = proc.stdin.getWriter();
    let served!: (ok: boolean) => void;
    const serving = new Promise<boolean>((r) => served = r);
    const relayed = relayWorkerOutput(proc.stdout, out, (ready) => {
      if (port === 0) port = ready.port;
      slot.ready = ready;
      slot.readyAt = performance.now();
      served(true);
      tell();
    }).catch(() => {});
    slot.exited = proc.status.then(async (status) => {
      await relayed;
      slot.proc = slot.stdin = slot.ready = undefined;
      served(false);
      if (started && !stopping) {
        restartLater(slot, "worker exited; restarting it", {
          code: status.code,
          signal: status.signal,
        });
      }
      tell();
      return status;
    });
    return serving;
  };

  const restartLater = (slot: Slot, why: string, fields: Record<string, unknown>) => {
    const stable = slot.readyAt !== undefined && performance.now() - slot.readyAt >= STABLE_MS;
    slot.failures = stable ? 1 : slot.failures + 1;
    slot.readyAt = undefined;
    const delay = Math.min(MAX_RESTART_MS, FIRST_RESTART_MS * 2 ** (slot.failures - 1));
    log.error(why, { worker: slot.id, ...fields, restart_in_ms: delay });
    slot.restart = setTimeout(async () => {
      slot.restart = undefined;
      if (stopping) return;
      let served;
      try {
        served = await launch(slot);
      } catch (e) {
        return restartLater(slot, "cannot start worker; retrying", { error: errorMessage(e) });
      }
      if (served) log.info("worker serving again", { worker: slot.id });
    }, delay);
  };

  log.info("starting workers", { workers: count, address: `${config.host}:${port}` });
  const [first, ...rest] = slots;
  if (!await launch(first)) {
    const status = await first.exited!;
    throw new WorkerStartFailed(status.code);
  }
  started = true;
  await Promise.all(rest.map(launch));
  log.info("workers serving", {
    workers: slots.filter((s) => s.ready).length,
    of: count,
    address: `${config.host}:${port}`,
  });

  let stopped: Promise<void> | undefined;
  const stop = () =>
    stopped ??= (async () => {
      stopping = true;
      log.info("stopping workers", { workers: slots.filter((s) => s.proc).length });
      for (const s of slots) {
        clearTimeout(s.restart);
        s.stdin?.close().catch(() => {});
      }
      let timer: ReturnType<typeof setTimeout> | undefined;
      const deadline = new Promise<void>((r) =>
        timer = setTimeout(r, config.shutdownGraceMs + DRAIN_MARGIN_MS)
      );
      const all = Promise.all(slots.map((s) => s.exited));
      await Promise.race([all, deadline]);
      clearTimeout(timer);
      for (const s of slots) {
        if (!s.proc) continue;
        log.warn("worker did not stop in time; killing it", { worker: s.id });
        try {
          s.proc.kill("SIGKILL");
        } catch {
          // already gone
        }
      }
      await all;
      log.info("workers stopped");
    })();

  const reload = () => {
    for (const s of slots) {
      try {
        s.proc?.kill("SIGHUP");
      } catch {
        // exited meanwhile: it reads models.json afresh when restarted
      }
    }
  };
  return { port, stop, reload };
}
