/**
 * Hostile or sloppy input, end to end: request bodies a provider could read
 * differently from the gateway, oversized model ids, bytes JSON forbids,
 * clients that never finish their body, client address headers, provider
 * hosts in client errors, and the bounded route cache.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { rawServer } from "./support/faults.ts";
import {
  ADMIN_KEY,
  post,
  startTestGateway,
  type TestGateway,
  testRegistry,
} from "./support/gateway.ts";
import { rawRequest } from "./support/raw_http.ts";
import { waitFor } from "./support/wait.ts";
import { fakeUpstream, type Seen } from "./support/upstream.ts";
import { clip } from "../lib/http/client_text.ts";
import { parseRegistry } from "../lib/config/registry.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const OK_ANTHROPIC = { type: "message", usage: { input_tokens: 1, output_tokens: 1 } };
const OK_OPENAI = { choices: [], usage: { prompt_tokens: 1, completion_tokens: 1 } };

async function setup(
  over: { config?: Record<string, unknown>; extra?: Record<string, unknown> } = {},
) {
  const up = fakeUpstream((s) =>
    s.path.startsWith("/anthropic") ? Response.json(OK_ANTHROPIC) : Response.json(OK_OPENAI)
  );
  const t = await startTestGateway({
    registry: testRegistry(up.url, over.extra),
    config: over.config,
  });
  return {
    up,
    t,
    close: async () => {
      await t.close();
      await up.close();
    },
  };
}

/** Sends raw body text to both endpoints; returns [anthropic, openai] responses. */
async function both(t: TestGateway, anthropicBody: string, openaiBody = anthropicBody) {
  const a = await post(`${t.url}/v1/messages`, anthropicBody, { "x-api-key": t.secret });
  const o = await post(`${t.url}/v1/chat/completions`, openaiBody, { "x-api-key": t.secret });
  return [a, o] as const;
}

/** Asserts a 400 in each endpoint's native shape; returns the two messages. */
async function expect400(
  t: TestGateway,
  anthropicBody: string,
  openaiBody = anthropicBody,
  code?: string,
): Promise<string[]> {
  const [a, o] = await both(t, anthropicBody, openaiBody);
  const ja = await a.json(), jo = await o.json();
  assertEquals(a.status, 400, `anthropic: ${anthropicBody.slice(0, 80)} -> ${JSON.stringify(ja)}`);
  assertEquals(o.status, 400, `openai: ${openaiBody.slice(0, 80)} -> ${JSON.stringify(jo)}`);
  assertEquals(ja.type, "error");
  assertEquals(ja.error.type, "invalid_request_error");
  assertEquals(jo.error.type, "invalid_request_error");
  if (code) assertEquals(jo.error.code, code);
  return [ja.error.message, jo.error.message];
}

// ---------------------------------------------------------------------------
// Model ids (issue 9, items 1a and 2).

Deno.test("a model id over 256 UTF-8 bytes is refused with 400 before routing; 256 bytes pass", async () => {
  const s = await setup();
  try {
    // "é" is 2 bytes: "claude-" (7) + 124 × 2 + "x" = 256 bytes, 132 characters.
    const at = "claude-" + "é".repeat(124) + "x";
    assertEquals(enc.encode(at).length, 256);
    const [a, o] = await both(
      s.t,
      JSON.stringify({ model: at }),
      JSON.stringify({ model: "gpt-" + "é".repeat(126) }),
    );
    assertEquals(a.status, 200, await a.text());
    assertEquals(o.status, 200, await o.text());
    const seen = s.up.seen.length;
    for (const model of [at + "y", "claude-" + "x".repeat(250), "gpt-\\u00e9" + "é".repeat(130)]) {
      const body = model.includes("\\") ? `{"model":"${model}"}` : JSON.stringify({ model });
      const [ma] = await expect400(s.t, body, body, "invalid_model");
      assertIncludes(ma, "256 bytes");
    }
    assertEquals(s.up.seen.length, seen, "no refused request reached a provider");
  } finally {
    await s.close();
  }
});

Deno.test("a model id with an unpaired surrogate escape is refused; escaped pairs pass", async () => {
  const s = await setup();
  try {
    for (const id of ["claude-\\ud800", "claude-x\\udfff", "claude-\\ud83d"]) {
      const [a, o] = await expect400(s.t, `{"model":"${id}"}`, `{"model":"gpt-${id.slice(7)}"}`);
      assertIncludes(a, "unpaired surrogate");
      assertIncludes(o, "unpaired surrogate");
    }
    assertEquals(s.up.seen.length, 0);
    const [a, o] = await both(
      s.t,
      '{"model":"claude-\\ud83d\\ude42"}',
      '{"model":"gpt-\\ud83d\\ude42"}',
    );
    assertEquals([a.status, o.status], [200, 200]);
    await a.body?.cancel();
    await o.body?.cancel();
    const rows = await s.t.gw.ctx.usageReader.byKey(s.t.keyId);
    assertEquals(rows.map((r) => r.model).sort(), ["claude-🙂", "gpt-🙂"]);
  } finally {
    await s.close();
  }
});

