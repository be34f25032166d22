/**
 * The compiled executable. `deno compile` with the flags of `deno task compile`
 * turns main.ts into one binary; the test runs it away from the source tree
 * with a cleared environment: it starts, answers /health (and its own
 * `healthcheck` command), proxies one request to a fake upstream with the
 * usage landing in KV, exits 0 on SIGTERM, and falls back to its embedded
 * models.json.
 *
 * `deno compile` needs Deno's `denort` runtime, which it downloads from
 * dl.deno.land unless it is in Deno's cache or DENORT_BIN points at it. Where
 * none of that works (our machines have no internet) the test is registered
 * as ignored and one line says why. Everything else about the binary
 * (commands, flags, embedded defaults) is tested through `deno run` of the
 * same entry point in the other test files.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { fakeUpstream, freePort } from "./support/upstream.ts";
import { anthropicMessage } from "./support/replies.ts";
import { ROOT, runCommand as run } from "./support/process.ts";
import { delay } from "./support/wait.ts";
import { createKeyIn, usageIn } from "./support/kv_file.ts";

const TASKS = (JSON.parse(Deno.readTextFileSync(`${ROOT}/deno.json`)) as {
  tasks: Record<string, string>;
}).tasks;

/** The targets README documents, by task name. */
const TARGETS: Record<string, string> = {
  "compile:linux-x64": "x86_64-unknown-linux-gnu",
  "compile:linux-arm64": "aarch64-unknown-linux-gnu",
  "compile:macos-x64": "x86_64-apple-darwin",
  "compile:macos-arm64": "aarch64-apple-darwin",
  "compile:windows-x64": "x86_64-pc-windows-msvc",
};

/** The argument list of a task command, split on blanks (our tasks quote nothing). */
const words = (task: string) => task.trim().split(/\s+/);

/** `deno compile` arguments of a task with its `-o` replaced. */
function compileArgs(task: string, output: string): string[] {
  const w = words(task);
  assertEquals(w.slice(0, 2), ["deno", "compile"], `not a deno compile task: ${task}`);
  const o = w.indexOf("-o");
  assert(o > 0, `no -o in ${task}`);
  return [...w.slice(1, o), "-o", output, ...w.slice(o + 2)];
}

/** Why this machine cannot run `deno compile`, or undefined when it can. */
async function compileBlocker(): Promise<string | undefined> {
  const zip = `denort-${Deno.build.target}.zip`;
  const bin = Deno.env.get("DENORT_BIN");
  if (bin) {
    const st = await Deno.stat(bin).catch(() => null);
    return st?.isFile ? undefined : `DENORT_BIN is set to ${bin}, which is not a file`;
  }
  const info = await run(Deno.execPath(), ["info", "--json"], { timeoutMs: 30_000 });
  const denoDir = info.code === 0 ? JSON.parse(info.out).denoDir as string : undefined;
  const cached = `${denoDir}/dl/release/v${Deno.version.deno}/${zip}`;
  if (denoDir && await Deno.stat(cached).then(() => true, () => false)) return undefined;

  // Not in the cache: deno compile would download it. Try on a one-line program (offline this
  // fails within seconds; online it fills the cache for the real compile).
  const dir = await Deno.makeTempDir({ prefix: "denort-probe-" });
  try {
    await Deno.writeTextFile(`${dir}/probe.ts`, "console.log(1);\n");
    const r = await run(
      Deno.execPath(),
      ["compile", "--no-check", "-o", `${dir}/probe`, `${dir}/probe.ts`],
      { cwd: dir, env: { NO_COLOR: "1" }, timeoutMs: 120_000 },
    );
    if (r.code === 0 && !r.timedOut) return undefined;
    const runtime = `deno compile needs its denort runtime (${zip} for Deno ${Deno.version.deno})`;
    if (r.timedOut) {
      return `${runtime}, which it downloads from dl.deno.land; the download did not finish in 120 s`;
    }
    const text = r.err + r.out;
    if (!/dl\.deno\.land|base binary/.test(text)) {
      return `deno compile failed on a one-line program: ${text.trim().split("\n").at(-1)}`;
    }
    const reason = /error sending request for url \([^)]*\): (.*)/.exec(text)?.[1] ??
      [...text.matchAll(/^\s*\d+: (.*)$/gm)].at(-1)?.[1] ??
      text.trim().split("\n").at(-1);
    return `${runtime}, which it downloads from dl.deno.land; this machine cannot reach it (${reason})`;
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
}

