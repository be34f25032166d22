/**
 * Rate limits counted in this process alone: the fallback for `rpm`, `tpm`
 * and `max_concurrent` while KV cannot be reached
 * (`RATE_LIMITS_ON_KV_FAILURE=local`). The same arithmetic as the shared
 * ledger, over state no other process sees, so N gateways together allow up
 * to N times each limit until KV answers again. Never consulted while KV
 * works: it is a fallback, not a second source of truth.
 */
import type { KeyLimits } from "../keys.ts";
import {
  admitInto,
  type Amount,
  type Claim,
  type Exceeded,
  exceeded,
  holdsNothing,
  type LimitState,
  type Reservation,
  settleInto,
  type Standing,
  standings,
  type Windows3,
} from "./ledger.ts";

/** Most keys counted at once (idle ones are forgotten first). */
const MAX_KEYS = 10_000;
/** The one holder in a local state. */
const HERE = "local";

/** The rate limits of a key's limits (the ones counted locally). */
export function rateLimitsOf(l: KeyLimits): KeyLimits {
  return { rpm: l.rpm, tpm: l.tpm, maxConcurrent: l.maxConcurrent };
}

/** A local decision. */
export type LocalAdmitted =
  | { ok: true; reservation: Reservation; standings: Standing[] }
  | { ok: false; exceeded: Exceeded; standings: Standing[] };

/** Per-key rate-limit state of this process, for while KV is away. */
export class LocalLimits {
  #keys = new Map<string, LimitState>();

  /** Admits `claim` against the rate limits in `limits`, or says which one it exceeds. */
  admit(keyId: string, limits: KeyLimits, w: Windows3, claim: Claim): LocalAdmitted {
    const rate = rateLimitsOf(limits);
    let s = this.#keys.get(keyId);
    if (!s) {
      if (this.#keys.size >= MAX_KEYS) {
        for (const [id, x] of this.#keys) if (holdsNothing(x.held.get(HERE))) this.#keys.delete(id);
      }
      s = { use: new Map(), held: new Map() };
      this.#keys.set(keyId, s);
    }
    // Only the current minute counts.
    for (const id of s.use.keys()) if (id !== w.minute.id) s.use.delete(id);
    if (!s.use.has(w.minute.id)) s.use.set(w.minute.id, { requests: 0, tokens: 0, microUsd: 0 });
    const over = exceeded(rate, s, w, claim);
    if (over) return { ok: false, exceeded: over, standings: standings(rate, s, w) };
    const reservation = admitInto(s, HERE, rate, w, claim);
    return { ok: true, reservation, standings: standings(rate, s, w) };
  }

  /** Gives back a local reservation, counting what the request used. */
  settle(keyId: string, r: Reservation, used: Amount): void {
    const s = this.#keys.get(keyId);
    if (s) settleInto(s, HERE, r, used);
  }
}
