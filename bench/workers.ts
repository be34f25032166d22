/**
 * `deno task bench --workers 1,2`: how the gateway scales with `WORKERS`.
 *
 * One fake upstream and one gateway per worker count (each on its own KV
 * file), all running at once; every round visits each worker count in turn
 * for each workload and concurrency, with the same clean-end runs and the
 * same exact-usage check after each run as the main benchmark
 * (bench/measure.ts). Nothing is pinned: the workers are meant to spread
 * over the cores, and the load (wrk) and the fake upstream share those
 * cores with them. CPU per request is the user+system time of the gateway's
 * processes (the supervisor and its workers) per completed request; "cores"
 * is CPU time per second of the run, of the gateway, of the upstream and of
 * everything else (wrk, other programs): where the machine's cores went.
 */
import { UpstreamControl } from "./control.ts";
import { type GatewayProc, prepareGateway, startGateway } from "./gateway.ts";
import { type Bench, measureRun, type RunResult } from "./measure.ts";
import { firstJsonLine, type Proc, spawn } from "./procs.ts";
import { median, ratio } from "./stats.ts";
import type { Workload } from "./workloads.ts";

/** What the scaling phase needs from the benchmark command. */
export interface ScalingOptions {
  workers: number[];
  workloads: Workload[];
  concurrency: number[];
  rounds: number;
  durationS: number;
  warmupS: number;
  tmp: string;
  logs: string;
  secrets: { anthropic: string; openai: string };
  /** Registers a process to stop on exit. */
  track: <T extends Proc>(p: T) => T;
  /** Prints one run's progress line. */
  progress: (r: RunResult, label: string) => void;
}

/** One worker count's runs of one workload × concurrency. */
interface Row {
  workload: string;
  concurrency: number;
  byWorkers: Map<number, RunResult[]>;
}

/** Runs the scaling phase; returns its Markdown section and whether every usage check passed. */
export async function runScaling(o: ScalingOptions): Promise<{ md: string; ok: boolean }> {
  const deno = Deno.execPath();
  const here = new URL(".", import.meta.url).pathname;
  const env = { BENCH_SECRET_A: o.secrets.anthropic, BENCH_SECRET_O: o.secrets.openai };
  const procs: Proc[] = [];
  const rows: Row[] = [];
  try {
    const upstream = o.track(spawn({
      name: "upstream",
      cmd: [deno, "run", "--unstable-no-legacy-abort", "-A", `${here}upstream.ts`],
      env: { ...env, BENCH_PORT: "0" },
      log: `${o.logs}/workers-upstream.log`,
      stdout: "piped",
    }));
    procs.push(upstream);
    const upUrl = `http://127.0.0.1:${(await firstJsonLine<{ port: number }>(upstream)).port}`;
    const up = new UpstreamControl(upUrl);
    const benches = new Map<number, Bench>();
    for (const n of o.workers) {
      const home = await prepareGateway(`${o.tmp}/workers-${n}`, upUrl);
      const gateway: GatewayProc = o.track(
        await startGateway({
          home,
          secrets: o.secrets,
          log: `${o.logs}/workers-${n}-gateway.log`,
          workers: n,
        }),
      );
      procs.push(gateway);
      benches.set(n, {
        up,
        upPid: upstream.pid,
        proxies: { gateway: { url: gateway.url, pid: gateway.pid } },
        gateways: { gateway },
        creds: {
          upstreamUrl: upUrl,
          upstreamA: o.secrets.anthropic,
          upstreamO: o.secrets.openai,
          gatewayKey: home.secret,
          limitsKey: "", // no gw-limits target in this phase
        },
        tmpDir: o.tmp,
      });
    }
    for (const w of o.workloads) {
      for (const [n, b] of benches) {
        if (o.warmupS > 0) {
          o.progress(await measureRun(b, w, "gateway", 16, o.warmupS * 1000, -1), `W=${n}`);
        }
      }
      for (const c of o.concurrency) {
        rows.push({ workload: w.label, concurrency: c, byWorkers: new Map() });
      }
      for (let round = 0; round < o.rounds; round++) {
        for (const c of o.concurrency) {
          const row = rows.find((r) => r.workload === w.label && r.concurrency === c)!;
          for (const [n, b] of benches) {
            const r = await measureRun(b, w, "gateway", c, o.durationS * 1000, round);
            o.progress(r, `W=${n}`);
            row.byWorkers.set(n, [...row.byWorkers.get(n) ?? [], r]);
          }
        }
      }
    }
  } finally {
    await Promise.all(procs.map((p) => p.stop(30_000)));
  }
  return render(rows, o.workers);
}

