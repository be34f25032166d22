/**
 * The gateway's state as a command opens it: the same configuration, KV and
 * `models.json` the server would use (`KV_PATH`, `MODELS_CONFIG`,
 * `USAGE_TZ`, ...), so commands and the server see one world.
 */
import bundledModels from "../../models.json" with { type: "json" };
import { type Config, loadConfig } from "../config/env.ts";
import { loadRegistry, parseRegistry, type Registry } from "../config/registry.ts";
import { BucketClock } from "../ops/clock.ts";
import { openKv } from "../ops/server.ts";
import { requireKey } from "../admin/validation.ts";
import { type KeyRecord, KeyStore } from "../store/keys.ts";
import { usageSeed } from "../store/limits/seed.ts";
import { LimitStore } from "../store/limits/store.ts";
import { Windows } from "../store/limits/windows.ts";
import { newId } from "../ops/ids.ts";
import { systemClock } from "../ops/clock.ts";
import { UsageReader } from "../store/usage/reader.ts";
import type { Io } from "./io.ts";

/** What a command that works on KV may use. */
export interface CliContext {
  config: Config;
  kv: Deno.Kv;
  keys: KeyStore;
  usage: UsageReader;
  /** Read-only here: the standings of keys' limits. */
  limits: LimitStore;
  buckets: BucketClock;
  /** The registry `serve` would load; read on first use (most commands never need it). */
  registry(): Promise<Registry>;
  /** The key an `<id>` argument names; one that does not exist is refused as the API does. */
  key(id: string): KeyRecord;
}

/** The configuration from the command's environment. */
export function cliConfig(io: Io): Config {
  return loadConfig(io.env);
}

/**
 * The bundled registry when neither `MODELS_CONFIG` nor `./models.json`
 * names one, else undefined (the configured file is used).
 */
export async function bundledFallback(cfg: Config, io: Io): Promise<Registry | undefined> {
  if (io.env.MODELS_CONFIG) return undefined;
  try {
    await Deno.stat(cfg.modelsPath);
    return undefined;
  } catch {
    return parseRegistry(bundledModels, "bundled models.json");
  }
}

/** Opens KV with its keys loaded, runs `fn`, and closes KV again. */
export async function withContext<T>(io: Io, fn: (ctx: CliContext) => Promise<T>): Promise<T> {
  const config = cliConfig(io);
  const kv = await openKv(config.kvPath);
  try {
    const keys = new KeyStore(kv);
    await keys.load();
    const buckets = new BucketClock(config.usageTz);
    const usage = new UsageReader(kv);
    const windows = new Windows(config.usageTz);
    const limits = new LimitStore(kv, systemClock, windows, {
      processId: newId(),
      seed: usageSeed(usage, windows),
    });
    let registry: Promise<Registry> | undefined;
    try {
      return await fn({
        config,
        kv,
        keys,
        usage,
        limits,
        buckets,
        registry: () =>
          registry ??= bundledFallback(config, io).then((r) =>
            r ?? loadRegistry(config.modelsPath)
          ),
        key: (id) => requireKey(keys, id, 'ids are listed by "keys list"'),
      });
    } finally {
      await limits.close();
    }
  } finally {
    kv.close();
  }
}
