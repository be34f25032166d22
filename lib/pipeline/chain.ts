/**
 * Stage "choose the provider chain": the providers that may serve the model
 * on this endpoint for this key, in fallback order. A provider is left out
 * when its secret is not configured or the key may not use it.
 */
import type { Context } from "../context.ts";
import type { Provider, Registry } from "../config/registry.ts";
import type { ApiFormat } from "../formats/format.ts";
import { quote } from "../http/client_text.ts";
import { GatewayError } from "../http/errors.ts";
import type { KeyRecord } from "../store/keys.ts";
import { keyMayUseProvider } from "./admit.ts";
import { ok, refused, type Result } from "./result.ts";

/** A provider chosen for a request, with its secret. */
export interface Eligible {
  provider: Provider;
  secret?: string;
}

/**
 * The eligible providers in chain order, or the client's error: 400 for an
 * unknown model or one served in another format, 403 when the key may use
 * none of them, 503 when none is configured.
 */
export function chooseChain(
  ctx: Context,
  registry: Registry,
  format: ApiFormat,
  model: string,
  key: KeyRecord,
): Result<Eligible[]> {
  const route = registry.resolve(model);
  if (!route) {
    return refused(
      new GatewayError(
        400,
        "model_not_found",
        `model ${
          quote(model)
        } is not served by this gateway (GET /v1/models lists the models you can use)`,
      ),
    );
  }
  const chain = route.chain.filter((p) => p.format === format);
  if (chain.length === 0) {
    const other = route.chain[0].format;
    return refused(
      new GatewayError(
        400,
        "wrong_endpoint",
        `model ${quote(model)} uses the ${other.label} format: call POST ${
          other.endpoints[0].path
        } instead`,
      ),
    );
  }
  const out: Eligible[] = [];
  let notAllowed = 0;
  const missing: string[] = [];
  for (const provider of chain) {
    const secret = provider.apiKeyEnv ? ctx.env(provider.apiKeyEnv) : undefined;
    if (provider.apiKeyEnv && !secret) {
      missing.push(provider.apiKeyEnv);
      continue;
    }
    if (!keyMayUseProvider(key, provider.id)) {
      notAllowed++;
      continue;
    }
    out.push({ provider, secret });
  }
  if (out.length > 0) return ok(out);
  if (notAllowed > 0) {
    return refused(
      new GatewayError(
        403,
        "provider_not_allowed",
        `API key "${key.name}" may not use the provider(s) that serve model ${quote(model)}`,
      ),
    );
  }
  return refused(
    new GatewayError(
      503,
      "provider_not_configured",
      `no provider for model ${quote(model)} is configured on this gateway (its operator must set ${
        [...new Set(missing)].join(" or ")
      })`,
    ),
  );
}
