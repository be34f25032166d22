/**
 * `GET /v1/models` and `GET /v1/models/{id}`: the models the calling key can
 * reach, in OpenAI's list shape, or in Anthropic's (Anthropic-format models
 * only, paged) when the request carries `anthropic-version`.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { ADMIN_KEY, startTestGateway, type TestGateway, testRegistry } from "./support/gateway.ts";
import { UNUSED_URL } from "./support/upstream.ts";

// deno-lint-ignore no-explicit-any
type Any = any;

const CLAUDES = ["claude-opus-4-6", "claude-sonnet-4-5", "claude-haiku-4-5"];

function registry() {
  // Nothing is proxied here; the providers' base URL is never called.
  return testRegistry(UNUSED_URL, {
    known_models: [
      ...CLAUDES.map((id) => ({
        id,
        provider: "anthropic",
        owned_by: "anthropic",
        ...(id === "claude-sonnet-4-5" ? { display_name: "Claude Sonnet 4.5" } : {}),
      })),
      { id: "gpt-test", provider: "openai", owned_by: "openai" },
      { id: "deepseek-chat", provider: "deepseek", owned_by: "deepseek" },
    ],
  });
}

async function get(
  t: TestGateway,
  path: string,
  headers: Record<string, string>,
): Promise<{ status: number; json: Any }> {
  const res = await fetch(t.url + path, { headers });
  return { status: res.status, json: await res.json() };
}

const A = (secret: string) => ({ "x-api-key": secret, "anthropic-version": "2023-06-01" });

Deno.test("OpenAI list: every reachable model as {id, object, created, owned_by}", async () => {
  const t = await startTestGateway({ registry: registry() });
  try {
    const { status, json } = await get(t, "/v1/models", { authorization: `Bearer ${t.secret}` });
    assertEquals(status, 200);
    assertEquals(json.object, "list");
    assertEquals(json.data.map((m: Any) => m.id), [...CLAUDES, "gpt-test", "deepseek-chat"]);
    for (const m of json.data) {
      assertEquals(Object.keys(m).sort(), ["created", "id", "object", "owned_by"]);
      assertEquals(m.object, "model");
      assertEquals(typeof m.created, "number");
    }
    assertEquals(json.data.find((m: Any) => m.id === "deepseek-chat").owned_by, "deepseek");
    const limited = await get(t, "/v1/models?limit=2", { "x-api-key": t.secret });
    assertEquals(limited.json.data.length, 2);
  } finally {
    await t.close();
  }
});

Deno.test("only models whose provider is configured and allowed for the key are listed", async () => {
  const t = await startTestGateway({ registry: registry(), env: { DEEPSEEK_TEST_KEY: "" } });
  try {
    const all = await get(t, "/v1/models", { "x-api-key": t.secret });
    assertEquals(all.json.data.map((m: Any) => m.id), [...CLAUDES, "gpt-test"], "no deepseek key");

    const res = await fetch(`${t.url}/admin/keys`, {
      method: "POST",
      headers: { "x-api-key": ADMIN_KEY, "content-type": "application/json" },
      body: JSON.stringify({ name: "openai+deepseek", allowed_providers: ["openai", "deepseek"] }),
    });
    const { api_key } = await res.json();
    const mine = await get(t, "/v1/models", { "x-api-key": api_key });
    assertEquals(mine.json.data.map((m: Any) => m.id), ["gpt-test"]);
    const anth = await get(t, "/v1/models", A(api_key));
    assertEquals(anth.json, { data: [], has_more: false, first_id: null, last_id: null });
    assertEquals(
      (await get(t, "/v1/models/claude-opus-4-6", { "x-api-key": api_key })).status,
      404,
    );
    assertEquals((await get(t, "/v1/models/deepseek-chat", { "x-api-key": api_key })).status, 404);
    assertEquals((await get(t, "/v1/models/gpt-test", { "x-api-key": api_key })).status, 200);
  } finally {
    await t.close();
  }
});

Deno.test("Anthropic list: with anthropic-version, Anthropic-format models in Anthropic's shape", async () => {
  const t = await startTestGateway({ registry: registry() });
  try {
    const { status, json } = await get(t, "/v1/models?limit=1000", {
      ...A(t.secret),
      authorization: "Bearer something-else", // Claude Code may send both
    });
    assertEquals(status, 200);
    assertEquals(Object.keys(json).sort(), ["data", "first_id", "has_more", "last_id"]);
    assertEquals(json.data.map((m: Any) => m.id), CLAUDES);
    assertEquals(json.has_more, false);
    assertEquals(json.first_id, CLAUDES[0]);
    assertEquals(json.last_id, CLAUDES[2]);
    for (const m of json.data) {
      assertEquals(Object.keys(m).sort(), ["created_at", "display_name", "id", "type"]);
      assertEquals(m.type, "model");
      assert(!Number.isNaN(Date.parse(m.created_at)), "RFC 3339 created_at");
    }
    assertEquals(json.data[1].display_name, "Claude Sonnet 4.5");
    assertEquals(json.data[0].display_name, "claude-opus-4-6");
  } finally {
    await t.close();
  }
});

Deno.test("Anthropic list: limit, after_id and before_id page through the models", async () => {
  const t = await startTestGateway({ registry: registry() });
  try {
    const seen: string[] = [];
    let after: string | null = null;
    for (let page = 0; page < 5; page++) {
      const q: string = after ? `?limit=1&after_id=${after}` : "?limit=1";
      const { status, json } = await get(t, `/v1/models${q}`, A(t.secret));
      assertEquals(status, 200);
      assertEquals(json.data.length, 1);
      assertEquals(json.first_id, json.data[0].id);
      assertEquals(json.last_id, json.data[0].id);
      seen.push(json.data[0].id);
      if (!json.has_more) break;
      after = json.last_id;
    }
    assertEquals(seen, CLAUDES);

    const two = await get(t, "/v1/models?limit=2", A(t.secret));
    assertEquals([two.json.data.length, two.json.has_more, two.json.last_id], [
      2,
      true,
      CLAUDES[1],
    ]);
    const rest = await get(t, `/v1/models?limit=2&after_id=${two.json.last_id}`, A(t.secret));
    assertEquals([rest.json.data.map((m: Any) => m.id), rest.json.has_more], [[CLAUDES[2]], false]);
    const before = await get(t, `/v1/models?limit=1&before_id=${CLAUDES[2]}`, A(t.secret));
    assertEquals(before.json.data.map((m: Any) => m.id), [CLAUDES[1]]);
    assertEquals(before.json.has_more, true);
    const end = await get(t, `/v1/models?after_id=${CLAUDES[2]}`, A(t.secret));
    assertEquals(end.json, { data: [], has_more: false, first_id: null, last_id: null });
  } finally {
    await t.close();
  }
});

Deno.test("invalid limit answers 400 in the caller's shape", async () => {
  const t = await startTestGateway({ registry: registry() });
  try {
    for (const limit of ["0", "1001", "abc", "1.5", "-3"]) {
      const a = await get(t, `/v1/models?limit=${limit}`, A(t.secret));
      assertEquals(a.status, 400, limit);
      assertEquals([a.json.type, a.json.error.type], ["error", "invalid_request_error"]);
      assertIncludes(a.json.error.message, "limit");
      const o = await get(t, `/v1/models?limit=${limit}`, { "x-api-key": t.secret });
      assertEquals(o.status, 400, limit);
      assertEquals(o.json.error.type, "invalid_request_error");
      assertEquals(o.json.error.code, "invalid_limit");
    }
  } finally {
    await t.close();
  }
});

Deno.test("no key, a wrong key or a disabled key: 401/403 in the caller's shape", async () => {
  const t = await startTestGateway({ registry: registry() });
  try {
    const anthropic = { "anthropic-version": "2023-06-01" };
    for (const path of ["/v1/models", "/v1/models/claude-opus-4-6"]) {
      const a = await get(t, path, anthropic);
      assertEquals(a.status, 401);
      assertEquals(a.json.type, "error");
      assertEquals(a.json.error.type, "authentication_error");
      const o = await get(t, path, {});
      assertEquals(o.status, 401);
      assertEquals(o.json.error.type, "authentication_error");
      assertEquals(o.json.error.code, "missing_api_key");
      const wrong = await get(t, path, { "x-api-key": "sk-gw-wrong" });
      assertEquals([wrong.status, wrong.json.error.code], [401, "invalid_api_key"]);
    }
    await t.gw.ctx.keys.setEnabled(t.keyId, false);
    const off = await get(t, "/v1/models", A(t.secret));
    assertEquals([off.status, off.json.error.type], [403, "permission_error"]);
  } finally {
    await t.close();
  }
});

Deno.test("GET /v1/models/{id}: one model in either shape; 404 for unknown or other-format ids", async () => {
  const t = await startTestGateway({ registry: registry() });
  try {
    const o = await get(t, "/v1/models/gpt-test", { "x-api-key": t.secret });
    assertEquals(o.status, 200);
    assertEquals(o.json, {
      id: "gpt-test",
      object: "model",
      created: o.json.created,
      owned_by: "openai",
    });
    const c = await get(t, "/v1/models/claude-sonnet-4-5", { "x-api-key": t.secret });
    assertEquals([c.status, c.json.object, c.json.owned_by], [200, "model", "anthropic"]);
    const a = await get(t, "/v1/models/claude-sonnet-4-5", A(t.secret));
    assertEquals(a.status, 200);
    assertEquals(a.json.type, "model");
    assertEquals(a.json.id, "claude-sonnet-4-5");
    assertEquals(a.json.display_name, "Claude Sonnet 4.5");
    assert(typeof a.json.created_at === "string");

    const missing = await get(t, "/v1/models/llama-3", { "x-api-key": t.secret });
    assertEquals(missing.status, 404);
    assertEquals(missing.json.error.code, "model_not_found");
    const missingA = await get(t, "/v1/models/llama-3", A(t.secret));
    assertEquals([missingA.status, missingA.json.type, missingA.json.error.type], [
      404,
      "error",
      "not_found_error",
    ]);
    const otherFormat = await get(t, "/v1/models/gpt-test", A(t.secret));
    assertEquals(otherFormat.status, 404, "Anthropic clients see Anthropic-format models only");
  } finally {
    await t.close();
  }
});
