/**
 * Portkey's open-source gateway as a benchmark target: the npm build
 * (`@portkey-ai/gateway`, pinned with its dependencies in
 * bench/portkey/package-lock.json, `@hono/node-server` held at 1.13.5
 * because newer versions break its streaming with `TypeError: immutable`)
 * run by Node.js 20 or newer with `NODE_ENV=production`, headless, on
 * 127.0.0.1. The benchmark installs it with `npm ci` into
 * bench/portkey/node_modules (git-ignored) on first use.
 *
 * Portkey needs no configuration file: each request names its provider
 * (`x-portkey-provider: anthropic` or `openai`) and where that provider is
 * (`x-portkey-custom-host: <upstream>/anthropic/v1`, to which Portkey
 * appends `/messages` or `/chat/completions`; 127.0.0.1 is a trusted custom
 * host by default), and carries the provider credential itself (Portkey
 * passes `x-api-key` and the bearer token on). Anthropic requests go to
 * Portkey's native `/v1/messages`, OpenAI ones to `/v1/chat/completions`,
 * so neither is translated between formats.
 *
 * What Portkey does by design shows in the tables: its stream handler
 * sleeps 25 ms before the first event of every stream (`setTimeout(…, 25)`
 * in its build), so its SSE time to first byte is 25 ms or more and its
 * unpaced-SSE throughput at c=1 is bound by that wait (CPU per request is
 * the fairer comparison there); it does not cancel the upstream request
 * when its client goes away; and its Node build's log middleware clones and
 * parses every JSON answer.
 */
import { freePort, type Proc, spawn } from "./procs.ts";

const DIR = new URL("./portkey/", import.meta.url).pathname;

/** The versions bench/portkey/package.json pins (checked against what is installed). */
const PINNED = { "@portkey-ai/gateway": "1.15.2", "@hono/node-server": "1.13.5" };

function installedVersion(pkg: string): string | undefined {
  try {
    return JSON.parse(Deno.readTextFileSync(`${DIR}node_modules/${pkg}/package.json`)).version;
  } catch {
    return undefined;
  }
}

async function output(cmd: string, args: string[], cwd?: string) {
  try {
    const out = await new Deno.Command(cmd, { args, cwd, stdout: "piped", stderr: "piped" })
      .output();
    const text = (b: Uint8Array) => new TextDecoder().decode(b).trim();
    return { ok: out.success, stdout: text(out.stdout), stderr: text(out.stderr) };
  } catch (e) {
    return { ok: false, stdout: "", stderr: (e as Error).message };
  }
}

/**
 * Makes sure Node.js ≥ 20 is on PATH and the pinned Portkey is installed
 * (`npm ci --ignore-scripts` when a pinned version is missing). Throws a
 * clear error otherwise; `--targets` without `portkey` skips Portkey.
 */
export async function ensurePortkey(): Promise<string> {
  const node = await output("node", ["--version"]);
  const major = Number(/^v(\d+)/.exec(node.stdout)?.[1]);
  if (!node.ok || !(major >= 20)) {
    throw new Error(
      `the Portkey target needs Node.js 20 or newer (found: ${
        node.stdout || node.stderr || "none"
      }); install it or leave portkey out of --targets`,
    );
  }
  const missing = Object.entries(PINNED).filter(([p, v]) => installedVersion(p) !== v);
  if (missing.length) {
    console.error(`installing Portkey for the benchmark: npm ci in ${DIR}`);
    const ci = await output("npm", ["ci", "--ignore-scripts", "--no-audit", "--no-fund"], DIR);
    const still = Object.entries(PINNED).filter(([p, v]) => installedVersion(p) !== v);
    if (!ci.ok || still.length) {
      throw new Error(
        `npm ci in ${DIR} failed (${ci.stderr.split("\n").slice(-3).join(" ")}); ` +
          "leave portkey out of --targets to run without it",
      );
    }
  }
  return `Portkey gateway ${PINNED["@portkey-ai/gateway"]} on Node.js ${node.stdout}`;
}

/** A running Portkey gateway. */
export interface PortkeyProc extends Proc {
  url: string;
}

/** Starts Portkey on core `cpu` and waits until it answers. */
export async function startPortkey(o: { cpu?: string; log: string }): Promise<PortkeyProc> {
  const port = freePort();
  const proc = spawn({
    name: "portkey",
    cmd: ["node", `${DIR}start.mjs`, String(port)],
    env: { NODE_ENV: "production" },
    cpu: o.cpu,
    log: o.log,
  });
  const url = `http://127.0.0.1:${port}`;
  const until = performance.now() + 30_000;
  for (;;) {
    try {
      const res = await fetch(`${url}/`, { signal: AbortSignal.timeout(2000) });
      await res.body?.cancel();
      if (res.ok) return { ...proc, url };
    } catch {
      // not listening yet
    }
    if (performance.now() > until) {
      await proc.stop(1000);
      throw new Error(`Portkey did not answer within 30 s (see ${o.log})`);
    }
    await new Promise((r) => setTimeout(r, 100));
  }
}

/** The headers that route a Portkey request to the fake upstream's provider path. */
export function portkeyHeaders(
  upstream: string,
  format: "anthropic" | "openai",
): Record<string, string> {
  return {
    "x-portkey-provider": format,
    "x-portkey-custom-host": `${upstream}/${format}/v1`,
  };
}
