/**
 * The gateway benchmark (issues 3 and 11): `deno task bench [flags]`.
 *
 * Targets, each its own process pinned to CPU 0 (the load, wrk and the
 * stream client, is pinned to CPU 1), all in front of one fake upstream
 * (bench/upstream.ts, a Deno process on CPU 0 too):
 *
 * - `direct`: the load talks to the fake upstream itself (no proxy);
 * - `bare`: the bare floor (bench/floor.ts), the thinnest Deno pass-through:
 *   what proxying costs in Deno itself;
 * - `meter-tee`, `meter-inline`: the metering floors (bench/floor_meter_tee.ts,
 *   bench/floor_meter_inline.ts): the least a Deno proxy does to meter
 *   (route like the gateway, parse the request for `model`, parse usage out
 *   of JSON answers and SSE events; `tee()` versus metering in the one
 *   reader), with no KV and no logging;
 * - `portkey`: Portkey's open-source gateway (`@portkey-ai/gateway` 1.15.2 on
 *   Node.js ≥ 20, see bench/portkey.ts; installed with `npm ci` into
 *   bench/portkey/node_modules on first use), routed to the fake upstream by
 *   the `x-portkey-provider` and `x-portkey-custom-host` headers that only
 *   its requests carry;
 * - `gateway`: this gateway (main.ts, as in production, with a KV file and
 *   one client key);
 * - `gw-limits`: the same gateway in a process of its own whose client key
 *   has every limit set (rpm, tpm, max_concurrent, daily and monthly token
 *   quotas and budgets; `BENCH_KEY_LIMITS` in bench/gateway.ts), each far
 *   above what the benchmark uses: what enforcing limits costs, measured in
 *   the same rounds as the gateway without them.
 *
 * Before a phase measures anything, every target is checked (bench/preflight.ts):
 * correct JSON answers, paced streams that really stream, and metering
 * floors that metered what passed through them.
 *
 * For each workload (1 KB JSON, unpaced SSE, paced SSE, 500 KB request
 * bodies; each alternates Anthropic `/v1/messages` and OpenAI
 * `/v1/chat/completions` requests) it runs every target at each concurrency,
 * interleaved (direct → bare → meter-tee → meter-inline → portkey → gateway
 * → gw-limits, then the next concurrency), for several rounds on fresh processes, and
 * reports medians and medians of per-round ratios: requests per second, CPU
 * per request of every proxy, latency and peak RSS, with the gateway's
 * ratios to the bare floor, to the better metering floor (per cell, named)
 * and to Portkey, and gw-limits' ratio to the gateway. After every gateway
 * run (either gateway) the usage it recorded
 * must equal what the upstream served; a run where it does not is marked
 * FAIL and the command exits 1. Then a streaming client measures paced-SSE
 * time to first byte and chunk delays through every target, and the RSS of
 * 1,000 open streams through every proxy. The Markdown result is printed and
 * written to bench/results/latest.md (logs in bench/results/logs/). A full
 * run takes about 20 minutes on 2 cores; `--quick` about 6.
 *
 * What the targets do differs, and the tables should be read with it: the
 * gateway authenticates a client key, adds `stream_options.include_usage` to
 * OpenAI streams (and strips the usage event again), records usage in KV and
 * logs; the metering floors forward bodies unchanged, so OpenAI streams carry
 * no usage to them; Portkey parses and re-serialises every request body,
 * clones and parses JSON answers for its log, waits 25 ms before the first
 * event of every stream and does not cancel upstream requests whose client
 * left (see bench/portkey.ts).
 *
 * Flags (environment variable in brackets):
 *   --quick                 smoke run: 1 round, 1 s runs, 16 paced streams
 *   --targets LIST          direct,bare,meter-tee,meter-inline,portkey,gateway,gw-limits (all;
 *                           the gateway is always measured). Without portkey, no Node.js is
 *                           needed; without gw-limits, no run has limits on the key.
 *   --rounds N              rounds of every workload × concurrency × target [BENCH_ROUNDS] (3)
 *   --duration S            active seconds per wrk run [BENCH_DURATION] (3; quick 1)
 *   --warmup S              length of each warm-up run (1; quick 0.5). Before each workload,
 *                           each target is warmed up at c=16 until a warm-up run's RPS is
 *                           within 10% of the previous one's, for at most --warmup-max
 *                           seconds (JIT-compiled targets, Node.js above all, need thousands
 *                           of requests before they reach their pace)
 *   --warmup-max S          longest warm-up per target and workload (15; quick 3)
 *   --workloads LIST        json,sse,paced,large (all)
 *   --concurrency LIST      1,16,64
 *   --paced-streams N       paced streams per target per round for TTFB/chunk delays (32; quick 16; 0 skips)
 *   --streams N             concurrent open streams for the RSS test [BENCH_STREAMS] (1000; 0 skips)
 *   --profile[=LIST]        instead of the benchmark: run the gateway under V8's CPU profiler
 *                           (--cpu-prof into bench/results/prof/) and GC trace for each listed
 *                           workload (default json,sse) and print its top self-time functions
 *                           and heap allocation per request
 *   --profile-seconds S     length of each profiled run (10)
 *   --profile-concurrency N connections of each profiled run (16)
 *   --workers LIST          instead of the benchmark: the gateway with each WORKERS value
 *                           (e.g. 1,2) side by side, unpinned, with the exact-usage check after
 *                           every run (bench/workers.ts); workloads json,sse and concurrency
 *                           16,64 unless given
 *   --profile-target NAME   gateway (default) or gw-limits (limits on the key)
 *   --out FILE              where to write the Markdown (bench/results/latest.md)
 *   --help
 *
 * BENCH_GATEWAY_MAIN=/path/to/other/checkout/main.ts benchmarks another gateway build;
 * BENCH_MAX_MINUTES (60) is a hard limit on the whole run.
 */
