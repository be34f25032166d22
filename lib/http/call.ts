/**
 * What the router knows about one request, handed to its handler with the
 * request and the context: ids, times, the matched route, and what later
 * steps learn (the client key, why the gateway refused) for the one log line
 * every request gets.
 */
import type { Context } from "../context.ts";
import type { KeyRecord } from "../store/keys.ts";
import type { RequestUrl } from "./request_url.ts";

/** One request as the router hands it on. */
export interface Call {
  /** Gateway request id (ULID), sent back as `x-request-id`. */
  readonly id: string;
  readonly url: RequestUrl;
  /** Path parameters of the matched route (`:id`). */
  readonly params: Record<string, string>;
  /** The matched route pattern (a bounded metric label), or `unmatched`. */
  readonly route: string;
  /** Epoch ms (from the context's clock) when the request arrived. */
  readonly receivedAt: number;
  /** `performance.now()` when it arrived, for durations. */
  readonly t0: number;
  /** The client key, once authenticated. */
  key?: KeyRecord;
  /** The model asked for, once the body was inspected (at most 256 bytes). */
  model?: string;
  /** The machine-readable reason when the gateway itself refused the request. */
  reason?: string;
  /** True when a pipeline stage wrote the request's log line itself. */
  logged?: boolean;
}

/** A call whose client key is authenticated. */
export interface ClientCall extends Call {
  key: KeyRecord;
}

/** A route handler: a plain function over Web Request/Response. */
export type Handler = (req: Request, ctx: Context, call: Call) => Response | Promise<Response>;

/** A handler for authenticated clients (see `withClient`). */
export type ClientHandler = (
  req: Request,
  ctx: Context,
  call: ClientCall,
) => Response | Promise<Response>;
