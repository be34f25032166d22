/**
 * Usage: tokens per day stacked by model or by bucket (cache reads and
 * writes apart; bucket toggles), cost per day by model, requests per hour of
 * a chosen day, and several keys compared on one chart by tokens or cost,
 * over a range of the usage calendar. Every chart exports what it shows as
 * CSV.
 */
import { useMemo, useState } from "preact/hooks";
import type { Session } from "../app.tsx";
import { query } from "../api.ts";
import { ChartCard } from "../chart.tsx";
import { ErrorNote, UnpricedNote, useLoad } from "../components.tsx";
import { addDays, datesBetween, isDate } from "../dates.ts";
import { compact, int, usd } from "../format.ts";
import { allBuckets, BucketToggles, type Range, RangePicker } from "../pickers.tsx";
import {
  compareKeys,
  costByModel,
  type Measure,
  modelColors,
  requestsPerHour,
  tokensByBucket,
  tokensByModel,
} from "../series.ts";
import type { DailyReport, HourlyReport } from "../types.ts";

/** The most keys compared on one chart. */
const MAX_COMPARE = 8;

/** The usage view. */
export function Usage(props: { s: Session }) {
  const { api, today } = props.s;
  const [range, setRange] = useState<Range>({ from: addDays(today, -29), to: today });
  const [buckets, setBuckets] = useState(allBuckets);
  const [hourDay, setHourDay] = useState(today);
  const [picked, setPicked] = useState<string[] | null>(null);
  const [groupBy, setGroupBy] = useState<"model" | "bucket">("model");
  const [measure, setMeasure] = useState<Measure>("tokens");

  const daily = useLoad(
    () => api.get<DailyReport>(`/admin/usage/daily${query({ from: range.from, to: range.to })}`),
    [api, range.from, range.to],
  );
  const hourly = useLoad(
    () => api.get<HourlyReport>(`/admin/usage/hourly${query({ date: hourDay })}`),
    [api, hourDay],
  );

  const dates = useMemo(() => datesBetween(range.from, range.to), [range]);
  const days = daily.data?.days;
  const bucketsPerDay = useMemo(
    () =>
      new Map(
        (days ?? []).map((d) => [d.date, {
          input_uncached: d.input_uncached,
          cache_read: d.cache_read,
          cache_write: d.cache_write,
          output: d.total_output,
        }]),
      ),
    [days],
  );
  const byModelPerDay = useMemo(
    () => new Map((days ?? []).map((d) => [d.date, d.by_model])),
    [days],
  );
  const tokens = useMemo(
    () =>
      days &&
      (groupBy === "model"
        ? tokensByModel(byModelPerDay, dates, buckets)
        : tokensByBucket(bucketsPerDay, dates, buckets)),
    [byModelPerDay, bucketsPerDay, dates, buckets, days, groupBy],
  );
  const colorOf = useMemo(() => modelColors(byModelPerDay, dates), [byModelPerDay, dates]);
  const cost = useMemo(() => days && costByModel(byModelPerDay, dates), [
    byModelPerDay,
    dates,
    days,
  ]);

  // Keys seen in the range, most tokens first; the top three are compared until the user picks.
  const keysInRange = useMemo(() => {
    const m = new Map<string, { id: string; name: string; tokens: number }>();
    for (const d of days ?? []) {
      for (const k of d.keys) {
        const e = m.get(k.id) ?? { id: k.id, name: k.name, tokens: 0 };
        e.tokens += k.input + k.output;
        m.set(k.id, e);
      }
    }
    return [...m.values()].sort((a, b) => b.tokens - a.tokens);
  }, [days]);
  const chosen = picked ?? keysInRange.slice(0, 3).map((k) => k.id);
  const compared = useMemo(
    () =>
      days &&
      compareKeys(
        days,
        dates,
        keysInRange.filter((k) => chosen.includes(k.id)),
        buckets,
        measure,
      ),
    [days, dates, keysInRange, chosen.join(","), buckets, measure],
  );
  const hours = useMemo(
    () =>
      hourly.data &&
      requestsPerHour(
        hourly.data.hours.map((h) => ({
          hour: h.hour,
          stats: { requests: h.total_requests, failed: h.failed },
        })),
        hourly.data.date,
      ),
    [hourly.data],
  );
  const span = `${range.from}_${range.to}`;

  return (
    <div class="view">
      <h1>Usage</h1>
      <div class="toolbar">
        <RangePicker today={today} value={range} onChange={setRange} />
        <BucketToggles value={buckets} onChange={setBuckets} />
      </div>
      <ErrorNote error={daily.error} retry={daily.reload} />
      <ChartCard
        title={`Tokens per day by ${groupBy === "model" ? "model" : "token bucket"}`}
        testId="chart-tokens"
        kind="stacked"
        table={tokens}
        xName="date"
        csvName={`tokens-by-${groupBy}_${span}.csv`}
        colorOf={groupBy === "model" ? colorOf : undefined}
        exact={int}
        empty="No tokens in this range for the chosen buckets."
        controls={
          <label class="inline">
            By
            <select
              value={groupBy}
              onChange={(e) => setGroupBy(e.currentTarget.value as "model" | "bucket")}
            >
              <option value="model">model</option>
              <option value="bucket">token bucket</option>
            </select>
          </label>
        }
      />
      <ChartCard
        title="Cost per day by model"
        testId="chart-cost"
        kind="stacked"
        table={cost?.table}
        format={(n) => `$${compact(n)}`}
        exact={usd}
        integer={false}
        xName="date"
        csvName={`cost-by-model_${span}.csv`}
        colorOf={colorOf}
        empty="No priced usage in this range."
        note={<UnpricedNote n={cost?.unpriced} />}
      />
      <ChartCard
        title="Requests per hour"
        testId="chart-hourly"
        kind="bars"
        table={hours}
        exact={int}
        xName="hour"
        csvName={`requests-per-hour_${hourDay}.csv`}
        empty="No requests on this day."
        controls={
          <label class="inline">
            Day
            <input
              type="date"
              value={hourDay}
              max={today}
              onChange={(e) => isDate(e.currentTarget.value) && setHourDay(e.currentTarget.value)}
            />
          </label>
        }
      />
      <ErrorNote error={hourly.error} retry={hourly.reload} />
      <ChartCard
        title={`Keys compared (${measure} per day)`}
        testId="chart-compare"
        kind="lines"
        table={compared}
        format={measure === "cost" ? (n) => `$${compact(n)}` : compact}
        exact={measure === "cost" ? usd : int}
        integer={measure !== "cost"}
        xName="date"
        csvName={`keys-compared-${measure}_${span}.csv`}
        empty={keysInRange.length
          ? "Pick keys to compare."
          : "No key used the gateway in this range."}
        controls={
          <>
            <label class="inline">
              Compare
              <select
                value={measure}
                onChange={(e) => setMeasure(e.currentTarget.value as Measure)}
              >
                <option value="tokens">tokens</option>
                <option value="cost">cost</option>
              </select>
            </label>
            <details class="picker">
              <summary>Keys ({chosen.length})</summary>
              <fieldset>
                <legend class="sr-only">Keys to compare</legend>
                {keysInRange.map((k) => (
                  <label key={k.id}>
                    <input
                      type="checkbox"
                      checked={chosen.includes(k.id)}
                      disabled={!chosen.includes(k.id) && chosen.length >= MAX_COMPARE}
                      onChange={(e) =>
                        setPicked(
                          e.currentTarget.checked
                            ? [...chosen, k.id]
                            : chosen.filter((c) => c !== k.id),
                        )}
                    />
                    {k.name}
                  </label>
                ))}
              </fieldset>
            </details>
          </>
        }
      />
    </div>
  );
}
