/**
 * Requests in flight, so that shutdown can wait for them, and end the
 * stragglers cleanly once the grace period is over.
 */

/** One request in flight. */
export class Tracked {
  /** True while the request is a stream being relayed. */
  streaming = false;
  #controller?: AbortController;
  #done: (t: Tracked) => void;

  constructor(done: (t: Tracked) => void) {
    this.#done = done;
  }

  /** Aborts when shutdown ends the request early; `reason` says why. Made on first use. */
  get signal(): AbortSignal {
    return (this.#controller ??= new AbortController()).signal;
  }

  /** Ends the request now (streams get a native error event); usage is still recorded. */
  abort(reason: string): void {
    (this.#controller ??= new AbortController()).abort(reason);
  }

  /** Call once the request has been fully recorded. */
  done(): void {
    this.#done(this);
  }
}

/** The set of requests in flight. */
export class Inflight {
  #active = new Set<Tracked>();
  #waiters: (() => void)[] = [];

  /** Registers a request; call `done()` on the result once it has been fully recorded. */
  track(): Tracked {
    const t = new Tracked((t) => {
      if (!this.#active.delete(t)) return;
      if (this.#active.size === 0) { for (const w of this.#waiters.splice(0)) w(); }
    });
    this.#active.add(t);
    return t;
  }

  /** Requests in flight. */
  get size(): number {
    return this.#active.size;
  }

  /** Open streams. */
  get streams(): number {
    let n = 0;
    for (const a of this.#active) if (a.streaming) n++;
    return n;
  }

  /** Resolves true once nothing is in flight, or false after `timeoutMs`. */
  idle(timeoutMs: number): Promise<boolean> {
    if (this.#active.size === 0) return Promise.resolve(true);
    return new Promise((resolve) => {
      const w = () => {
        clearTimeout(timer);
        resolve(true);
      };
      const timer = setTimeout(() => {
        this.#waiters = this.#waiters.filter((x) => x !== w);
        resolve(false);
      }, timeoutMs);
      this.#waiters.push(w);
    });
  }

  /** Ends every request still in flight. */
  abortAll(reason: string): void {
    for (const a of [...this.#active]) a.abort(reason);
  }
}
