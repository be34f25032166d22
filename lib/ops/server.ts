/**
 * Building the context and running the HTTP server: what `main.ts` and the
 * end-to-end tests both use.
 */
import { dirname } from "node:path";
import { AdminAuth } from "../http/auth.ts";
import { HealthBook } from "../upstream/breaker.ts";
import { Deadlines } from "../upstream/deadlines.ts";
import { BucketClock, type Clock, systemClock } from "./clock.ts";
import type { Config } from "../config/env.ts";
import type { Context } from "../context.ts";
import { Inflight } from "./inflight.ts";
import { KeyStore } from "../store/keys.ts";
import { errorMessage, Logger, type Sink } from "./log.ts";
import { addGauges } from "./gauges.ts";
import { Metrics } from "./metrics.ts";
import { importLunaFile } from "../store/luna_import.ts";
import { loadRegistry, type Registry, RegistryError } from "../config/registry.ts";
import { logRegistryWarnings, watchRegistry } from "../config/reload.ts";
import { ConfigError } from "../config/env.ts";
import { filePathProblem, kvError, kvPathProblem, listenError } from "./startup_errors.ts";
import { createRouter } from "../http/router.ts";
import { fallbackShape, ROUTES } from "../http/routes.ts";
import { usageSeed } from "../store/limits/seed.ts";
import { Windows } from "../store/limits/windows.ts";
import { UsageReader } from "../store/usage/reader.ts";
import { singleProcess, type WorkerInfo } from "./workers.ts";
import { adoptSpills, createLimitStore, createUsageWriter, spillPathOf } from "./stores.ts";
import { KvProbe } from "./store_health.ts";

/** What a gateway is built from; everything but `config` has a production default. */
export interface GatewayOptions {
  config: Config;
  /** Watch `config.modelsPath` for changes (default: when the registry is read from it). */
  watchConfig?: boolean;
  kv?: Deno.Kv;
  registry?: Registry;
  clock?: Clock;
  env?: (name: string) => string | undefined;
  fetch?: typeof fetch;
  logSink?: Sink;
  /** This process's place among workers (default: the gateway is one process). */
  worker?: WorkerInfo;
}

/**
 * Reads the process environment once per name: a process's environment does
 * not change under it, and provider secrets are looked up on every request.
 */
function processEnv(): (name: string) => string | undefined {
  const seen = new Map<string, string | undefined>();
  return (name) => {
    if (!seen.has(name)) seen.set(name, Deno.env.get(name));
    return seen.get(name);
  };
}

/**
 * Opens Deno KV at a file path (creating its folder), a URL, or `:memory:`.
 * Failures throw a `ConfigError` naming KV_PATH and what is wrong.
 */
export async function openKv(path: string): Promise<Deno.Kv> {
  if (path !== ":memory:" && !/^https?:\/\//.test(path)) {
    const problem = await kvPathProblem(path);
    if (problem) throw new ConfigError(`KV_PATH ${path}: ${problem}`);
    try {
      await Deno.mkdir(dirname(path), { recursive: true });
    } catch (e) {
      throw kvError(path, `cannot create the folder ${dirname(path)}`, e);
    }
  }
  try {
    return await Deno.openKv(path);
  } catch (e) {
    throw kvError(path, "cannot open the database", e);
  }
}

/** Loads MODELS_CONFIG; failures name the setting. */
async function loadConfiguredRegistry(path: string): Promise<Registry> {
  try {
    return await loadRegistry(path);
  } catch (e) {
    if (e instanceof RegistryError) throw new ConfigError(`MODELS_CONFIG ${e.message}`);
    throw e;
  }
}

/** Builds the handler context and loads keys. */
async function createContext(opts: GatewayOptions): Promise<Context> {
  const { config } = opts;
  const clock = opts.clock ?? systemClock;
  const worker = opts.worker ?? singleProcess();
  const log = new Logger(
    config.logLevel,
    config.logFormat,
    opts.logSink,
    clock,
    worker.count > 1 ? { worker: worker.id } : {},
  );
  const kv = opts.kv ?? await openKv(config.kvPath);
  const buckets = new BucketClock(config.usageTz);
  const keys = new KeyStore(kv, clock);
  await keys.load();
  const metrics = new Metrics(config.metricsPerKey);
  const spillPath = config.spillPath && spillPathOf(config.spillPath, worker.id, worker.count);
  if (config.spillPath && spillPath && worker.id === 1) {
    const adopted = await adoptSpills(config.spillPath, spillPath, worker.count);
    if (adopted) log.warn("usage spilled by earlier processes adopted", { spill_file: spillPath });
  }
  const usageWriter = createUsageWriter(kv, config, buckets, clock, log, metrics, spillPath);
  await usageWriter.start().catch((e) => {
    throw new ConfigError(`SPILL_PATH ${config.spillPath}: ${errorMessage(e)}`);
  });
  const usageReader = new UsageReader(kv, () => usageWriter.flush());
  const windows = new Windows(config.usageTz);
  const ctx: Context = {
    config,
    registry: opts.registry ?? await loadConfiguredRegistry(config.modelsPath),
    kv,
    kvProbe: new KvProbe(kv),
    keys,
    usageWriter,
    usageReader,
    limits: createLimitStore(kv, config, clock, windows, usageSeed(usageReader, windows), log),
    buckets,
    clock,
    log,
    admin: new AdminAuth(config.adminKey),
    env: opts.env ?? processEnv(),
    fetch: opts.fetch ?? fetch,
    health: new HealthBook(),
    inflight: new Inflight(),
    registryStatus: { loadedAt: clock.now() },
    metrics,
    deadlines: new Deadlines(),
    startedAt: clock.now(),
    worker,
  };
  addGauges(ctx);
  return ctx;
}

