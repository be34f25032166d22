/**
 * The arithmetic of per-key limits, pure: a key's state as read from KV
 * (committed use per window, reservations held per process), requests
 * settling, and requests asking to be admitted. A request is admitted only
 * if its worst case fits beside everything committed and everything held;
 * settling replaces its reservation with what it really used.
 */
import type { KeyLimits } from "../keys.ts";
import type { Window } from "./windows.ts";

/** Committed use in one window. */
export interface Use {
  requests: number;
  tokens: number;
  microUsd: number;
}

/** Tokens and money held by reservations in one window. */
export interface Amount {
  tokens: number;
  microUsd: number;
}

/** What one process holds for a key: open requests and their reservations per window. */
export interface Held {
  concurrent: number;
  windows: Record<string, Amount>;
  /** Epoch ms after which the holdings count as given back (the process stopped refreshing). */
  until?: number;
  /** The id of the commit that wrote this entry: tells the process whether a commit it lost track of landed. */
  commit?: string;
}

/** A key's limit state: committed use of the windows in question, and every process's holdings. */
export interface LimitState {
  use: Map<string, Use>;
  held: Map<string, Held>;
}

/** What one request asks for, worst case. */
export interface Claim {
  /** Counts toward `rpm` (1) or not (0). */
  requests: number;
  /** Takes a concurrency slot (1) or not (0). */
  concurrent: number;
  tokens: number;
  microUsd: number;
}

/** The windows a request is counted in, at admission. */
export interface Windows3 {
  minute: Window;
  day: Window;
  month: Window;
}

/** A reservation: what an admitted request holds, in which windows, until it settles. */
export interface Reservation {
  concurrent: number;
  windows: Record<string, Amount>;
  /** The money part, used as the cost when the real cost is unknown. */
  microUsd: number;
}

/** Names of the limits, as the API shows them. */
export type LimitName =
  | "rpm"
  | "tpm"
  | "max_concurrent"
  | "daily_token_quota"
  | "monthly_token_quota"
  | "daily_budget_usd"
  | "monthly_budget_usd";

/** Why a request was not admitted. */
export interface Exceeded {
  limit: LimitName;
  /** The limit's value (money in micro-USD). */
  value: number;
  /** In use now (committed plus held), before this request. */
  used: number;
  /** What this request needed. */
  needed: number;
  /** When the window resets (epoch ms); undefined for concurrency. */
  resetsAt?: number;
}

/** One limit's standing. */
export interface Standing {
  limit: LimitName;
  value: number;
  used: number;
  reserved: number;
  resetsAt?: number;
}

const ZERO: Use = { requests: 0, tokens: 0, microUsd: 0 };

function heldIn(state: LimitState, windowId: string): Amount {
  const sum = { tokens: 0, microUsd: 0 };
  for (const h of state.held.values()) {
    const a = h.windows[windowId];
    if (a) {
      sum.tokens += a.tokens;
      sum.microUsd += a.microUsd;
    }
  }
  return sum;
}

function concurrentNow(state: LimitState): number {
  let n = 0;
  for (const h of state.held.values()) n += h.concurrent;
  return n;
}

/** Every limit the key has, with what is committed and held against it now. */
export function standings(limits: KeyLimits, state: LimitState, w: Windows3): Standing[] {
  const out: Standing[] = [];
  const use = (win: Window) => state.use.get(win.id) ?? ZERO;
  const add = (
    limit: LimitName,
    value: number | undefined,
    used: number,
    reserved: number,
    resetsAt?: number,
  ) => {
    if (value !== undefined) out.push({ limit, value, used, reserved, resetsAt });
  };
  const m = w.minute, d = w.day, mo = w.month;
  add("max_concurrent", limits.maxConcurrent, concurrentNow(state), 0);
  add("rpm", limits.rpm, use(m).requests, 0, m.resetsAt);
  add("tpm", limits.tpm, use(m).tokens, heldIn(state, m.id).tokens, m.resetsAt);
  add(
    "daily_token_quota",
    limits.dailyTokens,
    use(d).tokens,
    heldIn(state, d.id).tokens,
    d.resetsAt,
  );
  add(
    "monthly_token_quota",
    limits.monthlyTokens,
    use(mo).tokens,
    heldIn(state, mo.id).tokens,
    mo.resetsAt,
  );
  add(
    "daily_budget_usd",
    limits.dailyMicroUsd,
    use(d).microUsd,
    heldIn(state, d.id).microUsd,
    d.resetsAt,
  );
  add(
    "monthly_budget_usd",
    limits.monthlyMicroUsd,
    use(mo).microUsd,
    heldIn(state, mo.id).microUsd,
    mo.resetsAt,
  );
  return out;
}

