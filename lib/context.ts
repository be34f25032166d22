/**
 * The context handed to every handler: configuration, registry, stores,
 * clock and logger. No module keeps mutable state of its own.
 */
import type { AdminAuth } from "./http/auth.ts";
import type { BucketClock, Clock } from "./ops/clock.ts";
import type { HealthBook } from "./upstream/breaker.ts";
import type { Config } from "./config/env.ts";
import type { Deadlines } from "./upstream/deadlines.ts";
import type { Inflight } from "./ops/inflight.ts";
import type { KvProbe } from "./ops/store_health.ts";
import type { KeyStore } from "./store/keys.ts";
import type { LimitStore } from "./store/limits/store.ts";
import type { Logger } from "./ops/log.ts";
import type { Metrics } from "./ops/metrics.ts";
import type { Registry } from "./config/registry.ts";
import type { UsageReader } from "./store/usage/reader.ts";
import type { UsageWriter } from "./store/usage/writer.ts";
import type { WorkerInfo } from "./ops/workers.ts";

/** Everything a handler may use. */
export interface Context {
  config: Config;
  /** The registry in force; replaced as a whole on reload (requests keep the one they started with). */
  registry: Registry;
  kv: Deno.Kv;
  /** Whether KV answers a read (for `/health`, one read at a time). */
  kvProbe: KvProbe;
  keys: KeyStore;
  /** Per-key limits, exact across processes. */
  limits: LimitStore;
  /** Records finished requests' usage (write-behind). */
  usageWriter: UsageWriter;
  /** Reads usage back (after this process's pending writes). */
  usageReader: UsageReader;
  buckets: BucketClock;
  clock: Clock;
  log: Logger;
  admin: AdminAuth;
  /** Reads provider secrets (the env vars `api_key_env` names). */
  env: (name: string) => string | undefined;
  /** Upstream fetch. */
  fetch: typeof fetch;
  /** Timeouts of requests in flight, on one shared ticker. */
  deadlines: Deadlines;
  /** Prometheus metrics. */
  metrics: Metrics;
  /** Circuit breakers and health of each provider. */
  health: HealthBook;
  /** Requests in flight (for graceful shutdown). */
  inflight: Inflight;
  /** Outcome of the last `models.json` load (reloads may fail and keep the old registry). */
  registryStatus: RegistryStatus;
  /** Epoch ms when the gateway started. */
  startedAt: number;
  /** This process's place among the gateway's workers (id 1 of 1 without workers). */
  worker: WorkerInfo;
}

/** The state of the model registry's last (re)load. */
export interface RegistryStatus {
  /** Epoch ms the registry in force was loaded. */
  loadedAt: number;
  /** The last failed reload, when it came after the last good one. */
  error?: { message: string; at: number };
}
