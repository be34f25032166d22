/**
 * End-to-end: every gateway-made error in the native shape of the endpoint
 * called, and no secret in any response or log line.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { post, startStack, startTestGateway, TEST_ENV, testRegistry } from "./support/gateway.ts";
import { freePort } from "./support/upstream.ts";
import type { Config } from "../lib/config/env.ts";

function setup(config: Partial<Config> = {}) {
  return startStack(() => Response.json({ ok: true }), { config });
}

type Shape = "anthropic" | "openai";

async function expectError(
  res: Response,
  status: number,
  shape: Shape,
  type?: string,
  code?: string,
) {
  assertEquals(res.status, status);
  assertIncludes(res.headers.get("content-type") ?? "", "application/json");
  const j = await res.json();
  if (shape === "anthropic") {
    assertEquals(j.type, "error");
    assertEquals(typeof j.error.message, "string");
    if (type) assertEquals(j.error.type, type);
  } else {
    assertEquals(typeof j.error.message, "string");
    assertEquals(typeof j.error.type, "string");
    assert("code" in j.error);
    if (type) assertEquals(j.error.type, type);
    if (code) assertEquals(j.error.code, code);
  }
  return j;
}

Deno.test("auth errors: 401 missing/unknown key, 403 disabled key, in each endpoint's shape", async () => {
  const s = await setup();
  try {
    const m = `${s.t.url}/v1/messages`, c = `${s.t.url}/v1/chat/completions`;
    await expectError(
      await post(m, { model: "claude-test" }),
      401,
      "anthropic",
      "authentication_error",
    );
    await expectError(
      await post(m, { model: "claude-test" }, { "x-api-key": "sk-gw-unknown" }),
      401,
      "anthropic",
      "authentication_error",
    );
    await expectError(
      await post(c, { model: "gpt-test" }),
      401,
      "openai",
      undefined,
      "missing_api_key",
    );
    await expectError(
      await post(c, { model: "gpt-test" }, { authorization: "Bearer nope" }),
      401,
      "openai",
      undefined,
      "invalid_api_key",
    );
    await s.t.gw.ctx.keys.setEnabled(s.t.keyId, false);
    await expectError(
      await post(m, { model: "claude-test" }, { "x-api-key": s.t.secret }),
      403,
      "anthropic",
      "permission_error",
    );
    assertEquals(s.up.seen.length, 0, "nothing reached the upstream");
  } finally {
    await s.close();
  }
});

Deno.test("a client sending x-api-key and Bearer with different values is accepted when either is valid", async () => {
  const s = await setup();
  try {
    for (
      const headers of [
        { "x-api-key": s.t.secret, authorization: "Bearer sk-ant-oauth-something-else" },
        { "x-api-key": "placeholder", authorization: `Bearer ${s.t.secret}` },
      ]
    ) {
      const res = await post(`${s.t.url}/v1/messages`, { model: "claude-test" }, headers);
      assertEquals(res.status, 200);
      await res.body?.cancel();
    }
    for (const seen of s.up.seen) {
      assertEquals(seen.headers.get("x-api-key"), TEST_ENV.ANTHROPIC_TEST_KEY);
      assertEquals(seen.headers.get("authorization"), null, "client credentials are not forwarded");
    }
  } finally {
    await s.close();
  }
});

Deno.test("bad bodies: invalid JSON, no model, unknown model, wrong endpoint → 400", async () => {
  const s = await setup();
  try {
    const h = { "x-api-key": s.t.secret };
    const m = `${s.t.url}/v1/messages`, c = `${s.t.url}/v1/chat/completions`;
    await expectError(await post(m, "{not json", h), 400, "anthropic", "invalid_request_error");
    await expectError(await post(c, "", h), 400, "openai", "invalid_request_error", "invalid_json");
    await expectError(await post(c, "[1,2]", h), 400, "openai", undefined, "invalid_json");
    await expectError(
      await post(c, { messages: [] }, h),
      400,
      "openai",
      undefined,
      "missing_model",
    );
    const unknown = await expectError(
      await post(c, { model: "no-such-model" }, h),
      400,
      "openai",
      "invalid_request_error",
      "model_not_found",
    );
    assertIncludes(unknown.error.message, "no-such-model");
    const wrong = await expectError(await post(m, { model: "gpt-test" }, h), 400, "anthropic");
    assertIncludes(wrong.error.message, "/v1/chat/completions");
    const wrong2 = await expectError(await post(c, { model: "claude-test" }, h), 400, "openai");
    assertIncludes(wrong2.error.message, "/v1/messages");
    assertEquals(s.up.seen.length, 0);
  } finally {
    await s.close();
  }
});

Deno.test("unknown path 404, wrong method 405, HEAD /api/hello is a fast 404", async () => {
  const s = await setup();
  try {
    const res = await fetch(`${s.t.url}/v1/nothing`, { method: "POST" });
    await expectError(res, 404, "openai");
    await expectError(
      await fetch(`${s.t.url}/v1/messages/batches`),
      404,
      "anthropic",
      "not_found_error",
    );
    const get = await fetch(`${s.t.url}/v1/messages`);
    assertEquals(get.headers.get("allow"), "POST");
    await expectError(get, 405, "anthropic");
    const head = await fetch(`${s.t.url}/api/hello`, { method: "HEAD" });
    assertEquals(head.status, 404);
  } finally {
    await s.close();
  }
});

Deno.test("bodies over MAX_BODY_BYTES get 413, with or without content-length", async () => {
  const s = await setup({ maxBodyBytes: 2048 });
  try {
    const big = JSON.stringify({ model: "claude-test", pad: "x".repeat(4000) });
    await expectError(
      await post(`${s.t.url}/v1/messages`, big, { "x-api-key": s.t.secret }),
      413,
      "anthropic",
      "request_too_large",
    );
    const chunked = new ReadableStream({
      start(c) {
        c.enqueue(new TextEncoder().encode(big));
        c.close();
      },
    });
    const res = await fetch(`${s.t.url}/v1/chat/completions`, {
      method: "POST",
      headers: { "x-api-key": s.t.secret },
      body: chunked,
    });
    await expectError(res, 413, "openai", undefined, "request_too_large");
    assertEquals(s.up.seen.length, 0);
  } finally {
    await s.close();
  }
});

Deno.test("an unreachable upstream gives 502 in the native shape and counts a failed request", async () => {
  const t = await startTestGateway({
    registry: testRegistry(`http://127.0.0.1:${freePort()}`),
    config: { logLevel: "debug" },
  });
  try {
    const j = await expectError(
      await post(`${t.url}/v1/messages`, { model: "claude-test" }, { "x-api-key": t.secret }),
      502,
      "anthropic",
      "api_error",
    );
    assertIncludes(j.error.message, "anthropic");
    assert(!JSON.stringify(j).includes("at "), "no stack trace");
    const [row] = await t.gw.ctx.usageReader.byKey(t.keyId);
    assertEquals(row.counters.requests, 1);
    assertEquals(row.counters.failed, 1);
    for (const line of t.logs) {
      assert(!line.includes(t.secret), "client secret never logged");
      assert(!line.includes(TEST_ENV.ANTHROPIC_TEST_KEY), "upstream secret never logged");
    }
  } finally {
    await t.close();
  }
});

Deno.test("a provider whose key env is unset is never called; none configured → 503", async () => {
  const { up, t, close } = await startStack(() => Response.json({}), {
    env: { OPENAI_TEST_KEY: "" },
  });
  try {
    const j = await expectError(
      await post(`${t.url}/v1/chat/completions`, { model: "gpt-test" }, { "x-api-key": t.secret }),
      503,
      "openai",
      undefined,
      "provider_not_configured",
    );
    assertIncludes(j.error.message, "OPENAI_TEST_KEY");
    assertEquals(up.seen.length, 0);
  } finally {
    await close();
  }
});

Deno.test("/health answers without auth with Luna's fields and KV state", async () => {
  const s = await setup();
  try {
    const res = await fetch(`${s.t.url}/health`);
    assertEquals(res.status, 200);
    const j = await res.json();
    assertEquals(j.status, "ok");
    assertEquals(j.providers, ["anthropic", "openai", "deepseek"]);
    assertEquals(j.models, ["claude-test", "gpt-test", "deepseek-chat"]);
    assertEquals(j.total_providers, 3);
    assertEquals(j.total_models, 3);
    assertEquals(j.kv, "ok");
  } finally {
    await s.close();
  }
});
