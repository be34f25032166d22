/**
 * Wall-clock times in the gateway's usage time zone (`USAGE_TZ`), both
 * ways: an instant as the zone's clock shows it, and a time typed in that
 * zone's terms (a `datetime-local` field) as an instant. The page shows and
 * takes times in that zone, whatever the browser's own zone is.
 */

const formats = new Map<string, Intl.DateTimeFormat>();

function formatOf(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      second: "2-digit",
      hourCycle: "h23",
    });
    // One per zone the page is told about: in practice one.
    if (formats.size < 16) formats.set(timeZone, f);
  }
  return f;
}

/** The zone's clock at an instant, as "YYYY-MM-DDTHH:MM:SS". */
function wallSeconds(ms: number, timeZone: string): string {
  const parts = formatOf(timeZone).formatToParts(new Date(ms));
  const p = (t: string) => parts.find((x) => x.type === t)?.value ?? "00";
  return `${p("year")}-${p("month")}-${p("day")}T${p("hour")}:${p("minute")}:${p("second")}`;
}

/**
 * The zone's clock at an instant, as a `datetime-local` value
 * ("YYYY-MM-DDTHH:MM", or "YYYY-MM-DDTHH:MM:SS" with `seconds`).
 */
export function wallTime(ms: number, timeZone: string, seconds = false): string {
  const s = wallSeconds(ms, timeZone);
  return seconds ? s : s.slice(0, 16);
}

const LOCAL_RE = /^(\d{4})-(\d{2})-(\d{2})T(\d{2}):(\d{2})(?::(\d{2}))?$/;

/** Epoch ms of a wall-clock time read as if it were UTC; NaN when it is not one. */
function asUtc(local: string): number {
  const m = LOCAL_RE.exec(local);
  if (!m) return NaN;
  const [y, mo, d, h, mi, s] = m.slice(1).map((x) => Number(x ?? 0));
  const ms = Date.UTC(y, mo - 1, d, h, mi, s);
  // Date.UTC rolls "02-30" over into March; a real time survives the round trip.
  return new Date(ms).toISOString().slice(0, 16) === local.slice(0, 16) ? ms : NaN;
}

/** How far the zone's clock is ahead of UTC at an instant, in ms. */
function offsetAt(ms: number, timeZone: string): number {
  return asUtc(wallSeconds(ms, timeZone)) - Math.floor(ms / 1000) * 1000;
}

/**
 * The instant a wall-clock time ("YYYY-MM-DDTHH:MM") names in the zone, as
 * epoch ms; null when it is not a time. A time the clocks skip (spring
 * forward) is read with the offset before the change, so it lands just after
 * it; a time that happens twice (fall back) is its first occurrence.
 */
export function zonedInstant(local: string, timeZone: string): number | null {
  const guess = asUtc(local);
  if (Number.isNaN(guess)) return null;
  const before = guess - offsetAt(guess - 86_400_000, timeZone);
  const after = guess - offsetAt(guess + 86_400_000, timeZone);
  // Of the offsets in force around the time, the earliest instant that shows it wins.
  for (const t of [Math.min(before, after), Math.max(before, after)]) {
    if (wallTime(t, timeZone) === local.slice(0, 16)) return t;
  }
  return before;
}