const fmt = (v: number | undefined, digits = 0) =>
  v === undefined || !Number.isFinite(v) ? "–" : v.toFixed(digits);

function render(rows: Row[], workers: number[]): { md: string; ok: boolean } {
  const [first, ...more] = workers;
  const head = [
    "workload",
    "c",
    ...workers.map((n) => `RPS W=${n}`),
    ...more.map((n) => `W=${n}÷W=${first}`),
    ...workers.map((n) => `CPU µs/req W=${n}`),
    ...workers.map((n) => `cores gw / up / rest W=${n}`),
    ...workers.map((n) => `p99 ms W=${n}`),
    "usage",
  ];
  let ok = true;
  const lines = rows.map((row) => {
    const runs = (n: number) => row.byWorkers.get(n) ?? [];
    const med = (n: number, f: (r: RunResult) => number | undefined) =>
      median(runs(n).map(f).filter((v): v is number => v !== undefined));
    const perRound = (n: number) =>
      median(runs(n).map((r, i) => ratio(r.rps, runs(first)[i]?.rps ?? NaN)));
    const all = workers.flatMap(runs);
    const usageOk = all.filter((r) => r.usage?.ok && r.problems.length === 0).length;
    if (usageOk !== all.length) ok = false;
    return [
      row.workload,
      String(row.concurrency),
      ...workers.map((n) => fmt(med(n, (r) => r.rps))),
      ...more.map((n) => `${fmt(perRound(n), 2)}×`),
      ...workers.map((n) => fmt(med(n, (r) => r.cpuUsPerReq))),
      ...workers.map((n) => {
        const gw = med(n, (r) => (r.cpuUsPerReq ?? NaN) * r.rps / 1e6);
        const up = med(n, (r) => (r.upstreamCpuUsPerReq ?? NaN) * r.rps / 1e6);
        const rest = med(n, (r) => r.machineCores) - gw - up;
        return `${fmt(gw, 2)} / ${fmt(up, 2)} / ${fmt(rest, 2)}`;
      }),
      ...workers.map((n) => fmt(med(n, (r) => r.p99Ms), 1)),
      `${usageOk === all.length ? "OK" : "FAIL"} ${usageOk}/${all.length}`,
    ];
  });
  const table = [
    `| ${head.join(" | ")} |`,
    `| ${head.map((_, i) => (i < 2 || i === head.length - 1 ? "---" : "--:")).join(" | ")} |`,
    ...lines.map((l) => `| ${l.join(" | ")} |`),
  ].join("\n");
  const md = [
    `## Workers (WORKERS=${workers.join(", ")})`,
    "",
    table,
    "",
    `W=n: the gateway with WORKERS=n (a supervisor and n worker processes sharing the port). ` +
    `RPS: completed requests per second, median over rounds; W=n÷W=${first}: median of ` +
    `per-round ratios. CPU µs/req: user+system time of all the gateway's processes per ` +
    `request. Cores: CPU time per second of the run (1.00 = one core kept busy) of the ` +
    `gateway's processes, of the fake upstream, and of the rest of the machine (wrk, and ` +
    `anything else running), out of ${navigator.hardwareConcurrency}. Nothing is pinned. ` +
    `Usage: runs whose recorded usage equalled what the upstream served.`,
  ].join("\n");
  return { md, ok };
}
