/**
 * How numbers, money and times read on the page. Pure functions; times are
 * shown on the gateway's usage calendar (`USAGE_TZ`) so they line up with
 * the day and hour buckets.
 */

const INT = new Intl.NumberFormat("en-US", { maximumFractionDigits: 0 });

/** A count with thousands separators: 1234567 -> "1,234,567". */
export function int(n: number): string {
  return INT.format(n);
}

/** A count in few characters for chart axes: 1234567 -> "1.2M". */
export function compact(n: number): string {
  const a = Math.abs(n);
  if (a >= 1e9) return `${+(n / 1e9).toFixed(1)}B`;
  if (a >= 1e6) return `${+(n / 1e6).toFixed(1)}M`;
  if (a >= 1e3) return `${+(n / 1e3).toFixed(1)}k`;
  return `${+n.toFixed(2)}`;
}

/** US dollars; cents below a dollar get more digits so small costs do not read as $0.00. */
export function usd(n: number): string {
  const digits = n !== 0 && Math.abs(n) < 1 ? 4 : 2;
  return `$${
    n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: digits })
  }`;
}

/** A share as a percentage with one decimal. */
export function pct(part: number, whole: number): string {
  if (whole === 0) return "0%";
  return `${(Math.round((part / whole) * 1000) / 10).toFixed(1)}%`;
}

/** An ISO time as "YYYY-MM-DD HH:MM" in the given IANA time zone. */
export function time(iso: string | null | undefined, timeZone: string): string {
  if (!iso) return "never";
  const d = new Date(iso);
  if (Number.isNaN(d.getTime())) return iso;
  const parts = new Intl.DateTimeFormat("en-CA", {
    timeZone,
    year: "numeric",
    month: "2-digit",
    day: "2-digit",
    hour: "2-digit",
    minute: "2-digit",
    hourCycle: "h23",
  }).formatToParts(d);
  const p = (t: string) => parts.find((x) => x.type === t)?.value ?? "";
  return `${p("year")}-${p("month")}-${p("day")} ${p("hour")}:${p("minute")}`;
}
