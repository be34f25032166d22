/**
 * The benchmark's Markdown output: per workload × concurrency, throughput,
 * CPU per request, latency and peak memory of every target, with the
 * gateway's ratios to the bare floor, to the better metering floor and to
 * Portkey (and the same for the gateway with limits on its key, plus its
 * ratio to the gateway without); the paced-SSE table; the open-streams
 * table; and which performance targets are met.
 *
 * Medians are taken over rounds; a ratio is the median of the per-round
 * ratios (rounds are interleaved, so each round's targets ran side by side).
 * "Best metering floor" is chosen per cell and per measure: the one of
 * meter-tee and meter-inline with the higher median RPS (for throughput
 * ratios) or the lower median CPU per request (for CPU ratios).
 */
import type { RunResult } from "./measure.ts";
import { max, median, percentile, ratio } from "./stats.ts";
import type { PacedSamples } from "./stream_client.ts";
import type { UsageCheck } from "./usage_check.ts";
import {
  type GatewayName,
  GATEWAYS,
  isGateway,
  type ProxyName,
  type TargetName,
  TARGETS,
  type WorkloadName,
} from "./workloads.ts";

/** The two metering floors. */
export type MeterName = "meter-tee" | "meter-inline";
const METERS: MeterName[] = ["meter-tee", "meter-inline"];

/** The gateway's ratio to one other target (median of per-round ratios). */
export interface Versus {
  bare: number;
  /** To the better metering floor for this measure, named in `meter`. */
  bestMeter: number;
  meter?: MeterName;
  portkey: number;
}

/** Summary of one workload × concurrency. */
export interface Cell {
  workload: WorkloadName;
  label: string;
  concurrency: number;
  rounds: number;
  /** The targets measured in this cell, in round order. */
  targets: TargetName[];
  rps: Partial<Record<TargetName, number>>;
  p50: Partial<Record<TargetName, number>>;
  p99: Partial<Record<TargetName, number>>;
  /** p50 minus direct's p50 in the same round, median over rounds, ms. */
  addedP50: Partial<Record<ProxyName, number>>;
  cpu: Partial<Record<ProxyName, number>>;
  upstreamCpu: Partial<Record<TargetName, number>>;
  peakMiB: Partial<Record<ProxyName, number>>;
  peakIsLifetime: boolean;
  /** Gateway RPS ÷ the other's RPS. */
  gwRps: Versus;
  /** Gateway CPU per request ÷ the other's. */
  gwCpu: Versus;
  /** The same ratios for the gateway with limits on its key (NaN when not measured). */
  limRps: Versus;
  limCpu: Versus;
  /** Gateway with limits ÷ gateway without, RPS and CPU per request (median of per-round ratios). */
  limVsGw: { rps: number; cpu: number };
  /** Gateway's added p50 ÷ the bare floor's (NaN below 50 µs of floor overhead). */
  gwBareAdded: number;
  usageOk: number;
  usageRuns: number;
  /** Problems of any run in this cell (any target). */
  problems: string[];
}

