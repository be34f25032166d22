/**
 * The stream relay without a server: a scripted upstream body goes in, the
 * client's stream and the meter's events come out. Bytes reach the client
 * unchanged and the meter sees every event; a silent upstream, one past its
 * deadline, a broken one and a shutdown each end the client's stream with
 * exactly one native error event; the end is reported once; a client that
 * leaves cancels the upstream, or with `drain` lets it be read to its end.
 *
 * No assertion is on time: deadlines are short so that the tests are quick,
 * and every wait is for a condition.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { anthropicSse } from "./support/replies.ts";
import { concatBytes } from "./support/streams.ts";
import { delay, waitFor } from "./support/wait.ts";
import { relay, type RelayOptions, type StreamEnd } from "../lib/pipeline/relay.ts";
import { Deadlines } from "../lib/upstream/deadlines.ts";
import type { Metered, StreamMeter } from "../lib/metering/tokens.ts";
import { zeroTokens } from "../lib/metering/tokens.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const START = anthropicSse.start({ input_tokens: 10, output_tokens: 1 });
const DELTA = anthropicSse.delta("héllo 👋");
const END = anthropicSse.end({ output_tokens: 20 });

/** The error event the relay is told to send (a stand-in for a format's native one). */
const errorEvent = (message: string) =>
  enc.encode(`event: error\ndata: ${JSON.stringify({ type: "error", message })}\n\n`);

/** An upstream body the test writes into; aborting it errors it, as fetch's abort does. */
function scriptedBody(kind: "bytes" | "default") {
  let ctrl!: ReadableStreamDefaultController<Uint8Array> | ReadableByteStreamController;
  let open = true;
  let cancelled = false;
  const source = {
    start(c: typeof ctrl) {
      ctrl = c;
    },
    cancel() {
      cancelled = true;
      open = false;
    },
  };
  const body = kind === "bytes"
    ? new ReadableStream({ ...source, type: "bytes" } as UnderlyingByteSource)
    : new ReadableStream<Uint8Array>(source as UnderlyingDefaultSource<Uint8Array>);
  return {
    body: body as ReadableStream<Uint8Array>,
    get cancelled() {
      return cancelled;
    },
    /** Sends bytes (a fresh copy: a byte stream takes the buffer over). */
    send(chunk: string | Uint8Array) {
      if (!open) return;
      ctrl.enqueue(typeof chunk === "string" ? enc.encode(chunk) : chunk.slice());
    },
    close() {
      if (open) ctrl.close();
      open = false;
    },
    fail(e: Error) {
      if (open) ctrl.error(e);
      open = false;
    },
  };
}

/** A meter that records the events it is given and how often it is ended. */
function recordingMeter() {
  const events: [string | undefined, string][] = [];
  let ends = 0;
  const meter: StreamMeter & { events: typeof events; ends: () => number } = {
    events,
    ends: () => ends,
    finished: false,
    event(name, data) {
      events.push([name, data]);
    },
    end(): Metered {
      ends++;
      return {
        status: "incomplete",
        tokens: zeroTokens(),
        usageSeen: events.length > 0,
        extra: [],
      };
    },
  };
  return meter;
}

