/**
 * The proxy endpoints (`POST /v1/messages`, `/v1/messages/count_tokens`,
 * `/v1/chat/completions`): authenticate, read the body once, route by model,
 * forward byte-for-byte with fallback and retries, meter the response,
 * record usage.
 *
 * A routing chain is a fallback chain: while no byte has reached the client,
 * a failed attempt (unreachable, timed out, 408/409/429/5xx/529) is retried
 * on the same provider with backoff and then on the next eligible provider.
 * Once a streamed response starts, it is never retried.
 */
import { newId } from "../ops/ids.ts";
import { authenticateClient } from "../http/auth.ts";
import { inspectBody, readBody } from "./body.ts";
import type { Context } from "../context.ts";
import type { RequestUrl } from "../http/request_url.ts";
import type { Active } from "../ops/inflight.ts";
import { GatewayError } from "../http/errors.ts";
import { clip } from "../http/client_text.ts";
import type { ApiFormat } from "../formats/format.ts";
import type { KeyRecord } from "../store/keys.ts";
import { isObject, type Metered, tryParse, zeroTokens } from "../metering/tokens.ts";
import { finishRequest, type RequestOutcome } from "./outcome.ts";
import { type Policy, RETRYABLE_STATUS, retryDelay } from "../config/policy.ts";
import type { Provider, Registry } from "../config/registry.ts";
import { relay, type StreamEnd } from "./relay.ts";
import {
  isEventStream,
  readBodyWithin,
  responseHeaders,
  send,
  upstreamHeaders,
} from "../upstream/send.ts";

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
      `model "${
        clip(model)
      }" is not served by this gateway (GET /v1/models lists the models you can use)`,
    );
  }
  const chain = route.chain.filter((p) => p.format === format.name);
  if (chain.length === 0) {
    const other = FORMAT_LABEL[route.chain[0].format];
    throw new GatewayError(
      400,
      "wrong_endpoint",
      `model "${clip(model)}" uses the ${other.name} format: call POST ${other.path} instead`,
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
      `API key "${key.name}" may not use the provider(s) that serve model "${clip(model)}"`,
    );
  }
  throw new GatewayError(
    503,
    "provider_not_configured",
    `no provider for model "${clip(model)}" is configured on this gateway (its operator must set ${
      [...new Set(missing)].join(" or ")
    })`,
  );
}

const dec = new TextDecoder();

/** Why the last attempt failed, kept to tell the client when every attempt failed. */
type LastFailure =
  | { kind: "response"; provider: string; res: Response; body: Uint8Array<ArrayBuffer> }
  | { kind: "error"; provider: string; status: 502 | 504; message: string; detail: string };

/** Sleeps `ms`, or less when `signal` aborts. */
function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const done = () => {
      clearTimeout(t);
      signal.removeEventListener("abort", done);
      resolve();
    };
    const t = setTimeout(done, ms);
    signal.addEventListener("abort", done);
  });
}

/** Kinds of failed upstream attempts, as counted in metrics. */
type FailureKind = "network" | "timeout" | "status" | "stream";

/** Records a failed attempt in the provider's health and in metrics. */
function attemptFailed(
  ctx: Context,
  provider: Provider,
  kind: FailureKind,
  message: string,
  status?: number,
): void {
  ctx.metrics.upstreamErrors.inc({ provider: provider.id, kind });
  // A rate limit or conflict is the provider answering, not failing: it does not trip the breaker.
  if (status === 429 || status === 409) ctx.health.get(provider.id).success(Date.now());
  else ctx.health.get(provider.id).failure(Date.now(), provider.policy, message, status);
}

/** Records a successful attempt (headers arrived in `ms`). */
function attemptSucceeded(ctx: Context, provider: Provider, ms: number): void {
  ctx.health.get(provider.id).success(Date.now(), ms);
  ctx.metrics.upstream.observe({ provider: provider.id }, ms / 1000);
}

