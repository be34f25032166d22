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
}
