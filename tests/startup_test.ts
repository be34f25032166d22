/**
 * Start-up failures, as an operator sees them running `main.ts`: one line
 * naming the setting at fault, exit status 1, no stack trace and no advice
 * about Deno permission flags.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";

const MAIN = new URL("../main.ts", import.meta.url).pathname;

/** Runs the gateway with `env` until it exits (it should fail at start). */
async function start(env: Record<string, string>) {
  const out = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--unstable-kv",
      "--unstable-no-legacy-abort",
      "--allow-net",
      "--allow-env",
      "--allow-read",
      "--allow-write",
      "--allow-sys=hostname",
      MAIN,
    ],
    env: { HOST: "127.0.0.1", PORT: "0", LOG_FORMAT: "json", ...env },
    stdout: "piped",
    stderr: "piped",
  }).output();
  const err = new TextDecoder().decode(out.stderr).trim();
  return { code: out.code, err, out: new TextDecoder().decode(out.stdout) };
}

/** Asserts one line on stderr with `expected`, exit status 1, nothing that reads like a trace. */
function assertOneLine(r: { code: number; err: string }, expected: string) {
  assertEquals(r.code, 1, r.err);
  assertEquals(r.err.split("\n").length, 1, `one line: ${r.err}`);
  assertIncludes(r.err, expected);
  assert(!/\bat \S+:\d+/.test(r.err), `no stack trace: ${r.err}`);
  assert(!r.err.includes("--allow"), `no permission-flag advice: ${r.err}`);
}

Deno.test("a busy port: `PORT <n> is already in use`, exit 1", async () => {
  const busy = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const dir = await Deno.makeTempDir();
  try {
    const port = (busy.addr as Deno.NetAddr).port;
    const r = await start({ PORT: String(port), KV_PATH: `${dir}/gw.kv` });
    assertOneLine(r, `PORT ${port} is already in use`);
  } finally {
    busy.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("KV_PATH problems name KV_PATH, the path and what is wrong", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.writeTextFile(`${dir}/plain-file`, "x");
    await Deno.mkdir(`${dir}/folder`);
    await Deno.writeTextFile(`${dir}/notkv.kv`, "this is not a database ".repeat(100));
    const [underFile, folder, notKv] = await Promise.all([
      start({ KV_PATH: `${dir}/plain-file/sub/gw.kv` }),
      start({ KV_PATH: `${dir}/folder` }),
      start({ KV_PATH: `${dir}/notkv.kv` }),
    ]);
    assertOneLine(underFile, `KV_PATH ${dir}/plain-file/sub/gw.kv`);
    assertIncludes(underFile.err, `${dir}/plain-file is a file, not a folder`);
    assertOneLine(folder, `KV_PATH ${dir}/folder: is a folder`);
    assertOneLine(notKv, `KV_PATH ${dir}/notkv.kv`);
    assertIncludes(notKv.err, "not a Deno KV database");
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("MODELS_CONFIG and KEYS_FILE that are folders or missing say so, naming the setting", async () => {
  const dir = await Deno.makeTempDir();
  try {
    await Deno.mkdir(`${dir}/folder`);
    const kv = `${dir}/gw.kv`;
    const [modelsFolder, modelsMissing, keysFolder] = await Promise.all([
      start({ KV_PATH: kv, MODELS_CONFIG: `${dir}/folder` }),
      start({ KV_PATH: `${dir}/gw2.kv`, MODELS_CONFIG: `${dir}/nope.json` }),
      start({
        KV_PATH: `${dir}/gw3.kv`,
        MODELS_CONFIG: new URL("../models.json", import.meta.url).pathname,
        KEYS_FILE: `${dir}/folder`,
      }),
    ]);
    assertOneLine(modelsFolder, `MODELS_CONFIG ${dir}/folder: is a folder, not a file`);
    assertOneLine(modelsMissing, `MODELS_CONFIG ${dir}/nope.json: does not exist`);
    assertOneLine(keysFolder, `KEYS_FILE ${dir}/folder: is a folder, not a file`);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
