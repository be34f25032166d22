/**
 * Report rows turned into chart series: one x label per date or hour, one
 * series per model, key or measure, with the token buckets the user picked.
 * Pure functions; the same tables feed the charts, their data tables and
 * the CSV export, so all three always show the same numbers.
 */
import type { Buckets, DailyReport, ModelStats, PeriodTotals } from "./types.ts";

/** A token bucket. */
export type Bucket = keyof Buckets;

/** The buckets in the order the page lists them. */
export const BUCKETS: readonly { id: Bucket; label: string }[] = [
  { id: "input_uncached", label: "Input (uncached)" },
  { id: "cache_read", label: "Cache read" },
  { id: "cache_write", label: "Cache write" },
  { id: "output", label: "Output" },
];

/** One line or stack layer. */
export interface Series {
  label: string;
  values: number[];
}

/** What one chart shows: x labels and the series over them. */
export interface SeriesTable {
  x: string[];
  series: Series[];
}

/** The most series a chart draws; smaller ones are summed into "other". */
export const MAX_SERIES = 8;

/** The tokens of the chosen buckets. */
export function tokensOf(b: Buckets, on: ReadonlySet<Bucket>): number {
  let n = 0;
  for (const { id } of BUCKETS) if (on.has(id)) n += b[id];
  return n;
}

/** Keeps the `MAX_SERIES - 1` largest series and sums the rest into "other (N)". */
function capSeries(series: Series[], width: number): Series[] {
  const sum = (s: Series) => s.values.reduce((a, b) => a + b, 0);
  const sorted = [...series].sort((a, b) => sum(b) - sum(a) || (a.label < b.label ? -1 : 1));
  if (sorted.length <= MAX_SERIES) return sorted;
  const keep = sorted.slice(0, MAX_SERIES - 1);
  const rest = sorted.slice(MAX_SERIES - 1);
  const other = new Array<number>(width).fill(0);
  for (const s of rest) s.values.forEach((v, i) => (other[i] += v));
  return [...keep, { label: `other (${rest.length} models)`, values: other }];
}

/** Tokens per day, one series per model (largest first), for the chosen buckets. */
export function tokensByModel(
  perDay: ReadonlyMap<string, Record<string, ModelStats>>,
  dates: string[],
  on: ReadonlySet<Bucket>,
): SeriesTable {
  const models = new Map<string, number[]>();
  dates.forEach((date, i) => {
    for (const [model, stats] of Object.entries(perDay.get(date) ?? {})) {
      let v = models.get(model);
      if (!v) models.set(model, v = new Array<number>(dates.length).fill(0));
      v[i] += tokensOf(stats, on);
    }
  });
  const series = [...models].map(([label, values]) => ({ label, values }));
  return { x: dates, series: capSeries(series, dates.length) };
}

/** A sum of dollars rounded to micro-dollars (the gateway's unit), so float noise never shows. */
const micro = (n: number) => Math.round(n * 1e6) / 1e6;

/**
 * Cost per day, one series per model (largest first), and how many requests
 * in the range had no price. A model without a price adds nothing.
 */
export function costByModel(
  perDay: ReadonlyMap<string, Record<string, ModelStats>>,
  dates: string[],
): { table: SeriesTable; unpriced: number } {
  const models = new Map<string, number[]>();
  let unpriced = 0;
  dates.forEach((date, i) => {
    for (const [model, stats] of Object.entries(perDay.get(date) ?? {})) {
      unpriced += stats.unpriced_requests;
      if (stats.cost_usd === null) continue;
      let v = models.get(model);
      if (!v) models.set(model, v = new Array<number>(dates.length).fill(0));
      v[i] += stats.cost_usd;
    }
  });
  const series = [...models].map(([label, values]) => ({ label, values }));
  const capped = capSeries(series, dates.length);
  return {
    table: { x: dates, series: capped.map((s) => ({ ...s, values: s.values.map(micro) })) },
    unpriced,
  };
}

