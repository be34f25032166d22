/**
 * The streaming client (not wrk), run as its own process on the load core:
 *
 * - `paced`: opens paced SSE streams through each target in turn (rounds
 *   interleaved: every target in turn, then again), staggered, and
 *   timestamps every chunk: time to first body byte, gaps between chunks,
 *   and each delta's delay from the upstream's send stamp (`bench_t`, wall
 *   clock) to its arrival here. One process measures every target, so any
 *   clock offset between it and the upstream cancels out in the differences.
 * - `open`: opens N long-lived (slow) streams through one target, prints
 *   `{"event":"open",...}` once every stream has delivered its first chunk,
 *   then reads them all to their end and prints `{"event":"done",...}`.
 *
 * Usage: `deno run -A bench/stream_client.ts <config.json>`; results are JSON
 * lines on stdout. `runClient` spawns it from the benchmark.
 */
import { type Proc, spawn } from "./procs.ts";
import type { RequestSpec } from "./workloads.ts";

/** One target of a paced measurement. */
export interface ClientTarget {
  name: string;
  url: string;
  /** Requests to alternate (Anthropic, OpenAI). */
  specs: RequestSpec[];
}

/** Configuration of a paced measurement. */
export interface PacedConfig {
  mode: "paced";
  targets: ClientTarget[];
  rounds: number;
  /** Streams per target per round. */
  streams: number;
  /** Delay between stream starts within a batch. */
  staggerMs: number;
  /** Unrecorded streams per target before the first round. */
  warmup: number;
}

/** Configuration of an open-streams measurement. */
export interface OpenConfig {
  mode: "open";
  target: ClientTarget;
  streams: number;
  /** Streams opened at once, then a pause of `rampEveryMs`. */
  rampBatch: number;
  rampEveryMs: number;
  /** Give up waiting for all streams to open after this long. */
  openTimeoutMs: number;
}

/** Paced results of one target (samples pooled over rounds). */
export interface PacedSamples {
  /** Request start to first body chunk, ms. */
  ttfbMs: number[];
  /** Per delta: arrival here minus the upstream's send stamp, ms. */
  delayMs: number[];
  /** Gaps between consecutive body chunks, ms. */
  gapMs: number[];
  completed: number;
  errors: string[];
}

const dec = new TextDecoder();
const STAMP_RE = /"bench_t":([\d.]+)/g;
const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

function headersOf(spec: RequestSpec, tag: string): HeadersInit {
  return { ...spec.headers, "x-bench-tag": tag };
}

/** One paced stream, timestamped. */
async function pacedStream(t: ClientTarget, spec: RequestSpec, out?: PacedSamples): Promise<void> {
  const t0 = performance.now();
  try {
    const res = await fetch(t.url + spec.path, {
      method: "POST",
      headers: headersOf(spec, t.name),
      body: spec.body,
    });
    if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
    const reader = res.body.getReader();
    let last = -1;
    let carry = "";
    let sawEnd = false;
    for (;;) {
      const { done, value } = await reader.read();
      const now = performance.now();
      if (done) break;
      const wall = performance.timeOrigin + now;
      if (last < 0) out?.ttfbMs.push(now - t0);
      else out?.gapMs.push(now - last);
      last = now;
      carry += dec.decode(value, { stream: true });
      const cut = carry.lastIndexOf("\n\n");
      if (cut < 0) continue;
      const whole = carry.slice(0, cut);
      carry = carry.slice(cut + 2);
      for (const m of whole.matchAll(STAMP_RE)) out?.delayMs.push(wall - Number(m[1]));
      if (whole.includes("message_stop") || whole.includes("[DONE]")) sawEnd = true;
    }
    if (!sawEnd) throw new Error("stream ended without its final event");
    if (out) out.completed++;
  } catch (e) {
    out?.errors.push((e as Error).message);
  }
}

