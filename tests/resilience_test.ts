/**
 * Resilience end to end, against fault-injecting fake upstreams: fallback,
 * retries, timeouts, broken and silent streams, circuit breaker, client
 * disconnects. For each: what the client receives, which provider served,
 * and the usage recorded.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { rawServer, reset, writeChunk, writeSseHead } from "./support/faults.ts";
import { ADMIN_KEY, startTestGateway, type TestGateway } from "./support/gateway.ts";
import { fakeUpstream, untilAborted, UNUSED_URL } from "./support/upstream.ts";
import { chunkedResponse } from "./support/streams.ts";
import { anthropicSse } from "./support/replies.ts";
import { delay, waitFor } from "./support/wait.ts";
import { parseRegistry } from "../lib/config/registry.ts";
import type { UsageRow } from "../lib/store/usage/reader.ts";

const START = anthropicSse.start({
  input_tokens: 10,
  cache_read_input_tokens: 5,
  output_tokens: 1,
});
const DELTA = anthropicSse.delta();
const END = anthropicSse.end({ output_tokens: 20 }, { stop_reason: "end_turn" });
const OK_JSON = { type: "message", usage: { input_tokens: 3, output_tokens: 4 } };

/** Two Anthropic providers on one chain (`claude*`: a then b) with short test timeouts. */
function chain(aUrl: string, bUrl: string, policy: Record<string, unknown> = {}) {
  const provider = (url: string) => ({
    format: "anthropic",
    base_url: url,
    api_key_env: "KEY",
  });
  return parseRegistry({
    providers: { a: provider(aUrl), b: provider(bUrl) },
    routing: { claude: ["a", "b"], solo: ["a"] },
    defaults: {
      timeouts: {
        connect_ms: 1000,
        ttfb_ms: 400,
        stream_ttfb_ms: 400,
        idle_ms: 300,
        total_ms: 10_000,
      },
      retries: { max: 1, base_delay_ms: 10, max_delay_ms: 50, deadline_ms: 5000 },
      breaker: { failures: 3, cooldown_ms: 400 },
      ...policy,
    },
  });
}

async function gateway(aUrl: string, bUrl: string, policy?: Record<string, unknown>) {
  return await startTestGateway({
    registry: chain(aUrl, bUrl, policy),
    env: { KEY: "upstream-key" },
  });
}

async function settled(t: TestGateway): Promise<UsageRow[]> {
  await t.gw.ctx.inflight.idle(5000);
  return await t.gw.ctx.usageReader.byKey(t.keyId);
}

