/**
 * The gateway as a process through a KV outage, and on a remote KV:
 *
 * - another process holds SQLite's write lock on the gateway's KV file, so
 *   every KV write fails (after SQLite's busy wait) while requests are still
 *   served; a SIGTERM then writes the usage held in memory to the spill
 *   file, and the next start, with the lock gone, replays it exactly once;
 * - a `KV_PATH` URL goes to Deno KV Connect as it is, with
 *   `DENO_KV_ACCESS_TOKEN` as its bearer token, and no local folder is made.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { spawnGateway } from "./support/child.ts";
import { createKeyIn, usageIn } from "./support/kv_file.ts";
import { MAIN, runCommand } from "./support/process.ts";
import { anthropicMessage } from "./support/replies.ts";
import { holdWriteLock } from "./support/sqlite_lock.ts";
import { fakeUpstream } from "./support/upstream.ts";
import { waitFor } from "./support/wait.ts";
import { readRequestLog } from "../lib/store/request_log.ts";

function modelsFile(upstream: string) {
  return JSON.stringify({
    providers: { up: { format: "anthropic", base_url: upstream, api_key_env: "UP_KEY" } },
    routing: { claude: ["up"] },
    known_models: [{ id: "claude-test", provider: "up" }],
  });
}

const call = (url: string, secret: string) =>
  fetch(`${url}/v1/messages`, {
    method: "POST",
    headers: { "x-api-key": secret, "content-type": "application/json" },
    body: JSON.stringify({ model: "claude-test", max_tokens: 16 }),
  });

async function requestLogSize(path: string): Promise<number> {
  const kv = await Deno.openKv(path);
  try {
    const page = await readRequestLog(kv, { limit: 1000 });
    return page.requests.length;
  } finally {
    kv.close();
  }
}

const logged = (output: string[], msg: string) =>
  output.map((l) => JSON.parse(l)).filter((j) => j.msg === msg);

Deno.test("SIGTERM during a KV outage spills the held usage; the next start replays it once", async () => {
  const up = fakeUpstream(() =>
    Response.json(anthropicMessage({ input_tokens: 10, output_tokens: 5 }))
  );
  const dir = await Deno.makeTempDir();
  const kvPath = `${dir}/gw.kv`;
  const spillPath = `${kvPath}.spill.jsonl`;
  await Deno.writeTextFile(`${dir}/models.json`, modelsFile(up.url));
  const secret = await createKeyIn(kvPath, "outage");
  const env = { KV_TIMEOUT_MS: "500", SHUTDOWN_GRACE_MS: "2000" };
  try {
    const first = await spawnGateway(dir, env);
    // Another process takes the database's write lock: every write the gateway tries fails.
    const lock = await holdWriteLock(kvPath);
    try {
      for (let i = 0; i < 20; i++) {
        const res = await call(first.url, secret);
        assertEquals(res.status, 200, "served while KV fails");
        await res.body?.cancel();
      }
      await waitFor("/health shows the usage held", async () => {
        const h = await (await fetch(`${first.url}/health`)).json();
        return h.status === "degraded" && h.degraded.includes("usage_writes_failing") &&
          h.usage_backlog.requests === 20;
      }, 30_000);
      first.proc.kill("SIGTERM");
      assertEquals((await first.proc.status).code, 0);
    } finally {
      await lock.release();
    }
    const spilled = logged(first.output, "usage spilled to disk");
    assertEquals(spilled.reduce((n, j) => n + j.requests, 0), 20, first.output.join("\n"));
    assert((await Deno.stat(spillPath)).size > 0, "the spill file holds them");
    assertEquals(await usageIn(kvPath), [], "none of it reached KV");

    const second = await spawnGateway(dir, env);
    try {
      // Read only once it has stopped: the test's own connections stay off a file in use.
      await waitFor(
        "the spill file is replayed",
        () => logged(second.output, "spilled usage written to KV").length > 0,
        30_000,
      );
      assertEquals((await Deno.stat(spillPath)).size, 0, "and emptied");
    } finally {
      second.proc.kill("SIGTERM");
      assertEquals((await second.proc.status).code, 0);
    }
    assertEquals(logged(second.output, "spilled usage found; replaying it into KV").length, 1);
    assertEquals(logged(second.output, "spilled usage written to KV")[0]?.requests, 20);
    const rows = await usageIn(kvPath);
    assertEquals(rows.length, 1);
    assertEquals(
      [rows[0].counters.requests, rows[0].counters.input_uncached, rows[0].counters.output],
      [20, 200, 100],
      "written exactly once",
    );
    assertEquals(await requestLogSize(kvPath), 20, "each request's log entry too");
  } finally {
    await up.close();
    await Deno.remove(dir, { recursive: true });
  }
});

/** Runs `main.ts` (serve) with only the environment given, in `cwd`. */
function serveWith(cwd: string, env: Record<string, string>) {
  const keep: Record<string, string> = {};
  for (const name of ["PATH", "HOME", "DENO_DIR", "XDG_CACHE_HOME"]) {
    const v = Deno.env.get(name);
    if (v !== undefined) keep[name] = v;
  }
  return runCommand(
    Deno.execPath(),
    ["run", "--unstable-kv", "--unstable-no-legacy-abort", "-A", MAIN],
    {
      cwd,
      env: { ...keep, PORT: "0", HOST: "127.0.0.1", ...env },
      clearEnv: true,
      timeoutMs: 60_000,
    },
  );
}

Deno.test("KV_PATH as a URL is opened over KV Connect as given, with DENO_KV_ACCESS_TOKEN, and makes no folder", async () => {
  const seen: { method: string; url: string; auth: string | null; body: string }[] = [];
  // A KV Connect metadata endpoint that turns the gateway away after looking at what it sent.
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    seen.push({
      method: req.method,
      url: req.url,
      auth: req.headers.get("authorization"),
      body: await req.text(),
    });
    return new Response("this test serves no database", { status: 403 });
  });
  const cwd = await Deno.makeTempDir();
  const url = `http://127.0.0.1:${server.addr.port}/databases/test-db/connect?region=here`;
  try {
    const r = await serveWith(cwd, { KV_PATH: url, DENO_KV_ACCESS_TOKEN: "test-token-123" });
    assertEquals(r.code, 1, r.err);
    assertIncludes(r.err, `KV_PATH ${url}: cannot open the database`);
    assertEquals(seen.length, 1, "one metadata exchange");
    assertEquals(seen[0].method, "POST");
    assertEquals(seen[0].url, url, "the URL exactly as configured");
    assertEquals(seen[0].auth, "Bearer test-token-123");
    assertIncludes(seen[0].body, "supportedVersions");
    assertEquals([...Deno.readDirSync(cwd)].map((e) => e.name), [], "no folder made for a URL");

    // Without the token, the error names the variable to set, and nothing is sent.
    const bare = await serveWith(cwd, { KV_PATH: url });
    assertEquals(bare.code, 1);
    assertIncludes(bare.err, `KV_PATH ${url}`);
    assertIncludes(bare.err, "DENO_KV_ACCESS_TOKEN");
    assertEquals(seen.length, 1);
    assertEquals([...Deno.readDirSync(cwd)].map((e) => e.name), []);
  } finally {
    await server.shutdown();
    await Deno.remove(cwd, { recursive: true });
  }
});
