/**
 * What the gateway asks of its KV per 1,000 requests a second: commits,
 * mutations and bytes written, for capacity planning on a shared store
 * (KV Connect, Deno Deploy's KV on FoundationDB).
 *
 * Part 1 drives the usage writer as 1,000 requests/s arrive with the
 * default USAGE_FLUSH_MS (100 ms: 100 requests per flush window), spread
 * over a number of keys and models, with and without the request log.
 * Part 2 runs a gateway in this process against a fake provider and counts
 * the limit store's reads and commits per request for keys with limits, at
 * a few concurrencies (they depend on how many of a key's requests meet at
 * its gate, not on the rate).
 *
 *   deno run --unstable-kv -A bench/kv_load.ts
 */
import { loadConfig } from "../lib/config/env.ts";
import { parseRegistry } from "../lib/config/registry.ts";
import { BucketClock } from "../lib/ops/clock.ts";
import { newId } from "../lib/ops/ids.ts";
import { startGateway } from "../lib/ops/server.ts";
import { type RequestLogEntry, requestLogRecord } from "../lib/store/request_log.ts";
import { countersOf } from "../lib/store/usage/counters.ts";
import { UsageWriter } from "../lib/store/usage/writer.ts";

/** Operations a KV was asked for, by kind. */
interface Tally {
  commits: number;
  sum: number;
  max: number;
  set: number;
  delete: number;
  check: number;
  /** Keys and values written, approximately (JSON sizes; 8 bytes per counter). */
  bytes: number;
  reads: number;
}

const zero = (): Tally => ({
  commits: 0,
  sum: 0,
  max: 0,
  set: 0,
  delete: 0,
  check: 0,
  bytes: 0,
  reads: 0,
});

/** `kv` with every operation counted into `t` (only those under `prefix`, when given). */
function counted(kv: Deno.Kv, t: () => Tally, prefix?: string): Deno.Kv {
  const mine = (key: Deno.KvKey) => prefix === undefined || key[0] === prefix;
  const atomic = () => {
    const op = kv.atomic();
    let touched = false;
    const local = zero();
    const wrapped: Deno.AtomicOperation = new Proxy(op, {
      get(target, prop) {
        if (prop === "commit") {
          return async () => {
            const r = await target.commit();
            if (touched && r.ok) {
              const g = t();
              g.commits++;
              for (const k of ["sum", "max", "set", "delete", "check", "bytes"] as const) {
                g[k] += local[k];
              }
            }
            return r;
          };
        }
        const v = Reflect.get(target, prop, target);
        if (typeof v !== "function") return v;
        return (...args: unknown[]) => {
          if (prop === "check") {
            const c = args[0] as Deno.AtomicCheck;
            if (mine(c.key)) {
              touched = true;
              local.check++;
            }
          } else if (["sum", "max", "set", "delete"].includes(prop as string)) {
            const key = args[0] as Deno.KvKey;
            if (mine(key)) {
              touched = true;
              local[prop as "sum" | "max" | "set" | "delete"]++;
              local.bytes += JSON.stringify(key).length +
                (prop === "set" ? JSON.stringify(args[1] ?? null).length : 8);
            }
          }
          const r = v.apply(target, args);
          return r === target ? wrapped : r;
        };
      },
    });
    return wrapped;
  };
  return new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") return atomic;
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      if (prop === "get" || prop === "getMany" || prop === "list") {
        return (...args: unknown[]) => {
          const first = args[0] as unknown[] | Deno.KvListSelector;
          const key = (Array.isArray(first)
            ? (Array.isArray(first[0]) ? first[0] : first)
            : ("prefix" in first
              ? first.prefix
              : (first as { start: Deno.KvKey }).start)) as Deno.KvKey;
          if (mine(key)) {
            t().reads++;
          }
          return v.apply(target, args);
        };
      }
      return v.bind(target);
    },
  });
}

const TOKENS = {
  inputUncached: 1200,
  cacheRead: 30_000,
  cacheWrite: 0,
  cacheWrite1h: 0,
  output: 400,
  webSearch: 0,
  webFetch: 0,
};

function logEntry(keyId: string, model: string, time: number): RequestLogEntry {
  return {
    time,
    key_id: keyId,
    model,
    provider: "anthropic",
    endpoint: "/v1/messages",
    stream: true,
    status: 200,
    input_uncached: 1200,
    cache_read: 30_000,
    cache_write: 0,
    output: 400,
    cost_micro_usd: 12_345,
    latency_ms: 8123,
    ttfb_ms: 412,
    retries: 0,
    complete: true,
    error: null,
  };
}

/** One second of 1,000 requests/s through the usage writer, window by window. */
async function usageSecond(keys: number, models: number, logDays: number): Promise<Tally> {
  const kv = await Deno.openKv(":memory:");
  let t = zero();
  const writer = new UsageWriter(counted(kv, () => t), new BucketClock("UTC"), 60_000);
  const at = Date.now();
  // Warm the chain (its first commit is like every other) and drop it from the count.
  writer.record("warm", at, []);
  await writer.flush();
  t = zero();
  for (let w = 0; w < 10; w++) {
    for (let i = 0; i < 100; i++) {
      const n = w * 100 + i;
      const key = `key-${String(n % keys).padStart(4, "0")}-0123456789abcdef`;
      const model = `claude-sonnet-4-5-${n % models}`;
      const time = at + n;
      writer.record(
        key,
        time,
        [{ model, provider: "anthropic", counters: countersOf(TOKENS, 1, false, false, 12_345) }],
        logDays > 0
          ? requestLogRecord(newId(time), logEntry(key, model, time), logDays)
          : undefined,
      );
    }
    await writer.flush();
  }
  await writer.close();
  kv.close();
  return t;
}

