/**
 * Relaying a streamed (SSE) response: the upstream body is `tee()`d; one
 * branch flows to the client as the client reads, the other is parsed for
 * usage. Metering never holds the client back.
 *
 * The relay also ends streams that go wrong: an upstream that falls silent
 * for `idleMs` or runs past its deadline, a gateway shutting down, or an
 * upstream connection that breaks. The client then gets one native SSE error
 * event and the end of the stream. When the client goes away, the upstream
 * request is cancelled (or, with `drain`, read to its end to meter it).
 */
import type { Deadline, Deadlines } from "../upstream/deadlines.ts";
import type { Metered, StreamMeter } from "../metering/tokens.ts";
import { SseReader } from "../metering/sse_reader.ts";
import type { SseEventDropper } from "../metering/sse_event_filter.ts";

/** How the metered copy of a stream ended. */
export type StreamEnd =
  | "eof"
  | "upstream_error"
  | "client_gone"
  | "idle_timeout"
  | "total_timeout"
  | "shutdown";

/** What a relay needs. */
export interface RelayOptions {
  body: ReadableStream<Uint8Array>;
  meter: StreamMeter;
  /** Removes events the client did not ask for (OpenAI injected usage). */
  dropper?: SseEventDropper;
  /** Bytes of a native SSE error event. */
  errorEvent: (message: string) => Uint8Array;
  /** The shared ticker the idle and total limits run on. */
  deadlines: Deadlines;
  /** Longest silence between upstream chunks. */
  idleMs: number;
  /** `performance.now()` by which the stream must have ended. */
  deadline: number;
  onDisconnect: "cancel" | "drain";
  drainTimeoutMs: number;
  /** Stops the upstream request. */
  abortUpstream: () => void;
  /** Called once, when the metered copy has ended. */
  onEnd: (metered: Metered, end: StreamEnd, detail?: string) => void;
}

/** A running relay. */
export interface Relay {
  /** The stream to send to the client. */
  stream: ReadableStream<Uint8Array>;
  /** Ends the stream now: the client gets an error event naming `reason`. */
  abort(reason: string): void;
}

/** Smallest and largest read buffer for an upstream body. */
const MIN_READ = 4096, MAX_READ = 65536;

/**
 * The upstream body as a plain (not byte) stream read into right-sized
 * buffers. A byte stream's `tee()` copies every chunk for its second branch
 * and keeps a 64 KiB buffer allocated for each pending read; SSE chunks are
 * mostly small, so reads start at 4 KiB and grow only while they fill up.
 * Measured: a quarter of the memory per open stream, and fewer copies.
 */
export function sizedReads(body: ReadableStream<Uint8Array>): ReadableStream<Uint8Array> {
  let reader: ReadableStreamBYOBReader;
  try {
    reader = body.getReader({ mode: "byob" });
  } catch {
    return body; // not a byte stream: nothing to size
  }
  let size = MIN_READ;
  return new ReadableStream<Uint8Array>({
    async pull(c) {
      const { done, value } = await reader.read(new Uint8Array(size));
      if (done) return c.close();
      if (value.length === size) size = Math.min(size * 2, MAX_READ);
      else if (value.length < size / 4) size = Math.max(size / 2, MIN_READ);
      c.enqueue(value);
    },
    cancel(reason) {
      return reader.cancel(reason);
    },
  }, { highWaterMark: 0 });
}

/** Starts metering and returns the client's stream. */
export function relay(o: RelayOptions): Relay {
  const [toClient, toMeter] = sizedReads(o.body).tee();
  const meterReader = toMeter.getReader();
  const clientReader = toClient.getReader();
  let clientGone = false;
  let stopped: { end: StreamEnd; message: string } | undefined;
  let clientClosed = false;
  let client: ReadableStreamDefaultController<Uint8Array> | undefined;
  let lastChunk = performance.now();
  let watchdog: Deadline | undefined;
  let drainTimer: ReturnType<typeof setTimeout> | undefined;

  const closeClient = (event?: Uint8Array) => {
    if (clientClosed || !client) return;
    clientClosed = true;
    try {
      if (event) client.enqueue(event);
      client.close();
    } catch {
      // The client went away meanwhile.
    }
  };

  const stop = (end: StreamEnd, message: string) => {
    if (stopped) return;
    stopped = { end, message };
    o.abortUpstream();
    meterReader.cancel().catch(() => {});
    // The client branch errors once the upstream is aborted and then gets the
    // error event; should it not settle promptly, finish it here.
    setTimeout(() => {
      if (clientClosed) return;
      closeClient(o.errorEvent(message));
      clientReader.cancel().catch(() => {});
    }, 1000);
  };

  const arm = () => {
    watchdog = o.deadlines.add(Math.min(lastChunk + o.idleMs, o.deadline), () => {
      const t = performance.now();
      if (t >= o.deadline) {
        stop("total_timeout", "the upstream stream ran past the gateway's time limit");
      } else if (t - lastChunk >= o.idleMs) {
        stop("idle_timeout", `the upstream stream was silent for ${Math.round(o.idleMs / 1000)} s`);
      } else arm();
    });
  };
  arm();

  (async () => {
    const sse = new SseReader((name, data) => o.meter.event(name, data));
    let end: StreamEnd = "eof";
    let detail: string | undefined;
    try {
      for (;;) {
        const { done, value } = await meterReader.read();
        if (done) break;
        lastChunk = performance.now();
        sse.push(value);
      }
    } catch (e) {
      end = "upstream_error";
      detail = (e as Error).message;
    }
    o.deadlines.cancel(watchdog);
    clearTimeout(drainTimer);
    if (stopped) [end, detail] = [stopped.end, stopped.message];
    else if (clientGone && end === "eof") end = "client_gone";
    sse.end();
    o.onEnd(o.meter.end(), end, detail);
  })();

  const dropper = o.dropper;
  const stream = new ReadableStream<Uint8Array>({
    start(c) {
      client = c;
    },
    async pull(c) {
      try {
        // With a dropper a read may yield nothing to send: read on until it does.
        for (;;) {
          const { done, value } = await clientReader.read();
          if (clientClosed) return;
          if (done) {
            dropper?.flush((b) => c.enqueue(b));
            return closeClient(stopped ? o.errorEvent(stopped.message) : undefined);
          }
          if (!dropper) return c.enqueue(value);
          let sent = false;
          dropper.push(value, (b) => {
            sent = true;
            c.enqueue(b);
          });
          if (sent) return;
        }
      } catch {
        if (clientGone) return;
        closeClient(
          o.errorEvent(
            // The error's own text may name the provider's host: it goes to onEnd, not here.
            stopped?.message ?? "the upstream connection failed mid-stream",
          ),
        );
      }
    },
    cancel() {
      clientGone = true;
      clientClosed = true;
      clientReader.cancel().catch(() => {});
      if (o.onDisconnect === "drain" && !stopped) {
        drainTimer = setTimeout(() => stop("client_gone", "client disconnected"), o.drainTimeoutMs);
        return;
      }
      if (!stopped) stopped = { end: "client_gone", message: "client disconnected" };
      o.abortUpstream();
      meterReader.cancel().catch(() => {});
    },
  });
  return { stream, abort: (reason) => stop("shutdown", reason) };
}
