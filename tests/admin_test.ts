/**
 * End-to-end: the admin API over HTTP, with Luna's field names
 * (docs/admin-api.md), keyed by key id, never by secret.
 * Real proxied traffic through a fake upstream feeds the usage reports.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import {
  ADMIN_KEY,
  fakeClock,
  post,
  type Stack,
  startStack,
  type TestOptions,
} from "./support/gateway.ts";
import { bodyJson, type Seen } from "./support/upstream.ts";
import { anthropicMessage, openaiCompletion } from "./support/replies.ts";
import { ROUTES } from "../lib/http/routes.ts";

type Json = Record<string, unknown>;
// deno-lint-ignore no-explicit-any
type Any = any;

/** Anthropic JSON with every input bucket: 10 uncached + 200 cache read + 30 cache write, 5 out. */
const CLAUDE_USAGE = {
  input_tokens: 10,
  cache_read_input_tokens: 200,
  cache_creation_input_tokens: 30,
  output_tokens: 5,
};

/** OpenAI JSON: a 1000-token prompt of which 100 cached, 200 out. */
const GPT_USAGE = {
  prompt_tokens: 1000,
  completion_tokens: 200,
  total_tokens: 1200,
  prompt_tokens_details: { cached_tokens: 100 },
};

function upstream(s: Seen): Response {
  const { model } = bodyJson(s);
  return Response.json(
    s.path.endsWith("/messages")
      ? anthropicMessage(CLAUDE_USAGE, { model })
      : openaiCompletion(GPT_USAGE, { model }),
  );
}

interface Setup extends Stack {
  /** Every admin response body seen, to check that no secret ever shows. */
  bodies: string[];
  call(
    method: string,
    path: string,
    body?: unknown,
    headers?: Record<string, string>,
  ): Promise<{ status: number; json: Any; headers: Headers }>;
}

async function setup(o: Omit<TestOptions, "registry"> = {}): Promise<Setup> {
  const stack = await startStack(upstream, o);
  const { t } = stack;
  const bodies: string[] = [];
  return {
    ...stack,
    bodies,
    async call(method, path, body, headers = { "x-api-key": ADMIN_KEY }) {
      const res = await fetch(t.url + path, {
        method,
        headers: { "content-type": "application/json", ...headers },
        body: body === undefined
          ? undefined
          : typeof body === "string"
          ? body
          : JSON.stringify(body),
      });
      const text = await res.text();
      bodies.push(text);
      return { status: res.status, json: text ? JSON.parse(text) : null, headers: res.headers };
    },
  };
}

async function claude(base: string, secret: string, model = "claude-test"): Promise<Response> {
  const res = await post(
    `${base}/v1/messages`,
    { model, max_tokens: 10, messages: [{ role: "user", content: "hi" }] },
    { "x-api-key": secret, "anthropic-version": "2023-06-01" },
  );
  await res.body?.cancel();
  return res;
}

async function gpt(base: string, secret: string): Promise<Response> {
  const res = await post(`${base}/v1/chat/completions`, { model: "gpt-test", messages: [] }, {
    authorization: `Bearer ${secret}`,
  });
  await res.body?.cancel();
  return res;
}

const LUNA_KEY_FIELDS = [
  "key",
  "name",
  "enabled",
  "created",
  "total_input",
  "total_output",
  "total_requests",
  "last_used",
];

