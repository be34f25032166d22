/**
 * The proxy path as a pipeline: each stage is a function in its own module,
 * data flows one way, and this orchestrator reads top to bottom.
 *
 *   authenticate (`withClient`, before this handler)
 *   -> read and inspect the body (body.ts)
 *   -> admit: per-key policy (admit.ts)
 *   -> choose the provider chain (chain.ts)
 *   -> attempt: retries, fallback, breaker (attempt.ts)
 *   -> respond: whole or streamed (respond.ts)
 *   -> record: usage, metrics, log line (record.ts), when the response has ended
 *
 * A stage that refuses returns the error; the orchestrator answers it in the
 * endpoint's native shape and the router writes the request's log line.
 */
import type { Registry } from "../config/registry.ts";
import type { Context } from "../context.ts";
import type { ApiFormat, FormatEndpoint } from "../formats/format.ts";
import type { ClientCall, ClientHandler } from "../http/call.ts";
import { errorResponse } from "../http/error_shape.ts";
import type { GatewayError } from "../http/errors.ts";
import { admit } from "./admit.ts";
import { attempt, type Attempted } from "./attempt.ts";
import { readRequestBody, type RequestBody } from "./body.ts";
import { chooseChain } from "./chain.ts";
import { record, recordRefusal } from "./record.ts";
import { type Ended, respond, upstreamRequestId } from "./respond.ts";

/** The handler of one proxied endpoint of a format. */
export function proxyHandler(format: ApiFormat, endpoint: FormatEndpoint): ClientHandler {
  return async (req, ctx, call) => {
    const refuse = (e: GatewayError) => {
      call.reason = e.code;
      recordRefusal(ctx, {
        id: call.id,
        key: call.key,
        model: call.model,
        endpoint: endpoint.path,
        status: e.status,
        code: e.code,
        startedAt: call.receivedAt,
        durationMs: performance.now() - call.t0,
      });
      const res = errorResponse(format, e);
      res.headers.set("x-request-id", call.id);
      return res;
    };
    const body = await readRequestBody(req, {
      maxBytes: ctx.config.maxBodyBytes,
      timeoutMs: ctx.config.bodyTimeoutMs,
      deadlines: ctx.deadlines,
    });
    if (!body.ok) return refuse(body.error);
    call.model = body.value.model;
    const registry = ctx.registry; // in-flight requests keep the config they started with
    const admitted = await admit(ctx, registry, call.key, body.value, endpoint);
    if (!admitted.ok) return refuse(admitted.error);
    const admission = admitted.value;
    const chain = chooseChain(ctx, registry, format, body.value.model, call.key);
    if (!chain.ok) {
      admission.settle(undefined, 0);
      return refuse(chain.error);
    }

    const stream = body.value.stream && endpoint.metered;
    const tracked = ctx.inflight.track();
    call.logged = true;
    let attempted: Attempted | undefined;
    let finished = false;
    const finish = (ended: Ended) => {
      if (finished) return;
      finished = true;
      const cost = recordOutcome(
        ctx,
        registry,
        call,
        endpoint,
        body.value,
        stream,
        attempted,
        ended,
      );
      admission.settle(ended.metered, cost);
      tracked.done();
    };
    try {
      attempted = await attempt(ctx, {
        format,
        endpoint,
        chain: chain.value,
        body: body.value,
        stream,
        headers: req.headers,
        search: call.url.search,
        client: req.signal,
        shutdown: tracked.signal,
        requestId: call.id,
        t0: call.t0,
      });
      tracked.streaming = attempted.kind === "stream";
      return respond(ctx, attempted, {
        format,
        endpoint,
        model: body.value.model,
        requestId: call.id,
        headers: admission.headers,
        shutdown: tracked.signal,
        onEnd: finish,
      });
    } catch (e) {
      finish({ status: 500, failed: true, incomplete: false, error: (e as Error).message });
      throw e;
    }
  };
}

/** Hands the finished request to the record stage; returns its cost (micro-dollars). */
function recordOutcome(
  ctx: Context,
  registry: Registry,
  call: ClientCall,
  endpoint: FormatEndpoint,
  body: RequestBody,
  stream: boolean,
  attempted: Attempted | undefined,
  ended: Ended,
): number | undefined {
  const durationMs = performance.now() - call.t0;
  const provider = attempted?.kind === "stream" || attempted?.kind === "complete"
    ? attempted.provider.id
    : attempted?.kind === "failed"
    ? attempted.last.provider.id
    : attempted?.tried.at(-1);
  return record(ctx, {
    id: call.id,
    key: call.key,
    model: body.model,
    endpoint: endpoint.path,
    stream,
    provider,
    tried: attempted?.tried ?? [],
    retries: attempted?.retries ?? 0,
    status: ended.status,
    reachedUpstream: (attempted?.tried.length ?? 0) > 0,
    metered: ended.metered,
    failed: ended.failed,
    incomplete: ended.incomplete,
    error: ended.error,
    startedAt: call.receivedAt,
    durationMs,
    ttfbMs: ended.ttfbMs ?? (ended.status === 499 ? undefined : durationMs),
    upstreamMs: attempted?.kind === "stream" || attempted?.kind === "complete"
      ? attempted.upstreamMs
      : undefined,
    upstreamRequestId: attempted && upstreamRequestId(attempted),
    registry,
  });
}
