/**
 * Server processes for the benchmark: spawning them pinned to a core with a
 * raised file-descriptor limit, and reading their CPU time and memory from
 * `/proc` (Linux).
 */

/** True when `taskset` (util-linux) is on PATH. */
export const HAS_TASKSET: boolean = (() => {
  try {
    return new Deno.Command("taskset", { args: ["-V"], stdout: "null", stderr: "null" })
      .outputSync().success;
  } catch {
    return false;
  }
})();

/** Clock ticks per second of `/proc/<pid>/stat` times (`getconf CLK_TCK`). */
export const CLK_TCK: number = (() => {
  try {
    const out = new Deno.Command("getconf", { args: ["CLK_TCK"], stdout: "piped" }).outputSync();
    const n = Number(new TextDecoder().decode(out.stdout).trim());
    return n > 0 ? n : 100;
  } catch {
    return 100;
  }
})();

/** How to start one process. */
export interface SpawnOptions {
  /** Shown in errors. */
  name: string;
  /** Program and arguments. */
  cmd: string[];
  env?: Record<string, string>;
  /** CPU list for `taskset -c`, e.g. "0" (ignored without taskset). */
  cpu?: string;
  /** File that receives stderr (and stdout unless `stdout` is "piped"). */
  log: string;
  stdout?: "piped" | "log";
}

/** A started process. `pid` is the program's own pid (`taskset` and `sh` exec into it). */
export interface Proc {
  name: string;
  pid: number;
  /** The file its stderr (and stdout past the start-up line) goes to. */
  log: string;
  child: Deno.ChildProcess;
  /** Sends SIGTERM, waits up to `graceMs`, then SIGKILL. */
  stop(graceMs?: number): Promise<Deno.CommandStatus>;
}

/**
 * Starts a program through `sh` (to raise `ulimit -n` to the hard limit) and
 * `taskset` (to pin it), both of which exec into it, so the child's pid is
 * the program's.
 */
export function spawn(o: SpawnOptions): Proc {
  const redirect = o.stdout === "piped" ? '2>>"$BENCH_LOG"' : '>>"$BENCH_LOG" 2>&1';
  const script = `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec "$@" ${redirect}`;
  const sh = ["sh", "-c", script, "sh", ...o.cmd];
  const argv = o.cpu !== undefined && HAS_TASKSET ? ["taskset", "-c", o.cpu, ...sh] : sh;
  const child = new Deno.Command(argv[0], {
    args: argv.slice(1),
    env: { ...o.env, BENCH_LOG: o.log },
    stdin: "null",
    stdout: o.stdout === "piped" ? "piped" : "null",
    stderr: "null",
  }).spawn();
  let status: Promise<Deno.CommandStatus> | undefined;
  const stop = async (graceMs = 10_000) => {
    status ??= child.status;
    try {
      child.kill("SIGTERM");
    } catch {
      // already gone
    }
    let timer: ReturnType<typeof setTimeout> | undefined;
    const killed = new Promise<void>((r) =>
      timer = setTimeout(() => {
        try {
          child.kill("SIGKILL");
        } catch {
          // already gone
        }
        r();
      }, graceMs)
    );
    await Promise.race([status, killed]);
    clearTimeout(timer);
    return await status;
  };
  return { name: o.name, pid: child.pid, log: o.log, child, stop };
}

/** Reads the first stdout line of a process as JSON (e.g. `{"port":N}`), within `ms`. */
export async function firstJsonLine<T>(p: Proc, ms = 20_000): Promise<T> {
  const reader = p.child.stdout.pipeThrough(new TextDecoderStream()).getReader();
  let buf = "";
  let timer: ReturnType<typeof setTimeout> | undefined;
  const timeout = new Promise<never>((_, reject) =>
    timer = setTimeout(() => reject(new Error(`${p.name}: no start-up line within ${ms} ms`)), ms)
  );
  try {
    while (!buf.includes("\n")) {
      const { done, value } = await Promise.race([reader.read(), timeout]);
      if (done) throw new Error(`${p.name} exited before it started (see its log)`);
      buf += value;
    }
  } finally {
    clearTimeout(timer);
  }
  // Keep draining so the process never blocks on a full pipe; the rest goes to its log.
  (async () => {
    const enc = new TextEncoder();
    const log = await Deno.open(p.log, { append: true, create: true });
    const write = (text: string) => {
      const bytes = enc.encode(text);
      for (let at = 0; at < bytes.length;) at += log.writeSync(bytes.subarray(at));
    };
    try {
      write(buf.slice(buf.indexOf("\n") + 1));
      for (;;) {
        const { done, value } = await reader.read();
        if (done) break;
        write(value);
      }
    } catch {
      // process gone
    } finally {
      log.close();
    }
  })();
  return JSON.parse(buf.slice(0, buf.indexOf("\n"))) as T;
}