async function runPaced(c: PacedConfig): Promise<void> {
  const results: Record<string, PacedSamples> = {};
  for (const t of c.targets) {
    results[t.name] = { ttfbMs: [], delayMs: [], gapMs: [], completed: 0, errors: [] };
  }
  const batch = async (t: ClientTarget, n: number, out?: PacedSamples) => {
    const all: Promise<void>[] = [];
    for (let i = 0; i < n; i++) {
      all.push(pacedStream(t, t.specs[i % t.specs.length], out));
      await sleep(c.staggerMs);
    }
    await Promise.all(all);
  };
  for (const t of c.targets) await batch(t, c.warmup);
  for (let r = 0; r < c.rounds; r++) {
    for (const t of c.targets) await batch(t, c.streams, results[t.name]);
  }
  console.log(JSON.stringify({ event: "paced", results }));
}

async function runOpen(c: OpenConfig): Promise<void> {
  let opened = 0, completed = 0;
  const errors: string[] = [];
  let allOpen!: () => void;
  const allOpened = new Promise<void>((r) => allOpen = r);
  const one = async (spec: RequestSpec) => {
    try {
      const res = await fetch(c.target.url + spec.path, {
        method: "POST",
        headers: headersOf(spec, c.target.name),
        body: spec.body,
      });
      if (!res.ok || !res.body) throw new Error(`HTTP ${res.status}`);
      const reader = res.body.getReader();
      let first = true;
      for (;;) {
        const { done } = await reader.read();
        if (done) break;
        if (first) {
          first = false;
          if (++opened === c.streams) allOpen();
        }
      }
      completed++;
    } catch (e) {
      errors.push((e as Error).message);
      if (opened + errors.length === c.streams) allOpen();
    }
  };
  const t0 = performance.now();
  const all: Promise<void>[] = [];
  for (let i = 0; i < c.streams; i++) {
    all.push(one(c.target.specs[i % c.target.specs.length]));
    if ((i + 1) % c.rampBatch === 0) await sleep(c.rampEveryMs);
  }
  let timer: ReturnType<typeof setTimeout> | undefined;
  await Promise.race([allOpened, new Promise((r) => timer = setTimeout(r, c.openTimeoutMs))]);
  clearTimeout(timer);
  console.log(
    JSON.stringify({ event: "open", opened, errors: errors.length, ms: performance.now() - t0 }),
  );
  await Promise.all(all);
  console.log(
    JSON.stringify({
      event: "done",
      opened,
      completed,
      errors: errors.slice(0, 5),
      errorCount: errors.length,
    }),
  );
}

/** A running client: its JSON output lines, in order. */
export interface ClientRun {
  proc: Proc;
  /** The next output line, parsed (rejects when the client exits first or `ms` pass). */
  next(ms: number): Promise<Record<string, unknown>>;
}

/** Starts the client with `config` on core `cpu`. */
export async function runClient(
  config: PacedConfig | OpenConfig,
  o: { cpu?: string; log: string; tmpDir: string },
): Promise<ClientRun> {
  const file = `${o.tmpDir}/client-${config.mode}.json`;
  await Deno.writeTextFile(file, JSON.stringify(config));
  const proc = spawn({
    name: `stream client (${config.mode})`,
    cmd: [Deno.execPath(), "run", "-A", new URL(import.meta.url).pathname, file],
    cpu: o.cpu,
    log: o.log,
    stdout: "piped",
  });
  const reader = proc.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  const next = async (ms: number) => {
    let timer: ReturnType<typeof setTimeout> | undefined;
    const timeout = new Promise<never>((_, reject) =>
      timer = setTimeout(() => reject(new Error(`${proc.name}: no output within ${ms} ms`)), ms)
    );
    try {
      while (!buf.includes("\n")) {
        const { done, value } = await Promise.race([reader.read(), timeout]);
        if (done) throw new Error(`${proc.name} exited early (see ${o.log})`);
        buf += value;
      }
    } finally {
      clearTimeout(timer);
    }
    const nl = buf.indexOf("\n");
    const line = buf.slice(0, nl);
    buf = buf.slice(nl + 1);
    return JSON.parse(line);
  };
  return { proc, next };
}

if (import.meta.main) {
  const config = JSON.parse(await Deno.readTextFile(Deno.args[0])) as PacedConfig | OpenConfig;
  if (config.mode === "paced") await runPaced(config);
  else await runOpen(config);
  Deno.exit(0);
}
