/**
 * `GET /health` (no auth): Luna's fields, plus the store's state
 * (`store_health.ts`), and how many workers serve and which one answered.
 * 200 whenever the gateway serves: "degraded" (KV unreachable, usage held
 * back, limits on their fallback) still answers 200, since requests are
 * still served and every gateway on a shared KV would be pulled from a load
 * balancer at once by a 503.
 */
import type { Context } from "../context.ts";
import { jsonResponse } from "../http/json.ts";
import { storeHealth } from "./store_health.ts";

/** Gateway version, reported by `/health`. */
export const VERSION = "1.0.0";

/** `GET /health` */
export async function health(_req: Request, ctx: Context): Promise<Response> {
  const reg = ctx.registry;
  const store = await storeHealth(ctx);
  const providers = [...reg.providers.values()];
  return jsonResponse(200, {
    status: store.degraded.length === 0 ? "ok" : "degraded",
    providers: providers.map((p) => p.id),
    models: reg.knownModels.map((m) => m.id),
    total_providers: providers.length,
    total_models: reg.knownModels.length,
    configured_providers: providers.filter((p) => !p.apiKeyEnv || ctx.env(p.apiKeyEnv)).map((p) =>
      p.id
    ),
    kv: store.kvAnswers ? "ok" : "unavailable",
    admin_api: ctx.admin.enabled,
    version: VERSION,
    uptime_s: Math.floor((ctx.clock.now() - ctx.startedAt) / 1000),
    workers: ctx.worker.serving,
    worker: ctx.worker.id,
    degraded: store.degraded,
    usage_backlog: store.usageBacklog,
    limits: store.limits,
  });
}
