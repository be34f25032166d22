/**
 * The circuit breaker of one provider, on explicit instants (no waiting):
 * consecutive failures and a failure rate open it, an open breaker turns
 * attempts away until its cooldown ends, then lets exactly one probe through,
 * whose verdict closes or reopens it. What it shows on `GET /admin/models`
 * follows the same states.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { HealthBook, ProviderHealth } from "../lib/upstream/breaker.ts";
import { DEFAULT_POLICY, mergePolicy, type PolicyInput } from "../lib/config/policy.ts";

const T0 = Date.parse("2026-03-01T12:00:00Z");

/** The default policy with the given `breaker` fields (as `models.json` writes them). */
function policy(breaker: NonNullable<PolicyInput["breaker"]>) {
  return mergePolicy(DEFAULT_POLICY, { breaker });
}

/** Three consecutive failures open it for 30 s; the failure-rate rule is off. */
const CONSECUTIVE = policy({ failures: 3, failure_rate: 0, cooldown_ms: 30_000 });

/** Half or more of at least 4 outcomes within 60 s open it; the consecutive rule is off. */
const RATE = policy({
  failures: 0,
  failure_rate: 0.5,
  window_ms: 60_000,
  min_requests: 4,
  cooldown_ms: 30_000,
});

/** A provider whose breaker has just opened at T0 under {@link CONSECUTIVE}. */
function opened(): ProviderHealth {
  const h = new ProviderHealth();
  for (let i = 0; i < 3; i++) h.failure(T0, CONSECUTIVE, "boom", 500);
  assertEquals(h.admit(T0, CONSECUTIVE), "no");
  return h;
}

Deno.test("breaker: closed until N consecutive failures, then open and turning attempts away", () => {
  const h = new ProviderHealth();
  assertEquals(h.admit(T0, CONSECUTIVE), "yes");
  h.failure(T0, CONSECUTIVE, "boom", 500);
  h.failure(T0 + 1, CONSECUTIVE, "boom", 502);
  assertEquals(h.admit(T0 + 2, CONSECUTIVE), "yes", "two failures of three: still closed");
  assertEquals(h.view(T0 + 2).state, "closed");
  h.failure(T0 + 3, CONSECUTIVE, "unreachable");
  assertEquals(h.admit(T0 + 4, CONSECUTIVE), "no", "the third failure opens it");
  assertEquals(h.admit(T0 + 3 + 29_999, CONSECUTIVE), "no", "for the whole cooldown");
  const v = h.view(T0 + 4);
  assertEquals(v.state, "open");
  assertEquals(v.consecutive_failures, 3);
  assertEquals(v.open_until, new Date(T0 + 3 + 30_000).toISOString());
  assertEquals(v.requests, 3);
  assertEquals(v.failures, 3);
  assertEquals(v.recent_error, {
    message: "unreachable",
    status: null,
    at: new Date(T0 + 3).toISOString(),
  });
});

Deno.test("breaker: a success in between resets the consecutive count", () => {
  const h = new ProviderHealth();
  h.failure(T0, CONSECUTIVE, "boom", 500);
  h.failure(T0, CONSECUTIVE, "boom", 500);
  h.success(T0);
  h.failure(T0, CONSECUTIVE, "boom", 500);
  h.failure(T0, CONSECUTIVE, "boom", 500);
  assertEquals(h.admit(T0, CONSECUTIVE), "yes");
  assertEquals(h.view(T0).consecutive_failures, 2);
  h.failure(T0, CONSECUTIVE, "boom", 500);
  assertEquals(h.admit(T0, CONSECUTIVE), "no");
});

