/**
 * Byte-stream variations for metering and filter tests: other line endings
 * and reproducible random splits.
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
