/**
 * Cost: micro-dollars from the disjoint buckets (one-hour cache writes at
 * their own price), priced at the serving provider's price, stored beside
 * the tokens and shown at every level of the usage reports, the key views,
 * the metrics and the CLI; a model without a price shows its tokens and a
 * null cost, never 0.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { admin, ADMIN_KEY, fakeClock, post, startStack } from "./support/gateway.ts";
import { anthropicMessage, openaiCompletion } from "./support/replies.ts";
import { bodyJson } from "./support/upstream.ts";
import { runCli } from "../lib/cli/main.ts";
import { costMicroUsd } from "../lib/metering/cost.ts";
import { parseRegistry, type Pricing } from "../lib/config/registry.ts";
import { zeroTokens } from "../lib/metering/tokens.ts";

// deno-lint-ignore no-explicit-any
type Json = any;

const SONNET: Pricing = { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75, cacheWrite1h: 6 };

Deno.test("costMicroUsd: each bucket once at its price, one-hour writes apart, rounded once", () => {
  const t = { ...zeroTokens(), inputUncached: 4, cacheRead: 2000, cacheWrite: 500, output: 60 };
  // All writes five-minute when there is no split.
  assertEquals(costMicroUsd(t, SONNET), 12 + 600 + 1875 + 900);
  // 200 of the 500 written for an hour: 300 x 3.75 + 200 x 6.
  assertEquals(costMicroUsd({ ...t, cacheWrite1h: 200 }, SONNET), 12 + 600 + 1125 + 1200 + 900);
  // A split above the write cannot price more than the write.
  assertEquals(costMicroUsd({ ...t, cacheWrite1h: 9000 }, SONNET), 12 + 600 + 3000 + 900);
  // 1 token at $0.30 per million is 0.3 micro-dollars: rounded per line.
  assertEquals(costMicroUsd({ ...zeroTokens(), cacheRead: 1 }, SONNET), 0);
  assertEquals(costMicroUsd({ ...zeroTokens(), cacheRead: 2 }, SONNET), 1);
  assertEquals(costMicroUsd(zeroTokens(), SONNET), 0);
});

/**
 * Anthropic through its own provider or an aggregator (prices differ), an
 * unknown claude model priced by its routing entry, an advisor model with
 * its own price, and an OpenAI model without any price.
 */
function registry(upstream: string) {
  return parseRegistry({
    providers: {
      anthropic: {
        format: "anthropic",
        base_url: `${upstream}/anthropic/v1`,
        api_key_env: "ANTHROPIC_TEST_KEY",
      },
      aggregator: {
        format: "anthropic",
        base_url: `${upstream}/aggregator/v1`,
        api_key_env: "ANTHROPIC_TEST_KEY",
        pricing: { "claude-test": { input: 10, output: 100 } },
      },
      openai: {
        format: "openai",
        base_url: `${upstream}/openai/v1`,
        api_key_env: "OPENAI_TEST_KEY",
      },
    },
    routing: {
      claude: {
        providers: ["anthropic", "aggregator"],
        pricing: { input: 1, output: 2, cache_read: 0.5, cache_write: 1.5 },
      },
      gpt: ["openai"],
    },
    known_models: [
      {
        id: "claude-test",
        provider: "anthropic",
        pricing: { input: 3, output: 15, cache_read: 0.3, cache_write: 3.75, cache_write_1h: 6 },
      },
      { id: "claude-advisor", provider: "anthropic", pricing: { input: 20, output: 80 } },
      { id: "gpt-test", provider: "openai" },
    ],
  });
}

/** The usage a fake provider reports for each model the client asks for. */
function reply(model: string, path: string): Response {
  if (path.startsWith("/openai")) {
    return Response.json(openaiCompletion({ prompt_tokens: 1000, completion_tokens: 50 }));
  }
  const usage: Record<string, unknown> = {
    input_tokens: 4,
    cache_creation_input_tokens: 500,
    cache_read_input_tokens: 2000,
    cache_creation: { ephemeral_5m_input_tokens: 300, ephemeral_1h_input_tokens: 200 },
    output_tokens: 60,
  };
  if (model === "claude-with-advisor") {
    usage.iterations = [
      { type: "message", input_tokens: 4, output_tokens: 60 },
      {
        type: "advisor_message",
        model: "claude-advisor",
        input_tokens: 1000,
        cache_read_input_tokens: 0,
        output_tokens: 100,
      },
    ];
  }
  return Response.json(anthropicMessage(usage, { model }));
}

