/**
 * One measured run: wrk against one target at one concurrency, with the
 * server processes' CPU time and peak RSS around it, ended at a clean point
 * so that the gateway's usage can be compared exactly with what the fake
 * upstream served.
 *
 * How a run ends: after the active time, the upstream starts holding every
 * new request. wrk keeps one request per connection in flight and sends the
 * next only after the previous response arrived in full, so once the
 * upstream has `c` requests parked and nothing else in flight, every
 * earlier response has been written and received to its end. CPU and RSS
 * are read, wrk is stopped (SIGINT) and its connections close. A proxy that
 * passes the disconnect on cancels its parked upstream request; those still
 * parked 300 ms later are released with a complete zero-token answer (and
 * counted, see `renderCancellation`). Either way no token changes hands, so
 * the gateway must have recorded exactly the upstream's `started` requests
 * and `completed` tokens. RPS counts the time until the clean point only
 * (wrk's duration minus the idle tail).
 */
import type { UpstreamControl } from "./control.ts";
import type { GatewayProc, UsageTotals } from "./gateway.ts";
import { startWrk, type WrkResult } from "./load.ts";
import {
  CLK_TCK,
  cpuMicros,
  machineBusyMicros,
  processTree,
  resetPeakRss,
  treeCpuMicros,
  treePeakRssKiB,
} from "./procs.ts";
import { checkUsage, type UsageCheck, usageDelta } from "./usage_check.ts";
import type { UpstreamStats } from "./upstream.ts";
import {
  type Credentials,
  type GatewayName,
  isGateway,
  type ProxyName,
  requestsFor,
  type TargetName,
  type Workload,
  type WorkloadName,
} from "./workloads.ts";

/** A proxy under test: where it listens and its process. */
export interface Endpoint {
  url: string;
  pid: number;
}

/** The running processes a run needs. */
export interface Bench {
  up: UpstreamControl;
  upPid: number;
  /** The proxies started for this phase (the gateway always among them). */
  proxies: Partial<Record<ProxyName, Endpoint>>;
  /** The gateways started for this phase (`gateway` always; `gw-limits` when measured). */
  gateways: Partial<Record<GatewayName, GatewayProc>>;
  creds: Credentials;
  /** Core for wrk (`taskset -c`). */
  loadCpu?: string;
  tmpDir: string;
}

/** Where a target listens (the upstream itself for `direct`). */
export function urlOf(b: Bench, target: TargetName): string {
  if (target === "direct") return b.up.base;
  const p = b.proxies[target];
  if (!p) throw new Error(`target ${target} is not running`);
  return p.url;
}

/** The process of a proxy target (0 for `direct`: no process in between). */
export function pidOf(b: Bench, target: TargetName): number {
  return target === "direct" ? 0 : b.proxies[target]?.pid ?? 0;
}

