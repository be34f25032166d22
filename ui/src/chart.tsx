/**
 * A chart card: a uPlot chart of a {@link SeriesTable}, its legend with
 * totals, the values under the cursor, the same numbers as a table (for
 * screen readers and keyboards) and a CSV export of exactly what is shown.
 */
import uPlot from "uplot";
import "uplot/dist/uPlot.min.css";
import type { ComponentChildren } from "preact";
import { useEffect, useRef, useState } from "preact/hooks";
import { Card, useColorScheme } from "./components.tsx";
import { dateMs } from "./dates.ts";
import { compact } from "./format.ts";
import { type SeriesTable, seriesTotals, toCsv } from "./series.ts";

/** How series are drawn: stacked bars, overlaid bars, or lines. */
export type ChartKind = "stacked" | "bars" | "lines";

/** The chart's fixed height in CSS pixels (the card reserves it while loading). */
export const CHART_HEIGHT = 240;

function cssVar(name: string): string {
  return getComputedStyle(document.documentElement).getPropertyValue(name).trim();
}

/** The series palette of the current color scheme. */
function palette(): string[] {
  return Array.from({ length: 8 }, (_, i) => cssVar(`--series-${i + 1}`));
}

/** Seconds since the epoch of an x label ("YYYY-MM-DD" or "YYYY-MM-DD HH:00"), read as UTC. */
function xSeconds(label: string): number {
  if (label.length === 10) return dateMs(label) / 1000;
  return Date.parse(`${label.slice(0, 10)}T${label.slice(11, 16)}:00Z`) / 1000;
}

function download(name: string, text: string): void {
  const url = URL.createObjectURL(new Blob([text], { type: "text/csv;charset=utf-8" }));
  const a = document.createElement("a");
  a.href = url;
  a.download = name;
  a.click();
  setTimeout(() => URL.revokeObjectURL(url), 1000);
}

/** Tick steps of whole counts (no "0.5 requests"). */
const COUNT_INCRS = Array.from({ length: 13 }, (_, e) => [1, 2, 5].map((m) => m * 10 ** e)).flat();
const DAY_INCRS = [1, 2, 7, 14, 28, 56, 91, 182].map((d) => d * 86_400);
const HOUR_INCRS = [1, 2, 3, 4, 6, 12].map((h) => h * 3_600);

/** uPlot options and data for a table. */
function plot(
  table: SeriesTable,
  kind: ChartKind,
  integer: boolean,
  width: number,
  format: (n: number) => string,
  onHover: (i: number | null) => void,
  color: (i: number) => string,
): [uPlot.Options, uPlot.AlignedData] {
  const xs = table.x.map(xSeconds);
  const step = table.x[0]?.length === 10 ? 86_400 : 3_600;
  // Stacks are drawn as cumulative bars, tallest first, so each lower layer paints over it.
  let ys = table.series.map((s) => s.values);
  let order = table.series.map((_, i) => i);
  if (kind === "stacked") {
    const cum: number[][] = [];
    ys.forEach((v, i) => cum.push(v.map((y, j) => y + (i ? cum[i - 1][j] : 0))));
    ys = cum.reverse();
    order = order.reverse();
  }
  const muted = cssVar("--muted");
  const grid = cssVar("--grid");
  const axis = (values: uPlot.Axis["values"], incrs?: number[]): uPlot.Axis => ({
    stroke: muted,
    grid: { stroke: grid, width: 1 },
    ticks: { stroke: grid, width: 1 },
    values,
    incrs,
  });
  // Ticks in the calendar's own terms: "11-27" for days, "14:00" for hours (x is UTC-shifted).
  const xLabel = (v: number) => {
    const iso = new Date(v * 1000).toISOString();
    return step === 86_400 ? iso.slice(5, 10) : iso.slice(11, 16);
  };
  const bars = uPlot.paths.bars!({ size: [0.7, 48], align: 0 });
  return [{
    width,
    height: CHART_HEIGHT,
    legend: { show: false },
    cursor: { points: { show: kind === "lines" }, drag: { x: false, y: false } },
    tzDate: (ts) => uPlot.tzDate(new Date(ts * 1000), "Etc/UTC"),
    scales: {
      x: {
        time: true,
        range: (_u, min, max) => [min - step / 2, max + step / 2],
      },
      y: { range: (_u, _min, max) => [0, max > 0 ? max * 1.05 : 1] },
    },
    axes: [
      axis((_u, splits) => splits.map(xLabel), step === 86_400 ? DAY_INCRS : HOUR_INCRS),
      {
        ...axis(
          (_u, splits) => splits.map((v) => (v === 0 ? "0" : format(v))),
          integer ? COUNT_INCRS : undefined,
        ),
        size: 56,
      },
    ],
    series: [
      {},
      ...order.map((src) => {
        const c = color(src);
        return kind === "lines"
          ? { label: table.series[src].label, stroke: c, width: 2, points: { show: true } }
          : {
            label: table.series[src].label,
            stroke: c,
            fill: c,
            width: 0,
            paths: bars,
            points: { show: false },
          };
      }),
    ],
    hooks: { setCursor: [(u) => onHover(u.cursor.idx ?? null)] },
  }, [xs, ...ys] as uPlot.AlignedData];
}

