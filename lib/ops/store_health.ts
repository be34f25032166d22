/**
 * The store's part of `/health`: whether Deno KV answers a read, whether
 * usage writes and limit checks currently fail, and the usage waiting to
 * reach KV (in memory and in the spill file).
 */
import type { Context } from "../context.ts";

/**
 * One KV read at a time for `/health`. A remote KV's client retries by
 * itself while the server is away, so a read can hang for the whole outage;
 * a probe every few seconds must not pile up such reads.
 */
export class KvProbe {
  #kv: Deno.Kv;
  #timeoutMs: number;
  #pending?: Promise<boolean>;

  constructor(kv: Deno.Kv, timeoutMs = 1000) {
    this.#kv = kv;
    this.#timeoutMs = timeoutMs;
  }

  /** True when a read answered within the timeout (a read still hanging from before counts as no). */
  async answers(): Promise<boolean> {
    this.#pending ??= this.#kv.get(["keys_version"]).then(() => true, () => false).finally(
      () => this.#pending = undefined,
    );
    let timer: ReturnType<typeof setTimeout> | undefined;
    try {
      return await Promise.race([
        this.#pending,
        new Promise<boolean>((resolve) =>
          timer = setTimeout(() => resolve(false), this.#timeoutMs)
        ),
      ]);
    } finally {
      clearTimeout(timer);
    }
  }
}

/** Why the gateway is degraded (serving, with a part of its store failing). */
export type DegradedReason =
  | "kv_unreachable"
  | "usage_writes_failing"
  | "usage_spilled"
  | "limits_fallback";

/** The store's state, as `/health` shows it. */
export interface StoreHealth {
  kvAnswers: boolean;
  degraded: DegradedReason[];
  usageBacklog: {
    requests: number;
    bytes: number;
    spill_bytes: number;
    dropped: number;
    failing_since: string | null;
    last_error: string | null;
  };
  limits: {
    kv: "ok" | "unavailable";
    failing_since: string | null;
    on_kv_failure: { rate_limits: string; quotas: string };
  };
}

const iso = (ms: number | undefined) => ms === undefined ? null : new Date(ms).toISOString();

/** Reads the store's state now (one KV read, at most a second). */
export async function storeHealth(ctx: Context): Promise<StoreHealth> {
  const kvAnswers = await ctx.kvProbe.answers();
  const b = ctx.usageWriter.backlog;
  const l = ctx.limits.unavailable;
  const degraded: DegradedReason[] = [];
  if (!kvAnswers) degraded.push("kv_unreachable");
  if (b.failingSince !== undefined) degraded.push("usage_writes_failing");
  if (b.spillBytes > 0) degraded.push("usage_spilled");
  if (l) degraded.push("limits_fallback");
  return {
    kvAnswers,
    degraded,
    usageBacklog: {
      requests: b.requests,
      bytes: b.bytes,
      spill_bytes: b.spillBytes,
      dropped: b.dropped,
      failing_since: iso(b.failingSince),
      last_error: b.lastError ?? null,
    },
    limits: {
      kv: l ? "unavailable" : "ok",
      failing_since: iso(l?.since),
      on_kv_failure: {
        rate_limits: ctx.config.limitsOnKvFailure.rate,
        quotas: ctx.config.limitsOnKvFailure.quota,
      },
    },
  };
}
