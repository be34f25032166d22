/**
 * Stage "attempt": sends the request along its provider chain until one
 * answers. While no byte has reached the client, a failed attempt
 * (unreachable, timed out, 408/409/429/5xx/529) is retried on the same
 * provider with backoff, then on the next provider. Once a streamed response
 * starts, it is never retried.
 *
 * The circuit breaker only reorders: a provider whose breaker is open is
 * skipped while another can take the request; when every provider of the
 * chain is open, the request goes to the one whose cooldown ends first
 * (Envoy's "panic" mode), so a burst of upstream errors never becomes an
 * outage of the gateway's own making.
 */
import type { Provider } from "../config/registry.ts";
import { RETRYABLE_STATUS, retryDelay } from "../config/policy.ts";
import type { Context } from "../context.ts";
import type { ApiFormat, FormatEndpoint } from "../formats/format.ts";
import type { Admission } from "../upstream/breaker.ts";
import { isEventStream, upstreamHeaders } from "../upstream/headers.ts";
import { type Failed, readBodyWithin, send } from "../upstream/send.ts";
import type { RequestBody } from "./body.ts";
import type { Eligible } from "./chain.ts";

/** What the attempt stage needs. */
export interface AttemptInput {
  format: ApiFormat;
  endpoint: FormatEndpoint;
  chain: Eligible[];
  body: RequestBody;
  /** True for a metered streaming request. */
  stream: boolean;
  /** The client's headers (credentials are replaced per provider). */
  headers: Headers;
  /** The client's query string, forwarded as is. */
  search: string;
  /** Aborts when the client goes away. */
  client: AbortSignal;
  /** Aborts when shutdown ends the request; its reason says why. */
  shutdown: AbortSignal;
  /** Gateway request id, for log lines. */
  requestId: string;
  /** `performance.now()` when the request arrived. */
  t0: number;
}

/** Providers tried (in order, one entry per attempt) and how many attempts were retries. */
export interface Tries {
  tried: string[];
  retries: number;
}

/** Why the last attempt failed: an upstream answer passed through, or the gateway's own error. */
export type LastFailure =
  | { kind: "response"; provider: Provider; res: Response; body: Uint8Array<ArrayBuffer> }
  | {
    kind: "error";
    provider: Provider;
    status: 502 | 504;
    /** For the client: no provider host, port or URL. */
    message: string;
    /** For logs and the request's record. */
    detail: string;
  };

/** How the attempt stage ended. */
export type Attempted =
  & Tries
  & (
    /** An SSE response, body unread: relay it. */
    | {
      kind: "stream";
      provider: Provider;
      res: Response;
      /** Aborting it stops the upstream request. */
      controller: AbortController;
      /** True when the gateway asked for usage the client did not (drop that event). */
      stripUsageEvent: boolean;
      /** Ms from arrival to the upstream's headers. */
      upstreamMs: number;
      /** `performance.now()` by which the whole stream must have ended. */
      deadline: number;
    }
    /** A complete response (any final status), read whole. */
    | {
      kind: "complete";
      provider: Provider;
      res: Response;
      bytes: Uint8Array<ArrayBuffer>;
      upstreamMs: number;
    }
    /** Every attempt failed. */
    | { kind: "failed"; last: LastFailure }
    /** The client left, or shutdown ended the request, before an answer. */
    | { kind: "gone"; shutdown?: string }
  );

/** Kinds of failed upstream attempts, as counted in metrics. */
export type FailureKind = "network" | "timeout" | "status" | "stream";

/** Records a failed attempt in the provider's health and in metrics. */
export function attemptFailed(
  ctx: Context,
  provider: Provider,
  kind: FailureKind,
  message: string,
  status?: number,
): void {
  ctx.metrics.upstreamErrors.inc({ provider: provider.id, kind });
  const health = ctx.health.get(provider.id);
  // A rate limit or conflict is the provider answering, not failing: it does not trip the breaker.
  if (status === 429 || status === 409) health.success(ctx.clock.now());
  else health.failure(ctx.clock.now(), provider.policy, message, status);
}

/** One line per upstream attempt: failed ones at `warn`, the others at `debug`. */
function logAttempt(
  ctx: Context,
  requestId: string,
  provider: Provider,
  n: number,
  started: number,
  outcome: { status?: number; error?: string; failed?: boolean },
): void {
  const level = outcome.failed ? "warn" : "debug";
  if (!ctx.log.enabled(level)) return;
  ctx.log.log(level, outcome.failed ? "upstream attempt failed" : "upstream attempt", {
    request_id: requestId,
    provider: provider.id,
    attempt: n + 1,
    status: outcome.status,
    error: outcome.error,
    ms: Math.round(performance.now() - started),
  });
}

function attemptSucceeded(ctx: Context, provider: Provider, ms: number): void {
  ctx.health.get(provider.id).success(ctx.clock.now(), ms);
  ctx.metrics.upstream.observe({ provider: provider.id }, ms / 1000);
}

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

/** One attempt's failure, in the form kept for the client and the log. */
function failureOf(provider: Provider, f: Failed, reading = false): LastFailure {
  const where = reading ? " (while reading the response)" : "";
  return {
    kind: "error",
    provider,
    status: f.timeout ? 504 : 502,
    message: `provider "${provider.id}": ${f.message}${where}`,
    detail: `provider "${provider.id}": ${f.detail}${where}`,
  };
}

