/**
 * `GET /v1/models` and `/v1/models/{id}`: the models the calling key can
 * reach, in the list shape of the format the request asks for (see
 * `ApiFormat.claims`: Anthropic's with `anthropic-version`, else OpenAI's).
 */
import type { Context } from "../context.ts";
import type { ReachableModel } from "../formats/format.ts";
import { formatFor } from "../formats/mod.ts";
import { keyMayUseModel, keyMayUseProvider } from "../pipeline/admit.ts";
import type { KeyRecord } from "../store/keys.ts";
import type { ClientHandler } from "./call.ts";
import { quote } from "./client_text.ts";
import { GatewayError } from "./errors.ts";

/** Known models with at least one configured provider this key may use. */
function reachableModels(ctx: Context, key: KeyRecord): ReachableModel[] {
  const out: ReachableModel[] = [];
  for (const model of ctx.registry.knownModels) {
    if (!keyMayUseModel(key, model.id)) continue;
    const p = ctx.registry.resolve(model.id)?.chain.find((p) =>
      (!p.apiKeyEnv || !!ctx.env(p.apiKeyEnv)) && keyMayUseProvider(key, p.id)
    );
    if (p) out.push({ model, format: p.format });
  }
  return out;
}

/** `GET /v1/models` */
export const listModels: ClientHandler = (req, ctx, call) =>
  formatFor(req).listModels(reachableModels(ctx, call.key), call.url);

/** `GET /v1/models/{id}` */
export const getModel: ClientHandler = (req, ctx, call) => {
  const id = call.params.id;
  const res = formatFor(req).getModel(reachableModels(ctx, call.key), id);
  if (!res) {
    throw new GatewayError(404, "model_not_found", `model ${quote(id)} not found`);
  }
  return res;
};
