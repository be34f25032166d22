/**
 * The gateway exactly as `main.ts` runs it, plus V8's sampling heap
 * profiler switched by signals, for `deno task bench --profile`: SIGUSR1
 * starts sampling allocations (one sample per `BENCH_HEAP_INTERVAL` bytes,
 * default 4096, objects already collected included), SIGUSR2 stops and
 * writes the profile (Chrome's `.heapprofile` format) to
 * `BENCH_HEAP_PROFILE`. So only the measured run is sampled, not start-up
 * or warm-up. Reached through `node:inspector`, in the gateway's own
 * process: the profiler sees its allocations only. `BENCH_GATEWAY_ROOT` is
 * the checkout whose gateway runs (default: this one).
 */
import { Session } from "node:inspector";
import type { runCli as RunCli } from "../lib/cli/main.ts";

const out = Deno.env.get("BENCH_HEAP_PROFILE");
if (!out) throw new Error("BENCH_HEAP_PROFILE must name the file the profile goes to");
const interval = Number(Deno.env.get("BENCH_HEAP_INTERVAL") || 4096);

const session = new Session();
session.connect();
const post = <T>(method: string, params?: Record<string, unknown>) =>
  new Promise<T>((resolve, reject) =>
    session.post(method, params, (e: Error | null, r: unknown) => e ? reject(e) : resolve(r as T))
  );
// A connected inspector makes fetch copy bodies for its Network domain unless told not to.
await post("Network.disable").catch(() => {});
await post("HeapProfiler.enable");

Deno.addSignalListener("SIGUSR1", () => {
  post("HeapProfiler.startSampling", {
    samplingInterval: interval,
    includeObjectsCollectedByMajorGC: true,
    includeObjectsCollectedByMinorGC: true,
  }).catch((e) => console.error(`heap sampling did not start: ${e}`));
});
Deno.addSignalListener("SIGUSR2", async () => {
  try {
    const r = await post<{ profile: unknown }>("HeapProfiler.stopSampling");
    await Deno.writeTextFile(`${out}.part`, JSON.stringify(r.profile));
    await Deno.rename(`${out}.part`, out);
  } catch (e) {
    console.error(`heap sampling did not stop: ${e}`);
  }
});

const root = Deno.env.get("BENCH_GATEWAY_ROOT") || new URL("..", import.meta.url).pathname;
const { runCli }: { runCli: typeof RunCli } = await import(
  `file://${root.replace(/\/$/, "")}/lib/cli/main.ts`
);
const status = await runCli(Deno.args, {
  out: (line: string) => console.log(line),
  err: (line: string) => console.error(line),
  env: Deno.env.toObject(),
});
if (status !== null) Deno.exit(status);
