/**
 * The supervisor and its workers' channel, on small stand-in workers: how
 * many workers `WORKERS` means here, the command a worker is started with,
 * a worker 1 that cannot start ends the start, a crash loop backs off,
 * drain waits for every worker; whole lines and control lines in the
 * relayed output; one exposition from every worker's metrics.
 */
import { assert, assertEquals, assertIncludes, assertRejects } from "./support/assert.ts";
import { MAIN, runCommand } from "./support/process.ts";
import { testConfig } from "./support/gateway.ts";
import { delay } from "./support/wait.ts";
import { loadConfig } from "../lib/config/env.ts";
import { Logger } from "../lib/ops/log.ts";
import { Metrics } from "../lib/ops/metrics.ts";
import { mergeExpositions } from "../lib/ops/peer_metrics.ts";
import { startSupervisor, WorkerStartFailed } from "../lib/ops/supervisor.ts";
import { relayWorkerOutput } from "../lib/ops/worker_channel.ts";
import { parseWorkerArg, resolveWorkers, workerCommand } from "../lib/ops/workers.ts";

Deno.test("WORKERS: auto is the number of cores; only Linux shares a port between processes", () => {
  assertEquals(loadConfig({}).workers, 1, "one process unless asked");
  assertEquals(loadConfig({ WORKERS: " Auto " }).workers, "auto");
  assertEquals(loadConfig({ WORKERS: "4" }).workers, 4);
  for (const bad of ["0", "257", "two", "-1"]) {
    let threw = false;
    try {
      loadConfig({ WORKERS: bad });
    } catch (e) {
      threw = (e as Error).message.includes("WORKERS");
    }
    assert(threw, `WORKERS=${bad} is refused naming the variable`);
  }
  assertEquals(resolveWorkers("auto", "linux", 8), { count: 8 });
  assertEquals(resolveWorkers(3, "linux", 1), { count: 3 });
  assertEquals(resolveWorkers(1, "darwin", 8), { count: 1 });
  for (const os of ["darwin", "windows"]) {
    const r = resolveWorkers("auto", os, 8);
    assertEquals(r.count, 1);
    assert(r.fallback?.includes(os), "says why it serves with one process");
  }
});

Deno.test("a worker is this executable again: bare for a compiled binary, with flags under deno run", () => {
  assertEquals(workerCommand(2, 3, true), {
    command: Deno.execPath(),
    args: ["serve", "--worker", "2/3"],
  });
  const run = workerCommand(1, 2, false).args;
  assertEquals(run[0], "run");
  assertEquals(run.slice(-4), [Deno.mainModule, "serve", "--worker", "1/2"]);
  for (const f of ["--unstable-kv", "--unstable-net", "--allow-net", "--allow-run"]) {
    assert(run.includes(f), `worker lacks ${f} (this test runs with -A)`);
  }
  assertEquals(parseWorkerArg("2/3"), { id: 2, count: 3 });
  for (const bad of ["0/2", "3/2", "x", "1/"]) {
    let threw = false;
    try {
      parseWorkerArg(bad);
    } catch {
      threw = true;
    }
    assert(threw, bad);
  }
});

const enc = new TextEncoder();
const dec = new TextDecoder();

function streamOf(chunks: string[]): ReadableStream<Uint8Array> {
  return ReadableStream.from(chunks.map((c) => enc.encode(c)));
}

Deno.test("relay: whole lines only, control lines taken out even when split across reads", async () => {
  const writes: string[] = [];
  const ready: unknown[] = [];
  const msg = '\x1eready {"port":8180,"metrics":{"port":4000,"token":"0123456789abcdef"}}\n';
  await relayWorkerOutput(
    streamOf([
      '{"msg":"a"}\n{"msg":"b',
      '"}\n' + msg.slice(0, 20),
      msg.slice(20) + '{"msg":"c"}\n{"msg":',
      '"d"}\n',
    ]),
    (b) => writes.push(dec.decode(b)),
    (r) => ready.push(r),
  );
  assertEquals(ready, [{ port: 8180, metrics: { port: 4000, token: "0123456789abcdef" } }]);
  for (const w of writes) assert(w.endsWith("\n"), `a partial line was written: ${w}`);
  assertEquals(writes.join(""), '{"msg":"a"}\n{"msg":"b"}\n{"msg":"c"}\n{"msg":"d"}\n');
});

