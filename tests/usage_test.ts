/**
 * The usage writer on in-memory KV, watched at the KV boundary: requests
 * finished within the flush window go out in one atomic commit; one
 * request's counters never straddle two commits; what does not fit Deno KV's
 * limits for one commit (1000 mutations, 80 KiB of keys) is split; failed
 * commits are retried and, failing still, kept for the next flush; `flush()`
 * writes everything; the totals read back are exact.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { prng } from "./support/rechunk.ts";
import { delay, waitFor } from "./support/wait.ts";
import { BucketClock } from "../lib/ops/clock.ts";
import { type Counters, FIELDS, zeroCounters } from "../lib/store/usage/counters.ts";
import { UsageReader, type UsageRow } from "../lib/store/usage/reader.ts";
import { UsageWriter } from "../lib/store/usage/writer.ts";

const T0 = Date.parse("2026-03-01T10:15:00Z");
const HOUR = 3600_000;

/** One `kv.atomic()` that was committed: its mutations in order. */
type Commit = { key: Deno.KvKey; op: "sum" | "max"; value: bigint }[];

/**
 * `kv` with every successful atomic commit recorded; `failNext(n)` makes the
 * next `n` commits throw, as a KV that is briefly unavailable does.
 */
function observedKv(kv: Deno.Kv) {
  const commits: Commit[] = [];
  let failing = 0;
  const atomic = () => {
    const op = kv.atomic();
    const muts: Commit = [];
    const wrapped: Deno.AtomicOperation = new Proxy(op, {
      get(target, prop) {
        if (prop === "sum" || prop === "max") {
          return (key: Deno.KvKey, value: bigint) => {
            muts.push({ key, op: prop, value });
            target[prop](key, value);
            return wrapped;
          };
        }
        if (prop === "commit") {
          return async () => {
            if (failing > 0) {
              failing--;
              throw new Error("KV unavailable");
            }
            const res = await target.commit();
            if (res.ok) commits.push(muts);
            return res;
          };
        }
        const v = Reflect.get(target, prop, target);
        return typeof v === "function" ? v.bind(target) : v;
      },
    });
    return wrapped;
  };
  const proxy = new Proxy(kv, {
    get(target, prop) {
      if (prop === "atomic") return atomic;
      const v = Reflect.get(target, prop, target);
      return typeof v === "function" ? v.bind(target) : v;
    },
  });
  return {
    kv: proxy,
    commits,
    failNext(n: number) {
      failing = n;
    },
  };
}

/** A usage writer and reader on one KV, filing usage in UTC. */
function usageStore(kv: Deno.Kv, flushMs: number, onRetry?: (e: unknown) => void) {
  const writer = new UsageWriter(kv, new BucketClock("UTC"), flushMs, { onRetry });
  const reader = new UsageReader(kv, () => writer.flush());
  return {
    record: writer.record.bind(writer),
    flush: () => writer.flush(),
    get pending() {
      return writer.pending;
    },
    get idle() {
      return writer.pending === 0;
    },
    byKey: reader.byKey.bind(reader),
    byTime: reader.byTime.bind(reader),
    totals: reader.totals.bind(reader),
    keyTotals: reader.keyTotals.bind(reader),
  };
}

/** A store on its own in-memory KV, filing usage in UTC. */
async function setup(flushMs: number) {
  const raw = await Deno.openKv(":memory:");
  const observed = observedKv(raw);
  const errors: unknown[] = [];
  const store = usageStore(observed.kv, flushMs, (e) => errors.push(e));
  return {
    ...observed,
    raw,
    store,
    errors,
    /** Usage entries in KV, read past the store (no flush). */
    async stored(): Promise<number> {
      let n = 0;
      for await (const _ of raw.list({ prefix: ["usage"] })) n++;
      return n;
    },
    async close() {
      await store.flush();
      raw.close();
    },
  };
}

/** Counters with the given fields set (the rest 0). */
function counters(c: Partial<Counters>): Counters {
  return { ...zeroCounters(), ...c };
}

/** Counters with every field set to `n` (the most KV mutations a row can make). */
function full(n: number): Counters {
  return Object.fromEntries(FIELDS.map((f) => [f, n])) as Counters;
}

/** Rows as comparable strings: key, bucket, model, provider, counters. */
function view(rows: UsageRow[]): string[] {
  return rows.map((r) =>
    `${r.keyId}|${r.day}|${r.hour}|${r.model}|${r.provider}|${
      FIELDS.map((f) => `${f}=${r.counters[f]}`).join(",")
    }`
  ).sort();
}

/** The key ids a commit touches. */
function keyIdsOf(commit: Commit): Set<string> {
  return new Set(
    commit.map((m) => (m.key[1] === "t" ? m.key[4] : m.key[2]) as string),
  );
}

