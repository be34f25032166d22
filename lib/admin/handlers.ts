/**
 * The admin API (`/admin/...`): keys and usage reports with Luna's field
 * names (docs/admin-api.md), keyed by key id, never by secret.
 * Every call needs the admin secret (`ADMIN_KEY`).
 */
import type { Context } from "../context.ts";
import { VERSION } from "../ops/health.ts";
import type { Call, Handler } from "../http/call.ts";
import type { RequestUrl } from "../http/request_url.ts";
import { GatewayError } from "../http/errors.ts";
import { jsonResponse, readJsonBody } from "../http/json.ts";
import { KeyNotFound, type KeyRecord } from "../store/keys.ts";
import {
  bucketFields,
  costFields,
  groupSorted,
  inputOf,
  keyUsage,
  periodStats,
  periodTotals,
} from "./reports.ts";
import { fullKeyView, keyView, type KeyViewSources, standingsOf } from "./key_view.ts";
import {
  keyChangesFromBody,
  newKeyFromBody,
  parseDate,
  parseDateRange,
  requireKey,
  rotationGraceMs,
} from "./validation.ts";
import { zeroCounters } from "../store/usage/counters.ts";
import { allWorkersMetrics } from "../ops/peer_metrics.ts";

function findKey(ctx: Context, id: string): KeyRecord {
  return requireKey(ctx.keys, id, "key routes take the id from GET /admin/keys, never the secret");
}

async function keyOp<T>(fn: () => Promise<T>): Promise<T> {
  try {
    return await fn();
  } catch (e) {
    if (e instanceof KeyNotFound) {
      throw new GatewayError(404, "key_not_found", "no API key with that id");
    }
    throw e;
  }
}

/** `GET /admin/keys` */
export async function listKeys(_req: Request, ctx: Context): Promise<Response> {
  const totals = await ctx.usageReader.totals();
  const now = ctx.clock.now();
  const src = sources(ctx);
  const keys = await Promise.all(
    ctx.keys.list().map(async (k) => keyView(k, now, totals.get(k.id), await standingsOf(src, k))),
  );
  return jsonResponse(200, { keys });
}

/** Where key views are read from. */
function sources(ctx: Context): KeyViewSources {
  return { usage: ctx.usageReader, limits: ctx.limits, now: ctx.clock.now() };
}

/** A key's full view: fields, totals and limit standings. */
function fullView(ctx: Context, k: KeyRecord) {
  return fullKeyView(sources(ctx), k);
}

/** `POST /admin/keys` */
export async function createKey(req: Request, ctx: Context): Promise<Response> {
  const input = await newKeyFromBody(await readJsonBody(req, 64 * 1024), () => ctx.registry);
  const { record, secret } = await ctx.keys.create(input);
  ctx.log.info("key created", { key_id: record.id, name: record.name });
  // 200, as Luna answered (scripts check it), though 201 would be the REST habit.
  return jsonResponse(200, { api_key: secret, ...await fullView(ctx, record) });
}

/** `PATCH /admin/keys/{id}`: changes name, enabled, allowlists, limits, expiry, metadata. */
export async function updateKey(
  req: Request,
  ctx: Context,
  { params: p }: Call,
): Promise<Response> {
  findKey(ctx, p.id);
  const changes = await keyChangesFromBody(await readJsonBody(req, 64 * 1024), () => ctx.registry);
  const k = await keyOp(() => ctx.keys.update(p.id, changes));
  ctx.log.info("key changed", {
    key_id: k.id,
    fields: Object.keys(changes).filter((f) => changes[f as keyof typeof changes] !== undefined),
  });
  return jsonResponse(200, await fullView(ctx, k));
}

/** `GET /admin/keys/{id}` */
export async function getKey(_req: Request, ctx: Context, { params: p }: Call): Promise<Response> {
  return jsonResponse(200, await fullView(ctx, findKey(ctx, p.id)));
}

/** `GET /admin/keys/{id}/usage` */
export async function keyUsageReport(
  _req: Request,
  ctx: Context,
  { url, params: p }: Call,
): Promise<Response> {
  const k = findKey(ctx, p.id);
  const { from, to } = dateRange(url);
  const [rows, totals] = await Promise.all([
    ctx.usageReader.byKey(k.id, from, to),
    ctx.usageReader.keyTotals(k.id),
  ]);
  return jsonResponse(200, {
    id: k.id,
    name: k.name,
    enabled: k.enabled,
    usage: keyUsage(rows, totals.lastUsed),
  });
}

/** `POST /admin/keys/{id}/enable|disable` */
export function setEnabled(enabled: boolean): Handler {
  return async (_req: Request, ctx: Context, { params: p }: Call): Promise<Response> => {
    findKey(ctx, p.id);
    const k = await keyOp(() => ctx.keys.setEnabled(p.id, enabled));
    ctx.log.info(enabled ? "key enabled" : "key disabled", { key_id: k.id });
    return jsonResponse(200, { status: enabled ? "enabled" : "disabled", name: k.name, id: k.id });
  };
}

/** `DELETE /admin/keys/{id}` */
export async function deleteKey(
  _req: Request,
  ctx: Context,
  { params: p }: Call,
): Promise<Response> {
  findKey(ctx, p.id);
  const k = await keyOp(() => ctx.keys.delete(p.id));
  ctx.log.info("key deleted", { key_id: k.id });
  return jsonResponse(200, { status: "deleted", name: k.name, id: k.id });
}

/**
 * `POST /admin/keys/{id}/rotate`: a new secret (shown once) for the same
 * key; the old one stops working at once, or after `grace_seconds`.
 */
