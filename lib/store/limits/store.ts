/**
 * Per-key limits kept exact across processes in Deno KV.
 *
 * Every change to a key's limit state (admitting requests, settling them)
 * is one atomic commit that checks and bumps the key's gate entry: two
 * processes that read the same state cannot both commit, so the loser reads
 * again and decides again. Nothing is counted in memory alone.
 *
 * KV layout, per key id:
 * - `["limits", id, "gate"]`: a counter every commit bumps (the version checked);
 * - `["limits", id, "use", window]`: committed use of a window (`m<minute>`,
 *   `d<YYYY-MM-DD>`, `M<YYYY-MM>`), expiring a day after the window ends;
 * - `["limits", id, "held", process]`: what one process's open requests hold,
 *   valid until {@link HELD_TTL_MS} after its last refresh (the entry says
 *   until when; KV deletes it a day later), so a process that dies gives its
 *   reservations and concurrency slots back by itself. It also names the
 *   process's last commit, which settles whether a commit whose answer was
 *   lost landed.
 *
 * Within a process, the requests of one key queue at that key's gate and are
 * decided together, one commit for all of them; the state written last is
 * kept and used for the next commit without reading (the gate's check
 * catches any other process's change), and read again at least every
 * {@link REREAD_MS}. A settlement does not start a commit of its own: it
 * rides with the next admission's commit, or is committed alone after
 * {@link SETTLE_WAIT_MS} when no admission comes. Until then the request's
 * reservation stays held, which can only over-count (its worst case is at
 * least what it used), so no limit is ever exceeded for it.
 *
 * When KV fails or does not answer within the timeout, an admission is
 * answered with {@link LimitsUnavailable} (the caller applies the fallback
 * policy, {@link LimitStore.admitOffline}), and for a second after a failure
 * admissions do not wait on KV at all. Settlements are kept (merged per key)
 * and retried. A commit whose outcome is unknown is never guessed at: the
 * gate waits for that very commit, or reads its own entry, before it decides
 * anything else, so a settlement is never counted twice.
 */
import type { Clock } from "../../ops/clock.ts";
import { newId } from "../../ops/ids.ts";
import type { KvFailurePolicy } from "../../config/env.ts";
import { whileBusy } from "../kv_busy.ts";
import { KvTimeout, type Settled, settled, withTimeout } from "../kv_timeout.ts";
import type { KeyLimits } from "../keys.ts";
import {
  admitInto,
  type Amount,
  type Claim,
  type Exceeded,
  exceeded,
  type Held,
  holdsNothing,
  type LimitState,
  type Reservation,
  reservationWindows,
  settleInto,
  type Standing,
  standings,
  type Use,
  type Windows3,
} from "./ledger.ts";
import { LocalLimits, rateLimitsOf } from "./local.ts";
import type { Window, Windows } from "./windows.ts";

/** How long a process's holdings live without a refresh (by default). */
const HELD_TTL_MS = 60_000;
/** Longest a key's state is decided on without reading KV. */
const REREAD_MS = 2_000;
/**
 * Longest a settlement waits for an admission to share its commit. A KV
 * commit costs about 200 µs of CPU (an fsync, WAL writes, locks), as much as
 * a whole JSON request: sequential requests of a key pay one commit each
 * instead of two (bench, gw-limits at c=1).
 */
const SETTLE_WAIT_MS = 20;
/** Most keys whose gates a process keeps. */
const MAX_GATES = 10_000;
/** After a failure, admissions skip KV for this long (one goes through as a probe). */
const PROBE_MS = 1_000;
const DAY = 86_400_000;

/** KV could not be asked about a key's limits (it failed or did not answer in time). */
export class LimitsUnavailable extends Error {
  constructor(why: string) {
    super(`the limit store cannot reach Deno KV: ${why}`);
    this.name = "LimitsUnavailable";
  }
}

