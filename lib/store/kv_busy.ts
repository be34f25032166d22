/**
 * Deno KV on a local file is SQLite: when several processes (or handles)
 * write at once, a commit can fail with "database is locked". That is
 * contention, not a bad write: it is retried, never treated like the
 * `TypeError`s KV raises for writes it will never accept.
 */

/** True for the transient "database is locked" family of KV errors. */
export function isKvBusy(e: unknown): boolean {
  return e instanceof Error &&
    /database (table )?is locked|database is busy|SQLITE_BUSY/i.test(e.message);
}

/** Runs `fn`, retrying with jittered backoff while KV reports itself busy (up to ~5 s). */
export async function whileBusy<T>(fn: () => Promise<T>): Promise<T> {
  for (let attempt = 0;; attempt++) {
    try {
      return await fn();
    } catch (e) {
      if (!isKvBusy(e) || attempt >= 40) throw e;
      const cap = Math.min(250, 2 ** attempt);
      await new Promise((r) => setTimeout(r, cap / 2 + Math.random() * cap / 2));
    }
  }
}
