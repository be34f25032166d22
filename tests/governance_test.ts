/**
 * Per-key governance end to end: allowlists, rate limits, concurrency,
 * quotas and budgets at their edges, in each endpoint's native shape, with
 * the gateway's own rate-limit headers; reservations settled on every path;
 * count_tokens bursts; expiry; rotation with grace; editing; the
 * self-service endpoint; two gateways on one KV file enforcing one limit.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import {
  admin,
  fakeClock,
  post,
  type Stack,
  startStack,
  startTestGateway,
  testRegistry,
} from "./support/gateway.ts";
import { anthropicMessage, anthropicSse, openaiCompletion } from "./support/replies.ts";
import { bodyJson, fakeUpstream, type Seen, untilAborted } from "./support/upstream.ts";
import { waitFor } from "./support/wait.ts";
import { MAIN } from "./support/process.ts";

/** A registry with a priced Claude model, an unpriced GPT model and fast timeouts. */
function registry(url: string) {
  return testRegistry(url, {
    known_models: [
      {
        id: "claude-test",
        provider: "anthropic",
        pricing: { input: 3, output: 15 },
      },
      { id: "gpt-test", provider: "openai" },
    ],
    defaults: { retries: { max: 0 }, timeouts: { idle_ms: 300 } },
  });
}

/** Answers with fixed usage: 10 in, 5 out (Anthropic); count_tokens; OpenAI 7/3. */
function reply(s: Seen): Response | Promise<Response> {
  if (s.path.endsWith("/count_tokens")) return Response.json({ input_tokens: 42 });
  const b = bodyJson(s);
  if (b.model === "claude-fail") {
    return Response.json({ type: "error", error: { type: "api_error", message: "x" } }, {
      status: 500,
    });
  }
  if (s.path.includes("/openai/")) {
    return Response.json(openaiCompletion({ prompt_tokens: 7, completion_tokens: 3 }));
  }
  return Response.json(anthropicMessage({ input_tokens: 10, output_tokens: 5 }), {
    headers: { "anthropic-ratelimit-requests-remaining": "999" },
  });
}

async function stack(o: { clock?: ReturnType<typeof fakeClock> } = {}): Promise<Stack> {
  return await startStack(reply, { registry, clock: o.clock });
}

/** Creates a key through the admin API; returns its id and secret. */
async function keyWith(s: Stack, fields: Record<string, unknown>) {
  const r = await admin(s.t.url, "POST", "/admin/keys", { name: "limited", ...fields });
  assertEquals(r.status, 200, JSON.stringify(r.json));
  return { id: r.json.id as string, secret: r.json.api_key as string };
}

const claude = (s: Stack, secret: string, body: Record<string, unknown> = {}) =>
  post(`${s.t.url}/v1/messages`, { model: "claude-test", max_tokens: 100, ...body }, {
    "x-api-key": secret,
    "anthropic-version": "2023-06-01",
  });
const gpt = (s: Stack, secret: string) =>
  post(`${s.t.url}/v1/chat/completions`, { model: "gpt-test", max_tokens: 100 }, {
    authorization: `Bearer ${secret}`,
  });

Deno.test("allowed_models: other models are refused with 403 naming them, and not listed", async () => {
  const s = await stack();
  try {
    const k = await keyWith(s, { allowed_models: ["claude-*"] });
    const ok = await claude(s, k.secret);
    assertEquals(ok.status, 200);
    await ok.body?.cancel();
    const no = await gpt(s, k.secret);
    assertEquals(no.status, 403);
    const j = await no.json();
    assertEquals([j.error.type, j.error.code], ["permission_error", "model_not_allowed"]);
    assertIncludes(j.error.message, '"gpt-test"');
    const models = await (await fetch(`${s.t.url}/v1/models`, {
      headers: { authorization: `Bearer ${k.secret}` },
    })).json();
    assertEquals(models.data.map((m: { id: string }) => m.id), ["claude-test"]);
  } finally {
    await s.close();
  }
});

