/**
 * Luna `keys.json` import (`KEYS_FILE`): keys stored hashed with their names,
 * flags, creation dates and `allowed_providers`; Luna's UTC+8 daily/hourly
 * history filed into the same buckets as live traffic, exactly and only once.
 */
import { fileURLToPath } from "node:url";
import { assert, assertEquals, assertIncludes, assertRejects } from "./support/assert.ts";
import { ADMIN_KEY, post, startStack, startTestGateway, testConfig } from "./support/gateway.ts";
import { LUNA_ENV, lunaRegistry, lunaReply, lunaUpstream } from "./support/luna.ts";
import { UNUSED_URL } from "./support/upstream.ts";
import { BucketClock } from "../lib/ops/clock.ts";
import { KeyStore, maskSecret, sha256Hex } from "../lib/store/keys.ts";
import {
  apportion,
  importLunaFile,
  LunaImportError,
  lunaPieces,
  UNKNOWN_MODEL,
} from "../lib/store/luna_import.ts";
import { startGateway } from "../lib/ops/server.ts";

type Json = Record<string, unknown>;
// deno-lint-ignore no-explicit-any
type Any = any;

const KEYS_PATH = fileURLToPath(new URL("./data/luna_keys.json", import.meta.url));
const LUNA: Any = JSON.parse(Deno.readTextFileSync(KEYS_PATH));
const SECRETS = Object.keys(LUNA.keys);
const byName = (name: string): [string, Any] =>
  Object.entries(LUNA.keys).find(([, k]: Any) => k.name === name) as [string, Any];
const [ALICE, alice] = byName("alice-laptop");
const [BOB, bob] = byName("bob-old-ci");
const [CAROL, carol] = byName("carol-deepseek-only");

async function setup(usageTz: string) {
  const stack = await startStack(lunaReply, {
    registry: lunaRegistry,
    env: LUNA_ENV,
    config: { keysFile: KEYS_PATH, usageTz },
  });
  const { t } = stack;
  return {
    ...stack,
    async admin(path: string): Promise<Any> {
      const res = await fetch(t.url + path, { headers: { "x-api-key": ADMIN_KEY } });
      assertEquals(res.status, 200, path);
      return await res.json();
    },
    idOf: (name: string): string => t.gw.ctx.keys.list().find((k) => k.name === name)!.id,
  };
}

/** Every KV entry, with u64 values made comparable. */
async function dump(kv: Deno.Kv): Promise<unknown[]> {
  const out: unknown[] = [];
  for await (const e of kv.list({ prefix: [] })) {
    const v = e.value instanceof Deno.KvU64 ? `u64:${e.value.value}` : e.value;
    out.push([e.key, v, e.versionstamp]);
  }
  return out;
}

/** A Luna hour label (UTC+8) as a bucket label in another zone. */
function movedHour(label: string, tz: string): string {
  const ms = Date.parse(`${label.replace(" ", "T")}:00+08:00`);
  const b = new BucketClock(tz).bucket(ms);
  return `${b.day} ${b.hour}:00`;
}

const stats = (m: Any) => ({ total: m.total, requests: m.requests });
const statsOf = (byModel: Any) =>
  Object.fromEntries(Object.entries<Any>(byModel).map(([m, s]) => [m, stats(s)]));

