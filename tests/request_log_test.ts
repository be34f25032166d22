/**
 * The request log: what one request leaves in it (figures, never prompt or
 * completion text), refusals after authentication, retention through
 * `expireIn`, `GET /admin/requests` with every filter, paging and its scan
 * bound, bad parameters as admin 400s, and the `requests` command.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { admin, fakeClock, post, startStack } from "./support/gateway.ts";
import { anthropicMessage, openaiCompletion } from "./support/replies.ts";
import { bodyJson } from "./support/upstream.ts";
import { runCli } from "../lib/cli/main.ts";
import { BucketClock } from "../lib/ops/clock.ts";
import { newId } from "../lib/ops/ids.ts";
import {
  MAX_SCAN,
  readRequestLog,
  type RequestLogEntry,
  requestLogRecord,
} from "../lib/store/request_log.ts";
import { UsageWriter } from "../lib/store/usage/writer.ts";
import { parseRegistry } from "../lib/config/registry.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const DAY = 86_400_000;
const PROMPT = "PROMPT-TEXT-the-cat-sat-on-the-mat";
const COMPLETION = "COMPLETION-TEXT-the-dog-ate-it";

function registry(upstream: string) {
  return parseRegistry({
    providers: {
      anthropic: {
        format: "anthropic",
        base_url: `${upstream}/anthropic/v1`,
        api_key_env: "ANTHROPIC_TEST_KEY",
      },
      openai: {
        format: "openai",
        base_url: `${upstream}/openai/v1`,
        api_key_env: "OPENAI_TEST_KEY",
      },
    },
    routing: { claude: ["anthropic"], gpt: ["openai"] },
    known_models: [
      {
        id: "claude-test",
        provider: "anthropic",
        pricing: { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75, cache_write_1h: 6 },
      },
      { id: "gpt-test", provider: "openai" },
    ],
  });
}

/** A fake provider: Anthropic answers with cache usage, OpenAI with 429 for `gpt-busy`. */
function upstream(seen: { path: string; body: Uint8Array }): Response {
  const body = bodyJson(seen as never);
  if (seen.path.startsWith("/openai")) {
    if (body.model === "gpt-busy") {
      return Response.json({ error: { type: "rate_limit_error", message: "slow down" } }, {
        status: 429,
      });
    }
    return Response.json(
      openaiCompletion({ prompt_tokens: 100, completion_tokens: 7 }, { text: COMPLETION }),
    );
  }
  return Response.json(anthropicMessage({
    input_tokens: 4,
    cache_creation_input_tokens: 500,
    cache_read_input_tokens: 2000,
    cache_creation: { ephemeral_5m_input_tokens: 300, ephemeral_1h_input_tokens: 200 },
    output_tokens: 60,
  }, { text: COMPLETION }));
}

const message = (model: string) => ({
  model,
  max_tokens: 10,
  messages: [{ role: "user", content: PROMPT }],
});

