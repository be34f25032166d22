/**
 * Upstream health per provider: a circuit breaker (closed, open, half-open)
 * plus the figures `GET /admin/models` shows (last success, recent error,
 * latency). Lives in the context, keyed by provider id, across reloads.
 */
import type { Policy } from "../config/policy.ts";

/** Breaker states. */
export type BreakerState = "closed" | "open" | "half_open";

/** Whether an attempt may go to a provider now. */
export type Admission = "yes" | "probe" | "no";

const RECENT = 128;

/** Health and breaker of one provider. */
export class ProviderHealth {
  state: BreakerState = "closed";
  consecutiveFailures = 0;
  openUntil = 0;
  requests = 0;
  failures = 0;
  lastSuccessAt?: number;
  lastError?: { message: string; status?: number; at: number };
  /** Exponentially weighted mean time to response headers (ms). */
  latencyMs?: number;
  #probe = false;
  /** The last {@link RECENT} outcomes, a ring: time (ms) and whether it went well. */
  #recentAt = new Float64Array(RECENT);
  #recentOk = new Uint8Array(RECENT);
  #recentNext = 0;
  #recentSize = 0;

  /** May an attempt go out now? `probe` is the one trial request of a half-open breaker. */
  admit(now: number, policy: Policy): Admission {
    if (policy.breakerFailures === 0 && policy.breakerRate === 0) return "yes";
    if (this.state === "closed") return "yes";
    if (this.state === "open" && now >= this.openUntil) {
      this.state = "half_open";
      this.#probe = false;
    }
    if (this.state === "half_open" && !this.#probe) {
      this.#probe = true;
      return "probe";
    }
    return "no";
  }

  /** The provider answered (any status that is not its own failure). */
  success(now: number, latencyMs?: number): void {
    this.requests++;
    this.consecutiveFailures = 0;
    this.lastSuccessAt = now;
    this.state = "closed";
    this.#probe = false;
    this.#push(now, true);
    if (latencyMs !== undefined) {
      this.latencyMs = this.latencyMs === undefined
        ? latencyMs
        : this.latencyMs * 0.8 + latencyMs * 0.2;
    }
  }

  /** The provider failed (unreachable, timed out, 5xx/529, or broke a stream). */
  failure(now: number, policy: Policy, message: string, status?: number): void {
    this.requests++;
    this.failures++;
    this.consecutiveFailures++;
    this.lastError = { message, status, at: now };
    this.#push(now, false);
    const trip = this.state === "half_open" ||
      (policy.breakerFailures > 0 && this.consecutiveFailures >= policy.breakerFailures) ||
      this.#rateTripped(now, policy);
    if (trip) {
      this.state = "open";
      this.openUntil = now + policy.cooldownMs;
    }
    this.#probe = false;
  }

  /** A probe ended without a verdict (the client left): let another probe through. */
  release(): void {
    this.#probe = false;
  }

  #push(at: number, ok: boolean): void {
    this.#recentAt[this.#recentNext] = at;
    this.#recentOk[this.#recentNext] = ok ? 1 : 0;
    this.#recentNext = (this.#recentNext + 1) % RECENT;
    if (this.#recentSize < RECENT) this.#recentSize++;
  }

  #rateTripped(now: number, policy: Policy): boolean {
    if (policy.breakerRate <= 0) return false;
    let n = 0, bad = 0;
    for (let i = 0; i < this.#recentSize; i++) {
      if (now - this.#recentAt[i] > policy.breakerWindowMs) continue;
      n++;
      if (!this.#recentOk[i]) bad++;
    }
    return n >= policy.breakerMinRequests && bad / n >= policy.breakerRate;
  }

  /** A JSON view for the admin API. */
  view(now: number) {
    const iso = (ms?: number) => (ms ? new Date(ms).toISOString() : null);
    return {
      state: this.state === "open" && now >= this.openUntil ? "half_open" : this.state,
      consecutive_failures: this.consecutiveFailures,
      open_until: this.state === "open" ? iso(this.openUntil) : null,
      requests: this.requests,
      failures: this.failures,
      last_success: iso(this.lastSuccessAt),
      recent_error: this.lastError
        ? {
          message: this.lastError.message,
          status: this.lastError.status ?? null,
          at: iso(this.lastError.at),
        }
        : null,
      latency_ms: this.latencyMs !== undefined ? Math.round(this.latencyMs) : null,
    };
  }
}

/** Health of every provider, by id. */
export class HealthBook {
  #map = new Map<string, ProviderHealth>();

  /** The health record of a provider (created on first use). */
  get(id: string): ProviderHealth {
    let h = this.#map.get(id);
    if (!h) {
      h = new ProviderHealth();
      this.#map.set(id, h);
    }
    return h;
  }
}