function call(t: TestGateway, model: string, stream = false, signal?: AbortSignal) {
  return fetch(`${t.url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": t.secret, "content-type": "application/json" },
    body: JSON.stringify({ model, stream, max_tokens: 5 }),
    signal,
  });
}

const jsonUp = () => fakeUpstream(() => Response.json(OK_JSON));

Deno.test("529 on the first provider: one retry there, then the next provider serves", async () => {
  const a = fakeUpstream(() =>
    Response.json({ type: "error", error: { type: "overloaded_error", message: "Overloaded" } }, {
      status: 529,
    })
  );
  const b = jsonUp();
  const t = await gateway(a.url, b.url);
  try {
    const res = await call(t, "claude-x");
    assertEquals(res.status, 200);
    assertEquals(await res.json(), OK_JSON);
    assertEquals(a.seen.length, 2, "first attempt + one retry");
    assertEquals(b.seen.length, 1);
    const [row] = await settled(t);
    assertEquals(row.provider, "b", "usage records the provider that served");
    assertEquals(row.counters.requests, 1, "one client request is one request");
    assertEquals(row.counters.failed, 0);
    assertEquals(row.counters.input_uncached, 3);
    const line = t.logs.map((l) => JSON.parse(l)).find((l) => l.msg === "request");
    assertEquals(line.provider, "b");
    assertEquals(line.tried, ["a", "a", "b"]);
    assertEquals(line.retries, 2);
  } finally {
    await t.close();
    await a.close();
    await b.close();
  }
});

Deno.test("429 with retry-after-ms is waited for and retried on the same provider", async () => {
  let n = 0;
  const a = fakeUpstream(() =>
    n++ === 0
      ? Response.json(
        { type: "error", error: { type: "rate_limit_error", message: "slow down" } },
        {
          status: 429,
          headers: { "retry-after-ms": "120" },
        },
      )
      : Response.json(OK_JSON)
  );
  const t = await gateway(a.url, UNUSED_URL);
  try {
    const t0 = performance.now();
    const res = await call(t, "solo-x");
    assertEquals(res.status, 200);
    await res.body?.cancel();
    assert(performance.now() - t0 >= 110, "waited for retry-after-ms");
    assertEquals(a.seen.length, 2);
  } finally {
    await t.close();
    await a.close();
  }
});

Deno.test("a 400 is the caller's fault: passed through, never retried or fallen back", async () => {
  const body = {
    type: "error",
    error: { type: "invalid_request_error", message: "max_tokens: bad" },
  };
  const a = fakeUpstream(() =>
    Response.json(body, { status: 400, headers: { "request-id": "r4" } })
  );
  const b = jsonUp();
  const t = await gateway(a.url, b.url);
  try {
    const res = await call(t, "claude-x");
    assertEquals(res.status, 400);
    assertEquals(res.headers.get("request-id"), "r4");
    assertEquals(await res.json(), body);
    assertEquals(a.seen.length, 1);
    assertEquals(b.seen.length, 0);
    const [row] = await settled(t);
    assertEquals(row.counters.failed, 1);
  } finally {
    await t.close();
    await a.close();
    await b.close();
  }
});

Deno.test("every provider failing with 500: the client gets the last upstream error as it came", async () => {
  const errBody = (who: string) => ({
    type: "error",
    error: { type: "api_error", message: `boom ${who}` },
  });
  const a = fakeUpstream(() => Response.json(errBody("a"), { status: 500 }));
  const b = fakeUpstream(() =>
    Response.json(errBody("b"), { status: 503, headers: { "request-id": "rb" } })
  );
  const t = await gateway(a.url, b.url);
  try {
    const res = await call(t, "claude-x");
    assertEquals(res.status, 503);
    assertEquals(res.headers.get("request-id"), "rb");
    assertEquals(await res.json(), errBody("b"));
    const [row] = await settled(t);
    assertEquals(row.provider, "b");
    assertEquals(row.counters.failed, 1);
  } finally {
    await t.close();
    await a.close();
    await b.close();
  }
});

Deno.test("connection reset before headers falls back; with nothing left, 502 names the providers", async () => {
  const a = rawServer((conn) => Promise.resolve(reset(conn)));
  const b = rawServer((conn) => Promise.resolve(reset(conn)));
  const ok = jsonUp();
  const t = await gateway(a.url, ok.url);
  const t2 = await gateway(a.url, b.url);
  try {
    const res = await call(t, "claude-x");
    assertEquals(res.status, 200);
    await res.body?.cancel();
    const res2 = await call(t2, "claude-x");
    assertEquals(res2.status, 502);
    const j = await res2.json();
    assertEquals(j.type, "error");
    assertEquals(j.error.type, "api_error");
    assertIncludes(j.error.message, "tried a, b");
    const [row] = await settled(t2);
    assertEquals(row.counters.failed, 1);
    assertEquals(row.counters.requests, 1);
  } finally {
    await t.close();
    await t2.close();
    a.close();
    b.close();
    await ok.close();
  }
});

Deno.test("an upstream that hangs before headers times out: fallback, or 504 in the native shape", async () => {
  const hang = fakeUpstream((s) => untilAborted(s));
  const ok = jsonUp();
  const t = await gateway(hang.url, ok.url, { retries: { max: 0 } });
  try {
    const res = await call(t, "claude-x");
    assertEquals(res.status, 200);
    await res.body?.cancel();
    const t0 = performance.now();
    const solo = await call(t, "solo-x");
    assertEquals(solo.status, 504);
    const j = await solo.json();
    assertEquals(j.error.type, "timeout_error");
    assertIncludes(j.error.message, "no response within");
    assert(performance.now() - t0 < 2000);
  } finally {
    await t.close();
    await hang.close();
    await ok.close();
  }
});

Deno.test("reset mid-stream: the client gets what was sent, then a native error event; usage incomplete", async () => {
  const a = rawServer(async (conn) => {
    await writeSseHead(conn);
    await writeChunk(conn, START);
    await writeChunk(conn, DELTA);
    await delay(50);
    reset(conn);
  });
  const t = await gateway(a.url, UNUSED_URL);
  try {
    const res = await call(t, "solo-x", true);
    assertEquals(res.status, 200);
    const text = await res.text();
    assert(text.startsWith(START + DELTA), "bytes already sent reach the client unchanged");
    assertIncludes(text, "event: error\ndata: ");
    const err = JSON.parse(text.slice(text.lastIndexOf("data: ") + 6));
    assertEquals(err.type, "error");
    assertEquals(err.error.type, "api_error");
    assertEquals(a.count, 1, "never retried once bytes reached the client");
    const [row] = await settled(t);
    assertEquals(row.counters.incomplete, 1);
    assertEquals(row.counters.failed, 1);
    assertEquals(row.counters.input_uncached, 10, "usage seen so far is kept");
    assertEquals(row.counters.cache_read, 5);
  } finally {
    await t.close();
    a.close();
  }
});

Deno.test("a stream silent past idle_ms ends with an error event; usage so far recorded as incomplete", async () => {
  let cancelled = false;
  // START, then a slow drip of deltas.
  const a = fakeUpstream(() =>
    chunkedResponse(
      (function* () {
        yield START;
        for (;;) yield DELTA;
      })(),
      { gapMs: 2000, onCancel: () => cancelled = true },
    )
  );
  const t = await gateway(a.url, UNUSED_URL);
  try {
    const t0 = performance.now();
    const res = await call(t, "solo-x", true);
    const text = await res.text();
    assert(performance.now() - t0 < 1500, "ended by the idle limit, not by the upstream");
    assert(text.startsWith(START));
    assertIncludes(text, "silent for");
    const [row] = await settled(t);
    assertEquals(row.counters.incomplete, 1);
    assertEquals(row.counters.input_uncached, 10);
    await waitFor("the upstream saw the cancellation", () => cancelled);
  } finally {
    await t.close();
    await a.close();
  }
});

Deno.test("malformed SSE and a huge event pass through untouched; usage still counted", async () => {
  const huge =
    `event: content_block_delta\ndata: {"type":"content_block_delta","delta":{"type":"text_delta","text":"${
      "x".repeat(9 * 1024 * 1024)
    }"}}\n\n`;
  const body = START + "data: {not json\n\n: comment\n\nevent: message_delta\ndata: [\n\n" + huge +
    END;
  const a = fakeUpstream(() =>
    new Response(body, { headers: { "content-type": "text/event-stream" } })
  );
  const t = await gateway(a.url, UNUSED_URL, { timeouts: { idle_ms: 5000 } });
  try {
    const res = await call(t, "solo-x", true);
    assertEquals(await res.text(), body);
    const [row] = await settled(t);
    assertEquals(row.counters.input_uncached, 10);
    assertEquals(row.counters.output, 20);
    assertEquals(row.counters.incomplete, 0);
  } finally {
    await t.close();
    await a.close();
  }
});

Deno.test("breaker: opens after repeated failures, skips the provider, then one probe closes it", async () => {
  let healthy = false;
  const a = fakeUpstream(() =>
    healthy
      ? Response.json(OK_JSON)
      : Response.json({ type: "error", error: { type: "api_error", message: "x" } }, {
        status: 500,
      })
  );
  const b = jsonUp();
  const t = await gateway(a.url, b.url, {
    retries: { max: 0 },
    breaker: { failures: 2, cooldown_ms: 300 },
  });
  const adminModels = async () => {
    const r = await fetch(`${t.url}/admin/models`, {
      headers: { "x-api-key": ADMIN_KEY },
    });
    const j = await r.json();
    return j.providers.find((p: { id: string }) => p.id === "a");
  };
  try {
    for (let i = 0; i < 2; i++) await (await call(t, "claude-x")).body?.cancel();
    assertEquals(a.seen.length, 2);
    const open = await adminModels();
    assertEquals(open.breaker.state, "open");
    assertEquals(open.recent_error.status, 500);
    assertEquals(open.has_api_key, true);
    await (await call(t, "claude-x")).body?.cancel();
    assertEquals(a.seen.length, 2, "skipped while open");
    assertEquals(b.seen.length, 3);
    // solo-x has no other provider: the open breaker never refuses it (panic mode).
    const solo = await call(t, "solo-x");
    assertEquals(solo.status, 500, "the upstream's own answer, not a gateway 503");
    await solo.body?.cancel();
    assertEquals(a.seen.length, 3, "the only provider still got the request");

    await delay(350); // the cooldown
    healthy = true;
    const probe = await call(t, "claude-x");
    assertEquals(probe.status, 200);
    await probe.body?.cancel();
    assertEquals(a.seen.length, 4, "one probe went through");
    const closed = await adminModels();
    assertEquals(closed.breaker.state, "closed");
    assert(closed.last_success);
    assert(typeof closed.latency_ms === "number");
  } finally {
    await t.close();
    await a.close();
    await b.close();
  }
});

Deno.test("breaker: a single-provider chain is never refused by its own breaker (panic)", async () => {
  let failures = 6;
  const a = fakeUpstream(() =>
    failures-- > 0
      ? Response.json({ type: "error", error: { type: "api_error", message: "x" } }, {
        status: 500,
      })
      : Response.json(OK_JSON)
  );
  const b = jsonUp();
  // The default breaker: five consecutive failures open it for 30 s.
  const t = await gateway(a.url, b.url, { retries: { max: 0 } });
  try {
    for (let i = 0; i < 6; i++) {
      const r = await call(t, "solo-x");
      assertEquals(r.status, 500);
      await r.body?.cancel();
    }
    assertEquals(a.seen.length, 6, "every failing request reached the provider");
    // The provider has recovered; its breaker is still open, and no other provider can serve.
    const ok = await call(t, "solo-x");
    assertEquals(ok.status, 200);
    await ok.body?.cancel();
    assertEquals(a.seen.length, 7);
  } finally {
    await t.close();
    await a.close();
    await b.close();
  }
});

/** START, seven deltas and END, 40 ms apart. */
function slowStream(onCancel: () => void, onEnd?: () => void) {
  return chunkedResponse([START, ...Array(7).fill(DELTA), END], { gapMs: 40, onCancel, onEnd });
}

Deno.test("client disconnect cancels the upstream within 100 ms; usage so far is incomplete", async () => {
  let cancelledAt = 0;
  const a = fakeUpstream(() => slowStream(() => cancelledAt = performance.now()));
  const t = await gateway(a.url, UNUSED_URL, { timeouts: { idle_ms: 5000 } });
  try {
    const ac = new AbortController();
    const res = await call(t, "solo-x", true, ac.signal);
    const reader = res.body!.getReader();
    await reader.read();
    const abortedAt = performance.now();
    ac.abort();
    await waitFor("the upstream saw the cancellation", () => cancelledAt > 0);
    assert(
      cancelledAt - abortedAt < 100,
      `cancelled after ${Math.round(cancelledAt - abortedAt)} ms`,
    );
    const [row] = await settled(t);
    assertEquals(row.counters.incomplete, 1);
    assertEquals(row.counters.input_uncached, 10);
  } finally {
    await t.close();
    await a.close();
  }
});

Deno.test("on_disconnect drain: the upstream is read to its end and exact usage recorded", async () => {
  let ended = false, cancelled = false;
  const a = fakeUpstream(() => slowStream(() => cancelled = true, () => ended = true));
  const t = await gateway(a.url, UNUSED_URL, {
    timeouts: { idle_ms: 5000 },
    on_disconnect: "drain",
  });
  try {
    const ac = new AbortController();
    const res = await call(t, "solo-x", true, ac.signal);
    await res.body!.getReader().read();
    ac.abort();
    const [row] = await settled(t);
    assert(ended && !cancelled, "the upstream finished");
    assertEquals(row.counters.incomplete, 0);
    assertEquals(row.counters.output, 20);
  } finally {
    await t.close();
    await a.close();
  }
});

Deno.test("client disconnect before the response: the upstream request is cancelled, usage incomplete", async () => {
  let abortedAt = 0;
  const a = fakeUpstream((s) => untilAborted(s, () => abortedAt = performance.now()));
  const t = await gateway(a.url, UNUSED_URL, { timeouts: { ttfb_ms: 5000 } });
  try {
    const ac = new AbortController();
    const pending = call(t, "solo-x", false, ac.signal).catch(() => undefined);
    await waitFor("the request reached the upstream", () => a.seen.length > 0);
    const at = performance.now();
    ac.abort();
    await pending;
    await waitFor("the upstream saw the cancellation", () => abortedAt > 0);
    assert(abortedAt - at < 100, `cancelled after ${Math.round(abortedAt - at)} ms`);
    const [row] = await settled(t);
    assertEquals(row.counters.requests, 1);
    assertEquals(row.counters.incomplete, 1);
  } finally {
    await t.close();
    await a.close();
  }
});