import { parseArgs } from "node:util";
import { UpstreamControl } from "./control.ts";
import {
  BENCH_KEY_LIMITS,
  type GatewayHome,
  type GatewayProc,
  prepareGateway,
  startGateway,
} from "./gateway.ts";
import { ensureWrk } from "./load.ts";
import {
  type Bench,
  measureRun,
  pidOf,
  quiesce,
  type RunResult,
  settleUsage,
  urlOf,
} from "./measure.ts";
import { ensurePortkey, startPortkey } from "./portkey.ts";
import { preflight } from "./preflight.ts";
import { firstJsonLine, HAS_TASKSET, type Proc, resetPeakRss, rssKiB, spawn } from "./procs.ts";
import {
  type Cell,
  evaluateTargets,
  type OpenReport,
  type PacedReport,
  renderCancellation,
  renderCpu,
  renderLatency,
  renderOpen,
  renderPaced,
  renderTargets,
  renderThroughput,
  summarizeCell,
  summarizePaced,
} from "./report.ts";
import { median } from "./stats.ts";
import { type PacedSamples, runClient } from "./stream_client.ts";
import {
  formatHeapSummary,
  formatSummary,
  newestProfile,
  summarize,
  summarizeHeap,
} from "./top_functions.ts";
import type { UsageCheck } from "./usage_check.ts";
import { runScaling } from "./workers.ts";
import {
  type Credentials,
  type GatewayName,
  GATEWAYS,
  isGateway,
  type ProxyName,
  requestsFor,
  SLOW,
  type TargetName,
  TARGETS,
  type Workload,
  type WorkloadName,
  WORKLOADS,
} from "./workloads.ts";

const HERE = new URL(".", import.meta.url).pathname;
/** The checkout whose gateway is measured (`BENCH_GATEWAY_MAIN`'s, or this one). */
const GATEWAY_ROOT = Deno.env.get("BENCH_GATEWAY_MAIN")
  ? Deno.env.get("BENCH_GATEWAY_MAIN")!.replace(/\/[^/]*$/, "")
  : new URL("..", import.meta.url).pathname;
const RESULTS = `${HERE}results`;
const LOGS = `${RESULTS}/logs`;

interface Options {
  quick: boolean;
  rounds: number;
  durationS: number;
  warmupS: number;
  warmupMaxS: number;
  workloads: Workload[];
  /** Targets in round order; the gateway always among them. */
  targets: TargetName[];
  concurrency: number[];
  pacedStreams: number;
  streams: number;
  profile?: WorkloadName[];
  profileSeconds: number;
  profileConcurrency: number;
  /** `--workers`: the WORKERS values of the scaling run. */
  workers?: number[];
  profileTarget: ProfiledName;
  out: string;
}

function usage(): never {
  const text = Deno.readTextFileSync(new URL(import.meta.url).pathname);
  const doc = /\/\*\*([\s\S]*?)\*\//.exec(text)?.[1] ?? "";
  console.log(doc.split("\n").map((l) => l.replace(/^ \* ?/, "")).join("\n").trim());
  Deno.exit(0);
}

/** The targets `--profile` can run: the Deno ones. */
type ProfiledName = Exclude<ProxyName, "portkey">;
const PROFILED: ProfiledName[] = ["gateway", "gw-limits", "bare", "meter-tee", "meter-inline"];

function parseProfileTarget(v: string | undefined): ProfiledName {
  const t = (v ?? "gateway") as ProfiledName;
  if (!PROFILED.includes(t)) {
    throw new Error(`--profile-target must be one of ${PROFILED.join(", ")}`);
  }
  return t;
}