/** A running gateway. */
export interface Gateway {
  ctx: Context;
  /** Base URL, e.g. `http://127.0.0.1:8180`. */
  url: string;
  /** The port it listens on (the real one when PORT is 0). */
  port: number;
  /** Stops accepting, lets in-flight requests finish, writes usage, closes KV. */
  shutdown(): Promise<void>;
  /** Resolves once the gateway has shut down. */
  finished: Promise<void>;
}

/** Imports KEYS_FILE; failures name the setting. */
async function importKeysFile(ctx: Context, path: string) {
  const problem = await filePathProblem(path);
  if (problem) throw new ConfigError(`KEYS_FILE ${path}: ${problem}`);
  try {
    return await importLunaFile(path, ctx.kv, ctx.keys, ctx.buckets);
  } catch (e) {
    throw new ConfigError(`KEYS_FILE ${errorMessage(e)}`);
  }
}

/** Starts the gateway: imports `KEYS_FILE` when set, then serves. */
export async function startGateway(opts: GatewayOptions): Promise<Gateway> {
  const ctx = await createContext(opts);
  try {
    return await serve(ctx, opts);
  } catch (e) {
    ctx.keys.close();
    await ctx.limits.close();
    await ctx.usageWriter.close();
    if (!opts.kv) ctx.kv.close();
    throw e;
  }
}

async function serve(ctx: Context, opts: GatewayOptions): Promise<Gateway> {
  const { config, log } = ctx;
  // Worker 1 imports for all: it starts before the others (and the import is idempotent anyway).
  if (config.keysFile && ctx.worker.id === 1) {
    const r = await importKeysFile(ctx, config.keysFile);
    log.info("luna keys imported", {
      file: config.keysFile,
      imported: r.imported,
      skipped: r.skipped,
    });
    if (r.differing) {
      log.warn("luna keys differ from KEYS_FILE; the gateway's copy was left as it is", {
        file: config.keysFile,
        keys: r.keys.filter((k) => k.differs).map(({ id, name, differs }) => ({
          id,
          name,
          differs,
        })),
      });
    }
  }
  const handler = createRouter(ctx, ROUTES, fallbackShape);
  let server: Deno.HttpServer<Deno.NetAddr>;
  try {
    server = Deno.serve(
      {
        port: config.port,
        hostname: config.host,
        // Workers share the port: the kernel spreads connections over them (Linux).
        reusePort: ctx.worker.count > 1,
        onListen: () => {},
        // The router answers every error itself; this sees failures while a response is sent.
        onError: (e) => {
          log.error("response failed", { error: errorMessage(e) });
          return new Response(null, { status: 500 });
        },
      },
      handler,
    );
  } catch (e) {
    throw listenError(e, config.host, config.port);
  }
  ctx.keys.watch(
    config.keysRefreshMs,
    (e) => log.warn("key reload failed", { error: errorMessage(e) }),
  );
  const addr = server.addr;
  const host = addr.hostname === "0.0.0.0" || addr.hostname === "::" ? "127.0.0.1" : addr.hostname;
  const url = `http://${host.includes(":") ? `[${host}]` : host}:${addr.port}`;
  log.info("gateway listening", {
    address: `${addr.hostname}:${addr.port}`,
    kv: opts.kv ? "(provided)" : config.kvPath,
    models_config: config.modelsPath,
    providers: ctx.registry.providers.size,
    models: ctx.registry.knownModels.length,
    admin_api: ctx.admin.enabled ? "enabled" : "disabled (set ADMIN_KEY)",
    usage_tz: config.usageTz,
  });
  logRegistryWarnings(ctx, opts.registry ? "(provided)" : config.modelsPath, ctx.registry);
  const stopWatching = (opts.watchConfig ?? !opts.registry)
    ? watchRegistry(ctx, config.modelsPath)
    : () => {};
  let stopping: Promise<void> | undefined;
  const shutdown = () =>
    stopping ??= (async () => {
      log.info("shutting down", { in_flight: ctx.inflight.size, grace_ms: config.shutdownGraceMs });
      stopWatching();
      const closed = server.shutdown();
      if (!await ctx.inflight.idle(config.shutdownGraceMs)) {
        log.warn("grace period over: ending the requests still in flight", {
          in_flight: ctx.inflight.size,
        });
        ctx.inflight.abortAll("the gateway is shutting down");
        await ctx.inflight.idle(5000);
      }
      await Promise.race([closed, new Promise((r) => setTimeout(r, 5000))]);
      ctx.keys.close();
      ctx.deadlines.close();
      const unsettled = await ctx.limits.close();
      if (unsettled > 0) {
        log.warn("limit settlements not written: KV is failing", { settlements: unsettled });
      }
      // Writes the usage still held; what KV does not take goes to the spill file.
      await ctx.usageWriter.close();
      if (!opts.kv) ctx.kv.close();
      log.info("gateway stopped");
    })();
  return { ctx, url, port: addr.port, shutdown, finished: server.finished.then(() => stopping) };
}
