/**
 * The usage writer while Deno KV fails: a commit whose answer was lost (or
 * that the store held and applied late) counts once; beyond the in-memory
 * bound the oldest usage goes to the spill file, and beyond the spill
 * file's cap it is dropped with an event, never silently; a stop spills
 * what is held; a replay writes the file once, even when it is replayed
 * twice, sets aside what KV refuses and moves unreadable lines aside.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { outageKv } from "./support/kv_outage.ts";
import { waitFor } from "./support/wait.ts";
import { loggedCount } from "./support/request_log.ts";
import { BucketClock } from "../lib/ops/clock.ts";
import { newId } from "../lib/ops/ids.ts";
import {
  readRequestLog,
  type RequestLogEntry,
  requestLogRecord,
} from "../lib/store/request_log.ts";
import { countersOf } from "../lib/store/usage/counters.ts";
import { UsageReader } from "../lib/store/usage/reader.ts";
import { encodeEntry, SpillFile } from "../lib/store/usage/spill.ts";
import { UsageWriter, type UsageWriterEvents } from "../lib/store/usage/writer.ts";

/** Now: request-log entries spilled and replayed must still be within their 7 days. */
const T0 = Date.now();
const TOKENS = {
  inputUncached: 10,
  cacheRead: 0,
  cacheWrite: 0,
  cacheWrite1h: 0,
  output: 5,
  webSearch: 0,
  webFetch: 0,
};

function entry(keyId: string, time: number): RequestLogEntry {
  return {
    time,
    key_id: keyId,
    model: "m",
    provider: "p",
    endpoint: "/v1/messages",
    stream: false,
    status: 200,
    input_uncached: 10,
    cache_read: 0,
    cache_write: 0,
    output: 5,
    cost_micro_usd: null,
    latency_ms: 1,
    ttfb_ms: 1,
    retries: 0,
    complete: true,
    error: null,
  };
}

/** Everything a writer said, for assertions. */
function recorder() {
  const seen = {
    rejected: [] as string[],
    dropped: 0,
    droppedKeys: {} as Record<string, number>,
    spilled: 0,
    down: 0,
    up: 0,
    badLines: 0,
    replayed: 0,
  };
  const events: UsageWriterEvents = {
    onRejected: (k) => seen.rejected.push(k),
    onDropped: (n, keys) => {
      seen.dropped += n;
      for (const [k, v] of Object.entries(keys)) {
        seen.droppedKeys[k] = (seen.droppedKeys[k] ?? 0) + v;
      }
    },
    onSpilled: (n) => seen.spilled += n,
    onDown: () => seen.down++,
    onUp: () => seen.up++,
    onBadLine: () => seen.badLines++,
    onReplayed: (n) => seen.replayed += n,
  };
  return { seen, events };
}

/** A writer on `kv` whose flush window never closes by itself (tests flush). */
function writerOn(
  kv: Deno.Kv,
  events: UsageWriterEvents,
  o: { spill?: SpillFile; maxRequests?: number; timeoutMs?: number } = {},
) {
  return new UsageWriter(kv, new BucketClock("UTC"), 60_000, events, {
    spill: o.spill,
    maxRequests: o.maxRequests,
    timeoutMs: o.timeoutMs ?? 2_000,
  });
}

/** Records one request of `keyId` (10 in, 5 out) with its request-log entry. */
function recordOne(w: UsageWriter, keyId: string, i: number, model = "m") {
  const at = T0 + i;
  w.record(
    keyId,
    at,
    [{ model, provider: "p", counters: countersOf(TOKENS, 1, false, false) }],
    requestLogRecord(newId(at), entry(keyId, at), 7),
  );
}

/** Flushes until nothing is held in memory or in the spill file. */
async function drain(w: UsageWriter) {
  await waitFor("the backlog and the spill file are written", async () => {
    await w.flush();
    const b = w.backlog;
    return b.requests === 0 && b.spillBytes === 0;
  });
}

async function requestsOf(kv: Deno.Kv, keyId: string) {
  const t = await new UsageReader(kv).keyTotals(keyId);
  return {
    requests: t.counters.requests,
    input: t.counters.input_uncached,
    output: t.counters.output,
  };
}

async function tempSpill(cap = 1 << 30) {
  const dir = await Deno.makeTempDir();
  return {
    dir,
    path: `${dir}/usage.spill.jsonl`,
    file: new SpillFile(`${dir}/usage.spill.jsonl`, cap),
  };
}

