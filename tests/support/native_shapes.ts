/**
 * The native error shapes a client of the gateway expects, as checks:
 * which shape the gateway's own errors take on a path (the rule of
 * lib/http/routes.ts, restated from the documentation), whether a body is
 * in that shape, and whether text is the native SSE error event that ends
 * a stream the gateway cut short.
 */

/** Anthropic's `{type:"error", error:{type, message}}`, OpenAI's `{error:{message, type, param, code}}`, or the admin API's `{detail, error}`. */
export type Shape = "anthropic" | "openai" | "admin";

/**
 * The shape of the gateway's own errors on `path`: the admin API's under
 * `/admin` and on `/metrics`, Anthropic's on `/v1/messages*`, OpenAI's on
 * `/v1/chat/completions*`; elsewhere (`/v1/models`, unknown paths, a wrong
 * method on `/health`) Anthropic's when the request carries
 * `anthropic-version`, else OpenAI's. `/health` and `/openapi.json` answer
 * in OpenAI's.
 */
export function shapeFor(path: string, method: string, headers: [string, string][]): Shape {
  const p = path.length > 1 && path.endsWith("/") ? path.slice(0, -1) : path;
  const claimed = headers.some(([k]) => k.toLowerCase() === "anthropic-version")
    ? "anthropic"
    : "openai";
  if (p.startsWith("/admin") || p === "/metrics") return "admin";
  if (p === "/health" || p === "/openapi.json") {
    return method === "GET" || method === "HEAD" ? "openai" : claimed;
  }
  if (p.startsWith("/v1/messages")) return "anthropic";
  if (p.startsWith("/v1/chat/completions")) return "openai";
  return claimed;
}

function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** Why `body` (parsed JSON) is not an error in `shape`; undefined when it is. */
export function shapeProblem(shape: Shape, body: unknown): string | undefined {
  const e = isObject(body) ? body.error : undefined;
  if (!isObject(body) || !isObject(e) || typeof e.message !== "string") {
    return "no error object with a message";
  }
  if (shape === "anthropic") {
    if (body.type !== "error" || typeof e.type !== "string") return "not Anthropic's shape";
  } else if (shape === "openai") {
    if (
      typeof e.type !== "string" || e.param !== null ||
      !(e.code === null || typeof e.code === "string")
    ) {
      return "not OpenAI's shape";
    }
  } else if (
    typeof body.detail !== "string" || typeof e.code !== "string" || typeof e.type !== "string"
  ) {
    return "not the admin shape";
  }
  return undefined;
}

/**
 * True when `text` is exactly one native SSE error event of the API
 * (`event: error` with an Anthropic error, or an OpenAI `data:` error).
 */
export function isNativeStreamError(api: "anthropic" | "openai", text: string): boolean {
  const m = api === "openai"
    ? /^data: (\{.*\})\n\n$/s.exec(text)
    : /^event: error\ndata: (\{.*\})\n\n$/s.exec(text);
  if (!m) return false;
  try {
    return shapeProblem(api, JSON.parse(m[1])) === undefined;
  } catch {
    return false;
  }
}