/** Summarises the measured (non-warm-up) runs of one workload × concurrency. */
export function summarizeCell(
  runs: RunResult[],
  workload: WorkloadName,
  label: string,
  concurrency: number,
): Cell {
  const mine = runs.filter((r) =>
    r.workload === workload && r.concurrency === concurrency && r.round >= 0
  );
  const targets = TARGETS.filter((t) => mine.some((r) => r.target === t));
  const proxies = targets.filter((t): t is ProxyName => t !== "direct");
  const rounds = [...new Set(mine.map((r) => r.round))].sort((a, b) => a - b);
  const inRound = (t: TargetName, round: number) =>
    mine.find((r) => r.target === t && r.round === round);
  const perRound = (a: TargetName, b: TargetName, f: (x: RunResult, y: RunResult) => number) =>
    median(rounds.map((n) => {
      const x = inRound(a, n), y = inRound(b, n);
      return x && y ? f(x, y) : NaN;
    }));
  const med = (t: TargetName, f: (r: RunResult) => number | undefined) =>
    median(mine.filter((r) => r.target === t).map((r) => f(r) ?? NaN));
  const each = <T extends TargetName>(ts: T[], f: (r: RunResult) => number | undefined) =>
    Object.fromEntries(ts.map((t) => [t, med(t, f)])) as Partial<Record<T, number>>;
  const rps = each(targets, (r) => r.rps);
  const cpu = each(proxies, (r) => r.cpuUsPerReq);
  const pick = (
    better: (a: number, b: number) => boolean,
    v: Partial<Record<TargetName, number>>,
  ) =>
    METERS.filter((m) => Number.isFinite(v[m] ?? NaN))
      .reduce<MeterName | undefined>(
        (best, m) => !best || better(v[m]!, v[best]!) ? m : best,
        undefined,
      );
  const versus = (
    g: GatewayName,
    f: (g: RunResult, x: RunResult) => number,
    meter: MeterName | undefined,
  ): Versus => ({
    bare: perRound(g, "bare", f),
    bestMeter: meter ? perRound(g, meter, f) : NaN,
    meter,
    portkey: perRound(g, "portkey", f),
  });
  const rpsRatio = (g: RunResult, x: RunResult) => ratio(g.rps, x.rps);
  const cpuRatio = (g: RunResult, x: RunResult) =>
    ratio(g.cpuUsPerReq ?? NaN, x.cpuUsPerReq ?? NaN);
  const fastest = pick((a, b) => a > b, rps);
  const leanest = pick((a, b) => a < b, cpu);
  const gwRuns = mine.filter((r) => isGateway(r.target));
  return {
    workload,
    label,
    concurrency,
    rounds: rounds.length,
    targets,
    rps,
    p50: each(targets, (r) => r.p50Ms),
    p99: each(targets, (r) => r.p99Ms),
    addedP50: Object.fromEntries(
      proxies.map((t) => [t, perRound(t, "direct", (x, d) => x.p50Ms - d.p50Ms)]),
    ),
    cpu,
    upstreamCpu: each(targets, (r) => r.upstreamCpuUsPerReq),
    peakMiB: Object.fromEntries(proxies.map((t) => [t, med(t, (r) => r.peakRssKiB) / 1024])),
    peakIsLifetime: mine.some((r) => r.peakIsLifetime),
    gwRps: versus("gateway", rpsRatio, fastest),
    gwCpu: versus("gateway", cpuRatio, leanest),
    limRps: versus("gw-limits", rpsRatio, fastest),
    limCpu: versus("gw-limits", cpuRatio, leanest),
    limVsGw: {
      rps: perRound("gw-limits", "gateway", rpsRatio),
      cpu: perRound("gw-limits", "gateway", cpuRatio),
    },
    // Below 50 µs the floor's added latency is within wrk's noise: no ratio.
    gwBareAdded: median(rounds.map((n) => {
      const d = inRound("direct", n), fl = inRound("bare", n), g = inRound("gateway", n);
      if (!d || !fl || !g || fl.p50Ms - d.p50Ms < 0.05) return NaN;
      return ratio(g.p50Ms - d.p50Ms, fl.p50Ms - d.p50Ms);
    })),
    usageOk: gwRuns.filter((r) => r.usage?.ok).length,
    usageRuns: gwRuns.length,
    problems: mine.flatMap((r) => r.problems.map((p) => `${r.target} round ${r.round + 1}: ${p}`)),
  };
}

const fmt = (x: number | undefined, digits = 0) =>
  x !== undefined && Number.isFinite(x) ? x.toFixed(digits) : "–";
const ms = (x: number | undefined) =>
  x === undefined ? "–" : fmt(x, x >= 100 ? 0 : x >= 10 ? 1 : 2);
const times = (x: number) => Number.isFinite(x) ? `${x.toFixed(2)}×` : "–";
const SHORT: Record<MeterName, string> = { "meter-tee": "tee", "meter-inline": "inline" };
const vsMeter = (v: Versus) =>
  Number.isFinite(v.bestMeter) && v.meter ? `${times(v.bestMeter)} (${SHORT[v.meter]})` : "–";

/** The targets that appear in any cell, in round order. */
function present(cells: Cell[]): TargetName[] {
  return TARGETS.filter((t) => cells.some((c) => c.targets.includes(t)));
}

function table(head: string[], align: string[], rows: string[][]): string {
  return [
    `| ${head.join(" | ")} |`,
    `| ${align.join(" | ")} |`,
    ...rows.map((r) => `| ${r.join(" | ")} |`),
  ].join("\n");
}