Deno.test("usage outage: a commit applied whose answer was lost is not counted again", async () => {
  const raw = await Deno.openKv(":memory:");
  const out = outageKv(raw);
  const { seen, events } = recorder();
  const w = writerOn(out.kv, events);
  try {
    out.start({ mode: () => "applied" });
    for (let i = 0; i < 10; i++) recordOne(w, "a", i);
    await w.flush();
    assert(out.stats.appliedThenThrown >= 1, "the store applied a commit and lost its answer");
    assertEquals((await requestsOf(raw, "a")).requests, 10, "it is in KV already");
    assertEquals(w.backlog.requests, 10, "the writer cannot know: it keeps the batch");
    assertEquals(seen.down, 1);
    out.end();
    await drain(w);
    assertEquals(await requestsOf(raw, "a"), { requests: 10, input: 100, output: 50 });
    assertEquals(await loggedCount(raw, "a"), 10);
    assertEquals(seen.up, 1);
  } finally {
    await w.close();
    raw.close();
  }
});

Deno.test("usage outage: a commit a remote KV's client sends twice (its own retry) counts once", async () => {
  const raw = await Deno.openKv(":memory:");
  const out = outageKv(raw);
  const { seen, events } = recorder();
  const w = writerOn(out.kv, events);
  try {
    out.start({ mode: () => "twice" });
    for (let i = 0; i < 6; i++) recordOne(w, "a", i);
    await w.flush();
    assertEquals(out.stats.resent, 1, "written, then sent again");
    assertEquals(w.backlog.requests, 0, "the second send is refused by the chain's check: done");
    assertEquals(seen.down, 0, "not a failure");
    out.end();
    assertEquals(await requestsOf(raw, "a"), { requests: 6, input: 60, output: 30 });
  } finally {
    await w.close();
    raw.close();
  }
});

Deno.test("usage outage: a commit the store holds past the timeout and applies late counts once", async () => {
  const raw = await Deno.openKv(":memory:");
  const out = outageKv(raw);
  const { events } = recorder();
  const commits: number[] = [];
  const w = writerOn(out.kv, { ...events, onCommit: (_ms, n) => commits.push(n) }, {
    timeoutMs: 100,
  });
  try {
    out.start({ mode: () => "hang" });
    for (let i = 0; i < 4; i++) recordOne(w, "a", i);
    await w.flush();
    assertEquals(w.backlog.requests, 4, "timed out: held");
    assert(w.backlog.failingSince !== undefined, "the writer knows KV is failing");
    recordOne(w, "a", 4);
    await w.flush(); // waits on the same commit again; never starts a second one beside it
    assertEquals(out.stats.hung, 1, "one commit in flight, however many flushes");
    out.end();
    await drain(w);
    assertEquals(await requestsOf(raw, "a"), { requests: 5, input: 50, output: 25 });
    assertEquals(commits.length, 2, "the late commit and the batch recorded after it");
  } finally {
    await w.close();
    raw.close();
  }
});

Deno.test("usage outage: beyond the bound the oldest usage is spilled; all of it is written once when KV is back", async () => {
  const raw = await Deno.openKv(":memory:");
  const out = outageKv(raw);
  const spill = await tempSpill();
  const { seen, events } = recorder();
  const w = writerOn(out.kv, events, { spill: spill.file, maxRequests: 5 });
  try {
    await w.start();
    out.start();
    for (let i = 0; i < 30; i++) {
      recordOne(w, `k${i % 3}`, i);
      await w.flush();
    }
    // In memory: at most the bound, plus the one batch being committed.
    await waitFor("spilled batches reach the file", () => w.backlog.requests <= 6);
    assert(w.backlog.spillBytes > 0);
    assertEquals(seen.spilled + w.backlog.requests, 30, "each request in memory or on disk");
    const lines = (await Deno.readTextFile(spill.path)).trim().split("\n");
    assert(lines.length >= 4, `${lines.length} spilled batches`);
    out.end();
    await drain(w);
    for (let k = 0; k < 3; k++) {
      assertEquals(await requestsOf(raw, `k${k}`), { requests: 10, input: 100, output: 50 });
      assertEquals(await loggedCount(raw, `k${k}`), 10, "request-log entries come back too");
    }
    assertEquals((await Deno.stat(spill.path)).size, 0, "the spill file is emptied");
    assertEquals(seen.dropped, 0);
    assertEquals(seen.replayed, seen.spilled);
  } finally {
    await w.close();
    raw.close();
    await Deno.remove(spill.dir, { recursive: true });
  }
});

