/**
 * The gateway as an operator runs it: `main.ts serve` in its own process
 * (with WORKERS, a supervisor and its workers), its JSON log lines
 * collected as they come, and waits on what it logs rather than on time.
 */
import { MAIN } from "./process.ts";
import { waitFor } from "./wait.ts";

/** The flags `deno task start` gives (workers need --unstable-net and --allow-run). */
export const RUN_FLAGS = [
  "--unstable-kv",
  "--unstable-net",
  "--unstable-no-legacy-abort",
  "--allow-net",
  "--allow-env",
  "--allow-read",
  "--allow-write",
  "--allow-sys=hostname",
  "--allow-run",
];

/** A gateway process. */
export interface GatewayProcess {
  proc: Deno.ChildProcess;
  /** Base URL once it serves. */
  url: string;
  /** Every stdout line so far, parsed (lines that are not JSON as `{raw}`). */
  lines: Record<string, unknown>[];
  /** Waits until a line matching `match` has been logged; returns it. */
  line(what: string, match: (l: Record<string, unknown>) => boolean, ms?: number): Promise<
    Record<string, unknown>
  >;
  /** SIGTERM, then the exit status (SIGKILL after `ms`). */
  stop(ms?: number): Promise<Deno.CommandStatus>;
}

/**
 * Starts `main.ts serve` with `env` on 127.0.0.1 port 0 and waits until
 * `ready` is logged (by default "workers serving", the supervisor's line).
 */
export async function startGatewayProcess(
  env: Record<string, string>,
  ready: (l: Record<string, unknown>) => boolean = (l) => l.msg === "workers serving",
): Promise<GatewayProcess> {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", ...RUN_FLAGS, MAIN, "serve"],
    env: { PORT: "0", HOST: "127.0.0.1", ...env },
    stdin: "null",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const lines: Record<string, unknown>[] = [];
  let ended = false;
  (async () => {
    let held = "";
    for await (const chunk of proc.stdout.pipeThrough(new TextDecoderStream())) {
      held += chunk;
      const parts = held.split("\n");
      held = parts.pop()!;
      for (const p of parts) {
        try {
          lines.push(JSON.parse(p));
        } catch {
          lines.push({ raw: p });
        }
      }
    }
  })().finally(() => ended = true);
  const line = async (
    what: string,
    match: (l: Record<string, unknown>) => boolean,
    ms = 30_000,
  ) => {
    await waitFor(what, () => {
      if (lines.some(match)) return true;
      if (ended) throw new Error(`the gateway exited before: ${what}\n${show(lines)}`);
      return false;
    }, ms);
    return lines.find(match)!;
  };
  let status: Deno.CommandStatus | undefined;
  const exited = proc.status.then((s) => status = s);
  try {
    const r = await line("the gateway serves", ready, 60_000);
    return {
      proc,
      url: `http://${r.address}`,
      lines,
      line,
      stop: async (ms = 60_000) => {
        if (!status) proc.kill("SIGTERM");
        const timer = setTimeout(() => status || proc.kill("SIGKILL"), ms);
        const s = await exited;
        clearTimeout(timer);
        return s;
      },
    };
  } catch (e) {
    if (!status) proc.kill("SIGKILL");
    await exited;
    throw e;
  }
}

/** Log lines for a failure message. */
export function show(lines: Record<string, unknown>[]): string {
  return lines.map((l) => JSON.stringify(l)).join("\n");
}
