/**
 * A live gateway through a KV outage: for 10 s every KV write fails (it
 * throws; or it lands and its answer is lost; or the store holds it and
 * applies it late; or the client sends it twice) while clients keep
 * sending requests. Requests keep being served, /health and /metrics show
 * the backlog, limits follow their fallback policy, and once KV is back
 * every counter is exact: usage, the request log and the quota's use.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { admin, ADMIN_KEY, post, type Stack, startStack } from "./support/gateway.ts";
import { type FailMode, outageKv } from "./support/kv_outage.ts";
import { anthropicMessage } from "./support/replies.ts";
import { delay, waitFor } from "./support/wait.ts";
import { UsageReader } from "../lib/store/usage/reader.ts";
import { loggedCount } from "./support/request_log.ts";
import { runCli } from "../lib/cli/main.ts";
import type { Config } from "../lib/config/env.ts";

const reply = () => Response.json(anthropicMessage({ input_tokens: 10, output_tokens: 5 }));

async function keyWith(s: Stack, name: string, fields: Record<string, unknown> = {}) {
  const r = await admin(s.t.url, "POST", "/admin/keys", { name, ...fields });
  assertEquals(r.status, 200, JSON.stringify(r.json));
  return { id: r.json.id as string, secret: r.json.api_key as string };
}

const call = (s: Stack, secret: string) =>
  post(`${s.t.url}/v1/messages`, { model: "claude-test", max_tokens: 16 }, {
    "x-api-key": secret,
    "anthropic-version": "2023-06-01",
  });

/** Responses by status, and the error types of the others. */
interface Tally {
  byStatus: Record<number, number>;
  errors: Set<string>;
}

/** When the clients stop: at `at` (epoch ms), or at once when the test fails. */
interface Until {
  at: number;
}

/** Sends requests one after another until `until`; a failed connection is counted as status 0. */
async function client(s: Stack, secret: string, until: Until, t: Tally): Promise<void> {
  while (Date.now() < until.at) {
    let res: Response;
    try {
      res = await call(s, secret);
    } catch (e) {
      t.byStatus[0] = (t.byStatus[0] ?? 0) + 1;
      t.errors.add(String(e));
      continue;
    }
    const body = await res.json();
    t.byStatus[res.status] = (t.byStatus[res.status] ?? 0) + 1;
    if (res.status !== 200) {
      t.errors.add(`${res.status} ${body.error?.type}: ${body.error?.message}`);
      await delay(20);
    }
  }
}

const tally = (): Tally => ({ byStatus: {}, errors: new Set() });

async function metric(s: Stack, line: string): Promise<number> {
  const text = await (await fetch(`${s.t.url}/metrics`, { headers: { "x-api-key": ADMIN_KEY } }))
    .text();
  const found = text.split("\n").find((l) => l.startsWith(line + " "));
  return found ? Number(found.slice(line.length + 1)) : 0;
}

async function health(s: Stack) {
  const res = await fetch(`${s.t.url}/health`);
  return { status: res.status, json: await res.json() };
}

async function outageStack(config: Partial<Config>) {
  const raw = await Deno.openKv(":memory:");
  const out = outageKv(raw);
  const s = await startStack(reply, {
    kv: out.kv,
    config: { usageFlushMs: 20, kvTimeoutMs: 300, ...config },
  });
  return { raw, out, s };
}

