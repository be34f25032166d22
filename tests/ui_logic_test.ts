/**
 * The dashboard's pure logic, without a browser: report rows into chart
 * series (stacking by model, bucket choice, key comparison, hours), the CSV
 * export (quoting, spreadsheet-formula guard), calendar ranges, limit
 * consumption and number formats.
 */
import { assertEquals } from "./support/assert.ts";
import {
  compareKeys,
  costPerDay,
  MAX_SERIES,
  requestsPerHour,
  toCsv,
  tokensByModel,
} from "../ui/src/series.ts";
import { addDays, datesBetween, isDate, PRESETS } from "../ui/src/dates.ts";
import { limitStates, nearLimits, reportsLimits } from "../ui/src/limits.ts";
import { int, pct, time, usd } from "../ui/src/format.ts";
import type { KeyView, ModelStats } from "../ui/src/types.ts";

function stats(b: Partial<ModelStats>): ModelStats {
  const s = {
    input_uncached: 0,
    cache_read: 0,
    cache_write: 0,
    output: 0,
    requests: 1,
    failed: 0,
    incomplete: 0,
    ...b,
  };
  const input = s.input_uncached + s.cache_read + s.cache_write;
  return { ...s, input, total: input + s.output };
}

Deno.test("tokens per day: one series per model, largest first, zero on days without usage", () => {
  const perDay = new Map<string, Record<string, ModelStats>>([
    ["2026-03-01", { a: stats({ input_uncached: 10, output: 5 }), b: stats({ output: 100 }) }],
    ["2026-03-03", { a: stats({ cache_read: 7, cache_write: 3 }) }],
  ]);
  const dates = datesBetween("2026-03-01", "2026-03-03");
  const all = tokensByModel(
    perDay,
    dates,
    new Set(["input_uncached", "cache_read", "cache_write", "output"]),
  );
  assertEquals(all, {
    x: ["2026-03-01", "2026-03-02", "2026-03-03"],
    series: [{ label: "b", values: [100, 0, 0] }, { label: "a", values: [15, 0, 10] }],
  });
  const cacheOnly = tokensByModel(perDay, dates, new Set(["cache_read", "cache_write"]));
  assertEquals(cacheOnly.series, [{ label: "a", values: [0, 0, 10] }, {
    label: "b",
    values: [0, 0, 0],
  }]);
});

Deno.test("tokens per day: beyond the series cap the smallest models are summed into 'other'", () => {
  const models: Record<string, ModelStats> = {};
  for (let i = 1; i <= 12; i++) models[`m${String(i).padStart(2, "0")}`] = stats({ output: i });
  const t = tokensByModel(new Map([["2026-01-01", models]]), ["2026-01-01"], new Set(["output"]));
  assertEquals(t.series.length, MAX_SERIES);
  assertEquals(t.series[0], { label: "m12", values: [12] });
  // m01..m05 (1+2+3+4+5) are the rest.
  assertEquals(t.series.at(-1), { label: "other (5 models)", values: [15] });
});

Deno.test("cost per day: absent until the gateway reports cost; null cost counts as nothing priced", () => {
  const dates = ["2026-01-01", "2026-01-02"];
  assertEquals(costPerDay(new Map([["2026-01-01", {}]]), dates), null);
  const c = costPerDay(
    new Map([
      ["2026-01-01", { cost_usd: 1.5, unpriced_requests: 0 }],
      ["2026-01-02", { cost_usd: null, unpriced_requests: 3 }],
    ]),
    dates,
  );
  assertEquals(c, {
    table: { x: dates, series: [{ label: "Cost (USD)", values: [1.5, 0] }] },
    unpriced: 3,
  });
});

Deno.test("keys compared: the chosen keys' tokens per day, in the order chosen", () => {
  const key = (id: string, name: string, output: number) => ({
    id,
    name,
    input: 0,
    output,
    requests: 1,
    input_uncached: 0,
    cache_read: 0,
    cache_write: 0,
    failed: 0,
    incomplete: 0,
    by_model: {},
  });
  const day = (date: string, keys: ReturnType<typeof key>[]) => ({
    date,
    keys,
    total_input: 0,
    total_output: 0,
    total_requests: 0,
    input_uncached: 0,
    cache_read: 0,
    cache_write: 0,
    failed: 0,
    incomplete: 0,
    by_model: {},
  });
  const days = [
    day("2026-01-01", [key("k1", "one", 5), key("k2", "two", 7)]),
    day("2026-01-02", [
      key("k2", "two", 1),
    ]),
  ];
  const t = compareKeys(days, ["2026-01-01", "2026-01-02"], [{ id: "k2", name: "two" }, {
    id: "k3",
    name: "three",
  }], new Set(["output"]));
  assertEquals(t.series, [{ label: "two", values: [7, 1] }, { label: "three", values: [0, 0] }]);
});

