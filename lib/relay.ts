/**
 * Relaying a streamed (SSE) response: the upstream body is `tee()`d; one
 * branch flows to the client as the client reads, the other is parsed for
 * usage. Metering never holds the client back, and a client that goes away
 * is noticed here (the client stream is cancelled).
 */
import type { Metered, StreamMeter } from "./metering.ts";
import { SseReader } from "./sse.ts";
import type { SseEventDropper } from "./sse_filter.ts";

/** How the metered copy of a stream ended. */
export type StreamEnd = "eof" | "upstream_error" | "client_gone";

/** What a relay needs. */
export interface RelayOptions {
  body: ReadableStream<Uint8Array>;
  meter: StreamMeter;
  /** Removes events the client did not ask for (OpenAI injected usage). */
  dropper?: SseEventDropper;
  /** Bytes of a native SSE error event, sent when the upstream fails mid-stream. */
  errorEvent: (message: string) => Uint8Array;
  /** Called once, when the metered copy has ended. */
  onEnd: (metered: Metered, end: StreamEnd) => void;
  /** Called when the client goes away: stop the upstream request. */
  onClientGone: () => void;
}

/** Starts metering and returns the stream to send to the client. */
export function relay(o: RelayOptions): ReadableStream<Uint8Array> {
  const [toClient, toMeter] = o.body.tee();
  const meterReader = toMeter.getReader();
  const clientReader = toClient.getReader();
  let clientGone = false;

  (async () => {
    const sse = new SseReader((name, data) => o.meter.event(name, data));
    let end: StreamEnd = "eof";
    try {
      for (;;) {
        const { done, value } = await meterReader.read();
        if (done) break;
        sse.push(value);
      }
    } catch {
      end = "upstream_error";
    }
    if (clientGone) end = "client_gone";
    sse.end();
    o.onEnd(o.meter.end(), end);
  })();

  const dropper = o.dropper;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      try {
        // With a dropper a read may yield nothing to send: read on until it does.
        for (;;) {
          const { done, value } = await clientReader.read();
          if (done) {
            dropper?.flush((b) => c.enqueue(b));
            c.close();
            return;
          }
          if (!dropper) return c.enqueue(value);
          let sent = false;
          dropper.push(value, (b) => {
            sent = true;
            c.enqueue(b);
          });
          if (sent) return;
        }
      } catch (e) {
        if (clientGone) return;
        c.enqueue(o.errorEvent(`upstream connection failed mid-stream: ${(e as Error).message}`));
        c.close();
      }
    },
    cancel() {
      clientGone = true;
      o.onClientGone();
      meterReader.cancel().catch(() => {});
      clientReader.cancel().catch(() => {});
    },
  });
}
