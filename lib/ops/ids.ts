/**
 * ULIDs for keys and requests (npm `ulid`), fed from a pooled CSPRNG buffer:
 * the package's default draws one `crypto.getRandomValues` call per
 * character, which costs more than the rest of a request's bookkeeping.
 */
import { ulid } from "ulid";

const pool = new Uint32Array(1024);
let next = pool.length;

/** A uniform random number in [0, 1) from `crypto.getRandomValues`. */
function prng(): number {
  if (next === pool.length) {
    crypto.getRandomValues(pool);
    next = 0;
  }
  return pool[next++] / 0x1_0000_0000;
}

/**
 * A new ULID (48-bit time, 80 random bits) minted at `at` (epoch ms; default
 * now): request ids take the context clock's arrival time, so the request
 * log's id order is its time order.
 */
export function newId(at?: number): string {
  return ulid(at, prng);
}
