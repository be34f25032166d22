/**
 * Workers end to end: `WORKERS=3` serves one port from three processes on
 * one KV file. Mixed streaming and non-streaming traffic of two keys spread
 * over all of them is metered exactly; one rate limit and one budget hold
 * across all of them; a key disabled through the admin API is refused by
 * every worker within a second; /health and /metrics show the spread;
 * SIGTERM drains every worker (a stream in flight ends whole and is
 * metered) and the supervisor exits after them. A worker that dies is
 * restarted, SIGHUP reloads models.json in every worker, and workers whose
 * supervisor is gone stop by themselves.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { ADMIN_KEY } from "./support/gateway.ts";
import { type GatewayProcess, show, startGatewayProcess } from "./support/gateway_process.ts";
import { anthropicMessage, anthropicSse, openaiCompletion } from "./support/replies.ts";
import { chunkedResponse, sseData } from "./support/streams.ts";
import { bodyJson, fakeUpstream, type Seen } from "./support/upstream.ts";
import { delay, waitFor } from "./support/wait.ts";
import { KeyStore } from "../lib/store/keys.ts";
import { UsageReader } from "../lib/store/usage/reader.ts";

/** The four kinds of request, and exactly what each uses (at 3 / 15 USD per million). */
const KINDS = {
  "anthropic-json": { input: 10, output: 5 },
  "anthropic-sse": { input: 7, output: 9 },
  "openai-json": { input: 7, output: 3 },
  "openai-sse": { input: 12, output: 4 },
} as const;
type Kind = keyof typeof KINDS;
const KIND_NAMES = Object.keys(KINDS) as Kind[];
const costOf = (k: Kind) => KINDS[k].input * 3 + KINDS[k].output * 15;

function openaiChunk(choices: unknown[], usage: unknown = null): string {
  return sseData({ id: "c1", object: "chat.completion.chunk", model: "gpt-test", choices, usage });
}

function reply(s: Seen): Response {
  const b = bodyJson(s);
  const u = (k: Kind) => KINDS[k];
  if (s.path.includes("/openai/")) {
    if (!b.stream) {
      const { input, output } = u("openai-json");
      return Response.json(openaiCompletion({ prompt_tokens: input, completion_tokens: output }));
    }
    const { input, output } = u("openai-sse");
    return chunkedResponse([
      openaiChunk([{ index: 0, delta: { role: "assistant", content: "" }, finish_reason: null }]),
      openaiChunk([{ index: 0, delta: { content: "Hi" }, finish_reason: null }]),
      openaiChunk([{ index: 0, delta: {}, finish_reason: "stop" }]),
      openaiChunk([], { prompt_tokens: input, completion_tokens: output }),
      "data: [DONE]\n\n",
    ]);
  }
  if (!b.stream) {
    const { input, output } = u("anthropic-json");
    return Response.json(anthropicMessage({ input_tokens: input, output_tokens: output }));
  }
  const { input, output } = u("anthropic-sse");
  const slow = b.messages?.[0]?.content === "slow";
  return chunkedResponse([
    anthropicSse.start({ input_tokens: input, output_tokens: 1 }),
    ...Array(slow ? 10 : 2).fill(anthropicSse.delta()),
    anthropicSse.end({ output_tokens: output }),
  ], { gapMs: slow ? 100 : 0 });
}

function modelsJson(upstream: string) {
  const price = { input: 3, output: 15 };
  return JSON.stringify({
    providers: {
      anthropic: { format: "anthropic", base_url: `${upstream}/anthropic/v1`, api_key_env: "UP" },
      openai: { format: "openai", base_url: `${upstream}/openai/v1`, api_key_env: "UP" },
    },
    routing: { claude: ["anthropic"], gpt: ["openai"] },
    known_models: [
      { id: "claude-test", provider: "anthropic", pricing: price },
      { id: "gpt-test", provider: "openai", pricing: price },
    ],
  });
}

/**
 * Sends one request of `kind` with `secret` through `spread` (a client that
 * opens a new connection per request, so the kernel spreads requests over
 * the workers); resolves to its status once its body is read.
 */
