/**
 * The windows per-key limits count in: the current UTC minute (rate
 * limits), and the current day and month on the `USAGE_TZ` calendar (quotas
 * and budgets), each with the instant it resets.
 */

/** One window: its id (stable across processes) and when the next one starts (epoch ms). */
export interface Window {
  id: string;
  resetsAt: number;
}

const HOUR = 3_600_000, MINUTE = 60_000;

/** Calendar windows in one IANA time zone. */
export class Windows {
  #fmt: Intl.DateTimeFormat;
  #days = new Map<string, Window>();
  #months = new Map<string, Window>();
  /** The last day and month found, with an instant known to be in each. */
  #lastDay?: { from: number; w: Window };
  #lastMonth?: { from: number; w: Window };

  constructor(timeZone: string) {
    this.#fmt = new Intl.DateTimeFormat("en-CA", {
      timeZone,
      year: "numeric",
      month: "2-digit",
      day: "2-digit",
    });
  }

  /** `YYYY-MM-DD` of instant `ms` in the time zone. */
  #date(ms: number): string {
    const p: Record<string, string> = {};
    for (const x of this.#fmt.formatToParts(ms)) p[x.type] = x.value;
    return `${p.year}-${p.month}-${p.day}`;
  }

  /** The minute `now` falls in (UTC minutes are the same everywhere). */
  minute(now: number): Window {
    const i = Math.floor(now / MINUTE);
    return { id: `m${i}`, resetsAt: (i + 1) * MINUTE };
  }

  /** The calendar day `now` falls in. */
  day(now: number): Window {
    // Formatting a date in a time zone costs ~10 µs; an instant between one known to be in the
    // last day found and that day's end is in it too.
    const last = this.#lastDay;
    if (last && now >= last.from && now < last.w.resetsAt) return last.w;
    const w = this.#dayOf(now);
    this.#lastDay = { from: now, w };
    return w;
  }

  #dayOf(now: number): Window {
    const date = this.#date(now);
    let w = this.#days.get(date);
    if (!w) {
      w = { id: `d${date}`, resetsAt: this.#nextChange(now, date, (ms) => this.#date(ms)) };
      if (this.#days.size > 64) this.#days.clear();
      this.#days.set(date, w);
    }
    return w;
  }

  /** The calendar month `now` falls in. */
  month(now: number): Window {
    const last = this.#lastMonth;
    if (last && now >= last.from && now < last.w.resetsAt) return last.w;
    const w = this.#monthOf(now);
    this.#lastMonth = { from: now, w };
    return w;
  }

  #monthOf(now: number): Window {
    const month = this.#date(now).slice(0, 7);
    let w = this.#months.get(month);
    if (!w) {
      let t = now;
      while (this.#date(t).slice(0, 7) === month) t = this.#dayOf(t).resetsAt;
      w = { id: `M${month}`, resetsAt: t };
      if (this.#months.size > 64) this.#months.clear();
      this.#months.set(month, w);
    }
    return w;
  }

  /**
   * The first instant after `now` whose label differs from `label`: found by
   * hours, then narrowed to the minute (every zone's offset is whole minutes).
   */
  #nextChange(now: number, label: string, of: (ms: number) => string): number {
    let lo = now, hi = now + HOUR;
    while (of(hi) === label) {
      lo = hi;
      hi += HOUR;
    }
    // Search whole minutes only, so every step narrows the range.
    lo = Math.floor(lo / MINUTE) * MINUTE;
    hi = Math.ceil(hi / MINUTE) * MINUTE;
    while (hi - lo > MINUTE) {
      const mid = lo + Math.floor((hi - lo) / 2 / MINUTE) * MINUTE;
      if (of(mid) === label) lo = mid;
      else hi = mid;
    }
    return hi;
  }
}
