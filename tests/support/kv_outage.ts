/**
 * A Deno KV that goes down on command: while an outage is on, every write
 * (atomic commits, `set`, `delete`) fails, and reads too when asked. A
 * failing commit fails the way a remote KV can:
 *
 * - `throw`: nothing is written and the commit throws;
 * - `applied`: the commit is written, then the answer is lost (it throws),
 *   as when a connection drops after the server committed;
 * - `hang`: the commit waits until the outage ends and is written then, as
 *   KV Connect's client does while it retries on its own;
 * - `twice`: the commit is written, its answer lost, and sent again by the
 *   client (KV Connect's client resends after a network error or a 5xx):
 *   the caller sees the second send's result.
 */

/** How the n-th failing commit (from 0) of an outage fails. */
export type FailMode = "throw" | "applied" | "hang" | "twice";

/** What the wrapper did. */
export interface OutageStats {
  /** Commits that threw without being written. */
  thrown: number;
  /** Commits written whose answer was then lost. */
  appliedThenThrown: number;
  /** Commits held until the outage ended, then written. */
  hung: number;
  /** Commits written, then sent again. */
  resent: number;
  /** Reads that failed. */
  failedReads: number;
}

/** A KV with an outage switch. */
export interface OutageKv {
  kv: Deno.Kv;
  stats: OutageStats;
  /** Starts an outage: writes fail (by `mode`), and reads when `reads` is set. */
  start(o?: { mode?: (n: number) => FailMode; reads?: boolean }): void;
  /** Ends it; commits held by `hang` are written now. */
  end(): void;
  readonly down: boolean;
}

/** Wraps `kv` (the caller closes it). */
export function outageKv(kv: Deno.Kv): OutageKv {
  let down = false;
  let reads = false;
  let mode: (n: number) => FailMode = () => "throw";
  let failing = 0;
  let release: () => void = () => {};
  let ended = Promise.resolve();
  const stats: OutageStats = {
    thrown: 0,
    appliedThenThrown: 0,
    hung: 0,
    resent: 0,
    failedReads: 0,
  };
  const unavailable = () => new Error("KV unavailable (simulated outage)");

  const commitThrough = async (commit: () => Promise<Deno.KvCommitResult | Deno.KvCommitError>) => {
    if (!down) return await commit();
    const how = mode(failing++);
    if (how === "throw") {
      stats.thrown++;
      throw unavailable();
    }
    if (how === "applied") {
      await commit();
      stats.appliedThenThrown++;
      throw new Error("connection reset after the commit (simulated outage)");
    }
    if (how === "twice") {
      await commit();
      stats.resent++;
      return await commit();
    }
    stats.hung++;
    await ended;
    return await commit();
  };

  const atomic = () => {
    const op = kv.atomic();
    const wrapped: Deno.AtomicOperation = new Proxy(op, {
      get(target, prop) {
        if (prop === "commit") return () => commitThrough(() => target.commit());
        const v = Reflect.get(target, prop, target);
        return typeof v === "function"
          ? (...args: unknown[]) => {
            const r = v.apply(target, args);
            return r === target ? wrapped : r;
          }
          : v;
      },
    });
    return wrapped;
  };

  const readGuard = () => {
    if (down && reads) {
      stats.failedReads++;
      throw unavailable();
    }
  };

  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") return atomic;
      if (prop === "set" || prop === "delete") {
        return (...args: unknown[]) =>
          commitThrough(() =>
            (Reflect.get(target, prop) as (...a: unknown[]) => Promise<Deno.KvCommitResult>).apply(
              target,
              args,
            )
          );
      }
      if (prop === "get" || prop === "getMany") {
        return async (...args: unknown[]) => {
          readGuard();
          return await (Reflect.get(target, prop) as (...a: unknown[]) => Promise<unknown>).apply(
            target,
            args,
          );
        };
      }
      if (prop === "list") {
        return (...args: unknown[]) => {
          const it = (target.list as (...a: unknown[]) => Deno.KvListIterator<unknown>).apply(
            target,
            args,
          );
          return {
            async next() {
              readGuard();
              return await it.next();
            },
            [Symbol.asyncIterator]() {
              return this;
            },
            get cursor() {
              return it.cursor;
            },
          };
        };
      }
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });

  return {
    kv: proxy,
    stats,
    start(o = {}) {
      down = true;
      reads = o.reads ?? false;
      mode = o.mode ?? (() => "throw");
      failing = 0;
      ended = new Promise((r) => release = r);
    },
    end() {
      down = false;
      release();
    },
    get down() {
      return down;
    },
  };
}