/** Everything measured in one run. */
export interface RunResult {
  /** 0-based round; -1 for a warm-up run. */
  round: number;
  workload: WorkloadName;
  target: TargetName;
  concurrency: number;
  requests: number;
  rps: number;
  p50Ms: number;
  p99Ms: number;
  /** CPU time of the proxy's processes per request, µs (undefined: direct, or too little CPU time to measure). */
  cpuUsPerReq?: number;
  /** CPU time of the fake upstream per request, µs (undefined: too little to measure). */
  upstreamCpuUsPerReq?: number;
  /** Busy CPU time of the whole machine per second of the run (1 = one core's worth). */
  machineCores: number;
  /** Peak RSS of the proxy's processes during the run, summed (or lifetime peaks, see `peakIsLifetime`), KiB. */
  peakRssKiB?: number;
  peakIsLifetime: boolean;
  usage?: UsageCheck;
  upstream: UpstreamStats;
  wrk: WrkResult;
  /** Why the run failed; empty when it passed. */
  problems: string[];
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** Reads the gateway's usage until it equals what the upstream served (and stays so), or time runs out. */
export async function settleUsage(
  gw: GatewayProc,
  before: UsageTotals,
  up: UpstreamStats,
  tag?: string,
): Promise<UsageCheck> {
  const until = performance.now() + 3000;
  let check = checkUsage(usageDelta(before, await gw.usage()), up, tag);
  while (!check.ok && performance.now() < until) {
    await sleep(100);
    check = checkUsage(usageDelta(before, await gw.usage()), up, tag);
  }
  if (!check.ok) return check;
  // Equal now; it must stay equal (nothing written twice, nothing late).
  await sleep(250);
  return checkUsage(usageDelta(before, await gw.usage()), up, tag);
}

/**
 * Brings the upstream back to idle: parked requests whose client left are
 * given `cancelMs` to be cancelled by the proxy; the rest are released (they
 * get a complete zero-token answer), then nothing may be left in flight.
 */
export async function quiesce(up: UpstreamControl, cancelMs = 300): Promise<boolean> {
  await up.waitFor((s) => s.heldNow === 0, cancelMs);
  await up.release();
  return (await up.waitFor((s) => s.inflight === 0, 10_000)).ok;
}

/** Runs wrk against one target for `activeMs` and measures it. */
export async function measureRun(
  b: Bench,
  w: Workload,
  target: TargetName,
  concurrency: number,
  activeMs: number,
  round: number,
): Promise<RunResult> {
  const problems: string[] = [];
  const proxyPid = pidOf(b, target);
  const url = urlOf(b, target);
  const drainMs = w.responseMs + 10_000;

  await quiesce(b.up);
  await b.up.reset();
  const gw = isGateway(target) ? b.gateways[target] : undefined;
  const before = gw ? await gw.usage() : undefined;
  // The proxy with its child processes (a gateway with WORKERS: the supervisor and its workers).
  const procs = proxyPid ? processTree(proxyPid) : [];
  const peakReset = procs.map(resetPeakRss).every(Boolean);
  const cpu0 = treeCpuMicros(procs);
  const upCpu0 = cpuMicros(b.upPid);
  const machine0 = machineBusyMicros();
  const t0 = performance.now();

  const wrk = await startWrk({
    url,
    specs: requestsFor(w, target, b.creds),
    concurrency,
    maxSeconds: (activeMs + drainMs) / 1000 + 5,
    cpu: b.loadCpu,
    tmpDir: b.tmpDir,
  });
  await sleep(activeMs);
  await b.up.hold();
  const parked = await b.up.waitFor(
    (s) => s.heldNow >= concurrency && s.inflight === s.heldNow,
    drainMs,
  );
  const cleanAt = performance.now();
  const cpu1 = treeCpuMicros(procs);
  const upCpu1 = cpuMicros(b.upPid);
  const machineCores = (machineBusyMicros() - machine0) / ((performance.now() - t0) * 1000);
  const peak = proxyPid ? treePeakRssKiB(procs) : undefined;
  const res = await wrk.stop();
  const idleTailMs = performance.now() - cleanAt;
  if (!parked.ok) {
    problems.push(
      `did not reach a clean end within ${drainMs} ms (parked ${parked.stats.heldNow}/${concurrency}, ` +
        `in flight ${parked.stats.inflight})`,
    );
  }
  if (!await quiesce(b.up)) problems.push("the upstream did not go idle after the run");
  const upStats = await b.up.stats();

  const e = res.errors;
  if (e.status > 0) problems.push(`${e.status} non-2xx responses`);
  const socketErrors = e.connect + e.read + e.write + e.timeout;
  if (socketErrors > 0) problems.push(`${socketErrors} socket errors/timeouts`);
  if (res.requests === 0) problems.push("no request completed");

  let usage: UsageCheck | undefined;
  if (gw && before) {
    usage = await settleUsage(gw, before, upStats);
    problems.push(...usage.problems.map((p) => `usage: ${p}`));
  }
  const activeSec = Math.max(1e-3, res.durationUs / 1e6 - idleTailMs / 1000);
  // Below 10 clock ticks of CPU time, a per-request figure is mostly rounding.
  const perReq = (us: number) =>
    us >= 10 * (1e6 / CLK_TCK) ? us / Math.max(1, res.requests) : undefined;
  return {
    round,
    workload: w.name,
    target,
    concurrency,
    requests: res.requests,
    rps: res.requests / activeSec,
    p50Ms: res.latencyUs.p50 / 1000,
    p99Ms: res.latencyUs.p99 / 1000,
    cpuUsPerReq: proxyPid ? perReq(cpu1 - cpu0) : undefined,
    upstreamCpuUsPerReq: perReq(upCpu1 - upCpu0),
    machineCores,
    peakRssKiB: peak,
    peakIsLifetime: proxyPid ? !peakReset : false,
    usage,
    upstream: upStats,
    wrk: res,
    problems,
  };
}
