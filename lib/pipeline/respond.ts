/**
 * Stage "respond": turns how the attempt ended into the client's response.
 * A complete upstream answer goes out whole with its usage read from the
 * body; a stream is relayed while it is metered; failures become the last
 * upstream error or the gateway's own, in the endpoint's native shape.
 *
 * The end of the response is reported through one hook, `onEnd`, called
 * exactly once: at once for whole responses, when the stream has ended for
 * streams. Everything that must happen after a response (settling limits,
 * recording usage, the log line) hangs off that hook in the orchestrator.
 */
import type { Context } from "../context.ts";
import { quote } from "../http/client_text.ts";
import type { ApiFormat, FormatEndpoint } from "../formats/format.ts";
import { isObject, type Metered, tryParse, zeroTokens } from "../metering/tokens.ts";
import { responseHeaders } from "../upstream/headers.ts";
import { type Attempted, attemptFailed } from "./attempt.ts";
import { relay, type StreamEnd } from "./relay.ts";

/** How a response ended, as the record stage needs it. */
export interface Ended {
  /** The HTTP status the client got (499: it left before any response). */
  status: number;
  metered?: Metered;
  failed: boolean;
  /** Usage is a lower bound. */
  incomplete: boolean;
  /** Why it failed, in words (no secrets). */
  error?: string;
  /** Ms from arrival to the response headers going out. */
  ttfbMs?: number;
}

/** What the respond stage needs besides the attempt's result. */
export interface RespondInput {
  format: ApiFormat;
  endpoint: FormatEndpoint;
  /** The model asked for (for messages naming it). */
  model: string;
  requestId: string;
  /** Headers the gateway adds to whatever goes out (its own rate-limit headers). */
  headers: [string, string][];
  /** Aborts when shutdown ends the request; a stream then gets an error event. */
  shutdown: AbortSignal;
  /** Called once, when the response has ended. */
  onEnd: (ended: Ended) => void;
}

const dec = new TextDecoder();

const END_ERRORS: Partial<Record<StreamEnd, string>> = {
  upstream_error: "upstream stream failed",
  idle_timeout: "upstream stream went idle",
  total_timeout: "upstream stream ran past its time limit",
  client_gone: "client disconnected",
};

/** Builds the client's response; `r.onEnd` fires when it has ended. */
export function respond(ctx: Context, a: Attempted, r: RespondInput): Response {
  switch (a.kind) {
    case "stream":
      return streamed(ctx, a, r);
    case "complete":
      return complete(a, r);
    case "gone": {
      r.onEnd({
        status: a.shutdown ? 503 : 499,
        failed: true,
        incomplete: true,
        error: a.shutdown ?? "client disconnected",
      });
      // Nobody listens to a client that left; shutdown gets a native 503.
      if (!a.shutdown) return new Response(null, { status: 499 });
      return gatewayMade(r.format.error(503, `${a.shutdown}; retry the request`), r);
    }
    case "failed":
      return failed(a, r);
  }
}

/** Usage of a free call (count_tokens): none, whatever its body says. */
function unmetered(ok: boolean): Metered {
  return { status: ok ? "ok" : "http_error", tokens: zeroTokens(), extra: [], usageSeen: false };
}

/** A complete (non-SSE) upstream answer with its usage. */
function complete(a: Attempted & { kind: "complete" }, r: RespondInput): Response {
  const { res, bytes } = a;
  let metered: Metered;
  if (!r.endpoint.metered) {
    metered = unmetered(res.ok);
  } else {
    const json = res.headers.get("content-type")?.includes("json")
      ? tryParse(dec.decode(bytes))
      : undefined;
    const m = r.format.meterJson(json);
    const errorBody = isObject(json) && m.errorType !== undefined && !m.usageSeen;
    metered = { ...m, status: res.ok && !errorBody ? "ok" : "http_error" };
  }
  r.onEnd({
    status: res.status,
    metered,
    failed: metered.status !== "ok",
    incomplete: false,
    ttfbMs: a.upstreamMs,
  });
  return withClientHeaders(
    new Response(bytes, { status: res.status, statusText: res.statusText }),
    res.headers,
    r,
  );
}