Deno.test("cost end to end: stored beside tokens, per provider price, routing price, advisor, unpriced null", async () => {
  const clock = fakeClock("2026-05-04T10:30:00Z");
  const s = await startStack((seen) => reply(bodyJson(seen).model, seen.path), {
    registry,
    clock,
  });
  try {
    const { url, secret, keyId } = s.t;
    const agg = await admin(url, "POST", "/admin/keys", {
      name: "via-aggregator",
      allowed_providers: ["aggregator"],
    });
    const get = async (path: string): Promise<Json> => (await admin(url, "GET", path)).json;
    const call = async (model: string, key = secret) => {
      const path = model.startsWith("gpt") ? "/v1/chat/completions" : "/v1/messages";
      const res = await post(`${url}${path}`, { model, messages: [] }, { "x-api-key": key });
      assertEquals(res.status, 200, model);
      await res.arrayBuffer();
    };
    await call("claude-test");
    await call("claude-test", agg.json.api_key as string);
    await call("claude-new-model");
    await call("claude-with-advisor");
    await call("gpt-test");
    await call("gpt-test");

    // claude-test at its known price, 1h writes at 6: 12 + 600 + 1125 + 1200 + 900.
    const known = 3837;
    // Through the aggregator: its own price (cache fields default to its input price).
    const aggregator = 4 * 10 + 2000 * 10 + 500 * 10 + 60 * 100;
    // An unknown claude model: the routing entry's price (1h writes at cache_write).
    const routed = 4 * 1 + 2000 * 0.5 + 500 * 1.5 + 60 * 2;
    // The advisor share is priced at the advisor model's price.
    const advisor = 1000 * 20 + 100 * 80;

    const usage = (await get(`/admin/keys/${keyId}/usage`)).usage;
    const m = usage.total_by_model;
    assertEquals(m["claude-test"].cost_usd, known / 1e6);
    assertEquals(m["claude-new-model"].cost_usd, routed / 1e6);
    assertEquals(m["claude-with-advisor"].cost_usd, routed / 1e6, "the main share at its price");
    assertEquals(m["claude-advisor"].cost_usd, advisor / 1e6, "the advisor at its own price");
    assertEquals(m["claude-advisor"].requests, 0, "an advisor use is not a request");
    assertEquals(m["gpt-test"].cost_usd, null, "no price: null, never 0");
    assertEquals(m["gpt-test"].unpriced_requests, 2);
    assertEquals(m["gpt-test"].input, 2000, "its tokens still count");
    assertEquals(m["claude-test"].unpriced_requests, 0);
    const total = known + routed + routed + advisor;
    assertEquals(usage.cost_usd, total / 1e6);
    assertEquals(usage.unpriced_requests, 2, "the aggregate says part of the usage is unpriced");
    const day = usage.daily["2026-05-04"];
    assertEquals(day.cost_usd, total / 1e6);
    assertEquals(day.by_model["claude-test"].cost_usd, known / 1e6);
    assertEquals(usage.hourly["2026-05-04 10:00"].cost_usd, total / 1e6);

    const aggUsage = (await get(`/admin/keys/${agg.json.id}/usage`)).usage;
    assertEquals(aggUsage.total_by_model["claude-test"].cost_usd, aggregator / 1e6);

    const daily = (await get("/admin/usage/daily?date=2026-05-04")).days[0];
    assertEquals(daily.cost_usd, (total + aggregator) / 1e6);
    assertEquals(daily.unpriced_requests, 2);
    assertEquals(daily.by_model["claude-test"].cost_usd, (known + aggregator) / 1e6);
    assertEquals(daily.by_model["gpt-test"].cost_usd, null);
    assertEquals(daily.by_tenant["via-aggregator"]["claude-test"].cost_usd, aggregator / 1e6);
    assertEquals(daily.by_tenant["test-key"]["gpt-test"].cost_usd, null);
    const keys = Object.fromEntries(daily.keys.map((k: Json) => [k.name, k]));
    assertEquals(keys["test-key"].cost_usd, total / 1e6);
    assertEquals(keys["via-aggregator"].cost_usd, aggregator / 1e6);
    assertEquals(keys["via-aggregator"].unpriced_requests, 0);

    const hourly = (await get("/admin/usage/hourly?date=2026-05-04")).hours[0];
    assertEquals(hourly.cost_usd, (total + aggregator) / 1e6);
    const summary = (await admin(url, "GET", "/admin/usage")).json;
    assertEquals(summary.cost_usd, (total + aggregator) / 1e6);
    assertEquals(summary.unpriced_requests, 2);

    const list = (await admin(url, "GET", "/admin/keys")).json.keys as Json[];
    const view = Object.fromEntries(list.map((k) => [k.name, k]));
    assertEquals(view["test-key"].cost_usd, total / 1e6);
    assertEquals(view["via-aggregator"].cost_usd, aggregator / 1e6);
    const unused = await admin(url, "POST", "/admin/keys", { name: "unused" });
    assertEquals(unused.json.cost_usd, null, "a key without usage has no priced usage");
    assertEquals((await admin(url, "GET", `/admin/keys/${keyId}`)).json.cost_usd, total / 1e6);

    // Metrics count the advisor's tokens and cost under its own model.
    const metrics = await (await fetch(`${url}/metrics`, { headers: { "x-api-key": ADMIN_KEY } }))
      .text();
    assertIncludes(metrics, `gateway_cost_usd_total{model="claude-advisor"} ${advisor / 1e6}`);
    assertIncludes(metrics, `gateway_tokens_total{model="claude-advisor",type="output"} 100`);
    assert(!metrics.includes('gateway_cost_usd_total{model="gpt-test"}'), "unpriced: no cost");
  } finally {
    await s.close();
  }
});

