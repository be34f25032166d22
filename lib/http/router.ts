/**
 * The route table (data, in one place) and dispatch: path and method to a
 * plain handler; errors rendered in the native shape of the endpoint called.
 */
import * as admin from "../admin/handlers.ts";
import type { Context } from "../context.ts";
import { errors, GatewayError } from "./errors.ts";
import { clip } from "./client_text.ts";
import { anthropic } from "../formats/anthropic.ts";
import type { ApiFormat } from "../formats/format.ts";
import { openai } from "../formats/openai.ts";
import { health } from "../ops/health.ts";
import { errorMessage } from "../ops/log.ts";
import { getModel, listModels, wantsAnthropic } from "./models_endpoint.ts";
import { openapiEndpoint } from "../admin/openapi.ts";
import { proxy } from "../pipeline/proxy.ts";
import { type RequestUrl, requestUrl } from "./request_url.ts";

/** A route handler: a plain function over Web Request/Response. */
export type Handler = (
  req: Request,
  ctx: Context,
  url: RequestUrl,
  params: Record<string, string>,
) => Response | Promise<Response>;

/** Which error shape a route answers in. */
type Surface = "anthropic" | "openai" | "admin";

interface Route {
  method: string;
  path: string;
  handler: Handler;
  surface: Surface | ((req: Request) => Surface);
}

const modelsSurface = (req: Request): Surface => (wantsAnthropic(req) ? "anthropic" : "openai");

const withAdmin = (h: Handler): Handler => async (req, ctx, url, params) => {
  await ctx.admin.check(req.headers, ctx.keys);
  return await h(req, ctx, url, params);
};

/** Every route the gateway serves. */
export const ROUTES: Route[] = [
  { method: "GET", path: "/health", handler: health, surface: "openai" },
  { method: "GET", path: "/metrics", handler: admin.metricsEndpoint, surface: "admin" },
  { method: "GET", path: "/openapi.json", handler: openapiEndpoint, surface: "openai" },
  {
    method: "POST",
    path: "/v1/messages",
    handler: (req, ctx, url) => proxy(req, ctx, url, anthropic),
    surface: "anthropic",
  },
  {
    method: "POST",
    path: "/v1/messages/count_tokens",
    handler: (req, ctx, url) => proxy(req, ctx, url, anthropic, true),
    surface: "anthropic",
  },
  {
    method: "POST",
    path: "/v1/chat/completions",
    handler: (req, ctx, url) => proxy(req, ctx, url, openai),
    surface: "openai",
  },
  { method: "GET", path: "/v1/models", handler: listModels, surface: modelsSurface },
  { method: "GET", path: "/v1/models/:id", handler: getModel, surface: modelsSurface },
  { method: "GET", path: "/admin/keys", handler: withAdmin(admin.listKeys), surface: "admin" },
  { method: "POST", path: "/admin/keys", handler: withAdmin(admin.createKey), surface: "admin" },
  { method: "GET", path: "/admin/keys/:id", handler: withAdmin(admin.getKey), surface: "admin" },
  {
    method: "DELETE",
    path: "/admin/keys/:id",
    handler: withAdmin(admin.deleteKey),
    surface: "admin",
  },
  {
    method: "GET",
    path: "/admin/keys/:id/usage",
    handler: withAdmin(admin.keyUsageReport),
    surface: "admin",
  },
  {
    method: "POST",
    path: "/admin/keys/:id/enable",
    handler: withAdmin(admin.setEnabled(true)),
    surface: "admin",
  },
  {
    method: "POST",
    path: "/admin/keys/:id/disable",
    handler: withAdmin(admin.setEnabled(false)),
    surface: "admin",
  },
  {
    method: "POST",
    path: "/admin/keys/:id/rotate",
    handler: withAdmin(admin.rotateKey),
    surface: "admin",
  },
  { method: "GET", path: "/admin/usage", handler: withAdmin(admin.usageSummary), surface: "admin" },
  {
    method: "GET",
    path: "/admin/usage/daily",
    handler: withAdmin(admin.dailyReport),
    surface: "admin",
  },
  {
    method: "GET",
    path: "/admin/usage/hourly",
    handler: withAdmin(admin.hourlyReport),
    surface: "admin",
  },
  {
    method: "GET",
    path: "/admin/models",
    handler: withAdmin(admin.modelsStatus),
    surface: "admin",
  },
];

interface Compiled extends Route {
  parts: string[];
}

const FORMATS: Record<"anthropic" | "openai", ApiFormat> = { anthropic, openai };

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

function surfaceForPath(path: string, req: Request): Surface {
  if (path.startsWith("/v1/messages")) return "anthropic";
  if (path.startsWith("/admin") || path === "/metrics") return "admin";
  if (path.startsWith("/v1/models")) return modelsSurface(req);
  return "openai";
}

/** Renders an error in a surface's native shape. */
export function errorResponse(surface: Surface, e: GatewayError): Response {
  const res = surface === "admin"
    ? admin.adminError(e.status, e.message, e.code)
    : FORMATS[surface].error(e.status, e.message, e.code);
  for (const [k, v] of Object.entries(e.headers ?? {})) res.headers.set(k, v);
  return res;
}

/** Builds the request handler for a route table. */
export function createRouter(ctx: Context, routes: Route[] = ROUTES) {
  const table: Compiled[] = routes.map((r) => ({ ...r, parts: r.path.split("/") }));
  return async (req: Request): Promise<Response> => {
    const url = requestUrl(req.url);
    const path = url.pathname.length > 1 && url.pathname.endsWith("/")
      ? url.pathname.slice(0, -1)
      : url.pathname;
    const method = req.method === "HEAD" ? "GET" : req.method;
    const segs = path.split("/");
    let surface: Surface = surfaceForPath(path, req);
    try {
      const allowed: string[] = [];
      for (const r of table) {
        const params = match(r.parts, segs);
        if (!params) continue;
        if (r.method !== method) {
          allowed.push(r.method);
          continue;
        }
        surface = typeof r.surface === "function" ? r.surface(req) : r.surface;
        return await r.handler(req, ctx, url, params);
      }
      if (allowed.length) throw errors.methodNotAllowed(allowed);
      throw errors.notFound(`no route for ${clip(req.method)} ${clip(path)}`);
    } catch (e) {
      if (e instanceof GatewayError) return errorResponse(surface, e);
      ctx.log.error("internal error", { path, method: req.method, error: errorMessage(e) });
      return errorResponse(
        surface,
        new GatewayError(500, "internal_error", "internal gateway error"),
      );
    }
  };
}
