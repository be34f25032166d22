/**
 * Reproducible randomness for generated tests: one seeded source and the
 * draws they need (numbers, picks, weighted choices, strings, bytes).
 */
import { prng } from "./rechunk.ts";

/** A seeded random source; the same seed gives the same draws. */
export class Rand {
  #next: () => number;

  constructor(seed: number) {
    this.#next = prng(seed);
  }

  /** A float in [0, 1). */
  float(): number {
    return this.#next();
  }

  /** A whole number in [min, max]. */
  int(min: number, max: number): number {
    return min + Math.floor(this.#next() * (max - min + 1));
  }

  /** True with probability `p`. */
  chance(p: number): boolean {
    return this.#next() < p;
  }

  /** One element of `xs`. */
  pick<T>(xs: readonly T[]): T {
    return xs[Math.floor(this.#next() * xs.length)];
  }

  /** One value by weight: `[[weight, value], ...]`. */
  weighted<T>(table: readonly (readonly [number, T])[]): T {
    const total = table.reduce((n, [w]) => n + w, 0);
    let r = this.#next() * total;
    for (const [w, v] of table) {
      r -= w;
      if (r < 0) return v;
    }
    return table[table.length - 1][1];
  }

  /** A new source seeded from this one (for a part whose draws must not shift the rest). */
  fork(): Rand {
    return new Rand(Math.floor(this.#next() * 2 ** 32));
  }

  /** `n` characters drawn from `alphabet`. */
  string(n: number, alphabet = "abcdefghijklmnopqrstuvwxyz0123456789"): string {
    let s = "";
    for (let i = 0; i < n; i++) s += alphabet[Math.floor(this.#next() * alphabet.length)];
    return s;
  }

  /** `n` random bytes. */
  bytes(n: number): Uint8Array {
    const out = new Uint8Array(n);
    for (let i = 0; i < n; i++) out[i] = Math.floor(this.#next() * 256);
    return out;
  }

  /** `xs` in a random order (a copy). */
  shuffle<T>(xs: readonly T[]): T[] {
    const out = [...xs];
    for (let i = out.length - 1; i > 0; i--) {
      const j = Math.floor(this.#next() * (i + 1));
      [out[i], out[j]] = [out[j], out[i]];
    }
    return out;
  }
}

/** The seed to use: `env` when set to a whole number, else a fresh one. */
export function seedFrom(env: string | undefined): number {
  if (env !== undefined && /^\d+$/.test(env.trim())) return Number(env.trim()) >>> 0;
  return crypto.getRandomValues(new Uint32Array(1))[0];
}
