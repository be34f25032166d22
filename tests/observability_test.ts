/**
 * Metrics scraped after real traffic and parsed; request log lines parsed
 * and checked for their fields and for the absence of secrets and text.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { ADMIN_KEY, post, startStack, startTestGateway, TEST_ENV } from "./support/gateway.ts";
import { bodyJson, fakeUpstream, type Seen } from "./support/upstream.ts";
import { sseResponse } from "./support/streams.ts";
import { parseRegistry } from "../lib/config/registry.ts";

const PROMPT = "PROMPT-TEXT-never-logged";
const COMPLETION = "COMPLETION-TEXT-never-logged";

function upstream(s: Seen): Response {
  const b = bodyJson(s);
  if (b.model === "claude-broken") {
    return Response.json({ type: "error", error: { type: "api_error", message: "x" } }, {
      status: 500,
    });
  }
  if (b.stream) {
    return sseResponse([
      `event: message_start\ndata: {"type":"message_start","message":{"id":"m","usage":{"input_tokens":1000000,"cache_read_input_tokens":2000000,"output_tokens":1}}}`,
      `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,"delta":{"type":"text_delta","text":"${COMPLETION}"}}`,
      `event: message_delta\ndata: {"type":"message_delta","delta":{},"usage":{"output_tokens":1000000}}`,
      `event: message_stop\ndata: {"type":"message_stop"}`,
    ], { "request-id": "req_up" });
  }
  return Response.json({
    type: "message",
    content: [{ type: "text", text: COMPLETION }],
    usage: { input_tokens: 10, output_tokens: 20 },
  });
}

function registry(url: string) {
  return parseRegistry({
    providers: {
      anthropic: { format: "anthropic", base_url: url, api_key_env: "ANTHROPIC_TEST_KEY" },
    },
    routing: { claude: ["anthropic"] },
    defaults: { retries: { max: 0 } },
    known_models: [{
      id: "claude-priced",
      provider: "anthropic",
      pricing: { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75 },
    }],
  });
}

/** Parses Prometheus text into "name{labels}" -> value. */
function parseMetrics(text: string): Map<string, number> {
  const out = new Map<string, number>();
  for (const line of text.split("\n")) {
    if (!line || line.startsWith("#")) continue;
    const m = /^([a-zA-Z_:][a-zA-Z0-9_:]*)(\{.*\})? (\S+)$/.exec(line);
    assert(m, `bad exposition line: ${line}`);
    out.set(m[1] + (m[2] ?? ""), Number(m[3]));
  }
  return out;
}

async function traffic(perKey: boolean, metricsPublic = false) {
  const stack = await startStack(upstream, {
    registry,
    config: { metricsPerKey: perKey, metricsPublic },
  });
  const { t } = stack;
  const h = { "x-api-key": t.secret, "anthropic-version": "2023-06-01" };
  const messages = [{ role: "user", content: PROMPT }];
  const r1 = await post(
    `${t.url}/v1/messages`,
    { model: "claude-priced", stream: true, messages },
    h,
  );
  const r1Text = await r1.text();
  const r2 = await post(`${t.url}/v1/messages`, { model: "claude-priced", messages }, h);
  await r2.arrayBuffer();
  const r3 = await post(`${t.url}/v1/messages`, { model: "claude-broken", messages }, h);
  await r3.arrayBuffer();
  await t.gw.ctx.inflight.idle(2000);
  await t.gw.ctx.usageWriter.flush();
  return { ...stack, responses: [r1, r2, r3], r1Text };
}

Deno.test("metrics: requests, tokens, cost, latency, in-flight, breaker and KV writes after traffic", async () => {
  const { t, close } = await traffic(false);
  try {
    const denied = await fetch(`${t.url}/metrics`);
    assertEquals(denied.status, 401);
    await denied.body?.cancel();
    const res = await fetch(`${t.url}/metrics`, { headers: { "x-api-key": ADMIN_KEY } });
    assertEquals(res.status, 200);
    assertIncludes(res.headers.get("content-type")!, "text/plain");
    const text = await res.text();
    const m = parseMetrics(text);
    const req = (model: string, cls: string) =>
      m.get(
        `gateway_requests_total{endpoint="/v1/messages",model="${model}",provider="anthropic",status_class="${cls}"}`,
      );
    assertEquals(req("claude-priced", "2xx"), 2);
    // Not a known model: labelled by the routing prefix that served it.
    assertEquals(req("claude*", "5xx"), 1);
    assertEquals(
      m.get('gateway_tokens_total{model="claude-priced",type="input_uncached"}'),
      1000010,
    );
    assertEquals(m.get('gateway_tokens_total{model="claude-priced",type="cache_read"}'), 2000000);
    assertEquals(m.get('gateway_tokens_total{model="claude-priced",type="output"}'), 1000020);
    // 1M input x $3 + 2M cache reads x $0.30 + 1M output x $15, plus the small JSON call.
    const cost = m.get('gateway_cost_usd_total{model="claude-priced"}')!;
    assert(Math.abs(cost - (3 + 0.6 + 15 + (10 * 3 + 20 * 15) / 1e6)) < 1e-9, `cost ${cost}`);
    assertEquals(m.get('gateway_request_duration_seconds_count{endpoint="/v1/messages"}'), 3);
    assertEquals(m.get('gateway_time_to_first_byte_seconds_count{endpoint="/v1/messages"}'), 3);
    assertEquals(m.get('gateway_upstream_response_seconds_count{provider="anthropic"}'), 2);
    assertEquals(m.get('gateway_upstream_errors_total{provider="anthropic",kind="status"}'), 1);
    assertEquals(m.get("gateway_in_flight_requests"), 0);
    assertEquals(m.get("gateway_open_streams"), 0);
    assertEquals(m.get('gateway_breaker_state{provider="anthropic"}'), 0);
    assertEquals(m.get('gateway_provider_configured{provider="anthropic"}'), 1);
    assert(m.get("gateway_kv_write_seconds_count")! >= 1);
    assert(!text.includes("key_id"), "no per-key labels unless METRICS_PER_KEY");
    assert(!text.includes(t.secret) && !text.includes(TEST_ENV.ANTHROPIC_TEST_KEY));
  } finally {
    await close();
  }
});

