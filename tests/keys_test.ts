/**
 * The key store: random secrets shown once, only their SHA-256 in KV,
 * authentication from memory, changes effective at once on this gateway and
 * within the refresh interval on another one sharing the KV.
 */
import { assert, assertEquals, assertRejects } from "./support/assert.ts";
import { waitFor } from "./support/wait.ts";
import { authenticateClient, presentedSecrets } from "../lib/http/auth.ts";
import { GatewayError } from "../lib/http/errors.ts";
import { KeyNotFound, KeyStore, maskSecret, newSecret, sha256Hex } from "../lib/store/keys.ts";

/** A KV handle that counts reads (get, getMany, list) made through it. */
function countingKv(kv: Deno.Kv): { kv: Deno.Kv; reads: { get: number; list: number } } {
  const reads = { get: 0, list: 0 };
  const proxy = new Proxy(kv, {
    get(target, prop) {
      const v = Reflect.get(target, prop, target);
      if (typeof v !== "function") return v;
      if (prop === "get" || prop === "getMany") {
        return (...args: unknown[]) => {
          reads.get++;
          return v.apply(target, args);
        };
      }
      if (prop === "list") {
        return (...args: unknown[]) => {
          reads.list++;
          return v.apply(target, args);
        };
      }
      return v.bind(target);
    },
  });
  return { kv: proxy, reads };
}

async function memoryStore() {
  const raw = await Deno.openKv(":memory:");
  const { kv, reads } = countingKv(raw);
  const keys = new KeyStore(kv);
  await keys.load();
  return { raw, kv, reads, keys };
}

async function authError(keys: KeyStore, headers: Record<string, string>): Promise<GatewayError> {
  const e = await assertRejects(() => authenticateClient(keys, new Headers(headers), Date.now()));
  assert(e instanceof GatewayError, String(e));
  return e;
}

Deno.test("secrets: sk-gw- prefix, 192 bits from crypto.getRandomValues, all different", () => {
  const seen = new Set<string>();
  for (let i = 0; i < 2000; i++) {
    const s = newSecret();
    assert(/^sk-gw-[A-Za-z0-9_-]{32}$/.test(s), s);
    seen.add(s);
  }
  assertEquals(seen.size, 2000);
  // 32 base64url characters carry 32 x 6 = 192 bits; check they come from the CSPRNG.
  const real = crypto.getRandomValues;
  const asked: number[] = [];
  crypto.getRandomValues = (<T extends ArrayBufferView | null>(a: T): T => {
    asked.push((a as unknown as Uint8Array).byteLength);
    (a as unknown as Uint8Array).fill(0);
    return a;
  }) as typeof crypto.getRandomValues;
  try {
    assertEquals(newSecret(), "sk-gw-" + "A".repeat(32), "every random character is from it");
  } finally {
    crypto.getRandomValues = real;
  }
  assert(asked.reduce((a, b) => a + b, 0) * 8 >= 128, `asked for ${asked} bytes`);
  // Characters are spread over the whole alphabet (no constant positions).
  const chars = new Set([...seen].flatMap((s) => [...s.slice(6)]));
  assertEquals(chars.size, 64);
});

Deno.test("only the SHA-256 of a secret is stored; the display form is masked", async () => {
  const { raw, keys } = await memoryStore();
  try {
    const { record, secret } = await keys.create({ name: "alice" });
    const digest = new Uint8Array(
      await crypto.subtle.digest("SHA-256", new TextEncoder().encode(secret)),
    );
    const hex = [...digest].map((b) => b.toString(16).padStart(2, "0")).join("");
    assertEquals(record.hash, hex);
    assertEquals(await sha256Hex(secret), hex);
    assertEquals(record.masked, maskSecret(secret));
    assertEquals(record.masked, `${secret.slice(0, 8)}...${secret.slice(-4)}`);
    assertEquals(maskSecret("short"), "*****");
    assertEquals(record.source, "gateway");
    assert(/^[0-9A-HJKMNP-TV-Z]{26}$/.test(record.id), `ULID id: ${record.id}`);
    assert(!Number.isNaN(Date.parse(record.created)));
    let entries = 0;
    for await (const e of raw.list({ prefix: [] })) {
      entries++;
      const text = Deno.inspect([e.key, e.value], { depth: 10, strAbbreviateSize: 1e6 });
      assert(!text.includes(secret), text);
      assert(!text.includes(secret.slice(8, 34)), "not even the hidden middle");
    }
    assertEquals(entries, 3, "record, hash index, version counter");
    assertEquals((await raw.get(["key_hash", hex])).value, record.id);
    const stored = (await raw.get<Record<string, unknown>>(["keys", record.id])).value!;
    assertEquals(Object.keys(stored).sort(), [
      "created",
      "enabled",
      "hash",
      "id",
      "masked",
      "name",
      "source",
    ]);
  } finally {
    raw.close();
  }
});

