/**
 * The per-key limit store: two stores on one KV file stand for two gateway
 * processes. Limits are never exceeded, every request that fits is
 * admitted, reservations are replaced by what was used, and a process that
 * stops refreshing gives its holdings back.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { fakeClock } from "./support/gateway.ts";
import type { KeyLimits } from "../lib/store/keys.ts";
import type { Claim } from "../lib/store/limits/ledger.ts";
import { type Admitted, LimitStore, type Seed } from "../lib/store/limits/store.ts";
import { Windows } from "../lib/store/limits/windows.ts";

const NOW = "2026-11-30T10:00:05Z";
const noSeed: Seed = () => Promise.resolve({ tokens: 0, microUsd: 0 });

/** Two "processes" on one KV file, with a clock the test moves. */
async function twoProcesses(o: { seed?: Seed; heldTtlMs?: number } = {}) {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/limits.kv`;
  const clock = fakeClock(NOW);
  const kvs = [await Deno.openKv(path), await Deno.openKv(path)];
  const stores = kvs.map((kv, i) =>
    new LimitStore(kv, clock, new Windows("UTC"), {
      processId: `p${i}`,
      seed: o.seed ?? noSeed,
      heldTtlMs: o.heldTtlMs,
    })
  );
  return {
    clock,
    a: stores[0],
    b: stores[1],
    async close() {
      for (const s of stores) await s.close();
      for (const kv of kvs) kv.close();
      await Deno.remove(dir, { recursive: true });
    },
  };
}

const claim = (over: Partial<Claim> = {}): Claim => ({
  requests: 1,
  concurrent: 1,
  tokens: 0,
  microUsd: 0,
  ...over,
});

function admitted(rs: Admitted[]) {
  return rs.filter((r) => r.ok) as (Admitted & { ok: true })[];
}

Deno.test("rpm across two processes: exactly the limit is admitted under concurrent load", async () => {
  const p = await twoProcesses();
  try {
    const limits: KeyLimits = { rpm: 50 };
    const rs = await Promise.all(
      Array.from({ length: 120 }, (_, i) => (i % 2 ? p.a : p.b).admit("k", limits, claim())),
    );
    assertEquals(admitted(rs).length, 50, "never over, and none that fitted refused");
    for (const r of rs) if (!r.ok) assertEquals(r.exceeded.limit, "rpm");
    // Settling does not give a request back: the minute counts requests made.
    await Promise.all(admitted(rs).map((r) => r.ticket.settle({ tokens: 10 })));
    assertEquals((await p.a.admit("k", limits, claim())).ok, false);
    // The next minute starts afresh.
    p.clock.set("2026-11-30T10:01:00Z");
    assertEquals((await p.b.admit("k", limits, claim())).ok, true);
  } finally {
    await p.close();
  }
});

Deno.test("max_concurrent: slots are held until settled, across processes", async () => {
  const p = await twoProcesses();
  try {
    const limits: KeyLimits = { maxConcurrent: 3 };
    const rs = await Promise.all(
      Array.from({ length: 10 }, (_, i) => (i % 2 ? p.a : p.b).admit("k", limits, claim())),
    );
    const ok = admitted(rs);
    assertEquals(ok.length, 3);
    const refused = rs.find((r) => !r.ok);
    assert(refused && !refused.ok && refused.exceeded.limit === "max_concurrent");
    await ok[0].ticket.settle({ tokens: 0 });
    await ok[0].ticket.settle({ tokens: 0 }); // a second settle changes nothing
    assertEquals((await p.b.admit("k", limits, claim())).ok, true, "one slot came back");
    assertEquals((await p.a.admit("k", limits, claim())).ok, false, "and only one");
    const standing = await p.a.standings("k", limits);
    assertEquals(standing.map((s) => [s.limit, s.used]), [["max_concurrent", 3]]);
  } finally {
    await p.close();
  }
});

Deno.test("daily token quota: the worst case is held, what was used is committed", async () => {
  const p = await twoProcesses();
  try {
    const limits: KeyLimits = { dailyTokens: 1000 };
    const c = claim({ tokens: 300 });
    const rs = await Promise.all([p.a, p.b, p.a, p.b].map((s) => s.admit("k", limits, c)));
    const ok = admitted(rs);
    assertEquals(ok.length, 3, "3 x 300 fit in 1000, a fourth does not");
    const no = rs.find((r) => !r.ok)!;
    assert(!no.ok);
    assertEquals([no.exceeded.limit, no.exceeded.used, no.exceeded.needed], [
      "daily_token_quota",
      900,
      300,
    ]);
    assertEquals(no.exceeded.resetsAt, Date.parse("2026-12-01T00:00:00Z"));
    await ok[0].ticket.settle({ tokens: 50 }); // used 50 of its 300
    // 600 held + 50 used: one more fits, then nothing.
    assertEquals((await p.b.admit("k", limits, c)).ok, true);
    assertEquals((await p.a.admit("k", limits, c)).ok, false);
    const [s] = await p.b.standings("k", limits);
    assertEquals([s.used, s.reserved], [50, 900]);
    // A request that could never fit says so by needing more than the limit.
    const huge = await p.a.admit("k", limits, claim({ tokens: 1001 }));
    assert(!huge.ok && huge.exceeded.needed > huge.exceeded.value);
  } finally {
    await p.close();
  }
});

Deno.test("money budget: reserved at the worst price, settled at the real cost", async () => {
  const p = await twoProcesses();
  try {
    const limits: KeyLimits = { dailyMicroUsd: 1_000_000, monthlyMicroUsd: 1_500_000 };
    const c = claim({ microUsd: 400_000 });
    const first = await Promise.all([p.a.admit("k", limits, c), p.b.admit("k", limits, c)]);
    assertEquals(admitted(first).length, 2);
    const third = await p.a.admit("k", limits, c);
    assert(!third.ok && third.exceeded.limit === "daily_budget_usd");
    await Promise.all(
      admitted(first).map((r) => r.ticket.settle({ tokens: 0, microUsd: 100_000 })),
    );
    // Cost unknown: the reservation's own price is what counts.
    const r = await p.b.admit("k", limits, c);
    assert(r.ok);
    await r.ticket.settle({ tokens: 0 });
    const st = Object.fromEntries(
      (await p.a.standings("k", limits)).map((s) => [s.limit, s.used + s.reserved]),
    );
    assertEquals(st, { daily_budget_usd: 600_000, monthly_budget_usd: 600_000 });
    const r2 = await p.a.admit("k", limits, claim({ microUsd: 450_000 }));
    assert(!r2.ok && r2.exceeded.limit === "daily_budget_usd" && r2.exceeded.used === 600_000);
  } finally {
    await p.close();
  }
});

Deno.test("a process that stops refreshing gives its reservations and slots back", async () => {
  const p = await twoProcesses({ heldTtlMs: 3_000 });
  try {
    const limits: KeyLimits = { maxConcurrent: 2, dailyTokens: 1000 };
    const held = await Promise.all(
      [1, 2].map(() => p.a.admit("k", limits, claim({ tokens: 400 }))),
    );
    assertEquals(admitted(held).length, 2);
    // Process a dies: it never settles, never refreshes.
    assertEquals((await p.b.admit("k", limits, claim({ tokens: 1 }))).ok, false);
    p.clock.set("2026-11-30T10:00:09Z"); // past a's holdings' validity
    const after = await p.b.admit("k", limits, claim({ tokens: 900 }));
    assert(after.ok, "the dead process's slots and tokens are free again");
  } finally {
    await p.close();
  }
});

Deno.test("a quota set mid-day counts the day's usage so far", async () => {
  let seeded = 0;
  const seed: Seed = (_key, span) => {
    seeded++;
    // 900 tokens today; this month also $1.30 spent before today.
    return Promise.resolve(
      span === "day" ? { tokens: 900, microUsd: 0 } : { tokens: 900, microUsd: 1_300_000 },
    );
  };
  const p = await twoProcesses({ seed });
  try {
    const limits: KeyLimits = { dailyTokens: 1000 };
    const r = await p.a.admit("k", limits, claim({ tokens: 200 }));
    assert(!r.ok && r.exceeded.used === 900);
    assertEquals((await p.b.admit("k", limits, claim({ tokens: 100 }))).ok, true);
    const first = seeded;
    assert(first >= 1 && first <= 2, "each process may seed before one commit wins");
    assertEquals((await p.a.admit("k", limits, claim({ tokens: 1 }))).ok, false);
    assertEquals(seeded, first, "then the window is kept in KV: no more seeding");
    // A monthly budget set now counts the month so far: $0.30 left of $1.60.
    const budget: KeyLimits = { dailyMicroUsd: 1_000_000, monthlyMicroUsd: 1_600_000 };
    const overMonth = await p.a.admit("k2", budget, claim({ microUsd: 400_000 }));
    assert(
      !overMonth.ok && overMonth.exceeded.limit === "monthly_budget_usd" &&
        overMonth.exceeded.used === 1_300_000,
    );
    assertEquals((await p.b.admit("k2", budget, claim({ microUsd: 300_000 }))).ok, true);
  } finally {
    await p.close();
  }
});

Deno.test("windows: day and month reset at local midnight, from any instant", () => {
  const at = Date.parse("2026-11-30T13:37:05.250Z"); // not on a minute
  const ny = new Windows("America/New_York");
  assertEquals(ny.day(at), { id: "d2026-11-30", resetsAt: Date.parse("2026-12-01T05:00:00Z") });
  assertEquals(ny.month(at), { id: "M2026-11", resetsAt: Date.parse("2026-12-01T05:00:00Z") });
  const sh = new Windows("Asia/Kolkata");
  assertEquals(sh.day(at).resetsAt, Date.parse("2026-11-30T18:30:00Z"));
  // A day with a DST change is 23 hours long.
  assertEquals(
    ny.day(Date.parse("2026-03-08T06:00:00.5Z")).resetsAt,
    Date.parse("2026-03-09T04:00:00Z"),
  );
  assertEquals(new Windows("UTC").minute(at), {
    id: `m${Math.floor(at / 60_000)}`,
    resetsAt: Date.parse("2026-11-30T13:38:00Z"),
  });
});
