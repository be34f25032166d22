/**
 * `GET /v1/models` (and `/v1/models/{id}`): the models the calling key can
 * reach, in OpenAI's list shape, or in Anthropic's (`data`, `has_more`,
 * `first_id`, `last_id`; Anthropic-format models only) when the request
 * carries `anthropic-version`.
 */
import { authenticateClient } from "./auth.ts";
import type { Context } from "../context.ts";
import type { RequestUrl } from "./request_url.ts";
import { errors, GatewayError } from "./errors.ts";
import { jsonResponse } from "../formats/format.ts";
import type { KeyRecord } from "../store/keys.ts";
import type { FormatName, KnownModel } from "../config/registry.ts";
import { clip } from "./client_text.ts";

/** A model a key can reach, with the format of the provider that serves it. */
export interface ReachableModel {
  model: KnownModel;
  format: FormatName;
}

/** Known models with at least one configured provider this key may use. */
export function reachableModels(ctx: Context, key: KeyRecord): ReachableModel[] {
  const out: ReachableModel[] = [];
  for (const model of ctx.registry.knownModels) {
    const route = ctx.registry.resolve(model.id);
    const p = route?.chain.find((p) =>
      (!p.apiKeyEnv || !!ctx.env(p.apiKeyEnv)) &&
      (!key.allowedProviders || key.allowedProviders.includes(p.id))
    );
    if (p) out.push({ model, format: p.format });
  }
  return out;
}

/** True when the request wants Anthropic's shapes. */
export function wantsAnthropic(req: Request): boolean {
  return req.headers.has("anthropic-version");
}

const EPOCH_ISO = "1970-01-01T00:00:00Z";

function anthropicItem(m: KnownModel) {
  return { type: "model", id: m.id, display_name: m.displayName ?? m.id, created_at: EPOCH_ISO };
}

function openaiItem(m: KnownModel) {
  return { id: m.id, object: "model", created: 0, owned_by: m.ownedBy };
}

function parseLimit(v: string | null, fallback: number): number {
  if (v === null) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > 1000) {
    throw errors.badRequest("invalid_limit", "limit must be a whole number from 1 to 1000");
  }
  return n;
}

/** `GET /v1/models`. */
export async function listModels(req: Request, ctx: Context, url: RequestUrl): Promise<Response> {
  const key = await authenticateClient(ctx.keys, req.headers);
  const all = reachableModels(ctx, key);
  if (!wantsAnthropic(req)) {
    const limit = parseLimit(url.searchParams.get("limit"), 1000);
    return jsonResponse(200, {
      object: "list",
      data: all.slice(0, limit).map((r) => openaiItem(r.model)),
    });
  }
  const models = all.filter((r) => r.format === "anthropic").map((r) => r.model);
  const limit = parseLimit(url.searchParams.get("limit"), 20);
  const after = url.searchParams.get("after_id");
  const before = url.searchParams.get("before_id");
  let start = 0, end = models.length;
  if (after !== null) start = models.findIndex((m) => m.id === after) + 1;
  if (before !== null) {
    const i = models.findIndex((m) => m.id === before);
    end = i === -1 ? models.length : i;
  }
  const window = models.slice(start, end);
  const page = before !== null && after === null ? window.slice(-limit) : window.slice(0, limit);
  const hasMore = page.length < window.length;
  return jsonResponse(200, {
    data: page.map(anthropicItem),
    has_more: hasMore,
    first_id: page[0]?.id ?? null,
    last_id: page[page.length - 1]?.id ?? null,
  });
}

/** `GET /v1/models/{id}`. */
export async function getModel(
  req: Request,
  ctx: Context,
  _url: RequestUrl,
  params: Record<string, string>,
): Promise<Response> {
  const key = await authenticateClient(ctx.keys, req.headers);
  const anthropic = wantsAnthropic(req);
  const found = reachableModels(ctx, key).find((r) =>
    r.model.id === params.id && (!anthropic || r.format === "anthropic")
  );
  if (!found) {
    throw new GatewayError(404, "model_not_found", `model "${clip(params.id)}" not found`);
  }
  return jsonResponse(200, anthropic ? anthropicItem(found.model) : openaiItem(found.model));
}