function usageCol(c: Cell): string {
  const usage = c.usageRuns === 0
    ? "–"
    : c.usageOk === c.usageRuns
    ? `OK ${c.usageOk}/${c.usageRuns}`
    : `**FAIL** ${c.usageRuns - c.usageOk}/${c.usageRuns}`;
  return usage + (c.problems.length > 0 && c.usageOk === c.usageRuns ? " ⚠" : "");
}

/** The ratio columns: the gateway's, then (when measured) the gateway with limits'. */
function ratioColumns(
  cells: Cell[],
  of: (c: Cell) => { gw: Versus; lim: Versus; limVsGw: number },
): { head: string[]; row: (c: Cell) => string[] } {
  const lim = present(cells).includes("gw-limits");
  return {
    head: [
      "gw÷bare",
      "gw÷best meter",
      "gw÷portkey",
      ...(lim ? ["lim÷best meter", "lim÷portkey", "lim÷gw"] : []),
    ],
    row: (c) => {
      const x = of(c);
      return [
        times(x.gw.bare),
        vsMeter(x.gw),
        times(x.gw.portkey),
        ...(lim ? [vsMeter(x.lim), times(x.lim.portkey), times(x.limVsGw)] : []),
      ];
    },
  };
}

/** Requests per second of every target and the gateways' ratios. */
export function renderThroughput(cells: Cell[]): string {
  const ts = present(cells);
  const r = ratioColumns(cells, (c) => ({ gw: c.gwRps, lim: c.limRps, limVsGw: c.limVsGw.rps }));
  return table(
    ["workload", "c", ...ts.map((t) => `RPS ${t}`), ...r.head, "usage"],
    ["---", "--:", ...ts.map(() => "--:"), ...r.head.map(() => "--:"), "---"],
    cells.map((c) => [
      c.label,
      String(c.concurrency),
      ...ts.map((t) => fmt(c.rps[t])),
      ...r.row(c),
      usageCol(c),
    ]),
  );
}

/** CPU per request of every proxy and the gateways' ratios (lower is better). */
export function renderCpu(cells: Cell[]): string {
  const ps = present(cells).filter((t): t is ProxyName => t !== "direct");
  const r = ratioColumns(cells, (c) => ({ gw: c.gwCpu, lim: c.limCpu, limVsGw: c.limVsGw.cpu }));
  return table(
    [
      "workload",
      "c",
      ...ps.map((t) => `CPU µs/req ${t}`),
      ...r.head,
      "upstream µs/req direct / gw",
    ],
    ["---", "--:", ...ps.map(() => "--:"), ...r.head.map(() => "--:"), "--:"],
    cells.map((c) => [
      c.label,
      String(c.concurrency),
      ...ps.map((t) => fmt(c.cpu[t])),
      ...r.row(c),
      `${fmt(c.upstreamCpu.direct)} / ${fmt(c.upstreamCpu.gateway)}`,
    ]),
  );
}

/** p50 / p99 latency of every target, the latency each proxy adds, and peak RSS. */
export function renderLatency(cells: Cell[]): string {
  const ts = present(cells);
  const ps = ts.filter((t): t is ProxyName => t !== "direct");
  const lifetime = cells.some((c) => c.peakIsLifetime) ? "*" : "";
  return table(
    [
      "workload",
      "c",
      ...ts.map((t) => `p50 / p99 ms ${t}`),
      `added p50 ms ${ps.join(" / ")}`,
      "gw÷bare added p50",
      `peak RSS MiB${lifetime} ${ps.join(" / ")}`,
    ],
    ["---", "--:", ...ts.map(() => "--:"), "--:", "--:", "--:"],
    cells.map((c) => [
      c.label,
      String(c.concurrency),
      ...ts.map((t) => `${ms(c.p50[t])} / ${ms(c.p99[t])}`),
      ps.map((t) => ms(c.addedP50[t])).join(" / "),
      times(c.gwBareAdded),
      ps.map((t) => fmt(c.peakMiB[t], 1)).join(" / "),
    ]),
  );
}

/**
 * How often a request parked at the end of a run was still open upstream
 * 300 ms after its client left (the proxy did not cancel it), per target.
 */
