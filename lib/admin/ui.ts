/**
 * The admin dashboard (`/admin/ui`): a static page and its assets, embedded
 * in the gateway (generated `ui_assets.ts`, built from `ui/` by `deno task
 * ui:build`). The page holds no admin data, so it is served without the
 * admin key (but not while the admin API is disabled); everything it shows
 * comes from the admin API, which its script calls with the key in a header.
 */
import type { Context } from "../context.ts";
import type { Handler } from "../http/call.ts";
import { ADMIN_SHAPE } from "../http/error_shape.ts";
import type { Route } from "../http/router.ts";
import { errors } from "../http/errors.ts";
import { UI_ASSETS } from "./ui_assets.ts";

/**
 * Only the page's own files may load; no inline script or style, no framing,
 * no form posts, no plugins. Admin API calls are same-origin fetches.
 */
const UI_CSP = [
  "default-src 'none'",
  "script-src 'self'",
  "style-src 'self'",
  "img-src 'self'",
  "connect-src 'self'",
  "base-uri 'none'",
  "form-action 'none'",
  "frame-ancestors 'none'",
].join("; ");

/** Headers on every dashboard response: nothing cached, nothing sniffed or framed. */
const UI_HEADERS: Readonly<Record<string, string>> = {
  "content-security-policy": UI_CSP,
  "cache-control": "no-store",
  "x-content-type-options": "nosniff",
  "x-frame-options": "DENY",
  "referrer-policy": "no-referrer",
  "cross-origin-opener-policy": "same-origin",
  "cross-origin-resource-policy": "same-origin",
};

const enc = new TextEncoder();
// Encoded once: the assets never change while the process runs.
const BODIES = new Map(
  Object.entries(UI_ASSETS).map(([name, a]) => [name, { type: a.type, bytes: enc.encode(a.body) }]),
);

function serve(name: string): Response {
  const asset = BODIES.get(name);
  if (!asset) throw errors.notFound(`no dashboard asset named ${JSON.stringify(name)}`);
  return new Response(asset.bytes, {
    headers: { ...UI_HEADERS, "content-type": asset.type },
  });
}

/** Like every admin route, the dashboard is off while the admin API is (503 saying how to enable it). */
async function whileAdminEnabled(req: Request, ctx: Context): Promise<void> {
  if (!ctx.admin.enabled) await ctx.admin.check(req.headers, ctx.keys);
}

/** `GET /admin/ui`: the page. */
const uiPage: Handler = async (req, ctx) => {
  await whileAdminEnabled(req, ctx);
  return serve("index.html");
};

/** `GET /admin/ui/{asset}`: its script, style sheet and icon. */
const uiAsset: Handler = async (req, ctx, { params }) => {
  await whileAdminEnabled(req, ctx);
  return serve(params.asset);
};

/** The dashboard's routes, for the route table (one spread there). */
export const UI_ROUTES: Route[] = [
  { method: "GET", path: "/admin/ui", handler: uiPage, shape: ADMIN_SHAPE },
  { method: "GET", path: "/admin/ui/:asset", handler: uiAsset, shape: ADMIN_SHAPE },
];
