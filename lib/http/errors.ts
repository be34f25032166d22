/**
 * Errors the gateway itself raises, rendered in the native shape of the
 * endpoint the client called (see `ApiFormat.error`).
 */

/** A client-visible failure with its HTTP status and a machine-readable code. */
export class GatewayError extends Error {
  readonly status: number;
  readonly code: string;
  readonly headers?: Record<string, string>;
  /** The request field at fault, when there is one (`rpm`, `metadata.team`). */
  param?: string;

  constructor(status: number, code: string, message: string, headers?: Record<string, string>) {
    super(message);
    this.status = status;
    this.code = code;
    this.headers = headers;
  }
}

/** Shorthands for the errors every endpoint shares. */
export const errors = {
  badRequest: (code: string, message: string) => new GatewayError(400, code, message),
  notFound: (message: string) => new GatewayError(404, "not_found", message),
  methodNotAllowed: (allowed: string[]) =>
    new GatewayError(
      405,
      "method_not_allowed",
      `method not allowed; use ${allowed.join(" or ")}`,
      { allow: allowed.join(", ") },
    ),
  tooLarge: (limit: number) =>
    new GatewayError(413, "request_too_large", `request body exceeds the ${limit}-byte limit`),
  // Nobody reads this answer; it gives the request's log line and metrics a reason, not a 500.
  clientClosed: () =>
    new GatewayError(
      499,
      "client_closed_request",
      "the client closed the connection before sending its whole request body",
    ),
  // `connection: close`: the rest of the body is not awaited; the client should not reuse the
  // connection (Deno's server keeps it open until the client closes it or sends more).
  requestTimeout: (ms: number) =>
    new GatewayError(
      408,
      "request_timeout",
      `the request body did not arrive within ${ms / 1000} s; send it again`,
      { connection: "close" },
    ),
};