async function call(
  url: string,
  spread: Deno.HttpClient,
  secret: string,
  kind: Kind,
): Promise<number> {
  const stream = kind.endsWith("sse");
  const anthropic = kind.startsWith("anthropic");
  const res = await fetch(`${url}${anthropic ? "/v1/messages" : "/v1/chat/completions"}`, {
    method: "POST",
    client: spread,
    headers: anthropic
      ? { "x-api-key": secret, "content-type": "application/json" }
      : { authorization: `Bearer ${secret}`, "content-type": "application/json" },
    body: JSON.stringify({
      model: anthropic ? "claude-test" : "gpt-test",
      max_tokens: 20,
      stream,
      messages: [{ role: "user", content: "hi" }],
    }),
  });
  await res.arrayBuffer();
  return res.status;
}

/** Runs `jobs` with at most `width` at once. */
async function pool<T>(jobs: (() => Promise<T>)[], width: number): Promise<T[]> {
  const out: T[] = new Array(jobs.length);
  let next = 0;
  await Promise.all(Array.from({ length: width }, async () => {
    while (next < jobs.length) {
      const i = next++;
      out[i] = await jobs[i]();
    }
  }));
  return out;
}

/** Expected counters of the successful requests of each kind. */
function expected(ok: Kind[]) {
  const sum = { requests: 0, input_uncached: 0, output: 0, cost_micro_usd: 0 };
  for (const k of ok) {
    sum.requests++;
    sum.input_uncached += KINDS[k].input;
    sum.output += KINDS[k].output;
    sum.cost_micro_usd += costOf(k);
  }
  return {
    ...sum,
    cache_read: 0,
    cache_write: 0,
    failed: 0,
    incomplete: 0,
    web_search_requests: 0,
    web_fetch_requests: 0,
    priced: sum.requests,
    unpriced: 0,
  };
}

/** One connection kept open to one worker (sequential requests reuse it). */
interface Pinned {
  worker: number;
  client: Deno.HttpClient;
}

/** Opens connections until one is pinned to each of `count` workers. */
async function pinEveryWorker(url: string, count: number): Promise<Pinned[]> {
  const pinned = new Map<number, Pinned>();
  for (let i = 0; i < 200 && pinned.size < count; i++) {
    const client = Deno.createHttpClient({});
    const h = await (await fetch(`${url}/health`, { client })).json();
    assertEquals(h.workers, count, "every worker serves");
    if (pinned.has(h.worker)) client.close();
    else pinned.set(h.worker, { worker: h.worker, client });
  }
  assertEquals(pinned.size, count, "connections reached every worker");
  return [...pinned.values()];
}

/** True when something answers `/health` at `url` (on a new connection). */
async function answers(url: string): Promise<boolean> {
  const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
  try {
    await (await fetch(`${url}/health`, { client })).body?.cancel();
    return true;
  } catch {
    return false;
  } finally {
    client.close();
  }
}

/** Waits, if needed, so that the next ~15 s lie inside one UTC minute (rpm windows are minutes). */
async function startOfMinuteIfLate() {
  const s = new Date().getUTCSeconds();
  if (s > 40) await delay((61 - s) * 1000);
}

