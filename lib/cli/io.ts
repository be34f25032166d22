/**
 * How a command talks to its user: lines on stdout and stderr, the
 * environment it reads, and the exit status a failure becomes.
 */
import { InvalidInput } from "../admin/validation.ts";

/** Where a command writes, and the environment it reads. */
export interface Io {
  out: (line: string) => void;
  err: (line: string) => void;
  env: Record<string, string | undefined>;
}

/**
 * A command: its arguments (after the command name) in, the exit status
 * out, or null when it keeps the process running (`serve`).
 */
export type Command = (args: string[], io: Io) => Promise<number | null>;

/** A failure the user caused: printed as one line, exit status 2 (usage) or 1. */
export class CliError extends Error {
  constructor(message: string, readonly status = 1) {
    super(message);
  }
}

/**
 * The exit status of a failed command: 2 for a mistake in the command line
 * (a malformed value included), 1 for everything else (a key that does not
 * exist, a bad file, an unreachable service).
 */
export function exitStatus(e: unknown): number {
  if (e instanceof CliError) return e.status;
  if (e instanceof InvalidInput) return e.status === 404 ? 1 : 2;
  return 1;
}

/** Prints a value as one line of JSON (what the admin API would answer). */
export function printJson(io: Io, value: unknown): void {
  io.out(JSON.stringify(value));
}