Deno.test("usage outage: with the spill file full, usage is dropped with an event naming keys and counts", async () => {
  const raw = await Deno.openKv(":memory:");
  const out = outageKv(raw);
  const spill = await tempSpill(2_000);
  const { seen, events } = recorder();
  const w = writerOn(out.kv, events, { spill: spill.file, maxRequests: 2 });
  try {
    await w.start();
    out.start();
    for (let i = 0; i < 20; i++) {
      recordOne(w, "a", i);
      await w.flush();
    }
    await waitFor("the spill writes finish", () => w.backlog.requests <= 3);
    assert(seen.dropped > 0, "some usage could not be kept");
    assertEquals(w.backlog.dropped, seen.dropped, "counted");
    assertEquals(seen.droppedKeys, { a: seen.dropped }, "by key");
    assert((await Deno.stat(spill.path)).size <= 2_000, "the cap holds");
    out.end();
    await drain(w);
    assertEquals((await requestsOf(raw, "a")).requests + seen.dropped, 20, "nothing else is lost");
  } finally {
    await w.close();
    raw.close();
    await Deno.remove(spill.dir, { recursive: true });
  }
});

Deno.test("usage outage: a stop spills what is held; a replay writes it once, a second replay of the same file nothing", async () => {
  const raw = await Deno.openKv(":memory:");
  const out = outageKv(raw);
  const spill = await tempSpill();
  const first = recorder();
  const w1 = writerOn(out.kv, first.events, { spill: spill.file });
  await w1.start();
  // The first commit lands and its answer is lost: at the stop, whether it landed is unknown.
  out.start({ mode: (n) => n === 0 ? "applied" : "throw" });
  for (let i = 0; i < 10; i++) recordOne(w1, "a", i);
  await w1.flush();
  for (let i = 0; i < 5; i++) recordOne(w1, "b", 100 + i);
  await w1.close();
  const copy = await Deno.readTextFile(spill.path);
  assertEquals(copy.trim().split("\n").length, 2, "the batch in doubt and the one after it");
  assertEquals(first.seen.spilled, 15);
  assertEquals(first.seen.dropped, 0);
  out.end();
  try {
    assertEquals((await requestsOf(raw, "a")).requests, 10, "the batch in doubt had landed");
    for (let run = 0; run < 2; run++) {
      if (run === 1) await Deno.writeTextFile(spill.path, copy); // as if the process died before truncating
      const { seen, events } = recorder();
      const w = writerOn(raw, events, { spill: new SpillFile(spill.path, 1 << 30) });
      await w.start();
      await drain(w);
      await w.close();
      assertEquals(seen.replayed, 15, `replay ${run + 1} read every spilled request`);
      assertEquals(await requestsOf(raw, "a"), { requests: 10, input: 100, output: 50 });
      assertEquals(await requestsOf(raw, "b"), { requests: 5, input: 50, output: 25 });
      assertEquals(await loggedCount(raw, "b"), 5);
      assertEquals((await Deno.stat(spill.path)).size, 0);
    }
  } finally {
    raw.close();
    await Deno.remove(spill.dir, { recursive: true });
  }
});

Deno.test("usage outage: a spilled batch KV refuses is written request by request; the refused one is set aside", async () => {
  const raw = await Deno.openKv(":memory:");
  const out = outageKv(raw);
  const spill = await tempSpill();
  const w1 = writerOn(out.kv, recorder().events, { spill: spill.file });
  await w1.start();
  out.start();
  // A model name over KV's 2,048-byte key limit, next to five good requests.
  recordOne(w1, "poison", 0, "m" + "x".repeat(2100));
  for (let i = 1; i <= 5; i++) recordOne(w1, "good", i);
  await w1.close();
  out.end();
  const { seen, events } = recorder();
  const w2 = writerOn(raw, events, { spill: new SpillFile(spill.path, 1 << 30) });
  try {
    await w2.start();
    await drain(w2);
    assertEquals(seen.rejected, ["poison"]);
    assertEquals((await requestsOf(raw, "good")).requests, 5);
    assertEquals((await requestsOf(raw, "poison")).requests, 0);
  } finally {
    await w2.close();
    raw.close();
    await Deno.remove(spill.dir, { recursive: true });
  }
});