Deno.test("KEYS_FILE at start: keys keep names, flags, created and allowed_providers", async () => {
  const s = await setup("UTC");
  try {
    const { keys } = await s.admin("/admin/keys");
    assertEquals(keys.length, 4, "three Luna keys and the test key");
    const rows = Object.fromEntries(keys.map((k: Json) => [k.name, k]));
    const a = rows["alice-laptop"], b = rows["bob-old-ci"], c = rows["carol-deepseek-only"];
    assertEquals([a.enabled, b.enabled, c.enabled], [true, false, true]);
    // Luna wrote naive UTC+8 times.
    assertEquals(a.created, "2026-01-10T01:15:30.123Z");
    assertEquals(b.created, "2026-01-12T10:00:00.000Z");
    assertEquals(c.created, "2026-01-13T00:00:00.000Z");
    assertEquals(a.allowed_providers, null);
    assertEquals(c.allowed_providers, carol.allowed_providers);
    assertEquals(c.allowed_providers, ["deepseek"]);
    assertEquals(a.key, maskSecret(ALICE));
    assertEquals(a.source, "luna");
    assertEquals(
      [a.total_input, a.total_output, a.total_requests],
      [alice.usage.total_input, alice.usage.total_output, alice.usage.total_requests],
    );
    assertEquals(
      [b.total_input, b.total_output, b.total_requests],
      [bob.usage.total_input, bob.usage.total_output, bob.usage.total_requests],
    );
    assertEquals([c.total_input, c.total_output, c.total_requests, c.last_used], [0, 0, 0, null]);
    assertEquals(a.last_used, "2026-01-15T02:42:07.654Z");

    const summary = await s.admin("/admin/usage");
    assertEquals(summary.total_keys, 4);
    assertEquals(summary.active_keys, 3);
    assertEquals(summary.total_requests, 12);
    assertEquals(summary.total_input_tokens, 3600);
    assertEquals(summary.total_output_tokens, 1751);
    assert(s.t.logs.some((l) => l.includes("luna keys imported")));
    for (const l of s.t.logs) {
      for (const secret of [...SECRETS, LUNA.admin_key]) assert(!l.includes(secret), l);
    }
  } finally {
    await s.close();
  }
});

Deno.test("Luna secrets authenticate; the disabled one gets 403; allowed_providers routes", async () => {
  const s = await setup("UTC");
  try {
    const chat = async (secret: string, model: string) => {
      const res = await post(`${s.t.url}/v1/chat/completions`, { model, messages: [] }, {
        authorization: `Bearer ${secret}`,
      });
      return { status: res.status, json: await res.json() };
    };
    assertEquals((await chat(ALICE, "kimi-k2.5")).status, 200);
    assertEquals(s.up.seen.at(-1)!.path, "/aiberm/chat/completions", "kimi: aiberm first");

    const off = await chat(BOB, "kimi-k2.5");
    assertEquals(off.status, 403);
    assertEquals(off.json.error.type, "permission_error");
    const msg = await post(`${s.t.url}/v1/messages`, { model: "claude-sonnet-4-5" }, {
      "x-api-key": BOB,
    });
    assertEquals(msg.status, 403);
    assertEquals((await msg.json()).error.type, "permission_error");

    // carol may use only "deepseek": the chain [aiberm, deepseek] walks on to it.
    assertEquals((await chat(CAROL, "deepseek-chat")).status, 200);
    assertEquals(s.up.seen.at(-1)!.path, "/deepseek/chat/completions");
    assertEquals(s.up.seen.at(-1)!.headers.get("authorization"), "Bearer up-deepseek");
    const kimi = await chat(CAROL, "kimi-k2.5");
    assertEquals(kimi.status, 403);
    assertEquals(kimi.json.error.code, "provider_not_allowed");
    const claude = await post(`${s.t.url}/v1/messages`, { model: "claude-sonnet-4-5" }, {
      "x-api-key": CAROL,
    });
    assertEquals(claude.status, 403);
    assertEquals((await claude.json()).error.type, "permission_error");
    assertEquals((await chat("sk-luna-not-a-key", "kimi-k2.5")).status, 401);
    assertEquals(s.up.seen.length, 2, "refused calls never reach an upstream");

    const models = await fetch(`${s.t.url}/v1/models`, { headers: { "x-api-key": CAROL } });
    const ids = (await models.json()).data.map((m: Json) => m.id);
    assertEquals(ids, ["deepseek-chat", "deepseek-reasoner"], "carol's models: deepseek only");
  } finally {
    await s.close();
  }
});

Deno.test("secrets are stored only as SHA-256: no KV key or value holds one", async () => {
  const s = await setup("UTC");
  try {
    const kv = s.t.gw.ctx.kv;
    const secrets = [...SECRETS, LUNA.admin_key, s.t.secret];
    let entries = 0;
    for await (const e of kv.list({ prefix: [] })) {
      entries++;
      const text = Deno.inspect([e.key, e.value], { depth: 20, strAbbreviateSize: 1e6 });
      for (const secret of secrets) {
        assert(!text.includes(secret), `secret stored in ${text.slice(0, 200)}`);
        assert(!text.includes(secret.slice(8, 30)), "not even most of one");
      }
    }
    assert(entries > 20, "the scan saw the whole store");
    for (const secret of SECRETS) {
      const id = (await kv.get<string>(["key_hash", await sha256Hex(secret)])).value;
      assert(id, "each Luna secret is found by its hash");
      assertEquals((await kv.get<Json>(["keys", id])).value!.hash, await sha256Hex(secret));
    }
  } finally {
    await s.close();
  }
});