Deno.test("create key: 200 (as Luna), secret shown once, masked in every later response and log", async () => {
  const s = await setup();
  try {
    const created = await s.call("POST", "/admin/keys", { name: "alice" });
    assertEquals(created.status, 200);
    const secret: string = created.json.api_key;
    assert(secret.startsWith("sk-gw-"), secret);
    assertEquals(created.json.name, "alice");
    assertEquals(created.json.enabled, true);
    assertEquals(typeof created.json.id, "string");
    assertEquals(created.json.key, `${secret.slice(0, 8)}...${secret.slice(-4)}`);
    assert(!Number.isNaN(Date.parse(created.json.created)), "created is a date");
    assertEquals(created.json.total_requests, 0);
    assertEquals(created.json.last_used, null);
    const id: string = created.json.id;

    assertEquals((await claude(s.t.url, secret)).status, 200, "the new key works at once");

    const list = await s.call("GET", "/admin/keys");
    assertEquals(list.status, 200);
    const row = list.json.keys.find((k: Json) => k.id === id);
    for (const f of LUNA_KEY_FIELDS) assert(f in row, `listing has Luna's field ${f}`);
    for (const f of ["id", "input_uncached", "cache_read", "cache_write"]) assert(f in row, f);
    assertEquals(row.key, created.json.key);
    assert(!("full_key" in row) && !("api_key" in row), "no listing carries the secret");

    const one = await s.call("GET", `/admin/keys/${id}`);
    assertEquals(one.status, 200);
    assertEquals(one.json.name, "alice");
    await s.call("GET", `/admin/keys/${id}/usage`);
    await s.call("POST", `/admin/keys/${id}/disable`);
    await s.call("POST", `/admin/keys/${id}/enable`);
    await s.call("GET", "/admin/usage");
    await s.call("GET", "/admin/usage/daily");
    await s.call("GET", "/admin/usage/hourly");
    await s.call("GET", "/admin/models");
    const later = s.bodies.slice(1);
    assertEquals(later.length, 9);
    for (const b of later) assert(!b.includes(secret), `secret leaked in ${b.slice(0, 200)}`);
    assert(s.bodies[0].includes(secret), "only the creation response shows it");
    for (const l of s.t.logs) assert(!l.includes(secret), `secret leaked into a log line: ${l}`);
  } finally {
    await s.close();
  }
});

Deno.test("key usage report: Luna's shapes, whole-prompt input, totals per model sorted", async () => {
  const clock = fakeClock("2026-03-01T23:30:00Z");
  const s = await setup({ clock });
  try {
    const { json: k } = await s.call("POST", "/admin/keys", { name: "reporter" });
    assertEquals((await claude(s.t.url, k.api_key)).status, 200);
    assertEquals((await claude(s.t.url, k.api_key)).status, 200);
    clock.set("2026-03-02T00:10:00Z");
    assertEquals((await gpt(s.t.url, k.api_key)).status, 200);

    const { status, json } = await s.call("GET", `/admin/keys/${k.id}/usage`);
    assertEquals(status, 200);
    assertEquals(json.name, "reporter");
    assertEquals(json.enabled, true);
    const u = json.usage;
    // Claude: 10 + 200 + 30 = 240 input each; GPT: 1000 (900 uncached + 100 cached).
    assertEquals(u.total_input, 2 * 240 + 1000);
    assertEquals(u.total_output, 2 * 5 + 200);
    assertEquals(u.total_requests, 3);
    assertEquals(u.input_uncached, 2 * 10 + 900);
    assertEquals(u.cache_read, 2 * 200 + 100);
    assertEquals(u.cache_write, 2 * 30);
    assertEquals(u.total_input, u.input_uncached + u.cache_read + u.cache_write);
    assertEquals(u.last_used, "2026-03-02T00:10:00.000Z");

    const claudeStats = {
      total: 490,
      requests: 2,
      input: 480,
      output: 10,
      input_uncached: 20,
      cache_read: 400,
      cache_write: 60,
    };
    const gptStats = {
      total: 1200,
      requests: 1,
      input: 1000,
      output: 200,
      input_uncached: 900,
      cache_read: 100,
      cache_write: 0,
    };
    const pick = (m: Json) => {
      const { total, requests, input, output, input_uncached, cache_read, cache_write } = m;
      return { total, requests, input, output, input_uncached, cache_read, cache_write };
    };
    // USAGE_TZ defaults to UTC: the two calls fall on two days.
    assertEquals(Object.keys(u.daily), ["2026-03-01", "2026-03-02"]);
    const d1 = u.daily["2026-03-01"];
    assertEquals([d1.input, d1.output, d1.requests], [480, 10, 2]);
    assertEquals(pick(d1.by_model["claude-test"]), claudeStats);
    const d2 = u.daily["2026-03-02"];
    assertEquals([d2.input, d2.output, d2.requests], [1000, 200, 1]);
    assertEquals(pick(d2.by_model["gpt-test"]), gptStats);

    assertEquals(Object.keys(u.hourly), ["2026-03-01 23:00", "2026-03-02 00:00"]);
    assertEquals(pick(u.hourly["2026-03-01 23:00"].by_model["claude-test"]), claudeStats);
    assertEquals(pick(u.hourly["2026-03-02 00:00"].by_model["gpt-test"]), gptStats);

    // Sorted by total, descending, not by name.
    assertEquals(Object.keys(u.total_by_model), ["gpt-test", "claude-test"]);
    assertEquals(pick(u.total_by_model["gpt-test"]), gptStats);
    assertEquals(pick(u.total_by_model["claude-test"]), claudeStats);

    const list = await s.call("GET", "/admin/keys");
    const row = list.json.keys.find((r: Json) => r.id === k.id);
    assertEquals(
      [row.total_input, row.total_output, row.total_requests, row.last_used],
      [1480, 210, 3, "2026-03-02T00:10:00.000Z"],
    );

    const oneDay = await s.call("GET", `/admin/keys/${k.id}/usage?date=2026-03-02`);
    assertEquals(Object.keys(oneDay.json.usage.daily), ["2026-03-02"]);
  } finally {
    await s.close();
  }
});

