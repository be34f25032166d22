/**
 * Process lifecycle: graceful shutdown on SIGTERM with a live stream (the
 * gateway runs as a subprocess, as in production) and live reload of
 * models.json (good file, broken file, SIGHUP).
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { ADMIN_KEY, testConfig } from "./support/gateway.ts";
import { bodyJson, fakeUpstream } from "./support/upstream.ts";
import { chunkedResponse } from "./support/streams.ts";
import { anthropicSse } from "./support/replies.ts";
import { delay, waitFor } from "./support/wait.ts";
import { spawnGateway } from "./support/child.ts";
import { startGateway } from "../lib/ops/server.ts";
import { createKeyIn, usageIn } from "./support/kv_file.ts";

const START = anthropicSse.start({ input_tokens: 7, output_tokens: 1 });
const DELTA = anthropicSse.delta();
const END = anthropicSse.end({ output_tokens: 9 });

/** START, `deltas` DELTAs and END, `gapMs` apart. */
function slowStream(deltas: number, gapMs: number): Response {
  return chunkedResponse([START, ...Array(deltas).fill(DELTA), END], { gapMs });
}

function modelsFile(upstream: string, extraRouting: Record<string, string[]> = {}) {
  return JSON.stringify({
    providers: {
      up: { format: "anthropic", base_url: upstream, api_key_env: "UP_KEY" },
    },
    routing: { claude: ["up"], ...extraRouting },
    known_models: [{ id: "claude-test", provider: "up" }],
  });
}

async function prepare(upstream: string) {
  const dir = await Deno.makeTempDir();
  await Deno.writeTextFile(`${dir}/models.json`, modelsFile(upstream));
  const secret = await createKeyIn(`${dir}/gw.kv`, "shutdown-test");
  return { dir, secret };
}

function streamCall(url: string, secret: string) {
  return fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": secret, "content-type": "application/json" },
    body: JSON.stringify({ model: "claude-test", stream: true }),
  });
}

