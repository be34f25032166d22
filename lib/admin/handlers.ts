/**
 * The admin API (`/admin/...`): keys and usage reports with Luna's field
 * names (see ADMIN_API.md in README), keyed by key id, never by secret.
 * Every call needs the admin secret (`ADMIN_KEY`).
 */
import type { z } from "zod";
import type { Context } from "../context.ts";
import type { RequestUrl } from "../http/request_url.ts";
import { errors, GatewayError } from "../http/errors.ts";
import { jsonResponse } from "../formats/format.ts";
import { KeyNotFound, type KeyRecord } from "../store/keys.ts";
import {
  bucketFields,
  groupSorted,
  inputOf,
  keyUsage,
  periodStats,
  periodTotals,
} from "./reports.ts";
import { CreateKeyBody } from "./schemas.ts";
import { type KeyTotals, zeroCounters } from "../store/usage.ts";
import { clip } from "../http/client_text.ts";

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

type Params = Record<string, string>;

/** An admin error body: Luna's `detail` plus a structured `error`. */
export function adminError(status: number, message: string, code: string): Response {
  return jsonResponse(status, { detail: message, error: { message, type: code, code } });
}

async function jsonBody(req: Request, max: number): Promise<unknown> {
  const text = await req.text();
  if (text.length > max) throw errors.tooLarge(max);
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw errors.badRequest(
      "invalid_json",
      `request body is not valid JSON: ${(e as Error).message}`,
    );
  }
}

function validate<T>(schema: z.ZodType<T>, raw: unknown): T {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const where = issue.path.length ? `${issue.path.join(".")}: ` : "";
  throw errors.badRequest("invalid_body", `${where}${issue.message}`);
}

function findKey(ctx: Context, id: string): KeyRecord {
  const k = ctx.keys.get(id);
  if (!k || k.deleted) {
    throw new GatewayError(
      404,
      "key_not_found",
      "no API key with that id (key routes take the id from GET /admin/keys, never the secret)",
    );
  }
  return k;
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

/** The listing form of a key (no secret, ever). */
export function keyView(k: KeyRecord, t?: KeyTotals) {
  const c = t?.counters ?? zeroCounters();
  return {
    id: k.id,
    key: k.masked,
    name: k.name,
    enabled: k.enabled,
    created: k.created,
    allowed_providers: k.allowedProviders ?? null,
    source: k.source,
    total_input: inputOf(c),
    total_output: c.output,
    total_requests: c.requests,
    last_used: t?.lastUsed ? new Date(t.lastUsed).toISOString() : null,
    ...bucketFields(c),
  };
}

function checkProviders(ctx: Context, ids: string[] | null | undefined): void {
  for (const id of ids ?? []) {
    if (!ctx.registry.providers.has(id)) {
      throw errors.badRequest(
        "unknown_provider",
        `allowed_providers: unknown provider "${clip(id)}"`,
      );
    }
  }
}

/** `GET /admin/keys` */
export async function listKeys(_req: Request, ctx: Context): Promise<Response> {
  const totals = await ctx.usage.totals();
  return jsonResponse(200, { keys: ctx.keys.list().map((k) => keyView(k, totals.get(k.id))) });
}

/** `POST /admin/keys` */
export async function createKey(req: Request, ctx: Context): Promise<Response> {
  const body = validate(CreateKeyBody, await jsonBody(req, 64 * 1024));
  checkProviders(ctx, body.allowed_providers);
  const { record, secret } = await ctx.keys.create({
    name: body.name,
    allowedProviders: body.allowed_providers ?? undefined,
    enabled: body.enabled,
  });
  ctx.log.info("key created", { key_id: record.id, name: record.name });
  // 200, as Luna answered (scripts check it), though 201 would be the REST habit.
  return jsonResponse(200, { api_key: secret, ...keyView(record) });
}

/** `GET /admin/keys/{id}` */
export async function getKey(
  _req: Request,
  ctx: Context,
  _url: RequestUrl,
  p: Params,
): Promise<Response> {
  const k = findKey(ctx, p.id);
  return jsonResponse(200, keyView(k, await ctx.usage.keyTotals(k.id)));
}

/** `GET /admin/keys/{id}/usage` */
export async function keyUsageReport(
  _req: Request,
  ctx: Context,
  url: RequestUrl,
  p: Params,
): Promise<Response> {
  const k = findKey(ctx, p.id);
  const { from, to } = dateRange(url);
  const [rows, totals] = await Promise.all([
    ctx.usage.byKey(k.id, from, to),
    ctx.usage.keyTotals(k.id),
  ]);
  return jsonResponse(200, {
    id: k.id,
    name: k.name,
    enabled: k.enabled,
    usage: keyUsage(rows, totals.lastUsed),
  });
}

/** `POST /admin/keys/{id}/enable|disable` */
export function setEnabled(enabled: boolean) {
  return async (_req: Request, ctx: Context, _url: RequestUrl, p: Params): Promise<Response> => {
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
  _url: RequestUrl,
  p: Params,
): Promise<Response> {
  findKey(ctx, p.id);
  const k = await keyOp(() => ctx.keys.delete(p.id));
  ctx.log.info("key deleted", { key_id: k.id });
  return jsonResponse(200, { status: "deleted", name: k.name, id: k.id });
}

/** `POST /admin/keys/{id}/rotate`: a new secret (shown once); the old one stops working. */
export async function rotateKey(
  _req: Request,
  ctx: Context,
  _url: RequestUrl,
  p: Params,
): Promise<Response> {
  findKey(ctx, p.id);
  const { record, secret } = await keyOp(() => ctx.keys.rotate(p.id));
  ctx.log.info("key rotated", { key_id: record.id });
  return jsonResponse(200, { status: "rotated", api_key: secret, ...keyView(record) });
}

/** `GET /admin/usage` */
export async function usageSummary(_req: Request, ctx: Context): Promise<Response> {
  const totals = await ctx.usage.totals();
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
  });
}

