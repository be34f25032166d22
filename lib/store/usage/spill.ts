/**
 * The spill file: usage that could not be written to KV and no longer fits
 * in memory (or was held when the process stopped), kept on local disk until
 * KV takes it. JSON lines, one batch per line, each with the chain and
 * position it commits at ({@link Chain}), so replaying a line that was
 * already applied, by an earlier replay or by a commit whose answer was
 * lost, changes nothing. Every append is fsync'd; the file never grows
 * past its size cap.
 */
import { dirname } from "node:path";
import { z } from "zod";
import type { Bucket } from "../../ops/clock.ts";
import { type Counters, FIELDS, zeroCounters } from "./counters.ts";
import { setMutation } from "./layout.ts";
import type { RequestUsage } from "./batch.ts";

/** One spilled batch: where it commits, and its requests. */
export interface SpillEntry {
  chain: string;
  pos: number;
  requests: RequestUsage[];
}

const KeyPart = z.union([z.string(), z.number()]);
const Line = z.object({
  v: z.literal(1),
  chain: z.string().min(1).max(100),
  pos: z.number().int().positive(),
  r: z.array(z.object({
    k: z.string(),
    d: z.string(),
    h: z.string(),
    t: z.number(),
    l: z.array(z.object({
      m: z.string(),
      p: z.string(),
      c: z.record(z.string(), z.number().int().nonnegative()),
    })),
    s: z.array(z.object({
      k: z.array(KeyPart).min(1),
      v: z.unknown(),
      x: z.number().nullable(),
    })),
    // The request-log entry (absent in lines written before log rows: theirs are in `s`).
    g: z.object({ i: z.string(), k: z.string(), e: z.string(), x: z.number() }).optional(),
  })).min(1),
});

/** A spill entry as one line of JSON (without the newline). */
export function encodeEntry(e: SpillEntry): string {
  return JSON.stringify({
    v: 1,
    chain: e.chain,
    pos: e.pos,
    r: e.requests.map((u) => ({
      k: u.keyId,
      d: u.bucket.day,
      h: u.bucket.hour,
      t: u.at,
      l: u.lines.map((l) => ({
        m: l.model,
        p: l.provider,
        // Only the counters that are set: most of a row's twelve are zero.
        c: Object.fromEntries(
          FIELDS.filter((f) => l.counters[f] !== 0).map((f) => [
            f,
            l.counters[f],
          ]),
        ),
      })),
      // Expiry as an instant, so a late replay keeps the entry's original lifetime.
      s: u.sets.map((s) => ({
        k: s.key,
        v: s.value,
        x: s.expireIn === undefined ? null : u.at + s.expireIn,
      })),
      g: u.log && { i: u.log.id, k: u.log.keyId, e: u.log.text, x: u.at + u.log.keepMs },
    })),
  });
}

/** A line back into a spill entry (sets already expired at `now` are left out), or undefined. */
function decodeEntry(line: string, now: number): SpillEntry | undefined {
  let raw: unknown;
  try {
    raw = JSON.parse(line);
  } catch {
    return undefined;
  }
  const p = Line.safeParse(raw);
  if (!p.success) return undefined;
  return {
    chain: p.data.chain,
    pos: p.data.pos,
    requests: p.data.r.map((r) => ({
      keyId: r.k,
      bucket: { day: r.d, hour: r.h } as Bucket,
      at: r.t,
      lines: r.l.map((l) => {
        const counters: Counters = zeroCounters();
        for (const f of FIELDS) counters[f] = l.c[f] ?? 0;
        return { model: l.m, provider: l.p, counters };
      }),
      log: r.g && r.g.x > now
        ? { id: r.g.i, keyId: r.g.k, text: r.g.e, keepMs: r.g.x - now }
        : undefined,
      sets: r.s.filter((s) => s.x === null || s.x > now).map((s) =>
        setMutation(s.k, s.v, s.x === null ? undefined : s.x - now)
      ),
    })),
  };
}

/** One line read back: its entry (or its raw text when it cannot be read), and where the next begins. */
export interface SpillLine {
  entry?: SpillEntry;
  bad?: string;
  next: number;
}

const NL = 10;
const enc = new TextEncoder();
const dec = new TextDecoder();

/** The spill file at one path, used by one process at a time. */
export class SpillFile {
  readonly path: string;
  readonly maxBytes: number;
  #size = 0;
  /** Appends and compactions, one at a time. */
  #lock: Promise<unknown> = Promise.resolve();

  constructor(path: string, maxBytes: number) {
    this.path = path;
    this.maxBytes = maxBytes;
  }

  /** Bytes in the file now. */
  get size(): number {
    return this.#size;
  }