Deno.test("a 30 MiB model id: small 400, nothing cached, no log line quotes it", async () => {
  const s = await setup({ config: { maxBodyBytes: 40 * 1024 * 1024 } });
  try {
    const model = "nomatch-" + "m".repeat(30 * 1024 * 1024);
    for (const path of ["/v1/messages", "/v1/chat/completions"]) {
      const res = await post(`${s.t.url}${path}`, JSON.stringify({ model }), {
        "x-api-key": s.t.secret,
      });
      assertEquals(res.status, 400);
      const text = await res.text();
      assert(text.length < 1000, `error body is ${text.length} bytes`);
    }
    assertEquals(s.t.gw.ctx.registry.cachedRoutes, 0);
    for (const line of s.t.logs) assert(line.length < 2000, `log line of ${line.length} chars`);
  } finally {
    await s.close();
  }
});

Deno.test("unroutable model ids are never cached; routable ones stay within 10,000 entries", () => {
  const reg = testRegistry("http://127.0.0.1:9");
  for (let i = 0; i < 2000; i++) assertEquals(reg.resolve(`nomatch-${i}-${"x".repeat(200)}`), null);
  assertEquals(reg.cachedRoutes, 0, "misses are not kept");
  for (let i = 0; i < 25_000; i++) assert(reg.resolve(`claude-${i}`));
  assert(reg.cachedRoutes <= 10_000, `${reg.cachedRoutes} cached routes`);
  assert(reg.resolve("claude-" + "x".repeat(5000)));
  assert(reg.cachedRoutes <= 10_000);
});

Deno.test("client text in error messages is cut to 200 characters (never half a surrogate pair)", async () => {
  assertEquals(clip("short"), "short");
  const long = "m".repeat(1000);
  const c = clip(long);
  assert(c.startsWith("m".repeat(200)) && !c.startsWith("m".repeat(201)));
  assertIncludes(c, "1000 characters");
  const emoji = "a".repeat(199) + "👋" + "b".repeat(10);
  assert(!clip(emoji).includes("\ud83d"), "no lone high surrogate");

  const s = await setup();
  try {
    // 250 bytes: accepted as a model id, unknown to the registry, quoted clipped.
    const model = "unknown-" + "u".repeat(242);
    const [a, o] = await both(s.t, JSON.stringify({ model }));
    for (const res of [a, o]) {
      assertEquals(res.status, 400);
      const j = await res.json();
      assertIncludes(j.error.message, "u".repeat(150));
      assert(!j.error.message.includes("u".repeat(201)), j.error.message);
    }
    const id = "x".repeat(5000);
    const res = await fetch(`${s.t.url}/v1/models/${id}`, {
      headers: { authorization: `Bearer ${s.t.secret}` },
    });
    assertEquals(res.status, 404);
    assert((await res.text()).length < 1000, "the 404 does not echo a 5000-character id");
    const nf = await fetch(`${s.t.url}/v1/${"p".repeat(5000)}`);
    assertEquals(nf.status, 404);
    assert((await nf.text()).length < 1000, "the 404 does not echo a 5000-character path");
  } finally {
    await s.close();
  }
});

// ---------------------------------------------------------------------------
// Bytes JSON forbids (item 4).