Deno.test("usage history in Asia/Shanghai: Luna's days, hours and per-model figures, exactly", async () => {
  const s = await setup("Asia/Shanghai");
  try {
    for (const [name, luna] of [["alice-laptop", alice], ["bob-old-ci", bob]]) {
      const id = s.idOf(name);
      const { usage: u, name: n, enabled } = await s.admin(`/admin/keys/${id}/usage`);
      assertEquals([n, enabled], [name, luna.enabled]);
      assertEquals(u.total_input, luna.usage.total_input);
      assertEquals(u.total_output, luna.usage.total_output);
      assertEquals(u.total_requests, luna.usage.total_requests);
      assertEquals(Object.keys(u.daily), Object.keys(luna.usage.daily).sort());
      for (const [day, d] of Object.entries<Any>(luna.usage.daily)) {
        const got = u.daily[day];
        assertEquals([got.input, got.output, got.requests], [d.input, d.output, d.requests], day);
        assertEquals(statsOf(got.by_model), statsOf(d.by_model), day);
        for (const m of Object.values<Any>(got.by_model)) assertEquals(m.total, m.input + m.output);
      }
      assertEquals(Object.keys(u.hourly), Object.keys(luna.usage.hourly).sort());
      for (const [hour, h] of Object.entries<Any>(luna.usage.hourly)) {
        assertEquals(statsOf(u.hourly[hour].by_model), statsOf(h.by_model), hour);
      }
      assertEquals(statsOf(u.total_by_model), statsOf(luna.usage.total_by_model));
    }
    const carolId = s.idOf("carol-deepseek-only");
    const c = await s.admin(`/admin/keys/${carolId}/usage`);
    assertEquals([c.usage.total_requests, c.usage.daily, c.usage.hourly], [0, {}, {}]);

    // The daily report joins both keys by name, days ascending.
    const { days } = await s.admin("/admin/usage/daily");
    assertEquals(days.map((d: Json) => d.date), ["2026-01-14", "2026-01-15"]);
    const [d14, d15] = days;
    assertEquals([d14.total_input, d14.total_output, d14.total_requests], [1600, 750, 7]);
    assertEquals([d15.total_input, d15.total_output, d15.total_requests], [2000, 1001, 5]);
    assertEquals(
      statsOf(d14.by_tenant["alice-laptop"]),
      statsOf(alice.usage.daily["2026-01-14"].by_model),
    );
    assertEquals(d14.by_tenant["bob-old-ci"]["claude-sonnet-4-5"].total, 150);
    assertEquals(Object.keys(d14.by_model), ["kimi-k2.5", "deepseek-chat", "claude-sonnet-4-5"]);
    const hours = await s.admin("/admin/usage/hourly?date=2026-01-14");
    assertEquals(
      hours.hours.map((h: Json) => h.hour),
      ["2026-01-14 07:00", "2026-01-14 12:00", "2026-01-14 23:00"],
    );
  } finally {
    await s.close();
  }
});

