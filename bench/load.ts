/**
 * The load generator: `wrk` (Debian package `wrk`) in its own process,
 * pinned to the load core, with `post.lua` sending the workload's POST
 * requests. A run is started with a generous `-d` and ended by the
 * benchmark with SIGINT (wrk then stops and reports), always within a hard
 * time limit.
 */
import { HAS_TASKSET } from "./procs.ts";
import type { RequestSpec } from "./workloads.ts";

const LUA = new URL("./post.lua", import.meta.url).pathname;

/** What wrk reported for one run. */
export interface WrkResult {
  requests: number;
  durationUs: number;
  bytes: number;
  errors: { connect: number; read: number; write: number; status: number; timeout: number };
  latencyUs: {
    min: number;
    mean: number;
    p50: number;
    p90: number;
    p99: number;
    p999: number;
    max: number;
  };
}

function onPath(cmd: string): boolean {
  try {
    return new Deno.Command("sh", {
      args: ["-c", `command -v ${cmd}`],
      stdout: "null",
      stderr: "null",
    }).outputSync().success;
  } catch {
    return false;
  }
}

async function run(argv: string[]): Promise<boolean> {
  console.error(`$ ${argv.join(" ")}`);
  try {
    const out = await new Deno.Command(argv[0], {
      args: argv.slice(1),
      env: { DEBIAN_FRONTEND: "noninteractive" },
      stdout: "null",
      stderr: "inherit",
      signal: AbortSignal.timeout(300_000),
    }).output();
    return out.success;
  } catch {
    return false;
  }
}

/**
 * Makes sure `wrk` is installed: installs the Debian package when it is
 * missing (`apt-get install -y wrk`, after `apt-get update` if needed, with
 * sudo when not root). Throws a clear error when that is impossible.
 */
export async function ensureWrk(): Promise<void> {
  if (onPath("wrk")) return;
  console.error("wrk is not installed; installing the Debian package");
  const root = Deno.uid() === 0;
  if (onPath("apt-get") && (root || onPath("sudo"))) {
    const apt = root ? ["apt-get"] : ["sudo", "-n", "apt-get"];
    if (
      await run([...apt, "install", "-y", "wrk"]) ||
      (await run([...apt, "update"]) && await run([...apt, "install", "-y", "wrk"]))
    ) {
      if (onPath("wrk")) return;
    }
  }
  throw new Error(
    "the benchmark needs the load generator wrk (https://github.com/wg/wrk), and it could not be " +
      "installed here (tried apt-get install -y wrk). Install it (Debian/Ubuntu: apt-get install " +
      "wrk; macOS: brew install wrk) and run again. No other load tool with POST bodies, Lua hooks " +
      "and latency percentiles was found.",
  );
}

/** A wrk run in progress. */
export interface WrkRun {
  pid: number;
  /** Ends the run (SIGINT) and returns wrk's report. */
  stop(): Promise<WrkResult>;
}

/** Writes each request's body to a file under `dir` and returns wrk's script arguments. */
async function scriptArgs(dir: string, specs: RequestSpec[]): Promise<string[]> {
  const args: string[] = [];
  for (const [i, s] of specs.entries()) {
    const file = `${dir}/body-${i}-${s.body.length}.json`;
    await Deno.writeTextFile(file, s.body);
    const headers = Object.entries(s.headers);
    args.push(s.path, file, String(headers.length), ...headers.flat());
  }
  return args;
}

/**
 * Starts wrk against `url` with `concurrency` connections on one thread.
 * `maxSeconds` bounds the run (wrk's `-d`); call `stop()` to end it earlier.
 */
export async function startWrk(o: {
  url: string;
  specs: RequestSpec[];
  concurrency: number;
  maxSeconds: number;
  cpu?: string;
  tmpDir: string;
}): Promise<WrkRun> {
  const args = [
    "-t1",
    `-c${o.concurrency}`,
    `-d${Math.ceil(o.maxSeconds)}s`,
    "--timeout",
    "60s",
    "-s",
    LUA,
    o.url,
    "--",
    ...await scriptArgs(o.tmpDir, o.specs),
  ];
  const argv = o.cpu !== undefined && HAS_TASKSET
    ? ["taskset", "-c", o.cpu, "wrk", ...args]
    : ["wrk", ...args];
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  const output = child.output();
  // Hard limit: wrk never outlives its -d by more than 15 s.
  const hard = setTimeout(() => {
    try {
      child.kill("SIGKILL");
    } catch {
      // gone
    }
  }, (o.maxSeconds + 15) * 1000);
  const stop = async (): Promise<WrkResult> => {
    try {
      child.kill("SIGINT");
    } catch {
      // already finished
    }
    const out = await output;
    clearTimeout(hard);
    const text = new TextDecoder().decode(out.stdout);
    const line = text.split("\n").find((l) => l.startsWith("BENCHJSON "));
    if (!line) {
      throw new Error(
        `wrk gave no result (exit ${out.code}): ${new TextDecoder().decode(out.stderr)}${text}`,
      );
    }
    const j = JSON.parse(line.slice("BENCHJSON ".length));
    return {
      requests: j.requests,
      durationUs: j.duration_us,
      bytes: j.bytes,
      errors: j.errors,
      latencyUs: j.latency_us,
    };
  };
  return { pid: child.pid, stop };
}