export function renderCancellation(runs: RunResult[]): string {
  const parts = TARGETS.filter((t) => runs.some((r) => r.target === t)).map((t) => {
    const mine = runs.filter((r) => r.target === t);
    const held = mine.reduce((n, r) => n + r.upstream.held, 0);
    const open = mine.reduce((n, r) => n + r.upstream.heldReleased, 0);
    return `${t} ${open}/${held}`;
  });
  return "Client disconnects not passed upstream: requests still open upstream 300 ms after " +
    `their client (wrk) left, of those parked at the end of each run: ${parts.join(", ")}.`;
}

/** Paced-SSE figures of one target. */
export interface PacedRow {
  target: TargetName;
  streams: number;
  errors: number;
  ttfbP50: number;
  ttfbP99: number;
  delayP50: number;
  delayP99: number;
  delayMax: number;
  gapP99: number;
  gapMax: number;
}

/** The paced measurement, summarised. */
export interface PacedReport {
  rows: PacedRow[];
  /** Gateway TTFB p50 minus the bare floor's TTFB p50, ms. */
  ttfbGwMinusBare: number;
  /** p99 chunk delay added vs direct, ms. */
  addedDelayP99: Partial<Record<ProxyName, number>>;
  /** Worst chunk delay added vs direct's worst, ms. */
  addedDelayMax: Partial<Record<ProxyName, number>>;
  /** Each gateway's usage check. */
  usage: Partial<Record<GatewayName, UsageCheck>>;
  problems: string[];
}

/** Summarises the stream client's paced samples. */
export function summarizePaced(
  results: Record<string, PacedSamples>,
  usage: Partial<Record<GatewayName, UsageCheck>>,
  problems: string[],
): PacedReport {
  const rows: PacedRow[] = TARGETS.filter((t) => results[t]).map((t) => {
    const s = results[t];
    return {
      target: t,
      streams: s.completed,
      errors: s.errors.length,
      ttfbP50: median(s.ttfbMs),
      ttfbP99: percentile(s.ttfbMs, 99),
      delayP50: median(s.delayMs),
      delayP99: percentile(s.delayMs, 99),
      delayMax: max(s.delayMs),
      gapP99: percentile(s.gapMs, 99),
      gapMax: max(s.gapMs),
    };
  });
  const row = (t: TargetName) => rows.find((r) => r.target === t);
  const d = row("direct");
  const proxies = rows.map((r) => r.target).filter((t): t is ProxyName => t !== "direct");
  return {
    rows,
    ttfbGwMinusBare: (row("gateway")?.ttfbP50 ?? NaN) - (row("bare")?.ttfbP50 ?? NaN),
    addedDelayP99: Object.fromEntries(
      proxies.map((t) => [t, row(t)!.delayP99 - (d?.delayP99 ?? NaN)]),
    ),
    addedDelayMax: Object.fromEntries(
      proxies.map((t) => [t, row(t)!.delayMax - (d?.delayMax ?? NaN)]),
    ),
    usage,
    problems: [
      ...problems,
      ...rows.filter((r) => r.errors > 0).map((r) => `${r.target}: ${r.errors} stream error(s)`),
    ],
  };
}

/** The paced-SSE table. */
export function renderPaced(p: PacedReport): string {
  const d = p.rows.find((r) => r.target === "direct");
  const lines = [
    table(
      [
        "target",
        "streams",
        "TTFB p50 ms",
        "TTFB p99 ms",
        "added TTFB p50 vs direct",
        "chunk delay p50 / p99 / max ms",
        "added chunk delay p99 vs direct",
        "inter-chunk gap p99 / max ms",
      ],
      ["---", "--:", "--:", "--:", "--:", "--:", "--:", "--:"],
      p.rows.map((r) => [
        r.target,
        `${r.streams}${r.errors ? ` (${r.errors} err)` : ""}`,
        ms(r.ttfbP50),
        ms(r.ttfbP99),
        r.target === "direct" ? "–" : ms(r.ttfbP50 - (d?.ttfbP50 ?? NaN)),
        `${ms(r.delayP50)} / ${ms(r.delayP99)} / ${ms(r.delayMax)}`,
        r.target === "direct" ? "–" : ms(r.delayP99 - (d?.delayP99 ?? NaN)),
        `${ms(r.gapP99)} / ${ms(r.gapMax)}`,
      ]),
    ),
  ];
  const checked = GATEWAYS.filter((g) => p.usage[g]);
  const usage = checked.length === 0 ? "Usage not checked" : checked.map((g) => {
    const u = p.usage[g]!;
    return `${g} usage ${u.ok ? "OK" : `**FAIL** (${u.problems.join("; ")})`}`;
  }).join(", ");
  const worst = Object.entries(p.addedDelayMax).map(([t, v]) => `${t} ${ms(v)} ms`).join(", ");
  lines.push(
    "",
    `Gateway TTFB p50 − bare floor TTFB p50: **${ms(p.ttfbGwMinusBare)} ms** (target ≤ 1 ms). ` +
      `Worst chunk delay added vs direct: ${worst}. ${usage}.`,
  );
  return lines.join("\n");
}

