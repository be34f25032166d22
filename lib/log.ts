/**
 * Structured logging: one JSON object per line on stdout (`LOG_FORMAT=json`),
 * or a short human line (`pretty`). Callers never pass secrets or prompt text.
 */

/** Log levels, lowest first. */
export type Level = "debug" | "info" | "warn" | "error";
const RANK: Record<Level, number> = { debug: 0, info: 1, warn: 2, error: 3 };

/** Fields attached to a log line. */
export type Fields = Record<string, unknown>;

/** Where log lines go (stdout by default; tests capture them). */
export type Sink = (line: string) => void;

const enc = new TextEncoder();
const stdoutSink: Sink = (line) => {
  try {
    Deno.stdout.writeSync(enc.encode(line + "\n"));
  } catch {
    // stdout closed: nothing useful left to do with a log line.
  }
};

/** A leveled, structured logger. */
export class Logger {
  #min: number;
  #format: "json" | "pretty";
  #sink: Sink;

  constructor(level: Level = "info", format: "json" | "pretty" = "json", sink: Sink = stdoutSink) {
    this.#min = RANK[level];
    this.#format = format;
    this.#sink = sink;
  }

  /** True when lines at `level` are written. */
  enabled(level: Level): boolean {
    return RANK[level] >= this.#min;
  }

  /** Writes one line at `level` with message `msg`. */
  log(level: Level, msg: string, fields: Fields = {}): void {
    if (RANK[level] < this.#min) return;
    const time = new Date().toISOString();
    if (this.#format === "json") {
      this.#sink(JSON.stringify({ time, level, msg, ...fields }));
      return;
    }
    const rest = Object.entries(fields)
      .filter(([, v]) => v !== undefined && v !== null)
      .map(([k, v]) => `${k}=${typeof v === "string" ? v : JSON.stringify(v)}`)
      .join(" ");
    this.#sink(`${time} ${level.toUpperCase().padEnd(5)} ${msg}${rest ? " " + rest : ""}`);
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
