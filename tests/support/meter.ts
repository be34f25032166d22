/**
 * Metering without a server: bytes through the SSE reader into a format's
 * stream meter, and a comparable view of what it measured.
 */
import type { ApiFormat } from "../../lib/formats/format.ts";
import type { Metered, Tokens } from "../../lib/metering/tokens.ts";
import { SseReader } from "../../lib/metering/sse_reader.ts";

/** A meter result with a fixed key order and an absent error type as null. */
export interface MeteredView {
  status: Metered["status"];
  usageSeen: boolean;
  errorType: string | null;
  tokens: Tokens;
  extra: { model: string; tokens: Tokens }[];
}

/** `t` with its fields in one fixed order (so JSON of two views compares). */
export function tokensView(t: Tokens): Tokens {
  return {
    inputUncached: t.inputUncached,
    cacheRead: t.cacheRead,
    cacheWrite: t.cacheWrite,
    cacheWrite1h: t.cacheWrite1h,
    output: t.output,
    webSearch: t.webSearch,
    webFetch: t.webFetch,
  };
}

/** The comparable view of a meter result. */
export function meteredView(m: Metered): MeteredView {
  return {
    status: m.status,
    usageSeen: m.usageSeen,
    errorType: m.errorType ?? null,
    tokens: tokensView(m.tokens),
    extra: m.extra.map((e) => ({ model: e.model, tokens: tokensView(e.tokens) })),
  };
}

/**
 * Feeds `chunks` through an SseReader into a fresh stream meter of `format`;
 * `onEvent` sees every event the reader dispatched.
 */
export function meterChunks(
  format: ApiFormat,
  chunks: Iterable<Uint8Array>,
  onEvent?: (name: string | undefined, data: string) => void,
): Metered {
  const meter = format.streamMeter();
  const reader = new SseReader((name, data) => {
    onEvent?.(name, data);
    meter.event(name, data);
  });
  for (const c of chunks) reader.push(c);
  reader.end();
  return meter.end();
}
