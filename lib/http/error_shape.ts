/**
 * The shapes errors the gateway raises itself take: each API format renders
 * its own native body (see `ApiFormat.error`); the admin API answers with
 * Luna's `detail` plus a structured `error`.
 */
import type { GatewayError } from "./errors.ts";
import { jsonResponse } from "./json.ts";

/** Renders a gateway error in one native shape. */
export interface ErrorShape {
  error(status: number, message: string, code?: string, param?: string): Response;
}

/** The admin API's error shape: Luna's `detail` plus `error` with a machine-readable code. */
export const ADMIN_SHAPE: ErrorShape = {
  error(status, message, code = "error", param) {
    return jsonResponse(status, {
      detail: message,
      error: { message, type: code, code, ...(param !== undefined ? { param } : {}) },
    });
  },
};

/** Renders a gateway error in a shape, with its extra headers. */
export function errorResponse(shape: ErrorShape, e: GatewayError): Response {
  const res = shape.error(e.status, e.message, e.code, e.param);
  for (const [k, v] of Object.entries(e.headers ?? {})) res.headers.set(k, v);
  return res;
}
