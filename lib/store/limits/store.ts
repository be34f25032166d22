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
 *   until when; KV deletes it later), so a process that dies gives its
 *   reservations and concurrency slots back by itself.
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
 */
import type { Clock } from "../../ops/clock.ts";
import { whileBusy } from "../kv_busy.ts";
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
  settleInto,
  type Standing,
  standings,
  type Use,
  type Windows3,
} from "./ledger.ts";
import type { Window, Windows } from "./windows.ts";

/** How long a process's holdings live without a refresh (by default). */
export const HELD_TTL_MS = 60_000;
/** Longest a key's state is decided on without reading KV. */
const REREAD_MS = 2_000;
/**
 * Longest a settlement waits for an admission to share its commit. A KV
 * commit costs about 200 µs of CPU (an fsync, WAL writes, locks), as much as
 * a whole JSON request: sequential requests of a key pay one commit each
 * instead of two (bench, gw-limits at c=1).
 */
export const SETTLE_WAIT_MS = 20;
/** Most keys whose gates a process keeps. */
const MAX_GATES = 10_000;
const DAY = 86_400_000;

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

/** Reads the use already recorded in a day or month window (for a limit set mid-window). */
export type Seed = (keyId: string, window: "day" | "month", now: number) => Promise<Amount>;

type Op =
  | {
    kind: "admit";
    limits: KeyLimits;
    claim: Claim;
    done: (r: Admitted | Error) => void;
  }
  | { kind: "settle"; reservation: Reservation; used: Amount; done: () => void }
  | { kind: "refresh" };

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

