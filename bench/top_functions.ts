/**
 * Where the time goes in a V8 CPU profile (`deno run --cpu-prof`): the
 * functions with the most self time, and self time by source file.
 *
 * Usage: `deno run -A bench/top_functions.ts <file.cpuprofile | dir> [--top N]`
 * (with a directory, its newest `.cpuprofile` is read).
 */

interface CallFrame {
  functionName: string;
  url: string;
  lineNumber: number;
  columnNumber: number;
}

interface ProfileNode {
  id: number;
  callFrame: CallFrame;
  hitCount?: number;
}

/** The parts of a `.cpuprofile` this reads. */
export interface CpuProfile {
  nodes: ProfileNode[];
  startTime: number;
  endTime: number;
  samples: number[];
  timeDeltas: number[];
}

/** Self time of one function. */
export interface FunctionTime {
  name: string;
  /** Short location: file (relative to the repository when inside it) and line. */
  where: string;
  selfMs: number;
  /** Share of all sampled time, idle excluded. */
  share: number;
}

/** A summary of a profile. */
export interface ProfileSummary {
  /** Sampled time, idle excluded, ms. */
  busyMs: number;
  idleMs: number;
  functions: FunctionTime[];
  files: { file: string; selfMs: number; share: number }[];
}

const ROOT = new URL("../", import.meta.url).href;

function shortUrl(url: string): string {
  if (!url) return "";
  if (url.startsWith(ROOT)) return url.slice(ROOT.length);
  const npm = /\/node_modules\/(?:\.deno\/)?([^/]+)/.exec(url) ?? /\/npm\/[^/]+\/([^/]+)/.exec(url);
  if (npm) return `npm:${npm[1]}`;
  return url;
}

/** Self time per function and per file, from the samples and their time deltas. */
export function summarize(p: CpuProfile): ProfileSummary {
  const byId = new Map(p.nodes.map((n) => [n.id, n]));
  const selfUs = new Map<number, number>();
  // timeDeltas[i] is the time before sample i; attribute the time after it.
  for (let i = 0; i < p.samples.length; i++) {
    const dt = i + 1 < p.timeDeltas.length ? p.timeDeltas[i + 1] : 0;
    selfUs.set(p.samples[i], (selfUs.get(p.samples[i]) ?? 0) + Math.max(0, dt));
  }
  const fns = new Map<string, FunctionTime>();
  const files = new Map<string, number>();
  let idleUs = 0, busyUs = 0;
  for (const [id, us] of selfUs) {
    const f = byId.get(id)!.callFrame;
    if (f.functionName === "(idle)") {
      idleUs += us;
      continue;
    }
    busyUs += us;
    const file = shortUrl(f.url) || f.functionName;
    const where = f.url ? `${shortUrl(f.url)}:${f.lineNumber + 1}` : "";
    const name = f.functionName || "(anonymous)";
    const key = `${name}@${where}`;
    const cur = fns.get(key) ?? { name, where, selfMs: 0, share: 0 };
    cur.selfMs += us / 1000;
    fns.set(key, cur);
    files.set(file, (files.get(file) ?? 0) + us / 1000);
  }
  const busyMs = busyUs / 1000;
  const functions = [...fns.values()].sort((a, b) => b.selfMs - a.selfMs);
  for (const f of functions) f.share = busyMs > 0 ? f.selfMs / busyMs : 0;
  return {
    busyMs,
    idleMs: idleUs / 1000,
    functions,
    files: [...files].map(([file, selfMs]) => ({
      file,
      selfMs,
      share: busyMs > 0 ? selfMs / busyMs : 0,
    })).sort((a, b) => b.selfMs - a.selfMs),
  };
}

/** A Markdown report of the top `n` functions and files. */
export function formatSummary(s: ProfileSummary, n = 25): string {
  const pct = (x: number) => `${(x * 100).toFixed(1)}%`;
  const lines = [
    `busy ${s.busyMs.toFixed(0)} ms sampled (idle ${s.idleMs.toFixed(0)} ms)`,
    "",
    "| self ms | share | function | where |",
    "| ------: | ----: | -------- | ----- |",
    ...s.functions.slice(0, n).map((f) =>
      `| ${f.selfMs.toFixed(1)} | ${pct(f.share)} | ${f.name} | ${f.where} |`
    ),
    "",
    "| self ms | share | file |",
    "| ------: | ----: | ---- |",
    ...s.files.slice(0, Math.min(n, 15)).map((f) =>
      `| ${f.selfMs.toFixed(1)} | ${pct(f.share)} | ${f.file} |`
    ),
  ];
  return lines.join("\n");
}

/** One node of a sampling heap profile (`HeapProfiler.stopSampling`, `.heapprofile`). */
export interface HeapNode {
  callFrame: CallFrame;
  /** Bytes allocated here (sampled, scaled to an estimate of all). */
  selfSize: number;
  children: HeapNode[];
}