/** An admitted request's hold on its key's limits. Settle it exactly once. */
export interface Ticket {
  /**
   * Replaces the reservation with what the request used (money unknown: its
   * reserved cost). Resolves once committed; callers need not wait.
   */
  settle(used: { tokens: number; microUsd?: number }): Promise<void>;
}

/** The outcome of asking to be admitted. */
export type Admitted =
  | { ok: true; ticket: Ticket; standings: Standing[] }
  | { ok: false; exceeded: Exceeded; standings: Standing[] };

/**
 * An admission decided without KV: by the local counters (`local`), not
 * counted (`open`), or refused because a limit of that kind fails closed.
 */
export type OfflineAdmitted =
  | (Admitted & { policy: "local" | "open" })
  | { closed: "rate" | "quota" };

/** Reads the use already recorded in a day or month window (for a limit set mid-window). */
export type Seed = (keyId: string, window: "day" | "month", now: number) => Promise<Amount>;

type AdmitOp = {
  kind: "admit";
  limits: KeyLimits;
  claim: Claim;
  /** Delivers the answer; false when the admission was already answered (it timed out). */
  answer: (r: Admitted | Error) => boolean;
  answered: () => boolean;
};
type SettleOp = { kind: "settle"; reservation: Reservation; used: Amount; done: (() => void)[] };
type Op = AdmitOp | SettleOp | { kind: "refresh" };

const gateKey = (id: string) => ["limits", id, "gate"];
const useKey = (id: string, w: string) => ["limits", id, "use", w];
const heldPrefix = (id: string) => ["limits", id, "held"];

/** A window to read, and whether an unwritten one starts from the use already recorded. */
type ToRead = { win: Window; seed?: "day" | "month" };

/** The windows a key's limits count in. */
function windowsOf(limits: KeyLimits, w: Windows3): ToRead[] {
  const out: ToRead[] = [];
  if (limits.rpm !== undefined || limits.tpm !== undefined) out.push({ win: w.minute });
  if (limits.dailyTokens !== undefined || limits.dailyMicroUsd !== undefined) {
    out.push({ win: w.day, seed: "day" });
  }
  if (limits.monthlyTokens !== undefined || limits.monthlyMicroUsd !== undefined) {
    out.push({ win: w.month, seed: "month" });
  }
  return out;
}

/** True when a key has any limit the store keeps state for. */
export function hasLimits(l: KeyLimits | undefined): l is KeyLimits {
  return !!l && Object.values(l).some((v) => v !== undefined);
}

/** True when `l` has a rate limit (`rpm`, `tpm`, `max_concurrent`). */
function hasRateLimits(l: KeyLimits): boolean {
  return hasLimits(rateLimitsOf(l));
}

/** True when `l` has a token quota or a money budget. */
function hasQuotas(l: KeyLimits): boolean {
  return l.dailyTokens !== undefined || l.monthlyTokens !== undefined ||
    l.dailyMicroUsd !== undefined || l.monthlyMicroUsd !== undefined;
}

function cloneHeld(h: Held): Held {
  const windows: Record<string, Amount> = {};
  for (const w in h.windows) {
    windows[w] = { tokens: h.windows[w].tokens, microUsd: h.windows[w].microUsd };
  }
  return { concurrent: h.concurrent, windows, until: h.until, commit: h.commit };
}

function cloneState(s: LimitState): LimitState {
  const use = new Map<string, Use>();
  for (const [k, v] of s.use) {
    use.set(k, { requests: v.requests, tokens: v.tokens, microUsd: v.microUsd });
  }
  const held = new Map<string, Held>();
  for (const [k, v] of s.held) held.set(k, cloneHeld(v));
  return { use, held };
}

/** True when two holdings hold the same (their refresh times and commit ids aside). */
function sameHolding(a: Held, b: Held): boolean {
  if (a.concurrent !== b.concurrent) return false;
  let n = 0;
  for (const w in a.windows) {
    const x = a.windows[w], y = b.windows[w];
    if (!y || x.tokens !== y.tokens || x.microUsd !== y.microUsd) return false;
    n++;
  }
  for (const _ in b.windows) n--;
  return n === 0;
}