Deno.test("day and hour buckets follow USAGE_TZ", async () => {
  for (
    const [tz, days, hours] of [
      ["UTC", ["2026-03-01", "2026-03-02"], ["2026-03-01 23:00", "2026-03-02 00:00"]],
      ["Asia/Shanghai", ["2026-03-02"], ["2026-03-02 07:00", "2026-03-02 08:00"]],
      ["America/New_York", ["2026-03-01"], ["2026-03-01 18:00", "2026-03-01 19:00"]],
    ] as const
  ) {
    const clock = fakeClock("2026-03-01T23:30:00Z");
    const s = await setup({ clock, config: { usageTz: tz } });
    try {
      await claude(s.t.url, s.t.secret);
      clock.set("2026-03-02T00:10:00Z");
      await gpt(s.t.url, s.t.secret);
      const { json } = await s.call("GET", `/admin/keys/${s.t.keyId}/usage`);
      assertEquals(Object.keys(json.usage.daily), [...days], tz);
      assertEquals(Object.keys(json.usage.hourly), [...hours], tz);
      const daily = await s.call("GET", "/admin/usage/daily");
      assertEquals(daily.json.days.map((d: Json) => d.date), [...days], tz);
      const hourly = await s.call("GET", `/admin/usage/hourly?date=${days[days.length - 1]}`);
      assertEquals(hourly.json.time_zone, tz);
      assert(hourly.json.hours.length > 0, tz);
    } finally {
      await s.close();
    }
  }
});

Deno.test("disable answers 403 at once; enable restores the key", async () => {
  const s = await setup();
  try {
    const { json: k } = await s.call("POST", "/admin/keys", { name: "toggle" });
    assertEquals((await claude(s.t.url, k.api_key)).status, 200);

    const off = await s.call("POST", `/admin/keys/${k.id}/disable`);
    assertEquals(off.status, 200);
    assertEquals(off.json.status, "disabled");
    assertEquals(off.json.name, "toggle");
    const denied = await post(`${s.t.url}/v1/messages`, { model: "claude-test" }, {
      "x-api-key": k.api_key,
    });
    assertEquals(denied.status, 403);
    const body = await denied.json();
    assertEquals(body.type, "error");
    assertEquals(body.error.type, "permission_error");
    assertIncludes(body.error.message, "disabled");
    assertEquals((await gpt(s.t.url, k.api_key)).status, 403);
    assertEquals(s.up.seen.length, 1, "a disabled key never reaches the upstream");
    const list = await s.call("GET", "/admin/keys");
    assertEquals(list.json.keys.find((r: Json) => r.id === k.id).enabled, false);

    const on = await s.call("POST", `/admin/keys/${k.id}/enable`);
    assertEquals(on.status, 200);
    assertEquals(on.json.status, "enabled");
    assertEquals(on.json.name, "toggle");
    assertEquals((await claude(s.t.url, k.api_key)).status, 200);
  } finally {
    await s.close();
  }
});

