/**
 * Calendar dates ("YYYY-MM-DD") on the gateway's usage calendar. The
 * gateway says which day is today in `USAGE_TZ`; everything else is date
 * arithmetic, done in UTC so no browser time zone or DST can shift a day.
 */

const DAY_MS = 86_400_000;

/** Epoch ms of a date's midnight, read as UTC. */
export function dateMs(date: string): number {
  return Date.parse(`${date}T00:00:00Z`);
}

/** The date `n` days after `date` (before, when negative). */
export function addDays(date: string, n: number): string {
  return new Date(dateMs(date) + n * DAY_MS).toISOString().slice(0, 10);
}

/** The first day of the date's month. */
export function monthStart(date: string): string {
  return `${date.slice(0, 7)}-01`;
}

/** The last day of the month before the date's month. */
export function previousMonthEnd(date: string): string {
  return addDays(monthStart(date), -1);
}

/** Every date from `from` to `to`, both included (empty when `to` is before `from`). */
export function datesBetween(from: string, to: string): string[] {
  const out: string[] = [];
  for (let ms = dateMs(from); ms <= dateMs(to); ms += DAY_MS) {
    out.push(new Date(ms).toISOString().slice(0, 10));
  }
  return out;
}

/** True for a real "YYYY-MM-DD" date. */
export function isDate(s: string): boolean {
  return /^\d{4}-\d{2}-\d{2}$/.test(s) && new Date(dateMs(s)).toISOString().slice(0, 10) === s;
}

/** A named range ending today. */
export interface Preset {
  id: string;
  label: string;
  range(today: string): { from: string; to: string };
}

/** The date-range picker's presets. */
export const PRESETS: Preset[] = [
  { id: "7d", label: "Last 7 days", range: (t) => ({ from: addDays(t, -6), to: t }) },
  { id: "30d", label: "Last 30 days", range: (t) => ({ from: addDays(t, -29), to: t }) },
  { id: "month", label: "This month", range: (t) => ({ from: monthStart(t), to: t }) },
  {
    id: "last-month",
    label: "Last month",
    range: (t) => ({ from: monthStart(previousMonthEnd(t)), to: previousMonthEnd(t) }),
  },
  { id: "90d", label: "Last 90 days", range: (t) => ({ from: addDays(t, -89), to: t }) },
];