/** Two settlements over the same windows, as one (their sums). */
function mergeInto(a: SettleOp, b: SettleOp): boolean {
  const wa = Object.keys(a.reservation.windows), wb = Object.keys(b.reservation.windows);
  if (wa.length !== wb.length || wa.some((id) => !(id in b.reservation.windows))) return false;
  const r = a.reservation;
  r.concurrent += b.reservation.concurrent;
  r.microUsd += b.reservation.microUsd;
  for (const id of wa) {
    r.windows[id] = {
      tokens: r.windows[id].tokens + b.reservation.windows[id].tokens,
      microUsd: r.windows[id].microUsd + b.reservation.windows[id].microUsd,
    };
  }
  a.used = { tokens: a.used.tokens + b.used.tokens, microUsd: a.used.microUsd + b.used.microUsd };
  a.done.push(...b.done);
  return true;
}

/** A settlement that gives a reservation back unused (an admission nobody will settle). */
function release(r: Reservation): SettleOp {
  return { kind: "settle", reservation: r, used: { tokens: 0, microUsd: 0 }, done: [] };
}

interface Known {
  state: LimitState;
  gate: Deno.KvEntryMaybe<number>;
  readAt: number;
  /** Windows seeded from the usage store, not yet written to KV. */
  seeded: Set<string>;
}

/** An admission's answer, with the reservation it made (when admitted). */
type Result = [AdmitOp, Admitted, Reservation | undefined];

/** A commit whose outcome is not known yet, and what hangs on it. */
interface Doubt {
  done: Promise<Settled<Deno.KvCommitResult | Deno.KvCommitError>>;
  /** The id the commit wrote into this process's held entry. */
  nonce: string;
  /** This process's holdings if it landed. */
  mine: Held;
  /** Settlements and refreshes it carried. */
  ops: Op[];
  /** Reservations it made for admissions that were answered without it. */
  reservations: Reservation[];
}

/** One key's queue of operations, decided and committed together. */
class Gate {
  #queue: Op[] = [];
  #running?: Promise<void>;
  #busy = false;
  #settleTimer?: ReturnType<typeof setTimeout>;
  /** True when queued settlements are to be committed without waiting for an admission. */
  #settleDue = false;
  #known?: Known;
  #reading?: { windows: string; done: Promise<Settled<Known>> };
  #doubt?: Doubt;
  /** What this process holds for the key (as last committed). */
  held: Held = { concurrent: 0, windows: {} };

  constructor(readonly keyId: string, readonly store: LimitStore) {}