Deno.test("usage: requests finished within the flush window go out in one atomic commit", async () => {
  const s = await setup(50);
  try {
    s.store.record("key-a", T0, [{
      model: "m1",
      provider: "p",
      counters: counters({ requests: 1, output: 5 }),
    }]);
    s.store.record("key-b", T0 + 1, [{
      model: "m2",
      provider: "p",
      counters: counters({ requests: 1, input_uncached: 7 }),
    }]);
    s.store.record("key-a", T0 + 2, [{
      model: "m1",
      provider: "p",
      counters: counters({ requests: 1, output: 3 }),
    }]);
    assertEquals(s.commits.length, 0, "record() returns before anything is written");
    await waitFor("the flush window closes", () => s.commits.length > 0);
    await s.store.flush();
    assertEquals(s.commits.length, 1, "one commit for the three requests");
    const rows = await s.store.byTime();
    assertEquals(
      view(rows),
      view([
        {
          keyId: "key-a",
          day: "2026-03-01",
          hour: "10",
          model: "m1",
          provider: "p",
          counters: counters({ requests: 2, output: 8 }),
        },
        {
          keyId: "key-b",
          day: "2026-03-01",
          hour: "10",
          model: "m2",
          provider: "p",
          counters: counters({ requests: 1, input_uncached: 7 }),
        },
      ]),
    );
    const totals = await s.store.totals();
    assertEquals(totals.get("key-a"), {
      counters: counters({ requests: 2, output: 8 }),
      lastUsed: T0 + 2,
    });
    assertEquals(totals.get("key-b"), {
      counters: counters({ requests: 1, input_uncached: 7 }),
      lastUsed: T0 + 1,
    });
  } finally {
    await s.close();
  }
});

Deno.test("usage: nothing is written before the window closes; flush() writes everything", async () => {
  const s = await setup(60_000);
  try {
    for (let i = 0; i < 20; i++) {
      s.store.record(`key-${i % 3}`, T0 + i * HOUR, [
        { model: "m", provider: "p", counters: counters({ requests: 1, output: i }) },
      ]);
    }
    assert(!s.store.idle, "usage is waiting");
    assertEquals(await s.stored(), 0, "not written yet");
    await s.store.flush();
    assert(s.store.idle);
    assertEquals(s.store.pending, 0);
    assert(await s.stored() > 0);
    const rows = await s.store.byTime();
    assertEquals(rows.length, 20, "one row per hour");
    assertEquals(rows.reduce((n, r) => n + r.counters.output, 0), 190);
    assertEquals(s.errors, []);
  } finally {
    await s.close();
  }
});

Deno.test("usage: more than one commit can hold is split, never inside one request", async () => {
  const s = await setup(60_000);
  try {
    // 40 requests of distinct keys with every counter set: 40 x 28 KV mutations, more than
    // the 1000 one Deno KV commit allows.
    for (let i = 0; i < 40; i++) {
      s.store.record(`key-${String(i).padStart(2, "0")}`, T0, [
        { model: "m", provider: "p", counters: full(i + 1) },
      ]);
    }
    await s.store.flush();
    assertEquals(s.errors, [], "every commit within Deno KV's limits");
    assert(s.commits.length >= 2, `split into ${s.commits.length} commits`);
    for (const c of s.commits) assert(c.length <= 1000, `${c.length} mutations in one commit`);
    const seen = new Map<string, number>();
    s.commits.forEach((c, i) => {
      for (const k of keyIdsOf(c)) {
        assert(!seen.has(k), `${k}'s usage is split over commits ${seen.get(k)} and ${i}`);
        seen.set(k, i);
      }
    });
    assertEquals(seen.size, 40);
    const totals = await s.store.totals();
    for (let i = 0; i < 40; i++) {
      assertEquals(totals.get(`key-${String(i).padStart(2, "0")}`)?.counters, full(i + 1));
    }
  } finally {
    await s.close();
  }
});

Deno.test("usage: long model names are split to fit Deno KV's 80 KiB of keys per commit", async () => {
  const s = await setup(60_000);
  try {
    // Every row of a 1500-byte model name writes 18 keys of about 1.6 KB: 3 rows would
    // already pass the limit.
    const models = ["a", "b", "c", "d", "e", "f"].map((c) => c.repeat(1500));
    models.forEach((model, i) =>
      s.store.record(`key-${i}`, T0, [{ model, provider: "p", counters: full(2) }])
    );
    await s.store.flush();
    assertEquals(s.errors, []);
    assert(s.commits.length >= 3, `${s.commits.length} commits`);
    const rows = await s.store.byTime();
    assertEquals(rows.map((r) => r.model).sort(), models);
    for (const r of rows) assertEquals(r.counters, full(2));
  } finally {
    await s.close();
  }
});

Deno.test("usage: a commit that fails is retried; the counts land once", async () => {
  const s = await setup(60_000);
  try {
    s.store.record("key-a", T0, [{
      model: "m",
      provider: "p",
      counters: counters({ requests: 1, output: 9 }),
    }]);
    s.failNext(2);
    await s.store.flush();
    assertEquals(s.errors.length, 2, "each failure is reported");
    assertEquals(s.commits.length, 1);
    assert(s.store.idle);
    const t = await s.store.keyTotals("key-a");
    assertEquals(t.counters, counters({ requests: 1, output: 9 }));
  } finally {
    await s.close();
  }
});