Deno.test("delete answers 401 at once; the key's usage stays in the daily reports", async () => {
  const s = await setup();
  try {
    const { json: k } = await s.call("POST", "/admin/keys", { name: "bob" });
    assertEquals((await claude(s.t.url, k.api_key)).status, 200);
    assertEquals((await claude(s.t.url, s.t.secret)).status, 200);

    const del = await s.call("DELETE", `/admin/keys/${k.id}`);
    assertEquals(del.status, 200);
    assertEquals(del.json.status, "deleted");
    assertEquals(del.json.name, "bob");
    const res = await post(`${s.t.url}/v1/messages`, { model: "claude-test" }, {
      "x-api-key": k.api_key,
    });
    assertEquals(res.status, 401);
    assertEquals((await res.json()).error.type, "authentication_error");

    const list = await s.call("GET", "/admin/keys");
    assert(!list.json.keys.some((r: Json) => r.id === k.id), "deleted keys are not listed");
    assertEquals((await s.call("GET", `/admin/keys/${k.id}`)).status, 404);
    assertEquals((await s.call("DELETE", `/admin/keys/${k.id}`)).status, 404);
    assertEquals((await s.call("POST", `/admin/keys/${k.id}/enable`)).status, 404);

    const daily = await s.call("GET", "/admin/usage/daily");
    const [day] = daily.json.days;
    assertEquals(day.total_requests, 2);
    assertEquals(day.by_tenant.bob["claude-test"].requests, 1);
    assertEquals(day.by_tenant["test-key"]["claude-test"].requests, 1);
    const bob = day.keys.find((r: Json) => r.name === "bob");
    assertEquals([bob.id, bob.requests, bob.input, bob.output], [k.id, 1, 240, 5]);

    const summary = await s.call("GET", "/admin/usage");
    assertEquals(summary.json.total_requests, 2, "deleted keys' usage still counts");
    assertEquals(summary.json.total_keys, 1);
  } finally {
    await s.close();
  }
});

Deno.test("rotate: the old secret answers 401, the new one works, id and usage stay", async () => {
  const s = await setup();
  try {
    const { json: k } = await s.call("POST", "/admin/keys", { name: "rotor" });
    assertEquals((await claude(s.t.url, k.api_key)).status, 200);
    const r = await s.call("POST", `/admin/keys/${k.id}/rotate`);
    assertEquals(r.status, 200);
    assertEquals(r.json.status, "rotated");
    assertEquals(r.json.id, k.id);
    assertEquals(r.json.name, "rotor");
    assertEquals([r.json.total_requests, r.json.total_input], [1, 240], "the key's real totals");
    const fresh: string = r.json.api_key;
    assert(fresh.startsWith("sk-gw-") && fresh !== k.api_key);
    assertEquals(r.json.key, `${fresh.slice(0, 8)}...${fresh.slice(-4)}`);
    assertEquals((await claude(s.t.url, k.api_key)).status, 401);
    assertEquals((await claude(s.t.url, fresh)).status, 200);
    const u = await s.call("GET", `/admin/keys/${k.id}/usage`);
    assertEquals(u.json.usage.total_requests, 2);
    const list = await s.call("GET", "/admin/keys");
    for (const b of s.bodies.slice(-2)) {
      assert(!b.includes(fresh) && !b.includes(k.api_key), "no secret after rotation");
    }
    assertEquals(list.json.keys.find((x: Json) => x.id === k.id).key, r.json.key);
    assertEquals((await s.call("POST", "/admin/keys/01UNKNOWNKEYID/rotate")).status, 404);
  } finally {
    await s.close();
  }
});