/** RSS with many open streams through one target. */
export interface OpenReport {
  target: ProxyName;
  streams: number;
  opened: number;
  baseKiB: number;
  openKiB: number;
  perStreamKiB: number;
  usage?: UsageCheck;
  problems: string[];
}

/** The open-streams table. */
export function renderOpen(reports: OpenReport[]): string {
  return table(
    ["target", "streams opened", "RSS before MiB", "RSS open MiB", "KiB per stream", "notes"],
    ["---", "--:", "--:", "--:", "--:", "---"],
    reports.map((o) => {
      const usage = !isGateway(o.target) ? [] : [
        o.usage?.ok
          ? "usage OK"
          : `usage **FAIL** (${o.usage?.problems.join("; ") ?? "not checked"})`,
      ];
      return [
        o.target,
        `${o.opened} of ${o.streams}`,
        fmt(o.baseKiB / 1024, 1),
        fmt(o.openKiB / 1024, 1),
        `**${fmt(o.perStreamKiB, 1)}**`,
        [...usage, ...o.problems.map((p) => `⚠ ${p}`)].join("; "),
      ];
    }),
  );
}

/** One performance target and whether it is met. */
export interface TargetCheck {
  target: string;
  measured: string;
  met?: boolean;
}

/**
 * Evaluates the performance targets, for the gateway and (when measured)
 * the gateway with limits on its key: against the better metering floor
 * and Portkey, CPU per request across concurrency, memory per open stream,
 * the cost of enforcing limits, and exact usage.
 */
