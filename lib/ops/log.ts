/**
 * Structured logging: one JSON object per line on stdout (`LOG_FORMAT=json`),
 * or a short human line (`pretty`). Callers never pass secrets or prompt text.
 */
import { type Clock, systemClock } from "./clock.ts";

/** Log levels, lowest first. */
export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Fields attached to a log line. */
export type Fields = Record<string, unknown>;

/** Where log lines go (stdout by default; tests capture them). `urgent` lines should not wait. */
export type Sink = (line: string, urgent?: boolean) => void;

const enc = new TextEncoder();

/**
 * Stdout, written in batches: lines wait at most 20 ms (or until 64 KiB are
 * pending) so a busy gateway makes one write per batch, not per request.
 * Warnings and errors are written at once; pending lines are written at exit.
 */
function bufferedStdout(): Sink & { flush(): void } {
  let pending: string[] = [];
  let size = 0;
  let timer: ReturnType<typeof setTimeout> | undefined;
  const flush = () => {
    clearTimeout(timer);
    timer = undefined;
    if (pending.length === 0) return;
    const text = pending.join("\n") + "\n";
    pending = [];
    size = 0;
    try {
      const bytes = enc.encode(text);
      for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
    } catch {
      // stdout closed: nothing useful left to do with log lines.
    }
  };
  globalThis.addEventListener("unload", flush);
  const sink = (line: string, urgent = false) => {
    pending.push(line);
    size += line.length;
    if (urgent || size >= 64 * 1024) flush();
    else timer ??= setTimeout(flush, 20);
  };
  return Object.assign(sink, { flush });
}

// A pretty value is written bare only when it cannot be mistaken for more fields or
// lines; anything else (client input with newlines, spaces, quotes) is JSON-quoted.
const PLAIN = /^[\w.:/@+*,-]*$/;

/** A leveled, structured logger. */
export class Logger {
  #min: number;
  #format: "json" | "pretty";
  #sink: Sink;
  #clock: Clock;
  #base: Fields;

  /** `base` fields lead every line's own (a worker's number, when several serve). */
  constructor(
    level: Level = "info",
    format: "json" | "pretty" = "json",
    sink: Sink = bufferedStdout(),
    clock: Clock = systemClock,
    base: Fields = {},
  ) {
    this.#min = RANK[level];
    this.#format = format;
    this.#sink = sink;
    this.#clock = clock;
    this.#base = base;
  }

  /** True when lines at `level` are written. */
  enabled(level: Level): boolean {
    return RANK[level] >= this.#min;
  }

  /** Writes one line at `level` with message `msg`. */
  log(level: Level, msg: string, fields: Fields = {}): void {
    if (RANK[level] < this.#min) return;
    const time = new Date(this.#clock.now()).toISOString();
    const urgent = RANK[level] >= RANK.warn;
    if (this.#format === "json") {
      this.#sink(JSON.stringify({ time, level, msg, ...this.#base, ...fields }), urgent);
      return;
    }
    const rest = Object.entries({ ...this.#base, ...fields })
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${k}=${typeof v === "string" && PLAIN.test(v) ? v : JSON.stringify(v)}`)
      .join(" ");
    this.#sink(`${time} ${level.toUpperCase().padEnd(5)} ${msg}${rest ? " " + rest : ""}`, urgent);
  }

  debug(msg: string, fields?: Fields): void {
    this.log("debug", msg, fields);
  }
  info(msg: string, fields?: Fields): void {
    this.log("info", msg, fields);
  }
  warn(msg: string, fields?: Fields): void {
    this.log("warn", msg, fields);
  }
  error(msg: string, fields?: Fields): void {
    this.log("error", msg, fields);
  }
}

/** A short description of an unknown thrown value, safe to log. */
export function errorMessage(e: unknown): string {
  return e instanceof Error ? e.message : String(e);
}
