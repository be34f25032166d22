/**
 * Dispatch: path and method to a plain handler (the table is `routes.ts`),
 * errors rendered in the native shape of the endpoint called, and the one
 * log line and metric every request gets, refused ones included.
 */
import type { Context } from "../context.ts";
import { newId } from "../ops/ids.ts";
import { errorMessage } from "../ops/log.ts";
import type { Call, Handler } from "./call.ts";
import { errorResponse, type ErrorShape } from "./error_shape.ts";
import { clip } from "./client_text.ts";
import { errors, GatewayError } from "./errors.ts";
import { type RequestUrl, requestUrl } from "./request_url.ts";

/** One route: method, path pattern (`:name` captures a segment), handler, error shape. */
export interface Route {
  method: string;
  path: string;
  handler: Handler;
  /** The shape errors take here, or how to pick it from the request (shared routes). */
  shape: ErrorShape | ((req: Request) => ErrorShape);
}

/** Picks the error shape of a path no route matched. */
export type FallbackShape = (path: string, req: Request) => ErrorShape;

interface Compiled extends Route {
  parts: string[];
}

function match(parts: string[], path: string[]): Record<string, string> | undefined {
  if (parts.length !== path.length) return undefined;
  const params: Record<string, string> = {};
  for (let i = 0; i < parts.length; i++) {
    if (parts[i].startsWith(":")) {
      if (path[i] === "") return undefined;
      try {
        params[parts[i].slice(1)] = decodeURIComponent(path[i]);
      } catch {
        return undefined; // malformed percent-encoding: no route matches
      }
    } else if (parts[i] !== path[i]) return undefined;
  }
  return params;
}

/** The access log line of a request no pipeline stage logged itself. */
function logCall(ctx: Context, req: Request, call: Call, status: number): void {
  const level = status >= 500 ? "error" : "info";
  if (!ctx.log.enabled(level)) return;
  ctx.log.log(level, "request", {
    request_id: call.id,
    method: req.method,
    path: call.route === "unmatched" ? undefined : clip(call.url.pathname),
    route: call.route,
    status,
    reason: call.reason,
    key_id: call.key?.id,
    model: call.model,
    latency_ms: Math.round(performance.now() - call.t0),
  });
}

/** Builds the request handler for a route table. */
export function createRouter(ctx: Context, routes: Route[], fallback: FallbackShape) {
  const table: Compiled[] = routes.map((r) => ({ ...r, parts: r.path.split("/") }));
  return async (req: Request): Promise<Response> => {
    const t0 = performance.now();
    const url: RequestUrl = requestUrl(req.url);
    const path = url.pathname.length > 1 && url.pathname.endsWith("/")
      ? url.pathname.slice(0, -1)
      : url.pathname;
    const method = req.method === "HEAD" ? "GET" : req.method;
    const segs = path.split("/");
    let route: Compiled | undefined;
    let params: Record<string, string> = {};
    const allowed: string[] = [];
    let pattern = "unmatched";
    for (const r of table) {
      const p = match(r.parts, segs);
      if (!p) continue;
      pattern = r.path;
      if (r.method !== method) {
        allowed.push(r.method);
        continue;
      }
      route = r;
      params = p;
      break;
    }
    const receivedAt = ctx.clock.now();
    const call: Call = { id: newId(receivedAt), url, params, route: pattern, receivedAt, t0 };
    let res: Response;
    try {
      if (!route) {
        throw allowed.length
          ? errors.methodNotAllowed(allowed)
          : errors.notFound(`no route for ${clip(req.method)} ${clip(path)}`);
      }
      res = await route.handler(req, ctx, call);
    } catch (e) {
      let err: GatewayError;
      if (e instanceof GatewayError) err = e;
      else {
        ctx.log.error("internal error", {
          request_id: call.id,
          route: call.route,
          error: errorMessage(e),
        });
        err = new GatewayError(500, "internal_error", "internal gateway error");
      }
      call.reason = err.code;
      const shape = route
        ? (typeof route.shape === "function" ? route.shape(req) : route.shape)
        : fallback(path, req);
      res = errorResponse(shape, err);
      res.headers.set("x-request-id", call.id);
      // Nothing the gateway answers itself is worth caching, and admin answers must never be.
      res.headers.set("cache-control", "no-store");
    }
    ctx.metrics.http.inc({ route: call.route, status_class: `${Math.floor(res.status / 100)}xx` });
    if (call.reason) ctx.metrics.refused.inc({ reason: call.reason });
    if (!call.logged) logCall(ctx, req, call, res.status);
    return res;
  };
}