Deno.test("bad escapes and raw control characters in strings: 400 invalid_json, not 500", async () => {
  const s = await setup();
  try {
    const bad = [
      '{"model":"claude\\x"}',
      '{"model":"claude\\u00"}',
      '{"model":"claude\\u12G4"}',
      '{"model":"claude\\',
      '{"model":"clau\u0000de"}',
      '{"model":"claude\u0001"}',
      '{"model":"claude\nx"}',
      '{"model":"claude-test","messages":[{"role":"user","content":"a\tb"}]}',
      '{"model":"claude-test","messages":[{"role":"user","content":"bad \\q escape"}]}',
      '{"mod\\el":"claude-test"}',
      '{"model":"claude-test","x\u001f":1}',
    ];
    for (const body of bad) {
      let threw = false;
      try {
        JSON.parse(body);
      } catch {
        threw = true;
      }
      assert(threw, `JSON.parse accepts ${JSON.stringify(body)}: the case is wrong`);
      const [m] = await expect400(s.t, body, body.replace("claude", "gpt"), "invalid_json");
      assertIncludes(m, "not valid JSON");
    }
    assertEquals(s.up.seen.length, 0);
    // What JSON allows still passes: every escape, and raw whitespace between tokens.
    const good = [
      '{"model":"claude-test","s":"\\" \\\\ \\/ \\b \\f \\n \\r \\t \\u00e9 \\uD83D\\uDC4B"}',
      '{\n\t"model" : "claude-test",\r\n  "messages": [ {"content": "x"} ]\n}\n',
      '{"model":"claude-test","k\\u0041":"\\\\"}',
    ];
    for (const body of good) {
      JSON.parse(body);
      const [a, o] = await both(s.t, body, body.replace("claude-test", "gpt-test"));
      assertEquals(a.status, 200, `${JSON.stringify(body)}: ${await a.text()}`);
      assertEquals(o.status, 200, `${JSON.stringify(body)}: ${await o.text()}`);
    }
  } finally {
    await s.close();
  }
});

// ---------------------------------------------------------------------------
// Fields a provider could read differently (item 9).

Deno.test("stream must be a boolean or null and stream_options an object or null", async () => {
  const s = await setup();
  try {
    for (const stream of ['"true"', "1", "0", '"false"', "[]", "{}"]) {
      const m = await expect400(
        s.t,
        `{"model":"claude-test","stream":${stream}}`,
        `{"model":"gpt-test","stream":${stream}}`,
        "invalid_stream",
      );
      assertIncludes(m[1], '"stream"');
    }
    for (const so of ["[]", '"include_usage"', "1", "true"]) {
      await expect400(
        s.t,
        `{"model":"claude-test","stream":true,"stream_options":${so}}`,
        `{"model":"gpt-test","stream":true,"stream_options":${so}}`,
        "invalid_stream_options",
      );
    }
    assertEquals(s.up.seen.length, 0, "none reached a provider, which might stream unmetered");
    for (
      const body of [
        '{"model":"gpt-test","stream":null}',
        '{"model":"gpt-test","stream":false,"stream_options":null}',
        '{"model":"gpt-test","stream":false,"stream_options":{}}',
      ]
    ) {
      const res = await post(`${s.t.url}/v1/chat/completions`, body, { "x-api-key": s.t.secret });
      assertEquals(res.status, 200, body);
      await res.body?.cancel();
    }
  } finally {
    await s.close();
  }
});

Deno.test("model, stream and stream_options: twice, or in another letter case, is refused", async () => {
  const s = await setup();
  try {
    const cases: [string, string][] = [
      ['{"model":"claude-test","model":"claude-test"}', "duplicate_field"],
      ['{"model":"claude-test","stream":false,"stream":true}', "duplicate_field"],
      ['{"model":"claude-test","stream_options":{},"stream_options":null}', "duplicate_field"],
      ['{"model":"claude-test","mod\\u0065l":"claude-other"}', "duplicate_field"],
      ['{"model":"claude-test","Model":"claude-other"}', "invalid_field"],
      ['{"MODEL":"claude-test"}', "invalid_field"],
      ['{"model":"claude-test","STREAM":true}', "invalid_field"],
      ['{"model":"claude-test","Stream":true}', "invalid_field"],
      ['{"model":"claude-test","stream_Options":{}}', "invalid_field"],
      // Go's encoding/json matches "ſtream" (long s) to `stream`.
      ['{"model":"claude-test","\u017ftream":true}', "invalid_field"],
    ];
    for (const [body, code] of cases) {
      const [m] = await expect400(s.t, body, body.replaceAll("claude", "gpt"), code);
      assert(/"(model|stream|stream_options)"/.test(m), m);
    }
    // The output cap is read too (for limit reservations): it must not be ambiguous either.
    const [capMessage] = await expect400(
      s.t,
      '{"model":"claude-test","max_tokens":1,"max_tokens":2}',
      '{"model":"gpt-test","max_tokens":1,"max_tokens":2}',
      "duplicate_field",
    );
    assert(capMessage.includes('"max_tokens"'), capMessage);
    assertEquals(s.up.seen.length, 0);
    // Other fields may repeat or use any case: the gateway does not read them.
    const ok = await post(
      `${s.t.url}/v1/messages`,
      '{"model":"claude-test","temperature":1,"temperature":2,"Temperature":1}',
      { "x-api-key": s.t.secret },
    );
    assertEquals(ok.status, 200);
    await ok.body?.cancel();
  } finally {
    await s.close();
  }
});

