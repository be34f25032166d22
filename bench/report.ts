/**
 * The benchmark's Markdown output: the main table (every workload ×
 * concurrency, medians over rounds and per-round ratios), the paced-SSE
 * table, the open-streams line, and which issue-3 targets are met.
 *
 * Medians are taken over rounds; a ratio is the median of the per-round
 * ratios (rounds are interleaved, so each round's targets ran side by side).
 */
import type { RunResult } from "./measure.ts";
import { max, median, percentile, ratio } from "./stats.ts";
import type { PacedSamples } from "./stream_client.ts";
import type { UsageCheck } from "./usage_check.ts";
import type { TargetName, WorkloadName } from "./workloads.ts";

/** Summary of one workload × concurrency. */
export interface Cell {
  workload: WorkloadName;
  label: string;
  concurrency: number;
  rounds: number;
  rps: Record<TargetName, number>;
  p50: Record<TargetName, number>;
  p99: Record<TargetName, number>;
  addedP50: { floor: number; gateway: number };
  gwFloorRps: number;
  gwFloorAdded: number;
  cpu: { floor: number; gateway: number };
  gwFloorCpu: number;
  upstreamCpu: Record<TargetName, number>;
  peakMiB: { floor: number; gateway: number };
  peakIsLifetime: boolean;
  usageOk: number;
  usageRuns: number;
  /** Problems of any run in this cell (any target). */
  problems: string[];
}

const TARGETS: TargetName[] = ["direct", "floor", "gateway"];

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
  const of = (t: TargetName) => mine.filter((r) => r.target === t);
  const rounds = [...new Set(mine.map((r) => r.round))].sort((a, b) => a - b);
  const inRound = (t: TargetName, round: number) =>
    mine.find((r) => r.target === t && r.round === round);
  const perRound = (f: (d: RunResult, fl: RunResult, g: RunResult) => number) =>
    median(rounds.map((n) => {
      const d = inRound("direct", n), fl = inRound("floor", n), g = inRound("gateway", n);
      return d && fl && g ? f(d, fl, g) : NaN;
    }));
  const med = (t: TargetName, f: (r: RunResult) => number | undefined) =>
    median(of(t).map((r) => f(r) ?? NaN));
  const gwRuns = of("gateway");
  const problems = mine.flatMap((r) =>
    r.problems.map((p) => `${r.target} round ${r.round + 1}: ${p}`)
  );
  return {
    workload,
    label,
    concurrency,
    rounds: rounds.length,
    rps: Object.fromEntries(TARGETS.map((t) => [t, med(t, (r) => r.rps)])) as Cell["rps"],
    p50: Object.fromEntries(TARGETS.map((t) => [t, med(t, (r) => r.p50Ms)])) as Cell["p50"],
    p99: Object.fromEntries(TARGETS.map((t) => [t, med(t, (r) => r.p99Ms)])) as Cell["p99"],
    addedP50: {
      floor: perRound((d, fl) => fl.p50Ms - d.p50Ms),
      gateway: perRound((d, _fl, g) => g.p50Ms - d.p50Ms),
    },
    gwFloorRps: perRound((_d, fl, g) => ratio(g.rps, fl.rps)),
    // Below 50 µs the floor's added latency is within wrk's noise: no ratio.
    gwFloorAdded: perRound((d, fl, g) =>
      fl.p50Ms - d.p50Ms >= 0.05 ? ratio(g.p50Ms - d.p50Ms, fl.p50Ms - d.p50Ms) : NaN
    ),
    cpu: {
      floor: med("floor", (r) => r.cpuUsPerReq),
      gateway: med("gateway", (r) => r.cpuUsPerReq),
    },
    gwFloorCpu: perRound((_d, fl, g) => ratio(g.cpuUsPerReq ?? NaN, fl.cpuUsPerReq ?? NaN)),
    upstreamCpu: Object.fromEntries(
      TARGETS.map((t) => [t, med(t, (r) => r.upstreamCpuUsPerReq)]),
    ) as Cell["upstreamCpu"],
    peakMiB: {
      floor: med("floor", (r) => r.peakRssKiB) / 1024,
      gateway: med("gateway", (r) => r.peakRssKiB) / 1024,
    },
    peakIsLifetime: mine.some((r) => r.peakIsLifetime),
    usageOk: gwRuns.filter((r) => r.usage?.ok).length,
    usageRuns: gwRuns.length,
    problems,
  };
}

const fmt = (x: number, digits = 0) => Number.isFinite(x) ? x.toFixed(digits) : "–";
const ms = (x: number) => fmt(x, x >= 100 ? 0 : x >= 10 ? 1 : 2);
const times = (x: number) => Number.isFinite(x) ? `${x.toFixed(2)}×` : "–";