  /**
   * Finds what an earlier process left. A last line cut short (the process
   * died while appending) is closed with a newline, so it stays one bad line
   * instead of spoiling the next one appended.
   */
  async open(): Promise<number> {
    try {
      const st = await Deno.stat(this.path);
      this.#size = st.size;
    } catch (e) {
      if (e instanceof Deno.errors.NotFound) return this.#size = 0;
      throw e;
    }
    if (this.#size > 0) {
      const f = await Deno.open(this.path, { read: true, write: true });
      try {
        const last = new Uint8Array(1);
        await f.seek(this.#size - 1, Deno.SeekMode.Start);
        await f.read(last);
        if (last[0] !== NL) {
          await f.seek(0, Deno.SeekMode.End);
          await writeAll(f, new Uint8Array([NL]));
          await f.syncData();
          this.#size++;
        }
      } finally {
        f.close();
      }
    }
    return this.#size;
  }

  #locked<T>(fn: () => Promise<T>): Promise<T> {
    const run = this.#lock.then(fn);
    this.#lock = run.catch(() => {});
    return run;
  }

  /**
   * Appends entries, oldest first, as many as fit under the size cap;
   * resolves with how many were written (and fsync'd).
   */
  append(entries: SpillEntry[]): Promise<number> {
    return this.#locked(async () => {
      const lines: Uint8Array[] = [];
      let bytes = 0;
      for (const e of entries) {
        const b = enc.encode(encodeEntry(e) + "\n");
        if (this.#size + bytes + b.length > this.maxBytes) break;
        lines.push(b);
        bytes += b.length;
      }
      if (lines.length === 0) return 0;
      await Deno.mkdir(dirname(this.path), { recursive: true });
      const f = await Deno.open(this.path, { append: true, create: true });
      try {
        for (const b of lines) await writeAll(f, b);
        await f.syncData();
      } finally {
        f.close();
      }
      this.#size += bytes;
      return lines.length;
    });
  }

  /** Keeps a line that could not be read in `<path>.rejected`, for an operator to look at. */
  reject(line: string): Promise<void> {
    return this.#locked(async () => {
      const f = await Deno.open(`${this.path}.rejected`, { append: true, create: true });
      try {
        await writeAll(f, enc.encode(line + "\n"));
        await f.syncData();
      } finally {
        f.close();
      }
    });
  }

  /** The lines between byte offsets `from` and `to` (whole lines only), one at a time. */
  async *read(from: number, to: number, now: number): AsyncGenerator<SpillLine> {
    const f = await Deno.open(this.path, { read: true });
    try {
      await f.seek(from, Deno.SeekMode.Start);
      const buf = new Uint8Array(64 * 1024);
      let pieces: Uint8Array[] = [];
      let at = from; // file offset of buf[0] on each read
      let lineStart = from;
      while (at < to) {
        const n = await f.read(buf.subarray(0, Math.min(buf.length, to - at)));
        if (n === null) break;
        let start = 0;
        for (let i = 0; i < n; i++) {
          if (buf[i] !== NL) continue;
          pieces.push(buf.slice(start, i));
          const text = dec.decode(concat(pieces));
          pieces = [];
          start = i + 1;
          const next = at + i + 1;
          lineStart = next;
          if (text.trim() === "") continue;
          const entry = decodeEntry(text, now);
          yield entry ? { entry, next } : { bad: text, next };
        }
        if (start < n) pieces.push(buf.slice(start, n));
        at += n;
      }
      if (pieces.length > 0) yield { bad: dec.decode(concat(pieces)), next: lineStart };
    } finally {
      f.close();
    }
  }

  /**
   * Drops the first `end` bytes (replayed): the file is emptied, or, when
   * lines were appended during the replay, replaced by those lines.
   */
  consume(end: number): Promise<void> {
    return this.#locked(async () => {
      if (end <= 0) return;
      if (this.#size <= end) {
        await Deno.truncate(this.path, 0);
        this.#size = 0;
        return;
      }
      const tmp = `${this.path}.tmp`;
      const src = await Deno.open(this.path, { read: true });
      const dst = await Deno.open(tmp, { write: true, create: true, truncate: true });
      try {
        await src.seek(end, Deno.SeekMode.Start);
        const buf = new Uint8Array(64 * 1024);
        for (;;) {
          const n = await src.read(buf);
          if (n === null) break;
          await writeAll(dst, buf.subarray(0, n));
        }
        await dst.syncData();
      } finally {
        src.close();
        dst.close();
      }
      await Deno.rename(tmp, this.path);
      this.#size -= end;
    });
  }
}

function concat(pieces: Uint8Array[]): Uint8Array {
  if (pieces.length === 1) return pieces[0];
  const out = new Uint8Array(pieces.reduce((n, p) => n + p.length, 0));
  let o = 0;
  for (const p of pieces) {
    out.set(p, o);
    o += p.length;
  }
  return out;
}

async function writeAll(f: Deno.FsFile, b: Uint8Array): Promise<void> {
  for (let o = 0; o < b.length;) o += await f.write(b.subarray(o));
}