// ---------------------------------------------------------------------------
// Slow clients (item 15).

/** True once `text` holds a whole HTTP response with a content-length body. */
function complete(text: string): boolean {
  const head = text.indexOf("\r\n\r\n");
  if (head === -1) return false;
  const len = /content-length:\s*(\d+)/i.exec(text.slice(0, head))?.[1];
  return len !== undefined && enc.encode(text.slice(head + 4)).length >= Number(len);
}

/** Opens a raw connection, writes `head`, and reads a whole response (or gives up after `waitMs`). */
async function rawExchange(url: string, head: string, waitMs: number): Promise<string> {
  const { hostname, port } = new URL(url);
  const conn = await Deno.connect({ hostname, port: Number(port) });
  await conn.write(enc.encode(head));
  let text = "";
  const buf = new Uint8Array(16 * 1024);
  const until = Date.now() + waitMs;
  try {
    while (!complete(text)) {
      const left = until - Date.now();
      if (left <= 0) break;
      let timer: ReturnType<typeof setTimeout> | undefined;
      const n = await Promise.race([
        conn.read(buf).catch(() => null),
        new Promise<"wait">((r) => timer = setTimeout(() => r("wait"), left)),
      ]);
      clearTimeout(timer);
      if (n === "wait" || n === null) break;
      text += dec.decode(buf.subarray(0, n));
    }
  } finally {
    conn.close();
  }
  return text;
}