Deno.test("rpm: the request that fits passes, the next is a native 429 with retry hints", async () => {
  const s = await stack({ clock: fakeClock("2026-11-30T10:00:10Z") });
  try {
    const k = await keyWith(s, { rpm: 3 });
    for (const remaining of ["2", "1", "0"]) {
      const r = await claude(s, k.secret);
      assertEquals(r.status, 200);
      assertEquals(r.headers.get("x-gateway-ratelimit-limit-requests"), "3");
      assertEquals(r.headers.get("x-gateway-ratelimit-remaining-requests"), remaining);
      assertEquals(r.headers.get("x-gateway-ratelimit-reset"), "50");
      // The provider's own rate-limit headers pass untouched, under their own names.
      assertEquals(r.headers.get("anthropic-ratelimit-requests-remaining"), "999");
      await r.body?.cancel();
    }
    const a = await claude(s, k.secret);
    assertEquals(a.status, 429);
    assertEquals(a.headers.get("retry-after"), "50");
    assertEquals(a.headers.get("retry-after-ms"), "50000");
    assertEquals(a.headers.get("x-gateway-ratelimit-remaining-requests"), "0");
    const aj = await a.json();
    assertEquals([aj.type, aj.error.type], ["error", "rate_limit_error"]);
    assertIncludes(aj.error.message, "rpm");
    const o = await gpt(s, k.secret);
    assertEquals(o.status, 429);
    const oj = await o.json();
    assertEquals([oj.error.type, oj.error.code], ["rate_limit_error", "rate_limit_exceeded"]);
    assertEquals(s.up.seen.length, 3, "refused requests never reach the provider");
  } finally {
    await s.close();
  }
});

Deno.test("daily token quota: reserved worst case, settled to usage, then insufficient_quota", async () => {
  const s = await stack();
  try {
    // Each request's worst case: its body bytes plus max_tokens 100; it uses 15 tokens.
    const body = JSON.stringify({ model: "gpt-test", max_tokens: 100 });
    const k = await keyWith(s, { daily_token_quota: 2 * (body.length + 100) + 30 });
    for (let i = 0; i < 2; i++) {
      const r = await gpt(s, k.secret);
      assertEquals(r.status, 200);
      await r.body?.cancel();
    }
    // 20 used: another worst case fits (the quota was sized for two worst cases and 30 more).
    const third = await gpt(s, k.secret);
    assertEquals(third.status, 200);
    await third.body?.cancel();
    const view = (await admin(s.t.url, "GET", `/admin/keys/${k.id}`)).json;
    const q = (view.limits as Record<string, Record<string, unknown>>).daily_token_quota;
    await waitFor("settled", async () => {
      const v = (await admin(s.t.url, "GET", `/admin/keys/${k.id}`)).json;
      const l = (v.limits as Record<string, Record<string, number>>).daily_token_quota;
      return l.used === 30 && l.reserved === 0;
    });
    assert(typeof q.resets_at === "string");
    // A request whose worst case fits the quota alone, but not beside the 30 used.
    const quota = 2 * (body.length + 100) + 30;
    const padded = (n: number) =>
      JSON.stringify({ model: "gpt-test", max_tokens: 100, pad: "x".repeat(n) });
    const pad = quota - 10 - 100 - padded(0).length;
    assertEquals(padded(pad).length + 100, quota - 10);
    const big = await post(`${s.t.url}/v1/chat/completions`, padded(pad), {
      authorization: `Bearer ${k.secret}`,
    });
    assertEquals(big.status, 429);
    const j = await big.json();
    assertEquals(j.error.code, "insufficient_quota");
    assertIncludes(j.error.message, "daily token quota");
    assertIncludes(j.error.message, "resets at");
    assert(big.headers.get("retry-after"));
  } finally {
    await s.close();
  }
});

Deno.test("money budget: priced at the model's rates; an unpriced model is refused", async () => {
  const s = await stack();
  try {
    const k = await keyWith(s, { daily_budget_usd: 0.01 });
    const ok = await claude(s, k.secret);
    assertEquals(ok.status, 200);
    await ok.body?.cancel();
    const no = await gpt(s, k.secret);
    assertEquals(no.status, 403);
    assertEquals((await no.json()).error.code, "model_not_priced");
    await waitFor("settled", async () => {
      const v = (await admin(s.t.url, "GET", `/admin/keys/${k.id}`)).json;
      const b = (v.limits as Record<string, Record<string, number>>).daily_budget_usd;
      return b.reserved === 0 && Math.abs(b.used - (10 * 3 + 5 * 15) / 1e6) < 1e-9;
    });
    // A request whose worst case costs more than what is left of the budget.
    const big = await claude(s, k.secret, { max_tokens: 1000 });
    assertEquals(big.status, 429);
    const j = await big.json();
    assertEquals(j.error.type, "rate_limit_error");
    assertIncludes(j.error.message, "daily budget");
  } finally {
    await s.close();
  }
});

