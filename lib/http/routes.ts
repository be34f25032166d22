/**
 * Every route the gateway serves, as data: method, path, handler and the
 * shape its errors take. The proxied endpoints come from the API formats;
 * client routes are wrapped in `withClient`, admin routes in `withAdmin`.
 */
import * as admin from "../admin/handlers.ts";
import { listRequests } from "../admin/requests.ts";
import { openapiEndpoint } from "../admin/openapi.ts";
import { UI_ROUTES } from "../admin/ui.ts";
import { DEFAULT_FORMAT, formatFor, formatOwning, proxiedEndpoints } from "../formats/mod.ts";
import { health } from "../ops/health.ts";
import { proxyHandler } from "../pipeline/proxy.ts";
import { withAdmin, withClient } from "./auth.ts";
import { ADMIN_SHAPE, type ErrorShape } from "./error_shape.ts";
import { ownKey } from "./key_endpoint.ts";
import { getModel, listModels } from "./models_endpoint.ts";
import type { Route } from "./router.ts";

/** The routes, matched top to bottom. */
export const ROUTES: Route[] = [
  { method: "GET", path: "/health", handler: health, shape: DEFAULT_FORMAT },
  { method: "GET", path: "/metrics", handler: admin.metricsEndpoint, shape: ADMIN_SHAPE },
  { method: "GET", path: "/openapi.json", handler: openapiEndpoint, shape: DEFAULT_FORMAT },
  ...proxiedEndpoints().map(({ format, endpoint }): Route => ({
    method: "POST",
    path: endpoint.path,
    handler: withClient(proxyHandler(format, endpoint)),
    shape: format,
  })),
  { method: "GET", path: "/v1/key", handler: withClient(ownKey), shape: formatFor },
  { method: "GET", path: "/v1/models", handler: withClient(listModels), shape: formatFor },
  { method: "GET", path: "/v1/models/:id", handler: withClient(getModel), shape: formatFor },
  ...adminRoutes([
    ["GET", "/admin/keys", admin.listKeys],
    ["POST", "/admin/keys", admin.createKey],
    ["GET", "/admin/keys/:id", admin.getKey],
    ["PATCH", "/admin/keys/:id", admin.updateKey],
    ["DELETE", "/admin/keys/:id", admin.deleteKey],
    ["GET", "/admin/keys/:id/usage", admin.keyUsageReport],
    ["POST", "/admin/keys/:id/enable", admin.setEnabled(true)],
    ["POST", "/admin/keys/:id/disable", admin.setEnabled(false)],
    ["POST", "/admin/keys/:id/rotate", admin.rotateKey],
    ["GET", "/admin/usage", admin.usageSummary],
    ["GET", "/admin/usage/daily", admin.dailyReport],
    ["GET", "/admin/usage/hourly", admin.hourlyReport],
    ["GET", "/admin/models", admin.modelsStatus],
    ["GET", "/admin/info", admin.adminInfo],
    ["GET", "/admin/requests", listRequests],
  ]),
  ...UI_ROUTES,
];

function adminRoutes(list: [string, string, Route["handler"]][]): Route[] {
  return list.map(([method, path, h]) => ({
    method,
    path,
    handler: withAdmin(h),
    shape: ADMIN_SHAPE,
  }));
}

/** The error shape of a path no route matched: its format's, the admin API's, or the default. */
export function fallbackShape(path: string, req: Request): ErrorShape {
  if (path.startsWith("/admin") || path === "/metrics") return ADMIN_SHAPE;
  return formatOwning(path) ?? formatFor(req);
}
