/**
 * Waiting on Deno KV for a bounded time. A remote KV (KV Connect) does not
 * fail while its server is unreachable: its client retries on its own, so a
 * read or commit can hang for as long as the outage lasts. The gateway stops
 * waiting after `KV_TIMEOUT_MS` and treats the operation as failed, knowing
 * that a commit it stopped waiting for may still be applied later.
 */

/** A KV operation that did not finish in time (it may still finish later). */
export class KvTimeout extends Error {
  constructor(what: string, ms: number) {
    super(`Deno KV did not answer ${what} within ${ms} ms`);
    this.name = "KvTimeout";
  }
}

/** `p`, or a {@link KvTimeout} rejection after `ms`; `p` itself goes on. */
export function withTimeout<T>(p: Promise<T>, ms: number, what: string): Promise<T> {
  let timer: ReturnType<typeof setTimeout> | undefined;
  const late = new Promise<never>((_, reject) => {
    timer = setTimeout(() => reject(new KvTimeout(what, ms)), ms);
  });
  return Promise.race([p, late]).finally(() => clearTimeout(timer));
}

/** How a promise ended, as a value (so it can be awaited again, and never rejects). */
export type Settled<T> = { ok: true; value: T } | { ok: false; error: unknown };

/** `p` as a promise that always resolves, with how it ended. */
export function settled<T>(p: Promise<T>): Promise<Settled<T>> {
  return p.then((value) => ({ ok: true, value }), (error) => ({ ok: false, error }));
}