Deno.test("usage outage: an unreadable spill line is moved aside and the others are replayed", async () => {
  const raw = await Deno.openKv(":memory:");
  const spill = await tempSpill();
  const good = (pos: number, keyId: string) =>
    encodeEntry({
      chain: "test-chain",
      pos,
      requests: [{
        keyId,
        bucket: { day: "2026-05-04", hour: "10" },
        at: T0,
        lines: [{ model: "m", provider: "p", counters: countersOf(TOKENS, 1, false, false) }],
        sets: [],
      }],
    });
  // A good line, a garbage one, another good one, and a last line cut short by a crash.
  await Deno.writeTextFile(
    spill.path,
    `${good(16_383, "a")}\nnot json\n${good(32_767, "b")}\n{"v":1,"chain":"x","po`,
  );
  const { seen, events } = recorder();
  const w = writerOn(raw, events, { spill: spill.file });
  try {
    await w.start();
    await drain(w);
    assertEquals(seen.badLines, 2);
    assertEquals((await requestsOf(raw, "a")).requests, 1);
    assertEquals((await requestsOf(raw, "b")).requests, 1);
    const aside = (await Deno.readTextFile(`${spill.path}.rejected`)).trim().split("\n");
    assertEquals(aside, ["not json", '{"v":1,"chain":"x","po']);
  } finally {
    await w.close();
    raw.close();
    await Deno.remove(spill.dir, { recursive: true });
  }
});

Deno.test("usage outage: a spill line written before log rows (entries as plain sets) is replayed and read", async () => {
  const raw = await Deno.openKv(":memory:");
  const spill = await tempSpill();
  const id = newId(T0);
  const { key_id: _, ...stored } = entry("old", T0);
  // Exactly as the writer spilled a request with its log entry before entries shared rows.
  const line = JSON.stringify({
    v: 1,
    chain: "old-chain",
    pos: 16_383,
    r: [{
      k: "old",
      d: "2026-05-04",
      h: "10",
      t: T0,
      l: [{ m: "m", p: "p", c: { requests: 1, input_uncached: 10, output: 5, unpriced: 1 } }],
      s: [
        { k: ["reqlog", id], v: { ...stored, key_id: "old" }, x: T0 + 7 * 86_400_000 },
        { k: ["reqlog_key", "old", id], v: null, x: T0 + 7 * 86_400_000 },
      ],
    }],
  });
  await Deno.writeTextFile(spill.path, line + "\n");
  const { seen, events } = recorder();
  const w = writerOn(raw, events, { spill: spill.file });
  try {
    await w.start();
    recordOne(w, "new", 1);
    await drain(w);
    assertEquals(seen.badLines, 0);
    assertEquals(await requestsOf(raw, "old"), { requests: 1, input: 10, output: 5 });
    assertEquals(await loggedCount(raw, "old"), 1);
    assertEquals(await loggedCount(raw, "new"), 1);
    const page = await readRequestLog(raw, { limit: 10 });
    assertEquals(page.requests.find((r) => r.id === id), { id, ...entry("old", T0) });
  } finally {
    await w.close();
    raw.close();
    await Deno.remove(spill.dir, { recursive: true });
  }
});

Deno.test("spill file: lines appended while a replay runs survive its compaction", async () => {
  const spill = await tempSpill();
  const e = (pos: number) => ({
    chain: "c",
    pos,
    requests: [{
      keyId: `k${pos}`,
      bucket: { day: "2026-05-04", hour: "10" },
      at: T0,
      lines: [],
      sets: [],
    }],
  });
  try {
    assertEquals(await spill.file.open(), 0);
    assertEquals(await spill.file.append([e(1), e(2), e(3)]), 3);
    const end = spill.file.size;
    const seen: number[] = [];
    for await (const l of spill.file.read(0, end, T0)) seen.push(l.entry!.pos);
    assertEquals(seen, [1, 2, 3]);
    await spill.file.append([e(4)]); // arrives during the replay
    await spill.file.consume(end);
    const left: number[] = [];
    for await (const l of spill.file.read(0, spill.file.size, T0)) left.push(l.entry!.pos);
    assertEquals(left, [4]);
    assertEquals(spill.file.size, (await Deno.stat(spill.path)).size);
  } finally {
    await Deno.remove(spill.dir, { recursive: true });
  }
});