Deno.test("usage: batches that keep failing are kept for the next flush, not lost or doubled", async () => {
  const s = await setup(60_000);
  try {
    s.store.record("key-a", T0, [{
      model: "m",
      provider: "p",
      counters: counters({ requests: 1, output: 9 }),
    }]);
    s.failNext(1000);
    const first = s.store.flush();
    // A request finishing while the KV is down.
    s.store.record("key-b", T0 + 1, [{
      model: "m",
      provider: "p",
      counters: counters({ requests: 1, output: 4 }),
    }]);
    await first;
    assert(s.errors.length >= 1);
    assertEquals(s.commits.length, 0);
    assertEquals(await s.stored(), 0);
    assert(!s.store.idle, "the usage is still waiting");
    s.failNext(0); // the KV is back
    await s.store.flush();
    assert(s.store.idle);
    const totals = await s.store.totals();
    assertEquals(totals.get("key-a")?.counters, counters({ requests: 1, output: 9 }));
    assertEquals(totals.get("key-b")?.counters, counters({ requests: 1, output: 4 }));
  } finally {
    await s.close();
  }
});

Deno.test("usage: a random workload reads back exactly, by key, by time and in totals", async () => {
  const s = await setup(5);
  try {
    const rand = prng(20260301);
    const keys = ["key-a", "key-b", "key-c"];
    const models = ["claude-x", "gpt-y", "deepseek-z", "kimi"];
    const want = new Map<string, UsageRow>();
    const lastUsed = new Map<string, number>();
    for (let i = 0; i < 400; i++) {
      const keyId = keys[Math.floor(rand() * keys.length)];
      const at = T0 + Math.floor(rand() * 3 * 24) * HOUR + Math.floor(rand() * HOUR);
      const rows = [];
      // Mostly one model; sometimes a second one billed within the same request.
      for (let r = 0; r < (rand() < 0.2 ? 2 : 1); r++) {
        const c = zeroCounters();
        for (const f of FIELDS) if (rand() < 0.6) c[f] = Math.floor(rand() * 5000);
        const row = {
          model: models[Math.floor(rand() * models.length)],
          provider: rand() < 0.5 ? "p1" : "p2",
          counters: c,
        };
        rows.push(row);
        const iso = new Date(at).toISOString();
        const bucket = { day: iso.slice(0, 10), hour: iso.slice(11, 13) };
        const id = [keyId, bucket.day, bucket.hour, row.model, row.provider].join("|");
        const w = want.get(id) ??
          { keyId, ...bucket, model: row.model, provider: row.provider, counters: zeroCounters() };
        for (const f of FIELDS) w.counters[f] += c[f];
        want.set(id, w);
      }
      lastUsed.set(keyId, Math.max(lastUsed.get(keyId) ?? 0, at));
      s.store.record(keyId, at, rows);
      if (i % 37 === 0) await s.store.flush();
      else if (i % 11 === 0) await delay(1); // let windows close
    }
    // Rows whose counters are all zero need not exist.
    const expected = [...want.values()].filter((r) => FIELDS.some((f) => r.counters[f] > 0));
    assertEquals(view(await s.store.byTime()), view(expected));
    for (const k of keys) {
      assertEquals(view(await s.store.byKey(k)), view(expected.filter((r) => r.keyId === k)));
      const sum = zeroCounters();
      for (const r of expected.filter((r) => r.keyId === k)) {
        for (const f of FIELDS) sum[f] += r.counters[f];
      }
      assertEquals(await s.store.keyTotals(k), { counters: sum, lastUsed: lastUsed.get(k)! });
    }
    assertEquals(
      view(await s.store.byTime("2026-03-02", "2026-03-02")),
      view(expected.filter((r) => r.day === "2026-03-02")),
      "a day range",
    );
    assertEquals(
      view(await s.store.byKey("key-a", "2026-03-02")),
      view(expected.filter((r) => r.keyId === "key-a" && r.day >= "2026-03-02")),
      "from a day on",
    );
    assertEquals(s.errors, []);
  } finally {
    await s.close();
  }
});

Deno.test("usage: two gateways writing the same KV at once lose nothing", async () => {
  const raw = await Deno.openKv(":memory:");
  const a = usageStore(raw, 1);
  const b = usageStore(raw, 1);
  try {
    const writes: Promise<void>[] = [];
    for (let i = 0; i < 300; i++) {
      const store = i % 2 ? a : b;
      store.record("key-a", T0 + i, [
        { model: "m", provider: "p", counters: counters({ requests: 1, output: i }) },
      ]);
      if (i % 25 === 0) writes.push(store.flush());
    }
    await Promise.all([...writes, a.flush(), b.flush()]);
    const t = await a.keyTotals("key-a");
    assertEquals(t.counters, counters({ requests: 300, output: (299 * 300) / 2 }));
    assertEquals(t.lastUsed, T0 + 299, "last use is the latest, whichever gateway wrote it");
  } finally {
    await a.flush();
    await b.flush();
    raw.close();
  }
});