Deno.test("a body that never fully arrives: 408 in the native shape after BODY_TIMEOUT_MS", async () => {
  const s = await setup({ config: { bodyTimeoutMs: 300 } });
  try {
    const declared = await rawExchange(
      s.t.url,
      `POST /v1/messages HTTP/1.1\r\nhost: x\r\nx-api-key: ${s.t.secret}\r\n` +
        `content-type: application/json\r\ncontent-length: 1000\r\n\r\n{"model":"c`,
      20_000,
    );
    assert(declared.startsWith("HTTP/1.1 408"), declared);
    assertIncludes(declared, '"type":"error"');
    assertIncludes(declared, "did not arrive within 0.3 s");
    assertIncludes(declared.toLowerCase(), "connection: close");

    const chunked = await rawExchange(
      s.t.url,
      `POST /v1/chat/completions HTTP/1.1\r\nhost: x\r\nauthorization: Bearer ${s.t.secret}\r\n` +
        `content-type: application/json\r\ntransfer-encoding: chunked\r\n\r\n5\r\n{"mod\r\n`,
      20_000,
    );
    assert(chunked.startsWith("HTTP/1.1 408"), chunked);
    assertIncludes(chunked, '"code":"request_timeout"');
    assertEquals(s.up.seen.length, 0);

    // A body that arrives in time, even in pieces, is served as usual.
    const body = enc.encode(JSON.stringify({ model: "claude-test", max_tokens: 1 }));
    const res = await fetch(`${s.t.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": s.t.secret, "content-type": "application/json" },
      body: new ReadableStream({
        async start(c) {
          c.enqueue(body.subarray(0, 10));
          await new Promise((r) => setTimeout(r, 50));
          c.enqueue(body.subarray(10));
          c.close();
        },
      }),
    });
    assertEquals(res.status, 200);
    await res.body?.cancel();
    assert(!s.t.logs.some((l) => l.includes('"level":"error"')), "nothing logged as an error");
  } finally {
    await s.close();
  }
});

Deno.test("a client that hangs up mid-body is logged as 499, not as an internal error", async () => {
  const s = await setup();
  try {
    const cases: [string, [string, string]][] = [
      ["/v1/messages", ["x-api-key", s.t.secret]],
      ["/v1/chat/completions", ["authorization", `Bearer ${s.t.secret}`]],
      ["/admin/keys", ["x-api-key", ADMIN_KEY]],
    ];
    for (const [path, auth] of cases) {
      await rawRequest(s.t.url, {
        method: "POST",
        path,
        headers: [auth, ["content-type", "application/json"]],
        body: enc.encode('{"model":"claude-test","messages":['),
        declared: 5000,
        hangUp: "now",
        lingerMs: 50,
      });
    }
    const lines = () => s.t.logs.map((l) => JSON.parse(l)).filter((j) => j.msg === "request");
    await waitFor("a log line per request", () => lines().length === cases.length);
    for (const j of lines()) {
      assertEquals([j.status, j.reason], [499, "client_closed_request"], JSON.stringify(j));
    }
    assert(!s.t.logs.some((l) => l.includes('"level":"error"')), s.t.logs.join("\n"));
    assertEquals(s.up.seen.length, 0);
  } finally {
    await s.close();
  }
});

// ---------------------------------------------------------------------------
// Forwarding hygiene (item 14).

const ADDRESS_HEADERS: Record<string, string> = {
  "x-forwarded-for": "203.0.113.7",
  "forwarded": "for=203.0.113.7;proto=https",
  "x-real-ip": "203.0.113.7",
  "x-forwarded-host": "gateway.internal.example",
  "x-forwarded-proto": "https",
  "x-forwarded-port": "443",
  "via": "1.1 edge-proxy",
  "true-client-ip": "203.0.113.7",
};

Deno.test("client address headers reach a provider only when it sets forward_client_ip", async () => {
  const seen: Seen[] = [];
  const up = fakeUpstream((s) => {
    seen.push(s);
    return Response.json(OK_ANTHROPIC);
  });
  const registry = parseRegistry({
    providers: {
      plain: { format: "anthropic", base_url: `${up.url}/plain` },
      trusting: { format: "anthropic", base_url: `${up.url}/trusting`, forward_client_ip: true },
    },
    routing: { plain: ["plain"], trusting: ["trusting"] },
  });
  assertEquals(registry.warnings, []);
  const t = await startTestGateway({ registry });
  try {
    for (const model of ["plain-1", "trusting-1"]) {
      const res = await post(`${t.url}/v1/messages`, { model }, {
        "x-api-key": t.secret,
        "x-custom": "kept",
        ...ADDRESS_HEADERS,
      });
      assertEquals(res.status, 200);
      await res.body?.cancel();
    }
    const [plain, trusting] = seen;
    assertEquals(plain.path, "/plain/messages");
    for (const h of Object.keys(ADDRESS_HEADERS)) {
      assertEquals(plain.headers.get(h), null, `${h} reached a provider that did not opt in`);
      assertEquals(trusting.headers.get(h), ADDRESS_HEADERS[h], `${h} forwarded on opt-in`);
    }
    assertEquals(plain.headers.get("x-custom"), "kept", "other client headers still go");
  } finally {
    await t.close();
    await up.close();
  }
});

/** A registry whose one provider is at `url`, with the connect probe on or off. */
function soloRegistry(url: string, connectMs: number) {
  return parseRegistry({
    providers: { solo: { format: "anthropic", base_url: url, api_key_env: "SOLO_KEY" } },
    routing: { claude: ["solo"] },
    defaults: {
      timeouts: { connect_ms: connectMs, ttfb_ms: 2000, idle_ms: 2000 },
      retries: { max: 0 },
    },
  });
}

Deno.test("errors shown to clients never carry a provider's host or port; logs keep them", async () => {
  const dead = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const deadPort = (dead.addr as Deno.NetAddr).port;
  dead.close();
  // Headers, then a body cut short: reading the response fails.
  const cut = rawServer(async (conn) => {
    await conn.write(
      enc.encode(
        "HTTP/1.1 200 OK\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{",
      ),
    );
  });
  const cutPort = new URL(cut.url).port;
  // [case, provider URL, connect_ms, what the log line keeps]
  const cases: [string, string, number, string][] = [
    ["connect probe", `http://127.0.0.1:${deadPort}/v1`, 1000, `127.0.0.1:${deadPort}`],
    ["fetch error", `http://127.0.0.1:${deadPort}/v1`, 0, `127.0.0.1:${deadPort}/v1/messages`],
    ["broken body", `${cut.url}/v1`, 0, "error reading a body"],
  ];
  try {
    for (const [what, url, connectMs, logged] of cases) {
      const t = await startTestGateway({
        registry: soloRegistry(url, connectMs),
        env: { SOLO_KEY: "k" },
      });
      try {
        const res = await post(`${t.url}/v1/messages`, { model: "claude-x" }, {
          "x-api-key": t.secret,
        });
        const text = await res.text();
        assertEquals(res.status, 502, `${what}: ${text}`);
        const j = JSON.parse(text);
        assertEquals(j.type, "error");
        assertIncludes(j.error.message, 'provider "solo"', what);
        for (const leak of ["127.0.0.1", String(deadPort), cutPort, "http://", "url ("]) {
          assert(!text.includes(leak), `${what}: the client sees "${leak}": ${text}`);
        }
        assert(
          t.logs.some((l) => l.includes("upstream attempt failed") && l.includes(logged)),
          `${what}: the log keeps the detail:\n${t.logs.join("\n")}`,
        );
      } finally {
        await t.close();
      }
    }
  } finally {
    cut.close();
  }
});