export async function rotateKey(
  req: Request,
  ctx: Context,
  { params: p }: Call,
): Promise<Response> {
  findKey(ctx, p.id);
  const graceMs = rotationGraceMs(await readJsonBody(req, 4096));
  const { record, secret } = await keyOp(() => ctx.keys.rotate(p.id, graceMs));
  ctx.log.info("key rotated", { key_id: record.id, grace_s: graceMs / 1000 });
  return jsonResponse(200, { status: "rotated", api_key: secret, ...await fullView(ctx, record) });
}

/** `GET /admin/usage` */
export async function usageSummary(_req: Request, ctx: Context): Promise<Response> {
  const totals = await ctx.usageReader.totals();
  const c = zeroCounters();
  for (const t of totals.values()) {
    for (const f of Object.keys(c) as (keyof typeof c)[]) c[f] += t.counters[f];
  }
  const keys = ctx.keys.list();
  return jsonResponse(200, {
    total_input_tokens: inputOf(c),
    total_output_tokens: c.output,
    total_requests: c.requests,
    total_keys: keys.length,
    active_keys: keys.filter((k) => k.enabled).length,
    ...bucketFields(c),
    ...costFields(c),
  });
}

/** `date`, or `from`/`to`, from the query string. */
function dateRange(url: RequestUrl) {
  const q = url.searchParams;
  return parseDateRange({ date: q.get("date"), from: q.get("from"), to: q.get("to") });
}

function keyName(ctx: Context) {
  return (id: string) => ctx.keys.get(id)?.name ?? id;
}

/** `GET /admin/usage/daily?date=YYYY-MM-DD` (or `from`/`to`; all days when absent) */
export async function dailyReport(
  _req: Request,
  ctx: Context,
  { url }: Call,
): Promise<Response> {
  const { from, to } = dateRange(url);
  const rows = await ctx.usageReader.byTime(from, to);
  const name = keyName(ctx);
  const days = groupSorted(rows, (r) => r.day).map(([date, list]) => ({
    date,
    ...periodTotals(list, name),
    keys: groupSorted(list, (r) => r.keyId).map(([id, kl]) => ({
      id,
      name: name(id),
      ...periodStats(kl),
    })),
  }));
  return jsonResponse(200, { days });
}

/** `GET /admin/usage/hourly?date=YYYY-MM-DD` (today in `USAGE_TZ` when absent) */
export async function hourlyReport(
  _req: Request,
  ctx: Context,
  { url }: Call,
): Promise<Response> {
  const date = parseDate(url.searchParams.get("date"), "date") ??
    ctx.buckets.today(ctx.clock.now());
  const rows = await ctx.usageReader.byTime(date, date);
  const name = keyName(ctx);
  const hours = groupSorted(rows, (r) => `${r.day} ${r.hour}:00`).map(([hour, list]) => ({
    hour,
    ...periodTotals(list, name),
  }));
  return jsonResponse(200, { date, time_zone: ctx.buckets.timeZone, hours });
}

/** `GET /admin/info`: the version, the usage calendar and the request log's retention. */
export function adminInfo(_req: Request, ctx: Context): Response {
  const today = ctx.buckets.today(ctx.clock.now());
  return jsonResponse(200, {
    version: VERSION,
    time_zone: ctx.buckets.timeZone,
    today,
    month: today.slice(0, 7),
    request_log_days: ctx.config.requestLogDays,
  });
}

/** `GET /admin/models`: providers with key and health status, models, routing, config state. */
export function modelsStatus(_req: Request, ctx: Context): Response {
  const reg = ctx.registry;
  const now = ctx.clock.now();
  const iso = (ms: number) => new Date(ms).toISOString();
  return jsonResponse(200, {
    providers: [...reg.providers.values()].map((p) => {
      const h = ctx.health.get(p.id).view(now);
      return {
        id: p.id,
        name: p.name,
        format: p.format.name,
        base_url: p.baseUrl,
        api_key_env: p.apiKeyEnv ?? null,
        has_api_key: !p.apiKeyEnv || !!ctx.env(p.apiKeyEnv),
        model_prefixes: p.modelPrefixes,
        breaker: {
          state: h.state,
          consecutive_failures: h.consecutive_failures,
          open_until: h.open_until,
        },
        last_success: h.last_success,
        recent_error: h.recent_error,
        latency_ms: h.latency_ms,
        requests: h.requests,
        failures: h.failures,
        policy: p.policy,
      };
    }),
    known_models: reg.knownModels.map((m) => ({
      id: m.id,
      provider: m.provider,
      owned_by: m.ownedBy,
    })),
    routing: Object.fromEntries(
      [...reg.routing].map(([prefix, chain]) => [prefix, chain.map((p) => p.id)]),
    ),
    config: {
      path: ctx.config.modelsPath,
      loaded_at: iso(ctx.registryStatus.loadedAt),
      last_reload_error: ctx.registryStatus.error
        ? { message: ctx.registryStatus.error.message, at: iso(ctx.registryStatus.error.at) }
        : null,
    },
  });
}

/**
 * `GET /metrics`: Prometheus text; needs the admin key unless
 * `METRICS_PUBLIC=true`. With several workers, every serving worker's
 * metrics, each labelled with its `worker`.
 */
export async function metricsEndpoint(req: Request, ctx: Context): Promise<Response> {
  if (!ctx.config.metricsPublic) await ctx.admin.check(req.headers, ctx.keys);
  const text = ctx.worker.count > 1
    ? await allWorkersMetrics(
      ctx.metrics,
      ctx.worker,
      (worker, why) =>
        ctx.log.warn("a worker's metrics are missing from this scrape", { of_worker: worker, why }),
    )
    : ctx.metrics.render();
  return new Response(text, {
    headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
  });
}