/** The main table. */
export function renderCells(cells: Cell[]): string {
  const head = [
    "| workload | c | RPS direct / floor / gw | gw÷floor RPS | p50 ms d / f / g | p99 ms d / f / g " +
    "| added p50 ms floor / gw | gw÷floor added p50 | CPU µs/req floor / gw | gw÷floor CPU " +
    "| upstream CPU µs/req d / f / g | peak RSS MiB floor / gw | usage |",
    "| --- | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --: | --- |",
  ];
  const rows = cells.map((c) => {
    const usage = c.usageRuns === 0
      ? "–"
      : c.usageOk === c.usageRuns
      ? `OK ${c.usageOk}/${c.usageRuns}`
      : `**FAIL** ${c.usageRuns - c.usageOk}/${c.usageRuns}`;
    const failed = c.problems.length > 0 && c.usageOk === c.usageRuns ? " ⚠" : "";
    return `| ${c.label} | ${c.concurrency} | ${fmt(c.rps.direct)} / ${fmt(c.rps.floor)} / ${
      fmt(c.rps.gateway)
    } | ${times(c.gwFloorRps)} | ${ms(c.p50.direct)} / ${ms(c.p50.floor)} / ${
      ms(c.p50.gateway)
    } | ${ms(c.p99.direct)} / ${ms(c.p99.floor)} / ${ms(c.p99.gateway)} | ${
      ms(c.addedP50.floor)
    } / ${ms(c.addedP50.gateway)} | ${times(c.gwFloorAdded)} | ${fmt(c.cpu.floor)} / ${
      fmt(c.cpu.gateway)
    } | ${times(c.gwFloorCpu)} | ${fmt(c.upstreamCpu.direct)} / ${fmt(c.upstreamCpu.floor)} / ${
      fmt(c.upstreamCpu.gateway)
    } | ${fmt(c.peakMiB.floor, 1)} / ${fmt(c.peakMiB.gateway, 1)}${
      c.peakIsLifetime ? "*" : ""
    } | ${usage}${failed} |`;
  });
  return [...head, ...rows].join("\n");
}

/**
 * How often a request parked at the end of a run was still open upstream
 * 300 ms after its client left (the proxy did not cancel it), per target.
 */