Deno.test("usage history in UTC: Luna's UTC+8 hours move back eight hours, across midnight", async () => {
  const s = await setup("UTC");
  try {
    const id = s.idOf("alice-laptop");
    const { usage: u } = await s.admin(`/admin/keys/${id}/usage`);
    assertEquals(Object.keys(u.hourly), [
      "2026-01-13 23:00",
      "2026-01-14 15:00",
      "2026-01-14 16:00",
      "2026-01-15 02:00",
    ]);
    for (const [hour, h] of Object.entries<Any>(alice.usage.hourly)) {
      assertEquals(statsOf(u.hourly[movedHour(hour, "UTC")].by_model), statsOf(h.by_model), hour);
    }
    // Luna's 14 January (UTC+8) starts at 16:00 UTC on the 13th.
    const days = Object.entries<Any>(u.daily).map(([d, v]) => [d, v.input, v.output, v.requests]);
    assertEquals(days, [
      ["2026-01-13", 682, 318, 3],
      ["2026-01-14", 2018, 982, 6],
      ["2026-01-15", 800, 401, 2],
    ]);
    assertEquals(statsOf(u.total_by_model), statsOf(alice.usage.total_by_model));
    assertEquals(u.total_input, 3500);

    // Another zone, computed from the labels: New York is UTC-5 in January.
    const ny = await setup("America/New_York");
    try {
      const nyId = ny.idOf("alice-laptop");
      const { usage: v } = await ny.admin(`/admin/keys/${nyId}/usage`);
      const want = Object.keys(alice.usage.hourly).map((h) => movedHour(h, "America/New_York"));
      assertEquals(Object.keys(v.hourly), want.sort());
      assertEquals(want[0], "2026-01-13 18:00");
    } finally {
      await ny.close();
    }
  } finally {
    await s.close();
  }
});

Deno.test("importLunaFile twice, or a restart with KEYS_FILE, changes nothing in KV", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const keys = new KeyStore(kv);
    await keys.load();
    const clock = new BucketClock("UTC");
    const first = await importLunaFile(KEYS_PATH, kv, keys, clock);
    assertEquals(first.imported, 3);
    assertEquals(first.keys.map((k) => k.name).sort(), [
      "alice-laptop",
      "bob-old-ci",
      "carol-deepseek-only",
    ]);
    const before = await dump(kv);
    const second = await importLunaFile(KEYS_PATH, kv, keys, clock);
    assertEquals([second.imported, second.skipped], [0, 3]);
    assertEquals(second.keys.map((k) => k.id).sort(), first.keys.map((k) => k.id).sort());
    assertEquals(await dump(kv), before);

    // A fresh process (new KeyStore) over the same KV, importing at start.
    const up = lunaUpstream();
    const gw = await startGateway({
      config: testConfig({ keysFile: KEYS_PATH }),
      registry: lunaRegistry(up.url),
      env: (n) => LUNA_ENV[n],
      kv,
      logSink: () => {},
    });
    try {
      assertEquals(await dump(kv), before);
      const res = await post(`${gw.url}/v1/chat/completions`, { model: "glm-5" }, {
        "x-api-key": ALICE,
      });
      assertEquals(res.status, 200, "imported keys work after a restart");
      await res.body?.cancel();
    } finally {
      await gw.shutdown();
      await up.close();
    }
  } finally {
    kv.close();
  }
});

