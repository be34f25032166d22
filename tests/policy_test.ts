/**
 * The retry policy: how long the gateway waits before another attempt
 * (exponential backoff with full jitter, capped, or exactly what the upstream
 * asked for in `retry-after-ms` / `Retry-After`), which upstream statuses are
 * worth another attempt, and how `models.json` overrides the defaults.
 */
import { assert, assertEquals } from "./support/assert.ts";
import {
  DEFAULT_POLICY,
  mergePolicy,
  PolicySchema,
  RETRYABLE_STATUS,
  retryAfterMs,
  retryDelay,
} from "../lib/config/policy.ts";

const NOW = Date.parse("2026-03-01T12:00:00Z");
/** Backoff from 500 ms, doubling, capped at 10 s. */
const P = mergePolicy(DEFAULT_POLICY, { retries: { base_delay_ms: 500, max_delay_ms: 10_000 } });

const fixed = (x: number) => () => x;
const headers = (h: Record<string, string>) => new Headers(h);

Deno.test("retryDelay: full jitter between half and all of base x 2^attempt", () => {
  // attempt 0: cap 500 -> [250, 500]
  assertEquals(retryDelay(P, 0, undefined, NOW, fixed(0)), 250);
  assertEquals(retryDelay(P, 0, undefined, NOW, fixed(0.5)), 375);
  assertEquals(retryDelay(P, 0, undefined, NOW, fixed(0.999999)), 500);
  // attempt 3: cap 4000 -> [2000, 4000]
  assertEquals(retryDelay(P, 3, undefined, NOW, fixed(0)), 2000);
  assertEquals(retryDelay(P, 3, undefined, NOW, fixed(0.999999)), 4000);
  // Every draw of the random source stays in its band.
  for (let attempt = 0; attempt < 5; attempt++) {
    const cap = 500 * 2 ** attempt;
    for (const r of [0, 0.1, 0.37, 0.5, 0.93, 0.999]) {
      const d = retryDelay(P, attempt, undefined, NOW, fixed(r));
      assert(d >= cap / 2 && d <= cap, `attempt ${attempt}, random ${r}: ${d}`);
    }
  }
});

Deno.test("retryDelay: backoff never exceeds max_delay_ms, however many attempts", () => {
  assertEquals(retryDelay(P, 5, undefined, NOW, fixed(0.999999)), 10_000, "16 s capped to 10 s");
  assertEquals(retryDelay(P, 10, undefined, NOW, fixed(0)), 5_000);
  assertEquals(retryDelay(P, 60, undefined, NOW, fixed(0.5)), 7_500, "no overflow at 2^60");
  const tight = mergePolicy(P, { retries: { base_delay_ms: 1000, max_delay_ms: 300 } });
  assertEquals(retryDelay(tight, 0, undefined, NOW, fixed(0.999999)), 300, "below the base too");
  const none = mergePolicy(P, { retries: { base_delay_ms: 0 } });
  assertEquals(retryDelay(none, 4, undefined, NOW, fixed(0.7)), 0);
});

Deno.test("retryDelay: the upstream's retry-after-ms wins over backoff, rounded up", () => {
  const random = () => {
    throw new Error("no jitter when the upstream said how long");
  };
  assertEquals(retryDelay(P, 0, headers({ "retry-after-ms": "120" }), NOW, random), 120);
  assertEquals(retryDelay(P, 3, headers({ "retry-after-ms": "1.5" }), NOW, random), 2);
  assertEquals(retryDelay(P, 0, headers({ "retry-after-ms": " 80 " }), NOW, random), 80);
  assertEquals(
    retryDelay(P, 0, headers({ "retry-after-ms": "250", "retry-after": "9" }), NOW, random),
    250,
    "retry-after-ms is the more precise of the two",
  );
  // A hint is taken as given, also above max_delay_ms: the caller's deadline decides.
  assertEquals(retryDelay(P, 0, headers({ "retry-after-ms": "45000" }), NOW, random), 45_000);
});