export function renderCancellation(runs: RunResult[]): string {
  const parts = TARGETS.map((t) => {
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
  /** Gateway TTFB p50 minus floor TTFB p50, ms. */
  ttfbGwMinusFloor: number;
  /** p99 chunk delay added vs direct, ms. */
  addedDelayP99: { floor: number; gateway: number };
  /** Worst chunk delay added vs direct's worst, ms. */
  addedDelayMax: { floor: number; gateway: number };
  usage?: UsageCheck;
  problems: string[];
}

/** Summarises the stream client's paced samples. */
export function summarizePaced(
  results: Record<string, PacedSamples>,
  usage: UsageCheck | undefined,
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
  const d = row("direct"), f = row("floor"), g = row("gateway");
  return {
    rows,
    ttfbGwMinusFloor: (g?.ttfbP50 ?? NaN) - (f?.ttfbP50 ?? NaN),
    addedDelayP99: {
      floor: (f?.delayP99 ?? NaN) - (d?.delayP99 ?? NaN),
      gateway: (g?.delayP99 ?? NaN) - (d?.delayP99 ?? NaN),
    },
    addedDelayMax: {
      floor: (f?.delayMax ?? NaN) - (d?.delayMax ?? NaN),
      gateway: (g?.delayMax ?? NaN) - (d?.delayMax ?? NaN),
    },
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
    "| target | streams | TTFB p50 ms | TTFB p99 ms | added TTFB p50 vs direct | chunk delay p50 / p99 / max ms " +
    "| added chunk delay p99 vs direct | inter-chunk gap p99 / max ms |",
    "| --- | --: | --: | --: | --: | --: | --: | --: |",
    ...p.rows.map((r) =>
      `| ${r.target} | ${r.streams}${r.errors ? ` (${r.errors} err)` : ""} | ${ms(r.ttfbP50)} | ${
        ms(r.ttfbP99)
      } | ${r.target === "direct" ? "–" : ms(r.ttfbP50 - (d?.ttfbP50 ?? NaN))} | ${
        ms(r.delayP50)
      } / ${ms(r.delayP99)} / ${ms(r.delayMax)} | ${
        r.target === "direct" ? "–" : ms(r.delayP99 - (d?.delayP99 ?? NaN))
      } | ${ms(r.gapP99)} / ${ms(r.gapMax)} |`
    ),
  ];
  const usage = p.usage
    ? p.usage.ok ? "usage OK" : `usage **FAIL** (${p.usage.problems.join("; ")})`
    : "usage not checked";
  lines.push(
    "",
    `Gateway TTFB p50 − floor TTFB p50: **${ms(p.ttfbGwMinusFloor)} ms** (target ≤ 1 ms). ` +
      `Worst chunk delay added vs direct: floor ${ms(p.addedDelayMax.floor)} ms, gateway ${
        ms(p.addedDelayMax.gateway)
      } ms. Gateway ${usage}.`,
  );
  return lines.join("\n");
}

/** RSS with many open streams through one target. */
export interface OpenReport {
  target: "floor" | "gateway";
  streams: number;
  opened: number;
  baseKiB: number;
  openKiB: number;
  perStreamKiB: number;
  usage?: UsageCheck;
  problems: string[];
}

/** The open-streams lines. */
export function renderOpen(reports: OpenReport[]): string {
  return reports.map((o) => {
    const usage = o.target !== "gateway"
      ? ""
      : o.usage?.ok
      ? "; usage OK"
      : `; usage **FAIL** (${o.usage?.problems.join("; ") ?? "not checked"})`;
    const issues = o.problems.length ? `; ⚠ ${o.problems.join("; ")}` : "";
    return `- ${o.streams.toLocaleString("en-US")} open streams through the ${o.target}: RSS ${
      fmt(o.baseKiB / 1024, 1)
    } → ${fmt(o.openKiB / 1024, 1)} MiB, **${fmt(o.perStreamKiB, 1)} KiB per stream** ` +
      `(${o.opened} opened)${usage}${issues}`;
  }).join("\n");
}

/** One issue-3 target and whether it is met. */
export interface TargetCheck {
  target: string;
  measured: string;
  met?: boolean;
}

/** Evaluates the issue-3 targets from what was measured (undefined: not measured in this run). */
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
  for (const w of ["json", "sse"] as const) {
    worst(
      `Throughput ${w.toUpperCase()} c=16 and c=64 ≥ 0.85× floor`,
      [[w, 16], [w, 64]],
      (c) => c.gwFloorRps,
      (v) => v >= 0.85,
      true,
    );
  }
  worst(
    "CPU per request ≤ 1.25× floor (JSON, SSE; c=16, c=64)",
    [["json", 16], ["json", 64], ["sse", 16], ["sse", 64]],
    (c) => c.gwFloorCpu,
    (v) => v <= 1.25,
    false,
  );
  worst(
    "Added p50 at c=1 ≤ 1.2× floor's added p50 (JSON, SSE)",
    [["json", 1], ["sse", 1]],
    (c) => c.gwFloorAdded,
    (v) => v <= 1.2,
    false,
  );
  if (paced) {
    out.push({
      target: "Paced SSE: TTFB within 1 ms of the floor's (p50)",
      measured: `gateway − floor = ${ms(paced.ttfbGwMinusFloor)} ms`,
      met: Number.isFinite(paced.ttfbGwMinusFloor) ? paced.ttfbGwMinusFloor <= 1 : undefined,
    });
    out.push({
      target: "Paced SSE: no added inter-chunk stall > 1 ms at p99",
      measured: `chunk delay p99 added vs direct: gateway ${ms(paced.addedDelayP99.gateway)} ms ` +
        `(floor ${ms(paced.addedDelayP99.floor)} ms)`,
      met: Number.isFinite(paced.addedDelayP99.gateway)
        ? paced.addedDelayP99.gateway <= 1
        : undefined,
    });
  } else out.push({ target: "Paced SSE TTFB and inter-chunk stalls", measured: "not measured" });
  const gwOpen = open.find((o) => o.target === "gateway");
  out.push({
    target: "1,000 open streams: ≤ 64 KiB RSS per stream",
    measured: gwOpen ? `${fmt(gwOpen.perStreamKiB, 1)} KiB/stream` : "not measured",
    met: gwOpen && Number.isFinite(gwOpen.perStreamKiB) ? gwOpen.perStreamKiB <= 64 : undefined,
  });
  worst(
    "Large bodies (500 KB): throughput ≥ 0.8× floor (c=16, c=64)",
    [["large", 16], ["large", 64]],
    (c) => c.gwFloorRps,
    (v) => v >= 0.8,
    true,
  );
  out.push({
    target: "Usage exact after every gateway run",
    measured: allUsageOk ? "every check OK" : "at least one FAIL",
    met: allUsageOk,
  });
  return out;
}

/** The targets table. */
export function renderTargets(checks: TargetCheck[]): string {
  return [
    "| issue-3 target | measured (worst first) | met |",
    "| --- | --- | :-: |",
    ...checks.map((c) =>
      `| ${c.target} | ${c.measured} | ${c.met === undefined ? "n/a" : c.met ? "yes" : "**no**"} |`
    ),
  ].join("\n");
}