Deno.test("max_concurrent: open streams hold slots; a slot frees when its stream ends", async () => {
  const gates: (() => void)[] = [];
  const up = fakeUpstream((s) => {
    if (!bodyJson(s).stream) return Response.json(anthropicMessage({ input_tokens: 1 }));
    let release!: () => void;
    const released = new Promise<void>((r) => release = r);
    gates.push(release);
    async function* events() {
      yield anthropicSse.start({ input_tokens: 10, output_tokens: 1 });
      await released;
      yield anthropicSse.end({ output_tokens: 5 });
    }
    const it = events();
    const body = new ReadableStream({
      async pull(c) {
        const n = await it.next();
        if (n.done) c.close();
        else c.enqueue(new TextEncoder().encode(n.value));
      },
    });
    return new Response(body, { headers: { "content-type": "text/event-stream" } });
  });
  const t = await startTestGateway({ registry: registry(up.url) });
  const s = { up, t, close: async () => {} } as Stack;
  try {
    const k = await keyWith(s, { max_concurrent: 2 });
    const open = [
      await claude(s, k.secret, { stream: true }),
      await claude(s, k.secret, { stream: true }),
    ];
    for (const r of open) assertEquals(r.status, 200);
    const third = await claude(s, k.secret, { stream: true });
    assertEquals(third.status, 429);
    assertIncludes((await third.json()).error.message, "max_concurrent");
    gates[0]();
    await open[0].text();
    await waitFor("slot back", async () => {
      const r = await claude(s, k.secret);
      await r.body?.cancel();
      return r.status === 200;
    });
    gates[1]();
    await open[1].text();
  } finally {
    await t.close();
    await up.close();
  }
});

Deno.test("reservations are settled on every path: success, error, timeout, disconnect", async () => {
  const up = fakeUpstream((s) => {
    const b = bodyJson(s);
    if (b.model === "claude-fail") {
      return Response.json({ type: "error", error: { type: "api_error" } }, { status: 500 });
    }
    if (b.model === "claude-silent") {
      // Starts a stream, then falls silent past idle_ms.
      const start = new TextEncoder().encode(anthropicSse.start({ input_tokens: 4 }));
      return new Response(new ReadableStream({ start: (c) => c.enqueue(start) }), {
        headers: { "content-type": "text/event-stream" },
      });
    }
    if (b.model === "claude-hang") return untilAborted(s);
    return Response.json(anthropicMessage({ input_tokens: 10, output_tokens: 5 }));
  });
  const t = await startTestGateway({
    registry: testRegistry(up.url, {
      routing: { claude: ["anthropic"] },
      known_models: [{
        id: "claude-test",
        provider: "anthropic",
        pricing: { input: 1, output: 1 },
      }],
      defaults: { retries: { max: 0 }, timeouts: { idle_ms: 300, ttfb_ms: 300 } },
    }),
  });
  const s = { up, t, close: async () => {} } as Stack;
  try {
    const k = await keyWith(s, { max_concurrent: 5, daily_token_quota: 1_000_000 });
    const send = (model: string, extra: Record<string, unknown> = {}) =>
      claude(s, k.secret, { model, ...extra });
    (await send("claude-test")).body?.cancel(); // success
    (await send("claude-fail")).body?.cancel(); // upstream error
    (await send("claude-hang")).body?.cancel(); // first-byte timeout (504)
    const silent = await send("claude-silent", { stream: true }); // idle timeout mid-stream
    await silent.text();
    const gone = new AbortController(); // client disconnect before the answer
    const p = fetch(`${t.url}/v1/messages`, {
      method: "POST",
      signal: gone.signal,
      headers: { "x-api-key": k.secret, "content-type": "application/json" },
      body: JSON.stringify({ model: "claude-hang", max_tokens: 100 }),
    }).catch(() => {});
    await waitFor("request in flight", () => up.seen.length >= 5);
    gone.abort();
    await p;
    await waitFor("everything settled", async () => {
      const v = (await admin(t.url, "GET", `/admin/keys/${k.id}`)).json;
      const l = v.limits as Record<string, Record<string, number>>;
      return l.max_concurrent.used === 0 && l.daily_token_quota.reserved === 0;
    });
    const v = (await admin(t.url, "GET", `/admin/keys/${k.id}`)).json;
    const l = v.limits as Record<string, Record<string, number>>;
    assertEquals(l.daily_token_quota.used, 15 + 4, "what was metered, not what was reserved");
  } finally {
    await t.close();
    await up.close();
  }
});