/** Handles one proxied call. `countTokens` selects Anthropic's free token count. */
export async function proxy(
  req: Request,
  ctx: Context,
  url: RequestUrl,
  format: ApiFormat,
  countTokens = false,
): Promise<Response> {
  const t0 = performance.now();
  const startedAt = ctx.clock.now();
  const key = await authenticateClient(ctx.keys, req.headers);
  const raw = await readBody(req, {
    maxBytes: ctx.config.maxBodyBytes,
    timeoutMs: ctx.config.bodyTimeoutMs,
    deadlines: ctx.deadlines,
  });
  const body = inspectBody(raw);
  const registry = ctx.registry; // in-flight requests keep the config they started with
  const candidates = eligibleProviders(ctx, registry, format, body.model, key);
  const stream = body.stream && !countTokens;

  const outcome: RequestOutcome = {
    id: newId(),
    key,
    model: body.model,
    endpoint: url.pathname,
    stream,
    tried: [],
    status: 0,
    reachedUpstream: false,
    failed: false,
    incomplete: false,
    retries: 0,
    startedAt,
    durationMs: 0,
    pricing: registry.pricing(body.model),
  };
  let finished = false;
  let untrack = () => {};
  const done = (status: number, metered: Metered | undefined, extra?: Partial<RequestOutcome>) => {
    if (finished) return;
    finished = true;
    const durationMs = performance.now() - t0;
    // Responses other than streams go out whole, when the request is done.
    const ttfbMs = status === 499 ? undefined : durationMs;
    Object.assign(outcome, { status, metered, durationMs, ttfbMs }, extra);
    finishRequest(ctx, outcome);
    untrack();
  };

  // Before a response is returned, an abort of req.signal means the client left.
  let current: AbortController | undefined;
  let shutdownReason: string | undefined;
  const onClientAbort = () => current?.abort();
  req.signal.addEventListener("abort", onClientAbort);
  untrack = ctx.inflight.add({
    streaming: false,
    abort: (reason) => {
      shutdownReason = reason;
      current?.abort();
    },
  });
  const leave = () => req.signal.removeEventListener("abort", onClientAbort);
  const deadlineAt = t0 + candidates[0].provider.policy.deadlineMs;
  let last: LastFailure | undefined;
  const skipped: string[] = [];

  try {
    for (const { provider, secret } of candidates) {
      const policy = provider.policy;
      const health = ctx.health.get(provider.id);
      const admission = health.admit(Date.now(), policy);
      if (admission === "no") {
        skipped.push(provider.id);
        continue;
      }
      const prepared = countTokens
        ? { bytes: raw, stripUsageEvent: false }
        : format.prepareBody(raw, body.json, provider);
      const target = provider.endpointUrl + (countTokens ? "/count_tokens" : "") + url.search;
      const totalDeadline = t0 + policy.totalMs;

      for (let n = 0;; n++) {
        if (outcome.tried.length > 0) {
          if (performance.now() >= deadlineAt) break;
          outcome.retries++;
        }
        outcome.tried.push(provider.id);
        outcome.provider = provider.id;
        outcome.reachedUpstream = true;
        current = new AbortController();
        const attemptStart = performance.now();
        const sent = await send(ctx, {
          url: target,
          headers: upstreamHeaders(req.headers, provider, secret),
          body: prepared.bytes,
          controller: current,
          health,
          connectMs: policy.connectMs,
          ttfbMs: Math.min(
            stream ? policy.streamTtfbMs : policy.ttfbMs,
            totalDeadline - attemptStart,
          ),
        });
        if (req.signal.aborted || shutdownReason) {
          if (sent.ok) await sent.res.body?.cancel().catch(() => {});
          if (admission === "probe") health.release();
          leave();
          done(shutdownReason ? 503 : 499, undefined, {
            failed: true,
            incomplete: true,
            error: shutdownReason ?? "client disconnected",
          });
          if (!shutdownReason) return new Response(null, { status: 499 }); // nobody is listening
          return withRequestId(
            format.error(503, `${shutdownReason}; retry the request`),
            outcome.id,
          );
        }
        let failure: LastFailure;
        let retryHeaders: Headers | undefined;
        if (!sent.ok) {
          attemptFailed(ctx, provider, sent.timeout ? "timeout" : "network", sent.detail);
          failure = {
            kind: "error",
            provider: provider.id,
            status: sent.timeout ? 504 : 502,
            message: `provider "${provider.id}": ${sent.message}`,
            detail: sent.detail,
          };
        } else {
          const res = sent.res;
          const upstreamMs = performance.now() - t0;
          if (
            !RETRYABLE_STATUS.has(res.status) && isEventStream(res.headers) && !countTokens &&
            res.body
          ) {
            attemptSucceeded(ctx, provider, sent.ttfbMs);
            leave();
            return streamResponse(format, res, prepared.stripUsageEvent, {
              ctx,
              provider,
              outcome,
              upstreamMs,
              policy,
              totalDeadline,
              controller: current,
              done,
              retrack: (a) => {
                const previous = untrack;
                untrack = ctx.inflight.add(a);
                previous();
              },
            });
          }
          const read = await readBodyWithin(ctx, res, policy.idleMs, totalDeadline, current);
          if (read.ok && !RETRYABLE_STATUS.has(res.status)) {
            attemptSucceeded(ctx, provider, sent.ttfbMs);
            leave();
            return bufferedResponse(
              format,
              res,
              read.bytes,
              countTokens,
              outcome,
              upstreamMs,
              done,
            );
          }
          if (read.ok) {
            attemptFailed(ctx, provider, "status", `HTTP ${res.status}`, res.status);
            failure = { kind: "response", provider: provider.id, res, body: read.bytes };
            retryHeaders = res.headers;
          } else {
            attemptFailed(ctx, provider, read.timeout ? "timeout" : "network", read.detail);
            failure = {
              kind: "error",
              provider: provider.id,
              status: read.timeout ? 504 : 502,
              message: `provider "${provider.id}": ${read.message}`,
              detail: `${read.detail} (while reading the response)`,
            };
          }
        }
        last = failure;
        ctx.log.warn("upstream attempt failed", {
          request_id: outcome.id,
          provider: provider.id,
          attempt: n + 1,
          status: failure.kind === "response" ? failure.res.status : failure.status,
          error: failure.kind === "error" ? failure.detail : undefined,
        });
        if (n >= policy.retries) break;
        const wait = retryDelay(policy, n, retryHeaders);
        if (performance.now() + wait >= deadlineAt) break;
        await sleep(wait, req.signal);
        if (req.signal.aborted) break;
        if (health.admit(Date.now(), policy) === "no") break;
      }
    }
  } catch (e) {
    leave();
    done(500, undefined, { failed: true, error: (e as Error).message });
    throw e;
  }
  leave();

  if (req.signal.aborted) {
    done(499, undefined, { failed: true, incomplete: true, error: "client disconnected" });
    return new Response(null, { status: 499 });
  }
  if (!last) {
    // Every eligible provider's breaker is open.
    const wait = Math.max(
      1,
      Math.ceil(Math.min(...skipped.map((id) => ctx.health.get(id).openUntil - Date.now())) / 1000),
    );
    const message = `provider${skipped.length > 1 ? "s" : ""} ${
      skipped.join(", ")
    } failed repeatedly and ${skipped.length > 1 ? "are" : "is"} paused; retry in ${wait} s`;
    done(503, undefined, { failed: true, error: message });
    const res = format.error(503, message, "providers_unavailable");
    res.headers.set("retry-after", String(wait));
    return withRequestId(res, outcome.id);
  }
  if (last.kind === "response") {
    const metered: Metered = {
      ...format.meterJson(tryParse(dec.decode(last.body))),
      status: "http_error",
    };
    done(last.res.status, metered, { failed: true, provider: last.provider });
    const headers = responseHeaders(last.res.headers, outcome.id);
    return new Response(last.body, {
      status: last.res.status,
      statusText: last.res.statusText,
      headers,
    });
  }
  const tried = [...new Set(outcome.tried)];
  const message = tried.length > 1
    ? `all providers failed for model "${clip(body.model)}" (tried ${
      tried.join(", ")
    }); last error: ${last.message}`
    : last.message;
  done(last.status, undefined, { failed: true, error: message });
  return withRequestId(format.error(last.status, message), outcome.id);
}

