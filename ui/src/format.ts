/**
 * How numbers, money and times read on the page. Pure functions; times are
 * shown on the gateway's usage calendar (`USAGE_TZ`) so they line up with
 * the day and hour buckets.
 */
import type { Priced } from "./types.ts";
import { wallTime } from "./zone.ts";

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

/**
 * US dollars. Amounts under a dollar get more digits, so a request's cost
 * (often a fraction of a cent) never reads as $0.00: up to 4 decimals under
 * $1, up to 6 (micro-dollars, as the gateway stores them) under a cent.
 */
export function usd(n: number): string {
  const a = Math.abs(n);
  const digits = a === 0 || a >= 1 ? 2 : a >= 0.01 ? 4 : 6;
  return `$${
    n.toLocaleString("en-US", { minimumFractionDigits: 2, maximumFractionDigits: digits })
  }`;
}

/**
 * What usage cost, in words: the dollars of its priced part, "no price" when
 * none of it had one, and how many requests were not priced.
 */
export function costText(p: Priced): { text: string; note: string } {
  const note = p.unpriced_requests > 0 ? `${int(p.unpriced_requests)} without a price` : "";
  if (p.cost_usd === null) return { text: p.unpriced_requests > 0 ? "no price" : usd(0), note };
  return { text: usd(p.cost_usd), note };
}

/** A share as a percentage with one decimal. */
export function pct(part: number, whole: number): string {
  if (whole === 0) return "0%";
  return `${(Math.round((part / whole) * 1000) / 10).toFixed(1)}%`;
}

/** An ISO time as "YYYY-MM-DD HH:MM" (or "HH:MM:SS") in the given IANA time zone. */
export function time(
  iso: string | null | undefined,
  timeZone: string,
  o: { seconds?: boolean } = {},
): string {
  if (!iso) return "never";
  const ms = Date.parse(iso);
  if (Number.isNaN(ms)) return iso;
  return wallTime(ms, timeZone, o.seconds).replace("T", " ");
}

/** Like {@link time}, but only "HH:MM" when it falls on `today` in that zone. */
export function shortTime(iso: string, timeZone: string, today: string): string {
  const t = time(iso, timeZone);
  return t.startsWith(`${today} `) ? t.slice(11) : t;
}