Deno.test("cost in the CLI usage table and JSON, '-' for a model without a price", async () => {
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/gw.kv`;
  const kv = await Deno.openKv(kvPath);
  const s = await startStack((seen) => reply(bodyJson(seen).model, seen.path), {
    registry,
    kv,
    clock: fakeClock("2026-05-04T10:30:00Z"),
  });
  try {
    for (const model of ["claude-test", "gpt-test"]) {
      const path = model.startsWith("gpt") ? "/v1/chat/completions" : "/v1/messages";
      const res = await post(`${s.t.url}${path}`, { model }, { "x-api-key": s.t.secret });
      await res.arrayBuffer();
    }
    await s.t.gw.ctx.usageWriter.flush();
    const out: string[] = [];
    const cli = async (args: string[]) => {
      out.length = 0;
      const status = await runCli(args, {
        out: (l) => out.push(l),
        err: (l) => out.push(l),
        env: { KV_PATH: kvPath },
      });
      assertEquals(status, 0, out.join("\n"));
      return out.join("\n");
    };
    const text = await cli(["usage"]);
    const lines = text.split("\n");
    assertIncludes(lines[0], "COST_USD");
    assertIncludes(lines[0], "UNPRICED");
    const claude = lines.find((l) => l.includes("claude-test"))!;
    assert(/0\.003837\s+0$/.test(claude), claude);
    const gpt = lines.find((l) => l.includes("gpt-test"))!;
    assert(/\s-\s+1$/.test(gpt), gpt);
    const totalLine = lines.find((l) => l.startsWith("total"))!;
    assert(/0\.003837\s+1$/.test(totalLine), totalLine);

    const json = JSON.parse(await cli(["usage", "--json"]));
    const byModel = Object.fromEntries(json.map((r: Json) => [r.model, r]));
    assertEquals(byModel["claude-test"].cost_usd, 0.003837);
    assertEquals(byModel["gpt-test"].cost_usd, null);
    assertEquals(byModel["gpt-test"].unpriced_requests, 1);

    const shown = await cli(["keys", "show", s.t.keyId, "--json"]);
    assertEquals(JSON.parse(shown).cost_usd, 0.003837);
  } finally {
    await s.close();
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