/** What a claim needs of each limit. */
function needOf(limit: LimitName, c: Claim): number {
  switch (limit) {
    case "max_concurrent":
      return c.concurrent;
    case "rpm":
      return c.requests;
    case "tpm":
    case "daily_token_quota":
    case "monthly_token_quota":
      return c.tokens;
    default:
      return c.microUsd;
  }
}

/** The first limit the claim would exceed, or undefined when it fits them all. */
export function exceeded(
  limits: KeyLimits,
  state: LimitState,
  w: Windows3,
  claim: Claim,
): Exceeded | undefined {
  for (const s of standings(limits, state, w)) {
    const needed = needOf(s.limit, claim);
    if (needed > 0 && s.used + s.reserved + needed > s.value) {
      return {
        limit: s.limit,
        value: s.value,
        used: s.used + s.reserved,
        needed,
        resetsAt: s.resetsAt,
      };
    }
  }
  return undefined;
}

/** The windows a claim reserves in, by the limits the key has. */
export function reservationWindows(limits: KeyLimits, w: Windows3): Window[] {
  const out: Window[] = [];
  if (limits.tpm !== undefined) out.push(w.minute);
  if (limits.dailyTokens !== undefined || limits.dailyMicroUsd !== undefined) out.push(w.day);
  if (limits.monthlyTokens !== undefined || limits.monthlyMicroUsd !== undefined) {
    out.push(w.month);
  }
  return out;
}

function own(state: LimitState, processId: string): Held {
  let h = state.held.get(processId);
  if (!h) {
    h = { concurrent: 0, windows: {} };
    state.held.set(processId, h);
  }
  return h;
}

/** Admits a claim into `state` (mutated): counts its request, holds its reservation. */
export function admitInto(
  state: LimitState,
  processId: string,
  limits: KeyLimits,
  w: Windows3,
  claim: Claim,
): Reservation {
  if (limits.rpm !== undefined && claim.requests > 0) {
    const u = state.use.get(w.minute.id) ?? { ...ZERO };
    u.requests += claim.requests;
    state.use.set(w.minute.id, u);
  }
  const h = own(state, processId);
  const concurrent = limits.maxConcurrent !== undefined ? claim.concurrent : 0;
  h.concurrent += concurrent;
  const windows: Record<string, Amount> = {};
  for (const win of reservationWindows(limits, w)) {
    const amount = { tokens: claim.tokens, microUsd: claim.microUsd };
    if (amount.tokens === 0 && amount.microUsd === 0) continue;
    windows[win.id] = amount;
    const a = h.windows[win.id] ?? { tokens: 0, microUsd: 0 };
    a.tokens += amount.tokens;
    a.microUsd += amount.microUsd;
    h.windows[win.id] = a;
  }
  return { concurrent, windows, microUsd: claim.microUsd };
}

/**
 * Settles a reservation in `state` (mutated): its holdings go, and what the
 * request used is committed to the windows it was admitted in that are
 * still read (past windows no longer matter to anyone).
 */
export function settleInto(
  state: LimitState,
  processId: string,
  r: Reservation,
  used: Amount,
): void {
  const h = own(state, processId);
  h.concurrent = Math.max(0, h.concurrent - r.concurrent);
  for (const [id, a] of Object.entries(r.windows)) {
    const held = h.windows[id];
    if (held) {
      held.tokens = Math.max(0, held.tokens - a.tokens);
      held.microUsd = Math.max(0, held.microUsd - a.microUsd);
      if (held.tokens === 0 && held.microUsd === 0) delete h.windows[id];
    }
    const u = state.use.get(id);
    if (u) {
      u.tokens += used.tokens;
      u.microUsd += used.microUsd;
    }
  }
}

/** True when a process holds nothing. */
export function holdsNothing(h: Held | undefined): boolean {
  return !h || (h.concurrent === 0 && Object.keys(h.windows).length === 0);
}