Deno.test("GET /admin/usage: totals over every key, total_keys and active_keys", async () => {
  const s = await setup();
  try {
    const { json: a } = await s.call("POST", "/admin/keys", { name: "a" });
    const { json: b } = await s.call("POST", "/admin/keys", { name: "b" });
    const { json: off } = await s.call("POST", "/admin/keys", { name: "off", enabled: false });
    assertEquals(off.enabled, false);
    await claude(s.t.url, a.api_key);
    await gpt(s.t.url, b.api_key);
    await gpt(s.t.url, s.t.secret);
    const { status, json } = await s.call("GET", "/admin/usage");
    assertEquals(status, 200);
    assertEquals(json.total_input_tokens, 240 + 2 * 1000);
    assertEquals(json.total_output_tokens, 5 + 2 * 200);
    assertEquals(json.total_requests, 3);
    assertEquals(json.total_keys, 4);
    assertEquals(json.active_keys, 3);
    assertEquals(json.cache_read, 200 + 2 * 100);
  } finally {
    await s.close();
  }
});

Deno.test("daily report: days ascending, by_model, by_tenant by key name, keys; date filter", async () => {
  const clock = fakeClock("2026-03-03T10:00:00Z");
  const s = await setup({ clock });
  try {
    const { json: a } = await s.call("POST", "/admin/keys", { name: "ana" });
    await gpt(s.t.url, a.api_key);
    await claude(s.t.url, a.api_key);
    await claude(s.t.url, s.t.secret);
    clock.set("2026-03-01T10:00:00Z");
    await claude(s.t.url, a.api_key);

    const all = await s.call("GET", "/admin/usage/daily");
    assertEquals(all.status, 200);
    assertEquals(all.json.days.map((d: Json) => d.date), ["2026-03-01", "2026-03-03"]);
    const d3 = all.json.days[1];
    assertEquals(d3.total_input, 1000 + 240 + 240);
    assertEquals(d3.total_output, 200 + 5 + 5);
    assertEquals(d3.total_requests, 3);
    assertEquals(Object.keys(d3.by_model), ["gpt-test", "claude-test"]);
    assertEquals(d3.by_model["claude-test"].total, 490);
    assertEquals(d3.by_model["claude-test"].requests, 2);
    assertEquals(Object.keys(d3.by_tenant).sort(), ["ana", "test-key"]);
    assertEquals(d3.by_tenant.ana["gpt-test"], d3.by_model["gpt-test"]);
    assertEquals(d3.by_tenant.ana["claude-test"].total, 245);
    assertEquals(d3.by_tenant["test-key"]["claude-test"].requests, 1);
    const ana = d3.keys.find((k: Json) => k.name === "ana");
    assertEquals([ana.id, ana.input, ana.output, ana.requests], [a.id, 1240, 205, 2]);
    assertEquals(Object.keys(ana.by_model), ["gpt-test", "claude-test"]);

    const one = await s.call("GET", "/admin/usage/daily?date=2026-03-01");
    assertEquals(one.json.days.length, 1);
    assertEquals(one.json.days[0].date, "2026-03-01");
    assertEquals(one.json.days[0].total_requests, 1);
    assertEquals((await s.call("GET", "/admin/usage/daily?date=2026-03-02")).json.days, []);

    for (const bad of ["2026-3-1", "yesterday", "2026-13-01", "2026-02-30", "2026-03-01x"]) {
      const r = await s.call("GET", `/admin/usage/daily?date=${bad}`);
      assertEquals(r.status, 400, bad);
      assertIncludes(r.json.detail, "YYYY-MM-DD");
    }
  } finally {
    await s.close();
  }
});