// ---------------------------------------------------------------------------

Deno.test("compile tasks: every target bakes in the same flags as `deno task compile`", () => {
  const base = words(TASKS.compile);
  for (const flag of ["--frozen", "--unstable-kv", "--allow-net", "--allow-env", "--allow-read"]) {
    assert(base.includes(flag), `deno task compile lacks ${flag}`);
  }
  assert(base.includes("--allow-write"), "deno task compile lacks --allow-write (KV)");
  assert(!base.some((w) => w === "-A" || w === "--allow-all"), "no blanket --allow-all");
  assertEquals(base.at(-1), "main.ts");
  const flags = (task: string) => {
    const w = words(task);
    return w.filter((x, i) =>
      x.startsWith("--") && x !== "--target" && w[i - 1] !== "--target" && w[i - 1] !== "-o"
    );
  };
  // `deno task start` / `cli` run with exactly the binary's permissions.
  for (const name of ["start", "cli"].filter((n) => TASKS[n])) {
    assertEquals(flags(TASKS[name]), flags(TASKS.compile), `${name} and compile flags differ`);
  }
  for (const [name, target] of Object.entries(TARGETS)) {
    const task = TASKS[name];
    assert(task, `deno.json lacks the task ${name}`);
    const w = words(task);
    assertEquals(w[w.indexOf("--target") + 1], target, `${name} --target`);
    const out = w[w.indexOf("-o") + 1];
    assertEquals(out, `dist/llm-gateway-${target}${target.includes("windows") ? ".exe" : ""}`);
    assertEquals(flags(task), flags(TASKS.compile), `${name} flags differ from compile`);
    assertEquals(w.at(-1), "main.ts");
  }
  assertEquals(
    TASKS["compile:all"],
    Object.keys(TARGETS).map((n) => `deno task ${n}`).join(" && "),
    "compile:all builds every target",
  );
});

/** The compiled binary serving as a child process. */
interface Running {
  base: string;
  health: Record<string, unknown>;
  output(): string;
  /** SIGTERM, then the exit code (SIGKILL after 30 s). */
  stop(): Promise<number>;
  /** SIGKILL if still running; for cleanup. */
  kill(): Promise<void>;
}