Deno.test("requests per hour: 24 hours of the chosen day only", () => {
  const t = requestsPerHour([
    { hour: "2026-01-01 00:00", stats: { requests: 2, failed: 1 } },
    { hour: "2026-01-01 23:00", stats: { requests: 5, failed: 0 } },
    { hour: "2026-01-02 23:00", stats: { requests: 9, failed: 9 } },
  ], "2026-01-01");
  assertEquals(t.x.length, 24);
  assertEquals(t.x[23], "2026-01-01 23:00");
  assertEquals(t.series[0].values[0] + t.series[0].values[23], 7);
  assertEquals(t.series[0].values.reduce((a, b) => a + b), 7);
  assertEquals(t.series[1].values.reduce((a, b) => a + b), 1);
});

Deno.test("CSV: header and rows; quotes where needed; names a spreadsheet would run are defused", () => {
  const csv = toCsv({
    x: ["2026-01-01"],
    series: [
      { label: 'say "hi", ok', values: [1] },
      { label: '=HYPERLINK("x")', values: [2] },
      { label: "@cmd", values: [3] },
    ],
  }, "date");
  assertEquals(
    csv,
    'date,"say ""hi"", ok","\'=HYPERLINK(""x"")",\'@cmd\r\n2026-01-01,1,2,3\r\n',
  );
});

Deno.test("calendar ranges: presets, month ends and leap days", () => {
  const r = (id: string, today: string) => PRESETS.find((p) => p.id === id)!.range(today);
  assertEquals(r("7d", "2026-03-02"), { from: "2026-02-24", to: "2026-03-02" });
  assertEquals(r("month", "2026-03-31"), { from: "2026-03-01", to: "2026-03-31" });
  assertEquals(r("last-month", "2028-03-15"), { from: "2028-02-01", to: "2028-02-29" });
  assertEquals(r("last-month", "2026-01-05"), { from: "2025-12-01", to: "2025-12-31" });
  assertEquals(addDays("2026-12-31", 1), "2027-01-01");
  assertEquals(datesBetween("2026-02-27", "2026-03-01"), [
    "2026-02-27",
    "2026-02-28",
    "2026-03-01",
  ]);
  assertEquals(datesBetween("2026-03-02", "2026-03-01"), []);
  assertEquals([isDate("2026-02-29"), isDate("2028-02-29"), isDate("2026-1-1")], [
    false,
    true,
    false,
  ]);
});

Deno.test("limits: in display order, how full, and the keys within 20% of one", () => {
  const base = { id: "k", name: "k" } as KeyView;
  const a = {
    ...base,
    id: "a",
    limits: {
      monthly_budget_usd: { limit: 10, used: 9.5, remaining: 0.5, resets_at: null },
      rpm: { limit: 60, used: 10, remaining: 50, resets_at: null },
    },
  };
  const b = {
    ...base,
    id: "b",
    limits: { daily_token_quota: { limit: 1000, used: 1200, remaining: 0, resets_at: null } },
  };
  const c = { ...base, id: "c", limits: {} };
  assertEquals(limitStates(a).map((l) => [l.name, l.fraction, l.money]), [
    ["rpm", 10 / 60, false],
    ["monthly_budget_usd", 0.95, true],
  ]);
  assertEquals(nearLimits([a, b, c]).map((n) => [n.key.id, n.limit.name, n.limit.fraction]), [
    ["b", "daily_token_quota", 1],
    ["a", "monthly_budget_usd", 0.95],
  ]);
  assertEquals(reportsLimits([base]), false);
  assertEquals(reportsLimits([base, c]), true);
});

Deno.test("formats: counts, dollars, shares, and times on the usage calendar", () => {
  assertEquals(int(1234567), "1,234,567");
  assertEquals([usd(0), usd(0.0123), usd(12.5), usd(1234.5)], [
    "$0.00",
    "$0.0123",
    "$12.50",
    "$1,234.50",
  ]);
  assertEquals([pct(1, 6), pct(0, 0)], ["16.7%", "0%"]);
  assertEquals(time("2026-01-01T23:30:00Z", "Asia/Shanghai"), "2026-01-02 07:30");
  assertEquals(time("2026-01-01T23:30:00Z", "UTC"), "2026-01-01 23:30");
  assertEquals(time(null, "UTC"), "never");
});
