/**
 * `serve` (the default command): starts the gateway and stops it cleanly on
 * SIGTERM or SIGINT. The process keeps running, so it answers null.
 *
 * With `WORKERS` (or `--workers`) above 1 this process becomes the
 * supervisor of that many workers (lib/ops/supervisor.ts), each of them
 * this executable again as `serve --worker <id>/<count>`.
 */
import { ConfigError, loadConfig, MAX_WORKERS } from "../config/env.ts";
import { Logger } from "../ops/log.ts";
import { listenForPeers } from "../ops/peer_metrics.ts";
import { type Gateway, startGateway } from "../ops/server.ts";
import { startSupervisor, WorkerStartFailed } from "../ops/supervisor.ts";
import { announceReady, listenToSupervisor } from "../ops/worker_channel.ts";
import {
  parseWorkerArg,
  resolveWorkers,
  type WorkerInfo,
  workerInfo,
  workerPrerequisite,
} from "../ops/workers.ts";
import type { Config } from "../config/env.ts";
import { noMoreThan, parse } from "./args.ts";
import { bundledFallback } from "./context.ts";
import { HELP } from "./help.ts";
import { CliError, type Command, type Io } from "./io.ts";

/** `serve [--workers N|auto]` */
export const serveCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {
    workers: { type: "string" },
    worker: { type: "string" },
  });
  if (values.help) {
    io.out(HELP.serve);
    return 0;
  }
  noMoreThan(positionals, 0, "serve");
  const config = serveConfig(io, values.workers);
  if (values.worker) return await serveAsWorker(config, values.worker, io);
  const { count, fallback } = resolveWorkers(config.workers);
  if (count > 1) return await supervise(config, count);
  const gw = await runGateway(config, io);
  if (fallback) gw.ctx.log.warn("WORKERS ignored", { workers: config.workers, why: fallback });
  onSignals(["SIGINT", "SIGTERM"], async () => {
    await gw.shutdown();
    Deno.exit(0);
  });
  return null;
};

/** The configuration, with `--workers` in place of `WORKERS` when given. */
function serveConfig(io: Io, workers: string | undefined): Config {
  if (workers === undefined) return loadConfig(io.env);
  try {
    return loadConfig({ ...io.env, WORKERS: workers });
  } catch (e) {
    if (!(e instanceof ConfigError) || !e.message.includes("WORKERS")) throw e;
    throw new CliError(
      `serve: --workers ${workers}: expected auto or a whole number 1 to ${MAX_WORKERS}`,
      2,
    );
  }
}

/** Starts the gateway in this process (alone, or as one worker). */
async function runGateway(config: Config, io: Io, worker?: WorkerInfo): Promise<Gateway> {
  const bundled = await bundledFallback(config, io);
  const gw = await startGateway({ config, registry: bundled, watchConfig: !bundled, worker });
  if (bundled) {
    // There is no file to reload, but SIGHUP must not end the process (its default action).
    onSignals(
      ["SIGHUP"],
      () =>
        gw.ctx.log.warn("SIGHUP: nothing to reload on the bundled models.json", {
          hint: "set MODELS_CONFIG or create ./models.json",
        }),
    );
    gw.ctx.log.warn("no models.json found: using the bundled one", { path: config.modelsPath });
  }
  return gw;
}

/** Listens for signals; those the platform lacks (SIGHUP on Windows) are skipped. */
function onSignals(signals: Deno.Signal[], handler: () => void): void {
  for (const s of signals) {
    try {
      Deno.addSignalListener(s, handler);
    } catch {
      // No such signal on this platform.
    }
  }
}

/** This process supervises `count` workers until SIGTERM or SIGINT. */
async function supervise(config: Config, count: number): Promise<number | null> {
  const problem = workerPrerequisite();
  if (problem) throw new ConfigError(`WORKERS=${config.workers} ${problem}`);
  const log = new Logger(config.logLevel, config.logFormat);
  let sup;
  try {
    sup = await startSupervisor({ config, count, log });
  } catch (e) {
    if (!(e instanceof WorkerStartFailed)) throw e;
    log.error("the gateway did not start", { error: e.message });
    return e.code || 1;
  }
  const { stop, reload } = sup;
  onSignals(["SIGHUP"], reload);
  onSignals(["SIGINT", "SIGTERM"], async () => {
    await stop();
    Deno.exit(0);
  });
  return null;
}

/**
 * This process is worker `<id>/<count>` (`serve --worker`, started by the
 * supervisor): it serves with `reusePort`, announces itself, learns the
 * other workers from its stdin, and drains when stdin ends (the supervisor
 * asks it to stop, or is gone) or on its own SIGTERM/SIGINT.
 */
async function serveAsWorker(config: Config, arg: string, io: Io): Promise<null> {
  const { id, count } = parseWorkerArg(arg);
  const worker = workerInfo(id, count);
  const supervisorGone = Promise.withResolvers<void>();
  listenToSupervisor((p) => {
    worker.serving = p.serving;
    worker.peers = p.peers.filter((x) => x.id !== id);
  }, supervisorGone.resolve);
  const gw = await runGateway(config, io, worker);
  const peers = listenForPeers(gw.ctx.metrics, worker);
  let stopping: Promise<void> | undefined;
  const stop = () =>
    stopping ??= (async () => {
      await gw.shutdown();
      await peers.close();
      Deno.exit(0);
    })();
  onSignals(["SIGINT", "SIGTERM"], stop);
  supervisorGone.promise.then(stop);
  announceReady({ port: gw.port, metrics: { port: peers.port, token: peers.token } });
  return null;
}