/** A relay over a scripted body, with everything it reports recorded. */
function harness(
  o: Partial<Omit<RelayOptions, "body" | "meter" | "onEnd" | "abortUpstream">> & {
    kind?: "bytes" | "default";
  } = {},
) {
  const up = scriptedBody(o.kind ?? "default");
  const meter = recordingMeter();
  const deadlines = o.deadlines ?? new Deadlines(5);
  const ends: { metered: Metered; end: StreamEnd; detail?: string }[] = [];
  let aborts = 0;
  const r = relay({
    errorEvent,
    idleMs: 60_000,
    deadline: performance.now() + 600_000,
    onDisconnect: "cancel",
    drainTimeoutMs: 60_000,
    usageWaitMs: 0,
    ...o,
    deadlines,
    body: up.body,
    meter,
    abortUpstream: () => {
      aborts++;
      up.fail(new DOMException("The signal has been aborted", "AbortError"));
    },
    onEnd: (metered, end, detail) => ends.push({ metered, end, detail }),
  });
  const reader = r.stream.getReader();
  const received: Uint8Array[] = [];
  return {
    up,
    meter,
    relay: r,
    reader,
    ends,
    aborts: () => aborts,
    /** Everything the client got so far, as text. */
    text: () => dec.decode(concatBytes(received)),
    bytes: () => concatBytes(received),
    /** Reads one chunk into `received`; false at the end of the stream. */
    async readOne(): Promise<boolean> {
      const { done, value } = await reader.read();
      if (!done) received.push(value.slice());
      return !done;
    },
    /** Reads the client's stream to its end. */
    async readAll(): Promise<string> {
      while (await this.readOne());
      return this.text();
    },
    /** Waits for the end report, then checks that it came once, with one `meter.end()`. */
    async ended() {
      await waitFor("the relay reports the end", () => ends.length > 0);
      await delay(20); // room for a second, wrong report
      assertEquals(ends.length, 1, "onEnd is called once");
      assertEquals(meter.ends(), 1, "the meter is ended once");
      assert(
        ends[0].metered.usageSeen === meter.events.length > 0,
        "onEnd gets the meter's result",
      );
      return ends[0];
    },
    close() {
      deadlines.close();
    },
  };
}

/** How many SSE error events `text` holds. */
const errorEvents = (text: string) => text.split("event: error\n").length - 1;

/** The events `sse` holds, as the meter should receive them. */
function eventsOf(sse: string): [string | undefined, string][] {
  return sse.split("\n\n").filter(Boolean).map((block) => {
    const lines = block.split("\n");
    const name = lines.find((l) => l.startsWith("event: "))?.slice(7);
    const data = lines.filter((l) => l.startsWith("data: ")).map((l) => l.slice(6)).join("\n");
    return [name, data];
  });
}

for (const kind of ["default", "bytes"] as const) {
  Deno.test(`relay (${kind} body): bytes reach the client unchanged; the meter gets every event`, async () => {
    const h = harness({ kind });
    try {
      const big = anthropicSse.delta("x".repeat(200_000)); // larger than any read buffer
      const whole = enc.encode(START + DELTA + big + DELTA + END);
      const reading = h.readAll();
      // Cut everywhere awkward: inside "event:", before an event's blank line, inside the
      // two- and four-byte characters, then one byte at a time, then one huge chunk.
      const eAcute = whole.indexOf(0xc3), wave = whole.indexOf(0xf0);
      const cuts = [3, START.length - 1, eAcute + 1, wave + 2, wave + 3];
      let at = 0;
      for (const cut of cuts) {
        h.up.send(whole.subarray(at, cut));
        at = cut;
        await delay(0);
      }
      for (let i = 0; i < 5; i++) h.up.send(whole.subarray(at, ++at));
      h.up.send(whole.subarray(at));
      h.up.close();
      await reading;
      assertEquals(h.bytes(), whole, "the client gets exactly the upstream's bytes");
      const { end } = await h.ended();
      assertEquals(end, "eof");
      assertEquals(h.meter.events, eventsOf(START + DELTA + big + DELTA + END));
      assertEquals(h.aborts(), 0, "a finished stream is not aborted");
    } finally {
      h.close();
    }
  });
}

Deno.test({
  name: "relay: an upstream silent past idleMs ends the stream with one error event",
  async fn() {
    const h = harness({ idleMs: 100 });
    try {
      h.up.send(START);
      assert(await h.readOne());
      const text = await h.readAll();
      assert(text.startsWith(START), "what was sent before stays");
      assertEquals(errorEvents(text), 1);
      assertIncludes(text.slice(START.length), "silent for");
      assert(text.endsWith("\n\n"), "the error event is complete");
      const { end } = await h.ended();
      assertEquals(end, "idle_timeout");
      assertEquals(h.meter.events, eventsOf(START), "the meter got what was sent");
      assert(h.aborts() >= 1, "the upstream request is stopped");
    } finally {
      h.close();
    }
  },
});

