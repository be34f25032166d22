/**
 * The wire to a provider: which client headers go upstream and which
 * upstream headers come back, and the provider's credential in its own
 * header style. Failures come in two wordings: `message` for the client
 * (no provider host, port or URL) and `detail` for logs and the admin API.
 */
import type { ProviderHealth } from "./breaker.ts";
import type { Context } from "../context.ts";
import type { Provider } from "../config/registry.ts";

const HOP_BY_HOP = [
  "connection",
  "keep-alive",
  "proxy-authenticate",
  "proxy-authorization",
  "proxy-connection",
  "te",
  "trailer",
  "transfer-encoding",
  "upgrade",
];

// Client credentials are replaced by the provider's; the gateway meters
// decoded bytes, so fetch negotiates encoding itself.
const DROP_REQUEST = new Set([
  ...HOP_BY_HOP,
  "host",
  "content-length",
  "accept-encoding",
  "authorization",
  "x-api-key",
  "cookie",
  "expect",
]);

/**
 * Headers that carry the client's address or the gateway's own host and
 * scheme, as a client or a proxy in front of the gateway set them. The
 * provider sees the gateway as its client, so they go only to providers
 * with `forward_client_ip: true` (unchecked: whatever the client sent).
 */
export const CLIENT_ADDRESS_HEADERS: ReadonlySet<string> = new Set([
  "forwarded",
  "x-forwarded-for",
  "x-forwarded-host",
  "x-forwarded-proto",
  "x-forwarded-port",
  "x-forwarded-server",
  "x-real-ip",
  "x-client-ip",
  "x-cluster-client-ip",
  "true-client-ip",
  "cf-connecting-ip",
  "fastly-client-ip",
  "via",
]);

// Bodies come back decoded and re-framed; upstream cookies and protocol
// hints belong to the upstream's origin, not the gateway's.
const DROP_RESPONSE = new Set([
  ...HOP_BY_HOP,
  "content-length",
  "content-encoding",
  "set-cookie",
  "alt-svc",
]);

/**
 * Headers for the upstream request: the client's, minus hop-by-hop and
 * credentials, plus the provider's. (Pairs, not `Headers`: building them
 * with `forEach` costs a tenth of iterating and setting.)
 */
export function upstreamHeaders(
  client: Headers,
  provider: Provider,
  secret: string | undefined,
): [string, string][] {
  const out: [string, string][] = [];
  const named = client.get("connection")?.toLowerCase().split(",").map((s) => s.trim());
  const hideAddress = !provider.forwardClientIp;
  client.forEach((v, k) => {
    if (DROP_REQUEST.has(k) || named?.includes(k) || k in provider.headers) return;
    if (hideAddress && CLIENT_ADDRESS_HEADERS.has(k)) return;
    out.push([k, v]);
  });
  for (const [k, v] of Object.entries(provider.headers)) out.push([k.toLowerCase(), v]);
  // The body is known to be JSON; providers refuse a request without this header.
  if (!client.has("content-type") && !("content-type" in provider.headers)) {
    out.push(["content-type", "application/json"]);
  }
  if (secret) {
    if (provider.authHeader === "x-api-key") out.push(["x-api-key", secret]);
    else out.push(["authorization", `Bearer ${secret}`]);
  }
  return out;
}

/**
 * Headers for the client's response: the upstream's, minus hop-by-hop and
 * framing, plus the gateway's request id (as `x-request-id`, or as
 * `x-gateway-request-id` beside an upstream `x-request-id`).
 */
export function responseHeaders(upstream: Headers, requestId: string): [string, string][] {
  const out: [string, string][] = [];
  let hasId = false;
  upstream.forEach((v, k) => {
    if (DROP_RESPONSE.has(k)) return;
    if (k === "x-request-id") hasId = true;
    out.push([k, v]);
  });
  out.push([hasId ? "x-gateway-request-id" : "x-request-id", requestId]);
  return out;
}

/** True for an SSE response. */
export function isEventStream(headers: Headers): boolean {
  return headers.get("content-type")?.toLowerCase().includes("text/event-stream") ?? false;
}

/** Why an attempt failed: words for the client, and the full story for logs. */
export interface Failed {
  ok: false;
  timeout: boolean;
  /** For the client: what happened, without the provider's host, port or URL. */
  message: string;
  /** For logs and the admin API: the underlying error, host and port included. */
  detail: string;
}

/** The result of sending one request upstream. */
export type Sent = { ok: true; res: Response; ttfbMs: number } | Failed;

const UNREACHABLE = "could not be reached";

/** An error's message with its causes ("fetch failed: error sending request for url (...)"). */
function errorDetail(e: unknown): string {
  const parts: string[] = [];
  for (let c = e, i = 0; c instanceof Error && i < 4; c = c.cause, i++) parts.push(c.message);
  return parts.join(": ") || String(e);
}

