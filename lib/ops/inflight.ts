/**
 * Requests in flight, so that shutdown can wait for them, and end the
 * stragglers cleanly once the grace period is over.
 */

/** Something in flight that can be ended early. */
export interface Active {
  /** Ends the request now (streams get a native error event); usage is still recorded. */
  abort(reason: string): void;
  /** True while the request is a stream being relayed. */
  streaming: boolean;
}

/** The set of requests in flight. */
export class Inflight {
  #active = new Set<Active>();
  #waiters: (() => void)[] = [];

  /** Registers a request; call the returned function once it has been fully recorded. */
  add(a: Active): () => void {
    this.#active.add(a);
    return () => {
      if (!this.#active.delete(a)) return;
      if (this.#active.size === 0) { for (const w of this.#waiters.splice(0)) w(); }
    };
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
