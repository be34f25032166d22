/**
 * The stream relay end to end, for what a client's behaviour costs: a client
 * that stops reading holds the upstream back instead of filling the
 * gateway's memory; a client that leaves right after the content still gets
 * its exact usage recorded; and non-streamed bodies are capped, decoded size
 * included.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { post, startTestGateway, type TestGateway, testRegistry } from "./support/gateway.ts";
import { fakeUpstream } from "./support/upstream.ts";
import { parseRegistry } from "../lib/config/registry.ts";
import type { UsageRow } from "../lib/store/usage/reader.ts";

const enc = new TextEncoder();
const MiB = 1024 * 1024;

const START =
  'event: message_start\ndata: {"type":"message_start","message":{"id":"m1","usage":{"input_tokens":10,"output_tokens":1}}}\n\n';
const DELTA_END =
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"output_tokens":20}}\n\n';
const STOP = 'event: message_stop\ndata: {"type":"message_stop"}\n\n';

/** One provider per format on `url`, with the given policy defaults. */
function registry(url: string, policy: Record<string, unknown> = {}) {
  return parseRegistry({
    providers: {
      a: { format: "anthropic", base_url: `${url}/a`, api_key_env: "KEY" },
      o: { format: "openai", base_url: `${url}/o`, api_key_env: "KEY" },
    },
    routing: { claude: ["a"], gpt: ["o"] },
    defaults: { timeouts: { idle_ms: 5000 }, ...policy },
  });
}

