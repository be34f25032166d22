/**
 * Token metering: the normalized usage record of one request, and the
 * interfaces each API format implements to fill it from a JSON body or from
 * the events of a stream. Everything here is pure: bytes in, numbers out.
 *
 * The rules are those of docs/metering.md ("Overwrite, never add"): never add usage across the
 * events of one response, overwrite with the latest non-null value, and keep
 * input as three disjoint buckets (uncached, cache read, cache write).
 */

/** Billable token buckets of one request (or of one model within it). */
export interface Tokens {
  /** Prompt tokens neither read from nor written to a cache. */
  inputUncached: number;
  cacheRead: number;
  /** Tokens written to a cache (all durations). */
  cacheWrite: number;
  /**
   * The part of `cacheWrite` written for one hour (Anthropic
   * `cache_creation.ephemeral_1h_input_tokens`), priced apart; 0 where a
   * provider reports no split (those writes are five-minute ones).
   */
  cacheWrite1h: number;
  /** Generated tokens, reasoning included (Gemini's hidden thinking added in). */
  output: number;
  /** Server tool requests billed per request (Anthropic `server_tool_use`). */
  webSearch: number;
  webFetch: number;
}

/**
 * How a request ended, for accounting:
 * - `ok`: complete, final usage known;
 * - `http_error`: the upstream answered with a non-2xx status;
 * - `stream_error`: a stream ended with an error event after HTTP 200;
 * - `incomplete`: a stream ended (or was cut) without its final usage.
 */
export type MeterStatus = "ok" | "http_error" | "stream_error" | "incomplete";

/** What metering learned about one response. */
export interface Metered {
  status: MeterStatus;
  tokens: Tokens;
  /** True when the response carried any usage at all. */
  usageSeen: boolean;
  /** Usage billed under another model (Anthropic advisor iterations). */
  extra: { model: string; tokens: Tokens }[];
  /** Error type named by the upstream (an SSE error event or error body). */
  errorType?: string;
}

/** Accumulates usage from the events of one SSE response. */
export interface StreamMeter {
  /** One dispatched SSE event: its `event:` name (undefined when absent) and joined data. */
  event(name: string | undefined, data: string): void;
  /** Called once when the stream ended (EOF, error or cancellation). */
  end(): Metered;
  /**
   * True once the response's content is complete (a finish or stop reason was
   * seen): what may still follow is its usage and end markers, which cost the
   * provider nothing more to send.
   */
  readonly finished: boolean;
}

/** Returns a zeroed token record. */
export function zeroTokens(): Tokens {
  return {
    inputUncached: 0,
    cacheRead: 0,
    cacheWrite: 0,
    cacheWrite1h: 0,
    output: 0,
    webSearch: 0,
    webFetch: 0,
  };
}

/** Adds `b` into `a` in place and returns `a`. */
export function addTokens(a: Tokens, b: Tokens): Tokens {
  a.inputUncached += b.inputUncached;
  a.cacheRead += b.cacheRead;
  a.cacheWrite += b.cacheWrite;
  a.cacheWrite1h += b.cacheWrite1h;
  a.output += b.output;
  a.webSearch += b.webSearch;
  a.webFetch += b.webFetch;
  return a;
}

/** A non-negative integer from an untrusted JSON value, or undefined. */
export function count(v: unknown): number | undefined {
  return typeof v === "number" && Number.isFinite(v) && v >= 0 ? Math.floor(v) : undefined;
}

/** Narrows an untrusted JSON value to a plain object. */
export function isObject(v: unknown): v is Record<string, unknown> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

/** `JSON.parse` that returns undefined instead of throwing. */
export function tryParse(text: string): unknown {
  try {
    return JSON.parse(text);
  } catch {
    return undefined;
  }
}