  push(op: Op): void {
    if (op.kind === "refresh" && this.#queue.some((o) => o.kind === "refresh")) return;
    // Settlements queued while KV is away stay one per set of windows, however many arrive.
    const merged = op.kind === "settle" &&
      this.#queue.some((o) => o.kind === "settle" && mergeInto(o, op));
    if (!merged) this.#queue.push(op);
    if (op.kind === "settle") this.#defer();
    else this.#start();
  }

  /** Commits what is queued now (or once the commit in progress is done). */
  #start(): void {
    clearTimeout(this.#settleTimer);
    this.#settleTimer = undefined;
    if (!this.#busy) {
      this.#busy = true;
      this.#running = this.#drain();
    }
  }

  /** Leaves queued settlements for the next admission, or for {@link SETTLE_WAIT_MS}. */
  #defer(): void {
    if (this.#busy || this.#settleTimer !== undefined || this.store.stopped) return;
    this.#settleTimer = setTimeout(() => {
      this.#settleDue = true;
      this.#start();
    }, SETTLE_WAIT_MS);
  }

  /** True while the queue holds something other than settlements, or settlements are due. */
  #due(): boolean {
    if (this.#settleDue) return true;
    for (const op of this.#queue) if (op.kind !== "settle") return true;
    return false;
  }

  get idle(): boolean {
    return this.#queue.length === 0 && !this.#busy && !this.#doubt && holdsNothing(this.held);
  }

  /** Settlements not yet written (for a stop that cannot wait for KV). */
  get unsettled(): number {
    const n = (ops: Op[]) => ops.filter((o) => o.kind === "settle").length;
    return n(this.#queue) + n(this.#doubt?.ops ?? []);
  }

  /** Resolves once the queue is empty (deferred settlements are committed now), or the store stopped. */
  async drained(): Promise<void> {
    while ((this.#busy || this.#queue.length > 0 || this.#doubt) && !this.store.stopped) {
      this.#settleDue = true;
      this.#start();
      await this.#running;
    }
  }

  async #drain(): Promise<void> {
    let failures = 0;
    try {
      while (
        (this.#doubt || (this.#queue.length > 0 && this.#due())) && !this.store.stopped
      ) {
        let ops: Op[] = [];
        try {
          if (this.#doubt) await this.#resolveDoubt();
          ops = this.#queue.splice(0).filter((o) => o.kind !== "admit" || !o.answered());
          this.#settleDue = false;
          if (ops.length > 0) await this.#apply(ops);
          failures = 0;
        } catch (e) {
          // Admissions get the fallback; settlements and refreshes wait and are retried.
          const why = new LimitsUnavailable((e as Error).message);
          for (const op of ops) if (op.kind === "admit") op.answer(why);
          const carried = new Set(this.#doubt?.ops ?? []);
          const keep = ops.filter((op) => op.kind !== "admit" && !carried.has(op));
          this.#queue.unshift(...keep);
          this.#known = undefined;
          this.store.failed(e);
          if (this.#queue.length === 0 && !this.#doubt) continue;
          this.#settleDue = true; // the failed settlements are retried, not deferred again
          await this.store.pause(Math.min(5_000, 50 * 2 ** failures++));
        }
      }
    } finally {
      // Cleared in the turn the queue was found empty (no await between): a later push starts anew.
      this.#busy = false;
      if (this.#queue.length > 0) this.#defer(); // settlements that came during the last commit
    }
  }

  /**
   * Settles the last commit whose outcome was unknown: waits for that very
   * commit (never a second one beside it), or, when it threw, reads whether
   * this process's entry carries its id.
   */
  async #resolveDoubt(): Promise<void> {
    const d = this.#doubt!;
    const store = this.store;
    const r = await withTimeout(d.done, store.timeoutMs, "a limits commit");
    let landed: boolean;
    if (r.ok) landed = r.value.ok;
    else {
      const e = await withTimeout(
        whileBusy(() => store.kv.get<Held>([...heldPrefix(this.keyId), store.processId])),
        store.timeoutMs,
        "a limits read",
      );
      landed = e.value?.commit === d.nonce;
    }
    this.#doubt = undefined;
    this.#known = undefined;
    if (r.ok) store.answered();
    if (!landed) {
      this.#queue.unshift(...d.ops);
      return;
    }
    this.held = d.mine;
    for (const o of d.ops) if (o.kind === "settle") o.done.forEach((f) => f());
    this.#queue.unshift(...d.reservations.map(release));
  }

  /** The key's state from KV; a read still under way from an earlier round is waited for, not repeated. */
  async #read(list: ToRead[], now: number): Promise<Known> {
    const windows = list.map((x) => x.win.id).sort().join();
    const store = this.store;
    if (this.#reading?.windows !== windows) {
      // A read for other windows may still hang; it is dropped (reads change nothing).
      this.#reading = {
        windows,
        done: settled(whileBusy(() => readState(store, this.keyId, list, now))),
      };
    }
    const r = await withTimeout(this.#reading.done, store.timeoutMs, "a limits read");
    this.#reading = undefined;
    if (!r.ok) throw r.error;
    return r.value;
  }

  async #apply(ops: Op[]): Promise<void> {
    const store = this.store;
    const pid = store.processId;
    const admits = ops.filter((o) => o.kind === "admit");
    /** A commit refused by the gate's check that may have been our own, sent twice by a remote KV's client. */
    let lost: { nonce: string; mine: Held; results: Result[] } | undefined;
    for (;;) {
      const now = store.clock.now();
      const w = store.windows3(now);
      // Windows the admissions count in, and those settlements commit to (if still current).
      const reads = new Map<string, ToRead>();
      for (const a of admits) for (const x of windowsOf(a.limits, w)) reads.set(x.win.id, x);
      const current: ToRead[] = [
        { win: w.minute },
        { win: w.day, seed: "day" },
        { win: w.month, seed: "month" },
      ];
      for (const o of ops) {
        if (o.kind !== "settle") continue;
        for (const x of current) if (x.win.id in o.reservation.windows) reads.set(x.win.id, x);
      }
      const needed = [...reads.keys()];
      let known = this.#known;
      let fresh = false;
      if (
        !known || now - known.readAt > REREAD_MS || needed.some((id) => !known!.state.use.has(id))
      ) {
        fresh = true;
        known = await this.#read([...reads.values()], now);
      }
      if (lost && known.state.held.get(pid)?.commit === lost.nonce) {
        // It was: the entry names it. Done, without deciding (and settling) a second time.
        this.held = lost.mine;
        this.#known = undefined;
        store.answered();
        this.#deliver(lost.results);
        for (const o of ops) if (o.kind === "settle") o.done.forEach((f) => f());
        return;
      }
      lost = undefined;
      const state = cloneState(known.state);
      // Holdings of a process that stopped refreshing them are given back.
      for (const [id, h] of state.held) {
        if (h.until !== undefined && h.until < now) state.held.delete(id);
      }
      // Our own holdings are what we last committed, whatever a stale read says.
      state.held.set(pid, cloneHeld(this.held));
      const before = known.state.use; // `state` is a copy: this stays as read
      const results: Result[] = [];
      for (const op of ops) {
        if (op.kind === "settle") settleInto(state, pid, op.reservation, op.used);
      }
      for (const op of admits) {
        const over = exceeded(op.limits, state, w, op.claim);
        if (over) {
          const r = {
            ok: false as const,
            exceeded: over,
            standings: standings(op.limits, state, w),
          };
          results.push([op, r, undefined]);
          continue;
        }
        const res = admitInto(state, pid, op.limits, w, op.claim);
        results.push([op, {
          ok: true,
          ticket: this.#ticket(res),
          standings: standings(op.limits, state, w),
        }, res]);
      }
      if (!fresh && results.some(([, r]) => !r.ok)) {
        // A cached state can only over-count (others may have settled since): refuse on a fresh read.
        this.#known = undefined;
        continue;
      }
      const mine = state.held.get(pid)!;
      const changedUse = [...state.use].filter(([id, u]) => {
        const b = before.get(id);
        return !b || b.requests !== u.requests || b.tokens !== u.tokens ||
          b.microUsd !== u.microUsd || known!.seeded.has(id);
      });
      const heldChanged = !sameHolding(mine, this.held) || ops.some((o) => o.kind === "refresh");
      if (changedUse.length === 0 && !heldChanged) {
        this.#deliver(results);
        for (const o of ops) if (o.kind === "settle") o.done.forEach((f) => f());
        return;
      }
      const gateValue = (known.gate.value ?? 0) + 1;
      const nonce = newId();
      mine.until = now + store.heldTtlMs;
      mine.commit = nonce;
      // Step by step, not chained: a wrapped AtomicOperation may return its target.
      const op = store.kv.atomic();
      op.check({ key: gateKey(this.keyId), versionstamp: known.gate.versionstamp });
      op.set(gateKey(this.keyId), gateValue);
      for (const [id, u] of changedUse) {
        op.set(useKey(this.keyId, id), u, { expireIn: store.useTtl(id, w, now) });
      }
      // Always written (also when holding nothing): it names this commit. KV drops it a day after it lapses.
      op.set([...heldPrefix(this.keyId), pid], mine, { expireIn: store.heldTtlMs + DAY });
      const done = settled(whileBusy(() => op.commit()));
      let outcome: Settled<Deno.KvCommitResult | Deno.KvCommitError>;
      try {
        outcome = await withTimeout(done, store.timeoutMs, "a limits commit");
      } catch (e) {
        outcome = { ok: false, error: e };
      }
      if (!outcome.ok) {
        // Landed or not, nobody can say yet: the next round finds out before anything else.
        this.#doubt = {
          done,
          nonce,
          mine: cloneHeld(mine),
          ops: ops.filter((o) => o.kind !== "admit"),
          reservations: results.flatMap(([, , r]) => r ? [r] : []),
        };
        throw outcome.error;
      }
      store.answered();
      if (!outcome.value.ok) {
        // Another process changed the key (or our own commit landed on a first send): read and see.
        this.#known = undefined;
        lost = { nonce, mine: cloneHeld(mine), results };
        continue;
      }
      this.held = cloneHeld(mine);
      this.#known = {
        state,
        gate: {
          key: gateKey(this.keyId),
          value: gateValue,
          versionstamp: outcome.value.versionstamp,
        },
        readAt: known.readAt,
        seeded: new Set(),
      };
      this.#deliver(results);
      for (const o of ops) if (o.kind === "settle") o.done.forEach((f) => f());
      return;
    }
  }

  /** Answers admissions; one that timed out meanwhile gives its reservation back. */
  #deliver(results: Result[]): void {
    for (const [o, r, res] of results) {
      if (!o.answer(r) && res) this.#queue.push(release(res));
    }
  }

  #ticket(r: Reservation): Ticket {
    let done = false;
    return {
      settle: (used) => {
        if (done) return Promise.resolve();
        done = true;
        return new Promise((resolve) =>
          this.push({
            kind: "settle",
            reservation: r,
            used: { tokens: used.tokens, microUsd: used.microUsd ?? r.microUsd },
            done: [resolve],
          })
        );
      },
    };
  }
}