Deno.test("request log: one entry per request with its figures, refusals too, never any text", async () => {
  const clock = fakeClock("2026-06-01T08:00:00Z");
  const s = await startStack(upstream, { registry, clock });
  try {
    const { url, secret, keyId } = s.t;
    const h = { "x-api-key": secret };
    const r1 = await post(`${url}/v1/messages`, message("claude-test"), h);
    assertEquals(r1.status, 200);
    await r1.arrayBuffer();
    clock.set("2026-06-01T08:05:00Z");
    const r2 = await post(`${url}/v1/chat/completions`, message("gpt-test"), h);
    await r2.arrayBuffer();
    clock.set("2026-06-01T08:10:00Z");
    const r3 = await post(`${url}/v1/chat/completions`, message("gpt-busy"), h);
    assertEquals(r3.status, 429);
    await r3.arrayBuffer();
    clock.set("2026-06-01T08:15:00Z");
    const r4 = await post(`${url}/v1/messages`, message("mistral-large"), h);
    assertEquals(r4.status, 400, "an unknown model is refused after authentication");
    await r4.arrayBuffer();
    // No key: not authenticated, so not in any key's log.
    await (await post(`${url}/v1/messages`, message("claude-test"))).arrayBuffer();

    const page = (await admin(url, "GET", "/admin/requests")).json as Json;
    assertEquals(page.next_cursor, null);
    const reqs = page.requests;
    assertEquals(reqs.map((r: Json) => r.model), [
      "mistral-large",
      "gpt-busy",
      "gpt-test",
      "claude-test",
    ], "newest first");
    const [refused, busy, gpt, claude] = reqs;
    assertEquals(claude, {
      id: r1.headers.get("x-request-id"),
      time: "2026-06-01T08:00:00.000Z",
      key_id: keyId,
      key_name: "test-key",
      model: "claude-test",
      provider: "anthropic",
      endpoint: "/v1/messages",
      stream: false,
      status: 200,
      input_uncached: 4,
      cache_read: 2000,
      cache_write: 500,
      output: 60,
      cost_usd: 0.003837,
      latency_ms: claude.latency_ms,
      ttfb_ms: claude.ttfb_ms,
      retries: 0,
      complete: true,
      error: null,
    });
    assert(claude.latency_ms >= 0 && claude.ttfb_ms >= 0);
    assertEquals([gpt.cost_usd, gpt.input_uncached, gpt.output], [null, 100, 7], "unpriced");
    assertEquals([busy.status, busy.error, busy.provider], [429, "rate_limit_error", "openai"]);
    assertEquals(
      [refused.status, refused.error, refused.provider, refused.cost_usd],
      [400, "model_not_found", null, null],
    );

    // Neither the stored entries nor the API hold any prompt or completion text.
    const raw: string[] = [];
    let stored = 0;
    for await (const e of s.t.gw.ctx.kv.list({ prefix: [] })) {
      raw.push(JSON.stringify(e.value, (_k, v) => typeof v === "bigint" ? String(v) : v));
      if (e.key[0] === "reqlog_rows") stored += JSON.parse(e.value as string).length;
    }
    assertEquals(stored, 4);
    for (const text of [...raw, JSON.stringify(page)]) {
      assert(!text.includes("cat-sat") && !text.includes("dog-ate"), text);
    }
  } finally {
    await s.close();
  }
});

Deno.test("request log: REQUEST_LOG_DAYS=0 logs nothing; usage is still recorded", async () => {
  const s = await startStack(upstream, { registry, config: { requestLogDays: 0 } });
  try {
    const res = await post(`${s.t.url}/v1/messages`, message("claude-test"), {
      "x-api-key": s.t.secret,
    });
    await res.arrayBuffer();
    const page = (await admin(s.t.url, "GET", "/admin/requests")).json;
    assertEquals(page.requests, []);
    const usage = (await admin(s.t.url, "GET", "/admin/usage")).json;
    assertEquals(usage.total_requests, 1);
  } finally {
    await s.close();
  }
});

/** An entry for the unit tests. */
function entry(over: Partial<RequestLogEntry>): RequestLogEntry {
  return {
    time: 0,
    key_id: "k1",
    model: "claude-test",
    provider: "anthropic",
    endpoint: "/v1/messages",
    stream: false,
    status: 200,
    input_uncached: 1,
    cache_read: 0,
    cache_write: 0,
    output: 1,
    cost_micro_usd: 18,
    latency_ms: 5,
    ttfb_ms: 5,
    retries: 0,
    complete: true,
    error: null,
    ...over,
  };
}

/** One request's usage line for the writer tests. */
const LINE = {
  model: "m",
  provider: "p",
  counters: {
    requests: 1,
    input_uncached: 1,
    cache_read: 0,
    cache_write: 0,
    output: 1,
    failed: 0,
    incomplete: 0,
    web_search_requests: 0,
    web_fetch_requests: 0,
    cost_micro_usd: 18,
    priced: 1,
    unpriced: 0,
  },
};

