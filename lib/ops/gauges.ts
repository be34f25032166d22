/**
 * Scrape-time gauges: in-flight requests, open streams, breaker states,
 * configured providers, pending usage and its backlog while KV fails, uptime
 * and build info, read from the live context when `/metrics` is scraped.
 */
import type { Context } from "../context.ts";
import { VERSION } from "./health.ts";

const BREAKER_VALUE = { closed: 0, half_open: 1, open: 2 } as const;

/** Adds the gauges computed from live state at scrape time. */
export function addGauges(ctx: Context): void {
  const m = ctx.metrics;
  m.gauge(
    "gateway_in_flight_requests",
    "Requests being handled now.",
    [],
    () => [[{}, ctx.inflight.size]],
  );
  m.gauge(
    "gateway_open_streams",
    "Streamed responses being relayed now.",
    [],
    () => [[{}, ctx.inflight.streams]],
  );
  m.gauge(
    "gateway_breaker_state",
    "Circuit breaker per provider: 0 closed, 1 half-open, 2 open.",
    ["provider"],
    () =>
      [...ctx.registry.providers.keys()].map((
        id,
      ) => [
        { provider: id },
        BREAKER_VALUE[ctx.health.get(id).view(ctx.clock.now()).state as keyof typeof BREAKER_VALUE],
      ]),
  );
  m.gauge(
    "gateway_provider_configured",
    "1 when the provider's API key is set.",
    ["provider"],
    () =>
      [...ctx.registry.providers.values()].map((p) => [
        { provider: p.id },
        !p.apiKeyEnv || ctx.env(p.apiKeyEnv) ? 1 : 0,
      ]),
  );
  m.gauge(
    "gateway_usage_pending_batches",
    "Usage batches waiting to be written to KV.",
    [],
    () => [[
      {},
      ctx.usageWriter.pending,
    ]],
  );
  m.gauge(
    "gateway_usage_backlog_requests",
    "Finished requests whose usage is held in memory, not yet in KV.",
    [],
    () => [[{}, ctx.usageWriter.backlog.requests]],
  );
  m.gauge(
    "gateway_usage_backlog_bytes",
    "About the memory the usage held in memory takes.",
    [],
    () => [[{}, ctx.usageWriter.backlog.bytes]],
  );
  m.gauge(
    "gateway_usage_spill_bytes",
    "Bytes in the usage spill file, waiting to be replayed into KV.",
    [],
    () => [[{}, ctx.usageWriter.backlog.spillBytes]],
  );
  m.gauge(
    "gateway_kv_writes_failing",
    "1 while KV fails this part's writes (usage: usage is held; limits: the fallback policy applies).",
    ["part"],
    () => [
      [{ part: "usage" }, ctx.usageWriter.backlog.failingSince === undefined ? 0 : 1],
      [{ part: "limits" }, ctx.limits.unavailable ? 1 : 0],
    ],
  );
  m.gauge("gateway_uptime_seconds", "Seconds since the gateway started.", [], () => [[
    {},
    Math.floor((ctx.clock.now() - ctx.startedAt) / 1000),
  ]]);
  m.gauge("gateway_build_info", "Gateway and Deno versions.", ["version", "deno"], () => [[
    { version: VERSION, deno: Deno.version.deno },
    1,
  ]]);
}