Deno.test({
  name: "relay: a stream still flowing at its deadline ends with one error event",
  async fn() {
    const h = harness({ idleMs: 60_000, deadline: performance.now() + 150 });
    try {
      h.up.send(START);
      const reading = h.readAll();
      // Never silent: a delta every 10 ms until the relay gives up.
      for (const until = Date.now() + 10_000; h.ends.length === 0 && Date.now() < until;) {
        h.up.send(DELTA);
        await delay(10);
      }
      const text = await reading;
      assert(text.startsWith(START + DELTA));
      assertEquals(errorEvents(text), 1);
      assertIncludes(text, "time limit");
      const { end } = await h.ended();
      assertEquals(end, "total_timeout");
      assert(h.aborts() >= 1);
    } finally {
      h.close();
    }
  },
});

Deno.test({
  name: "relay: an upstream that breaks mid-stream gives one error event after the bytes sent",
  async fn() {
    const h = harness();
    try {
      h.up.send(START);
      h.up.send(DELTA);
      assert(await h.readOne());
      h.up.fail(new Error("connection reset by peer"));
      const text = await h.readAll();
      assert((START + DELTA).startsWith(text.slice(0, text.indexOf("event: error"))));
      assertEquals(errorEvents(text), 1);
      const { end, detail } = await h.ended();
      assertEquals(end, "upstream_error");
      assertIncludes(detail ?? "", "connection reset by peer");
    } finally {
      h.close();
    }
  },
});

Deno.test({
  name: "relay: shutdown ends a live stream with one error event naming the reason",
  async fn() {
    const h = harness();
    try {
      h.up.send(START);
      assert(await h.readOne());
      h.relay.abort("the gateway is shutting down");
      const text = await h.readAll();
      assert(text.startsWith(START));
      assertEquals(errorEvents(text), 1);
      assertIncludes(text, "the gateway is shutting down");
      const { end, detail } = await h.ended();
      assertEquals(end, "shutdown");
      assertEquals(detail, "the gateway is shutting down");
      assert(h.aborts() >= 1, "the upstream request is stopped");
    } finally {
      h.close();
    }
  },
});

Deno.test("relay: a client that leaves cancels the upstream; usage so far is reported", async () => {
  const h = harness({ onDisconnect: "cancel" });
  try {
    h.up.send(START);
    assert(await h.readOne());
    await h.reader.cancel();
    await waitFor("the upstream is stopped", () => h.aborts() > 0 || h.up.cancelled);
    const { end } = await h.ended();
    assertEquals(end, "client_gone");
    assertEquals(h.meter.events, eventsOf(START));
    h.up.send(DELTA); // too late: nobody reads any more
    await delay(20);
    assertEquals(h.meter.events, eventsOf(START));
  } finally {
    h.close();
  }
});

Deno.test("relay: with drain, a client that leaves lets the upstream be metered to its end", async () => {
  const h = harness({ onDisconnect: "drain", drainTimeoutMs: 60_000 });
  try {
    h.up.send(START);
    assert(await h.readOne());
    await h.reader.cancel();
    h.up.send(DELTA);
    await delay(10);
    h.up.send(END);
    h.up.close();
    const { end } = await h.ended();
    assertEquals(h.meter.events, eventsOf(START + DELTA + END), "every event, final usage too");
    assertEquals(h.aborts(), 0, "the upstream was not stopped");
    assert(!h.up.cancelled);
    assert(end === "eof" || end === "client_gone", `a drained stream is not an error: ${end}`);
  } finally {
    h.close();
  }
});

Deno.test({
  name: "relay: with drain, an upstream that outlasts drain_timeout_ms is stopped",
  async fn() {
    const h = harness({ onDisconnect: "drain", drainTimeoutMs: 50 });
    try {
      h.up.send(START);
      assert(await h.readOne());
      await h.reader.cancel();
      const { end } = await h.ended();
      assertEquals(end, "client_gone");
      assert(h.aborts() >= 1, "the upstream request is stopped");
      assertEquals(h.meter.events, eventsOf(START));
    } finally {
      h.close();
    }
  },
});