/** Every attempt failed: the last upstream answer as it was, or the gateway's 502/504. */
function failed(a: Attempted & { kind: "failed" }, r: RespondInput): Response {
  const last = a.last;
  if (last.kind === "response") {
    const metered: Metered = r.endpoint.metered
      ? { ...r.format.meterJson(tryParse(dec.decode(last.body))), status: "http_error" }
      : unmetered(false);
    r.onEnd({ status: last.res.status, metered, failed: true, incomplete: false });
    return withClientHeaders(
      new Response(last.body, { status: last.res.status, statusText: last.res.statusText }),
      last.res.headers,
      r,
    );
  }
  const tried = [...new Set(a.tried)];
  const all = (last: string) =>
    tried.length > 1
      ? `all providers failed for model ${quote(r.model)} (tried ${
        tried.join(", ")
      }); last error: ${last}`
      : last;
  // The record keeps the detail (hosts, ports); the client is told what happened, not where.
  r.onEnd({ status: last.status, failed: true, incomplete: false, error: all(last.detail) });
  return gatewayMade(r.format.error(last.status, all(last.message)), r);
}

/** Relays an SSE upstream response; `onEnd` fires when the stream has ended. */
function streamed(ctx: Context, a: Attempted & { kind: "stream" }, r: RespondInput): Response {
  const { res, provider } = a;
  const policy = provider.policy;
  const relayed = relay({
    body: res.body!,
    meter: r.format.streamMeter(),
    dropper: a.stripUsageEvent ? r.format.streamUsage?.usageEventFilter() : undefined,
    errorEvent: (message) => r.format.sseError(502, message),
    deadlines: ctx.deadlines,
    idleMs: policy.idleMs,
    deadline: a.deadline,
    onDisconnect: policy.onDisconnect,
    drainTimeoutMs: policy.drainTimeoutMs,
    usageWaitMs: policy.usageWaitMs,
    abortUpstream: () => a.controller.abort(),
    onEnd: (m, end, detail) => {
      r.shutdown.removeEventListener("abort", onShutdown);
      const metered: Metered = res.ok ? m : { ...m, status: "http_error" };
      if (end === "upstream_error" || end === "idle_timeout" || end === "total_timeout") {
        attemptFailed(
          ctx,
          provider,
          end === "upstream_error" ? "stream" : "timeout",
          END_ERRORS[end]!,
        );
      }
      r.onEnd({
        status: res.status,
        metered,
        failed: metered.status === "http_error" || metered.status === "stream_error" ||
          (end !== "eof" && end !== "client_gone"),
        incomplete: metered.status === "incomplete" || metered.status === "stream_error",
        error: end === "eof"
          ? undefined
          : end === "shutdown"
          ? detail
          : end === "upstream_error" && detail
          ? `${END_ERRORS[end]}: ${detail}` // the log keeps what the client is not told
          : END_ERRORS[end],
        ttfbMs: a.upstreamMs,
      });
    },
  });
  // From here on, shutdown ends the stream itself (the client gets an error event).
  const onShutdown = () => relayed.abort(String(r.shutdown.reason));
  if (r.shutdown.aborted) onShutdown();
  else r.shutdown.addEventListener("abort", onShutdown);
  return withClientHeaders(
    new Response(relayed.stream, { status: res.status, statusText: res.statusText }),
    res.headers,
    r,
  );
}

/** Adds the request id and the gateway's headers to a response the gateway made itself. */
function gatewayMade(res: Response, r: RespondInput): Response {
  res.headers.set("x-request-id", r.requestId);
  for (const [k, v] of r.headers) res.headers.set(k, v);
  return res;
}

/**
 * Gives a response the upstream's headers for the client, the request id and the gateway's own
 * headers. Appended one by one: passing them to `new Response` costs twice as much (its WebIDL
 * conversion of the list; ~2.7 µs per response with six headers).
 */
function withClientHeaders(res: Response, upstream: Headers, r: RespondInput): Response {
  const h = res.headers;
  for (const [k, v] of responseHeaders(upstream, r.requestId)) h.append(k, v);
  for (const [k, v] of r.headers) h.append(k, v);
  return res;
}

/** The upstream's own request id, when it sent one. */
export function upstreamRequestId(a: Attempted): string | undefined {
  const h = a.kind === "stream" || a.kind === "complete"
    ? a.res.headers
    : a.kind === "failed" && a.last.kind === "response"
    ? a.last.res.headers
    : undefined;
  return h?.get("request-id") ?? h?.get("x-request-id") ?? undefined;
}