/** Tokens per day, one series per chosen bucket (cache reads and writes apart from the rest). */
export function tokensByBucket(
  perDay: ReadonlyMap<string, Buckets>,
  dates: string[],
  on: ReadonlySet<Bucket>,
): SeriesTable {
  return {
    x: dates,
    series: BUCKETS.filter((b) => on.has(b.id)).map((b) => ({
      label: b.label,
      values: dates.map((d) => perDay.get(d)?.[b.id] ?? 0),
    })),
  };
}

/** What a key comparison adds up: tokens of the chosen buckets, or dollars. */
export type Measure = "tokens" | "cost";

/** Tokens (or cost) per day of each chosen key, for comparing keys on one chart. */
export function compareKeys(
  days: DailyReport["days"],
  dates: string[],
  keys: readonly { id: string; name: string }[],
  on: ReadonlySet<Bucket>,
  measure: Measure = "tokens",
): SeriesTable {
  const index = new Map(dates.map((d, i) => [d, i]));
  const series = keys.map((k) => ({
    label: k.name,
    values: new Array<number>(dates.length).fill(0),
  }));
  for (const day of days) {
    const i = index.get(day.date);
    if (i === undefined) continue;
    for (const entry of day.keys) {
      const at = keys.findIndex((k) => k.id === entry.id);
      if (at < 0) continue;
      series[at].values[i] = measure === "cost"
        ? micro(series[at].values[i] + (entry.cost_usd ?? 0))
        : series[at].values[i] + tokensOf(entry, on);
    }
  }
  return { x: dates, series };
}

/** The 24 hour labels of a day, "00" to "23". */
export const HOURS = Array.from({ length: 24 }, (_, h) => String(h).padStart(2, "0"));

/** Requests and failed requests per hour of one day, from rows labelled "YYYY-MM-DD HH:00". */
export function requestsPerHour(
  rows: readonly { hour: string; stats: Pick<PeriodTotals, "failed"> & { requests: number } }[],
  date: string,
): SeriesTable {
  const requests = new Array<number>(24).fill(0);
  const failed = new Array<number>(24).fill(0);
  for (const r of rows) {
    if (!r.hour.startsWith(date)) continue;
    const h = Number(r.hour.slice(11, 13));
    if (!(h >= 0 && h < 24)) continue;
    requests[h] += r.stats.requests;
    failed[h] += r.stats.failed;
  }
  return {
    x: HOURS.map((h) => `${date} ${h}:00`),
    series: [{ label: "Requests", values: requests }, { label: "Failed", values: failed }],
  };
}

/**
 * A colour slot per model, in order of all their tokens over the dates, so
 * a model keeps its colour in every chart and whatever buckets are shown.
 */
export function modelColors(
  perDay: ReadonlyMap<string, Record<string, ModelStats>>,
  dates: string[],
): (label: string) => number | undefined {
  const order = tokensByModel(perDay, dates, new Set(BUCKETS.map((b) => b.id))).series;
  const slots = new Map(order.map((s, i) => [s.label, i]));
  return (label) => slots.get(label);
}

/** Sum of each series (for legends and totals rows). */
export function seriesTotals(t: SeriesTable): number[] {
  return t.series.map((s) => s.values.reduce((a, b) => a + b, 0));
}

// A cell a spreadsheet would run as a formula is prefixed with a quote (key and model names are user input).
function csvCell(v: string | number): string {
  let s = String(v);
  if (typeof v === "string" && /^[=+\-@\t\r]/.test(s)) s = `'${s}`;
  return /[",\r\n]/.test(s) ? `"${s.replaceAll('"', '""')}"` : s;
}

/** The table as CSV: a header row (x name, then series labels), then one row per x. */
export function toCsv(t: SeriesTable, xName: string): string {
  const lines = [[xName, ...t.series.map((s) => s.label)].map(csvCell).join(",")];
  t.x.forEach((x, i) => {
    lines.push([x, ...t.series.map((s) => s.values[i])].map(csvCell).join(","));
  });
  return lines.join("\r\n") + "\r\n";
}