Deno.test("metrics: METRICS_PER_KEY adds key ids; METRICS_PUBLIC drops the admin key requirement", async () => {
  const { t, close } = await traffic(true, true);
  try {
    const res = await fetch(`${t.url}/metrics`);
    assertEquals(res.status, 200);
    const m = parseMetrics(await res.text());
    assertEquals(
      m.get(
        `gateway_requests_total{endpoint="/v1/messages",model="claude-priced",provider="anthropic",status_class="2xx",key_id="${t.keyId}"}`,
      ),
      2,
    );
  } finally {
    await close();
  }
});

Deno.test("logs: one JSON line per request with ids, tokens, cost and timings; never secrets or text", async () => {
  const { t, close, responses, r1Text } = await traffic(false);
  try {
    assertIncludes(r1Text, COMPLETION, "the client did get the text");
    const lines = t.logs.map((l) => JSON.parse(l));
    const start = lines.find((l) => l.msg === "gateway listening");
    assert(
      start.address && start.kv && start.admin_api,
      "start-up line names address, KV, admin API",
    );
    assertEquals(start.models, 1);
    const reqs = lines.filter((l) => l.msg === "request");
    assertEquals(reqs.length, 3);
    const [stream, json, broken] = reqs;
    for (
      const f of [
        "request_id",
        "key_id",
        "model",
        "provider",
        "status",
        "latency_ms",
        "ttfb_ms",
        "retries",
        "incomplete",
      ]
    ) {
      assert(f in stream, `field ${f}`);
    }
    assertEquals(stream.key_id, t.keyId);
    assertEquals(stream.output, 1000000);
    assertEquals(stream.cache_read, 2000000);
    assertEquals(stream.cost_usd, 18.6);
    assertEquals(stream.upstream_request_id, "req_up");
    assertEquals(
      responses[0].headers.get("x-request-id"),
      stream.request_id,
      "id returned to the client",
    );
    assertEquals(json.status, 200);
    assertEquals(broken.status, 500);
    assertEquals(broken.cost_usd, null, "no pricing for that model");
    assert(/^[0-9A-HJKMNP-TV-Z]{26}$/.test(stream.request_id), "request id is a ULID");
    for (const raw of t.logs) {
      for (const secret of [t.secret, TEST_ENV.ANTHROPIC_TEST_KEY, ADMIN_KEY, PROMPT, COMPLETION]) {
        assert(!raw.includes(secret), `log line leaks ${secret.slice(0, 12)}...`);
      }
    }
  } finally {
    await close();
  }
});

Deno.test("logs: LOG_FORMAT=pretty writes readable lines; LOG_LEVEL=warn drops request lines", async () => {
  const up = fakeUpstream(upstream);
  const pretty = await startTestGateway({
    registry: registry(up.url),
    config: { logFormat: "pretty" },
  });
  const quiet = await startTestGateway({
    registry: registry(up.url),
    config: { logLevel: "warn" },
  });
  try {
    for (const t of [pretty, quiet]) {
      const res = await post(`${t.url}/v1/messages`, { model: "claude-priced" }, {
        "x-api-key": t.secret,
      });
      await res.arrayBuffer();
    }
    const line = pretty.logs.find((l) => l.includes(" request "));
    assert(line, "a request line");
    assert(!line.startsWith("{"));
    assertIncludes(line, "model=claude-priced");
    assertEquals(quiet.logs.filter((l) => l.includes('"msg":"request"')).length, 0);
  } finally {
    await pretty.close();
    await quiet.close();
    await up.close();
  }
});
