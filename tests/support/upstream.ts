/**
 * Fake providers for end-to-end tests: an HTTP server on 127.0.0.1 port 0
 * that records every request and answers from a handler, plus addresses
 * where nothing answers. No test touches the internet.
 */

/** One request as the fake upstream saw it. */
export interface Seen {
  method: string;
  path: string;
  search: string;
  headers: Headers;
  body: Uint8Array;
  /** Aborts when the gateway drops the connection. */
  signal: AbortSignal;
}

/** A fake provider server. */
export interface FakeUpstream {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

/** Starts a fake upstream; `handler` answers each request after its body is read. */
export function fakeUpstream(
  handler: (seen: Seen, req: Request) => Response | Promise<Response>,
): FakeUpstream {
  const seen: Seen[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const s: Seen = {
      method: req.method,
      path: url.pathname,
      search: url.search,
      headers: req.headers,
      body: new Uint8Array(await req.arrayBuffer()),
      signal: req.signal,
    };
    seen.push(s);
    return await handler(s, req);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    seen,
    close: async () => {
      await server.shutdown();
    },
  };
}

/** The request body the upstream saw, parsed as JSON. */
// deno-lint-ignore no-explicit-any
export function bodyJson(s: Seen): any {
  return JSON.parse(new TextDecoder().decode(s.body));
}

/**
 * An answer that never comes: resolves (with an empty response nobody reads)
 * only once the gateway drops the request, after calling `onAbort`.
 */
export function untilAborted(s: Seen, onAbort: () => void = () => {}): Promise<Response> {
  return new Promise((resolve) =>
    s.signal.addEventListener("abort", () => {
      onAbort();
      resolve(new Response(""));
    })
  );
}

/**
 * A provider address for routes a test never takes (the discard port; a
 * request sent there fails to connect).
 */
export const UNUSED_URL = "http://127.0.0.1:9";

/** A port nothing listens on right now. */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}
