/**
 * The wire to a provider: which client headers go upstream and which
 * upstream headers come back, and the provider's credential in its own
 * header style.
 */
import type { Provider } from "./registry.ts";

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

// Bodies come back decoded and re-framed; upstream cookies and protocol
// hints belong to the upstream's origin, not the gateway's.
const DROP_RESPONSE = new Set([
  ...HOP_BY_HOP,
  "content-length",
  "content-encoding",
  "set-cookie",
  "alt-svc",
]);

/** Headers for the upstream request: the client's, minus hop-by-hop and credentials, plus the provider's. */
export function upstreamHeaders(
  client: Headers,
  provider: Provider,
  secret: string | undefined,
): Headers {
  const h = new Headers();
  const named = client.get("connection")?.toLowerCase().split(",").map((s) => s.trim());
  for (const [k, v] of client) {
    if (!DROP_REQUEST.has(k) && !named?.includes(k)) h.set(k, v);
  }
  for (const [k, v] of Object.entries(provider.headers)) h.set(k, v);
  if (secret) {
    if (provider.authHeader === "x-api-key") h.set("x-api-key", secret);
    else h.set("authorization", `Bearer ${secret}`);
  }
  return h;
}

/** Headers for the client's response: the upstream's, minus hop-by-hop and framing. */
export function responseHeaders(upstream: Headers): Headers {
  const h = new Headers();
  for (const [k, v] of upstream) if (!DROP_RESPONSE.has(k)) h.set(k, v);
  return h;
}

/** True for an SSE response. */
export function isEventStream(headers: Headers): boolean {
  return headers.get("content-type")?.toLowerCase().includes("text/event-stream") ?? false;
}