function parseOptions(argv: string[]): Options {
  let profile: string | undefined;
  const rest: string[] = [];
  for (const a of argv) {
    if (a === "--profile") profile = "json,sse";
    else if (a.startsWith("--profile=")) profile = a.slice("--profile=".length);
    else rest.push(a);
  }
  const { values } = parseArgs({
    args: rest,
    strict: true,
    options: {
      quick: { type: "boolean", default: false },
      rounds: { type: "string" },
      duration: { type: "string" },
      warmup: { type: "string" },
      "warmup-max": { type: "string" },
      workloads: { type: "string" },
      targets: { type: "string" },
      concurrency: { type: "string" },
      "paced-streams": { type: "string" },
      streams: { type: "string" },
      "profile-seconds": { type: "string" },
      "profile-concurrency": { type: "string" },
      workers: { type: "string" },
      "profile-target": { type: "string" },
      out: { type: "string" },
      help: { type: "boolean", default: false },
    },
  });
  if (values.help) usage();
  const quick = values.quick ?? false;
  const num = (v: string | undefined, env: string | undefined, dflt: number, name: string) => {
    const s = v ?? (env ? Deno.env.get(env) : undefined);
    if (s === undefined || s === "") return dflt;
    const n = Number(s);
    if (!Number.isFinite(n) || n < 0) throw new Error(`--${name} must be a non-negative number`);
    return n;
  };
  const workers = values.workers?.split(",").map((s) => {
    const n = Number(s);
    if (!Number.isInteger(n) || n < 1) throw new Error(`bad --workers value "${s}"`);
    return n;
  });
  const names = (values.workloads ?? (workers ? "json,sse" : "json,sse,paced,large")).split(",")
    .map((s) => s.trim());
  const workloads = names.map((n) => {
    const w = WORKLOADS.find((x) => x.name === n);
    if (!w) throw new Error(`unknown workload "${n}" (json, sse, paced, large)`);
    return w;
  });
  const wanted = (values.targets ?? TARGETS.join(",")).split(",").map((s) => s.trim());
  for (const t of wanted) {
    if (!TARGETS.includes(t as TargetName)) {
      throw new Error(`unknown target "${t}" (${TARGETS.join(", ")})`);
    }
  }
  const targets = TARGETS.filter((t) => t === "gateway" || wanted.includes(t));
  const profileNames = profile?.split(",").map((s) => s.trim()) as WorkloadName[] | undefined;
  for (const p of profileNames ?? []) {
    if (!WORKLOADS.some((w) => w.name === p)) throw new Error(`unknown workload "${p}"`);
  }
  return {
    quick,
    rounds: Math.max(1, Math.round(num(values.rounds, "BENCH_ROUNDS", quick ? 1 : 3, "rounds"))),
    durationS: Math.max(0.5, num(values.duration, "BENCH_DURATION", quick ? 1 : 3, "duration")),
    warmupS: num(values.warmup, undefined, quick ? 0.5 : 1, "warmup"),
    warmupMaxS: num(values["warmup-max"], undefined, quick ? 3 : 15, "warmup-max"),
    workloads,
    targets,
    concurrency: (values.concurrency ?? (workers ? "16,64" : "1,16,64")).split(",").map((s) => {
      const n = Number(s);
      if (!Number.isInteger(n) || n < 1) throw new Error(`bad concurrency "${s}"`);
      return n;
    }),
    pacedStreams: Math.round(
      num(values["paced-streams"], undefined, quick ? 16 : 32, "paced-streams"),
    ),
    streams: Math.round(num(values.streams, "BENCH_STREAMS", 1000, "streams")),
    profile: profileNames,
    profileSeconds: num(values["profile-seconds"], undefined, 10, "profile-seconds"),
    profileConcurrency: Math.max(
      1,
      Math.round(num(values["profile-concurrency"], undefined, 16, "profile-concurrency")),
    ),
    workers,
    profileTarget: parseProfileTarget(values["profile-target"]),
    out: values.out ?? `${RESULTS}/latest.md`,
  };
}

/** Processes started by this run, stopped on exit or Ctrl-C. */
const live = new Set<Proc>();

function track<T extends Proc>(p: T): T {
  live.add(p);
  p.child.status.then(() => live.delete(p));
  return p;
}

async function stopAll(): Promise<void> {
  await Promise.all([...live].map((p) => p.stop(10_000)));
}

const CPU_SERVER = HAS_TASKSET && navigator.hardwareConcurrency >= 2 ? "0" : undefined;
const CPU_LOAD = HAS_TASKSET && navigator.hardwareConcurrency >= 2 ? "1" : undefined;

const SECRETS = {
  anthropic: `up-a-${crypto.randomUUID()}`,
  openai: `up-o-${crypto.randomUUID()}`,
};

/** The servers of one phase. */
interface Env {
  bench: Bench;
  procs: Proc[];
  gateways: Partial<Record<GatewayName, GatewayProc>>;
}

/** The Deno floors: target name → script. */
const FLOORS: [ProxyName, string][] = [
  ["bare", "floor.ts"],
  ["meter-tee", "floor_meter_tee.ts"],
  ["meter-inline", "floor_meter_inline.ts"],
];

/**
 * Starts the fake upstream and every proxy of `targets`, then checks each
 * target (preflight) unless `check` is false.
 */