/** A free TCP port on 127.0.0.1 (bound, then released). */
export function freePort(): number {
  const l = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const port = (l.addr as Deno.NetAddr).port;
  l.close();
  return port;
}

/** User plus system CPU time of a whole process (all its threads, living or exited), in µs. */
export function cpuMicros(pid: number): number {
  const stat = Deno.readTextFileSync(`/proc/${pid}/stat`);
  const fields = stat.slice(stat.lastIndexOf(")") + 2).split(" ");
  // fields[0] is field 3 (state); utime and stime are fields 14 and 15.
  const ticks = Number(fields[11]) + Number(fields[12]);
  return ticks * (1e6 / CLK_TCK);
}

/**
 * A process and its descendants (a gateway with `WORKERS` is a supervisor
 * and its worker processes), found through the parent pid in `/proc/<pid>/stat`.
 */
export function processTree(pid: number): number[] {
  const parentOf = new Map<number, number>();
  for (const e of Deno.readDirSync("/proc")) {
    if (!/^\d+$/.test(e.name)) continue;
    try {
      const stat = Deno.readTextFileSync(`/proc/${e.name}/stat`);
      parentOf.set(Number(e.name), Number(stat.slice(stat.lastIndexOf(")") + 2).split(" ")[1]));
    } catch {
      // exited meanwhile
    }
  }
  const tree = [pid];
  for (let i = 0; i < tree.length; i++) {
    for (const [child, parent] of parentOf) if (parent === tree[i]) tree.push(child);
  }
  return tree;
}

/** Busy CPU time of the whole machine, all CPUs together (`/proc/stat`), in µs. */
export function machineBusyMicros(): number {
  const line = Deno.readTextFileSync("/proc/stat").split("\n")[0];
  // cpu user nice system idle iowait irq softirq steal ...: everything but idle and iowait.
  const f = line.trim().split(/\s+/).slice(1).map(Number);
  const busy = f[0] + f[1] + f[2] + f[5] + f[6] + (f[7] ?? 0);
  return busy * (1e6 / CLK_TCK);
}

/** {@link cpuMicros} summed over a process tree (see {@link processTree}). */
export function treeCpuMicros(pids: number[]): number {
  let sum = 0;
  for (const p of pids) {
    try {
      sum += cpuMicros(p);
    } catch {
      // exited meanwhile
    }
  }
  return sum;
}

function statusKiB(pid: number, field: "VmRSS" | "VmHWM"): number {
  const text = Deno.readTextFileSync(`/proc/${pid}/status`);
  const m = new RegExp(`^${field}:\\s+(\\d+) kB`, "m").exec(text);
  if (!m) throw new Error(`no ${field} in /proc/${pid}/status`);
  return Number(m[1]);
}

/** Resident set size now, in KiB. */
export function rssKiB(pid: number): number {
  return statusKiB(pid, "VmRSS");
}

/** Peak resident set size since start or the last {@link resetPeakRss}, in KiB. */
export function peakRssKiB(pid: number): number {
  return statusKiB(pid, "VmHWM");
}

/** {@link peakRssKiB} summed over a process tree (processes that exited count 0). */
export function treePeakRssKiB(pids: number[]): number {
  let sum = 0;
  for (const p of pids) {
    try {
      sum += peakRssKiB(p);
    } catch {
      // exited meanwhile
    }
  }
  return sum;
}

/**
 * Resets a process's peak RSS (VmHWM) to its current RSS, by writing 5 to
 * `/proc/<pid>/clear_refs` (Linux 4.0+, needs the right to write there).
 * Returns false when that is not possible; VmHWM is then the lifetime peak.
 */
export function resetPeakRss(pid: number): boolean {
  try {
    Deno.writeTextFileSync(`/proc/${pid}/clear_refs`, "5");
    return true;
  } catch {
    return false;
  }
}