/** One attempt's wire settings. */
export interface SendOptions {
  url: string;
  headers: [string, string][];
  body: Uint8Array<ArrayBuffer>;
  /** Aborts the attempt (client gone, shutdown, timeouts). */
  controller: AbortController;
  health: ProviderHealth;
  /** TCP connect limit, checked when the provider had no success in the last minute (0: off). */
  connectMs: number;
  /** Limit for the response headers. */
  ttfbMs: number;
}

const PROXY_VARS = [
  "HTTPS_PROXY",
  "https_proxy",
  "HTTP_PROXY",
  "http_proxy",
  "ALL_PROXY",
  "all_proxy",
];
const WARM_MS = 60_000;

/**
 * Checks that a TCP connection to the URL's host opens within `ms`. `fetch`
 * has no connect timeout of its own, and a blackholed host would otherwise
 * hang until the first-byte limit; this costs one handshake, only when the
 * provider has been cold for a minute.
 */
async function probeConnect(target: URL, ms: number): Promise<Failed | undefined> {
  const port = Number(target.port) || (target.protocol === "https:" ? 443 : 80);
  let timer: ReturnType<typeof setTimeout> | undefined;
  const conn = Deno.connect({ hostname: target.hostname.replace(/^\[|\]$/g, ""), port });
  try {
    const c = await Promise.race([
      conn,
      new Promise<undefined>((resolve) => timer = setTimeout(() => resolve(undefined), ms)),
    ]);
    if (!c) {
      conn.then((late) => late.close(), () => {});
      return {
        ok: false,
        timeout: true,
        message: `${UNREACHABLE} within ${ms / 1000} s`,
        detail: `could not connect to ${target.host} within ${ms / 1000} s`,
      };
    }
    c.close();
    return undefined;
  } catch (e) {
    return {
      ok: false,
      timeout: false,
      message: UNREACHABLE,
      detail: `could not connect to ${target.host}: ${(e as Error).message}`,
    };
  } finally {
    clearTimeout(timer);
  }
}

/** Sends one request upstream and waits for its response headers. */
export async function send(ctx: Context, o: SendOptions): Promise<Sent> {
  const t0 = performance.now();
  if (
    o.connectMs > 0 && !(o.health.lastSuccessAt && Date.now() - o.health.lastSuccessAt < WARM_MS) &&
    !PROXY_VARS.some((v) => ctx.env(v))
  ) {
    const failed = await probeConnect(new URL(o.url), o.connectMs);
    if (failed) return failed;
    if (o.controller.signal.aborted) {
      return { ok: false, timeout: false, message: "aborted", detail: "aborted" };
    }
  }
  let timedOut = false;
  const deadline = ctx.deadlines.add(t0 + o.ttfbMs, () => {
    timedOut = true;
    o.controller.abort();
  });
  try {
    const res = await ctx.fetch(o.url, {
      method: "POST",
      headers: o.headers,
      body: o.body,
      signal: o.controller.signal,
      redirect: "manual",
    });
    return { ok: true, res, ttfbMs: performance.now() - t0 };
  } catch (e) {
    if (timedOut) {
      const message = `no response within ${Math.round(o.ttfbMs / 1000)} s`;
      return { ok: false, timeout: true, message, detail: message };
    }
    // fetch's error causes name the URL ("error sending request for url (http://host:port/...)").
    return { ok: false, timeout: false, message: UNREACHABLE, detail: errorDetail(e) };
  } finally {
    ctx.deadlines.cancel(deadline);
  }
}

/** A whole response body, or why it could not be read. */
export type BodyRead = { ok: true; bytes: Uint8Array<ArrayBuffer> } | Failed;

/**
 * Reads a whole (non-streamed) body, failing when it takes longer than
 * `idleMs` or passes `deadline` (`performance.now()`). A JSON body arrives
 * in one piece once the upstream has answered, so one limit bounds it.
 */
export async function readBodyWithin(
  ctx: Context,
  res: Response,
  idleMs: number,
  deadline: number,
  controller: AbortController,
): Promise<BodyRead> {
  const limit = Math.max(1, Math.min(idleMs, deadline - performance.now()));
  let timedOut = false;
  const d = ctx.deadlines.add(performance.now() + limit, () => {
    timedOut = true;
    controller.abort(); // errors the body being read
  });
  try {
    return { ok: true, bytes: await res.bytes() };
  } catch (e) {
    if (timedOut) {
      const message = `the response stalled for ${Math.round(limit / 1000)} s`;
      return { ok: false, timeout: true, message, detail: message };
    }
    return {
      ok: false,
      timeout: false,
      message: "the connection broke while the response was being read",
      detail: errorDetail(e),
    };
  } finally {
    ctx.deadlines.cancel(d);
  }
}