/** A chart card over a series table. */
export function ChartCard(props: {
  title: string;
  table?: SeriesTable;
  kind: ChartKind;
  /** Tick and value format (default: compact counts). */
  format?: (n: number) => string;
  /** Exact value format for the legend and the table (default: compact counts). */
  exact?: (n: number) => string;
  /** Values are whole counts (requests, tokens): ticks at whole numbers. */
  integer?: boolean;
  xName: string;
  csvName: string;
  empty: string;
  controls?: ComponentChildren;
  note?: ComponentChildren;
  testId?: string;
  /** A series' place in the palette by its label, so a model keeps its colour across charts. */
  colorOf?: (label: string) => number | undefined;
}) {
  const box = useRef<HTMLDivElement>(null);
  const scheme = useColorScheme();
  const [hover, setHover] = useState<number | null>(null);
  const format = props.format ?? compact;
  const exact = props.exact ?? format;
  const table = props.table;
  const hasData = !!table && table.series.some((s) => s.values.some((v) => v !== 0));

  const colors = table ? palette() : [];
  const color = (i: number) =>
    colors[(props.colorOf?.(table!.series[i].label) ?? i) % colors.length];
  useEffect(() => {
    const el = box.current;
    if (!el || !table || !hasData) return;
    const [opts, data] = plot(
      table,
      props.kind,
      props.integer ?? true,
      el.clientWidth || 300,
      format,
      setHover,
      color,
    );
    const u = new uPlot(opts, data, el);
    const ro = new ResizeObserver(() => {
      if (el.clientWidth > 0) u.setSize({ width: el.clientWidth, height: CHART_HEIGHT });
    });
    ro.observe(el);
    return () => {
      ro.disconnect();
      u.destroy();
    };
  }, [table, props.kind, scheme, hasData]);

  const totals = table ? seriesTotals(table) : [];
  const hoverLine = table && hover !== null && table.x[hover] !== undefined
    ? `${table.x[hover]}: ${
      table.series.map((s) => `${s.label} ${exact(s.values[hover])}`).join(" · ")
    }`
    : "\u00a0";
  return (
    <Card
      title={props.title}
      wide
      actions={
        <>
          {props.controls}
          <button
            type="button"
            disabled={!table}
            onClick={() => table && download(props.csvName, toCsv(table, props.xName))}
          >
            Export CSV
          </button>
        </>
      }
    >
      <div class="chart-hover" aria-hidden="true">{hoverLine}</div>
      <div
        class="chart"
        ref={box}
        role="img"
        aria-label={`${props.title} chart; the numbers are in the table below`}
        data-testid={props.testId}
      >
        {table && !hasData && <p class="chart-empty">{props.empty}</p>}
      </div>
      <ul class="legend">
        {table?.series.map((s, i) => (
          <li key={i}>
            <span class="swatch" aria-hidden="true" style={{ background: color(i) }} />
            <span class="legend-label">{s.label}</span>
            <span class="legend-value">{exact(totals[i])}</span>
          </li>
        ))}
      </ul>
      {props.note}
      <details class="chart-table">
        <summary>Table</summary>
        {table && (
          <div class="table-wrap">
            <table>
              <caption class="sr-only">{props.title}</caption>
              <thead>
                <tr>
                  <th scope="col">{props.xName}</th>
                  {table.series.map((s, i) => <th scope="col" class="num" key={i}>{s.label}</th>)}
                </tr>
              </thead>
              <tbody>
                {table.x.map((x, i) => (
                  <tr key={x}>
                    <th scope="row">{x}</th>
                    {table.series.map((s, j) => <td class="num" key={j}>{exact(s.values[i])}</td>)}
                  </tr>
                ))}
              </tbody>
            </table>
          </div>
        )}
      </details>
    </Card>
  );
}
