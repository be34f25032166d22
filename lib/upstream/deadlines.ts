/**
 * Request timeouts on one shared ticker instead of a timer per request:
 * every in-flight attempt has a deadline (first byte, body, stream idle),
 * and a timer per request costs more than the rest of its bookkeeping. A
 * deadline fires within one tick (25 ms) after it passes.
 */

/** A registered deadline; pass it to {@link Deadlines.cancel}. */
export interface Deadline {
  at: number;
  fire: () => void;
}

/** A set of deadlines checked on a shared interval (running only while any are pending). */
export class Deadlines {
  #pending = new Set<Deadline>();
  #timer?: ReturnType<typeof setInterval>;
  readonly tickMs: number;

  constructor(tickMs = 25) {
    this.tickMs = tickMs;
  }

  /** Calls `fire` once `performance.now()` passes `at`. */
  add(at: number, fire: () => void): Deadline {
    const d = { at, fire };
    this.#pending.add(d);
    this.#timer ??= setInterval(() => this.#tick(), this.tickMs);
    return d;
  }

  /** Forgets a deadline (no-op when it already fired). The ticker stops at its next idle tick. */
  cancel(d: Deadline | undefined): void {
    if (d) this.#pending.delete(d);
  }

  #tick(): void {
    const now = performance.now();
    for (const d of this.#pending) {
      if (d.at > now) continue;
      this.#pending.delete(d);
      d.fire();
    }
    if (this.#pending.size === 0) this.#stop();
  }

  /** Stops the ticker; pending deadlines never fire. */
  close(): void {
    this.#pending.clear();
    this.#stop();
  }

  #stop(): void {
    clearInterval(this.#timer);
    this.#timer = undefined;
  }
}