/** Starts `exe` (serve, the default command) and waits until /health answers 200. */
async function startBinary(exe: string, cwd: string, env: Record<string, string>) {
  const proc = new Deno.Command(exe, {
    cwd,
    env,
    clearEnv: true,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let output = "";
  const drain = (s: ReadableStream<Uint8Array>) =>
    s.pipeThrough(new TextDecoderStream()).pipeTo(
      new WritableStream({ write: (c) => void (output += c) }),
    );
  const drained = Promise.all([drain(proc.stdout), drain(proc.stderr)]);
  let exited = false;
  const status = proc.status.finally(() => exited = true);
  const kill = async () => {
    if (!exited) proc.kill("SIGKILL");
    await status;
    await drained;
  };
  const base = `http://127.0.0.1:${env.PORT}`;
  let health: Record<string, unknown> | undefined;
  try {
    for (const until = Date.now() + 30_000; !health && Date.now() < until;) {
      assert(!exited, `the binary exited before serving:\n${output}`);
      try {
        const res = await fetch(`${base}/health`);
        if (res.status === 200) health = await res.json();
        else await res.body?.cancel();
      } catch {
        // not listening yet
      }
      if (!health) await delay(100);
    }
    assert(health, `no /health within 30 s:\n${output}`);
  } catch (e) {
    await kill();
    throw e;
  }
  return {
    base,
    health,
    output: () => output,
    kill,
    stop: async () => {
      proc.kill("SIGTERM");
      const timer = setTimeout(() => exited || proc.kill("SIGKILL"), 30_000);
      const { code } = await status;
      clearTimeout(timer);
      await drained;
      return code;
    },
  } satisfies Running;
}

const blocker = await compileBlocker();
if (blocker) {
  console.log(`skipped: ${blocker} (set DENORT_BIN to a denort binary to run this test)`);
}

Deno.test({
  name: "compiled binary: runs from anywhere, /health, proxies and meters, SIGTERM exits 0",
  ignore: blocker !== undefined,
  async fn() {
    const dir = await Deno.makeTempDir({ prefix: "gw-compiled-" });
    const up = fakeUpstream(() =>
      Response.json(
        anthropicMessage({ input_tokens: 11, output_tokens: 7 }, { id: "msg_compiled" }),
      )
    );
    const running: Running[] = [];
    try {
      const exe = `${dir}/bin/llm-gateway${Deno.build.os === "windows" ? ".exe" : ""}`;
      const built = await run(Deno.execPath(), compileArgs(TASKS.compile, exe), {
        cwd: ROOT,
        env: { NO_COLOR: "1" },
        timeoutMs: 300_000,
      });
      assertEquals(built.code, 0, `deno compile failed:\n${built.err}`);

      // Run away from the source tree, with nothing from this environment (no DENO_DIR, no
      // HOME, no PATH): only what the binary carries, ./models.json and the KV (defaults).
      const work = `${dir}/run`;
      await Deno.mkdir(`${work}/data`, { recursive: true });
      await Deno.writeTextFile(
        `${work}/models.json`,
        JSON.stringify({
          providers: { up: { format: "anthropic", base_url: up.url, api_key_env: "UP_KEY" } },
          routing: { claude: ["up"] },
          known_models: [{ id: "claude-test", provider: "up" }],
        }),
      );
      const kvPath = `${work}/data/gateway.kv`;
      const secret = await createKeyIn(kvPath, "compiled");

      const env = { PORT: String(freePort()), HOST: "127.0.0.1", UP_KEY: "upstream-secret" };
      const gw = await startBinary(exe, work, env);
      running.push(gw);
      assertEquals(gw.health.status, "ok");
      assertEquals(gw.health.kv, "ok");
      assertEquals(gw.health.models, ["claude-test"], "./models.json of the working folder");

      const hc = await run(exe, ["healthcheck"], {
        cwd: work,
        env,
        clearEnv: true,
        timeoutMs: 30_000,
      });
      assertEquals(hc.code, 0, `the binary's healthcheck: ${hc.out}${hc.err}`);

      const res = await fetch(`${gw.base}/v1/messages`, {
        method: "POST",
        headers: {
          "x-api-key": secret,
          "anthropic-version": "2023-06-01",
          "content-type": "application/json",
        },
        body: JSON.stringify({
          model: "claude-test",
          max_tokens: 8,
          messages: [{ role: "user", content: "hi" }],
        }),
      });
      assertEquals(res.status, 200);
      assertEquals((await res.json()).id, "msg_compiled");
      assertEquals(up.seen.length, 1);
      assertEquals(up.seen[0].headers.get("x-api-key"), "upstream-secret");

      assertEquals(await gw.stop(), 0, `exit status after SIGTERM:\n${gw.output()}`);
      const output = gw.output();
      const lines = output.split("\n").filter((l) => l.startsWith("{")).map((l) => JSON.parse(l));
      assert(lines.some((l) => l.msg === "gateway listening"), output);
      assert(lines.some((l) => l.msg === "gateway stopped"), output);
      assert(!output.includes("upstream-secret") && !output.includes(secret), "no secrets logged");
      const down = await run(exe, ["healthcheck"], {
        cwd: work,
        env,
        clearEnv: true,
        timeoutMs: 30_000,
      });
      assert(down.code !== 0, "healthcheck fails once the gateway has stopped");

      const rows = await usageIn(kvPath);
      assertEquals(rows.length, 1, "one usage row");
      assertEquals(rows[0].counters.requests, 1);
      assertEquals(rows[0].counters.input_uncached, 11);
      assertEquals(rows[0].counters.output, 7);

      // An empty folder: no ./models.json and no MODELS_CONFIG gives the embedded copy of the
      // bundled one, and the KV folder is created on start.
      const empty = `${dir}/empty`;
      await Deno.mkdir(empty);
      const bare = await startBinary(exe, empty, { PORT: String(freePort()), HOST: "127.0.0.1" });
      running.push(bare);
      assert(
        (bare.health.models as string[]).includes("claude-sonnet-4-5"),
        `the bundled models.json: ${JSON.stringify(bare.health.models)}`,
      );
      assertEquals(await bare.stop(), 0);
      assert((await Deno.stat(`${empty}/data/gateway.kv`)).isFile, "KV created in ./data");
    } finally {
      for (const r of running) await r.kill();
      await up.close();
      await Deno.remove(dir, { recursive: true });
    }
  },
});