Deno.test({
  name: "10 s of failing KV writes under load: every request served, then every counter exact",
  fn: async () => {
    const { raw, out, s } = await outageStack({});
    let load: Promise<unknown> = Promise.resolve();
    const end: Until = { at: Date.now() + 14_000 };
    try {
      const plain = await keyWith(s, "plain");
      const rated = await keyWith(s, "rated", { rpm: 1_000_000, tpm: 1_000_000_000 });
      const quota = await keyWith(s, "quota", { daily_token_quota: 1_000_000_000 });
      const t0 = Date.now();
      const tallies = { plain: tally(), rated: tally(), quota: tally() };
      load = Promise.all([
        client(s, plain.secret, end, tallies.plain),
        client(s, plain.secret, end, tallies.plain),
        client(s, plain.secret, end, tallies.plain),
        client(s, rated.secret, end, tallies.rated),
        client(s, rated.secret, end, tallies.rated),
        client(s, quota.secret, end, tallies.quota),
      ]);
      await delay(2_000);
      // Commits fail every way for 6 s (a resent one succeeds); then the store holds them until it is back.
      const modes: FailMode[] = ["throw", "applied", "twice"];
      const down = Date.now();
      out.start({ mode: (n) => Date.now() - down < 6_000 ? modes[n % 3] : "hang" });
      await delay(6_000);
      // Mid-outage: still serving, degraded, with a backlog to show.
      let mid = await health(s);
      await waitFor("/health shows the outage", async () => {
        mid = await health(s);
        const d: string[] = mid.json.degraded;
        return d.includes("usage_writes_failing") && d.includes("limits_fallback");
      }, 3_000);
      assertEquals(mid.status, 200, "a load balancer keeps the gateway: it still serves");
      assertEquals(mid.json.status, "degraded");
      assert(mid.json.usage_backlog.requests > 0, JSON.stringify(mid.json.usage_backlog));
      assert(mid.json.usage_backlog.failing_since !== null);
      assertEquals(mid.json.limits.on_kv_failure, { rate_limits: "local", quotas: "closed" });
      assert(await metric(s, "gateway_usage_backlog_requests") > 0);
      assert(await metric(s, "gateway_usage_backlog_bytes") > 0);
      assertEquals(await metric(s, 'gateway_kv_writes_failing{part="usage"}'), 1);
      const hc: string[] = [];
      const code = await runCli(["healthcheck", "--url", `${s.t.url}/health`], {
        out: (l) => hc.push(l),
        err: (l) => hc.push(l),
        env: {},
      });
      assertEquals(code, 0, "the container's health check passes while it serves");
      assert(hc.some((l) => l.startsWith("degraded:")), hc.join("\n"));
      await delay(Math.max(0, t0 + 12_000 - Date.now()));
      out.end();
      await load;

      // KV is back: everything held is written, once.
      await waitFor("the backlog is written", async () => {
        const h = await health(s);
        return h.json.status === "ok" && h.json.usage_backlog.requests === 0;
      }, 30_000);
      assert(out.stats.thrown > 0 && out.stats.appliedThenThrown > 0, JSON.stringify(out.stats));
      assert(out.stats.hung > 0 && out.stats.resent > 0, JSON.stringify(out.stats));
      assertEquals(Object.keys(tallies.plain.byStatus), ["200"], [...tallies.plain.errors].join());
      assertEquals(Object.keys(tallies.rated.byStatus), ["200"], [...tallies.rated.errors].join());
      // Quotas fail closed: refused while KV was away, served before and after.
      assert(tallies.quota.byStatus[503] > 0, JSON.stringify(tallies.quota.byStatus));
      assert(tallies.quota.byStatus[200] > 0);
      assertEquals(Object.keys(tallies.quota.byStatus).sort(), ["200", "503"]);
      for (const e of tallies.quota.errors) assertIncludes(e, "503 overloaded_error");
      assert(await metric(s, 'gateway_limit_fallbacks_total{policy="local"}') > 0);
      assert(await metric(s, 'gateway_limit_fallbacks_total{policy="closed"}') > 0);
      const reader = new UsageReader(raw);
      for (const [name, k] of [["plain", plain], ["rated", rated], ["quota", quota]] as const) {
        const served = tallies[name].byStatus[200];
        const all = served + (tallies[name].byStatus[503] ?? 0);
        const c = (await reader.keyTotals(k.id)).counters;
        assertEquals(
          [c.requests, c.input_uncached, c.output],
          [served, 10 * served, 5 * served],
          `${name}: usage of ${served} served requests`,
        );
        assertEquals(await loggedCount(raw, k.id), all, `${name}: one log entry per request`);
      }
      // The quota's own count (settled through the outage) matches the usage exactly.
      await waitFor("settlements are written", async () => {
        const v = (await admin(s.t.url, "GET", `/admin/keys/${quota.id}`)).json;
        return (v.limits as Record<string, Record<string, number>>).daily_token_quota.reserved ===
          0;
      });
      const v = (await admin(s.t.url, "GET", `/admin/keys/${quota.id}`)).json;
      const q = (v.limits as Record<string, Record<string, number>>).daily_token_quota;
      assertEquals(q.used, 15 * tallies.quota.byStatus[200]);
    } finally {
      end.at = 0;
      out.end();
      await load;
      await s.close();
      raw.close();
    }
  },
});

Deno.test("limits while KV fails follow RATE_LIMITS_ON_KV_FAILURE and QUOTAS_ON_KV_FAILURE", async () => {
  // Default: rate limits counted by this gateway alone, quotas refused.
  const a = await outageStack({});
  // The other way round: rate limits refused, quotas not counted.
  const b = await outageStack({ limitsOnKvFailure: { rate: "closed", quota: "open" } });
  try {
    for (const x of [a, b]) {
      const rpm = await keyWith(x.s, "rpm", { rpm: 2 });
      const quota = await keyWith(x.s, "quota", { daily_token_quota: 1_000_000 });
      x.out.start();
      const statuses = async (secret: string, n: number) => {
        const out: { status: number; body: Record<string, Record<string, string>>; h: Headers }[] =
          [];
        for (let i = 0; i < n; i++) {
          const r = await call(x.s, secret);
          out.push({ status: r.status, body: await r.json(), h: r.headers });
        }
        return out;
      };
      const r = await statuses(rpm.secret, 3);
      const q = await statuses(quota.secret, 2);
      x.out.end();
      if (x === a) {
        assertEquals(r.map((y) => y.status), [200, 200, 429], "rpm counted locally");
        assertEquals(r[2].body.error.type, "rate_limit_error");
        assertEquals(r[1].h.get("x-gateway-ratelimit-remaining-requests"), "0");
        assertEquals(q.map((y) => y.status), [503, 503], "quotas fail closed");
        assertEquals(q[0].body.error.type, "overloaded_error");
        assertIncludes(q[0].body.error.message, "quotas and budgets");
        assertEquals(q[0].h.get("retry-after"), "1");
      } else {
        assertEquals(r.map((y) => y.status), [503, 503, 503], "rate limits fail closed");
        assertIncludes(r[0].body.error.message, "rate limits");
        assertEquals(q.map((y) => y.status), [200, 200], "quotas fail open");
        // What the open requests used is counted against the quota once KV is back.
        await waitFor("the quota counts them", async () => {
          const v = (await admin(x.s.t.url, "GET", `/admin/keys/${quota.id}`)).json;
          const l = (v.limits as Record<string, Record<string, number>>).daily_token_quota;
          return l.used === 30 && l.reserved === 0;
        });
      }
    }
    assert(await metric(a.s, 'gateway_limit_fallbacks_total{policy="local"}') >= 3);
    assert(await metric(a.s, 'gateway_limit_fallbacks_total{policy="closed"}') >= 2);
    assert(await metric(b.s, 'gateway_limit_fallbacks_total{policy="open"}') >= 2);
  } finally {
    for (const x of [a, b]) {
      x.out.end();
      await x.s.close();
      x.raw.close();
    }
  }
});
