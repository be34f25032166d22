/**
 * Time: an injectable clock (tests use a fake one) and the day/hour buckets
 * of an instant in the usage time zone.
 */

/** Source of the current time, in epoch milliseconds. */
export interface Clock {
  now(): number;
}

/** The real clock. */
export const systemClock: Clock = { now: () => Date.now() };

/** A usage bucket: local date `YYYY-MM-DD` and hour `HH` in the usage time zone. */
export interface Bucket {
  day: string;
  hour: string;
}

/**
 * Maps instants to day/hour buckets in one IANA time zone. Every zone's
 * offset is a whole number of minutes, so results are cached per minute.
 */
export class BucketClock {
  #fmt: Intl.DateTimeFormat;
  #minute = -1;
  #cached: Bucket = { day: "", hour: "" };
  #minuteFmt?: Intl.DateTimeFormat;
  readonly timeZone: string;

  constructor(timeZone: string) {
    this.timeZone = timeZone;
    this.#fmt = new Intl.DateTimeFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      hourCycle: "h23",
    });
  }

  /** The bucket holding instant `ms`. */
  bucket(ms: number): Bucket {
    const minute = Math.floor(ms / 60_000);
    if (minute === this.#minute) return this.#cached;
    const parts: Record<string, string> = {};
    for (const p of this.#fmt.formatToParts(ms)) parts[p.type] = p.value;
    this.#minute = minute;
    this.#cached = { day: `${parts.year}-${parts.month}-${parts.day}`, hour: parts.hour };
    return this.#cached;
  }

  /** Today's date in the usage time zone. */
  today(ms: number): string {
    return this.bucket(ms).day;
  }

  /** The instant (epoch ms) a `YYYY-MM-DD` day begins in the usage time zone. */
  startOf(day: string): number {
    const [y, m, d] = day.split("-").map(Number);
    const midnight = Date.UTC(y, m - 1, d);
    // The zone's offset at a first guess, then at the instant found (a DST change that day).
    const guess = midnight - this.#offset(midnight);
    let lo = midnight - this.#offset(guess);
    if (this.bucket(lo).day === day) return lo;
    // Midnight does not exist that day (clocks jumped past it): the day begins with the jump.
    let hi = lo + 3 * 3600_000;
    while (hi - lo > 60_000) {
      const mid = lo + Math.floor((hi - lo) / 120_000) * 60_000;
      if (this.bucket(mid).day === day) hi = mid;
      else lo = mid;
    }
    return hi;
  }

  /** Local wall time minus UTC at instant `ms`, in ms. */
  #offset(ms: number): number {
    this.#minuteFmt ??= new Intl.DateTimeFormat("en-CA", {
      timeZone: this.timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
      hour: "2-digit",
      minute: "2-digit",
      hourCycle: "h23",
    });
    const p: Record<string, number> = {};
    for (const part of this.#minuteFmt.formatToParts(ms)) p[part.type] = Number(part.value);
    const wall = Date.UTC(p.year, p.month - 1, p.day, p.hour, p.minute);
    return wall - Math.floor(ms / 60_000) * 60_000;
  }
}
