/**
 * What a pipeline stage returns when it can fail: its value, or the error
 * the client gets (rendered by the orchestrator in the endpoint's shape).
 */
import type { GatewayError } from "../http/errors.ts";

/** A stage's value, or why the gateway refuses the request. */
export type Result<T> = { ok: true; value: T } | { ok: false; error: GatewayError };

/** A successful result. */
export function ok<T>(value: T): Result<T> {
  return { ok: true, value };
}

/** A refusal. */
export function refused<T>(error: GatewayError): Result<T> {
  return { ok: false, error };
}
