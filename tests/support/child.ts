/**
 * The gateway as an operator runs it: `main.ts` in a child process of its
 * own, on port 0, its log lines read as they come.
 */
import { MAIN } from "./process.ts";

/** A gateway running as a child process. */
export interface Child {
  proc: Deno.ChildProcess;
  url: string;
  output: string[];
}

/**
 * Starts `main.ts` as a child process with its KV at `<dir>/gw.kv` and its
 * models at `<dir>/models.json` (unless `env` says otherwise), and waits
 * for its "gateway listening" line. Its stdout lines (JSON logs) are kept.
 */
export async function spawnGateway(
  dir: string,
  env: Record<string, string>,
  cwd?: string,
): Promise<Child> {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["run", "--unstable-kv", "--unstable-no-legacy-abort", "-A", MAIN],
    cwd,
    env: {
      PORT: "0",
      HOST: "127.0.0.1",
      KV_PATH: `${dir}/gw.kv`,
      MODELS_CONFIG: `${dir}/models.json`,
      UP_KEY: "upstream-secret",
      USAGE_FLUSH_MS: "50",
      ...env,
    },
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const output: string[] = [];
  const lines = proc.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let url = "";
  while (!url) {
    const { done, value } = await lines.read();
    if (done) throw new Error("gateway exited before listening: " + output.join("\n"));
    buf += value;
    let nl;
    while ((nl = buf.indexOf("\n")) !== -1) {
      const line = buf.slice(0, nl);
      buf = buf.slice(nl + 1);
      output.push(line);
      const j = JSON.parse(line);
      if (j.msg === "gateway listening") url = `http://${j.address}`;
    }
  }
  (async () => {
    for (;;) {
      const { done, value } = await lines.read();
      if (done) break;
      // Whole lines only: a chunk may end inside one.
      buf += value;
      const parts = buf.split("\n");
      buf = parts.pop()!;
      output.push(...parts.filter(Boolean));
    }
    if (buf) output.push(buf);
  })();
  return { proc, url, output };
}
