/**
 * What an API format (Anthropic Messages, OpenAI Chat Completions) knows
 * about itself. The proxy core only talks to this interface, never
 * `if (format === ...)`.
 */
import type { Metered, StreamMeter } from "../metering/tokens.ts";
import type { BodyFields } from "../pipeline/body.ts";
import type { FormatName, Provider } from "../config/registry.ts";
import type { SseEventDropper } from "../metering/sse_event_filter.ts";

/** The request body as it will go upstream. */
export interface PreparedBody {
  bytes: Uint8Array<ArrayBuffer>;
  /** True when the gateway asked for stream usage the client did not ask for. */
  stripUsageEvent: boolean;
}

/** Facts the proxy needs from a client request body. */
export interface BodyFacts {
  model: string;
  stream: boolean;
}

/** One API format's behaviour. */
export interface ApiFormat {
  readonly name: FormatName;
  /** The gateway path for this format's main call, e.g. `/v1/messages`. */
  readonly path: string;
  /** An error response in this format's native shape. */
  error(status: number, message: string, code?: string): Response;
  /** The bytes of a native SSE error event, sent when a stream must end early. */
  sseError(status: number, message: string): Uint8Array;
  /** Usage from a complete JSON response body (any status). */
  meterJson(body: unknown): Omit<Metered, "status">;
  /** A fresh accumulator for one streamed response. */
  streamMeter(): StreamMeter;
  /**
   * The body to send upstream. The only edit any format makes is OpenAI's
   * `stream_options.include_usage` on streams; everything else is byte-for-byte.
   */
  prepareBody(
    raw: Uint8Array<ArrayBuffer>,
    json: BodyFields,
    provider: Provider,
  ): PreparedBody;
  /**
   * For streams where `stripUsageEvent` is set: a filter that removes the
   * usage-only event the client did not ask for, and nothing else.
   */
  injectedUsageDropper(): SseEventDropper;
}

/** A JSON response with the given status. */
export function jsonResponse(status: number, body: unknown, headers?: HeadersInit): Response {
  const h = new Headers(headers);
  h.set("content-type", "application/json");
  return new Response(JSON.stringify(body), { status, headers: h });
}
