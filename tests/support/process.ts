/**
 * The project as an operator runs it: paths of the repository and its entry
 * point, and child processes run to completion under a time limit.
 */

/** The repository root (no trailing slash). */
export const ROOT = new URL("../..", import.meta.url).pathname.replace(/\/$/, "");

/** The entry point, main.ts. */
export const MAIN = `${ROOT}/main.ts`;

const ANSI = new RegExp(`${String.fromCharCode(27)}\\[[0-9;]*m`, "g");

/** `s` without terminal colour codes. */
export function stripAnsi(s: string): string {
  return s.replace(ANSI, "");
}

/** How a command ended and what it printed (colour codes removed). */
export interface Ran {
  code: number;
  out: string;
  err: string;
  timedOut: boolean;
}

/** Runs a command to completion, killing it after `timeoutMs`. */
export async function runCommand(
  cmd: string,
  args: string[],
  opts: { cwd?: string; env?: Record<string, string>; clearEnv?: boolean; timeoutMs: number },
): Promise<Ran> {
  const proc = new Deno.Command(cmd, {
    args,
    cwd: opts.cwd,
    env: opts.env,
    clearEnv: opts.clearEnv,
    stdin: "null",
    stdout: "piped",
    stderr: "piped",
  }).spawn();
  let timedOut = false;
  const timer = setTimeout(() => {
    timedOut = true;
    proc.kill("SIGKILL");
  }, opts.timeoutMs);
  try {
    const { code, stdout, stderr } = await proc.output();
    const dec = new TextDecoder();
    return {
      code,
      out: stripAnsi(dec.decode(stdout)),
      err: stripAnsi(dec.decode(stderr)),
      timedOut,
    };
  } finally {
    clearTimeout(timer);
  }
}