/** Bytes allocated per request: where it happens, and which gateway code caused it. */
export interface HeapSummary {
  totalBytes: number;
  /** By the allocating function (runtime internals included). */
  functions: { name: string; where: string; bytes: number }[];
  /**
   * By the innermost function of the gateway's own code (`lib/`) on the
   * allocation's stack: what the gateway's code costs in allocation,
   * runtime calls it makes included.
   */
  gateway: { name: string; where: string; bytes: number }[];
}

// Heap profiles' line numbers are not those of the source: name the file only.
const frameWhere = (f: CallFrame) => shortUrl(f.url);

/**
 * Frames that exist only because an inspector session is attached (the
 * profiler's own): fetch then describes every request to the inspector's
 * Network domain and tees each response body for it.
 */
const INSPECTOR_ONLY =
  /inspector_network_bridge|^(drainResponseForInspector|joinHeaderValuesForCdp|parseContentTypeForCdp|readableByteStreamTee|readableStreamDefaultTee|tee)$/;

/**
 * Bytes allocated by function and by gateway function, over a heap
 * profile's samples, leaving out what only the attached inspector causes.
 */
export function summarizeHeap(head: HeapNode): HeapSummary {
  const fns = new Map<string, { name: string; where: string; bytes: number }>();
  const gw = new Map<string, { name: string; where: string; bytes: number }>();
  let total = 0;
  const add = (m: typeof fns, f: CallFrame, bytes: number) => {
    const name = f.functionName || "(anonymous)";
    const where = frameWhere(f);
    const key = `${name}@${where}`;
    const cur = m.get(key) ?? { name, where, bytes: 0 };
    cur.bytes += bytes;
    m.set(key, cur);
  };
  const walk = (n: HeapNode, owner: CallFrame | undefined) => {
    if (INSPECTOR_ONLY.test(n.callFrame.functionName) || INSPECTOR_ONLY.test(n.callFrame.url)) {
      return;
    }
    const mine = shortUrl(n.callFrame.url).startsWith("lib/") ? n.callFrame : owner;
    if (n.selfSize > 0) {
      total += n.selfSize;
      add(fns, n.callFrame, n.selfSize);
      add(
        gw,
        mine ??
          { functionName: "(outside the gateway's code)", url: "", lineNumber: 0, columnNumber: 0 },
        n.selfSize,
      );
    }
    for (const c of n.children) walk(c, mine);
  };
  walk(head, undefined);
  const sorted = (m: typeof fns) => [...m.values()].sort((a, b) => b.bytes - a.bytes);
  return { totalBytes: total, functions: sorted(fns), gateway: sorted(gw) };
}

/** A Markdown report of a heap summary, per request. */
export function formatHeapSummary(s: HeapSummary, requests: number, n = 15): string {
  const kib = (b: number) => (b / Math.max(1, requests) / 1024).toFixed(2);
  const share = (b: number) => `${(100 * b / Math.max(1, s.totalBytes)).toFixed(1)}%`;
  return [
    `sampled allocation: ${kib(s.totalBytes)} KiB per request over ${requests} requests ` +
    "(the inspector session the sampler needs makes fetch describe and tee every response for " +
    "DevTools; those frames are left out, but a teed body is read through JavaScript, so " +
    "fetch and body reads show more than they cost without it)",
    "",
    "| KiB/req | share | allocating function | where |",
    "| ------: | ----: | ------------------- | ----- |",
    ...s.functions.slice(0, n).map((f) =>
      `| ${kib(f.bytes)} | ${share(f.bytes)} | ${f.name} | ${f.where} |`
    ),
    "",
    "| KiB/req | share | gateway function the allocation happened under | where |",
    "| ------: | ----: | ---------------------------------------------- | ----- |",
    ...s.gateway.slice(0, n).map((f) =>
      `| ${kib(f.bytes)} | ${share(f.bytes)} | ${f.name} | ${f.where} |`
    ),
  ].join("\n");
}

/** The newest `.cpuprofile` in `dir`. */
export async function newestProfile(dir: string): Promise<string | undefined> {
  let best: { path: string; mtime: number } | undefined;
  for await (const e of Deno.readDir(dir)) {
    if (!e.isFile || !e.name.endsWith(".cpuprofile")) continue;
    const path = `${dir}/${e.name}`;
    const mtime = (await Deno.stat(path)).mtime?.getTime() ?? 0;
    if (!best || mtime > best.mtime) best = { path, mtime };
  }
  return best?.path;
}

if (import.meta.main) {
  const args = [...Deno.args];
  const topAt = args.indexOf("--top");
  const n = topAt >= 0 ? Number(args.splice(topAt, 2)[1]) : 25;
  const arg = args[0];
  if (!arg) {
    console.error("usage: deno run -A bench/top_functions.ts <file.cpuprofile | dir> [--top N]");
    Deno.exit(2);
  }
  const file = (await Deno.stat(arg)).isDirectory ? await newestProfile(arg) : arg;
  if (!file) {
    console.error(`no .cpuprofile in ${arg}`);
    Deno.exit(1);
  }
  const profile = JSON.parse(await Deno.readTextFile(file)) as CpuProfile;
  console.log(`${file}\n`);
  console.log(formatSummary(summarize(profile), n));
}