Deno.test("breaker: the failure rate opens it once enough recent outcomes are bad", () => {
  const h = new ProviderHealth();
  // Three failures alone are below min_requests (4): no verdict yet.
  for (let i = 0; i < 3; i++) h.failure(T0 + i, RATE, "boom", 503);
  assertEquals(h.admit(T0 + 3, RATE), "yes", "below min_requests");
  // Outside the window they no longer count: 1 recent outcome of 1.
  h.failure(T0 + 70_000, RATE, "boom", 503);
  assertEquals(h.admit(T0 + 70_001, RATE), "yes", "old outcomes left the window");

  const r = new ProviderHealth();
  r.success(T0);
  r.failure(T0 + 1, RATE, "boom", 503);
  r.success(T0 + 2);
  assertEquals(r.admit(T0 + 3, RATE), "yes", "1 bad of 3");
  r.failure(T0 + 3, RATE, "boom", 503);
  assertEquals(r.admit(T0 + 4, RATE), "no", "2 bad of 4 = 50%: open");
  assertEquals(r.view(T0 + 4).consecutive_failures, 1, "opened by rate, not by a streak");
});

Deno.test("breaker: after the cooldown exactly one probe goes through; its success closes it", () => {
  const h = opened();
  const after = T0 + 30_000;
  assertEquals(h.view(after).state, "half_open", "shown half-open once the cooldown ended");
  assertEquals(h.admit(after, CONSECUTIVE), "probe");
  assertEquals(h.admit(after, CONSECUTIVE), "no", "a second request while the probe runs");
  assertEquals(h.admit(after + 5_000, CONSECUTIVE), "no");
  h.success(after + 6_000, 120);
  assertEquals(h.admit(after + 6_001, CONSECUTIVE), "yes");
  assertEquals(h.admit(after + 6_001, CONSECUTIVE), "yes", "closed: everyone goes");
  const v = h.view(after + 6_001);
  assertEquals(v.state, "closed");
  assertEquals(v.consecutive_failures, 0);
  assertEquals(v.open_until, null);
  assertEquals(v.last_success, new Date(after + 6_000).toISOString());
  assertEquals(v.latency_ms, 120);
});

Deno.test("breaker: a failed probe reopens it for a new cooldown", () => {
  const h = opened();
  const after = T0 + 30_000;
  assertEquals(h.admit(after, CONSECUTIVE), "probe");
  h.failure(after + 10, CONSECUTIVE, "still down", 529);
  assertEquals(h.admit(after + 11, CONSECUTIVE), "no", "one failed probe is enough");
  assertEquals(h.view(after + 11).open_until, new Date(after + 10 + 30_000).toISOString());
  assertEquals(h.admit(after + 10 + 29_999, CONSECUTIVE), "no");
  assertEquals(h.admit(after + 10 + 30_000, CONSECUTIVE), "probe");
});

Deno.test("breaker: a probe released without a verdict lets the next request probe", () => {
  const h = opened();
  const after = T0 + 30_000;
  assertEquals(h.admit(after, CONSECUTIVE), "probe");
  assertEquals(h.admit(after, CONSECUTIVE), "no");
  h.release(); // the client went away before the provider answered
  assertEquals(h.admit(after + 1, CONSECUTIVE), "probe");
  assertEquals(h.admit(after + 1, CONSECUTIVE), "no");
});

Deno.test("breaker: with both rules at 0 it never opens", () => {
  const off = policy({ failures: 0, failure_rate: 0 });
  const h = new ProviderHealth();
  for (let i = 0; i < 200; i++) h.failure(T0 + i, off, "boom", 500);
  assertEquals(h.admit(T0 + 200, off), "yes");
});

Deno.test("breaker: latency is a moving average of the time to response headers", () => {
  const h = new ProviderHealth();
  assertEquals(h.view(T0).latency_ms, null);
  h.success(T0, 100);
  h.success(T0, 200);
  assertEquals(h.view(T0).latency_ms, 120, "0.8 x 100 + 0.2 x 200");
  h.success(T0); // no timing (e.g. a probe without one): the average stays
  assertEquals(h.view(T0).latency_ms, 120);
});

Deno.test("breaker: one health record per provider, kept across lookups", () => {
  const book = new HealthBook();
  const a = book.get("a");
  a.failure(T0, CONSECUTIVE, "boom", 500);
  assert(book.get("a") === a);
  assertEquals(book.get("a").view(T0).failures, 1);
  assertEquals(book.get("b").view(T0).failures, 0, "providers do not share a breaker");
});