Deno.test({
  name:
    "3 workers on one KV: exact usage of mixed traffic, one rpm and one budget, a disabled key refused everywhere within 1 s, drained by SIGTERM",
  fn: async () => {
    const up = fakeUpstream(reply);
    const dir = await Deno.makeTempDir();
    const kvPath = `${dir}/gw.kv`;
    await Deno.writeTextFile(`${dir}/models.json`, modelsJson(up.url));
    const kv = await Deno.openKv(kvPath);
    const keys = new KeyStore(kv);
    const rpm = 40;
    const budgetMicro = 4000;
    const limited = await keys.create({ name: "rpm", limits: { rpm } });
    const draining = await keys.create({ name: "drain" });
    const budgeted = await keys.create({
      name: "budget",
      limits: { dailyMicroUsd: budgetMicro },
    });
    kv.close();
    let gw: GatewayProcess | undefined;
    const clients: Deno.HttpClient[] = [];
    try {
      gw = await startGatewayProcess({
        WORKERS: "3",
        KV_PATH: kvPath,
        MODELS_CONFIG: `${dir}/models.json`,
        ADMIN_KEY,
        UP: "upstream-secret",
        USAGE_FLUSH_MS: "20",
        METRICS_PUBLIC: "true",
      });
      const url = gw.url;
      const spread = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
      clients.push(spread);

      // One rate limit across three workers: exactly `rpm` of 60 requests inside one minute.
      await startOfMinuteIfLate();
      const rpmKinds = Array.from({ length: 60 }, (_, i) => KIND_NAMES[i % 4]);
      const rpmStatus = await pool(
        rpmKinds.map((k) => () => call(url, spread, limited.secret, k)),
        12,
      );
      assertEquals(
        rpmStatus.filter((s) => s === 200).length,
        rpm,
        `never over the rpm, and none that fitted refused: ${rpmStatus}`,
      );
      assertEquals(rpmStatus.filter((s) => s === 429).length, 60 - rpm);

      // One budget across three workers: never exceeded, and it does run out.
      const budgetKinds = Array.from({ length: 80 }, (_, i) => KIND_NAMES[(i + 1) % 4]);
      const budgetStatus = await pool(
        budgetKinds.map((k) => () => call(url, spread, budgeted.secret, k)),
        12,
      );
      assert(budgetStatus.every((s) => s === 200 || s === 429), `${budgetStatus}`);
      const spent = budgetKinds.filter((_, i) => budgetStatus[i] === 200);
      assert(spent.length > 0 && spent.length < budgetKinds.length, `${budgetStatus}`);
      // Refusals under concurrency came from reservations in flight. One at a time, each after
      // the previous one's reservation was settled, the budget admits requests until what is
      // left is below one request's worst case (under 1000 micro-USD here).
      const settled = () =>
        waitFor("reservations settled", async () => {
          const res = await fetch(`${url}/admin/keys/${budgeted.record.id}`, {
            client: spread,
            headers: { "x-api-key": ADMIN_KEY },
          });
          return (await res.json()).limits.daily_budget_usd.reserved === 0;
        });
      for (let i = 0;; i++) {
        await settled();
        const kind = KIND_NAMES[i % 4];
        const status = await call(url, spread, budgeted.secret, kind);
        if (status === 429) break;
        assertEquals(status, 200);
        spent.push(kind);
      }
      const spentMicro = expected(spent).cost_micro_usd;
      assert(spentMicro <= budgetMicro, `spent ${spentMicro} of ${budgetMicro} micro-USD`);
      assert(budgetMicro - spentMicro < 1000, `refused with ${budgetMicro - spentMicro} left`);

      // Every worker served proxied requests, and none set usage aside.
      const metrics = await (await fetch(`${url}/metrics`, { client: spread })).text();
      for (const w of [1, 2, 3]) {
        const served = metrics.split("\n").filter((l) =>
          l.startsWith("gateway_requests_total{") && l.includes(`worker="${w}"`)
        ).reduce((n, l) => n + Number(l.split(" ").at(-1)), 0);
        assert(served > 0, `worker ${w} served no proxied request:\n${metrics}`);
      }
      assert(
        !/^gateway_usage_rejected_total\{[^}]*\} [1-9]/m.test(metrics),
        "usage was set aside",
      );

      // A key disabled through the admin API (on whichever worker) is refused by all within 1 s.
      const pinned = await pinEveryWorker(url, 3);
      clients.push(...pinned.map((p) => p.client));
      const off = await fetch(`${url}/admin/keys/${budgeted.record.id}/disable`, {
        method: "POST",
        client: spread,
        headers: { "x-api-key": ADMIN_KEY },
      });
      assertEquals(off.status, 200);
      await off.body?.cancel();
      const disabledAt = performance.now();
      const refusedAfter = await Promise.all(pinned.map(async (p) => {
        for (;;) {
          const res = await fetch(`${url}/v1/key`, {
            client: p.client,
            headers: { "x-api-key": budgeted.secret },
          });
          await res.arrayBuffer(); // read to the end, so the connection is kept for the next
          if (res.status === 403) return performance.now() - disabledAt;
          assertEquals(res.status, 200);
          if (performance.now() - disabledAt > 10_000) return Infinity;
          await delay(10);
        }
      }));
      for (const p of pinned) {
        const h = await (await fetch(`${url}/health`, { client: p.client })).json();
        assertEquals(h.worker, p.worker, "the pinned connection stayed on its worker");
      }
      assert(
        refusedAfter.every((ms) => ms <= 1000),
        `refused by each worker after ${refusedAfter.map(Math.round).join(", ")} ms`,
      );

      // SIGTERM: every worker drains (a stream in flight ends whole) and writes its usage; then
      // the supervisor exits.
      const slow = fetch(`${url}/v1/messages`, {
        method: "POST",
        client: spread,
        headers: { "x-api-key": draining.secret, "content-type": "application/json" },
        body: JSON.stringify({
          model: "claude-test",
          max_tokens: 20,
          stream: true,
          messages: [{ role: "user", content: "slow" }],
        }),
      });
      const slowRes = await slow;
      assertEquals(slowRes.status, 200);
      const status = await gw.stop();
      assertEquals(status.code, 0, show(gw.lines));
      assert((await slowRes.text()).includes("message_stop"), "the stream in flight ended whole");
      for (const c of clients.splice(0)) c.close();
      for (const w of [1, 2, 3]) {
        assert(
          gw.lines.some((l) => l.msg === "gateway stopped" && l.worker === w),
          `worker ${w} did not stop cleanly:\n${show(gw.lines)}`,
        );
      }
      assertEquals(gw.lines.at(-1)?.msg, "workers stopped", "the supervisor exits last");
      assert(!gw.lines.some((l) => l.level === "error"), show(gw.lines));

      // Every counter of both keys, exactly.
      const after = await Deno.openKv(kvPath);
      try {
        const reader = new UsageReader(after);
        const rpmOk = rpmKinds.filter((_, i) => rpmStatus[i] === 200);
        assertEquals((await reader.keyTotals(limited.record.id)).counters, expected(rpmOk));
        assertEquals((await reader.keyTotals(budgeted.record.id)).counters, expected(spent));
        assertEquals(
          (await reader.keyTotals(draining.record.id)).counters,
          expected(["anthropic-sse"]),
        );
      } finally {
        after.close();
      }
    } finally {
      for (const c of clients) c.close();
      await gw?.stop();
      await up.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});

Deno.test("a killed worker is restarted; models.json edits and SIGHUP reload every worker; workers stop when the supervisor is gone", async () => {
  const up = fakeUpstream(reply);
  const dir = await Deno.makeTempDir();
  const models = `${dir}/models.json`;
  await Deno.writeTextFile(models, modelsJson(up.url));
  let gw: GatewayProcess | undefined;
  const pids: number[] = [];
  try {
    gw = await startGatewayProcess({
      WORKERS: "2",
      KV_PATH: `${dir}/gw.kv`,
      MODELS_CONFIG: models,
      UP: "upstream-secret",
    });
    const { url, lines } = gw;
    const started = (w: number) =>
      lines.filter((l) => l.msg === "worker started" && l.worker === w).map((l) => l.pid as number);
    pids.push(...started(1), ...started(2));
    assertEquals(pids.length, 2, show(lines));

    Deno.kill(started(2)[0], "SIGKILL");
    await gw.line("worker 2 restarted", (l) => l.msg === "worker serving again" && l.worker === 2);
    pids.push(...started(2).slice(1));
    assertEquals(started(2).length, 2);
    const exited = lines.find((l) => l.msg === "worker exited; restarting it")!;
    assertEquals([exited.worker, exited.signal], [2, "SIGKILL"]);
    const client = Deno.createHttpClient({ poolMaxIdlePerHost: 0 });
    try {
      await waitFor("both workers answer again", async () => {
        const seen = new Set<number>();
        for (let i = 0; i < 40; i++) {
          const h = await (await fetch(`${url}/health`, { client })).json();
          if (h.workers !== 2) return false;
          seen.add(h.worker);
        }
        return seen.size === 2;
      });
    } finally {
      client.close();
    }

    // An edit of models.json is seen by every worker's own watch...
    const edited = JSON.parse(modelsJson(up.url));
    edited.known_models.push({ id: "claude-new", provider: "anthropic" });
    await Deno.writeTextFile(models, JSON.stringify(edited));
    for (const w of [1, 2]) {
      await gw.line(
        `worker ${w} reloads the edited file`,
        (l) => l.msg === "models.json reloaded" && l.why === "file changed" && l.worker === w,
      );
    }
    // ... and SIGHUP to the supervisor reaches every worker (a forced reload, logged with its cause).
    gw.proc.kill("SIGHUP");
    for (const w of [1, 2]) {
      await gw.line(
        `worker ${w} reloads on SIGHUP`,
        (l) => l.msg === "models.json reloaded" && l.why === "SIGHUP" && l.worker === w,
      );
    }

    // The supervisor dies without a word: its workers see their stdin end, drain and exit.
    gw.proc.kill("SIGKILL");
    await gw.proc.status;
    await waitFor("the port is closed", async () => !await answers(url), 30_000);
  } finally {
    await gw?.stop();
    // Only when a step failed with workers still serving (so these pids are still theirs).
    if (gw && await answers(gw.url)) {
      for (const pid of pids) {
        try {
          Deno.kill(pid, "SIGKILL");
        } catch {
          // exited
        }
      }
    }
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});