Deno.test("a changed keys file: keys that differ are reported by field and left unchanged", async () => {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  try {
    const keys = new KeyStore(kv);
    await keys.load();
    const clock = new BucketClock("UTC");
    await importLunaFile(KEYS_PATH, kv, keys, clock);
    const before = await dump(kv);

    const changed = structuredClone(LUNA);
    changed.keys[ALICE].name = "alice-renamed";
    changed.keys[BOB].enabled = !bob.enabled;
    changed.keys[CAROL].allowed_providers = ["kimi", "deepseek"];
    changed.keys[CAROL].usage.total_requests = 4; // Luna served carol after the import
    const file = `${dir}/keys.json`;
    await Deno.writeTextFile(file, JSON.stringify(changed));
    const r = await importLunaFile(file, kv, keys, clock);
    assertEquals([r.imported, r.skipped], [0, 3]);
    const differs = Object.fromEntries(r.keys.map((k) => [k.name, k.differs ?? []]));
    assertEquals(differs, {
      "alice-renamed": ["name"],
      "bob-old-ci": ["enabled"],
      "carol-deepseek-only": ["allowed_providers", "usage"],
    });
    assertEquals(await dump(kv), before, "nothing overwritten");

    // The same providers in another order are the same set.
    changed.keys[CAROL].allowed_providers = [...(carol.allowed_providers ?? [])].reverse();
    changed.keys[CAROL].usage = carol.usage;
    changed.keys[ALICE].name = alice.name;
    changed.keys[BOB].enabled = bob.enabled;
    await Deno.writeTextFile(file, JSON.stringify(changed));
    const same = await importLunaFile(file, kv, keys, clock);
    assertEquals(same.keys.filter((k) => k.differs).map((k) => k.name), []);

    // A key deleted in the gateway since its import is reported, not brought back.
    await keys.delete(r.keys.find((k) => k.name === "bob-old-ci")!.id);
    const gone = await importLunaFile(KEYS_PATH, kv, keys, clock);
    assertEquals(gone.keys.find((k) => k.name === "bob-old-ci")!.differs, ["deleted"]);

    // At start (KEYS_FILE), the gateway logs which keys differ.
    await Deno.writeTextFile(file, JSON.stringify({ keys: { [ALICE]: { ...alice, name: "x" } } }));
    const t = await startTestGateway({
      registry: lunaRegistry("http://127.0.0.1:9"),
      env: LUNA_ENV,
      config: { keysFile: file },
      kv,
    });
    await t.close();
    const warn = t.logs.map((l) => JSON.parse(l)).find((l) => l.msg.includes("differ"));
    assert(warn, t.logs.join("\n"));
    assertEquals(warn.keys, [{
      id: r.keys.find((k) => k.name === "alice-renamed")!.id,
      name: "x",
      differs: ["name"],
    }]);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("keys imported before usage fingerprints: usage is checked against the stored rows", async () => {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  try {
    const keys = new KeyStore(kv);
    await keys.load();
    await importLunaFile(KEYS_PATH, kv, keys, new BucketClock("UTC"));
    const fingerprint = ["luna_import", await sha256Hex(ALICE), "usage"];
    const kept = (await kv.get(fingerprint)).value;
    assert(kept, "a fingerprint is stored with each import");
    await kv.delete(fingerprint);
    // Another USAGE_TZ since the import does not make the usage differ.
    const same = await importLunaFile(KEYS_PATH, kv, keys, new BucketClock("Asia/Tokyo"));
    assertEquals(same.differing, 0);
    assertEquals((await kv.get(fingerprint)).value, kept, "checked once, then fingerprinted");

    await kv.delete(fingerprint);
    const changed = structuredClone(LUNA);
    changed.keys[ALICE].usage.total_output += 100;
    const file = `${dir}/keys.json`;
    await Deno.writeTextFile(file, JSON.stringify(changed));
    const r = await importLunaFile(file, kv, keys, new BucketClock("UTC"));
    assertEquals(r.keys.find((k) => k.name === "alice-laptop")!.differs, ["usage"]);
    assertEquals((await kv.get(fingerprint)).value, null, "no fingerprint for usage that differs");
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("an import interrupted after some batches resumes without double counting", async () => {
  const kv = await Deno.openKv(":memory:");
  try {
    const keys = new KeyStore(kv);
    await keys.load();
    const clock = new BucketClock("UTC");
    await importLunaFile(KEYS_PATH, kv, keys, clock);
    const before = await dump(kv);
    // As if the process died after writing the key and its usage, before "done".
    const hash = await sha256Hex(ALICE);
    await kv.set(["luna_import", hash], "started");
    const r = await importLunaFile(KEYS_PATH, kv, keys, clock);
    assertEquals([r.imported, r.skipped], [1, 2]);
    const after = await dump(kv);
    const usageOnly = (d: unknown[]) => d.filter((e: Any) => e[0][0] === "usage");
    assertEquals(usageOnly(after), usageOnly(before), "no usage counted twice");
    assertEquals(after.length, before.length);
  } finally {
    kv.close();
  }
});

Deno.test("a long history with many models imports in batches that fit KV's commit limits", async () => {
  const dir = await Deno.makeTempDir();
  const kv = await Deno.openKv(":memory:");
  try {
    const models = [
      // Aggregator-style ids are long; so are the KV keys built from them.
      "accounts/fireworks/models/deepseek-v3p1-terminus-2025-09-22-preview",
      "openrouter/meta-llama/llama-3.1-405b-instruct:free:extended",
      "claude-opus-4-6-thinking-20260115-with-a-long-suffix",
    ];
    const daily: Json = {}, hourly: Json = {};
    let tin = 0, tout = 0, treq = 0;
    for (let d = 1; d <= 20; d++) {
      const day = `2026-02-${String(d).padStart(2, "0")}`;
      const by: Json = {};
      let din = 0, dout = 0, dreq = 0;
      for (const [i, m] of models.entries()) {
        const input = 1000 * d + 7 * i + 1, output = 31 * d + i, requests = 24 + i;
        by[m] = { total: input + output, requests };
        din += input;
        dout += output;
        dreq += requests;
      }
      daily[day] = { input: din, output: dout, requests: dreq, by_model: by };
      for (let h = 0; h < 24; h++) {
        const hb: Json = {};
        for (const [i, m] of models.entries()) {
          const total = (by[m] as Any).total;
          // Uneven hours that add up to the day's total.
          hb[m] = {
            total: h < 23 ? Math.floor(total / 24) + (h % 3) : 0,
            requests: h === 23 ? i : 1,
          };
        }
        hourly[`${day} ${String(h).padStart(2, "0")}:00`] = { by_model: hb };
      }
      for (const m of models) {
        const hs = Object.entries<Any>(hourly).filter(([k]) => k.startsWith(day));
        const sum = hs.reduce((a, [, v]) => a + v.by_model[m].total, 0);
        (hourly[`${day} 23:00`] as Any).by_model[m].total = (by[m] as Any).total - sum;
      }
      tin += din;
      tout += dout;
      treq += dreq;
    }
    const secret = "sk-luna-long-history-0123456789abcdef";
    const file = `${dir}/keys.json`;
    await Deno.writeTextFile(
      file,
      JSON.stringify({
        admin_key: "x",
        keys: {
          [secret]: {
            name: "heavy",
            enabled: true,
            created: "2026-01-01T00:00:00",
            usage: {
              total_input: tin,
              total_output: tout,
              total_requests: treq,
              daily,
              hourly,
            },
          },
        },
      }),
    );
    const keys = new KeyStore(kv);
    await keys.load();
    const r = await importLunaFile(file, kv, keys, new BucketClock("Asia/Shanghai"));
    assertEquals(r.imported, 1);
    const batches = [];
    for await (const e of kv.list({ prefix: ["luna_import", await sha256Hex(secret)] })) {
      batches.push(e.key);
    }
    assert(batches.length > 5, `several batches (${batches.length})`);

    const id = r.keys[0].id;
    const total = async (f: string) =>
      Number((await kv.get<Deno.KvU64>(["usage", "key", id, f])).value?.value ?? 0n);
    assertEquals([await total("input_uncached"), await total("output")], [tin, tout]);
    assertEquals(await total("requests"), treq);
    // Every Luna hour's per-model total survives.
    const rows = new Map<string, number>();
    for await (const e of kv.list<Deno.KvU64>({ prefix: ["usage", "k", id] })) {
      const [, , , day, hour, model, , field] = e.key as string[];
      if (field === "requests") continue;
      const k = `${day} ${hour}:00|${model}`;
      rows.set(k, (rows.get(k) ?? 0) + Number(e.value.value));
    }
    for (const [hour, h] of Object.entries<Any>(hourly)) {
      for (const [m, v] of Object.entries<Any>(h.by_model)) {
        assertEquals(rows.get(`${hour}|${m}`) ?? 0, v.total, `${hour} ${m}`);
      }
    }
    const before = await dump(kv);
    await importLunaFile(file, kv, keys, new BucketClock("Asia/Shanghai"));
    assertEquals(await dump(kv), before);
  } finally {
    kv.close();
    await Deno.remove(dir, { recursive: true });
  }
});

Deno.test("a keys file that is not Luna's shape stops start-up with one message", async () => {
  const dir = await Deno.makeTempDir();
  try {
    const bad = `${dir}/keys.json`;
    await Deno.writeTextFile(bad, JSON.stringify({ admin_key: "x", keys: ["sk-1"] }));
    const kv = await Deno.openKv(":memory:");
    try {
      const keys = new KeyStore(kv);
      const e = await assertRejects(() => importLunaFile(bad, kv, keys, new BucketClock("UTC")));
      assert(e instanceof LunaImportError);
      assertIncludes(e.message, bad);
      assertIncludes(e.message, "keys");
      await Deno.writeTextFile(bad, "{ not json");
      const e2 = await assertRejects(() => importLunaFile(bad, kv, keys, new BucketClock("UTC")));
      assertIncludes(e2.message, bad);
      const e3 = await assertRejects(() =>
        startTestGateway({
          registry: lunaRegistry(UNUSED_URL),
          config: { keysFile: `${dir}/missing.json` },
          kv,
        })
      );
      assertIncludes(e3.message, "missing.json");
      assertEquals((await dump(kv)).length, 0, "nothing was written");
    } finally {
      kv.close();
    }
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});

// ---- the pure parts ----

Deno.test("apportion: exact sums, proportional shares, largest remainders first", () => {
  assertEquals(apportion(10, [1, 1, 1]), [4, 3, 3]);
  assertEquals(apportion(1091, [1000, 600]), [682, 409]);
  assertEquals(apportion(2000, [1201, 1800]), [800, 1200]);
  assertEquals(apportion(7, [0, 5, 0]), [0, 7, 0]);
  assertEquals(apportion(5, [0, 0]), [5, 0], "no weights: all to the first");
  assertEquals(apportion(0, [3, 4]), [0, 0]);
  assertEquals(apportion(9, []), []);
  assertEquals(apportion(3, [1, 1, 1, 1, 1]), [1, 1, 1, 0, 0], "ties: earliest first");
  assertEquals(apportion(2, [1, 2, 2]), [0, 1, 1]);
  for (let seed = 1; seed < 300; seed++) {
    const weights = Array.from(
      { length: 1 + (seed % 7) },
      (_, i) => (seed * 7919 + i * 104729) % 977,
    );
    const total = (seed * 2654435761) % 1_000_003;
    const out = apportion(total, weights);
    const sum = weights.reduce((a, b) => a + b, 0);
    assertEquals(out.reduce((a, b) => a + b, 0), sum > 0 || total > 0 ? total : 0, `seed ${seed}`);
    if (sum > 0) {
      out.forEach((v, i) => {
        const exact = (total * weights[i]) / sum;
        assert(v >= Math.floor(exact) && v <= Math.ceil(exact), `seed ${seed}: within one`);
      });
    }
  }
  assertEquals(apportion(1e12 + 1, [1, 1]), [5e11 + 1, 5e11]);
});

type LunaUsage = Parameters<typeof lunaPieces>[0];

function usage(u: Partial<LunaUsage>): LunaUsage {
  return { total_input: 0, total_output: 0, total_requests: 0, daily: {}, hourly: {}, ...u };
}

function sum(pieces: ReturnType<typeof lunaPieces>, f: (p: Any) => boolean = () => true) {
  const s = { input: 0, output: 0, requests: 0 };
  for (const p of pieces.filter(f)) {
    s.input += p.input;
    s.output += p.output;
    s.requests += p.requests;
  }
  return s;
}

const LUNA_MIDNIGHT_0114 = Date.parse("2026-01-14T00:00:00+08:00");
const H = 3600_000;

Deno.test("lunaPieces: per-day, per-model and per-hour totals are exact", () => {
  const luna = usage({
    total_input: 1500,
    total_output: 700,
    total_requests: 6,
    daily: { "2026-01-14": alice.usage.daily["2026-01-14"] },
    hourly: {
      "2026-01-14 07:00": alice.usage.hourly["2026-01-14 07:00"],
      "2026-01-14 23:00": alice.usage.hourly["2026-01-14 23:00"],
    },
  });
  const pieces = lunaPieces(luna, 0);
  assertEquals(sum(pieces), { input: 1500, output: 700, requests: 6 });
  assert(!pieces.some((p) => p.model === UNKNOWN_MODEL), "nothing left over");
  assertEquals(
    pieces.map((p) => [(p.at - LUNA_MIDNIGHT_0114) / H, p.model, p.input, p.output, p.requests]),
    [
      [7, "kimi-k2.5", 682, 318, 3],
      [23, "kimi-k2.5", 409, 191, 1],
      [23, "deepseek-chat", 409, 191, 2],
    ],
  );
  // Ties: 5 + 5 in each hour must stay 5 + 5 (input and output split per hour).
  const even = lunaPieces(
    usage({
      total_input: 5,
      total_output: 5,
      total_requests: 2,
      daily: {
        "2026-01-14": {
          input: 5,
          output: 5,
          requests: 2,
          by_model: { m: { total: 10, requests: 2 } },
        },
      },
      hourly: {
        "2026-01-14 01:00": { by_model: { m: { total: 5, requests: 1 } } },
        "2026-01-14 02:00": { by_model: { m: { total: 5, requests: 1 } } },
      },
    }),
    0,
  );
  assertEquals(even.map((p) => p.input + p.output), [5, 5]);
  assertEquals(sum(even), { input: 5, output: 5, requests: 2 });
});

Deno.test('lunaPieces: residuals go to model "unknown"; incomplete hours are apportioned', () => {
  const created = Date.parse("2025-12-01T00:00:00Z");
  const pieces = lunaPieces(
    usage({
      // 1000 more input, 10 more output and 4 more requests than the daily history.
      total_input: 1300,
      total_output: 160,
      total_requests: 9,
      daily: {
        "2026-01-14": {
          input: 300,
          output: 150, // input + output: 50 more than its models hold
          requests: 5, // 2 more than its models
          by_model: {
            a: { total: 250, requests: 2 }, // no hourly data at all
            b: { total: 150, requests: 1 }, // hours cover only part of it
          },
        },
      },
      hourly: {
        "2026-01-14 03:00": { by_model: { b: { total: 30, requests: 0 } } },
        "2026-01-14 09:00": { by_model: { b: { total: 60, requests: 0 } } },
      },
    }),
    created,
  );
  const noon = LUNA_MIDNIGHT_0114 + 12 * H;
  // Day-only usage sits at Luna's local noon, which is the same date in UTC.
  const a = pieces.filter((p) => p.model === "a");
  assertEquals(a.map((p) => p.at), [noon]);
  assertEquals(new Date(noon).toISOString().slice(0, 10), "2026-01-14");
  const b = pieces.filter((p) => p.model === "b");
  assertEquals(b.map((p) => (p.at - LUNA_MIDNIGHT_0114) / H), [3, 9]);
  assertEquals(b.map((p) => p.input + p.output), [50, 100], "scaled to the day's total, 1:2");
  assertEquals(sum(b).requests, 1);
  assertEquals(sum(pieces, (p) => p.model !== UNKNOWN_MODEL), {
    input: 300,
    output: 100,
    requests: 3,
  });
  const dayRest = pieces.filter((p) => p.model === UNKNOWN_MODEL && p.at === noon);
  assertEquals(sum(dayRest), { input: 0, output: 50, requests: 2 }, "input goes to models first");
  const beyond = pieces.filter((p) => p.model === UNKNOWN_MODEL && p.at === created);
  assertEquals(sum(beyond), { input: 1000, output: 10, requests: 4 });
  assertEquals(sum(pieces), { input: 1300, output: 160, requests: 9 });

  // More input than the models hold: the excess input is "unknown" too.
  const over = lunaPieces(
    usage({
      total_input: 500,
      total_requests: 1,
      daily: {
        "2026-01-14": {
          input: 500,
          output: 0,
          requests: 1,
          by_model: { d: { total: 400, requests: 1 } },
        },
      },
    }),
    created,
  );
  assertEquals(over.map((p) => [p.model, p.input, p.output, p.requests]), [
    ["d", 400, 0, 1],
    [UNKNOWN_MODEL, 100, 0, 0],
  ]);

  // Hours with requests but no totals still place the usage by requests.
  const byReq = lunaPieces(
    usage({
      daily: {
        "2026-01-14": {
          input: 0,
          output: 0,
          requests: 3,
          by_model: { c: { total: 0, requests: 3 } },
        },
      },
      hourly: { "2026-01-14 05:00": { by_model: { c: { total: 0, requests: 3 } } } },
    }),
    created,
  );
  assertEquals(byReq.map((p) => [(p.at - LUNA_MIDNIGHT_0114) / H, p.requests]), [[5, 3]]);
  assertEquals(lunaPieces(usage({}), created), []);
});
