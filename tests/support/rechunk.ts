/**
 * Byte-stream variations for metering and filter tests: other line endings,
 * one byte at a time, and reproducible random splits.
 */

/** Rewrites every LF byte as CRLF or CR (inputs must contain no raw CR). */
export function lineEndings(b: Uint8Array, eol: "LF" | "CRLF" | "CR"): Uint8Array {
  if (eol === "LF") return b;
  if (eol === "CR") return b.map((x) => (x === 0x0a ? 0x0d : x));
  const out: number[] = [];
  for (const x of b) {
    if (x === 0x0a) out.push(0x0d);
    out.push(x);
  }
  return new Uint8Array(out);
}

/** A small seeded PRNG (mulberry32), so random splits are reproducible. */
export function prng(seed: number): () => number {
  let a = seed >>> 0;
  return () => {
    a = (a + 0x6d2b79f5) >>> 0;
    let t = a;
    t = Math.imul(t ^ (t >>> 15), t | 1);
    t ^= t + Math.imul(t ^ (t >>> 7), t | 61);
    return ((t ^ (t >>> 14)) >>> 0) / 4294967296;
  };
}

/**
 * Splits `b` into chunks of 0 to `max` bytes drawn from `rand` (empty reads
 * included, as a network may deliver them).
 */
export function randomChunks(b: Uint8Array, rand: () => number, max: number): Uint8Array[] {
  const out: Uint8Array[] = [];
  let i = 0;
  while (i < b.length) {
    const n = Math.floor(rand() * (max + 1));
    out.push(b.subarray(i, i + n));
    i += n;
  }
  return out;
}

/** `b` one byte per chunk. */
export function bytewise(b: Uint8Array): Uint8Array[] {
  const out: Uint8Array[] = [];
  for (let i = 0; i < b.length; i++) out.push(b.subarray(i, i + 1));
  return out;
}
