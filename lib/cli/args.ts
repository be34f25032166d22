/**
 * Command-line parsing on `node:util`'s `parseArgs`: strict options (an
 * unknown flag is a usage error), `--help`/`-h` everywhere, and checks on
 * positional arguments.
 */
import { parseArgs } from "node:util";
import { CliError } from "./io.ts";

/** The options a command accepts, as `parseArgs` takes them. */
export type Options = Record<string, { type: "string" | "boolean"; multiple?: boolean }>;

/** Parsed option values, typed from {@link Options}. */
export type Values<O extends Options> =
  & { [K in keyof O]?: O[K]["type"] extends "string" ? string : boolean }
  & { help?: boolean };

/** Options and positionals of `args`; a mistake is a usage error (exit status 2). */
export function parse<O extends Options>(
  args: string[],
  options: O,
): { values: Values<O>; positionals: string[] } {
  try {
    const r = parseArgs({
      args,
      options: { ...options, help: { type: "boolean", short: "h" } },
      allowPositionals: true,
      strict: true,
    });
    return { values: r.values as Values<O>, positionals: r.positionals };
  } catch (e) {
    throw new CliError((e as Error).message, 2);
  }
}

/** Refuses positional arguments beyond the first `max`. */
export function noMoreThan(positionals: string[], max: number, command: string): void {
  if (positionals.length > max) {
    throw new CliError(`${command}: unexpected argument "${positionals[max]}"`, 2);
  }
}

/** The one positional argument a command needs, named `what` in messages. */
export function exactlyOne(positionals: string[], what: string, command: string): string {
  const value = positionals[0];
  if (!value) throw new CliError(`${command}: missing ${what}`, 2);
  noMoreThan(positionals, 1, command);
  return value;
}
