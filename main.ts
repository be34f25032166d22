/**
 * Entry point of the gateway and its command line (`serve` by default).
 * All logic lives in `lib/`.
 */
import { runCli } from "./lib/cli/main.ts";

if (import.meta.main) {
  const status = await runCli(Deno.args, {
    out: (line) => console.log(line),
    err: (line) => console.error(line),
    env: Deno.env.toObject(),
  });
  if (status !== null) Deno.exit(status);
}