Deno.test("a reversed date range answers 400 in the admin shape, not 500 or an empty report", async () => {
  const s = await setup();
  try {
    await claude(s.t.url, s.t.secret);
    for (
      const path of [
        "/admin/usage/daily?from=2026-11-30&to=2026-11-01",
        `/admin/keys/${s.t.keyId}/usage?from=2026-11-30&to=2026-11-01`,
      ]
    ) {
      const r = await s.call("GET", path);
      assertEquals(r.status, 400, path);
      assertEquals(r.json.error.code, "invalid_date_range");
      assertEquals(r.json.detail, r.json.error.message);
      assertIncludes(r.json.detail, "from (2026-11-30) is after to (2026-11-01)");
    }
    const one = await s.call("GET", "/admin/usage/daily?from=2026-11-01&to=2026-11-01");
    assertEquals([one.status, one.json.days], [200, []]);
  } finally {
    await s.close();
  }
});

Deno.test("hourly report: hours of one day (today in USAGE_TZ by default) with by_model and by_tenant", async () => {
  const clock = fakeClock("2026-03-02T01:15:00Z");
  const s = await setup({ clock, config: { usageTz: "Asia/Shanghai" } });
  try {
    await claude(s.t.url, s.t.secret);
    clock.set("2026-03-02T03:59:00Z");
    await gpt(s.t.url, s.t.secret);
    await claude(s.t.url, s.t.secret);
    clock.set("2026-03-02T20:00:00Z"); // 04:00 on 3 March in Shanghai
    await gpt(s.t.url, s.t.secret);

    clock.set("2026-03-02T12:00:00Z");
    const today = await s.call("GET", "/admin/usage/hourly");
    assertEquals(today.status, 200);
    assertEquals(today.json.date, "2026-03-02");
    assertEquals(today.json.hours.map((h: Json) => h.hour), [
      "2026-03-02 09:00",
      "2026-03-02 11:00",
    ]);
    const h11 = today.json.hours[1];
    assertEquals(Object.keys(h11.by_model), ["gpt-test", "claude-test"]);
    assertEquals(h11.by_model["gpt-test"].total, 1200);
    assertEquals(h11.by_tenant["test-key"]["claude-test"].total, 245);
    assertEquals(h11.total_requests, 2);

    const next = await s.call("GET", "/admin/usage/hourly?date=2026-03-03");
    assertEquals(next.json.hours.map((h: Json) => h.hour), ["2026-03-03 04:00"]);
    assertEquals((await s.call("GET", "/admin/usage/hourly?date=03/03/2026")).status, 400);
  } finally {
    await s.close();
  }
});

Deno.test("GET /admin/models: Luna's providers and known_models fields", async () => {
  const s = await setup({ env: { OPENAI_TEST_KEY: "" } });
  try {
    const { status, json } = await s.call("GET", "/admin/models");
    assertEquals(status, 200);
    const providers = Object.fromEntries(json.providers.map((p: Json) => [p.id, p]));
    assertEquals(Object.keys(providers).sort(), ["anthropic", "deepseek", "openai"]);
    for (const p of json.providers) {
      assertEquals(typeof p.name, "string");
      assertEquals(typeof p.has_api_key, "boolean");
    }
    assertEquals(providers.anthropic.has_api_key, true);
    assertEquals(providers.openai.has_api_key, false, "OPENAI_TEST_KEY is unset");
    const known = json.known_models.map((m: Json) => ({ id: m.id, provider: m.provider }));
    assertEquals(known, [
      { id: "claude-test", provider: "anthropic" },
      { id: "gpt-test", provider: "openai" },
      { id: "deepseek-chat", provider: "deepseek" },
    ]);
    assert(!JSON.stringify(json).includes("upstream-anthropic-secret"), "no provider secret");
  } finally {
    await s.close();
  }
});