Deno.test("count_tokens bursts are free: not counted against rpm or max_concurrent", async () => {
  const s = await stack();
  try {
    const k = await keyWith(s, { rpm: 2, max_concurrent: 1 });
    const burst = await Promise.all(
      Array.from(
        { length: 25 },
        () =>
          post(`${s.t.url}/v1/messages/count_tokens`, { model: "claude-test", messages: [] }, {
            "x-api-key": k.secret,
          }),
      ),
    );
    for (const r of burst) {
      assertEquals(r.status, 200);
      await r.body?.cancel();
    }
    const r = await claude(s, k.secret);
    assertEquals(r.status, 200, "the burst used none of the key's rpm");
    await r.body?.cancel();
  } finally {
    await s.close();
  }
});

Deno.test("expiry, rotation with grace, and editing with PATCH", async () => {
  const clock = fakeClock("2026-11-30T10:00:00Z");
  const s = await stack({ clock });
  try {
    const k = await keyWith(s, { expires_at: "2026-11-30T11:00:00Z", metadata: { team: "ml" } });
    const rotated = await admin(s.t.url, "POST", `/admin/keys/${k.id}/rotate`, {
      grace_seconds: 60,
    });
    assertEquals(rotated.status, 200);
    assertEquals(rotated.json.previous_key_valid_until, "2026-11-30T10:01:00.000Z");
    const fresh = rotated.json.api_key as string;
    for (const secret of [k.secret, fresh]) {
      const r = await claude(s, secret);
      assertEquals(r.status, 200, "both secrets work during the grace period");
      await r.body?.cancel();
    }
    clock.set("2026-11-30T10:01:01Z");
    assertEquals((await claude(s, k.secret)).status, 401, "the old one after it");
    const r = await claude(s, fresh);
    assertEquals(r.status, 200);
    await r.body?.cancel();

    const edited = await admin(s.t.url, "PATCH", `/admin/keys/${k.id}`, { rpm: 10, name: "x" });
    assertEquals([edited.status, edited.json.rpm, edited.json.name], [200, 10, "x"]);
    assertEquals(edited.json.metadata, { team: "ml" }, "fields not named are kept");
    const cleared = await admin(s.t.url, "PATCH", `/admin/keys/${k.id}`, { rpm: null });
    assertEquals([cleared.json.rpm, cleared.json.limits], [null, {}]);
    const bad = await admin(s.t.url, "PATCH", `/admin/keys/${k.id}`, { rpm: -1 });
    assertEquals(bad.status, 400);
    assertIncludes(bad.json.detail as string, "rpm");
    assertEquals((bad.json.error as Record<string, unknown>).param, "rpm", "the field at fault");
    const info = await admin(s.t.url, "GET", "/admin/info");
    assertEquals([info.json.time_zone, info.json.today, info.json.month], [
      "UTC",
      "2026-11-30",
      "2026-11",
    ]);

    clock.set("2026-11-30T11:00:00Z");
    const expired = await claude(s, fresh);
    assertEquals(expired.status, 401);
    const j = await expired.json();
    assertEquals(j.error.type, "authentication_error");
    assertIncludes(j.error.message, "expired");
    assertEquals((await admin(s.t.url, "GET", `/admin/keys/${k.id}`)).json.expired, true);
  } finally {
    await s.close();
  }
});

Deno.test("GET /v1/key: a client sees its own limits and usage, never its secret", async () => {
  const s = await stack();
  try {
    const k = await keyWith(s, { rpm: 100, daily_budget_usd: 5 });
    const r = await claude(s, k.secret);
    await r.body?.cancel();
    await waitFor("settled", async () => {
      const j = await (await fetch(`${s.t.url}/v1/key`, { headers: { "x-api-key": k.secret } }))
        .json();
      return j.usage.today.requests === 1 && j.limits.daily_budget_usd.reserved === 0;
    });
    const res = await fetch(`${s.t.url}/v1/key`, { headers: { "x-api-key": k.secret } });
    const text = await res.text();
    assert(!text.includes(k.secret.slice(6)), "no secret, whole or in part");
    const j = JSON.parse(text);
    assertEquals([j.id, j.name, j.rpm], [k.id, "limited", 100]);
    assertEquals(j.limits.rpm.used, 1);
    assertEquals(j.usage.today.input, 10);
    assertEquals(j.usage.today.cost_usd, (10 * 3 + 5 * 15) / 1e6);
    assertEquals(j.usage.month.requests, 1);
    // The default test key sees only itself.
    const other = await (await fetch(`${s.t.url}/v1/key`, { headers: { "x-api-key": s.t.secret } }))
      .json();
    assertEquals([other.id, other.usage.today.requests], [s.t.keyId, 0]);
    assertEquals((await fetch(`${s.t.url}/v1/key`)).status, 401);
  } finally {
    await s.close();
  }
});

