/**
 * Usage stays exact under concurrency: 600 simultaneous requests (streamed
 * and not, two keys, several models, errors included) through one gateway
 * with usage coalescing on; every counter is checked.
 */
import { assertEquals } from "./support/assert.ts";
import { post, startStack } from "./support/gateway.ts";
import { bodyJson, type Seen } from "./support/upstream.ts";
import { chunkedResponse, sseData } from "./support/streams.ts";
import { anthropicSse } from "./support/replies.ts";

function anthropicStream(input: number, output: number): string[] {
  // Split mid-event so the meter must join chunks.
  const text = anthropicSse.start({ input_tokens: input, output_tokens: 1 }, "m") +
    anthropicSse.delta("ok") + anthropicSse.end({ output_tokens: output });
  const cut = Math.floor(text.length / 3);
  return [text.slice(0, cut), text.slice(cut, 2 * cut), text.slice(2 * cut)];
}

function openaiStream(prompt: number, completion: number): string[] {
  const usage = {
    prompt_tokens: prompt,
    completion_tokens: completion,
    total_tokens: prompt + completion,
  };
  return [
    sseData({ choices: [{ index: 0, delta: { content: "a" } }], usage: null }),
    sseData({ choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: null }) +
    sseData({ choices: [], usage }),
    "data: [DONE]\n\n",
  ];
}

// The upstream answers from numbers in the request, so each request's usage is known.
function upstream(s: Seen): Response {
  const b = bodyJson(s);
  const n: number = b.n;
  if (b.model === "claude-fail") {
    return Response.json({ type: "error", error: { type: "api_error", message: "boom" } }, {
      status: 500,
    });
  }
  if (s.path.endsWith("/messages")) {
    return b.stream
      ? chunkedResponse(anthropicStream(n, 2 * n), { gapMs: 1 })
      : Response.json({ type: "message", usage: { input_tokens: n, output_tokens: 2 * n } });
  }
  return b.stream ? chunkedResponse(openaiStream(n, 3), { gapMs: 1 }) : Response.json({
    choices: [],
    usage: { prompt_tokens: n, completion_tokens: 3, total_tokens: n + 3 },
  });
}

Deno.test("600 concurrent requests: every counter exact", async () => {
  const { t, close } = await startStack(upstream, {
    config: { usageFlushMs: 20, logLevel: "warn" },
  });
  const second = await t.gw.ctx.keys.create({ name: "second" });
  type Want = { requests: number; input: number; output: number; failed: number };
  const want = new Map<string, Want>();
  const add = (key: string, model: string, w: Partial<Want>) => {
    const id = `${key}|${model}`;
    const cur = want.get(id) ?? { requests: 0, input: 0, output: 0, failed: 0 };
    cur.requests += w.requests ?? 0;
    cur.input += w.input ?? 0;
    cur.output += w.output ?? 0;
    cur.failed += w.failed ?? 0;
    want.set(id, cur);
  };
  try {
    const jobs: Promise<void>[] = [];
    for (let i = 0; i < 600; i++) {
      const [keyId, secret] = i % 2 ? [t.keyId, t.secret] : [second.record.id, second.secret];
      const n = i + 1;
      const kind = i % 6;
      const job = async () => {
        let res: Response;
        if (kind === 0 || kind === 1) {
          res = await post(
            `${t.url}/v1/messages`,
            { model: "claude-test", stream: kind === 0, n },
            {
              "x-api-key": secret,
            },
          );
          add(keyId, "claude-test", { requests: 1, input: n, output: 2 * n });
        } else if (kind === 2 || kind === 3) {
          res = await post(`${t.url}/v1/chat/completions`, {
            model: "gpt-test",
            stream: kind === 2,
            n,
          }, {
            authorization: `Bearer ${secret}`,
          });
          add(keyId, "gpt-test", { requests: 1, input: n, output: 3 });
        } else if (kind === 4) {
          res = await post(`${t.url}/v1/messages/count_tokens`, { model: "claude-test", n }, {
            "x-api-key": secret,
          });
          add(keyId, "claude-test", { requests: 1 });
        } else {
          res = await post(`${t.url}/v1/messages`, { model: "claude-fail", n }, {
            "x-api-key": secret,
          });
          add(keyId, "claude-fail", { requests: 1, failed: 1 });
        }
        await res.arrayBuffer();
      };
      jobs.push(job());
    }
    await Promise.all(jobs);
    // Streams are metered after the client got its last byte: wait for them.
    await t.gw.ctx.inflight.idle(10_000);

    const rows = [
      ...(await t.gw.ctx.usageReader.byKey(t.keyId)),
      ...(await t.gw.ctx.usageReader.byKey(second.record.id)),
    ];
    const got = new Map<string, Want>();
    for (const r of rows) {
      const id = `${r.keyId}|${r.model}`;
      const cur = got.get(id) ?? { requests: 0, input: 0, output: 0, failed: 0 };
      cur.requests += r.counters.requests;
      cur.input += r.counters.input_uncached + r.counters.cache_read + r.counters.cache_write;
      cur.output += r.counters.output;
      cur.failed += r.counters.failed;
      got.set(id, cur);
    }
    assertEquals(Object.fromEntries(got), Object.fromEntries(want));

    const totals = await t.gw.ctx.usageReader.totals();
    for (const keyId of [t.keyId, second.record.id]) {
      const c = totals.get(keyId)!.counters;
      const w = [...want].filter(([k]) => k.startsWith(keyId)).map(([, v]) => v);
      assertEquals(c.requests, w.reduce((a, b) => a + b.requests, 0));
      assertEquals(c.input_uncached, w.reduce((a, b) => a + b.input, 0));
      assertEquals(c.output, w.reduce((a, b) => a + b.output, 0));
    }
    const byTime = await t.gw.ctx.usageReader.byTime();
    assertEquals(byTime.reduce((a, r) => a + r.counters.requests, 0), 600);
  } finally {
    await close();
  }
});
