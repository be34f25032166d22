/**
 * The command line of the gateway's single entry point (`main.ts`, or the
 * compiled binary): `serve` (the default) and admin commands that work
 * directly on Deno KV, so an admin can create the first key before the
 * server ever runs. A running gateway sees key changes within
 * `KEYS_REFRESH_MS`. This file only dispatches; each command is a module.
 */
import { VERSION } from "../ops/health.ts";
import { errorMessage } from "../ops/log.ts";
import { checkConfigCommand } from "./check_config.ts";
import { healthcheckCommand } from "./healthcheck.ts";
import { HELP } from "./help.ts";
import { importLunaCommand } from "./import_luna.ts";
import { CliError, type Command, exitStatus, type Io } from "./io.ts";
import { keysCommand } from "./keys.ts";
import { requestsCommand } from "./requests.ts";
import { serveCommand } from "./serve.ts";
import { usageCommand } from "./usage.ts";

export type { Io } from "./io.ts";

const versionCommand: Command = (_args, io) => {
  io.out(VERSION);
  return Promise.resolve(0);
};

const helpCommand: Command = (args, io) => {
  io.out(HELP[args[0]] ?? HELP.main);
  return Promise.resolve(0);
};

const COMMANDS: Record<string, Command> = {
  serve: serveCommand,
  keys: keysCommand,
  usage: usageCommand,
  requests: requestsCommand,
  "import-luna": importLunaCommand,
  "check-config": checkConfigCommand,
  healthcheck: healthcheckCommand,
  version: versionCommand,
  help: helpCommand,
};

const ALIASES: Record<string, string> = { "--version": "version", "-h": "help", "--help": "help" };

/**
 * Runs a command line. Returns the exit status, or null when the gateway
 * is serving (the process keeps running).
 */
export async function runCli(args: string[], io: Io): Promise<number | null> {
  const [given = "serve", ...rest] = args;
  const name = ALIASES[given] ?? given;
  try {
    const command = COMMANDS[name];
    if (!command) {
      throw new CliError(`unknown command "${given}" (run with --help for the list)`, 2);
    }
    return await command(rest, io);
  } catch (e) {
    const where = e instanceof CliError ? "" : `${name}: `;
    io.err(`llm-gateway: ${where}${errorMessage(e)}`);
    return exitStatus(e);
  }
}
