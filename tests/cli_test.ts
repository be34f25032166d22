/**
 * The command line against a temporary KV: keys, usage, Luna import,
 * check-config, healthcheck, help and errors. Most cases run `runCli` in
 * process; a few run `main.ts` as a subprocess, as an admin would.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { admin, startStack, startTestGateway } from "./support/gateway.ts";
import { freePort } from "./support/upstream.ts";
import { MAIN, ROOT, runCommand } from "./support/process.ts";
import { runCli } from "../lib/cli/main.ts";
import { parseRegistry } from "../lib/config/registry.ts";
import { BucketClock } from "../lib/ops/clock.ts";
import { KeyStore } from "../lib/store/keys.ts";
import { countersOf } from "../lib/store/usage/counters.ts";
import { UsageWriter } from "../lib/store/usage/writer.ts";

const BUNDLED = `${ROOT}/models.json`;

async function cli(args: string[], env: Record<string, string> = {}) {
  const out: string[] = [], err: string[] = [];
  const status = await runCli(args, { out: (l) => out.push(l), err: (l) => err.push(l), env });
  return { status, out: out.join("\n"), err: err.join("\n") };
}

async function tempKv() {
  const dir = await Deno.makeTempDir();
  return { dir, env: { KV_PATH: `${dir}/sub/gw.kv` } };
}

Deno.test("keys: create, list, show, disable, enable, rotate, delete, on a KV the server never opened", async () => {
  const { dir, env } = await tempKv();
  try {
    const created = await cli(
      ["keys", "create", "ci", "bot", "--allow", "deepseek", "--json"],
      env,
    );
    assertEquals(created.status, 0);
    const k = JSON.parse(created.out);
    assertEquals(k.name, "ci bot");
    assertEquals(k.allowed_providers, ["deepseek"]);
    assert(k.api_key.startsWith("sk-gw-"));

    const list = await cli(["keys", "list"], env);
    assertEquals(list.status, 0);
    assertIncludes(list.out, k.id);
    assertIncludes(list.out, "ci bot");
    assert(!list.out.includes(k.api_key), "the secret is never listed");
    assertIncludes(list.out, k.key, "masked form shown");

    const show = await cli(["keys", "show", k.id], env);
    assertIncludes(show.out, "requests: 0");

    assertEquals((await cli(["keys", "disable", k.id], env)).status, 0);
    const disabled = JSON.parse((await cli(["keys", "list", "--json"], env)).out).keys;
    assertEquals(disabled[0].enabled, false);
    assertEquals((await cli(["keys", "enable", k.id], env)).status, 0);

    const rotated = JSON.parse((await cli(["keys", "rotate", k.id, "--json"], env)).out);
    assert(rotated.api_key !== k.api_key);
    const kv = await Deno.openKv(env.KV_PATH);
    const store = new KeyStore(kv);
    await store.load();
    assertEquals(await store.lookup(k.api_key), undefined, "old secret stops working");
    assertEquals((await store.lookup(rotated.api_key))?.id, k.id);
    kv.close();

    const del = await cli(["keys", "delete", k.id], env);
    assertIncludes(del.out, "deleted");
    assertEquals((await cli(["keys", "show", k.id], env)).status, 1);
    assertIncludes((await cli(["keys", "list"], env)).out, "no keys yet");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("usage: a table by day, key and model, with filters and --json", async () => {
  const { dir, env } = await tempKv();
  try {
    const kv = await Deno.openKv(
      (await Deno.mkdir(`${dir}/sub`, { recursive: true }), env.KV_PATH),
    );
    const keys = new KeyStore(kv);
    const a = (await keys.create({ name: "alice" })).record;
    const b = (await keys.create({ name: "bob" })).record;
    const usage = new UsageWriter(kv, new BucketClock("UTC"), 0);
    const tok = (i: number, o: number, cr = 0) => ({
      inputUncached: i,
      cacheRead: cr,
      cacheWrite: 0,
      cacheWrite1h: 0,
      output: o,
      webSearch: 0,
      webFetch: 0,
    });
    usage.record(a.id, Date.parse("2026-11-01T10:00:00Z"), [
      { model: "claude-x", provider: "p", counters: countersOf(tok(10, 5, 100), 1, false, false) },
    ]);
    usage.record(a.id, Date.parse("2026-11-02T10:00:00Z"), [
      { model: "gpt-x", provider: "p", counters: countersOf(tok(7, 3), 1, true, false) },
    ]);
    usage.record(b.id, Date.parse("2026-11-02T11:00:00Z"), [
      { model: "claude-x", provider: "p", counters: countersOf(tok(1, 1), 1, false, true) },
    ]);
    await usage.flush();
    kv.close();

    const all = await cli(["usage"], env);
    assertEquals(all.status, 0);
    const lines = all.out.split("\n");
    assertIncludes(lines[0], "CACHE_READ");
    assertIncludes(all.out, "2026-11-01  alice  claude-x");
    assertIncludes(lines[lines.length - 2], "total");

    const json = JSON.parse((await cli(["usage", "--json", "--from", "2026-11-02"], env)).out);
    assertEquals(json.length, 2);
    assertEquals(json.map((r: { key_name: string }) => r.key_name).sort(), ["alice", "bob"]);
    const byKey = JSON.parse(
      (await cli(["usage", "--json", "--key", a.id, "--model", "claude-x"], env)).out,
    );
    assertEquals(byKey.length, 1);
    assertEquals(byKey[0].input, 110);
    assertEquals(byKey[0].cache_read, 100);
    assertEquals(byKey[0].output, 5);

    const bad = await cli(["usage", "--from", "yesterday"], env);
    assertEquals(bad.status, 2);
    assertIncludes(bad.err, "--from must be a date");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("import-luna: imports once; a second run changes nothing", async () => {
  const { dir, env } = await tempKv();
  try {
    const file = `${dir}/keys.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        admin_key: "sk-admin-old",
        keys: {
          "sk-luna-aaaaaaaaaaaaaaaaaaaaaa": {
            name: "team-a",
            enabled: true,
            created: "2026-01-02T03:04:05",
            usage: {
              total_input: 30,
              total_output: 12,
              total_requests: 2,
              daily: {
                "2026-10-01": {
                  input: 30,
                  output: 12,
                  requests: 2,
                  by_model: { "deepseek-chat": { total: 42, requests: 2 } },
                },
              },
            },
          },
        },
      }),
    );
    const first = await cli(["import-luna", file], env);
    assertEquals(first.status, 0);
    assertIncludes(first.out, "1 imported, 0 skipped");
    const second = await cli(["import-luna", file], env);
    assertIncludes(second.out, "0 imported, 1 skipped");
    const rows = JSON.parse((await cli(["usage", "--json"], env)).out);
    assertEquals(rows.length, 1);
    assertEquals(rows[0].requests, 2);
    assertEquals(rows[0].input + rows[0].output, 42);
    const missing = await cli(["import-luna", `${dir}/nope.json`], env);
    assertEquals(missing.status, 1);
    assertEquals(missing.err.split("\n").length, 1, "one line");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("check-config: prints the routing table; a bad file is one line naming the field", async () => {
  const ok = await cli(["check-config", BUNDLED], { CLAUDE_API_KEY: "x" });
  assertEquals(ok.status, 0);
  assertIncludes(ok.out, "valid");
  assertIncludes(ok.out, "claude*");
  assert(
    /anthropic\s+anthropic\s+https:\/\/api\.anthropic\.com\/v1\/messages\s+CLAUDE_API_KEY\s+yes/
      .test(ok.out),
  );
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(
      `${dir}/m.json`,
      '{"providers":{"x":{"format":"openai","base_url":"ftp://x"}}}',
    );
    const bad = await cli(["check-config", `${dir}/m.json`]);
    assertEquals(bad.status, 1);
    assertEquals(bad.err.split("\n").length, 1);
    assertIncludes(bad.err, "providers.x.base_url");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("check-config: an unknown field is one warning line naming the nearest known name", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const path = `${dir}/m.json`;
    await Deno.writeTextFile(
      path,
      JSON.stringify({
        providers: {
          openai: { format: "openai", base_url: "https://x.example/v1", stream_usgae: false },
        },
      }),
    );
    const r = await cli(["check-config", path]);
    assertEquals(r.status, 0, "a warning does not make the file invalid");
    assertIncludes(r.out, "valid");
    assertEquals(
      r.err,
      `warning: ${path}: providers.openai.stream_usgae: unknown field (did you mean stream_usage?)`,
    );
    const luna = await cli([
      "check-config",
      new URL("./data/luna_models.json", import.meta.url).pathname,
    ]);
    assertEquals(luna.status, 0);
    assertEquals(luna.err, "", "Luna's own file has no warning");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("healthcheck: 0 when the gateway answers, 1 when it does not", async () => {
  const { t, close } = await startStack(() => new Response("{}"));
  try {
    const port = new URL(t.url).port;
    assertEquals((await cli(["healthcheck"], { PORT: port })).status, 0);
    assertEquals((await cli(["healthcheck", "--url", `${t.url}/health`])).status, 0);
  } finally {
    await close();
  }
  const down = await cli(["healthcheck", "--timeout", "500"], { PORT: String(freePort()) });
  assertEquals(down.status, 1);
  assertIncludes(down.err, "unhealthy");
});

Deno.test("help on every command; unknown commands and flags fail with one line", async () => {
  for (const cmd of ["serve", "keys", "usage", "import-luna", "check-config", "healthcheck"]) {
    const r = await cli([cmd, "--help"]);
    assertEquals(r.status, 0, cmd);
    assertIncludes(r.out, "Usage:");
  }
  const main = await cli(["--help"]);
  assertIncludes(main.out, "healthcheck");
  const unknown = await cli(["frobnicate"]);
  assertEquals(unknown.status, 2);
  assertEquals(
    unknown.err,
    'llm-gateway: unknown command "frobnicate" (run with --help for the list)',
  );
  const flag = await cli(["usage", "--bogus"]);
  assertEquals(flag.status, 2);
  assertEquals(flag.err.split("\n").length, 1);
});

Deno.test("the entry point as an admin runs it: first key before the server starts; errors exit non-zero", async () => {
  const { dir, env } = await tempKv();
  try {
    const run = (args: string[]) =>
      runCommand(Deno.execPath(), ["run", "--unstable-kv", "-A", MAIN, ...args], {
        env,
        timeoutMs: 60_000,
      });
    const created = await run(["keys", "create", "first"]);
    assertEquals(created.code, 0);
    assertIncludes(created.out, "secret: sk-gw-");
    const bad = await run(["keys", "show"]);
    assertEquals(bad.code, 2);
    const err = bad.err.trim();
    assertEquals(err.split("\n").length, 1);
    assertIncludes(err, "missing <id>");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- the CLI and the admin API agree ----

/** A test gateway and the CLI on one KV file, both with the bundled registry. */
async function sharedKv() {
  const { dir, env } = await tempKv();
  await Deno.mkdir(`${dir}/sub`, { recursive: true });
  const kv = await Deno.openKv(env.KV_PATH);
  const registry = parseRegistry(JSON.parse(await Deno.readTextFile(BUNDLED)), BUNDLED);
  const t = await startTestGateway({ registry, kv, config: { keysRefreshMs: 50 } });
  const cliEnv = { ...env, MODELS_CONFIG: BUNDLED };
  return {
    t,
    run: (args: string[]) => cli(args, cliEnv),
    call: (method: string, path: string, body?: unknown) => admin(t.url, method, path, body),
    /** Usage for a key, as live traffic would have recorded it. */
    async use(keyId: string, at: string, requests: number) {
      for (let i = 0; i < requests; i++) {
        t.gw.ctx.usageWriter.record(keyId, Date.parse(at), [{
          model: "deepseek-chat",
          provider: "deepseek",
          counters: countersOf(
            {
              inputUncached: 10,
              cacheRead: 5,
              cacheWrite: 0,
              cacheWrite1h: 0,
              output: 7,
              webSearch: 0,
              webFetch: 0,
            },
            1,
            false,
            false,
          ),
        }]);
      }
      await t.gw.ctx.usageWriter.flush();
    },
    async close() {
      await t.close();
      kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

Deno.test("CLI and API agree: real dates only, from <= to, known providers, existing key ids", async () => {
  const s = await sharedKv();
  try {
    // Dates: the same values are accepted and refused by both.
    for (const d of ["2026-11-01", "2024-02-29", "2026-02-30", "2026-13-01", "2026-3-1", "today"]) {
      const api = await s.call("GET", `/admin/usage/daily?from=${d}`);
      const cmd = await s.run(["usage", "--from", d]);
      assertEquals(
        api.status === 200,
        cmd.status === 0,
        `${d}: API ${api.status}, CLI ${cmd.status}`,
      );
      if (api.status !== 200) {
        assertEquals(api.status, 400, d);
        assertIncludes(String(api.json.detail), "YYYY-MM-DD");
        assertEquals(cmd.status, 2, d);
        assertIncludes(cmd.err, "--from must be a date as YYYY-MM-DD");
      }
    }

    // A reversed range is a clear error in both, never a crash or an empty report.
    for (const path of ["/admin/usage/daily", `/admin/keys/${s.t.keyId}/usage`]) {
      const api = await s.call("GET", `${path}?from=2026-11-30&to=2026-11-01`);
      assertEquals(api.status, 400, path);
      assertEquals((api.json.error as Record<string, string>).code, "invalid_date_range");
      assertIncludes(String(api.json.detail), "from (2026-11-30) is after to (2026-11-01)");
    }
    const reversed = await s.run(["usage", "--from", "2026-11-30", "--to", "2026-11-01"]);
    assertEquals(reversed.status, 2);
    assertIncludes(reversed.err, "--from (2026-11-30) is after --to (2026-11-01)");
    assertEquals((await s.run(["usage", "--from", "2026-11-01", "--to", "2026-11-01"])).status, 0);

    // Providers: ids the registry knows, in both.
    const apiBad = await s.call("POST", "/admin/keys", { name: "x", allowed_providers: ["nope"] });
    assertEquals(apiBad.status, 400);
    assertIncludes(String(apiBad.json.detail), 'unknown provider "nope"');
    const cliBad = await s.run(["keys", "create", "x", "--allow", "deepseek,nope"]);
    assertEquals(cliBad.status, 2);
    assertIncludes(cliBad.err, 'unknown provider "nope"');
    assertIncludes(cliBad.err, "--allow");
    assertEquals(JSON.parse((await s.run(["keys", "list", "--json"])).out).keys.length, 1);
    assertEquals(
      (await s.call("POST", "/admin/keys", { name: "x", allowed_providers: ["deepseek"] })).status,
      200,
    );
    assertEquals((await s.run(["keys", "create", "y", "--allow", "deepseek"])).status, 0);

    // Key ids: one that does not exist is "not found" in both.
    const ghost = "01HZZZZZZZZZZZZZZZZZZZZZZZ";
    assertEquals((await s.call("GET", `/admin/keys/${ghost}/usage`)).status, 404);
    for (const args of [["usage", "--key", ghost], ["keys", "show", ghost]]) {
      const r = await s.run(args);
      assertEquals(r.status, 1, args.join(" "));
      assertIncludes(r.err, "no API key with that id");
    }
  } finally {
    await s.close();
  }
});

Deno.test("usage --key with an unknown or deleted id says so and exits 1", async () => {
  const s = await sharedKv();
  try {
    await s.use(s.t.keyId, "2026-11-02T10:00:00Z", 1);
    const ok = await s.run(["usage", "--key", s.t.keyId]);
    assertEquals(ok.status, 0);
    assertIncludes(ok.out, "deepseek-chat");
    const unknown = await s.run(["usage", "--key", "no-such-key"]);
    assertEquals(unknown.status, 1);
    assertEquals(unknown.err.split("\n").length, 1);
    assertIncludes(unknown.err, "no API key with that id");
    assertEquals(unknown.out, "", "not an empty report");
    assertEquals((await s.run(["keys", "delete", s.t.keyId])).status, 0);
    assertEquals((await s.run(["usage", "--key", s.t.keyId])).status, 1);
  } finally {
    await s.close();
  }
});

Deno.test("keys --json prints what the admin API returns; rotate keeps the key's real totals", async () => {
  const s = await sharedKv();
  try {
    await s.use(s.t.keyId, "2026-11-02T10:00:00Z", 3);
    const show = JSON.parse((await s.run(["keys", "show", s.t.keyId, "--json"])).out);
    assertEquals(show, (await s.call("GET", `/admin/keys/${s.t.keyId}`)).json);
    assertEquals(show.total_requests, 3);
    assertEquals(show.total_input, 45);
    assertEquals(
      JSON.parse((await s.run(["keys", "list", "--json"])).out),
      (await s.call("GET", "/admin/keys")).json,
    );

    const rotated = JSON.parse((await s.run(["keys", "rotate", s.t.keyId, "--json"])).out);
    assertEquals(rotated.status, "rotated");
    assert(rotated.api_key.startsWith("sk-gw-") && rotated.api_key !== s.t.secret);
    const { api_key: _, status: __, key: ___, ...rest } = rotated;
    const { key: ____, ...before } = show;
    assertEquals(rest, before, "rotation keeps id, name and totals");
    const text = await s.run(["keys", "rotate", s.t.keyId]);
    assertEquals(text.status, 0);
    assertIncludes(text.out, "total_requests: 3");
    assertIncludes(text.out, "total_input: 45");

    // The API's rotate answers with the same totals.
    const api = await s.call("POST", `/admin/keys/${s.t.keyId}/rotate`);
    assertEquals(api.status, 200);
    assertEquals([api.json.total_requests, api.json.total_output], [3, 21]);

    const created = JSON.parse((await s.run(["keys", "create", "new", "--json"])).out);
    assertEquals(
      Object.keys(created).sort(),
      [
        "api_key",
        ...Object.keys((await s.call("GET", `/admin/keys/${s.t.keyId}`)).json),
      ].sort(),
    );
    const disabled = JSON.parse((await s.run(["keys", "disable", created.id, "--json"])).out);
    assertEquals(disabled, { status: "disabled", name: "new", id: created.id });
  } finally {
    await s.close();
  }
});

Deno.test("import-luna again with a changed file: says which keys differ and leaves them as they are", async () => {
  const { dir, env } = await tempKv();
  try {
    const file = `${dir}/keys.json`;
    const luna = (over: Record<string, unknown>, requests = 2) => ({
      keys: {
        "sk-luna-aaaaaaaaaaaaaaaaaaaaaa": {
          name: "team-a",
          enabled: true,
          allowed_providers: ["deepseek"],
          usage: { total_input: 30, total_output: 12, total_requests: requests },
          ...over,
        },
        "sk-luna-bbbbbbbbbbbbbbbbbbbbbb": { name: "team-b" },
      },
    });
    await Deno.writeTextFile(file, JSON.stringify(luna({})));
    assertIncludes((await cli(["import-luna", file], env)).out, "2 imported, 0 skipped");
    const same = await cli(["import-luna", file], env);
    assert(!same.out.includes("differs"), same.out);

    await Deno.writeTextFile(
      file,
      JSON.stringify(luna({ name: "team-a2", enabled: false, allowed_providers: null }, 5)),
    );
    const again = await cli(["import-luna", file], env);
    assertEquals(again.status, 0);
    assertIncludes(again.out, "differs: name, enabled, allowed_providers, usage");
    assertIncludes(again.out, "0 imported, 2 skipped");
    assertIncludes(again.out, "1 differs from the file and was left as it is");
    assertEquals(again.out.split("\n").filter((l) => l.includes("differs:")).length, 1);
    const keys = JSON.parse((await cli(["keys", "list", "--json"], env)).out).keys;
    const a = keys.find((k: { name: string }) => k.name === "team-a");
    assert(a, "not renamed");
    assertEquals([a.enabled, a.allowed_providers, a.total_requests], [true, ["deepseek"], 2]);
    assertIncludes((await cli(["import-luna", "--help"])).out, "differs");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
