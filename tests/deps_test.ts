/**
 * What a first `deno task start` downloads: only the packages `main.ts`
 * needs. The SDKs the tests use as clients are pinned in `tests/deno.lock`
 * (the test task's lock file), never in `deno.json` or `deno.lock`, since
 * Deno installs every npm package a lock file lists. This test fetches
 * from the npm registry into an empty DENO_DIR.
 */
import { assert, assertEquals } from "./support/assert.ts";

const ROOT = new URL("..", import.meta.url).pathname;

interface Lock {
  npm?: Record<string, { dependencies?: string[] }>;
}

/** `zod@4.6.7` or `@scope/name@1.0.0_peer@2` to its package name. */
const nameOf = (key: string) => key.slice(0, key.indexOf("@", 1));

/** Package names `deno.json`'s imports need, with their dependencies, per `lock`. */
function closure(lock: Lock, roots: string[]): Set<string> {
  const byName = new Map(Object.entries(lock.npm ?? {}).map(([k, v]) => [nameOf(k), v]));
  const out = new Set<string>();
  const visit = (name: string) => {
    if (out.has(name)) return;
    out.add(name);
    for (const dep of byName.get(name)?.dependencies ?? []) visit(nameOf(dep + "@"));
  };
  roots.forEach(visit);
  return out;
}

/** Package names under an npm cache folder (`zod`, `@scope/name`). */
async function cachedPackages(dir: string): Promise<Set<string>> {
  const out = new Set<string>();
  for await (const e of Deno.readDir(dir)) {
    if (!e.isDirectory) continue;
    if (!e.name.startsWith("@")) {
      out.add(e.name);
      continue;
    }
    for await (const s of Deno.readDir(`${dir}/${e.name}`)) out.add(`${e.name}/${s.name}`);
  }
  return out;
}

const TEST_ONLY = ["openai", "@anthropic-ai/sdk"];

Deno.test("a fresh DENO_DIR after `deno cache --frozen main.ts` holds only what main.ts needs", async () => {
  const config = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.json`)) as {
    imports: Record<string, string>;
  };
  const lock = JSON.parse(await Deno.readTextFile(`${ROOT}/deno.lock`)) as Lock;
  const roots = Object.values(config.imports).map((s) => nameOf(s.replace(/^npm:/, "")));
  for (const p of TEST_ONLY) {
    assert(!roots.includes(p), `deno.json imports the test-only ${p}: use npm:${p}@... in tests`);
  }
  const needed = closure(lock, roots);
  assertEquals(
    new Set(Object.keys(lock.npm ?? {}).map(nameOf)),
    needed,
    "deno.lock lists exactly what deno.json's imports need (test packages go in tests/deno.lock)",
  );

  const denoDir = await Deno.makeTempDir();
  try {
    const out = await new Deno.Command(Deno.execPath(), {
      args: ["cache", "--frozen", "main.ts"],
      cwd: ROOT,
      env: { DENO_DIR: denoDir, NO_COLOR: "1" },
      stdout: "piped",
      stderr: "piped",
    }).output();
    const log = new TextDecoder().decode(out.stderr);
    assertEquals(out.code, 0, `deno cache failed (is the npm registry reachable?):\n${log}`);
    const fetched = await cachedPackages(`${denoDir}/npm/registry.npmjs.org`);
    assertEquals(fetched, needed, `downloaded:\n${log}`);
    for (const p of TEST_ONLY) assert(!fetched.has(p), `${p} was downloaded for main.ts`);
  } finally {
    await Deno.remove(denoDir, { recursive: true });
  }
});