Deno.test("lookup reads no KV, and a warm key is not even hashed again", async () => {
  const { raw, reads, keys } = await memoryStore();
  try {
    const { record, secret } = await keys.create({ name: "hot" });
    reads.get = reads.list = 0;
    const realDigest = crypto.subtle.digest;
    let digests = 0;
    crypto.subtle.digest = ((...args: Parameters<SubtleCrypto["digest"]>) => {
      digests++;
      return realDigest.apply(crypto.subtle, args);
    }) as SubtleCrypto["digest"];
    try {
      assertEquals((await keys.lookup(secret))?.id, record.id);
      assertEquals(digests, 1, "cold: one hash");
      for (let i = 0; i < 100; i++) assertEquals((await keys.lookup(secret))?.id, record.id);
      assertEquals(digests, 1, "warm: no hash");
      const headers = new Headers({ "x-api-key": secret });
      for (let i = 0; i < 100; i++) {
        assertEquals((await authenticateClient(keys, headers, Date.now())).id, record.id);
      }
      assertEquals(await keys.lookup("sk-gw-unknown"), undefined);
    } finally {
      crypto.subtle.digest = realDigest;
    }
    assertEquals(reads, { get: 0, list: 0 }, "authentication never reads KV");
  } finally {
    raw.close();
  }
});

Deno.test("disable, enable, delete and rotate take effect in the same store at once", async () => {
  const { raw, keys } = await memoryStore();
  try {
    const { record, secret } = await keys.create({ name: "k" });
    const h = { "x-api-key": secret };
    assertEquals((await authenticateClient(keys, new Headers(h), Date.now())).id, record.id); // warm

    await keys.setEnabled(record.id, false);
    const off = await authError(keys, h);
    assertEquals([off.status, off.code], [403, "key_disabled"]);
    await keys.setEnabled(record.id, true);
    assertEquals((await authenticateClient(keys, new Headers(h), Date.now())).enabled, true);

    const { secret: fresh, record: rotated } = await keys.rotate(record.id);
    assertEquals(rotated.id, record.id);
    assert(fresh !== secret && fresh.startsWith("sk-gw-"));
    assertEquals(await keys.lookup(secret), undefined, "old secret gone");
    assertEquals((await keys.lookup(fresh))?.id, record.id);
    assertEquals((await authError(keys, h)).status, 401);
    assertEquals(keys.get(record.id)?.hash, await sha256Hex(fresh));

    await keys.delete(record.id);
    assertEquals(await keys.lookup(fresh), undefined);
    assertEquals((await authError(keys, { "x-api-key": fresh })).status, 401);
    assertEquals(keys.list().length, 0, "deleted keys are not listed");
    assertEquals(keys.get(record.id)?.name, "k", "but kept for usage history");
    assert(keys.get(record.id)?.deleted);
    await assertRejects(() => keys.setEnabled(record.id, true)).then((e) =>
      assert(e instanceof KeyNotFound)
    );
    await assertRejects(() => keys.rotate(record.id));
    await assertRejects(() => keys.delete("01NOSUCHKEY"));

    // A reload from KV agrees with the in-memory state.
    const again = new KeyStore(raw);
    await again.load();
    assertEquals(await again.lookup(fresh), undefined);
    assertEquals(await again.lookup(secret), undefined);
    assertEquals(again.get(record.id)?.deleted, keys.get(record.id)?.deleted);
  } finally {
    raw.close();
  }
});