Deno.test("two gateways on one KV file enforce one limit, exactly", async () => {
  const up = fakeUpstream(reply);
  const dir = await Deno.makeTempDir();
  const path = `${dir}/gw.kv`;
  const kvs = [await Deno.openKv(path), await Deno.openKv(path)];
  const gws = await Promise.all(
    kvs.map((kv) =>
      startTestGateway({ registry: registry(up.url), kv, config: { keysRefreshMs: 100 } })
    ),
  );
  try {
    const created = await admin(gws[0].url, "POST", "/admin/keys", {
      name: "shared",
      rpm: 30,
      daily_token_quota: 100_000,
    });
    const secret = created.json.api_key as string;
    // The second gateway learns of the key from KV.
    await waitFor(
      "key known everywhere",
      () => !!gws[1].gw.ctx.keys.get(created.json.id as string),
    );
    const results = await Promise.all(
      Array.from({ length: 80 }, async (_, i) => {
        const r = await post(`${gws[i % 2].url}/v1/chat/completions`, {
          model: "gpt-test",
          max_tokens: 100,
        }, { authorization: `Bearer ${secret}` });
        await r.body?.cancel();
        return r.status;
      }),
    );
    assertEquals(
      results.filter((s) => s === 200).length,
      30,
      "never over, none that fitted refused",
    );
    assertEquals(results.filter((s) => s === 429).length, 50);
    assertEquals(up.seen.length, 30);
  } finally {
    for (const g of gws) await g.close();
    for (const kv of kvs) kv.close();
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a killed gateway's concurrency slot and reservation come back after LIMIT_HOLD_MS", async () => {
  const gates: (() => void)[] = [];
  const up = fakeUpstream((s) => {
    if (!bodyJson(s).stream) return Response.json(anthropicMessage({ input_tokens: 1 }));
    const start = new TextEncoder().encode(anthropicSse.start({ input_tokens: 10 }));
    // Never ends by itself: the stream is open when the gateway is killed.
    return new Response(
      new ReadableStream({
        start(c) {
          c.enqueue(start);
          gates.push(() => {
            try {
              c.close();
            } catch {
              // the gateway already dropped it
            }
          });
        },
      }),
      { headers: { "content-type": "text/event-stream" } },
    );
  });
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/gw.kv`;
  const models = `${dir}/models.json`;
  await Deno.writeTextFile(
    models,
    JSON.stringify({
      providers: { a: { format: "anthropic", base_url: up.url, api_key_env: "UP_KEY" } },
      routing: { claude: ["a"] },
    }),
  );
  const kv = await Deno.openKv(kvPath);
  const { KeyStore } = await import("../lib/store/keys.ts");
  const { secret } = await new KeyStore(kv).create({
    name: "one-at-a-time",
    limits: { maxConcurrent: 1, dailyTokens: 1_000_000 },
  });
  const child = new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-kv", "--unstable-no-legacy-abort", "-A", MAIN],
    env: {
      PORT: "0",
      HOST: "127.0.0.1",
      KV_PATH: kvPath,
      MODELS_CONFIG: models,
      UP_KEY: "k",
      LIMIT_HOLD_MS: "1500",
    },
    stdout: "piped",
    stderr: "null",
  }).spawn();
  const gw = await startTestGateway({ registry: registry(up.url), kv });
  try {
    const lines = child.stdout.pipeThrough(new TextDecoderStream()).getReader();
    let url = "";
    for (let buf = ""; !url;) {
      const { done, value } = await lines.read();
      if (done) throw new Error("the child gateway exited");
      buf += value;
      const m = /"address":"([^"]+)"/.exec(buf);
      if (m) url = `http://${m[1]}`;
    }
    const open = await post(`${url}/v1/messages`, {
      model: "claude-x",
      stream: true,
      max_tokens: 9,
    }, {
      "x-api-key": secret,
    });
    assertEquals(open.status, 200);
    child.kill("SIGKILL");
    await child.status;
    lines.cancel().catch(() => {});
    const held = await post(`${gw.url}/v1/messages`, { model: "claude-test", max_tokens: 9 }, {
      "x-api-key": secret,
    });
    assertEquals(held.status, 429, "the dead gateway's slot is still held");
    await held.body?.cancel();
    await waitFor("slot given back", async () => {
      const r = await post(`${gw.url}/v1/messages`, { model: "claude-test", max_tokens: 9 }, {
        "x-api-key": secret,
      });
      await r.body?.cancel();
      return r.status === 200;
    }, 10_000);
    await open.body?.cancel().catch(() => {});
  } finally {
    for (const g of gates) g();
    await gw.close();
    kv.close();
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});
