/**
 * Every request gets one log line and is counted in /metrics, including
 * those the gateway refuses itself; log lines cannot be forged through client
 * input; LOG_LEVEL=debug shows each upstream attempt; client-chosen model
 * names never become metric labels.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { ADMIN_KEY, post, startStack, TEST_ENV, testRegistry } from "./support/gateway.ts";
import { anthropicMessage } from "./support/replies.ts";

/** The parsed JSON log lines whose `msg` is `msg`. */
function lines(logs: string[], msg: string): Record<string, unknown>[] {
  return logs.map((l) => JSON.parse(l)).filter((j) => j.msg === msg);
}

async function metrics(url: string): Promise<string> {
  const res = await fetch(`${url}/metrics`, { headers: { "x-api-key": ADMIN_KEY } });
  return await res.text();
}

Deno.test("refused requests each get one log line with status and reason, and are counted", async () => {
  const stack = await startStack(
    () => Response.json(anthropicMessage({ input_tokens: 3, output_tokens: 4 })),
    {
      config: { maxBodyBytes: 2048 },
      // The OpenAI provider's secret is not set: its models answer 503.
      env: { ...TEST_ENV, OPENAI_TEST_KEY: "" },
    },
  );
  const { t } = stack;
  const key = { "x-api-key": t.secret };
  try {
    const cases: [() => Promise<Response>, number, string][] = [
      [() => post(`${t.url}/v1/messages`, { model: "claude-test" }), 401, "missing_api_key"],
      [
        () => post(`${t.url}/v1/messages`, { model: "claude-test" }, { "x-api-key": "sk-nope" }),
        401,
        "invalid_api_key",
      ],
      [() => post(`${t.url}/v1/messages`, "{not json", key), 400, "invalid_json"],
      [
        () => post(`${t.url}/v1/messages`, { model: "nobody-serves-this" }, key),
        400,
        "model_not_found",
      ],
      [
        () => post(`${t.url}/v1/messages`, { model: "claude-test", pad: "x".repeat(4096) }, key),
        413,
        "request_too_large",
      ],
      [
        () => post(`${t.url}/v1/chat/completions`, { model: "gpt-test" }, key),
        503,
        "provider_not_configured",
      ],
      [() => fetch(`${t.url}/v1/nowhere`, { headers: key }), 404, "not_found"],
      [() => fetch(`${t.url}/v1/messages`, { headers: key }), 405, "method_not_allowed"],
      [() => fetch(`${t.url}/admin/keys`), 401, "missing_api_key"],
    ];
    for (const [p, status] of cases) {
      const res = await p();
      assertEquals(res.status, status);
      await res.body?.cancel();
    }
    const refused = lines(t.logs, "request");
    assertEquals(refused.length, cases.length, "one line per request");
    for (const [i, [, status, reason]] of cases.entries()) {
      assertEquals(refused[i].status, status, `line ${i}`);
      assertEquals(refused[i].reason, reason, `line ${i}`);
      assert(typeof refused[i].request_id === "string");
    }
    assertEquals(refused[3].model, "nobody-serves-this", "the model is in the line once read");
    assertEquals(refused[3].key_id, t.keyId, "and so is the key");

    const ok = await post(`${t.url}/v1/messages`, { model: "claude-test" }, key);
    assertEquals(ok.status, 200);
    await ok.body?.cancel();
    const text = await metrics(t.url);
    assert(text.includes('gateway_http_requests_total{route="/v1/messages",status_class="4xx"} 6'));
    assert(text.includes('gateway_http_requests_total{route="/v1/messages",status_class="2xx"} 1'));
    assert(text.includes('gateway_http_requests_total{route="unmatched",status_class="4xx"} 1'));
    assert(text.includes('gateway_refused_requests_total{reason="invalid_api_key"} 1'));
    assert(text.includes('gateway_refused_requests_total{reason="provider_not_configured"} 1'));
  } finally {
    await stack.close();
  }
});

Deno.test("LOG_FORMAT=pretty: client input cannot forge log lines", async () => {
  const stack = await startStack(
    () => Response.json(anthropicMessage({ input_tokens: 3, output_tokens: 4 })),
    {
      config: { logFormat: "pretty" },
    },
  );
  const { t } = stack;
  try {
    const forged = 'claude-x\n2026-11-30T00:00:00.000Z INFO  request key_id=admin status=200 "';
    const res = await post(`${t.url}/v1/messages`, { model: forged }, { "x-api-key": t.secret });
    await res.body?.cancel();
    for (const l of t.logs) assert(!/[\n\r]/.test(l), `one physical line: ${JSON.stringify(l)}`);
    const line = t.logs.find((l) => l.includes(" request "))!;
    assert(line.includes(`model=${JSON.stringify(forged)}`), line);
  } finally {
    await stack.close();
  }
});

Deno.test("LOG_LEVEL=debug logs each upstream attempt", async () => {
  let n = 0;
  const stack = await startStack(
    () =>
      n++ === 0
        ? Response.json({ type: "error", error: { type: "overloaded_error" } }, { status: 529 })
        : Response.json(anthropicMessage({ input_tokens: 3, output_tokens: 4 })),
    {
      config: { logLevel: "debug" },
      registry: (url) => testRegistry(url, { defaults: { retries: { max: 1, base_delay_ms: 1 } } }),
    },
  );
  const { t } = stack;
  try {
    const res = await post(`${t.url}/v1/messages`, { model: "claude-test" }, {
      "x-api-key": t.secret,
    });
    assertEquals(res.status, 200);
    await res.body?.cancel();
    const attempts = [
      ...lines(t.logs, "upstream attempt failed"),
      ...lines(t.logs, "upstream attempt"),
    ];
    assertEquals(attempts.map((a) => [a.attempt, a.status]), [[1, 529], [2, 200]]);
    assert(attempts.every((a) => a.provider === "anthropic" && typeof a.ms === "number"));
  } finally {
    await stack.close();
  }
});

Deno.test("metrics: 2,100 client-chosen model names do not crowd out a real model's series", async () => {
  const stack = await startStack(() =>
    Response.json(anthropicMessage({ input_tokens: 3, output_tokens: 4 }))
  );
  const { t } = stack;
  try {
    const key = { "x-api-key": t.secret };
    for (let i = 0; i < 2100; i += 50) {
      await Promise.all(
        Array.from({ length: 50 }, async (_, j) => {
          const res = await post(`${t.url}/v1/messages`, { model: `claude-junk-${i + j}` }, key);
          await res.body?.cancel();
        }),
      );
    }
    const res = await post(`${t.url}/v1/messages`, { model: "claude-test" }, key);
    await res.body?.cancel();
    const text = await metrics(t.url);
    assert(!text.includes("claude-junk"), "no label holds a client's model name");
    assert(
      text.includes(
        'gateway_requests_total{endpoint="/v1/messages",model="claude*",provider="anthropic",status_class="2xx"} 2100',
      ),
      "unknown names are counted under the prefix that routes them",
    );
    assert(
      text.includes(
        'gateway_requests_total{endpoint="/v1/messages",model="claude-test",provider="anthropic",status_class="2xx"} 1',
      ),
    );
  } finally {
    await stack.close();
  }
});
