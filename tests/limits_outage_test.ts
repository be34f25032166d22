/**
 * The limit store while Deno KV fails: a settlement whose commit landed
 * but whose answer was lost (or that a remote client sent twice, or that
 * the store held past the timeout) is counted once; admissions are
 * answered within the timeout, then at once while KV is known to fail, and
 * a reservation made by a commit that landed after its admission gave up is
 * given back; offline admissions follow the policy and their use reaches
 * KV once it is back.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { fakeClock } from "./support/gateway.ts";
import { type FailMode, outageKv } from "./support/kv_outage.ts";
import { waitFor } from "./support/wait.ts";
import type { KeyLimits } from "../lib/store/keys.ts";
import type { Claim, Standing } from "../lib/store/limits/ledger.ts";
import { type Admitted, LimitStore, LimitsUnavailable } from "../lib/store/limits/store.ts";
import { Windows } from "../lib/store/limits/windows.ts";

const claim = (over: Partial<Claim> = {}): Claim => ({
  requests: 1,
  concurrent: 1,
  tokens: 100,
  microUsd: 0,
  ...over,
});

async function setup(timeoutMs = 2_000) {
  const raw = await Deno.openKv(":memory:");
  const out = outageKv(raw);
  const clock = fakeClock("2026-11-30T10:00:05Z");
  const store = new LimitStore(out.kv, clock, new Windows("UTC"), {
    processId: "p0",
    seed: () => Promise.resolve({ tokens: 0, microUsd: 0 }),
    timeoutMs,
  });
  return {
    raw,
    out,
    store,
    /** One limit's standing, read from KV by a second process's store. */
    async standing(keyId: string, limits: KeyLimits, name: string): Promise<Standing> {
      const other = new LimitStore(raw, clock, new Windows("UTC"), {
        processId: "reader",
        seed: () => Promise.resolve({ tokens: 0, microUsd: 0 }),
      });
      try {
        return (await other.standings(keyId, limits)).find((s) => s.limit === name)!;
      } finally {
        await other.close();
      }
    },
    async close() {
      out.end();
      await store.close();
      raw.close();
    },
  };
}

function ok(r: Admitted) {
  assert(r.ok, JSON.stringify(r));
  return r as Admitted & { ok: true };
}

for (const mode of ["applied", "twice", "hang"] as FailMode[]) {
  Deno.test(`limits outage: a settlement whose commit fails as "${mode}" is counted once`, async () => {
    const t = await setup(mode === "hang" ? 100 : 2_000);
    try {
      const limits: KeyLimits = { dailyTokens: 1_000_000, maxConcurrent: 10 };
      const tickets = [];
      for (let i = 0; i < 5; i++) {
        tickets.push(ok(await t.store.admit("k", limits, claim())).ticket);
      }
      t.out.start({ mode: () => mode });
      const settled = tickets.map((tk) => tk.settle({ tokens: 15 }));
      const s = t.out.stats;
      await waitFor("a commit fails that way", () => s.appliedThenThrown + s.hung + s.resent > 0);
      t.out.end();
      await Promise.all(settled);
      const q = await t.standing("k", limits, "daily_token_quota");
      assertEquals([q.used, q.reserved], [75, 0], "five requests of 15 tokens, nothing held");
      const c = await t.standing("k", limits, "max_concurrent");
      assertEquals(c.used, 0, "every slot given back");
    } finally {
      await t.close();
    }
  });
}

Deno.test("limits outage: admissions are answered within the timeout, then at once; a late reservation is given back", async () => {
  const t = await setup(150);
  try {
    const limits: KeyLimits = { maxConcurrent: 5 };
    t.out.start({ mode: () => "hang" });
    const t0 = performance.now();
    let e: unknown;
    await t.store.admit("k", limits, claim()).catch((x) => e = x);
    assert(e instanceof LimitsUnavailable, String(e));
    assert(t.store.unavailable, "the store knows KV fails");
    const t1 = performance.now();
    await t.store.admit("k", limits, claim()).catch((x) => e = x);
    assert(e instanceof LimitsUnavailable);
    assert(performance.now() - t1 < t1 - t0, "the second one did not wait for KV");
    t.out.end();
    // The held commit lands after all: the slot it took is given back, nobody holds it.
    await waitFor("the late reservation is released", async () => {
      const c = await t.standing("k", limits, "max_concurrent");
      return c.used === 0 && t.out.stats.hung === 1;
    });
    await waitFor("admissions go to KV again", async () => {
      try {
        return (await t.store.admit("k", limits, claim())).ok;
      } catch {
        return false;
      }
    });
    assertEquals(t.store.unavailable, undefined);
    assertEquals((await t.standing("k", limits, "max_concurrent")).used, 1);
  } finally {
    await t.close();
  }
});

Deno.test("limits outage: offline admissions follow the policy; their use reaches KV once it is back", async () => {
  const t = await setup();
  try {
    const rate: KeyLimits = { rpm: 2, maxConcurrent: 5 };
    const quota: KeyLimits = { dailyTokens: 1_000 };
    // Rate limits counted here: two requests a minute, the third refused.
    const local = { rate: "local", quota: "closed" } as const;
    const a = t.store.admitOffline("r", rate, claim(), local);
    const b = t.store.admitOffline("r", rate, claim(), local);
    const c = t.store.admitOffline("r", rate, claim(), local);
    assert("ok" in a && a.ok && a.policy === "local");
    assert("ok" in b && b.ok);
    assert("ok" in c && !c.ok && c.exceeded.limit === "rpm", JSON.stringify(c));
    // Quotas fail closed by default, rate limits when told to.
    assertEquals(t.store.admitOffline("q", quota, claim(), local), { closed: "quota" });
    assertEquals(
      t.store.admitOffline("r", rate, claim(), { rate: "closed", quota: "open" }),
      { closed: "rate" },
    );
    // Open: admitted uncounted, and what it used is settled into KV's day window afterwards.
    const open = t.store.admitOffline("q", quota, claim(), { rate: "local", quota: "open" });
    assert("ok" in open && open.ok && open.policy === "open");
    t.out.start();
    const settled = open.ticket.settle({ tokens: 40 });
    await waitFor("the settlement failed once", () => t.out.stats.thrown > 0);
    t.out.end();
    await settled;
    assertEquals((await t.standing("q", quota, "daily_token_quota")).used, 40);
  } finally {
    await t.close();
  }
});