async function settled(t: TestGateway): Promise<UsageRow[]> {
  await t.gw.ctx.inflight.idle(10_000);
  return await t.gw.ctx.usageReader.byKey(t.keyId);
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Waits up to `ms` for `cond`. */
async function until(cond: () => boolean, ms = 5000): Promise<boolean> {
  for (const end = performance.now() + ms; !cond() && performance.now() < end;) await sleep(10);
  return cond();
}

/** A stream of `chunks` produced on demand, with a count of bytes the gateway pulled. */
function countedStream(chunks: () => Uint8Array | undefined, onCancel?: () => void) {
  const counter = { pulled: 0 };
  const body = new ReadableStream<Uint8Array>({
    pull(c) {
      const b = chunks();
      if (!b) return c.close();
      counter.pulled += b.length;
      c.enqueue(b);
    },
    cancel: onCancel,
  }, { highWaterMark: 0 });
  return { body, counter };
}

Deno.test("a client that reads nothing holds the upstream back: the gateway does not buffer the stream", async () => {
  const total = 256 * MiB;
  const text = "x".repeat(64 * 1024 - 200);
  const delta = enc.encode(
    `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"${text}"}}\n\n`,
  );
  let sent = 0, cancelled = false;
  const { body, counter } = countedStream(() => {
    if (sent >= total) return undefined;
    const b = sent === 0 ? enc.encode(START) : delta;
    sent += b.length;
    return b;
  }, () => cancelled = true);
  const up = fakeUpstream(() =>
    new Response(body, { headers: { "content-type": "text/event-stream" } })
  );
  const t = await startTestGateway({ registry: registry(up.url), env: { KEY: "k" } });
  const conn = await Deno.connect({ hostname: "127.0.0.1", port: Number(new URL(t.url).port) });
  try {
    // A raw connection that sends its request and then never reads: only the kernel buffers.
    const req = JSON.stringify({ model: "claude-x", stream: true, max_tokens: 5 });
    await conn.write(enc.encode(
      `POST /v1/messages HTTP/1.1\r\nhost: gw\r\nx-api-key: ${t.secret}\r\n` +
        `content-type: application/json\r\ncontent-length: ${req.length}\r\n\r\n${req}`,
    ));
    // Wait until the upstream is no longer being read (or clearly is being read to its end).
    let last = -1;
    for (let i = 0; i < 100 && counter.pulled !== last && counter.pulled < total; i++) {
      last = counter.pulled;
      await sleep(300);
    }
    // Kernel socket buffers hold some MiB (17 measured here); the old tee read all 256.
    assert(
      counter.pulled <= 64 * MiB,
      `the gateway pulled ${
        Math.round(counter.pulled / MiB)
      } MiB of a stream its client never read`,
    );
    assert(!cancelled, "the stream stays open while its client is connected");
  } finally {
    conn.close();
  }
  try {
    const [row] = await settled(t);
    assertEquals(row.counters.requests, 1);
    assertEquals(
      row.counters.incomplete,
      1,
      "a client that left mid-stream: usage is a lower bound",
    );
    assertEquals(row.counters.input_uncached, 10);
    assert(await until(() => cancelled), "the upstream was cancelled once the client left");
  } finally {
    await t.close();
    await up.close();
  }
});

Deno.test("a client that pauses longer than idle_ms is not mistaken for a silent upstream", async () => {
  const events = [
    START,
    ...Array(20).fill(
      'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"hi"}}\n\n',
    ),
    DELTA_END,
    STOP,
  ];
  const whole = events.join("");
  let i = 0;
  const { body } = countedStream(() => i < events.length ? enc.encode(events[i++]) : undefined);
  const up = fakeUpstream(() =>
    new Response(body, { headers: { "content-type": "text/event-stream" } })
  );
  const t = await startTestGateway({
    registry: registry(up.url, { timeouts: { idle_ms: 200 } }),
    env: { KEY: "k" },
  });
  try {
    const res = await post(`${t.url}/v1/messages`, { model: "claude-x", stream: true }, {
      "x-api-key": t.secret,
    });
    const reader = res.body!.getReader();
    let got = new TextDecoder().decode((await reader.read()).value);
    await sleep(700);
    for (;;) {
      const r = await reader.read();
      if (r.done) break;
      got += new TextDecoder().decode(r.value);
    }
    assertEquals(got, whole);
    const [row] = await settled(t);
    assertEquals([row.counters.incomplete, row.counters.failed, row.counters.output], [0, 0, 20]);
  } finally {
    await t.close();
    await up.close();
  }
});

/** Reads `res` until `seen` is in the text, then leaves. */
async function leaveAfter(res: Response, seen: string): Promise<string> {
  const reader = res.body!.getReader();
  const dec = new TextDecoder();
  let text = "";
  while (!text.includes(seen)) {
    const r = await reader.read();
    if (r.done) throw new Error(`the stream ended before ${seen}`);
    text += dec.decode(r.value, { stream: true });
  }
  await reader.cancel();
  return text;
}

const oaChunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const base = { id: "c1", object: "chat.completion.chunk", created: 1, model: "gpt-4o" };
const CONTENT = oaChunk({ ...base, choices: [{ index: 0, delta: { content: "hi" } }] });
const FINISH = oaChunk({
  ...base,
  choices: [{ index: 0, delta: {}, finish_reason: "stop" }],
});
const USAGE = oaChunk({
  ...base,
  choices: [],
  usage: { prompt_tokens: 31, completion_tokens: 7, total_tokens: 38 },
});

/** An SSE body: `head` at once, then `tail` after `delayMs` (or never, when undefined). */
function lateTail(head: string, tail: string | undefined, delayMs: number, onCancel?: () => void) {
  let step = 0;
  return new Response(
    new ReadableStream<Uint8Array>({
      async pull(c) {
        if (step++ === 0) return c.enqueue(enc.encode(head));
        await sleep(delayMs);
        if (tail === undefined) return await new Promise(() => {}); // never
        c.enqueue(enc.encode(tail));
        c.close();
      },
      cancel: onCancel,
    }),
    { headers: { "content-type": "text/event-stream" } },
  );
}

Deno.test("OpenAI: a client that leaves after finish_reason still gets its usage recorded exactly", async () => {
  const up = fakeUpstream(() => lateTail(CONTENT + FINISH, USAGE + "data: [DONE]\n\n", 300));
  const t = await startTestGateway({ registry: testRegistry(up.url) });
  try {
    // No stream_options: the gateway injects include_usage and hides the usage chunk.
    const res = await post(`${t.url}/v1/chat/completions`, { model: "gpt-test", stream: true }, {
      authorization: `Bearer ${t.secret}`,
    });
    assertIncludes(await leaveAfter(res, '"finish_reason":"stop"'), "hi");
    const [row] = await settled(t);
    assertEquals(row.counters.incomplete, 0, "the usage after the finish chunk was read");
    assertEquals(row.counters.failed, 0);
    assertEquals(row.counters.input_uncached, 31);
    assertEquals(row.counters.output, 7);
  } finally {
    await t.close();
    await up.close();
  }
});

Deno.test("Anthropic: a client that leaves after the stop reason gets a complete record", async () => {
  const up = fakeUpstream(() => lateTail(START + DELTA_END, STOP, 300));
  const t = await startTestGateway({ registry: registry(up.url), env: { KEY: "k" } });
  try {
    const res = await post(`${t.url}/v1/messages`, { model: "claude-x", stream: true }, {
      "x-api-key": t.secret,
    });
    await leaveAfter(res, "end_turn");
    const [row] = await settled(t);
    assertEquals(row.counters.incomplete, 0, "message_stop was read after the client left");
    assertEquals([row.counters.input_uncached, row.counters.output], [10, 20]);
  } finally {
    await t.close();
    await up.close();
  }
});

Deno.test("reading on for usage after the client left is bounded by usage_wait_ms", async () => {
  let cancelledAt = 0;
  const up = fakeUpstream(() =>
    lateTail(CONTENT + FINISH, undefined, 0, () => cancelledAt = performance.now())
  );
  const t = await startTestGateway({
    registry: registry(up.url, { usage_wait_ms: 300 }),
    env: { KEY: "k" },
  });
  try {
    const res = await post(`${t.url}/v1/chat/completions`, { model: "gpt-x", stream: true }, {
      authorization: `Bearer ${t.secret}`,
    });
    await leaveAfter(res, '"finish_reason":"stop"');
    const left = performance.now();
    const [row] = await settled(t);
    assert(await until(() => cancelledAt > 0), "the upstream was cancelled");
    const waited = cancelledAt - left;
    assert(waited >= 250, `cancelled ${Math.round(waited)} ms after the client left`);
    assertEquals(row.counters.incomplete, 1, "no usage came: recorded as incomplete");
  } finally {
    await t.close();
    await up.close();
  }
});

Deno.test("non-streamed bodies over MAX_RESPONSE_BYTES get 502 in the native shape", async () => {
  const big = { type: "message", content: [{ type: "text", text: "x".repeat(2 * MiB) }] };
  const up = fakeUpstream(() => Response.json(big));
  const t = await startTestGateway({
    registry: registry(up.url, { retries: { max: 2, base_delay_ms: 1 } }),
    env: { KEY: "k" },
    config: { maxResponseBytes: MiB },
  });
  try {
    const res = await post(`${t.url}/v1/messages`, { model: "claude-x" }, {
      "x-api-key": t.secret,
    });
    assertEquals(res.status, 502);
    const body = await res.json();
    assertEquals(body.type, "error");
    assertIncludes(body.error.message, "1 MiB limit, MAX_RESPONSE_BYTES");
    assertEquals(up.seen.length, 1, "an answer too big is final: not retried");
    const o = await post(`${t.url}/v1/chat/completions`, { model: "gpt-x" }, {
      authorization: `Bearer ${t.secret}`,
    });
    assertEquals(o.status, 502);
    assertIncludes((await o.json()).error.message, "MAX_RESPONSE_BYTES");
  } finally {
    await t.close();
    await up.close();
  }
});

Deno.test("a gzip bomb from the upstream is stopped at MAX_RESPONSE_BYTES, counted decoded", async () => {
  // 256 MiB of zeros inflate from about 256 KiB of gzip (produced on demand, never held whole).
  let made = 0;
  const zeros = new Uint8Array(MiB);
  const gz = new ReadableStream<BufferSource>({
    pull(c) {
      if (made >= 256) return c.close();
      made++;
      c.enqueue(zeros);
    },
  }).pipeThrough(new CompressionStream("gzip"));
  const up = fakeUpstream(() =>
    new Response(gz, {
      headers: { "content-type": "application/json", "content-encoding": "gzip" },
    })
  );
  const t = await startTestGateway({
    registry: registry(up.url, { retries: { max: 0 } }),
    env: { KEY: "k" },
    config: { maxResponseBytes: 4 * MiB },
  });
  try {
    const res = await post(`${t.url}/v1/messages`, { model: "claude-x" }, {
      "x-api-key": t.secret,
    });
    assertEquals(res.status, 502);
    assertIncludes((await res.json()).error.message, "4 MiB limit, MAX_RESPONSE_BYTES");
  } finally {
    await t.close();
    await up.close();
  }
});
