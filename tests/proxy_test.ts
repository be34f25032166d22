/**
 * End-to-end: the real gateway on port 0 in front of an in-process fake
 * upstream. Passthrough fidelity, header handling, metering and usage.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { post, startStack, TEST_ENV } from "./support/gateway.ts";
import { bodyJson, type Seen } from "./support/upstream.ts";
import { chunkedResponse, sseResponse } from "./support/streams.ts";

const dec = new TextDecoder();

const ANTHROPIC_STREAM = [
  'event: message_start\ndata: {"type":"message_start","message":{"id":"msg_1","type":"message","role":"assistant","model":"claude-test","content":[],"stop_reason":null,"usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":200,"output_tokens":1}}   }',
  'event: content_block_start\ndata: {"type":"content_block_start","index":0,"content_block":{"type":"text","text":""}}',
  'event: ping\ndata: {"type": "ping"}',
  'event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"Héllo 👋"}}',
  'event: content_block_stop\ndata: {"type":"content_block_stop","index":0}',
  'event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn"},"usage":{"input_tokens":12,"cache_creation_input_tokens":100,"cache_read_input_tokens":200,"output_tokens":42}}',
  'event: message_stop\ndata: {"type":"message_stop"}',
];

const anthropicJson = {
  id: "msg_2",
  type: "message",
  role: "assistant",
  model: "claude-test",
  content: [{ type: "text", text: "hi" }],
  stop_reason: "end_turn",
  usage: {
    input_tokens: 5,
    cache_creation_input_tokens: 0,
    cache_read_input_tokens: 7,
    output_tokens: 9,
  },
};

function openaiChunk(choices: unknown[], usage: unknown = null) {
  return `data: ${
    JSON.stringify({ id: "c1", object: "chat.completion.chunk", model: "gpt-test", choices, usage })
  }`;
}

const OPENAI_STREAM = [
  openaiChunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]),
  openaiChunk([{ index: 0, delta: { content: "Hi" }, finish_reason: null }]),
  openaiChunk([{ index: 0, delta: {}, finish_reason: "stop" }]),
  openaiChunk([], {
    prompt_tokens: 30,
    completion_tokens: 7,
    total_tokens: 37,
    prompt_tokens_details: { cached_tokens: 10 },
  }),
  "data: [DONE]",
];

function upstreamHandler(s: Seen): Response {
  const body = bodyJson(s);
  if (s.path.endsWith("/messages/count_tokens")) return Response.json({ input_tokens: 321 });
  if (s.path.endsWith("/messages")) {
    if (body.model === "claude-error") {
      return Response.json(
        { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
        { status: 529, headers: { "request-id": "req_err" } },
      );
    }
    return body.stream
      ? sseResponse(ANTHROPIC_STREAM, { "request-id": "req_stream" })
      : Response.json(anthropicJson, { headers: { "request-id": "req_json" } });
  }
  if (body.model.startsWith("deepseek")) {
    return sseResponse([
      openaiChunk([{ index: 0, delta: { content: "x" }, finish_reason: null }]),
      openaiChunk([{ index: 0, delta: { content: "" }, finish_reason: "stop" }], {
        prompt_tokens: 20,
        completion_tokens: 4,
        total_tokens: 24,
        prompt_cache_hit_tokens: 16,
        prompt_cache_miss_tokens: 4,
      }),
      "data: [DONE]",
    ]);
  }
  return body.stream ? sseResponse(OPENAI_STREAM, { "x-request-id": "oai_req" }) : Response.json({
    id: "c2",
    object: "chat.completion",
    choices: [{ index: 0, message: { role: "assistant", content: "ok" }, finish_reason: "stop" }],
    usage: { prompt_tokens: 11, completion_tokens: 3, total_tokens: 14 },
  });
}

async function setup() {
  const stack = await startStack(upstreamHandler);
  const { t } = stack;
  return { ...stack, usage: async () => (await t.gw.ctx.usageReader.byKey(t.keyId)) };
}

Deno.test("count_tokens is free even when its last answer is a retried error carrying usage", async () => {
  // A 429 (retried, then passed on) whose body has a usage object, as a proxy may send.
  const { t, close } = await startStack(() =>
    Response.json({
      type: "error",
      error: { type: "rate_limit_error", message: "slow down" },
      usage: { input_tokens: 500, output_tokens: 70 },
    }, { status: 429, headers: { "retry-after-ms": "1" } })
  );
  try {
    const res = await post(`${t.url}/v1/messages/count_tokens`, { model: "claude-test" }, {
      "x-api-key": t.secret,
    });
    assertEquals(res.status, 429);
    await res.body?.cancel();
    const [row] = await t.gw.ctx.usageReader.byKey(t.keyId);
    assertEquals(row.counters.requests, 1);
    assertEquals(row.counters.failed, 1);
    assertEquals(
      [row.counters.input_uncached, row.counters.output],
      [0, 0],
      "count_tokens records no tokens",
    );
  } finally {
    await close();
  }
});

Deno.test("anthropic stream: bytes pass through unchanged and usage overwrites, never adds", async () => {
  const s = await setup();
  try {
    const reqBody =
      `{"model":"claude-test",  "stream":true,"max_tokens":10,"messages":[{"role":"user","content":"é"}]}`;
    const res = await post(`${s.t.url}/v1/messages?beta=true`, reqBody, {
      "x-api-key": s.t.secret,
      "anthropic-version": "2023-06-01",
      "anthropic-beta": "a-2025,b-2026",
      "accept-encoding": "gzip, br",
    });
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("content-type"), "text/event-stream");
    assertEquals(res.headers.get("request-id"), "req_stream");
    assert(res.headers.get("x-request-id"), "gateway request id is returned");
    assertEquals(await res.text(), ANTHROPIC_STREAM.map((e) => e + "\n\n").join(""));

    const seen = s.up.seen[0];
    assertEquals(seen.path, "/anthropic/v1/messages");
    assertEquals(seen.search, "?beta=true");
    assertEquals(dec.decode(seen.body), reqBody, "request body forwarded byte-for-byte");
    assertEquals(seen.headers.get("x-api-key"), TEST_ENV.ANTHROPIC_TEST_KEY);
    assertEquals(seen.headers.get("anthropic-version"), "2023-06-01");
    assertEquals(seen.headers.get("anthropic-beta"), "a-2025,b-2026");
    assertEquals(seen.headers.get("authorization"), null);
    assert(!seen.headers.get("accept-encoding")?.includes(s.t.secret));

    const rows = await s.usage();
    assertEquals(rows.length, 1);
    assertEquals(rows[0].model, "claude-test");
    assertEquals(rows[0].provider, "anthropic");
    assertEquals(rows[0].counters.requests, 1);
    assertEquals(rows[0].counters.input_uncached, 12);
    assertEquals(rows[0].counters.cache_write, 100);
    assertEquals(rows[0].counters.cache_read, 200);
    assertEquals(rows[0].counters.output, 42);
    assertEquals(rows[0].counters.incomplete, 0);
  } finally {
    await s.close();
  }
});

Deno.test("anthropic JSON, count_tokens and an upstream error pass through and are metered", async () => {
  const s = await setup();
  try {
    const h = { "x-api-key": s.t.secret, "anthropic-version": "2023-06-01" };
    const ok = await post(`${s.t.url}/v1/messages`, { model: "claude-test", messages: [] }, h);
    assertEquals(await ok.json(), anthropicJson);
    assertEquals(ok.headers.get("request-id"), "req_json");

    const ct = await post(
      `${s.t.url}/v1/messages/count_tokens?beta=true`,
      { model: "claude-test" },
      h,
    );
    assertEquals(await ct.json(), { input_tokens: 321 });
    assertEquals(s.up.seen[1].path, "/anthropic/v1/messages/count_tokens");

    const err = await post(`${s.t.url}/v1/messages`, { model: "claude-error" }, h);
    assertEquals(err.status, 529);
    assertEquals(await err.json(), {
      type: "error",
      error: { type: "overloaded_error", message: "Overloaded" },
    });

    const rows = await s.usage();
    const by = Object.fromEntries(rows.map((r) => [r.model, r.counters]));
    assertEquals(by["claude-test"].requests, 2, "message + count_tokens");
    assertEquals(by["claude-test"].input_uncached, 5, "count_tokens adds no tokens");
    assertEquals(by["claude-test"].cache_read, 7);
    assertEquals(by["claude-test"].output, 9);
    assertEquals(by["claude-error"].requests, 1);
    assertEquals(by["claude-error"].failed, 1);
    assertEquals(by["claude-error"].output, 0);
  } finally {
    await s.close();
  }
});

Deno.test("openai stream: include_usage injected upstream, usage-only event stripped for the client", async () => {
  const s = await setup();
  try {
    const reqBody = `{ "model" : "gpt-test", "stream": true, "messages": [] }`;
    const res = await post(`${s.t.url}/v1/chat/completions`, reqBody, {
      authorization: `Bearer ${s.t.secret}`,
    });
    assertEquals(res.status, 200);
    assertEquals(res.headers.get("x-request-id"), "oai_req");
    assert(res.headers.get("x-gateway-request-id"));
    const text = await res.text();
    const expected = OPENAI_STREAM.filter((_, i) => i !== 3).map((e) => e + "\n\n").join("");
    assertEquals(text, expected);
    assertEquals(
      dec.decode(s.up.seen[0].body),
      `{"stream_options":{"include_usage":true}, "model" : "gpt-test", "stream": true, "messages": [] }`,
    );
    assertEquals(s.up.seen[0].headers.get("authorization"), `Bearer ${TEST_ENV.OPENAI_TEST_KEY}`);
    const [row] = await s.usage();
    assertEquals(row.counters.input_uncached, 20);
    assertEquals(row.counters.cache_read, 10);
    assertEquals(row.counters.output, 7);
  } finally {
    await s.close();
  }
});

Deno.test("openai stream: a client that asked for usage gets the usage event", async () => {
  const s = await setup();
  try {
    const reqBody = `{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true}}`;
    const res = await post(`${s.t.url}/v1/chat/completions`, reqBody, { "x-api-key": s.t.secret });
    assertEquals(await res.text(), OPENAI_STREAM.map((e) => e + "\n\n").join(""));
    assertEquals(dec.decode(s.up.seen[0].body), reqBody, "nothing to inject");
  } finally {
    await s.close();
  }
});

Deno.test("openai stream: existing stream_options are merged in place", async () => {
  const s = await setup();
  try {
    for (
      const [sent, forwarded] of [
        [
          `{"model":"gpt-test","stream":true,"stream_options":{"include_obfuscation":false}}`,
          `{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}`,
        ],
        [
          `{"model":"gpt-test","stream":true,"stream_options":{"include_usage": false}}`,
          `{"model":"gpt-test","stream":true,"stream_options":{"include_usage": true}}`,
        ],
        [
          `{"model":"gpt-test","stream_options":null,"stream":true}`,
          `{"model":"gpt-test","stream_options":{"include_usage":true},"stream":true}`,
        ],
        [
          `{"model":"gpt-test","stream":true,"stream_options":{ }}`,
          `{"model":"gpt-test","stream":true,"stream_options":{"include_usage":true }}`,
        ],
      ]
    ) {
      const res = await post(`${s.t.url}/v1/chat/completions`, sent, { "x-api-key": s.t.secret });
      const text = await res.text();
      assert(
        !text.includes('"choices":[],'),
        "usage event stripped: the client did not ask for it",
      );
      assertEquals(dec.decode(s.up.seen[s.up.seen.length - 1].body), forwarded);
    }
  } finally {
    await s.close();
  }
});

Deno.test("deepseek stream: usage on the finish chunk is metered and never stripped", async () => {
  const s = await setup();
  try {
    const res = await post(
      `${s.t.url}/v1/chat/completions`,
      { model: "deepseek-chat", stream: true },
      { "x-api-key": s.t.secret },
    );
    const text = await res.text();
    assert(text.includes('"finish_reason":"stop"'), "finish chunk reaches the client");
    assert(text.includes("prompt_cache_hit_tokens"), "with its usage");
    const [row] = await s.usage();
    assertEquals(row.provider, "deepseek");
    assertEquals(row.counters.input_uncached, 4);
    assertEquals(row.counters.cache_read, 16);
    assertEquals(row.counters.output, 4);
  } finally {
    await s.close();
  }
});

Deno.test("openai JSON: usage recorded, body unchanged", async () => {
  const s = await setup();
  try {
    const res = await post(`${s.t.url}/v1/chat/completions`, { model: "gpt-test" }, {
      "x-api-key": s.t.secret,
    });
    const j = await res.json();
    assertEquals(j.usage.total_tokens, 14);
    const [row] = await s.usage();
    assertEquals(row.counters.input_uncached, 11);
    assertEquals(row.counters.output, 3);
  } finally {
    await s.close();
  }
});

Deno.test("compressed upstream bodies reach the client decoded and are metered", async () => {
  const body = new TextEncoder().encode(ANTHROPIC_STREAM.map((e) => e + "\n\n").join(""));
  const gz = new Uint8Array(
    await new Response(new Blob([body]).stream().pipeThrough(new CompressionStream("gzip")))
      .arrayBuffer(),
  );
  const { t, close } = await startStack((s) => {
    const accepts = s.headers.get("accept-encoding") ?? "";
    return accepts.includes("gzip")
      ? chunkedResponse([gz.subarray(0, 50), gz.subarray(50)], {
        headers: { "content-type": "text/event-stream", "content-encoding": "gzip" },
      })
      : chunkedResponse([body]);
  });
  try {
    const res = await post(`${t.url}/v1/messages`, { model: "claude-test", stream: true }, {
      "x-api-key": t.secret,
      "accept-encoding": "br",
    });
    assertEquals(res.headers.get("content-encoding"), null);
    assertEquals(await res.text(), dec.decode(body));
    const [row] = await t.gw.ctx.usageReader.byKey(t.keyId);
    assertEquals(row.counters.output, 42);
  } finally {
    await close();
  }
});