/** A gateway on a counted KV, a provider answering at once, and `n` keys with `limits`. */
async function limitsRun(
  limits: Record<string, number>,
  keys: number,
  concurrency: number,
  requests: number,
): Promise<{ limitsT: Tally; usageT: Tally; rps: number }> {
  const upstream = Deno.serve(
    { port: 0, hostname: "127.0.0.1", onListen: () => {} },
    () =>
      Response.json({
        id: "msg_1",
        type: "message",
        role: "assistant",
        model: "claude-test",
        content: [{ type: "text", text: "hi" }],
        stop_reason: "end_turn",
        usage: { input_tokens: 10, output_tokens: 5 },
      }),
  );
  const raw = await Deno.openKv(":memory:");
  let limitsT = zero(), usageT = zero();
  const kv = counted(counted(raw, () => limitsT, "limits"), () => usageT, "usage");
  const gw = await startGateway({
    config: {
      ...loadConfig({}),
      port: 0,
      host: "127.0.0.1",
      kvPath: ":memory:",
      spillPath: undefined,
    },
    registry: parseRegistry({
      providers: {
        anthropic: {
          format: "anthropic",
          base_url: `http://127.0.0.1:${upstream.addr.port}/v1`,
          api_key_env: "K",
        },
      },
      routing: { claude: ["anthropic"] },
      known_models: [{
        id: "claude-test",
        provider: "anthropic",
        pricing: { input: 3, output: 15 },
      }],
    }),
    env: (n) => n === "K" ? "secret" : undefined,
    kv,
    logSink: () => {},
  });
  const secrets: string[] = [];
  for (let i = 0; i < keys; i++) {
    const l = limits;
    secrets.push(
      (await gw.ctx.keys.create({
        name: `k${i}`,
        limits: {
          rpm: l.rpm,
          tpm: l.tpm,
          maxConcurrent: l.max_concurrent,
          dailyTokens: l.daily_token_quota,
        },
      })).secret,
    );
  }
  const call = (secret: string) =>
    fetch(`${gw.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": secret, "content-type": "application/json" },
      body: '{"model":"claude-test","max_tokens":64}',
    }).then((r) => r.arrayBuffer());
  // Warm up, then count.
  await Promise.all(secrets.map(call));
  await gw.ctx.usageWriter.flush();
  limitsT = zero();
  usageT = zero();
  let next = 0;
  const t0 = performance.now();
  await Promise.all(Array.from({ length: concurrency }, async (_, c) => {
    for (;;) {
      const n = next++;
      if (n >= requests) return;
      await call(secrets[(n + c) % secrets.length]);
    }
  }));
  const rps = requests / ((performance.now() - t0) / 1000);
  await gw.shutdown();
  raw.close();
  await upstream.shutdown();
  return { limitsT, usageT, rps };
}

const per = (n: number, of: number) => (n / of).toFixed(n / of < 10 ? 2 : 0);

if (import.meta.main) {
  console.log("## Usage writes per second at 1,000 requests/s (USAGE_FLUSH_MS=100)\n");
  console.log(
    "| keys | models | request log | commits/s | mutations/s (sum+max+set+check) | KiB/s written |",
  );
  console.log("| ---: | ---: | :---: | ---: | ---: | ---: |");
  for (const [keys, models] of [[1, 1], [10, 2], [100, 3], [1000, 1]]) {
    for (const days of [7, 0]) {
      const t = await usageSecond(keys, models, days);
      const muts = t.sum + t.max + t.set + t.delete;
      console.log(
        `| ${keys} | ${models} | ${days > 0 ? "on" : "off"} | ${t.commits} | ${
          muts + t.check
        } (${t.sum}+${t.max}+${t.set}+${t.check}) | ${Math.round(t.bytes / 1024)} |`,
      );
    }
  }
  console.log(
    "\n## Limit store per request (keys with rpm, tpm, max_concurrent and a daily quota)\n",
  );
  console.log(
    "| keys | concurrency | requests/s here | commits per request | mutations per request | reads per request |",
  );
  console.log("| ---: | ---: | ---: | ---: | ---: | ---: |");
  const limits = { rpm: 1e9, tpm: 1e12, max_concurrent: 1e6, daily_token_quota: 1e12 };
  for (const [keys, concurrency] of [[1, 1], [1, 16], [1, 64], [10, 64]]) {
    const n = 2000;
    const { limitsT: t, rps } = await limitsRun(limits, keys, concurrency, n);
    const muts = t.sum + t.max + t.set + t.delete;
    console.log(
      `| ${keys} | ${concurrency} | ${Math.round(rps)} | ${per(t.commits, n)} | ${per(muts, n)} | ${
        per(t.reads, n)
      } |`,
    );
  }
}