Deno.test("admin auth: 401 without or with a wrong key, 403 for a client key, Bearer accepted", async () => {
  const s = await setup();
  try {
    const none = await s.call("GET", "/admin/keys", undefined, {});
    assertEquals(none.status, 401);
    assertIncludes(none.json.detail, "x-api-key");
    const wrong = await s.call("GET", "/admin/keys", undefined, {
      "x-api-key": "not-the-admin-key",
    });
    assertEquals(wrong.status, 401);
    assert(wrong.json.detail);
    const client = await s.call("GET", "/admin/keys", undefined, { "x-api-key": s.t.secret });
    assertEquals(client.status, 403);
    assert(client.json.detail);
    const clientBearer = await s.call("POST", "/admin/keys", { name: "x" }, {
      authorization: `Bearer ${s.t.secret}`,
    });
    assertEquals(clientBearer.status, 403);
    const bearer = await s.call("GET", "/admin/keys", undefined, {
      authorization: `Bearer ${ADMIN_KEY}`,
    });
    assertEquals(bearer.status, 200);
    const both = await s.call("GET", "/admin/usage", undefined, {
      "x-api-key": s.t.secret,
      authorization: `Bearer ${ADMIN_KEY}`,
    });
    assertEquals(both.status, 200, "either header may hold the admin key");
    assertEquals(
      (await s.call("GET", "/admin/keys", undefined, { "x-api-key": ADMIN_KEY + "x" })).status,
      401,
    );
    assertEquals((await s.call("GET", "/admin/keys")).json.keys.length, 1, "nothing was created");
  } finally {
    await s.close();
  }
});

Deno.test("ADMIN_KEY unset: every admin route answers 503 saying how to enable it", async () => {
  const s = await setup({ config: { adminKey: undefined } });
  try {
    const adminRoutes = ROUTES.filter((r) => r.path.startsWith("/admin"));
    assert(adminRoutes.length >= 12, "every admin route is covered");
    for (const r of adminRoutes) {
      const path = r.path.replace(":id", s.t.keyId);
      const body = r.method === "POST" ? { name: "x" } : undefined;
      const res = await s.call(r.method, path, body, { "x-api-key": ADMIN_KEY });
      assertEquals(res.status, 503, `${r.method} ${path}`);
      assertIncludes(res.json.detail, "ADMIN_KEY");
    }
    assertEquals((await claude(s.t.url, s.t.secret)).status, 200, "the proxy still works");
  } finally {
    await s.close();
  }
});

Deno.test("unknown key ids answer 404 on every key route", async () => {
  const s = await setup();
  try {
    for (
      const [method, path] of [
        ["GET", "/admin/keys/01HZZZZZZZZZZZZZZZZZZZZZZZ"],
        ["GET", "/admin/keys/01HZZZZZZZZZZZZZZZZZZZZZZZ/usage"],
        ["POST", "/admin/keys/01HZZZZZZZZZZZZZZZZZZZZZZZ/enable"],
        ["POST", "/admin/keys/01HZZZZZZZZZZZZZZZZZZZZZZZ/disable"],
        ["POST", "/admin/keys/01HZZZZZZZZZZZZZZZZZZZZZZZ/rotate"],
        ["DELETE", "/admin/keys/01HZZZZZZZZZZZZZZZZZZZZZZZ"],
        // A secret is not an id: key routes never take one.
        ["GET", `/admin/keys/${s.t.secret}/usage`],
        ["DELETE", `/admin/keys/${s.t.secret}`],
      ]
    ) {
      const res = await s.call(method, path);
      assertEquals(res.status, 404, `${method} ${path}`);
      assertIncludes(res.json.detail, "id");
      assert(!JSON.stringify(res.json).includes(s.t.secret), "the secret is not echoed");
    }
    assertEquals((await claude(s.t.url, s.t.secret)).status, 200, "the key was not touched");
  } finally {
    await s.close();
  }
});

