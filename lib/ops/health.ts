/**
 * `GET /health` (no auth): Luna's fields, plus whether Deno KV answers, and
 * how many workers serve and which one answered. 200 when healthy, 503 when
 * KV does not answer.
 */
import type { Context } from "../context.ts";
import { jsonResponse } from "../http/json.ts";

/** Gateway version, reported by `/health`. */
export const VERSION = "1.0.0";

async function kvAnswers(kv: Deno.Kv, timeoutMs: number): Promise<boolean> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  try {
    return await Promise.race([
      kv.get(["keys_version"]).then(() => true),
      new Promise<boolean>((resolve) => timer = setTimeout(() => resolve(false), timeoutMs)),
    ]);
  } catch {
    return false;
  } finally {
    clearTimeout(timer);
  }
}

/** `GET /health` */
export async function health(_req: Request, ctx: Context): Promise<Response> {
  const reg = ctx.registry;
  const kvOk = await kvAnswers(ctx.kv, 1000);
  const providers = [...reg.providers.values()];
  return jsonResponse(kvOk ? 200 : 503, {
    status: kvOk ? "ok" : "degraded",
    providers: providers.map((p) => p.id),
    models: reg.knownModels.map((m) => m.id),
    total_providers: providers.length,
    total_models: reg.knownModels.length,
    configured_providers: providers.filter((p) => !p.apiKeyEnv || ctx.env(p.apiKeyEnv)).map((p) =>
      p.id
    ),
    kv: kvOk ? "ok" : "unavailable",
    admin_api: ctx.admin.enabled,
    version: VERSION,
    uptime_s: Math.floor((ctx.clock.now() - ctx.startedAt) / 1000),
    workers: ctx.worker.serving,
    worker: ctx.worker.id,
  });
}
