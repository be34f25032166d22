/**
 * The dashboard's pure logic, without a browser: report rows into chart
 * series (stacking by model or bucket, cost, key comparison, hours), the
 * CSV export (quoting, spreadsheet-formula guard), calendar ranges, times in
 * the usage time zone both ways, limit standings, the key edit form's body
 * and error placement, and number formats.
 */
import { assertEquals } from "./support/assert.ts";
import {
  compareKeys,
  costByModel,
  MAX_SERIES,
  modelColors,
  requestsPerHour,
  toCsv,
  tokensByBucket,
  tokensByModel,
} from "../ui/src/series.ts";
import { addDays, datesBetween, isDate, PRESETS } from "../ui/src/dates.ts";
import { limitStates, nearLimits } from "../ui/src/limits.ts";
import { costText, int, pct, shortTime, time, usd } from "../ui/src/format.ts";
import { changesOf, errorField, formOf } from "../ui/src/key_form.ts";
import { wallTime, zonedInstant } from "../ui/src/zone.ts";
import type { KeyView, LimitUse, ModelStats } from "../ui/src/types.ts";

function stats(b: Partial<ModelStats>): ModelStats {
  const s = {
    input_uncached: 0,
    cache_read: 0,
    cache_write: 0,
    output: 0,
    requests: 1,
    failed: 0,
    incomplete: 0,
    cost_usd: null,
    unpriced_requests: 0,
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

Deno.test("cost per day by model: priced models only, unpriced requests counted, sums in micro-dollars", () => {
  const dates = ["2026-01-01", "2026-01-02"];
  const c = costByModel(
    new Map<string, Record<string, ModelStats>>([
      ["2026-01-01", {
        a: stats({ cost_usd: 0.1 }),
        free: stats({ cost_usd: null, unpriced_requests: 2 }),
      }],
      ["2026-01-02", { a: stats({ cost_usd: 0.2 }), b: stats({ cost_usd: 1.5 }) }],
    ]),
    dates,
  );
  assertEquals(c, {
    table: {
      x: dates,
      series: [{ label: "b", values: [0, 1.5] }, { label: "a", values: [0.1, 0.2] }],
    },
    unpriced: 2,
  });
  // 0.1 + 0.2 is 0.30000000000000004 in floating point: the chart says 0.3.
  const sum = costByModel(
    new Map([["2026-01-01", { a: stats({ cost_usd: 0.1 }), "a ": stats({ cost_usd: 0.2 }) }]]),
    ["2026-01-01"],
  );
  assertEquals(sum.table.series.map((s) => s.values[0]), [0.2, 0.1]);
  assertEquals(costByModel(new Map(), dates).table.series, []);
});

Deno.test("model colours: one slot per model by all its tokens, whatever a chart shows", () => {
  const perDay = new Map([["2026-01-01", {
    big: stats({ input_uncached: 100 }),
    small: stats({ output: 10 }),
  }]]);
  const slot = modelColors(perDay, ["2026-01-01"]);
  // Output only, "small" leads the tokens chart; its colour stays the second.
  assertEquals(tokensByModel(perDay, ["2026-01-01"], new Set(["output"])).series[0].label, "small");
  assertEquals([slot("big"), slot("small"), slot("unknown")], [0, 1, undefined]);
});

Deno.test("tokens per day by bucket: cache reads and writes as their own series, chosen buckets only", () => {
  const dates = ["2026-01-01", "2026-01-02"];
  const perDay = new Map([["2026-01-02", {
    input_uncached: 10,
    cache_read: 200,
    cache_write: 30,
    output: 4,
  }]]);
  assertEquals(
    tokensByBucket(perDay, dates, new Set(["cache_read", "cache_write", "output"])).series,
    [
      { label: "Cache read", values: [0, 200] },
      { label: "Cache write", values: [0, 30] },
      { label: "Output", values: [0, 4] },
    ],
  );
});

Deno.test("keys compared: the chosen keys' tokens per day, in the order chosen", () => {
  const key = (id: string, name: string, output: number, cost: number | null = null) => ({
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
    cost_usd: cost,
    unpriced_requests: cost === null ? 1 : 0,
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
    cost_usd: null,
    unpriced_requests: 0,
    by_model: {},
  });
  const days = [
    day("2026-01-01", [key("k1", "one", 5), key("k2", "two", 7, 0.25)]),
    day("2026-01-02", [
      key("k2", "two", 1),
    ]),
  ];
  const t = compareKeys(days, ["2026-01-01", "2026-01-02"], [{ id: "k2", name: "two" }, {
    id: "k3",
    name: "three",
  }], new Set(["output"]));
  assertEquals(t.series, [{ label: "two", values: [7, 1] }, { label: "three", values: [0, 0] }]);
  const cost = compareKeys(
    days,
    ["2026-01-01", "2026-01-02"],
    [{ id: "k2", name: "two" }],
    new Set(),
    "cost",
  );
  assertEquals(cost.series, [{ label: "two", values: [0.25, 0] }]);
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

Deno.test("limits: in display order, how full (held use included), and the keys within 20% of one", () => {
  const use = (limit: number, used: number, reserved = 0): LimitUse => ({
    limit,
    used,
    reserved,
    remaining: Math.max(0, limit - used - reserved),
    resets_at: null,
  });
  const base = { id: "k", name: "k" } as KeyView;
  const a = {
    ...base,
    id: "a",
    limits: { monthly_budget_usd: use(10, 9.5), rpm: use(60, 10) },
  };
  const b = { ...base, id: "b", limits: { daily_token_quota: use(1000, 1200) } };
  // 70% committed, 15% held by a request in flight: 85% taken, within 20%.
  const c = { ...base, id: "c", limits: { tpm: use(1000, 700, 150) } };
  const d = { ...base, id: "d", limits: {} };
  assertEquals(limitStates(a).map((l) => [l.name, l.usedShare, l.money, l.near]), [
    ["rpm", 10 / 60, false, false],
    ["monthly_budget_usd", 0.95, true, true],
  ]);
  assertEquals(limitStates(c).map((l) => [l.usedShare, l.takenShare, l.near]), [[0.7, 0.85, true]]);
  assertEquals(nearLimits([a, b, c, d, base]).map((n) => [n.key.id, n.limit.name]), [
    ["b", "daily_token_quota"],
    ["a", "monthly_budget_usd"],
    ["c", "tpm"],
  ]);
  // Exactly 80% is within 20%; just under is not.
  assertEquals(limitStates({ limits: { rpm: use(10, 8) } })[0].near, true);
  assertEquals(limitStates({ limits: { rpm: use(100, 79) } })[0].near, false);
});

Deno.test("formats: counts, dollars, shares, and times on the usage calendar", () => {
  assertEquals(int(1234567), "1,234,567");
  assertEquals([usd(0), usd(0.0123), usd(0.000222), usd(12.5), usd(1234.5)], [
    "$0.00",
    "$0.0123",
    "$0.000222",
    "$12.50",
    "$1,234.50",
  ]);
  assertEquals(costText({ cost_usd: 0.074, unpriced_requests: 0 }), { text: "$0.074", note: "" });
  assertEquals(costText({ cost_usd: null, unpriced_requests: 3 }), {
    text: "no price",
    note: "3 without a price",
  });
  assertEquals(costText({ cost_usd: null, unpriced_requests: 0 }).text, "$0.00");
  assertEquals([pct(1, 6), pct(0, 0)], ["16.7%", "0%"]);
  assertEquals(time("2026-01-01T23:30:00Z", "Asia/Shanghai"), "2026-01-02 07:30");
  assertEquals(time("2026-01-01T23:30:00Z", "UTC"), "2026-01-01 23:30");
  assertEquals(time(null, "UTC"), "never");
  assertEquals(time("2026-01-01T23:30:05.120Z", "UTC", { seconds: true }), "2026-01-01 23:30:05");
  assertEquals(shortTime("2026-01-01T23:30:00Z", "UTC", "2026-01-01"), "23:30");
  assertEquals(shortTime("2026-01-02T00:00:00Z", "UTC", "2026-01-01"), "2026-01-02 00:00");
});

Deno.test("times typed in the usage time zone: offsets, clocks that skip and repeat, non-times", () => {
  const iso = (local: string, tz: string) => {
    const ms = zonedInstant(local, tz);
    return ms === null ? null : new Date(ms).toISOString();
  };
  assertEquals(iso("2026-03-01T12:00", "UTC"), "2026-03-01T12:00:00.000Z");
  assertEquals(iso("2026-03-01T12:00", "Asia/Kolkata"), "2026-03-01T06:30:00.000Z");
  assertEquals(iso("2026-07-01T09:15", "America/New_York"), "2026-07-01T13:15:00.000Z");
  // 02:30 does not happen on 2026-03-08 in New York: it lands just after the change (03:30 EDT).
  assertEquals(iso("2026-03-08T02:30", "America/New_York"), "2026-03-08T07:30:00.000Z");
  // 01:30 happens twice on 2026-11-01: the first (EDT) is meant.
  assertEquals(iso("2026-11-01T01:30", "America/New_York"), "2026-11-01T05:30:00.000Z");
  assertEquals([iso("2026-02-30T10:00", "UTC"), iso("tomorrow", "UTC"), iso("", "UTC")], [
    null,
    null,
    null,
  ]);
  for (const tz of ["UTC", "Asia/Kolkata", "America/New_York", "Australia/Lord_Howe"]) {
    const at = Date.parse("2026-10-04T15:45:00Z");
    assertEquals(zonedInstant(wallTime(at, tz), tz), at, tz);
  }
});

/** A key view as the admin API answers, with some fields set. */
function view(over: Partial<KeyView> = {}): KeyView {
  return {
    id: "01KEY",
    key: "sk-gw-ab...cd",
    name: "team-a",
    enabled: true,
    created: "2026-01-01T00:00:00.000Z",
    allowed_providers: null,
    allowed_models: null,
    rpm: null,
    tpm: null,
    max_concurrent: null,
    daily_token_quota: null,
    monthly_token_quota: null,
    daily_budget_usd: null,
    monthly_budget_usd: null,
    expires_at: null,
    expired: false,
    metadata: null,
    previous_key_valid_until: null,
    limits: {},
    source: "gateway",
    total_input: 0,
    total_output: 0,
    total_requests: 0,
    last_used: null,
    input_uncached: 0,
    cache_read: 0,
    cache_write: 0,
    failed: 0,
    incomplete: 0,
    cost_usd: null,
    unpriced_requests: 0,
    ...over,
  };
}

Deno.test("key form: an untouched form changes nothing, whatever the key has set", () => {
  const k = view({
    allowed_providers: ["openai", "anthropic"],
    allowed_models: ["claude-*", "gpt-4o"],
    rpm: 60,
    daily_budget_usd: 2.5,
    // Seconds the form's minute field cannot show stay as they are.
    expires_at: "2026-06-30T22:00:30.000Z",
    metadata: { team: "search", owner: "ana", " spaced ": "as set by the CLI" },
  });
  for (const tz of ["UTC", "Europe/Berlin", "Asia/Kolkata"]) {
    assertEquals(changesOf(k, formOf(k, tz), tz), { ok: true, changes: {} }, tz);
  }
  assertEquals(formOf(k, "Europe/Berlin").expires, "2026-07-01T00:00");
});

Deno.test("key form: only what changed is sent; emptied fields clear (null); lists and labels read as typed", () => {
  const k = view({ rpm: 60, allowed_models: ["gpt-4o"], metadata: { team: "search" } });
  const f = formOf(k, "Europe/Berlin");
  f.name = "  team-b ";
  f.limits.rpm = "";
  f.limits.daily_token_quota = "250,000";
  f.limits.monthly_budget_usd = "$12.50";
  f.models = "claude-*, gpt-4o\n\ngpt-4o\n";
  f.providers = ["anthropic"];
  f.expires = "2026-12-31T23:30";
  f.metadata = [{ key: "team", value: "search" }, { key: "owner", value: "ana" }, {
    key: "",
    value: "",
  }];
  assertEquals(changesOf(k, f, "Europe/Berlin"), {
    ok: true,
    changes: {
      name: "team-b",
      allowed_providers: ["anthropic"],
      allowed_models: ["claude-*", "gpt-4o"],
      rpm: null,
      daily_token_quota: 250000,
      monthly_budget_usd: 12.5,
      expires_at: "2026-12-31T22:30:00.000Z",
      metadata: { team: "search", owner: "ana" },
    },
  });
  const cleared = formOf(k, "UTC");
  cleared.models = " ";
  cleared.metadata = [];
  assertEquals(changesOf(k, cleared, "UTC"), {
    ok: true,
    changes: { allowed_models: null, metadata: null },
  });
});

Deno.test("key form: what the page cannot read is marked at its field and nothing is sent", () => {
  const k = view();
  const f = formOf(k, "UTC");
  f.limits.tpm = "ten";
  f.limits.rpm = "0"; // a number: the API decides whether it is allowed
  f.metadata = [{ key: "", value: "orphan" }];
  assertEquals(changesOf(k, f, "UTC"), {
    ok: false,
    errors: {
      tpm: "Enter a number, or leave it empty for no limit.",
      metadata: "Every label needs a name.",
    },
  });
  const twice = formOf(k, "UTC");
  twice.metadata = [{ key: "a", value: "1" }, { key: "a", value: "2" }];
  twice.expires = "2026-13-01T00:00";
  assertEquals(changesOf(k, twice, "UTC"), {
    ok: false,
    errors: {
      expires_at: "Enter a date and time, or leave it empty for never.",
      metadata: 'The label "a" is there twice.',
    },
  });
});

Deno.test("key form: an admin API error is placed at the field it names", () => {
  assertEquals(errorField("rpm: Too small: expected number to be >=1"), {
    field: "rpm",
    message: "Too small: expected number to be >=1",
  });
  assertEquals(errorField("daily_budget_usd: at most 6 decimals (micro-dollars)"), {
    field: "daily_budget_usd",
    message: "at most 6 decimals (micro-dollars)",
  });
  assertEquals(
    errorField("metadata.team lead: Too big: expected string to have <=256 characters"),
    {
      field: "metadata",
      message: "team lead: Too big: expected string to have <=256 characters",
    },
  );
  assertEquals(
    errorField('allowed_providers: unknown provider "x" (known: a, b)').field,
    "allowed_providers",
  );
  assertEquals(errorField("give at least one field to change"), {
    message: "give at least one field to change",
  });
  assertEquals(errorField("source: not a field of the form"), {
    message: "source: not a field of the form",
  });
});