function cloneHeld(h: Held): Held {
  const windows: Record<string, Amount> = {};
  for (const w in h.windows) {
    windows[w] = { tokens: h.windows[w].tokens, microUsd: h.windows[w].microUsd };
  }
  return { concurrent: h.concurrent, windows, until: h.until };
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

/** True when two holdings hold the same (their refresh times aside). */
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

interface Known {
  state: LimitState;
  gate: Deno.KvEntryMaybe<number>;
  readAt: number;
  /** Windows seeded from the usage store, not yet written to KV. */
  seeded: Set<string>;
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
  /** What this process holds for the key (as last committed). */
  held: Held = { concurrent: 0, windows: {} };

  constructor(readonly keyId: string, readonly store: LimitStore) {}

  push(op: Op): void {
    this.#queue.push(op);
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
    if (this.#busy || this.#settleTimer !== undefined) return;
    this.#settleTimer = setTimeout(() => {
      this.#settleDue = true;
      this.#start();
    }, SETTLE_WAIT_MS);
  }

  get idle(): boolean {
    return this.#queue.length === 0 && !this.#busy && holdsNothing(this.held);
  }

  /** Resolves once the queue is empty (deferred settlements are committed now). */
  async drained(): Promise<void> {
    while (this.#busy || this.#queue.length > 0) {
      this.#settleDue = true;
      this.#start();
      await this.#running;
    }
  }

  /** True while the queue holds something other than settlements, or settlements are due. */
  #due(): boolean {
    if (this.#settleDue) return true;
    for (const op of this.#queue) if (op.kind !== "settle") return true;
    return false;
  }

  async #drain(): Promise<void> {
    let failures = 0;
    try {
      while (this.#queue.length > 0 && this.#due()) {
        const ops = this.#queue.splice(0);
        this.#settleDue = false;
        try {
          await this.#apply(ops);
          failures = 0;
        } catch (e) {
          // The store failed: admissions are answered with the error; settlements wait and retry.
          for (const op of ops) if (op.kind === "admit") op.done(e as Error);
          const keep = ops.filter((op) => op.kind !== "admit");
          this.#queue.unshift(...keep);
          this.#known = undefined;
          this.store.onError(e);
          if (keep.length === 0) continue;
          this.#settleDue = true; // the failed settlements are retried, not deferred again
          await new Promise((r) => setTimeout(r, Math.min(5_000, 50 * 2 ** failures++)));
        }
      }
    } finally {
      // Cleared in the turn the queue was found empty (no await between): a later push starts anew.
      this.#busy = false;
      if (this.#queue.length > 0) this.#defer(); // settlements that came during the last commit
    }
  }

  async #apply(ops: Op[]): Promise<void> {
    const store = this.store;
    const pid = store.processId;
    const admits = ops.filter((o) => o.kind === "admit");
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
        known = await whileBusy(() => readState(store, this.keyId, [...reads.values()], now));
      }
      const state = cloneState(known.state);
      // Holdings of a process that stopped refreshing them are given back.
      for (const [id, h] of state.held) {
        if (h.until !== undefined && h.until < now) state.held.delete(id);
      }
      // Our own holdings are what we last committed, whatever a stale read says.
      state.held.set(pid, cloneHeld(this.held));
      const before = known.state.use; // `state` is a copy: this stays as read
      const results: [Op & { kind: "admit" }, Admitted][] = [];
      const reservations: Reservation[] = [];
      for (const op of ops) {
        if (op.kind === "settle") settleInto(state, pid, op.reservation, op.used);
      }
      for (const op of admits) {
        const over = exceeded(op.limits, state, w, op.claim);
        if (over) {
          results.push([op, {
            ok: false,
            exceeded: over,
            standings: standings(op.limits, state, w),
          }]);
          continue;
        }
        const r = admitInto(state, pid, op.limits, w, op.claim);
        reservations.push(r);
        results.push([op, {
          ok: true,
          ticket: this.#ticket(r),
          standings: standings(op.limits, state, w),
        }]);
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
        for (const [o, r] of results) o.done(r);
        for (const o of ops) if (o.kind === "settle") o.done();
        return;
      }
      const gateValue = (known.gate.value ?? 0) + 1;
      const op = store.kv.atomic()
        .check({ key: gateKey(this.keyId), versionstamp: known.gate.versionstamp })
        .set(gateKey(this.keyId), gateValue);
      for (const [id, u] of changedUse) {
        op.set(useKey(this.keyId, id), u, { expireIn: store.useTtl(id, w, now) });
      }
      if (holdsNothing(mine)) op.delete([...heldPrefix(this.keyId), pid]);
      else {
        mine.until = now + store.heldTtlMs;
        op.set([...heldPrefix(this.keyId), pid], mine, { expireIn: store.heldTtlMs });
      }
      const res = await whileBusy(() => op.commit());
      if (!res.ok) {
        this.#known = undefined; // another process changed the key: read and decide again
        continue;
      }
      this.held = cloneHeld(mine);
      this.#known = {
        state,
        gate: { key: gateKey(this.keyId), value: gateValue, versionstamp: res.versionstamp },
        readAt: known.readAt,
        seeded: new Set(),
      };
      for (const [o, r] of results) o.done(r);
      for (const o of ops) if (o.kind === "settle") o.done();
      return;
    }
  }

  #ticket(r: Reservation): Ticket {
    let settled = false;
    return {
      settle: (used) => {
        if (settled) return Promise.resolve();
        settled = true;
        return new Promise((done) =>
          this.push({
            kind: "settle",
            reservation: r,
            used: { tokens: used.tokens, microUsd: used.microUsd ?? r.microUsd },
            done,
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
  readonly onError: (e: unknown) => void;
  /** How long this process's holdings stay valid without a refresh. */
  readonly heldTtlMs: number;
  #windows: Windows;
  #gates = new Map<string, Gate>();
  #timer: ReturnType<typeof setInterval>;

  constructor(
    kv: Deno.Kv,
    clock: Clock,
    windows: Windows,
    o: { processId: string; seed: Seed; onError?: (e: unknown) => void; heldTtlMs?: number },
  ) {
    this.kv = kv;
    this.clock = clock;
    this.#windows = windows;
    this.processId = o.processId;
    this.seed = o.seed;
    this.onError = o.onError ?? (() => {});
    this.heldTtlMs = o.heldTtlMs ?? HELD_TTL_MS;
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

  /** Admits a request's claim against the key's limits, or says which limit it would exceed. */
  admit(keyId: string, limits: KeyLimits, claim: Claim): Promise<Admitted> {
    return new Promise((resolve, reject) => {
      this.#gate(keyId).push({
        kind: "admit",
        limits,
        claim,
        done: (r) => r instanceof Error ? reject(r) : resolve(r),
      });
    });
  }

  /** Every limit of a key with what is committed and held against it now (read from KV). */
  async standings(keyId: string, limits: KeyLimits): Promise<Standing[]> {
    const now = this.clock.now();
    const w = this.windows3(now);
    return standings(limits, (await readState(this, keyId, windowsOf(limits, w), now)).state, w);
  }

  #refresh(): void {
    for (const g of this.#gates.values()) {
      if (!holdsNothing(g.held)) g.push({ kind: "refresh" });
    }
  }

  /** Waits for every pending settlement, then stops refreshing. */
  async close(): Promise<void> {
    clearInterval(this.#timer);
    await Promise.all([...this.#gates.values()].map((g) => g.drained()));
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