/** Returns a complete (non-SSE) upstream response and records its usage. */
function bufferedResponse(
  format: ApiFormat,
  res: Response,
  bytes: Uint8Array<ArrayBuffer>,
  countTokens: boolean,
  outcome: RequestOutcome,
  upstreamMs: number,
  done: (status: number, m: Metered | undefined, extra?: Partial<RequestOutcome>) => void,
): Response {
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
  const headers = responseHeaders(res.headers, outcome.id);
  done(res.status, metered, {
    failed: metered.status !== "ok",
    upstreamMs,
    ttfbMs: upstreamMs,
    upstreamRequestId: upstreamId(res.headers),
  });
  return new Response(bytes, { status: res.status, statusText: res.statusText, headers });
}

interface StreamState {
  ctx: Context;
  provider: Provider;
  outcome: RequestOutcome;
  upstreamMs: number;
  policy: Policy;
  totalDeadline: number;
  controller: AbortController;
  done: (status: number, m: Metered | undefined, extra?: Partial<RequestOutcome>) => void;
  /** Swaps the request's in-flight entry for the stream's. */
  retrack: (a: Active) => void;
}

const END_ERRORS: Partial<Record<StreamEnd, string>> = {
  upstream_error: "upstream stream failed",
  idle_timeout: "upstream stream went idle",
  total_timeout: "upstream stream ran past its time limit",
  client_gone: "client disconnected",
};