/** Per-key limits on one KV, for one process. */
export class LimitStore {
  readonly kv: Deno.Kv;
  readonly clock: Clock;
  readonly processId: string;
  readonly seed: Seed;
  /** How long this process's holdings stay valid without a refresh. */
  readonly heldTtlMs: number;
  /** Longest a KV read or commit is waited for. */
  readonly timeoutMs: number;
  #onDown: (e: unknown) => void;
  #onUp: (downMs: number) => void;
  #windows: Windows;
  #gates = new Map<string, Gate>();
  #local = new LocalLimits();
  #timer: ReturnType<typeof setInterval>;
  #down?: { since: number; error: string };
  #lastProbe = -Infinity;
  #stopped = false;
  /** Pauses between retries, cut short by a stop. */
  #pauses = new Set<() => void>();

  constructor(
    kv: Deno.Kv,
    clock: Clock,
    windows: Windows,
    o: {
      processId: string;
      seed: Seed;
      heldTtlMs?: number;
      timeoutMs?: number;
      /** KV stopped answering (the first failure of a run of them). */
      onDown?: (e: unknown) => void;
      /** KV answers again, after `downMs`. */
      onUp?: (downMs: number) => void;
    },
  ) {
    this.kv = kv;
    this.clock = clock;
    this.#windows = windows;
    this.processId = o.processId;
    this.seed = o.seed;
    this.heldTtlMs = o.heldTtlMs ?? HELD_TTL_MS;
    this.timeoutMs = o.timeoutMs ?? 5_000;
    this.#onDown = o.onDown ?? (() => {});
    this.#onUp = o.onUp ?? (() => {});
    this.#timer = setInterval(() => this.#refresh(), this.heldTtlMs / 3);
    Deno.unrefTimer(this.#timer);
  }

  /** The windows instant `now` falls in. */
  windows3(now: number): Windows3 {
    return {
      minute: this.#windows.minute(now),
      day: this.#windows.day(now),
      month: this.#windows.month(now),
    };
  }

  /** How long a window's use entry is kept: a day past its end. */
  useTtl(id: string, w: Windows3, now: number): number {
    const end = id === w.minute.id
      ? w.minute.resetsAt
      : id === w.day.id
      ? w.day.resetsAt
      : id === w.month.id
      ? w.month.resetsAt
      : now;
    return Math.max(60_000, end - now + DAY);
  }

  /** Since when (epoch ms) KV has been failing the limit store, and why; undefined while it answers. */
  get unavailable(): { since: number; error: string } | undefined {
    return this.#down && { ...this.#down };
  }

  /** True once {@link close} gave up waiting for KV. */
  get stopped(): boolean {
    return this.#stopped;
  }

  /** Resolves after `ms`, or at once when the store stops. */
  pause(ms: number): Promise<void> {
    if (this.#stopped) return Promise.resolve();
    return new Promise((resolve) => {
      const end = () => {
        clearTimeout(timer);
        this.#pauses.delete(end);
        resolve();
      };
      const timer = setTimeout(end, ms);
      this.#pauses.add(end);
    });
  }

  /** A KV operation failed. */
  failed(e: unknown): void {
    const error = e instanceof Error ? e.message : String(e);
    if (this.#down) {
      this.#down.error = error;
      return;
    }
    this.#down = { since: this.clock.now(), error };
    this.#lastProbe = performance.now();
    this.#onDown(e);
  }

  /** A KV write was answered. */
  answered(): void {
    if (!this.#down) return;
    const since = this.#down.since;
    this.#down = undefined;
    this.#onUp(this.clock.now() - since);
  }

  #gate(keyId: string): Gate {
    let g = this.#gates.get(keyId);
    if (!g) {
      if (this.#gates.size >= MAX_GATES) {
        for (const [id, x] of this.#gates) if (x.idle) this.#gates.delete(id);
      }
      g = new Gate(keyId, this);
      this.#gates.set(keyId, g);
    }
    return g;
  }

  /**
   * Admits a request's claim against the key's limits, or says which limit
   * it would exceed. Rejects with {@link LimitsUnavailable} when KV fails or
   * does not answer within the timeout, and at once while KV is known to
   * fail (one admission a second goes through to find out whether it is back).
   */
  admit(keyId: string, limits: KeyLimits, claim: Claim): Promise<Admitted> {
    if (this.#down) {
      const t = performance.now();
      if (t - this.#lastProbe < PROBE_MS) {
        return Promise.reject(new LimitsUnavailable(this.#down.error));
      }
      this.#lastProbe = t;
    }
    return new Promise((resolve, reject) => {
      let answered = false;
      const answer = (r: Admitted | Error) => {
        if (answered) return false;
        answered = true;
        clearTimeout(timer);
        if (r instanceof Error) reject(r);
        else resolve(r);
        return true;
      };
      const timer = setTimeout(() => {
        const e = new KvTimeout("a limits check", this.timeoutMs);
        if (answer(new LimitsUnavailable(e.message))) this.failed(e);
      }, this.timeoutMs);
      this.#gate(keyId).push({
        kind: "admit",
        limits,
        claim,
        answer,
        answered: () => answered,
      });
    });
  }

  /**
   * Decides an admission without KV, by `policy`: a key with a quota or
   * budget is refused when quotas fail closed; one with a rate limit is
   * refused when rate limits fail closed, or counted by this process alone
   * when they are `local`. What the request uses is still settled into KV's
   * windows once KV answers, so quotas count it afterwards.
   */
  admitOffline(
    keyId: string,
    limits: KeyLimits,
    claim: Claim,
    policy: KvFailurePolicy,
  ): OfflineAdmitted {
    const rate = hasRateLimits(limits);
    if (hasQuotas(limits) && policy.quota === "closed") return { closed: "quota" };
    if (rate && policy.rate === "closed") return { closed: "rate" };
    const now = this.clock.now();
    const w = this.windows3(now);
    let local: Reservation | undefined;
    let found: Standing[] = [];
    if (rate && policy.rate === "local") {
      const d = this.#local.admit(keyId, limits, w, claim);
      if (!d.ok) {
        return { ok: false, exceeded: d.exceeded, standings: d.standings, policy: "local" };
      }
      local = d.reservation;
      found = d.standings;
    }
    // The windows the request's use belongs in, holding nothing: settling adds what it used.
    const windows: Record<string, Amount> = {};
    for (const win of reservationWindows(limits, w)) windows[win.id] = { tokens: 0, microUsd: 0 };
    let done = false;
    const ticket: Ticket = {
      settle: (used) => {
        if (done) return Promise.resolve();
        done = true;
        const amount = { tokens: used.tokens, microUsd: used.microUsd ?? claim.microUsd };
        if (local) this.#local.settle(keyId, local, amount);
        if (Object.keys(windows).length === 0) return Promise.resolve();
        return new Promise((resolve) =>
          this.#gate(keyId).push({
            kind: "settle",
            reservation: { concurrent: 0, windows, microUsd: claim.microUsd },
            used: amount,
            done: [resolve],
          })
        );
      },
    };
    return { ok: true, ticket, standings: found, policy: local ? "local" : "open" };
  }

  /** Every limit of a key with what is committed and held against it now (read from KV). */
  async standings(keyId: string, limits: KeyLimits): Promise<Standing[]> {
    const now = this.clock.now();
    const w = this.windows3(now);
    const known = await withTimeout(
      readState(this, keyId, windowsOf(limits, w), now),
      this.timeoutMs,
      "a limits read",
    );
    return standings(limits, known.state, w);
  }

  #refresh(): void {
    for (const g of this.#gates.values()) {
      if (!holdsNothing(g.held)) g.push({ kind: "refresh" });
    }
  }