Deno.test("metrics of several workers: each family once, every worker's samples under it", () => {
  const one = new Metrics(false);
  const two = new Metrics(false);
  one.refused.inc({ reason: "invalid_api_key" });
  two.refused.inc({ reason: "invalid_api_key" }, 2);
  two.kvWrite.observe({}, 0.002);
  const merged = mergeExpositions([one.render(1), two.render(2)]);
  const lines = merged.split("\n");
  assertEquals(
    lines.filter((l) => l === "# TYPE gateway_refused_requests_total counter").length,
    1,
  );
  const refused = lines.filter((l) => l.startsWith("gateway_refused_requests_total"));
  assertEquals(refused, [
    'gateway_refused_requests_total{reason="invalid_api_key",worker="1"} 1',
    'gateway_refused_requests_total{reason="invalid_api_key",worker="2"} 2',
  ]);
  assert(merged.includes('gateway_kv_write_seconds_bucket{worker="2",le="0.0025"} 1'));
  // A family's samples follow its own header, never another's.
  const family = (l: string) => l.replace(/^# (HELP|TYPE) /, "").split(/[{ ]/)[0];
  let current = "";
  for (const l of lines.filter(Boolean)) {
    if (l.startsWith("# HELP")) current = family(l);
    else if (!l.startsWith("#")) assert(family(l).startsWith(current), `${l} under ${current}`);
  }
});

/** A stand-in worker: `deno eval` of `code`, wired as the supervisor wires a worker. */
function standIn(code: string): Deno.ChildProcess {
  return new Deno.Command(Deno.execPath(), {
    args: ["eval", code],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
}

/** Says it serves, then waits for the end of stdin (the supervisor's "stop"). */
const WELL = `
const ready = { port: 1234, metrics: { port: 4000, token: "0123456789abcdef" } };
Deno.stdout.writeSync(new TextEncoder().encode("\\x1eready " + JSON.stringify(ready) + "\\n"));
for await (const _ of Deno.stdin.readable) {}
`;

function captured() {
  const lines: Record<string, unknown>[] = [];
  const log = new Logger("info", "json", (l) => lines.push(JSON.parse(l)));
  return { lines, log };
}

Deno.test("supervisor: worker 1 failing to start ends the start with its exit status", async () => {
  const { log } = captured();
  const e = await assertRejects(() =>
    startSupervisor({
      config: testConfig({ port: 0 }),
      count: 2,
      log,
      out: () => {},
      spawn: () => standIn("Deno.exit(3)"),
    })
  );
  assert(e instanceof WorkerStartFailed && e.code === 3, String(e));
});

Deno.test("supervisor: a crash loop backs off; stop drains every worker and returns after them", async () => {
  const { lines, log } = captured();
  const starts: number[] = [];
  const sup = await startSupervisor({
    config: testConfig({ port: 0 }),
    count: 2,
    log,
    out: () => {},
    spawn: (id) => {
      if (id === 2) starts.push(Date.now());
      // Worker 2 says it serves, then dies at once, every time.
      return standIn(id === 1 ? WELL : `${WELL.split("for await")[0]}Deno.exit(1);`);
    },
  });
  assertEquals(sup.port, 1234, "a PORT=0 listen's real port, from worker 1");
  await delay(3000);
  // Restarts after 0.5, 1 and 2 s: at most 4 starts in 3 s (without backoff: dozens).
  assert(starts.length >= 2 && starts.length <= 4, `worker 2 started ${starts.length} times`);
  const exits = lines.filter((l) => l.msg === "worker exited; restarting it");
  assert(exits.every((l) => l.worker === 2 && l.code === 1));
  const delays = exits.map((l) => l.restart_in_ms as number);
  assertEquals(delays, [500, 1000, 2000, 4000].slice(0, delays.length));
  await sup.stop();
  assertEquals(lines.at(-1)?.msg, "workers stopped");
  assert(!lines.some((l) => l.msg === "worker did not stop in time; killing it"));
});

Deno.test("WORKERS above 1: missing flags and a busy port are start-up errors naming the cause", async () => {
  const dir = await Deno.makeTempDir();
  const held = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  try {
    const env = { WORKERS: "2", HOST: "127.0.0.1", PORT: "0", KV_PATH: `${dir}/gw.kv` };
    const base = ["--unstable-kv", "--allow-net", "--allow-env", "--allow-read", "--allow-write"];
    const start = (flags: string[], over: Record<string, string> = {}) =>
      runCommand(Deno.execPath(), ["run", ...flags, MAIN, "serve"], {
        env: { ...env, ...over },
        timeoutMs: 30_000,
      });
    const noRun = await start(base);
    assertEquals(noRun.code, 1);
    assertIncludes(noRun.err, "WORKERS=2 needs --allow-run");
    const noNet = await start([...base, "--allow-run"]);
    assertEquals(noNet.code, 1);
    assertIncludes(noNet.err, "WORKERS=2 needs --unstable-net");
    const busy = await start([...base, "--allow-run", "--unstable-net"], {
      PORT: String(held.addr.port),
    });
    assertEquals(busy.code, 1);
    assertIncludes(busy.err, `PORT ${held.addr.port} is already in use`);
  } finally {
    held.close();
    await Deno.remove(dir, { recursive: true });
  }
});