Deno.test("retryDelay: Retry-After in seconds or as an HTTP date", () => {
  assertEquals(retryAfterMs(headers({ "retry-after": "2" }), NOW), 2000);
  assertEquals(retryAfterMs(headers({ "retry-after": "0.5" }), NOW), 500);
  assertEquals(retryAfterMs(headers({ "retry-after": "0" }), NOW), 0);
  const in30s = new Date(NOW + 30_000).toUTCString(); // "Sun, 01 Mar 2026 12:00:30 GMT"
  assertEquals(retryAfterMs(headers({ "retry-after": in30s }), NOW), 30_000);
  const past = new Date(NOW - 5_000).toUTCString();
  assertEquals(retryAfterMs(headers({ "retry-after": past }), NOW), 0, "a past date: at once");
  assertEquals(retryDelay(P, 2, headers({ "retry-after": in30s }), NOW, fixed(0)), 30_000);
});

Deno.test("retryDelay: unreadable hints are ignored and backoff applies", () => {
  for (
    const h of [
      {} as Record<string, string>,
      { "retry-after-ms": "soon" },
      { "retry-after-ms": "-5" },
      { "retry-after": "" },
      { "retry-after": "tomorrow-ish" },
    ]
  ) {
    assertEquals(retryAfterMs(headers(h), NOW), undefined, JSON.stringify(h));
    assertEquals(retryDelay(P, 1, headers(h), NOW, fixed(0)), 500, JSON.stringify(h));
  }
  assertEquals(retryAfterMs(undefined, NOW), undefined);
  // A bad retry-after-ms does not hide a good Retry-After.
  assertEquals(retryAfterMs(headers({ "retry-after-ms": "x", "retry-after": "3" }), NOW), 3000);
});

Deno.test({
  // RFC 9110: a Retry-After that is neither delay-seconds nor an HTTP-date is ignored.
  name: "retryDelay: a malformed Retry-After is ignored, not read as a date in the past",
  fn() {
    for (const v of ["-1", "soon 5", "1 2", "later 2026"]) {
      assertEquals(retryAfterMs(headers({ "retry-after": v }), NOW), undefined, v);
      assertEquals(retryDelay(P, 1, headers({ "retry-after": v }), NOW, fixed(0)), 500, v);
    }
  },
});

Deno.test("RETRYABLE_STATUS: timeouts, conflicts, rate limits and server/overload errors only", () => {
  assertEquals([...RETRYABLE_STATUS].sort((a, b) => a - b), [
    408,
    409,
    429,
    500,
    502,
    503,
    504,
    529,
  ]);
  // The caller's own mistakes are never retried or sent elsewhere.
  for (const s of [200, 400, 401, 402, 403, 404, 405, 413, 422, 501]) {
    assert(!RETRYABLE_STATUS.has(s), `${s} must not be retried`);
  }
});

Deno.test("policy: models.json fields override the defaults one by one; unknown fields refused", () => {
  const merged = mergePolicy(DEFAULT_POLICY, {
    timeouts: { idle_ms: 1234 },
    retries: { max: 3 },
    breaker: { failures: 0 },
    on_disconnect: "drain",
  });
  assertEquals(merged, {
    ...DEFAULT_POLICY,
    idleMs: 1234,
    retries: 3,
    breakerFailures: 0,
    onDisconnect: "drain",
  });
  assertEquals(mergePolicy(merged, undefined), merged);
  assertEquals(mergePolicy(merged, { retries: { base_delay_ms: 7 } }).retries, 3, "layered");
  assert(!PolicySchema.safeParse({ retries: { maximum: 3 } }).success, "a typo is an error");
  assert(!PolicySchema.safeParse({ retries: { max: 11 } }).success, "at most 10 retries");
  assert(!PolicySchema.safeParse({ breaker: { failure_rate: 1.5 } }).success);
  assert(PolicySchema.safeParse({ timeouts: { total_ms: 3_600_000 } }).success);
});