Deno.test("a second store on the same KV file follows changes via the keys_version counter", async () => {
  const dir = await Deno.makeTempDir();
  const path = `${dir}/gateway.kv`;
  const kvA = await Deno.openKv(path);
  const counted = countingKv(await Deno.openKv(path));
  const a = new KeyStore(kvA);
  const b = new KeyStore(counted.kv);
  try {
    await a.load();
    await b.load();
    const version = async () => (await kvA.get<Deno.KvU64>(["keys_version"])).value?.value ?? 0n;

    const { record, secret } = await a.create({ name: "shared" });
    assertEquals(await version(), 1n);
    assertEquals(await b.lookup(secret), undefined, "b has not reloaded yet");

    const reloadErrors: unknown[] = [];
    b.watch(100, (e) => reloadErrors.push(e));
    await waitFor("b sees the new key", async () => (await b.lookup(secret))?.id === record.id);

    // While nothing changes, b only reads the counter, never lists keys again.
    counted.reads.list = 0;
    counted.reads.get = 0;
    await waitFor("b polls the counter twice", () => counted.reads.get >= 2);
    assertEquals(counted.reads.list, 0);

    await a.setEnabled(record.id, false);
    assertEquals(await version(), 2n);
    await waitFor("b sees it disabled", async () => (await b.lookup(secret))?.enabled === false);
    const e = await authError(b, { authorization: `Bearer ${secret}` });
    assertEquals(e.status, 403);

    await a.setEnabled(record.id, true);
    const { secret: fresh } = await a.rotate(record.id);
    await waitFor("b sees the rotation", async () => (await b.lookup(fresh))?.enabled === true);
    assertEquals(await b.lookup(secret), undefined);

    await a.delete(record.id);
    assertEquals(await version(), 5n);
    await waitFor("b sees the deletion", async () => (await b.lookup(fresh)) === undefined);
    assertEquals(b.list().length, 0);
    assertEquals(reloadErrors, []);
  } finally {
    b.close();
    a.close();
    kvA.close();
    counted.kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("authenticateClient: x-api-key, Bearer, or both with different values", async () => {
  const { raw, keys } = await memoryStore();
  try {
    const { record: good, secret: ok } = await keys.create({ name: "good" });
    const { record: off, secret: disabled } = await keys.create({ name: "off" });
    await keys.setEnabled(off.id, false);
    const unknown = "sk-gw-unknownunknownunknownunknown00";
    const pass = async (h: Record<string, string>) =>
      assertEquals(
        (await authenticateClient(keys, new Headers(h), Date.now())).id,
        good.id,
        JSON.stringify(h),
      );

    await pass({ "x-api-key": ok });
    await pass({ authorization: `Bearer ${ok}` });
    await pass({ authorization: `bearer   ${ok}  ` });
    await pass({ "x-api-key": ok, authorization: `Bearer ${ok}` });
    // Claude Code may send both; either one being valid is enough.
    await pass({ "x-api-key": ok, authorization: `Bearer ${unknown}` });
    await pass({ "x-api-key": unknown, authorization: `Bearer ${ok}` });
    await pass({ "x-api-key": disabled, authorization: `Bearer ${ok}` });
    await pass({ "x-api-key": ok, authorization: `Bearer ${disabled}` });

    for (
      const h of [
        { "x-api-key": disabled } as Record<string, string>,
        { authorization: `Bearer ${disabled}` },
        { "x-api-key": disabled, authorization: `Bearer ${unknown}` },
        { "x-api-key": unknown, authorization: `Bearer ${disabled}` },
      ]
    ) {
      const e = await authError(keys, h);
      assertEquals([e.status, e.code], [403, "key_disabled"], JSON.stringify(h));
    }
    for (
      const [h, code] of [
        [{}, "missing_api_key"],
        [{ "x-api-key": "  " }, "missing_api_key"],
        [{ authorization: `Basic ${btoa("user:" + ok)}` }, "missing_api_key"],
        [{ "x-api-key": unknown }, "invalid_api_key"],
        [{ authorization: `Bearer ${unknown}` }, "invalid_api_key"],
        [{ "x-api-key": unknown, authorization: "Bearer sk-gw-other" }, "invalid_api_key"],
      ] as const
    ) {
      const e = await authError(keys, h);
      assertEquals([e.status, e.code], [401, code], JSON.stringify(h));
      assert(!e.message.includes(ok), "no secret in the message");
    }
    assertEquals(
      presentedSecrets(new Headers({ "x-api-key": ok, authorization: `Bearer ${ok}` })),
      [ok],
      "the same secret twice is looked up once",
    );
  } finally {
    raw.close();
  }
});