Deno.test("bad admin requests: 400 for bad bodies, 405 for wrong methods, 404 paths; all with detail", async () => {
  const s = await setup();
  try {
    const cases: [unknown, string][] = [
      ["{not json", "JSON"],
      ["", "name"],
      [{}, "name"],
      [{ name: "   " }, "name"],
      [{ name: 42 }, "name"],
      [[], ""],
      [{ name: "x", colour: "red" }, "colour"],
      [{ name: "x", allowed_providers: ["nope"] }, "nope"],
      [{ name: "x", allowed_providers: [] }, "allowed_providers"],
      [{ name: "x", enabled: "yes" }, "enabled"],
    ];
    for (const [body, mention] of cases) {
      const res = await s.call("POST", "/admin/keys", body);
      assertEquals(res.status, 400, JSON.stringify(body));
      assertEquals(typeof res.json.detail, "string");
      assertIncludes(res.json.detail, mention);
    }
    assertEquals((await s.call("GET", "/admin/keys")).json.keys.length, 1, "nothing created");

    const limited = await s.call("POST", "/admin/keys", {
      name: "gpt only",
      allowed_providers: ["openai"],
    });
    assertEquals(limited.status, 200);
    assertEquals(limited.json.allowed_providers, ["openai"]);
    assertEquals((await gpt(s.t.url, limited.json.api_key)).status, 200);
    const res = await post(`${s.t.url}/v1/messages`, { model: "claude-test" }, {
      "x-api-key": limited.json.api_key,
    });
    assertEquals(res.status, 403);
    assertIncludes((await res.json()).error.message, "may not use");

    for (
      const [method, path, allow] of [
        ["PUT", "/admin/keys", "GET, POST"],
        ["GET", `/admin/keys/${s.t.keyId}/disable`, "POST"],
        ["PUT", `/admin/keys/${s.t.keyId}`, "GET, PATCH, DELETE"],
        ["POST", "/admin/usage", "GET"],
        ["DELETE", "/admin/models", "GET"],
      ]
    ) {
      const r = await s.call(method, path);
      assertEquals(r.status, 405, `${method} ${path}`);
      assertEquals(r.headers.get("allow"), allow);
      assertEquals(typeof r.json.detail, "string");
    }
    const missing = await s.call("GET", "/admin/nothing-here");
    assertEquals(missing.status, 404);
    assertEquals(typeof missing.json.detail, "string");
  } finally {
    await s.close();
  }
});

Deno.test("many keys and models in one flush window: every counter is written", async () => {
  // 120 keys x 2 long model names in one window is more KV key bytes than one
  // atomic commit may hold; the usage store must split it, not drop it.
  const s = await setup({ config: { usageFlushMs: 10_000 } });
  try {
    const usage = s.t.gw.ctx.usageWriter;
    const keys = await Promise.all(
      Array.from({ length: 120 }, (_, i) => s.t.gw.ctx.keys.create({ name: `tenant-${i}` })),
    );
    const at = Date.parse("2026-03-01T12:00:00Z");
    for (const { record } of keys) {
      for (const m of ["a-rather-long-model-name-for-the-test-1", "another-long-model-name-2"]) {
        const counters = {
          requests: 1,
          input_uncached: 3,
          cache_read: 5,
          cache_write: 7,
          output: 11,
          failed: 0,
          incomplete: 0,
          web_search_requests: 0,
          web_fetch_requests: 0,
          cost_micro_usd: 2,
          priced: 1,
          unpriced: 0,
        };
        usage.record(record.id, at, [{ model: m, provider: "anthropic", counters }]);
      }
    }
    const { json } = await s.call("GET", "/admin/usage");
    assertEquals(json.total_requests, 240);
    assertEquals(json.total_input_tokens, 240 * 15);
    assertEquals(json.total_output_tokens, 240 * 11);
    const daily = await s.call("GET", "/admin/usage/daily?date=2026-03-01");
    assertEquals(daily.json.days[0].keys.length, 120);
  } finally {
    await s.close();
  }
});
