/**
 * The proxy endpoints (`POST /v1/messages`, `/v1/messages/count_tokens`,
 * `/v1/chat/completions`): authenticate, read the body once, route by model,
 * forward byte-for-byte, meter the response, record usage.
 */
import { ulid } from "ulid";
import { authenticateClient } from "./auth.ts";
import { inspectBody, readBody } from "./body.ts";
import type { Context } from "./context.ts";
import { GatewayError } from "./errors.ts";
import type { ApiFormat } from "./formats/format.ts";
import type { KeyRecord } from "./keys.ts";
import { isObject, type Metered, tryParse, zeroTokens } from "./metering.ts";
import { finishRequest, type RequestOutcome } from "./outcome.ts";
import type { Provider, Registry } from "./registry.ts";
import { relay } from "./relay.ts";
import { isEventStream, responseHeaders, upstreamHeaders } from "./upstream.ts";

const FORMAT_LABEL: Record<string, { name: string; path: string }> = {
  anthropic: { name: "Anthropic Messages", path: "/v1/messages" },
  openai: { name: "OpenAI Chat Completions", path: "/v1/chat/completions" },
};

/** A provider chosen for a request, with its secret. */
export interface Eligible {
  provider: Provider;
  secret?: string;
}

/**
 * The providers that may serve `model` on this endpoint for this key, in
 * chain order. Throws the client's error when there are none.
 */