async function startEnv(
  label: string,
  tmp: string,
  targets: TargetName[],
  o: {
    denoFlags?: string[];
    check?: boolean;
    /** For the gateways: another entry point and settings (`--profile`'s heap sampling). */
    gatewayMain?: string;
    gatewayEnv?: Record<string, string>;
  } = {},
): Promise<Env> {
  const deno = Deno.execPath();
  const env = { BENCH_SECRET_A: SECRETS.anthropic, BENCH_SECRET_O: SECRETS.openai };
  const procs: Proc[] = [];
  const proxies: Bench["proxies"] = {};
  const upstream = track(spawn({
    name: "upstream",
    cmd: [deno, "run", "--unstable-no-legacy-abort", "-A", `${HERE}upstream.ts`],
    env: { ...env, BENCH_PORT: "0" },
    cpu: CPU_SERVER,
    log: `${LOGS}/${label}-upstream.log`,
    stdout: "piped",
  }));
  procs.push(upstream);
  try {
    const upUrl = `http://127.0.0.1:${(await firstJsonLine<{ port: number }>(upstream)).port}`;
    for (const [name, script] of FLOORS.filter(([n]) => targets.includes(n))) {
      const p = track(spawn({
        name,
        cmd: [
          deno,
          "run",
          "--unstable-no-legacy-abort",
          ...(o.denoFlags ?? []),
          "-A",
          `${HERE}${script}`,
        ],
        env: { ...env, BENCH_PORT: "0", BENCH_UPSTREAM: upUrl },
        cpu: CPU_SERVER,
        log: `${LOGS}/${label}-${name}.log`,
        stdout: "piped",
      }));
      procs.push(p);
      proxies[name] = {
        url: `http://127.0.0.1:${(await firstJsonLine<{ port: number }>(p)).port}`,
        pid: p.pid,
      };
    }
    if (targets.includes("portkey")) {
      const p = track(await startPortkey({ cpu: CPU_SERVER, log: `${LOGS}/${label}-portkey.log` }));
      procs.push(p);
      proxies.portkey = { url: p.url, pid: p.pid };
    }
    const gateways: Env["gateways"] = {};
    const homes: Partial<Record<GatewayName, GatewayHome>> = {};
    for (const name of GATEWAYS.filter((g) => targets.includes(g))) {
      const home = await prepareGateway(
        `${tmp}/${label}-${name}`,
        upUrl,
        name === "gw-limits" ? BENCH_KEY_LIMITS : undefined,
      );
      const gw = track(
        await startGateway({
          home,
          secrets: SECRETS,
          cpu: CPU_SERVER,
          log: `${LOGS}/${label}-${name}.log`,
          denoFlags: o.denoFlags,
          main: o.gatewayMain,
          env: o.gatewayEnv,
        }),
      );
      procs.push(gw);
      proxies[name] = { url: gw.url, pid: gw.pid };
      gateways[name] = gw;
      homes[name] = home;
    }
    const creds: Credentials = {
      upstreamUrl: upUrl,
      upstreamA: SECRETS.anthropic,
      upstreamO: SECRETS.openai,
      gatewayKey: homes.gateway?.secret ?? "",
      limitsKey: homes["gw-limits"]?.secret ?? "",
    };
    const bench: Bench = {
      up: new UpstreamControl(upUrl),
      upPid: upstream.pid,
      proxies,
      gateways,
      creds,
      loadCpu: CPU_LOAD,
      tmpDir: tmp,
    };
    if (o.check !== false) {
      const problems = await preflight(bench, targets);
      if (problems.length) {
        throw new Error(`a target failed its check:\n  ${problems.join("\n  ")}`);
      }
    }
    return { bench, procs, gateways };
  } catch (e) {
    await Promise.all(procs.map((p) => p.stop()));
    throw e;
  }
}

async function stopEnv(e: Env): Promise<void> {
  const gws = new Set<Proc>(Object.values(e.gateways));
  await Promise.all(e.procs.map((p) => p.stop(gws.has(p) ? 30_000 : 10_000)));
}

const started = performance.now();
const elapsed = () => `${((performance.now() - started) / 1000).toFixed(0).padStart(3)} s`;