function dateParam(url: RequestUrl, name: string): string | undefined {
  const v = url.searchParams.get(name);
  if (v === null || v === "") return undefined;
  // Date.parse rolls "2026-02-30" over to March 2; a real date survives the round trip.
  const ms = DATE_RE.test(v) ? Date.parse(v) : NaN;
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== v) {
    throw errors.badRequest("invalid_date", `${name} must be a date as YYYY-MM-DD`);
  }
  return v;
}

/** `date`, or `from`/`to`, from the query string. */
function dateRange(url: RequestUrl): { from?: string; to?: string } {
  const date = dateParam(url, "date");
  if (date) return { from: date, to: date };
  return { from: dateParam(url, "from"), to: dateParam(url, "to") };
}

function keyName(ctx: Context) {
  return (id: string) => ctx.keys.get(id)?.name ?? id;
}

/** `GET /admin/usage/daily?date=YYYY-MM-DD` (or `from`/`to`; all days when absent) */
export async function dailyReport(_req: Request, ctx: Context, url: RequestUrl): Promise<Response> {
  const { from, to } = dateRange(url);
  const rows = await ctx.usage.byTime(from, to);
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
  url: RequestUrl,
): Promise<Response> {
  const date = dateParam(url, "date") ?? ctx.buckets.today(ctx.clock.now());
  const rows = await ctx.usage.byTime(date, date);
  const name = keyName(ctx);
  const hours = groupSorted(rows, (r) => `${r.day} ${r.hour}:00`).map(([hour, list]) => ({
    hour,
    ...periodTotals(list, name),
  }));
  return jsonResponse(200, { date, time_zone: ctx.buckets.timeZone, hours });
}

/** `GET /admin/models`: providers with key and health status, models, routing, config state. */
export function modelsStatus(_req: Request, ctx: Context): Response {
  const reg = ctx.registry;
  const now = Date.now();
  const iso = (ms: number) => new Date(ms).toISOString();
  return jsonResponse(200, {
    providers: [...reg.providers.values()].map((p) => {
      const h = ctx.health.get(p.id).view(now);
      return {
        id: p.id,
        name: p.name,
        format: p.format,
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

/** `GET /metrics`: Prometheus text; needs the admin key unless `METRICS_PUBLIC=true`. */
export async function metricsEndpoint(req: Request, ctx: Context): Promise<Response> {
  if (!ctx.config.metricsPublic) await ctx.admin.check(req.headers, ctx.keys);
  return new Response(ctx.metrics.render(), {
    headers: { "content-type": "text/plain; version=0.0.4; charset=utf-8" },
  });
}
