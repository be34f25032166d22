/**
 * The command line against a temporary KV: keys, usage, Luna import,
 * check-config, healthcheck, help and errors. Most cases run `runCli` in
 * process; a few run `main.ts` as a subprocess, as an admin would.
 */
import { assert, assertEquals, assertIncludes } from "./assert.ts";
import { fakeUpstream, startTestGateway, testRegistry } from "./helpers.ts";
import { runCli } from "../lib/cli/main.ts";
import { BucketClock } from "../lib/ops/clock.ts";
import { KeyStore } from "../lib/store/keys.ts";
import { countersOf, UsageStore } from "../lib/store/usage.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;
const BUNDLED = new URL("../models.json", import.meta.url).pathname;

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
    const disabled = JSON.parse((await cli(["keys", "list", "--json"], env)).out);
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
    const usage = new UsageStore(kv, new BucketClock("UTC"), 0);
    const tok = (i: number, o: number, cr = 0) => ({
      inputUncached: i,
      cacheRead: cr,
      cacheWrite: 0,
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
  const up = fakeUpstream(() => new Response("{}"));
  const t = await startTestGateway({ registry: testRegistry(up.url) });
  try {
    const port = new URL(t.url).port;
    assertEquals((await cli(["healthcheck"], { PORT: port })).status, 0);
    assertEquals((await cli(["healthcheck", "--url", `${t.url}/health`])).status, 0);
  } finally {
    await t.close();
    await up.close();
  }
  const dead = Deno.listen({ port: 0 });
  const port = (dead.addr as Deno.NetAddr).port;
  dead.close();
  const down = await cli(["healthcheck", "--timeout", "500"], { PORT: String(port) });
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
      new Deno.Command(Deno.execPath(), {
        args: ["run", "--unstable-kv", "-A", MAIN, ...args],
        env,
        stdout: "piped",
        stderr: "piped",
      }).output();
    const created = await run(["keys", "create", "first"]);
    assertEquals(created.code, 0);
    assertIncludes(new TextDecoder().decode(created.stdout), "secret: sk-gw-");
    const bad = await run(["keys", "show"]);
    assertEquals(bad.code, 2);
    const err = new TextDecoder().decode(bad.stderr).trim();
    assertEquals(err.split("\n").length, 1);
    assertIncludes(err, "missing <id>");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
