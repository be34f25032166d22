/**
 * Which client headers go to a provider and which of its headers come back:
 * hop-by-hop and framing headers never cross, the client's credentials are
 * replaced by the provider's, and the client's address stays with the
 * gateway unless the provider opts in.
 */
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
const CLIENT_ADDRESS_HEADERS: ReadonlySet<string> = new Set([
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
  if (secret) out.push([provider.credential.header, provider.credential.prefix + secret]);
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