/** Runs the chain. Never throws for upstream trouble: every ending is a value. */
export async function attempt(ctx: Context, a: AttemptInput): Promise<Attempted> {
  const tries: Tries = { tried: [], retries: 0 };
  const deadlineAt = a.t0 + a.chain[0].provider.policy.deadlineMs;
  let current: AbortController | undefined;
  const abortCurrent = () => current?.abort();
  a.client.addEventListener("abort", abortCurrent);
  a.shutdown.addEventListener("abort", abortCurrent);
  const gone = () => a.client.aborted || a.shutdown.aborted;
  let last: LastFailure | undefined;
  const skipped: Eligible[] = [];

  const run = async (e: Eligible, admission: Admission | "panic"): Promise<Attempted | null> => {
    const { provider, secret } = e;
    const policy = provider.policy;
    const health = ctx.health.get(provider.id);
    const prepared = a.stream && a.format.streamUsage
      ? a.format.streamUsage.prepare(a.body.raw, a.body.json, provider)
      : { bytes: a.body.raw, stripUsageEvent: false };
    const url = provider.endpointUrl + a.endpoint.upstreamSuffix + a.search;
    const totalDeadline = a.t0 + policy.totalMs;
    for (let n = 0;; n++) {
      if (tries.tried.length > 0) {
        if (performance.now() >= deadlineAt) return null;
        tries.retries++;
      }
      tries.tried.push(provider.id);
      current = new AbortController();
      const started = performance.now();
      const sent = await send(ctx, {
        url,
        headers: upstreamHeaders(a.headers, provider, secret),
        body: prepared.bytes,
        controller: current,
        health,
        connectMs: policy.connectMs,
        ttfbMs: Math.min(a.stream ? policy.streamTtfbMs : policy.ttfbMs, totalDeadline - started),
      });
      if (gone()) {
        if (sent.ok) await sent.res.body?.cancel().catch(() => {});
        if (admission === "probe") health.release();
        return { ...tries, kind: "gone", shutdown: shutdownReason(a.shutdown) };
      }
      let retryHeaders: Headers | undefined;
      if (!sent.ok) {
        attemptFailed(ctx, provider, sent.timeout ? "timeout" : "network", sent.detail);
        last = failureOf(provider, sent);
      } else {
        const res = sent.res;
        const upstreamMs = performance.now() - a.t0;
        const retryable = RETRYABLE_STATUS.has(res.status);
        if (!retryable && a.stream && res.body && isEventStream(res.headers)) {
          attemptSucceeded(ctx, provider, sent.ttfbMs);
          logAttempt(ctx, a.requestId, provider, n, started, { status: res.status });
          return {
            ...tries,
            kind: "stream",
            provider,
            res,
            controller: current,
            stripUsageEvent: prepared.stripUsageEvent,
            upstreamMs,
            deadline: totalDeadline,
          };
        }
        const read = await readBodyWithin(ctx, res, policy.idleMs, totalDeadline, current);
        if (read.ok && !retryable) {
          attemptSucceeded(ctx, provider, sent.ttfbMs);
          logAttempt(ctx, a.requestId, provider, n, started, { status: res.status });
          return { ...tries, kind: "complete", provider, res, bytes: read.bytes, upstreamMs };
        }
        if (read.ok) {
          attemptFailed(ctx, provider, "status", `HTTP ${res.status}`, res.status);
          last = { kind: "response", provider, res, body: read.bytes };
          retryHeaders = res.headers;
        } else if (read.tooLarge) {
          // The provider answered; its answer is too big for the gateway: final, not its failure.
          attemptSucceeded(ctx, provider, sent.ttfbMs);
          return { ...tries, kind: "failed", last: failureOf(provider, read, true) };
        } else {
          attemptFailed(ctx, provider, read.timeout ? "timeout" : "network", read.detail);
          last = failureOf(provider, read, true);
        }
      }
      logAttempt(ctx, a.requestId, provider, n, started, {
        status: last.kind === "response" ? last.res.status : last.status,
        error: last.kind === "error" ? last.detail : undefined,
        failed: true,
      });
      if (n >= policy.retries) return null;
      const wait = retryDelay(policy, n, retryHeaders, ctx.clock.now());
      if (performance.now() + wait >= deadlineAt) return null;
      await sleep(wait, a.client);
      if (gone()) return { ...tries, kind: "gone", shutdown: shutdownReason(a.shutdown) };
      if (health.admit(ctx.clock.now(), policy) === "no") return null;
    }
  };

  try {
    for (const e of a.chain) {
      const admission = ctx.health.get(e.provider.id).admit(ctx.clock.now(), e.provider.policy);
      if (admission === "no") {
        skipped.push(e);
        continue;
      }
      const done = await run(e, admission);
      if (done) return done;
    }
    if (!last && skipped.length > 0) {
      // Every provider's breaker is open: try the one that will recover first.
      const soonest = skipped.reduce((x, y) =>
        ctx.health.get(y.provider.id).openUntil < ctx.health.get(x.provider.id).openUntil ? y : x
      );
      ctx.log.warn("every provider's breaker is open; trying the one that recovers first", {
        request_id: a.requestId,
        provider: soonest.provider.id,
      });
      const done = await run(soonest, "panic");
      if (done) return done;
    }
  } finally {
    a.client.removeEventListener("abort", abortCurrent);
    a.shutdown.removeEventListener("abort", abortCurrent);
  }
  if (gone()) return { ...tries, kind: "gone", shutdown: shutdownReason(a.shutdown) };
  return { ...tries, kind: "failed", last: last! };
}

function shutdownReason(signal: AbortSignal): string | undefined {
  return signal.aborted ? String(signal.reason) : undefined;
}
