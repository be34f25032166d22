/**
 * Response bodies for fake upstreams: SSE events, whole SSE responses, and
 * streams that arrive in chunks, slowly or never, with hooks that tell the
 * test when the gateway cancelled or finished reading them.
 */

const enc = new TextEncoder();

/** One SSE event with its blank line: an optional `event:` name and `data:` as JSON. */
export function sseEvent(name: string | undefined, data: unknown): string {
  return `${name === undefined ? "" : `event: ${name}\n`}data: ${JSON.stringify(data)}\n\n`;
}

/** A `data:`-only SSE event (OpenAI style) with its blank line. */
export function sseData(data: unknown): string {
  return sseEvent(undefined, data);
}

/** An SSE response from event strings (each a full `event:`/`data:` block without the blank line). */
export function sseResponse(events: string[], headers: Record<string, string> = {}): Response {
  return new Response(events.map((e) => e + "\n\n").join(""), {
    headers: { "content-type": "text/event-stream", ...headers },
  });
}

/** How {@link chunkedResponse} paces and reports. */
export interface Pacing {
  /** Wait before every chunk but the first. */
  gapMs?: number;
  headers?: Record<string, string>;
  /** The reader (the gateway) cancelled the body. */
  onCancel?: () => void;
  /** The last chunk was read and the body closed. */
  onEnd?: () => void;
}

/**
 * A response streaming `chunks` one per read, the first at once and each
 * next one `gapMs` later. `chunks` may be endless (a generator) for an
 * upstream that drips until the gateway gives up.
 */
export function chunkedResponse(
  chunks: Iterable<string | Uint8Array>,
  pacing: Pacing = {},
): Response {
  const it = chunks[Symbol.iterator]();
  let next = it.next();
  let first = true;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (next.done) return c.close();
      if (!first && pacing.gapMs) await new Promise((r) => setTimeout(r, pacing.gapMs));
      first = false;
      const ch = next.value;
      c.enqueue(typeof ch === "string" ? enc.encode(ch) : ch);
      next = it.next();
      if (next.done) {
        c.close();
        pacing.onEnd?.();
      }
    },
    cancel() {
      pacing.onCancel?.();
    },
  });
  return new Response(body, {
    headers: pacing.headers ?? { "content-type": "text/event-stream" },
  });
}

/** Concatenates byte chunks. */
export function concatBytes(parts: Uint8Array[]): Uint8Array {
  const out = new Uint8Array(parts.reduce((n, p) => n + p.length, 0));
  let i = 0;
  for (const p of parts) {
    out.set(p, i);
    i += p.length;
  }
  return out;
}
