/**
 * Waiting in tests: for a condition, never for a guessed fixed time, so a
 * loaded machine makes a test slower but not red.
 */

/** Resolves after `ms` (for pacing fakes, not for waiting on the gateway). */
export function delay(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

/** Polls `check` until it holds; fails naming `what` after `ms`. */
export async function waitFor(
  what: string,
  check: () => boolean | Promise<boolean>,
  ms = 10_000,
): Promise<void> {
  const end = Date.now() + ms;
  for (;;) {
    if (await check()) return;
    if (Date.now() >= end) throw new Error(`timed out waiting for: ${what}`);
    await delay(10);
  }
}