function progress(r: RunResult, label: string = r.target): void {
  const tag = r.round < 0 ? "warm-up" : `round ${r.round + 1}`;
  const cpu = r.cpuUsPerReq !== undefined ? ` cpu ${r.cpuUsPerReq.toFixed(0)} µs/req` : "";
  const usage = r.usage
    ? (r.usage.ok ? " usage OK" : ` usage FAIL ${JSON.stringify({ ...r.usage, up: r.upstream })}`)
    : "";
  const issues = r.problems.length ? ` ⚠ ${r.problems.join("; ")}` : "";
  console.error(
    `  [${elapsed()}] ${r.workload} c=${r.concurrency} ${label.padEnd(12)} ${tag}: ${
      r.rps.toFixed(0)
    } rps, ` +
      `p50 ${r.p50Ms.toFixed(2)} ms, p99 ${r.p99Ms.toFixed(2)} ms,${cpu}${usage}${issues}`,
  );
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Every target × concurrency × round of one workload, on fresh processes. */
async function runWorkload(w: Workload, o: Options, tmp: string): Promise<RunResult[]> {
  console.error(`\n${w.label}: starting a fresh upstream and ${o.targets.join(", ")}`);
  const env = await startEnv(w.name, tmp, o.targets);
  const out: RunResult[] = [];
  try {
    if (o.warmupS > 0) {
      for (const t of o.targets) {
        let prev = NaN;
        for (let spent = 0; spent < o.warmupMaxS; spent += o.warmupS) {
          const r = await measureRun(env.bench, w, t, 16, o.warmupS * 1000, -1);
          progress(r);
          out.push(r);
          if (Math.abs(r.rps - prev) < 0.1 * prev) break;
          prev = r.rps;
        }
      }
    }
    for (let round = 0; round < o.rounds; round++) {
      for (const c of o.concurrency) {
        for (const t of o.targets) {
          const r = await measureRun(env.bench, w, t, c, o.durationS * 1000, round);
          progress(r);
          out.push(r);
        }
      }
    }
  } finally {
    await stopEnv(env);
  }
  return out;
}

/** Paced SSE through every target, timestamped by the stream client. */
async function runPaced(o: Options, tmp: string): Promise<PacedReport> {
  console.error(
    `\npaced SSE TTFB and chunk delays: ${o.pacedStreams} streams × ${o.rounds} rounds`,
  );
  const env = await startEnv("ttfb", tmp, o.targets);
  const b = env.bench;
  const problems: string[] = [];
  try {
    const paced = WORKLOADS.find((w) => w.name === "paced")!;
    const targets = o.targets.map((t) => ({
      name: t,
      url: urlOf(b, t),
      specs: requestsFor(paced, t, b.creds),
    }));
    await quiesce(b.up);
    await b.up.reset();
    const gws = GATEWAYS.filter((g) => b.gateways[g]);
    const before = await Promise.all(gws.map((g) => b.gateways[g]!.usage()));
    const staggerMs = 80;
    const client = await runClient({
      mode: "paced",
      targets,
      rounds: o.rounds,
      streams: o.pacedStreams,
      staggerMs,
      warmup: o.pacedStreams,
    }, { cpu: CPU_LOAD, log: `${LOGS}/ttfb-client.log`, tmpDir: tmp });
    track(client.proc);
    const perBatch = o.pacedStreams * staggerMs + 2000;
    const line = await client.next(((o.rounds + 1) * o.targets.length * perBatch) + 30_000);
    await client.proc.child.status;
    const results = line.results as Record<string, PacedSamples>;
    if (!await quiesce(b.up)) problems.push("the upstream did not go idle");
    const up = await b.up.stats();
    const usage: Partial<Record<GatewayName, UsageCheck>> = {};
    for (const [i, g] of gws.entries()) {
      usage[g] = await settleUsage(b.gateways[g]!, before[i], up, g);
    }
    const report = summarizePaced(results, usage, problems);
    for (const r of report.rows) {
      console.error(
        `  ${r.target.padEnd(12)} TTFB p50 ${r.ttfbP50.toFixed(2)} ms, chunk delay p99 ` +
          `${r.delayP99.toFixed(2)} ms, gap p99 ${r.gapP99.toFixed(2)} ms`,
      );
    }
    return report;
  } finally {
    await stopEnv(env);
  }
}

/** RSS before and while `n` slow streams are open through `target`. */
async function runOpen(
  env: Env,
  target: ProxyName,
  n: number,
  tmp: string,
): Promise<OpenReport> {
  const b = env.bench;
  const pid = pidOf(b, target);
  const problems: string[] = [];
  // Warm the process up (JIT, buffers) with ordinary traffic first.
  const sse = WORKLOADS.find((w) => w.name === "sse")!;
  const warm = await measureRun(b, sse, target, 16, 1000, -1);
  progress(warm);
  problems.push(...warm.problems.map((p) => `warm-up: ${p}`));
  await sleep(500);
  const base: number[] = [];
  for (let i = 0; i < 5; i++) {
    base.push(rssKiB(pid));
    await sleep(100);
  }
  await quiesce(b.up);
  await b.up.reset();
  const gw = isGateway(target) ? b.gateways[target] : undefined;
  const before = gw ? await gw.usage() : undefined;
  resetPeakRss(pid);
  const client = await runClient({
    mode: "open",
    target: {
      name: target,
      url: urlOf(b, target),
      specs: requestsFor(SLOW, target, b.creds),
    },
    streams: n,
    rampBatch: 50,
    rampEveryMs: 20,
    openTimeoutMs: 60_000,
  }, { cpu: CPU_LOAD, log: `${LOGS}/open-${target}-client.log`, tmpDir: tmp });
  track(client.proc);
  const opened = await client.next(90_000);
  console.error(`  [${elapsed()}] ${target}: ${opened.opened} streams open`);
  const openCount = Number(opened.opened);
  if (openCount < n) problems.push(`only ${openCount} of ${n} streams opened`);
  await sleep(1000);
  const samples: number[] = [];
  for (let i = 0; i < 5; i++) {
    samples.push(rssKiB(pid));
    await sleep(200);
  }
  const upOpen = (await b.up.stats()).slowOpen;
  if (upOpen !== n) problems.push(`the upstream had ${upOpen} slow streams open, not ${n}`);
  await b.up.finishSlow();
  const done = await client.next(60_000);
  console.error(`  [${elapsed()}] ${target}: ${done.completed} streams completed`);
  await client.proc.child.status;
  console.error(`  [${elapsed()}] ${target}: client exited`);
  if (Number(done.completed) !== n) {
    problems.push(`${done.completed} of ${n} streams completed (${done.errorCount} errors)`);
  }
  if (!await quiesce(b.up)) problems.push("the upstream did not go idle");
  let usage: UsageCheck | undefined;
  if (gw && before) {
    usage = await settleUsage(gw, before, await b.up.stats());
    problems.push(...usage.problems.map((p) => `usage: ${p}`));
  }
  const baseKiB = median(base);
  const openKiB = Math.max(...samples);
  const report: OpenReport = {
    target,
    streams: n,
    opened: openCount,
    baseKiB,
    openKiB,
    perStreamKiB: (openKiB - baseKiB) / Math.max(1, openCount),
    usage,
    problems: problems.filter((p) => !p.startsWith("usage: ")),
  };
  console.error(
    `  ${target}: ${(baseKiB / 1024).toFixed(1)} → ${(openKiB / 1024).toFixed(1)} MiB, ` +
      `${report.perStreamKiB.toFixed(1)} KiB/stream${
        usage ? (usage.ok ? ", usage OK" : ", usage FAIL") : ""
      }`,
  );
  return report;
}

async function machineHeader(o: Options, portkey: string | undefined): Promise<string> {
  const order = o.workers ? o.workers.map((n) => `WORKERS=${n}`) : o.targets;
  const cpuinfo = await Deno.readTextFile("/proc/cpuinfo").catch(() => "");
  const model = /^model name\s*:\s*(.*)$/m.exec(cpuinfo)?.[1]?.trim() ?? "unknown CPU";
  const text = async (cmd: string, args: string[]) => {
    try {
      const out = await new Deno.Command(cmd, { args, stdout: "piped", stderr: "piped" }).output();
      return new TextDecoder().decode(out.stdout).trim() ||
        new TextDecoder().decode(out.stderr).trim();
    } catch {
      return "";
    }
  };
  const nproc = (await text("nproc", [])) || String(navigator.hardwareConcurrency);
  const wrk = (await text("wrk", ["-v"])).split("\n")[0].split(" [")[0];
  const commit = await text("git", ["-C", `${HERE}..`, "rev-parse", "--short", "HEAD"]);
  const dirty = await text("git", [
    "-C",
    `${HERE}..`,
    "status",
    "--porcelain",
    "--",
    "lib",
    "main.ts",
  ]);
  const pin = o.workers
    ? "nothing pinned: the gateway's processes, the fake upstream and wrk share every CPU"
    : CPU_SERVER !== undefined
    ? "servers (upstream and every target) pinned to CPU 0, load (wrk, stream client) to CPU 1 with taskset"
    : "not pinned (taskset missing or a single CPU)";
  return [
    `# Gateway benchmark`,
    "",
    `- Date: ${new Date().toISOString()}`,
    `- Machine: ${nproc} CPUs (nproc), ${model}; Linux ${Deno.osRelease()}`,
    `- Deno ${Deno.version.deno} (V8 ${Deno.version.v8}); load: ${wrk || "wrk"}; gateway ${
      Deno.env.get("BENCH_GATEWAY_MAIN")
        ? Deno.env.get("BENCH_GATEWAY_MAIN")
        : `commit ${commit || "unknown"}${dirty ? " + uncommitted changes in lib/ or main.ts" : ""}`
    }`,
    ...(portkey ? [`- ${portkey}`] : []),
    `- ${pin}`,
    `- ${o.rounds} round(s) × ${o.durationS} s per run, interleaved ${order.join(" → ")}${
      o.quick ? " (--quick)" : ""
    }; medians over rounds, ratios are medians of per-round ratios`,
  ].join("\n");
}

/** What V8's GC trace (`--trace-gc-nvp`) says about a process: bytes allocated, collections, pauses. */
interface GcTrace {
  allocatedBytes: number;
  scavenges: number;
  markCompacts: number;
  pauseMs: number;
}

/** Sums the `--trace-gc-nvp` lines of a log. */
function parseGcTrace(text: string): GcTrace {
  const t: GcTrace = { allocatedBytes: 0, scavenges: 0, markCompacts: 0, pauseMs: 0 };
  for (const line of text.split("\n")) {
    const at = line.indexOf("GC: {");
    if (at < 0) continue;
    try {
      const j = JSON.parse(line.slice(at + 4));
      t.allocatedBytes += Number(j.allocated) || 0;
      t.pauseMs += Number(j.pause) || 0;
      if (j.gc === "s") t.scavenges++;
      else t.markCompacts++;
    } catch {
      // a line cut short: skip it
    }
  }
  return t;
}

/**
 * Runs `target` (a gateway) from bench/alloc_main.ts and samples its
 * allocations during one measured run; the profile's text and the run's
 * request count, or undefined when no profile came.
 */
async function sampleAllocations(
  label: string,
  tmp: string,
  target: GatewayName,
  w: Workload,
  c: number,
  seconds: number,
  file: string,
): Promise<{ profile: string; requests: number } | undefined> {
  const out = `${file}.heapprofile`;
  const env = await startEnv(`${label}-alloc`, tmp, [target], {
    gatewayMain: `${HERE}alloc_main.ts`,
    gatewayEnv: { BENCH_HEAP_PROFILE: out, BENCH_GATEWAY_ROOT: GATEWAY_ROOT },
  });
  try {
    progress(await measureRun(env.bench, w, target, c, 1000, -1));
    const pid = pidOf(env.bench, target);
    Deno.kill(pid, "SIGUSR1");
    const r = await measureRun(env.bench, w, target, c, seconds * 1000, 0);
    Deno.kill(pid, "SIGUSR2");
    progress(r);
    for (let i = 0; i < 300; i++) {
      const profile = await Deno.readTextFile(out).catch(() => undefined);
      if (profile !== undefined) return { profile, requests: r.requests };
      await sleep(100);
    }
    console.error(`no heap profile was written to ${out}`);
    return undefined;
  } finally {
    await stopEnv(env);
  }
}

async function runProfile(o: Options, tmp: string): Promise<number> {
  const stamp = new Date().toISOString().replace(/[:.]/g, "-");
  const target = o.profileTarget;
  let failed = false;
  for (const name of o.profile ?? []) {
    const w = WORKLOADS.find((x) => x.name === name)!;
    const dir = `${RESULTS}/prof/${name}-${target}-${stamp}`;
    await Deno.mkdir(dir, { recursive: true });
    const c = o.profileConcurrency;
    console.error(`\nprofiling ${target} on ${w.label} at c=${c} for ${o.profileSeconds} s`);
    const label = `profile-${name}`;
    const log = `${LOGS}/${label}-${target}.log`;
    const logStart = await Deno.stat(log).then((s) => s.size, () => 0);
    const env = await startEnv(label, tmp, [target], {
      denoFlags: ["--cpu-prof", `--cpu-prof-dir=${dir}`, "--v8-flags=--trace-gc-nvp"],
    });
    let requests = 6; // the preflight's
    let measured: RunResult | undefined;
    try {
      const warm = await measureRun(env.bench, w, target, c, 1000, -1);
      progress(warm);
      measured = await measureRun(env.bench, w, target, c, o.profileSeconds * 1000, 0);
      progress(measured);
      requests += warm.requests + measured.requests;
      if (measured.problems.length) failed = true;
    } finally {
      await stopEnv(env);
    }
    // Allocation sites in a run of their own: the inspector session the sampler needs slows
    // fetch down (see formatHeapSummary), which must not touch the CPU profile's figures.
    const heap = isGateway(target)
      ? await sampleAllocations(label, tmp, target, w, c, o.profileSeconds, `${dir}/allocations`)
      : undefined;
    const file = await newestProfile(dir);
    if (!file) {
      console.error(`no .cpuprofile was written to ${dir}`);
      failed = true;
      continue;
    }
    await sleep(300); // the last of its stdout reaches the log
    const bytes = await Deno.readFile(log);
    const gc = parseGcTrace(new TextDecoder().decode(bytes.subarray(logStart)));
    const summary = formatSummary(summarize(JSON.parse(await Deno.readTextFile(file))), 20);
    const per = (x: number) => (x / Math.max(1, requests));
    const md = [
      `## ${target} CPU profile: ${w.label}, c=${c}`,
      "",
      file,
      "",
      `${measured?.rps.toFixed(0)} rps, ${
        measured?.cpuUsPerReq?.toFixed(0)
      } µs CPU/req under the ` +
      `profiler; V8 heap allocation ${(per(gc.allocatedBytes) / 1024).toFixed(1)} KiB/req, ` +
      `${gc.scavenges} scavenges and ${gc.markCompacts} mark-compacts, GC pauses ` +
      `${(per(gc.pauseMs) * 1000).toFixed(1)} µs/req (--trace-gc-nvp over the process's ` +
      `${requests} requests, start-up included)`,
      "",
      summary,
      "",
      ...(heap
        ? [
          `### Allocation sites (V8 sampling heap profiler, a run of its own)`,
          "",
          formatHeapSummary(summarizeHeap(JSON.parse(heap.profile).head), heap.requests),
          "",
        ]
        : []),
    ].join("\n");
    await Deno.writeTextFile(`${dir}/top.md`, md);
    console.log(md);
  }
  return failed ? 1 : 0;
}

/** `--workers`: the scaling run (bench/workers.ts), written like the main result. */
async function runWorkers(o: Options, workers: number[], tmp: string): Promise<number> {
  console.error(`\nthe gateway with WORKERS=${workers.join(", ")}`);
  const { md, ok } = await runScaling({
    workers,
    workloads: o.workloads,
    concurrency: o.concurrency,
    rounds: o.rounds,
    durationS: o.durationS,
    warmupS: o.warmupS,
    tmp,
    logs: LOGS,
    secrets: SECRETS,
    track,
    progress,
  });
  const out = [await machineHeader(o, undefined), "", md, ""].join("\n");
  console.log(out);
  await Deno.mkdir(o.out.slice(0, o.out.lastIndexOf("/")) || ".", { recursive: true });
  await Deno.writeTextFile(o.out, out);
  console.error(`written to ${o.out}`);
  return ok ? 0 : 1;
}

async function main(): Promise<number> {
  const o = parseOptions(Deno.args);
  await Deno.mkdir(LOGS, { recursive: true });
  await ensureWrk();
  const tmp = await Deno.makeTempDir({ prefix: "gateway-bench-" });
  try {
    if (o.profile) return await runProfile(o, tmp);
    if (o.workers) return await runWorkers(o, o.workers, tmp);
    const portkey = o.targets.includes("portkey") ? await ensurePortkey() : undefined;
    const header = await machineHeader(o, portkey);
    const t0 = performance.now();
    const runs: RunResult[] = [];
    for (const w of o.workloads) runs.push(...await runWorkload(w, o, tmp));
    const paced = o.pacedStreams > 0 ? await runPaced(o, tmp) : undefined;
    const open: OpenReport[] = [];
    if (o.streams > 0) {
      console.error(`\n${o.streams} open streams: RSS per stream`);
      const env = await startEnv("open", tmp, o.targets);
      try {
        for (const t of o.targets) {
          if (t !== "direct") open.push(await runOpen(env, t, o.streams, tmp));
        }
      } finally {
        await stopEnv(env);
      }
    }

    const cells: Cell[] = [];
    for (const w of o.workloads) {
      for (const c of o.concurrency) cells.push(summarizeCell(runs, w.name, w.label, c));
    }
    const pacedUsage = Object.entries(paced?.usage ?? {});
    const usageOk = runs.every((r) => !r.usage || r.usage.ok) &&
      pacedUsage.every(([, u]) => u.ok) && open.every((x) => !x.usage || x.usage.ok);
    const problems = [
      ...runs.filter((r) => r.problems.length).map((r) =>
        `${r.workload} c=${r.concurrency} ${r.target} ${
          r.round < 0 ? "warm-up" : `round ${r.round + 1}`
        }: ${r.problems.join("; ")}`
      ),
      ...(paced?.problems ?? []).map((p) => `paced: ${p}`),
      ...pacedUsage.filter(([, u]) => !u.ok).map(([g, u]) =>
        `paced: ${g} usage: ${u.problems.join("; ")}`
      ),
      ...open.flatMap((x) => x.problems.map((p) => `open streams (${x.target}): ${p}`)),
    ];
    const minutes = ((performance.now() - t0) / 60_000).toFixed(1);
    const md = [
      header,
      "",
      `## Throughput (${minutes} min run)`,
      "",
      renderThroughput(cells),
      "",
      "RPS counts completed requests until the run's clean end (medians over rounds). " +
      "gw÷X = the gateway's RPS ÷ X's, median of per-round ratios; best meter = the metering " +
      "floor with the higher RPS in that cell (tee = meter-tee, inline = meter-inline). " +
      "Usage: the gateway's recorded requests and tokens equal what the upstream served, per " +
      "gateway run. Each request alternates Anthropic (/v1/messages) and OpenAI " +
      "(/v1/chat/completions, no stream_options: the gateway adds include_usage and strips " +
      "the usage event; the other targets forward the body as is).",
      "",
      "## CPU per request",
      "",
      renderCpu(cells),
      "",
      "CPU = user+system time of the proxy process (/proc/<pid>/stat, all threads) per " +
      "completed request, µs; lower is better. gw÷X = the gateway's CPU per request ÷ X's; " +
      "best meter = the metering floor with the lower CPU per request in that cell. Upstream: " +
      "the fake upstream's CPU per request in the direct and gateway runs.",
      "",
      "## Latency and memory",
      "",
      renderLatency(cells),
      "",
      "Latencies from wrk's histogram. Added p50 = target p50 − direct p50 (same round). Peak " +
      "RSS = VmHWM of the proxy process during the run" +
      (cells.some((c) => c.peakIsLifetime) ? " (* lifetime peak: clear_refs not writable)" : "") +
      ".",
      "",
      renderCancellation(runs),
      ...(paced
        ? [
          "",
          "## Paced SSE (64 deltas, 20 ms apart)",
          "",
          renderPaced(paced),
          "",
          "TTFB: request start to the first body chunk. Chunk delay: arrival at the client minus " +
          "the upstream's send timestamp in the event. Gap: time between consecutive chunks.",
        ]
        : []),
      ...(open.length ? ["", "## Open streams (RSS per stream)", "", renderOpen(open)] : []),
      "",
      "## Targets",
      "",
      renderTargets(evaluateTargets(cells, paced, open, usageOk)),
      ...(problems.length ? ["", "## Failed runs", "", ...problems.map((p) => `- ${p}`)] : []),
      "",
    ].join("\n");
    console.log(md);
    await Deno.mkdir(o.out.slice(0, o.out.lastIndexOf("/")) || ".", { recursive: true });
    await Deno.writeTextFile(o.out, md);
    console.error(`written to ${o.out}`);
    return problems.length || !usageOk ? 1 : 0;
  } finally {
    await stopAll();
    await Deno.remove(tmp, { recursive: true }).catch(() => {});
  }
}

if (import.meta.main) {
  const onSignal = async () => {
    console.error("\ninterrupted: stopping the benchmark's processes");
    await stopAll();
    Deno.exit(130);
  };
  Deno.addSignalListener("SIGINT", onSignal);
  Deno.addSignalListener("SIGTERM", onSignal);
  // A hard limit on the whole benchmark, whatever hangs.
  const maxMinutes = Number(Deno.env.get("BENCH_MAX_MINUTES") || 60);
  const watchdog = setTimeout(async () => {
    console.error(`bench: still running after ${maxMinutes} min (BENCH_MAX_MINUTES): giving up`);
    await stopAll();
    Deno.exit(1);
  }, maxMinutes * 60_000);
  Deno.unrefTimer(watchdog);
  let code = 1;
  try {
    code = await main();
  } catch (e) {
    console.error(`bench: ${(e as Error).message}`);
    await stopAll();
  }
  Deno.exit(code);
}