export function eligibleProviders(
  ctx: Context,
  registry: Registry,
  format: ApiFormat,
  model: string,
  key: KeyRecord,
): Eligible[] {
  const route = registry.resolve(model);
  if (!route) {
    throw new GatewayError(
      400,
      "model_not_found",
      `model "${model}" is not served by this gateway (GET /v1/models lists the models you can use)`,
    );
  }
  const chain = route.chain.filter((p) => p.format === format.name);
  if (chain.length === 0) {
    const other = FORMAT_LABEL[route.chain[0].format];
    throw new GatewayError(
      400,
      "wrong_endpoint",
      `model "${model}" uses the ${other.name} format: call POST ${other.path} instead`,
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
    if (key.allowedProviders && !key.allowedProviders.includes(provider.id)) {
      notAllowed++;
      continue;
    }
    out.push({ provider, secret });
  }
  if (out.length > 0) return out;
  if (notAllowed > 0) {
    throw new GatewayError(
      403,
      "provider_not_allowed",
      `API key "${key.name}" may not use the provider(s) that serve model "${model}"`,
    );
  }
  throw new GatewayError(
    503,
    "provider_not_configured",
    `no provider for model "${model}" is configured on this gateway (its operator must set ${
      [...new Set(missing)].join(" or ")
    })`,
  );
}

/** Default time to wait for upstream response headers. */
const TTFB_TIMEOUT_MS = 600_000;

const dec = new TextDecoder();

/** Handles one proxied call. `countTokens` selects Anthropic's free token count. */
export async function proxy(
  req: Request,
  ctx: Context,
  url: URL,
  format: ApiFormat,
  countTokens = false,
): Promise<Response> {
  const t0 = performance.now();
  const startedAt = ctx.clock.now();
  const key = await authenticateClient(ctx.keys, req.headers);
  const raw = await readBody(req, ctx.config.maxBodyBytes);
  const body = inspectBody(raw);
  const registry = ctx.registry;
  const [{ provider, secret }] = eligibleProviders(ctx, registry, format, body.model, key);

  const prepared = countTokens
    ? { bytes: raw, stripUsageEvent: false }
    : format.prepareBody(raw, body.json, provider);
  const target = provider.endpointUrl + (countTokens ? "/count_tokens" : "") + url.search;

  const outcome: RequestOutcome = {
    id: ulid(),
    key,
    model: body.model,
    endpoint: url.pathname,
    stream: body.stream && !countTokens,
    provider: provider.id,
    tried: [provider.id],
    status: 0,
    reachedUpstream: true,
    failed: false,
    incomplete: false,
    retries: 0,
    startedAt,
    durationMs: 0,
  };
  const done = (status: number, metered: Metered | undefined, extra?: Partial<RequestOutcome>) => {
    Object.assign(outcome, { status, metered, durationMs: performance.now() - t0 }, extra);
    finishRequest(ctx, outcome);
  };

  // Until a response is returned, an abort means the client went away.
  const upstreamAbort = new AbortController();
  let timedOut = false;
  const onClientAbort = () => upstreamAbort.abort();
  req.signal.addEventListener("abort", onClientAbort);
  const timer = setTimeout(() => {
    timedOut = true;
    upstreamAbort.abort();
  }, TTFB_TIMEOUT_MS);

  let res: Response;
  try {
    res = await ctx.fetch(target, {
      method: "POST",
      headers: upstreamHeaders(req.headers, provider, secret),
      body: prepared.bytes,
      signal: upstreamAbort.signal,
      redirect: "manual",
    });
  } catch (e) {
    clearTimeout(timer);
    req.signal.removeEventListener("abort", onClientAbort);
    if (req.signal.aborted && !timedOut) {
      done(499, undefined, { incomplete: true, failed: true, error: "client disconnected" });
      return new Response(null, { status: 499 });
    }
    const [status, message] = timedOut
      ? [504, `provider "${provider.id}" did not answer within ${TTFB_TIMEOUT_MS / 1000} s`]
      : [502, `provider "${provider.id}" is unreachable: ${(e as Error).message}`];
    done(status, undefined, { failed: true, error: message });
    return withRequestId(format.error(status, message), outcome.id);
  } finally {
    clearTimeout(timer);
  }
  const upstreamMs = performance.now() - t0;
  const headers = responseHeaders(res.headers);
  const upstreamRequestId = res.headers.get("request-id") ?? res.headers.get("x-request-id") ??
    undefined;
  setRequestId(headers, outcome.id);

  if (!res.body || !isEventStream(res.headers) || countTokens) {
    let bytes: Uint8Array<ArrayBuffer>;
    try {
      bytes = await res.bytes();
    } catch (e) {
      req.signal.removeEventListener("abort", onClientAbort);
      const gone = req.signal.aborted;
      const message = `provider "${provider.id}" failed while sending its response: ${
        (e as Error).message
      }`;
      done(gone ? 499 : 502, undefined, {
        failed: true,
        incomplete: gone,
        error: gone ? "client disconnected" : message,
        upstreamMs,
      });
      return withRequestId(format.error(502, message), outcome.id);
    }
    req.signal.removeEventListener("abort", onClientAbort);
    let metered: Metered;
    if (countTokens) {
      metered = {
        status: res.ok ? "ok" : "http_error",
        tokens: zeroTokens(),
        extra: [],
        usageSeen: false,
      };
    } else {
      const json = res.headers.get("content-type")?.includes("json")
        ? tryParse(dec.decode(bytes))
        : undefined;
      const m = format.meterJson(json);
      const errorBody = isObject(json) && m.errorType !== undefined && !m.usageSeen;
      metered = { ...m, status: res.ok && !errorBody ? "ok" : "http_error" };
    }
    done(res.status, metered, {
      failed: metered.status !== "ok",
      ttfbMs: performance.now() - t0,
      upstreamMs,
      upstreamRequestId,
    });
    return new Response(bytes, { status: res.status, statusText: res.statusText, headers });
  }

  req.signal.removeEventListener("abort", onClientAbort);
  const stream = relay({
    body: res.body,
    meter: format.streamMeter(),
    dropper: prepared.stripUsageEvent ? format.injectedUsageDropper() : undefined,
    errorEvent: (message) => format.sseError(502, message),
    onClientGone: () => upstreamAbort.abort(),
    onEnd: (m, end) => {
      const metered: Metered = res.ok ? m : { ...m, status: "http_error" };
      const incomplete = metered.status === "incomplete" || metered.status === "stream_error" ||
        (end !== "eof" && metered.status !== "ok");
      done(res.status, metered, {
        failed: metered.status === "http_error" || metered.status === "stream_error" ||
          end === "upstream_error",
        incomplete,
        error: end === "client_gone"
          ? "client disconnected"
          : end === "upstream_error"
          ? "upstream stream failed"
          : undefined,
        upstreamMs,
        ttfbMs: upstreamMs,
        upstreamRequestId,
      });
    },
  });
  return new Response(stream, { status: res.status, statusText: res.statusText, headers });
}

/** Adds the gateway request id (as `x-request-id`, or beside the upstream's). */
function setRequestId(headers: Headers, id: string): void {
  if (headers.has("x-request-id")) headers.set("x-gateway-request-id", id);
  else headers.set("x-request-id", id);
}

function withRequestId(res: Response, id: string): Response {
  setRequestId(res.headers, id);
  return res;
}
