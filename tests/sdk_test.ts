/**
 * Real clients: the official OpenAI and Anthropic SDKs (npm, pinned here and
 * locked in tests/deno.lock only, so `deno task start` never downloads them)
 * pointed at the gateway, in front of a fake upstream. Streams,
 * JSON, model lists and errors must work unchanged, and usage must be
 * metered.
 */
import Anthropic from "npm:@anthropic-ai/sdk@0.65.0";
import OpenAI from "npm:openai@5.23.2";
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { startStack } from "./support/gateway.ts";
import { bodyJson, type Seen } from "./support/upstream.ts";

function upstream(s: Seen): Response {
  const b = bodyJson(s);
  if (s.path.endsWith("/messages")) {
    if (!b.stream) {
      return Response.json({
        id: "msg_1",
        type: "message",
        role: "assistant",
        model: b.model,
        content: [{ type: "text", text: "hello" }],
        stop_reason: "end_turn",
        stop_sequence: null,
        usage: { input_tokens: 7, output_tokens: 2 },
      });
    }
    const events: [string, unknown][] = [
      ["message_start", {
        type: "message_start",
        message: {
          id: "msg_2",
          type: "message",
          role: "assistant",
          model: b.model,
          content: [],
          stop_reason: null,
          stop_sequence: null,
          usage: { input_tokens: 7, cache_read_input_tokens: 3, output_tokens: 1 },
        },
      }],
      ["content_block_start", {
        type: "content_block_start",
        index: 0,
        content_block: { type: "text", text: "" },
      }],
      ["ping", { type: "ping" }],
      ["content_block_delta", {
        type: "content_block_delta",
        index: 0,
        delta: { type: "text_delta", text: "Hi there" },
      }],
      ["content_block_stop", { type: "content_block_stop", index: 0 }],
      ["message_delta", {
        type: "message_delta",
        delta: { stop_reason: "end_turn", stop_sequence: null },
        usage: { output_tokens: 5 },
      }],
      ["message_stop", { type: "message_stop" }],
    ];
    return new Response(
      events.map(([e, d]) => `event: ${e}\ndata: ${JSON.stringify(d)}\n\n`).join(""),
      {
        headers: { "content-type": "text/event-stream" },
      },
    );
  }
  const chunk = (choices: unknown[], usage: unknown = null) =>
    `data: ${
      JSON.stringify({
        id: "c",
        object: "chat.completion.chunk",
        created: 1,
        model: b.model,
        choices,
        usage,
      })
    }\n\n`;
  let body =
    chunk([{ index: 0, delta: { role: "assistant", content: "Hel" }, finish_reason: null }]) +
    chunk([{ index: 0, delta: { content: "lo" }, finish_reason: "stop" }]);
  if (b.stream_options?.include_usage) {
    body += chunk([], { prompt_tokens: 9, completion_tokens: 2, total_tokens: 11 });
  }
  return new Response(body + "data: [DONE]\n\n", {
    headers: { "content-type": "text/event-stream" },
  });
}

Deno.test("official SDKs work unchanged through the gateway, and their usage is metered", async () => {
  const { t, close } = await startStack(upstream);
  try {
    const openai = new OpenAI({ baseURL: `${t.url}/v1`, apiKey: t.secret, maxRetries: 0 });
    const stream = await openai.chat.completions.create({
      model: "gpt-test",
      stream: true,
      messages: [{ role: "user", content: "hi" }],
    });
    let text = "";
    // Naive `choices[0]` code must not meet the usage event it did not ask for.
    for await (const c of stream) text += c.choices[0].delta.content ?? "";
    assertEquals(text, "Hello");

    const anthropic = new Anthropic({ baseURL: t.url, apiKey: t.secret, maxRetries: 0 });
    const final = await anthropic.messages.stream({
      model: "claude-test",
      max_tokens: 10,
      messages: [{ role: "user", content: "hi" }],
    }).finalMessage();
    assertEquals(final.content.map((c) => (c.type === "text" ? c.text : c.type)), ["Hi there"]);
    assertEquals(final.usage.output_tokens, 5);
    const json = await anthropic.messages.create({
      model: "claude-test",
      max_tokens: 10,
      messages: [{ role: "user", content: "hi" }],
    });
    assertEquals(json.usage.input_tokens, 7);

    const models = await anthropic.models.list({ limit: 1000 });
    assertEquals(models.data.map((m) => m.id), ["claude-test"]);
    const oModels = await openai.models.list();
    assert(oModels.data.some((m) => m.id === "gpt-test"));

    let oErr: unknown;
    try {
      await openai.chat.completions.create({ model: "no-such-model", messages: [] });
    } catch (e) {
      oErr = e;
    }
    assert(oErr instanceof OpenAI.APIError);
    assertEquals(oErr.status, 400);
    assertEquals(oErr.code, "model_not_found");
    let aErr: unknown;
    try {
      await anthropic.messages.create({ model: "gpt-test", max_tokens: 1, messages: [] });
    } catch (e) {
      aErr = e;
    }
    assert(aErr instanceof Anthropic.BadRequestError);
    assertIncludes(String(aErr.message), "/v1/chat/completions");

    await t.gw.ctx.inflight.idle(2000);
    const rows = await t.gw.ctx.usageReader.byKey(t.keyId);
    const by = Object.fromEntries(rows.map((r) => [r.model, r.counters]));
    assertEquals(by["gpt-test"].input_uncached, 9);
    assertEquals(by["gpt-test"].output, 2);
    assertEquals(by["claude-test"].requests, 2);
    assertEquals(by["claude-test"].input_uncached, 14);
    assertEquals(by["claude-test"].cache_read, 3);
    assertEquals(by["claude-test"].output, 7);
  } finally {
    await close();
  }
});
