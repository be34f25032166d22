/**
 * The client side of the property test: sends a generated request and
 * reads its answer the way the request's client plan says (whole, slowly,
 * up to a mark and then away, or hanging up on its own connection).
 */
import type { Spec } from "./fuzz_requests.ts";
import { rawRequest } from "./raw_http.ts";
import { delay } from "./wait.ts";

/** A promise with its resolver. */
export interface Deferred {
  promise: Promise<void>;
  resolve: () => void;
}

/** A new {@link Deferred}. */
export function deferred(): Deferred {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => resolve = r);
  return { promise, resolve };
}

/** What a client got. */
export interface Outcome {
  status?: number;
  headers?: Headers;
  text?: string;
  /** The client read the whole body. */
  whole: boolean;
  /** The client went away before an answer (on purpose). */
  aborted?: boolean;
  /** The request failed below HTTP. */
  error?: string;
}

const dec = new TextDecoder();

/** A text line in the provider's stream that a leaving client waits for. */
const MARK = /: fuzz-mark\r?\n\r?\n/;

/** Longest a request may take before the client gives up on it (and the test fails). */
const CLIENT_TIMEOUT_MS = 60_000;

/**
 * Sends `spec`; `arrived` resolves when the provider has it (a client that
 * hangs up waits for it), `left` is resolved once a leaving client has left
 * (or, for one that reads on, once it has read the provider's mark).
 */
export async function sendSpec(
  url: string,
  spec: Spec,
  arrived: Deferred,
  left: Deferred,
): Promise<Outcome> {
  const plan = spec.client;
  if (plan.kind === "raw" || plan.kind === "abort-on-arrival") {
    // Its own connection, so that hanging up closes it.
    const r = await rawRequest(url, {
      method: spec.method,
      path: spec.path,
      headers: spec.headers,
      body: spec.body ?? new Uint8Array(0),
      declared: plan.kind === "raw" ? plan.declared : undefined,
      hangUp: plan.kind === "abort-on-arrival"
        ? arrived.promise
        : plan.ending === "hang-up"
        ? "now"
        : undefined,
      lingerMs: 20,
    });
    if (r.status === undefined) return { whole: false, aborted: true };
    return { status: r.status, headers: r.headers, text: r.text, whole: true };
  }
  // Not `AbortSignal.timeout`: its timer would keep every request's signal alive for the whole
  // timeout, and the test measures the heap.
  const controller = new AbortController();
  const timer = setTimeout(() => controller.abort(), CLIENT_TIMEOUT_MS);
  try {
    return await fetchAndRead(url, spec, left, controller.signal);
  } finally {
    clearTimeout(timer);
  }
}

async function fetchAndRead(
  url: string,
  spec: Spec,
  left: Deferred,
  signal: AbortSignal,
): Promise<Outcome> {
  const plan = spec.client;
  const body = spec.body === undefined
    ? undefined
    : spec.upload === "stream"
    ? uploadStream(spec.body)
    : spec.body as Uint8Array<ArrayBuffer>;
  let res: Response;
  try {
    res = await fetch(url + spec.path, {
      method: spec.method,
      headers: spec.headers,
      body,
      signal,
      redirect: "manual",
    });
  } catch (e) {
    return { whole: false, error: String(e) };
  }
  try {
    if ((plan.kind === "leave-at-mark" || plan.kind === "read-through-mark") && res.body) {
      const reader = res.body.getReader();
      let text = "";
      let marked = false;
      for (;;) {
        const r = await reader.read();
        if (r.done) return { status: res.status, headers: res.headers, text, whole: true };
        text += dec.decode(r.value, { stream: true });
        if (marked || !MARK.test(text)) continue;
        // What precedes the mark has been metered: the gateway meters before it relays.
        marked = true;
        if (plan.kind === "read-through-mark") {
          left.resolve();
          continue;
        }
        await reader.cancel();
        left.resolve();
        return { status: res.status, headers: res.headers, text, whole: false };
      }
    }
    const text = await readText(res, plan.kind === "read" && plan.slow);
    return { status: res.status, headers: res.headers, text, whole: true };
  } catch (e) {
    return { status: res.status, headers: res.headers, whole: false, error: String(e) };
  }
}

async function readText(res: Response, slow: boolean): Promise<string> {
  if (!slow) return await res.text();
  const reader = res.body!.getReader();
  const parts: Uint8Array[] = [];
  for (;;) {
    const r = await reader.read();
    if (r.done) break;
    parts.push(r.value);
    await delay(2);
  }
  return dec.decode(
    new Uint8Array(await new Blob(parts as Uint8Array<ArrayBuffer>[]).arrayBuffer()),
  );
}

/** A body sent in 8 KiB pieces, chunked, without a content-length. */
function uploadStream(bytes: Uint8Array): ReadableStream<Uint8Array> {
  let at = 0;
  return new ReadableStream({
    pull(c) {
      if (at >= bytes.length) return c.close();
      const n = Math.min(bytes.length - at, 8192);
      c.enqueue(bytes.slice(at, at + n));
      at += n;
    },
  });
}
