/**
 * The wire to a provider: one request with its time limits, and reading a
 * whole response body within its limits. Failures come in two wordings:
 * `message` for the client (no provider host, port or URL) and `detail` for
 * logs and the admin API.
 */
import type { ProviderHealth } from "./breaker.ts";
import type { Context } from "../context.ts";

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
    o.connectMs > 0 &&
    !(o.health.lastSuccessAt && ctx.clock.now() - o.health.lastSuccessAt < WARM_MS) &&
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
export type BodyRead =
  | { ok: true; bytes: Uint8Array<ArrayBuffer> }
  | (Failed & { tooLarge?: true });

const MiB = 1024 * 1024;

/** A body over `max` bytes, refused naming the setting. */
function tooLargeFailure(max: number): BodyRead {
  const size = max % MiB === 0 ? `${max / MiB} MiB` : `${max} bytes`;
  const message = `the response body is over the gateway's ${size} limit, MAX_RESPONSE_BYTES`;
  return { ok: false, timeout: false, message, detail: message, tooLarge: true };
}

/**
 * Reads a whole (non-streamed) body, failing when it takes longer than
 * `idleMs` or passes `deadline` (`performance.now()`), or when it grows past
 * `MAX_RESPONSE_BYTES`. A JSON body arrives in one piece once the upstream
 * has answered, so one time limit bounds it. Bytes are counted decoded, as
 * they are read (fetch inflates gzip and brotli), so a small compressed body
 * that inflates to gigabytes stops at the limit too.
 */
export async function readBodyWithin(
  ctx: Context,
  res: Response,
  idleMs: number,
  deadline: number,
  controller: AbortController,
): Promise<BodyRead> {
  const max = ctx.config.maxResponseBytes;
  // A declared length is of the encoded body: final only when nothing is encoded.
  const declared = Number(res.headers.get("content-length"));
  const encoded = res.headers.has("content-encoding");
  if (!encoded && declared > max) {
    controller.abort();
    return tooLargeFailure(max);
  }
  const limit = Math.max(1, Math.min(idleMs, deadline - performance.now()));
  let timedOut = false;
  const d = ctx.deadlines.add(performance.now() + limit, () => {
    timedOut = true;
    controller.abort(); // errors the body being read
  });
  try {
    // A plain body of known length within the cap is read in one go (no JS-side chunk copies).
    if (!encoded && res.headers.has("content-length")) {
      return { ok: true, bytes: await res.bytes() };
    }
    const parts: Uint8Array[] = [];
    let size = 0;
    const reader = res.body?.getReader();
    for (;;) {
      const r = await reader?.read();
      if (!r || r.done) break;
      size += r.value.length;
      if (size > max) {
        controller.abort();
        return tooLargeFailure(max);
      }
      parts.push(r.value);
    }
    const bytes = new Uint8Array(size);
    let at = 0;
    for (const p of parts) {
      bytes.set(p, at);
      at += p.length;
    }
    return { ok: true, bytes };
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