  /**
   * Waits for every pending settlement, then stops refreshing. While KV
   * fails it waits at most twice the KV timeout and resolves with the
   * number of settlements left unwritten (their reservations lapse after
   * `LIMIT_HOLD_MS`; their usage is in the usage store).
   */
  async close(): Promise<number> {
    clearInterval(this.#timer);
    const all = Promise.all([...this.#gates.values()].map((g) => g.drained()));
    let timer: ReturnType<typeof setTimeout> | undefined;
    const late = new Promise<"late">((r) =>
      timer = setTimeout(() => r("late"), 2 * this.timeoutMs)
    );
    const r = await Promise.race([all, late]);
    clearTimeout(timer);
    if (r !== "late") return 0;
    this.#stopped = true;
    for (const end of [...this.#pauses]) end();
    return [...this.#gates.values()].reduce((n, g) => n + g.unsettled, 0);
  }
}

/**
 * A key's limit state as stored now: its gate, the use of the windows its
 * limits count in (a day or month window not yet written is seeded with the
 * use already recorded in it), and every process's holdings.
 */
async function readState(
  store: LimitStore,
  keyId: string,
  list: ToRead[],
  now: number,
): Promise<Known> {
  const [gate, ...uses] = await store.kv.getMany<[number, ...Use[]]>([
    gateKey(keyId),
    ...list.map((x) => useKey(keyId, x.win.id)),
  ]);
  const state: LimitState = { use: new Map(), held: new Map() };
  const seeded = new Set<string>();
  for (const [i, x] of list.entries()) {
    const v = (uses[i] as Deno.KvEntryMaybe<Use>).value;
    if (v) state.use.set(x.win.id, { ...v });
    else if (x.seed) {
      // A limit set mid-window counts the window's use so far.
      state.use.set(x.win.id, { requests: 0, ...await store.seed(keyId, x.seed, now) });
      seeded.add(x.win.id);
    } else state.use.set(x.win.id, { requests: 0, tokens: 0, microUsd: 0 });
  }
  for await (const e of store.kv.list<Held>({ prefix: heldPrefix(keyId) })) {
    if (e.value.until === undefined || e.value.until >= now) {
      state.held.set(e.key[3] as string, e.value);
    }
  }
  return { state, gate: gate as Deno.KvEntryMaybe<number>, readAt: now, seeded };
}