/** `kv` whose atomic operations report each `set` (key and expireIn) to `sets`. */
function spyingKv(kv: Deno.Kv, sets: [Deno.KvKey, unknown][]): Deno.Kv {
  const spyOp = (op: Deno.AtomicOperation): Deno.AtomicOperation => {
    const spy: Deno.AtomicOperation = new Proxy(op, {
      get(target, prop) {
        if (prop === "set") {
          return (key: Deno.KvKey, value: unknown, opts?: { expireIn?: number }) => {
            sets.push([key, opts?.expireIn]);
            target.set(key, value, opts);
            return spy;
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    return spy;
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") return () => spyOp(target.atomic());
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
}

/** The start of a 1024 ms slot of request ids (ULIDs sharing their first 8 characters). */
const SLOT0 = Math.ceil(Date.parse("2026-06-01T00:00:00Z") / 1024) * 1024;

Deno.test("request log: entries ride in their requests' usage commit, several to a row, kept REQUEST_LOG_DAYS", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const sets: [Deno.KvKey, unknown][] = [];
    const commits: number[] = [];
    const writer = new UsageWriter(spyingKv(kv, sets), new BucketClock("UTC"), 10_000, {
      onCommit: (_ms, n) => commits.push(n),
    });
    const ids = Array.from({ length: 11 }, (_, i) => newId(SLOT0 + i));
    for (let i = 0; i < 10; i++) {
      const e = entry({ time: SLOT0 + i, error: i === 0 ? "x".repeat(5000) : null });
      writer.record("k1", SLOT0 + 20, [LINE], requestLogRecord(ids[i], e, 3));
    }
    writer.record("k2", SLOT0 + 20, [], requestLogRecord(ids[10], entry({ key_id: "k2" }), 3));
    await writer.flush();
    assertEquals(commits.length, 1, "one commit carries the usage and the entries together");
    const slot = ids[0].slice(0, 8);
    assertEquals(sets.filter(([k]) => k[0] !== "usage_chain"), [
      [["reqlog_rows", slot, ids[0]], 3 * DAY],
      [["reqlog_key_rows", "k1", slot, ids[0]], 3 * DAY],
      [["reqlog_key_rows", "k2", slot, ids[10]], 3 * DAY],
    ], "eleven entries of one second: a row for the second and one per key");
    const page = await readRequestLog(kv, { limit: 100 });
    assertEquals(page.requests.map((r) => r.id), ids.toReversed());
    assertEquals(page.requests[10].error, "x".repeat(200), "error text is bounded");
    assertEquals(page.requests[9], { id: ids[1], ...entry({ time: SLOT0 + 1 }) });
    assertEquals(page.requests[0], { id: ids[10], ...entry({ key_id: "k2" }) });
    const k2 = await readRequestLog(kv, { limit: 100, keyId: "k2" });
    assertEquals(k2.requests.map((r) => r.id), [ids[10]]);
  } finally {
    kv.close();
  }
});

Deno.test("readRequestLog: a second's entries over several rows and commits page newest first", async () => {
  const kv = await Deno.openKv(":memory:");
  const sets: [Deno.KvKey, unknown][] = [];
  const writer = new UsageWriter(spyingKv(kv, sets), new BucketClock("UTC"), 10_000);
  try {
    // Ids of one second, recorded out of order over two commits; long errors fill rows.
    const ids = Array.from({ length: 500 }, (_, i) => newId(SLOT0 + i));
    const order = ids.map((_, i) => i).sort((a, b) => (a * 7919) % 500 - (b * 7919) % 500);
    for (const [n, i] of order.entries()) {
      const key = i % 2 === 0 ? "even" : "odd";
      const e = entry({ time: SLOT0 + i, key_id: key, error: "e".repeat(300), status: 200 + i });
      writer.record(key, SLOT0 + 600, [], requestLogRecord(ids[i], e, 7));
      if (n === 300) await writer.flush();
    }
    await writer.flush();
    const rows = sets.filter(([k]) => k[0] === "reqlog_rows").length;
    assert(rows > 2 && rows < 20, `${rows} rows for 500 entries`);
    const pages = async (q: Omit<Parameters<typeof readRequestLog>[1], "limit" | "cursor">) => {
      const got: number[] = [];
      let cursor: string | undefined;
      do {
        const p = await readRequestLog(kv, { ...q, limit: 37, cursor });
        got.push(...p.requests.map((r) => r.status - 200));
        cursor = p.nextCursor ?? undefined;
      } while (cursor);
      return got;
    };
    const want = (f: (i: number) => boolean) => ids.map((_, i) => i).filter(f).reverse();
    assertEquals(await pages({}), want(() => true));
    assertEquals(await pages({ keyId: "odd" }), want((i) => i % 2 === 1));
    assertEquals(
      await pages({ since: SLOT0 + 100, until: SLOT0 + 199, keyId: "even" }),
      want((i) => i >= 100 && i <= 199 && i % 2 === 0),
    );
  } finally {
    await writer.close();
    kv.close();
  }
});

Deno.test("readRequestLog: entries written one per row (before rows held several) are still read, in order", async () => {
  const kv = await Deno.openKv(":memory:");
  const writer = new UsageWriter(kv, new BucketClock("UTC"), 10_000);
  try {
    // Every third entry as written before: an entry row and a key index row.
    const ids = Array.from({ length: 60 }, (_, i) => newId(T0 + i * 300));
    for (const [i, id] of ids.entries()) {
      const key = i % 2 === 0 ? "k1" : "k2";
      const e = entry({ time: T0 + i * 300, key_id: key, model: i % 3 === 0 ? "old" : "new" });
      if (i % 3 === 0) {
        await kv.set(["reqlog", id], e, { expireIn: 7 * DAY });
        await kv.set(["reqlog_key", key, id], null, { expireIn: 7 * DAY });
      } else writer.record(key, T0 + i * 300, [], requestLogRecord(id, e, 7));
    }
    await writer.flush();
    const all: string[] = [];
    let cursor: string | undefined;
    do {
      const p = await readRequestLog(kv, { limit: 7, cursor });
      all.push(...p.requests.map((r) => r.id));
      cursor = p.nextCursor ?? undefined;
    } while (cursor);
    assertEquals(all, ids.toReversed());
    const k1 = await readRequestLog(kv, { limit: 100, keyId: "k1" });
    assertEquals(k1.requests.map((r) => r.id), ids.filter((_, i) => i % 2 === 0).reverse());
    assertEquals(k1.requests.at(-1), {
      id: ids[0],
      ...entry({ time: T0, key_id: "k1", model: "old" }),
    });
    const old = await readRequestLog(kv, { limit: 100, model: "old", since: T0 + 3000 });
    assertEquals(
      old.requests.map((r) => r.id),
      ids.filter((_, i) => i % 3 === 0 && i >= 10).reverse(),
    );
  } finally {
    kv.close();
  }
});

Deno.test("usage writer: a request whose log entry KV refuses is set aside alone, with its usage", async () => {
  const kv = await Deno.openKv(":memory:");
  const rejected: string[] = [];
  const writer = new UsageWriter(kv, new BucketClock("UTC"), 10_000, {
    onRejected: (keyId) => rejected.push(keyId),
  });
  try {
    const at = Date.parse("2026-06-01T00:00:00Z");
    // A value over KV's 64 KiB limit.
    writer.record(
      "poison",
      at,
      [],
      requestLogRecord(newId(at), entry({ model: "m".repeat(70_000) }), 7),
    );
    const ids = Array.from({ length: 5 }, (_, i) => newId(at + i));
    for (const id of ids) {
      writer.record("good", at, [], requestLogRecord(id, entry({ key_id: "good" }), 7));
    }
    await writer.flush();
    assertEquals(rejected, ["poison"]);
    const page = await readRequestLog(kv, { limit: 100 });
    assertEquals(page.requests.map((r) => r.id), ids.toReversed());
  } finally {
    kv.close();
  }
});

/** A KV holding `n` entries a second apart from T0, keys and models and statuses varied. */
async function filled(n: number, over: (i: number) => Partial<RequestLogEntry> = () => ({})) {
  const kv = await Deno.openKv(":memory:");
  const writer = new UsageWriter(kv, new BucketClock("UTC"), 10_000);
  const ids: string[] = [];
  for (let i = 0; i < n; i++) {
    const time = T0 + i * 1000;
    const id = newId(time);
    ids.push(id);
    writer.record("x", time, [], requestLogRecord(id, entry({ time, ...over(i) }), 7));
  }
  await writer.flush();
  return { kv, ids };
}

const T0 = Date.parse("2026-06-01T00:00:00Z");

Deno.test("readRequestLog: pages newest first, each entry once, filters by key, model, status, time", async () => {
  const { kv, ids } = await filled(250, (i) => ({
    key_id: i % 3 === 0 ? "k3" : "k1",
    model: i % 5 === 0 ? "gpt-test" : "claude-test",
    status: i % 7 === 0 ? 429 : i % 11 === 0 ? 503 : 200,
  }));
  try {
    const all: string[] = [];
    let cursor: string | undefined;
    let pages = 0;
    do {
      const p = await readRequestLog(kv, { limit: 40, cursor });
      all.push(...p.requests.map((r) => r.id));
      cursor = p.nextCursor ?? undefined;
      pages++;
    } while (cursor);
    assertEquals(all, ids.toReversed(), "every entry once, newest first");
    assertEquals(pages, 7);

    const times = (q: Parameters<typeof readRequestLog>[1]) =>
      readRequestLog(kv, q).then((p) => p.requests.map((r) => (r.time - T0) / 1000));
    const want = (f: (i: number) => boolean) =>
      Array.from({ length: 250 }, (_, i) => i).filter(f).reverse();
    assertEquals(await times({ limit: 1000, keyId: "k3" }), want((i) => i % 3 === 0));
    assertEquals(await times({ limit: 1000, model: "gpt-test" }), want((i) => i % 5 === 0));
    assertEquals(
      await times({ limit: 1000, status: { min: 429, max: 429 } }),
      want((i) => i % 7 === 0),
    );
    assertEquals(
      await times({ limit: 1000, status: { min: 500, max: 599 } }),
      want((i) => i % 7 !== 0 && i % 11 === 0),
    );
    assertEquals(
      await times({ limit: 1000, since: T0 + 100_000, until: T0 + 109_000 }),
      want((i) => i >= 100 && i <= 109),
      "both ends inclusive",
    );
    // Filters combine, and the key's index pages with a cursor too.
    const k3gpt: number[] = [];
    cursor = undefined;
    do {
      const p = await readRequestLog(kv, { limit: 3, keyId: "k3", model: "gpt-test", cursor });
      k3gpt.push(...p.requests.map((r) => (r.time - T0) / 1000));
      cursor = p.nextCursor ?? undefined;
    } while (cursor);
    assertEquals(k3gpt, want((i) => i % 15 === 0));
    assertEquals(await times({ limit: 1000, keyId: "nobody" }), []);
  } finally {
    kv.close();
  }
});

Deno.test("readRequestLog: a rare filter stops after MAX_SCAN entries with a cursor to go on", async () => {
  const n = MAX_SCAN + 50;
  const { kv } = await filled(n, (i) => ({ status: i === 10 ? 500 : 200 }));
  try {
    const q = { limit: 10, status: { min: 500, max: 599 } };
    const first = await readRequestLog(kv, q);
    assertEquals(first.requests, [], "the match is older than the first 10,000 entries");
    assert(first.nextCursor !== null);
    const second = await readRequestLog(kv, { ...q, cursor: first.nextCursor! });
    assertEquals(second.requests.map((r) => r.time), [T0 + 10_000]);
    assertEquals(second.nextCursor, null);
  } finally {
    kv.close();
  }
});

Deno.test("GET /admin/requests: filters, paging, retention window, and bad parameters as admin 400s", async () => {
  const clock = fakeClock("2026-06-10T12:00:00Z");
  const s = await startStack(upstream, {
    registry,
    clock,
    config: { usageTz: "Asia/Shanghai", requestLogDays: 7 },
  });
  try {
    const { url, secret, keyId } = s.t;
    const other = await admin(url, "POST", "/admin/keys", { name: "other" });
    const send = async (at: string, model: string, key = secret) => {
      clock.set(at);
      const path = model.startsWith("gpt") ? "/v1/chat/completions" : "/v1/messages";
      await (await post(`${url}${path}`, message(model), { "x-api-key": key })).arrayBuffer();
    };
    await send("2026-06-01T12:00:00Z", "claude-test"); // outside the 7-day window at the end
    await send("2026-06-09T15:59:59Z", "claude-test"); // 2026-06-09 23:59:59 in Shanghai
    await send("2026-06-09T16:00:00Z", "gpt-test"); // 2026-06-10 00:00 in Shanghai
    await send("2026-06-10T01:00:00Z", "gpt-busy", other.json.api_key as string);
    await send("2026-06-10T02:00:00Z", "claude-test", other.json.api_key as string);
    clock.set("2026-06-10T12:00:00Z");

    const list = async (query: string) => {
      const r = await admin(url, "GET", `/admin/requests${query}`);
      assertEquals(r.status, 200, `${query}: ${JSON.stringify(r.json)}`);
      return r.json as Json;
    };
    const times = async (query: string) =>
      (await list(query)).requests.map((r: Json) => r.time.slice(0, 19));
    assertEquals(await times(""), [
      "2026-06-10T02:00:00",
      "2026-06-10T01:00:00",
      "2026-06-09T16:00:00",
      "2026-06-09T15:59:59",
    ], "entries older than REQUEST_LOG_DAYS are not shown");
    assertEquals(await times(`?key=${keyId}`), ["2026-06-09T16:00:00", "2026-06-09T15:59:59"]);
    assertEquals(await times("?model=gpt-busy"), ["2026-06-10T01:00:00"]);
    assertEquals(await times("?status=429"), ["2026-06-10T01:00:00"]);
    assertEquals(await times("?status=4xx"), ["2026-06-10T01:00:00"]);
    assertEquals((await times("?status=2XX")).length, 3);
    // Days are USAGE_TZ days: 2026-06-10 in Shanghai begins at 16:00 UTC on the 9th.
    assertEquals(await times("?since=2026-06-10&until=2026-06-10"), [
      "2026-06-10T02:00:00",
      "2026-06-10T01:00:00",
      "2026-06-09T16:00:00",
    ]);
    assertEquals(await times("?until=2026-06-09"), ["2026-06-09T15:59:59"]);
    assertEquals(await times("?since=2026-06-10T01:00:00Z&until=2026-06-10T09:30:00%2B08:00"), [
      "2026-06-10T01:00:00",
    ]);
    const first = await list("?limit=3");
    assertEquals(first.requests.length, 3);
    const rest = await list(`?limit=3&cursor=${first.next_cursor}`);
    assertEquals(rest.requests.map((r: Json) => r.time.slice(0, 19)), ["2026-06-09T15:59:59"]);
    assertEquals(rest.next_cursor, null);
    assertEquals(
      (await list(`?key=${other.json.id}`)).requests.map((r: Json) => r.key_name),
      ["other", "other"],
    );

    for (
      const [query, code] of [
        ["?status=abc", "invalid_status"],
        ["?status=600", "invalid_status"],
        ["?limit=0", "invalid_limit"],
        ["?limit=1001", "invalid_limit"],
        ["?limit=2.5", "invalid_limit"],
        ["?since=yesterday", "invalid_time"],
        ["?since=2026-06-10T01:00:00", "invalid_time"],
        ["?since=2026-02-30", "invalid_date"],
        ["?since=2026-06-10&until=2026-06-09", "invalid_time_range"],
        ["?cursor=not-a-cursor", "invalid_cursor"],
        [`?model=${"m".repeat(300)}`, "invalid_model"],
      ]
    ) {
      const r = await admin(url, "GET", `/admin/requests${query}`);
      assertEquals(r.status, 400, query);
      assertEquals((r.json as Json).error.code, code, query);
      assertEquals(typeof r.json.detail, "string");
    }
    const unknown = await admin(url, "GET", "/admin/requests?key=01J00000000000000000000000");
    assertEquals(unknown.status, 404);
    const noAdmin = await fetch(`${url}/admin/requests`, { headers: { "x-api-key": secret } });
    assertEquals(noAdmin.status, 403);
    await noAdmin.arrayBuffer();
  } finally {
    await s.close();
  }
});

Deno.test("requests command: a table and the API's JSON, filtered as the API filters", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/gw.kv`;
  const kv = await Deno.openKv(kvPath);
  const s = await startStack(upstream, { registry, kv });
  try {
    const h = { "x-api-key": s.t.secret };
    for (const model of ["claude-test", "gpt-test", "gpt-busy"]) {
      const path = model.startsWith("gpt") ? "/v1/chat/completions" : "/v1/messages";
      await (await post(`${s.t.url}${path}`, message(model), h)).arrayBuffer();
    }
    await s.t.gw.ctx.usageWriter.flush();
    const run = async (args: string[]) => {
      const out: string[] = [], err: string[] = [];
      const status = await runCli(args, {
        out: (l) => out.push(l),
        err: (l) => err.push(l),
        env: { KV_PATH: kvPath },
      });
      return { status, out: out.join("\n"), err: err.join("\n") };
    };
    const table = await run(["requests", "--key", s.t.keyId]);
    assertEquals(table.status, 0, table.err);
    const lines = table.out.split("\n");
    assertIncludes(lines[0], "COST_USD");
    assertEquals(lines.length, 5, "head, three requests, the time zone note");
    assert(/gpt-busy\s+openai\s+429\b.*rate_limit_error$/.test(lines[1]), lines[1]);
    assert(
      /claude-test\s+anthropic\s+200\s+4\s+2000\s+500\s+60\s+0\.003837\b/.test(lines[3]),
      lines[3],
    );
    assert(/gpt-test\s+openai\s+200\s+100\s+0\s+0\s+7\s+-\s/.test(lines[2]), lines[2]);

    const json = await run(["requests", "--json", "--status", "2xx", "--limit", "1"]);
    const api = (await admin(s.t.url, "GET", "/admin/requests?status=2xx&limit=1")).json;
    assertEquals(JSON.parse(json.out), api);
    const more = await run(["requests", "--status", "2xx", "--limit", "1"]);
    assertIncludes(more.out, `more: --cursor ${api.next_cursor}`);

    const bad = await run(["requests", "--status", "abc"]);
    assertEquals(bad.status, 2);
    assertIncludes(bad.err, "--status must be an HTTP status");
    const help = await run(["requests", "--help"]);
    assertEquals(help.status, 0);
    assertIncludes(help.out, "Entries are kept REQUEST_LOG_DAYS days");
  } finally {
    await s.close();
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