export function evaluateTargets(
  cells: Cell[],
  paced: PacedReport | undefined,
  open: OpenReport[],
  allUsageOk: boolean,
): TargetCheck[] {
  const cell = (w: WorkloadName, c: number) =>
    cells.find((x) => x.workload === w && x.concurrency === c);
  const out: TargetCheck[] = [];
  const worst = (
    name: string,
    picks: [WorkloadName, number][],
    f: (c: Cell) => number,
    ok: (v: number) => boolean,
    lowIsWorse: boolean,
  ) => {
    const vals = picks.map(([w, c]) => ({ w, c, v: cell(w, c) ? f(cell(w, c)!) : NaN }))
      .filter((x) => Number.isFinite(x.v));
    if (vals.length === 0) return out.push({ target: name, measured: "not measured" });
    vals.sort((a, b) => lowIsWorse ? a.v - b.v : b.v - a.v);
    out.push({
      target: name,
      measured: vals.map((x) => `${x.w} c=${x.c}: ${times(x.v)}`).join(", "),
      met: vals.every((x) => ok(x.v)),
    });
  };
  const measuredC = [...new Set(cells.map((c) => c.concurrency))];
  const at = (ws: WorkloadName[], cs: number[]) =>
    ws.flatMap((w) => cs.map((c) => [w, c] as [WorkloadName, number]));
  const gws = GATEWAYS.filter((g) => cells.some((c) => c.targets.includes(g)));
  for (const g of gws) {
    const rpsOf = (c: Cell) => g === "gateway" ? c.gwRps : c.limRps;
    const cpuOf = (c: Cell) => g === "gateway" ? c.gwCpu : c.limCpu;
    worst(
      `${g}: JSON and 500 KB bodies, RPS ≥ 0.85× best metering floor (c=16, c=64)`,
      at(["json", "large"], [16, 64]),
      (c) => rpsOf(c).bestMeter,
      (v) => v >= 0.85,
      true,
    );
    worst(
      `${g}: JSON and 500 KB bodies, CPU/req ≤ 1.2× best metering floor (c=16, c=64)`,
      at(["json", "large"], [16, 64]),
      (c) => cpuOf(c).bestMeter,
      (v) => v <= 1.2,
      false,
    );
    worst(
      `${g}: streams, RPS ≥ 0.95× best metering floor (c=16, c=64)`,
      at(["sse"], [16, 64]),
      (c) => rpsOf(c).bestMeter,
      (v) => v >= 0.95,
      true,
    );
    worst(
      `${g}: streams, RPS ≥ 1.3× Portkey (c=16, c=64)`,
      at(["sse"], [16, 64]),
      (c) => rpsOf(c).portkey,
      (v) => v >= 1.3,
      true,
    );
    const s16 = cell("sse", 16)?.cpu[g], s64 = cell("sse", 64)?.cpu[g];
    const rise = ratio(s64 ?? NaN, s16 ?? NaN);
    out.push({
      target: `${g}: streams, CPU/req at c=64 within 10% of c=16`,
      measured: Number.isFinite(rise)
        ? `c=64 ÷ c=16: ${times(rise)} (${fmt(s64)} / ${fmt(s16)} µs)`
        : "not measured",
      met: Number.isFinite(rise) ? rise <= 1.1 : undefined,
    });
    worst(
      `${g}: JSON and 500 KB bodies, RPS ≥ 4× Portkey at every concurrency`,
      at(["json", "large"], measuredC),
      (c) => rpsOf(c).portkey,
      (v) => v >= 4,
      true,
    );
    const mine = open.find((o) => o.target === g);
    const meters = open.filter((o) => o.target === "meter-tee" || o.target === "meter-inline")
      .filter((o) => Number.isFinite(o.perStreamKiB));
    const best = meters.length ? Math.min(...meters.map((o) => o.perStreamKiB)) : NaN;
    const extra = (mine?.perStreamKiB ?? NaN) - best;
    out.push({
      target: `${g}: open streams, RSS per stream ≤ best metering floor's + 16 KiB`,
      measured: Number.isFinite(extra)
        ? `${fmt(mine!.perStreamKiB, 1)} KiB vs ${fmt(best, 1)} KiB: ${extra < 0 ? "−" : "+"}${
          fmt(Math.abs(extra), 1)
        } KiB`
        : "not measured",
      met: Number.isFinite(extra) ? extra <= 16 : undefined,
    });
  }
  if (gws.includes("gw-limits")) {
    worst(
      "Cost of enforcement: CPU/req with limits on the key ≤ 1.1× without (every run)",
      at(["json", "sse", "paced", "large"], measuredC),
      (c) => c.limVsGw.cpu,
      (v) => v <= 1.1,
      false,
    );
  }
  if (paced) {
    out.push({
      target: "Paced SSE: TTFB within 1 ms of the bare floor's (p50)",
      measured: `gateway − bare = ${ms(paced.ttfbGwMinusBare)} ms`,
      met: Number.isFinite(paced.ttfbGwMinusBare) ? paced.ttfbGwMinusBare <= 1 : undefined,
    });
    const g = paced.addedDelayP99.gateway ?? NaN;
    out.push({
      target: "Paced SSE: no added inter-chunk stall > 1 ms at p99",
      measured: `chunk delay p99 added vs direct: gateway ${ms(g)} ms ` +
        `(bare floor ${ms(paced.addedDelayP99.bare)} ms)`,
      met: Number.isFinite(g) ? g <= 1 : undefined,
    });
  }
  out.push({
    target: "Usage exact after every gateway run",
    measured: allUsageOk ? "every check OK" : "at least one FAIL",
    met: allUsageOk,
  });
  return out;
}

/** The targets table. */
export function renderTargets(checks: TargetCheck[]): string {
  return table(
    ["target", "measured (worst first)", "met"],
    ["---", "---", ":-:"],
    checks.map((c) => [
      c.target,
      c.measured,
      c.met === undefined ? "n/a" : c.met ? "yes" : "**no**",
    ]),
  );
}
