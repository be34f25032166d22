/**
 * The usage writer cannot be wedged: a request whose usage Deno KV refuses
 * (its key over KV's size limit) is set aside alone, and every other
 * request of the same batch, and of later ones, is written.
 */
import { assertEquals } from "./support/assert.ts";
import { BucketClock } from "../lib/ops/clock.ts";
import { countersOf } from "../lib/store/usage/counters.ts";
import { UsageReader } from "../lib/store/usage/reader.ts";
import { UsageWriter } from "../lib/store/usage/writer.ts";

const tokens = {
  inputUncached: 10,
  cacheRead: 0,
  cacheWrite: 0,
  cacheWrite1h: 0,
  output: 5,
  webSearch: 0,
  webFetch: 0,
};

Deno.test("usage writer: one poisoned request is set aside; 20 others in its batch are all written", async () => {
  const kv = await Deno.openKv(":memory:");
  const rejected: string[] = [];
  const retries: unknown[] = [];
  const writer = new UsageWriter(kv, new BucketClock("UTC"), 10_000, {
    onRejected: (keyId) => rejected.push(keyId),
    onRetry: (e) => retries.push(e),
  });
  try {
    const at = Date.parse("2026-11-30T10:00:00Z");
    // A model name over KV's 2,048-byte key limit, as an unchecked client could send.
    writer.record("poison", at, [{
      model: "claude-" + "a".repeat(2100),
      provider: "p",
      counters: countersOf(tokens, 1, false, false),
    }]);
    for (let i = 0; i < 20; i++) {
      writer.record("good", at + i, [{
        model: "claude-x",
        provider: "p",
        counters: countersOf(tokens, 1, false, false),
      }]);
    }
    await writer.flush();
    assertEquals(rejected, ["poison"]);
    assertEquals(retries.length, 0, "a refusal is not retried");
    // Later requests are not merged into a failing batch either.
    writer.record("good", at + 100, [{
      model: "claude-x",
      provider: "p",
      counters: countersOf(tokens, 1, false, false),
    }]);
    await writer.flush();
    assertEquals(writer.pending, 0);
    const totals = await new UsageReader(kv).keyTotals("good");
    assertEquals(totals.counters.requests, 21);
    assertEquals(totals.counters.input_uncached, 210);
    assertEquals(totals.counters.output, 105);
    assertEquals(totals.lastUsed, at + 100);
    assertEquals((await new UsageReader(kv).keyTotals("poison")).counters.requests, 0);
  } finally {
    kv.close();
  }
});