Deno.test("SIGHUP on the bundled models.json is logged, not fatal", async () => {
  const dir = await Deno.makeTempDir();
  // No MODELS_CONFIG and no ./models.json in the working folder: the bundled copy is served.
  const child = await spawnGateway(dir, { MODELS_CONFIG: "" }, dir);
  try {
    assert(child.output.some((l) => l.includes("using the bundled one")));
    child.proc.kill("SIGHUP");
    for (let i = 0; i < 100 && !child.output.some((l) => l.includes("SIGHUP")); i++) {
      await new Promise((r) => setTimeout(r, 50));
    }
    assert(child.output.some((l) => l.includes("nothing to reload")), child.output.join("\n"));
    const res = await fetch(`${child.url}/health`);
    assertEquals(res.status, 200);
    await res.body?.cancel();
  } finally {
    try {
      child.proc.kill("SIGTERM");
    } catch {
      // It already ended: the assertions above say why.
    }
    await child.proc.status;
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM: a live stream finishes within the grace period, usage is written, exit 0", async () => {
  const up = fakeUpstream(() => slowStream(6, 60));
  const { dir, secret } = await prepare(up.url);
  const child = await spawnGateway(dir, { SHUTDOWN_GRACE_MS: "5000" });
  try {
    const res = await streamCall(child.url, secret);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = (await reader.read()).value ?? "";
    child.proc.kill("SIGTERM");
    await delay(100);
    const refused = await fetch(`${child.url}/health`).then(() => false, () => true);
    assert(refused, "no new connections once shutting down");
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
    assertEquals(text, START + DELTA.repeat(6) + END, "the stream completed untouched");
    const status = await child.proc.status;
    assertEquals(status.code, 0);
    const rows = await usageIn(`${dir}/gw.kv`);
    assertEquals(rows.length, 1);
    assertEquals(rows[0].counters.requests, 1);
    assertEquals(rows[0].counters.output, 9);
    assertEquals(rows[0].counters.incomplete, 0);
    assert(child.output.some((l) => l.includes('"gateway stopped"')));
  } finally {
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("SIGTERM: a stream outliving the grace period ends with an error event and counts as incomplete", async () => {
  const up = fakeUpstream(() => slowStream(100, 50));
  const { dir, secret } = await prepare(up.url);
  const child = await spawnGateway(dir, { SHUTDOWN_GRACE_MS: "200" });
  try {
    const res = await streamCall(child.url, secret);
    const reader = res.body!.pipeThrough(new TextDecoderStream()).getReader();
    let text = (await reader.read()).value ?? "";
    child.proc.kill("SIGTERM");
    for (;;) {
      const { done, value } = await reader.read();
      if (done) break;
      text += value;
    }
    assert(text.startsWith(START));
    assertIncludes(text, "event: error\ndata: ");
    assertIncludes(text, "shutting down");
    assertEquals((await child.proc.status).code, 0);
    const [row] = await usageIn(`${dir}/gw.kv`);
    assertEquals(row.counters.requests, 1);
    assertEquals(row.counters.incomplete, 1);
    assertEquals(row.counters.input_uncached, 7, "what was metered before the end is kept");
  } finally {
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("live reload: a good file applies without restart, a broken one is refused, SIGHUP reloads", async () => {
  let release: () => void = () => {};
  const up = fakeUpstream((s) => {
    if (bodyJson(s).slow) {
      return new Promise((r) => release = () => r(Response.json({ type: "message", usage: {} })));
    }
    return Response.json({ type: "message", usage: { input_tokens: 1, output_tokens: 1 } });
  });
  const dir = await Deno.makeTempDir();
  const path = `${dir}/models.json`;
  await Deno.writeTextFile(path, modelsFile(up.url));
  const kv = await Deno.openKv(":memory:");
  const gw = await startGateway({
    config: testConfig({ modelsPath: path }),
    kv,
    env: (n) => (n === "UP_KEY" ? "k" : undefined),
    logSink: () => {},
  });
  const { secret } = await gw.ctx.keys.create({ name: "reload" });
  const call = (model: string, extra = {}) =>
    fetch(`${gw.url}/v1/messages`, {
      method: "POST",
      headers: { "x-api-key": secret },
      body: JSON.stringify({ model, ...extra }),
    });
  try {
    assertEquals((await call("opus-new")).status, 400, "not routed yet");
    // A request in flight keeps the configuration it started with.
    const inflight = call("claude-test", { slow: true });
    await waitFor("the slow request reached the upstream", () => up.seen.length === 1);

    await Deno.writeTextFile(path, modelsFile(up.url, { opus: ["up"] }));
    await waitFor("the new file applied", () => gw.ctx.registry.resolve("opus-new") !== null);
    const routed = await call("opus-new");
    assertEquals(routed.status, 200);
    await routed.body?.cancel();

    await Deno.writeTextFile(path, '{"providers": {"up": {"format": "grpc"}}}');
    await waitFor("the broken file refused", () => gw.ctx.registryStatus.error !== undefined);
    assert(gw.ctx.registry.resolve("opus-new"), "old config stays in force");
    const st = await fetch(`${gw.url}/admin/models`, { headers: { "x-api-key": ADMIN_KEY } });
    const j = await st.json();
    assertIncludes(j.config.last_reload_error.message, "providers.up");

    release();
    assertEquals((await inflight).status, 200);

    // Fix the file without a watch event reaching us in time: SIGHUP reloads.
    await Deno.writeTextFile(path, modelsFile(up.url));
    Deno.kill(Deno.pid, "SIGHUP");
    await waitFor("SIGHUP reloaded", () => gw.ctx.registry.resolve("opus-new") === null);
    assertEquals(gw.ctx.registryStatus.error, undefined);
  } finally {
    await gw.shutdown();
    kv.close();
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("live reload: reverting a bad edit to the file in force clears last_reload_error", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/models.json`;
  const good = modelsFile("http://127.0.0.1:9");
  await Deno.writeTextFile(path, good);
  const kv = await Deno.openKv(":memory:");
  const gw = await startGateway({
    config: testConfig({ modelsPath: path }),
    kv,
    logSink: () => {},
  });
  const status = async () => {
    const res = await fetch(`${gw.url}/admin/models`, { headers: { "x-api-key": ADMIN_KEY } });
    return (await res.json()).config.last_reload_error;
  };
  const waitFor = async (cond: () => Promise<boolean>) => {
    for (let i = 0; i < 100 && !(await cond()); i++) await new Promise((r) => setTimeout(r, 30));
    assert(await cond(), "condition not reached in time");
  };
  try {
    assertEquals(await status(), null);
    await Deno.writeTextFile(path, '{"providers": {"up": {"format": "grpc"}}}');
    await waitFor(async () => (await status()) !== null);
    assertIncludes((await status()).message, "providers.up");
    // Back to the exact content in force: nothing to reload, and nothing wrong any more.
    await Deno.writeTextFile(path, good);
    await waitFor(async () => (await status()) === null);
    assertEquals(gw.ctx.registry.resolve("claude-test")?.chain[0].id, "up");
  } finally {
    await gw.shutdown();
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});