/** Relays an SSE upstream response and records its usage when it ends. */
function streamResponse(
  format: ApiFormat,
  res: Response,
  strip: boolean,
  s: StreamState,
): Response {
  const { outcome, policy } = s;
  const r = relay({
    body: res.body!,
    meter: format.streamMeter(),
    dropper: strip ? format.injectedUsageDropper() : undefined,
    errorEvent: (message) => format.sseError(502, message),
    deadlines: s.ctx.deadlines,
    idleMs: policy.idleMs,
    deadline: s.totalDeadline,
    onDisconnect: policy.onDisconnect,
    drainTimeoutMs: policy.drainTimeoutMs,
    abortUpstream: () => s.controller.abort(),
    onEnd: (m, end, detail) => {
      const metered: Metered = res.ok ? m : { ...m, status: "http_error" };
      if (end === "upstream_error" || end === "idle_timeout" || end === "total_timeout") {
        attemptFailed(
          s.ctx,
          s.provider,
          end === "upstream_error" ? "stream" : "timeout",
          END_ERRORS[end]!,
        );
      }
      const incomplete = metered.status === "incomplete" || metered.status === "stream_error";
      s.done(res.status, metered, {
        failed: metered.status === "http_error" || metered.status === "stream_error" ||
          (end !== "eof" && end !== "client_gone"),
        incomplete,
        error: end === "eof"
          ? undefined
          : end === "shutdown"
          ? detail
          : end === "upstream_error" && detail
          ? `${END_ERRORS[end]}: ${detail}` // the log keeps what the client is not told
          : END_ERRORS[end],
        upstreamMs: s.upstreamMs,
        ttfbMs: s.upstreamMs,
        upstreamRequestId: upstreamId(res.headers),
      });
    },
  });
  // From here on, shutdown ends the stream itself.
  s.retrack({ streaming: true, abort: (reason) => r.abort(reason) });
  const headers = responseHeaders(res.headers, outcome.id);
  return new Response(r.stream, { status: res.status, statusText: res.statusText, headers });
}

function upstreamId(h: Headers): string | undefined {
  return h.get("request-id") ?? h.get("x-request-id") ?? undefined;
}

/** Adds the gateway request id to a response the gateway made itself. */
function withRequestId(res: Response, id: string): Response {
  res.headers.set("x-request-id", id);
  return res;
}
