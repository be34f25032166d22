/**
 * Import of a Luna API Proxy `keys.json` (`KEYS_FILE` at start, or the
 * `import-luna` command): keys (hashed, never stored in plain text), names,
 * enabled flags, creation dates, `allowed_providers`, and their daily and
 * hourly usage history into the same buckets live traffic uses.
 *
 * Idempotent: a key whose import finished is skipped, and usage is written in
 * deterministic batches each guarded by its own marker, so running the same
 * file twice (or again after a crash) never double counts.
 *
 * A skipped key is compared with the file: its name, enabled flag and
 * `allowed_providers` with the key as the gateway holds it now, its usage
 * with what was imported (a fingerprint stored at import). Differences are
 * reported by field and never applied: the gateway's copy may have been
 * changed on purpose, and imported usage cannot be replaced without
 * double counting.
 *
 * Luna kept days and hours in UTC+8 and stored per-model usage only as
 * `total` (input + output). Hours are moved into `USAGE_TZ`; each day's input
 * and output are split across its models in proportion to their totals, so
 * day totals, model totals and request counts stay exact. Anything Luna's
 * totals hold beyond its daily history is filed under model `unknown`.
 * Usage Luna kept only per day (no hourly entry) is placed at its local noon.
 */
import { z } from "zod";
import type { Bucket, BucketClock } from "../ops/clock.ts";
import { type KeyRecord, type KeyStore, sha256Hex } from "./keys.ts";
import { type UsageLine, zeroCounters } from "./usage/counters.ts";
import { UsageReader } from "./usage/reader.ts";
import {
  applyMutations,
  MAX_KEY_BYTES,
  MAX_MUTATIONS,
  type UsageMutation,
  UsageMutations,
} from "./usage/layout.ts";

const LUNA_OFFSET_MS = 8 * 3600_000;
/** Model name for usage Luna recorded without a model. */
export const UNKNOWN_MODEL = "unknown";
/** Provider name for imported usage (Luna did not record providers). */
const LUNA_PROVIDER = "luna-import";

const num = z.coerce.number().catch(0).transform((
  n,
) => (Number.isFinite(n) && n > 0 ? Math.floor(n) : 0));
const ModelUse = z.object({ total: num.default(0), requests: num.default(0) }).loose();
const byModel = z.record(z.string(), ModelUse).catch({}).default({});
const Day = z.object({
  input: num.default(0),
  output: num.default(0),
  requests: num.default(0),
  by_model: byModel,
}).loose();
const Hour = z.object({ by_model: byModel }).loose();
const Usage = z.object({
  total_input: num.default(0),
  total_output: num.default(0),
  total_requests: num.default(0),
  last_used: z.unknown().optional(),
  daily: z.record(z.string(), Day).catch({}).default({}),
  hourly: z.record(z.string(), Hour).catch({}).default({}),
}).loose();
const LunaKey = z.object({
  name: z.string().default("unnamed"),
  enabled: z.boolean().default(true),
  created: z.unknown().optional(),
  allowed_providers: z.array(z.string()).nullish(),
  usage: Usage.optional(),
}).loose();
const KeysFile = z.object({
  admin_key: z.string().optional(),
  keys: z.record(z.string().min(1), LunaKey),
}).loose();

/** A parsed Luna key. */
export type LunaKeyEntry = z.infer<typeof LunaKey>;
type LunaUsage = z.infer<typeof Usage>;

/** Thrown when a keys file cannot be read or is not Luna's shape. */
export class LunaImportError extends Error {}

/** Validates the content of a Luna `keys.json`. */
function parseLunaKeys(raw: unknown, source: string): Map<string, LunaKeyEntry> {
  const parsed = KeysFile.safeParse(raw);
  if (!parsed.success) {
    const issue = parsed.error.issues[0];
    throw new LunaImportError(
      `${source}: ${issue.path.join(".") || "(top level)"}: ${issue.message}`,
    );
  }
  return new Map(Object.entries(parsed.data.keys));
}

function toMs(v: unknown): number | undefined {
  if (typeof v === "number" && Number.isFinite(v)) return v < 1e12 ? v * 1000 : v;
  if (typeof v !== "string" || v.trim() === "") return undefined;
  const s = v.trim();
  // Luna wrote naive local times (UTC+8); an explicit zone wins.
  const naive = /^\d{4}-\d{2}-\d{2}([ T]\d{2}:\d{2}(:\d{2}(\.\d+)?)?)?$/.test(s);
  const ms = Date.parse(
    naive ? s.replace(" ", "T") + (s.length === 10 ? "T00:00:00" : "") + "Z" : s,
  );
  if (!Number.isFinite(ms)) return undefined;
  return naive ? ms - LUNA_OFFSET_MS : ms;
}

/** Splits `total` into integers proportional to `weights` (largest remainder). */
export function apportion(total: number, weights: number[]): number[] {
  const sum = weights.reduce((a, b) => a + b, 0);
  if (total <= 0 || weights.length === 0) return weights.map(() => 0);
  if (sum <= 0) return weights.map((_, i) => (i === 0 ? total : 0));
  const raw = weights.map((w) => (total * w) / sum);
  const out = raw.map(Math.floor);
  let left = total - out.reduce((a, b) => a + b, 0);
  const order = raw.map((r, i) => ({ i, frac: r - Math.floor(r) })).sort((a, b) =>
    b.frac - a.frac || a.i - b.i
  );
  for (let k = 0; left > 0; k = (k + 1) % order.length, left--) out[order[k].i]++;
  return out;
}

interface Piece {
  at: number;
  model: string;
  input: number;
  output: number;
  requests: number;
}

/**
 * Luna usage as pieces at instants (the start of a Luna UTC+8 hour). Pure;
 * exported for tests.
 */
export function lunaPieces(usage: LunaUsage, createdMs: number): Piece[] {
  const pieces: Piece[] = [];
  const hoursByDay = new Map<
    string,
    [number, Record<string, { total: number; requests: number }>][]
  >();
  for (const [label, h] of Object.entries(usage.hourly)) {
    const m = /^(\d{4}-\d{2}-\d{2})[ T](\d{2})/.exec(label);
    if (!m) continue;
    const list = hoursByDay.get(m[1]) ?? [];
    list.push([Number(m[2]), h.by_model]);
    hoursByDay.set(m[1], list);
  }
  let sumIn = 0, sumOut = 0, sumReq = 0;
  for (const day of Object.keys(usage.daily).sort()) {
    const d = usage.daily[day];
    const dayStart = toMs(day);
    if (dayStart === undefined || !/^\d{4}-\d{2}-\d{2}$/.test(day)) continue;
    // Usage known only by day goes to Luna's local noon: its midnight is the
    // previous date in UTC and every zone west of UTC+8.
    const dayNoon = dayStart + 12 * 3600_000;
    const models = Object.entries(d.by_model);
    const totals = models.map(([, u]) => u.total);
    const modelSum = totals.reduce((a, b) => a + b, 0);
    // Input share of each model's total, so that the day's input and output add up.
    const dayIn = Math.min(d.input, modelSum);
    const ins = apportion(dayIn, totals);
    // A model cannot get more input than its total; move any excess on.
    for (let i = 0, spill = 0; i < ins.length; i++) {
      ins[i] += spill;
      spill = Math.max(0, ins[i] - totals[i]);
      ins[i] -= spill;
    }
    const hours = hoursByDay.get(day) ?? [];
    models.forEach(([model, u], i) => {
      const input = ins[i], output = u.total - ins[i];
      const hw = hours.map(([, bm]) => bm[model]?.total ?? 0);
      const hr = hours.map(([, bm]) => bm[model]?.requests ?? 0);
      const useHours = hw.some((w) => w > 0) || hr.some((r) => r > 0);
      if (!useHours) {
        pieces.push({ at: dayNoon, model, input, output, requests: u.requests });
        return;
      }
      // Split the model's total over its hours first, then each hour's total into
      // input and output, so Luna's per-hour totals stay exact.
      const hTot = apportion(u.total, hw.some((w) => w > 0) ? hw : hr);
      const hIn = apportion(input, hTot);
      const hOut = hTot.map((t, k) => t - hIn[k]);
      const reqSum = hr.reduce((a, b) => a + b, 0);
      const hReq = reqSum === u.requests
        ? hr
        : apportion(u.requests, hw.some((w) => w > 0) ? hw : hr);
      hours.forEach(([h], k) => {
        if (hIn[k] || hOut[k] || hReq[k]) {
          pieces.push({
            at: dayStart + h * 3600_000,
            model,
            input: hIn[k],
            output: hOut[k],
            requests: hReq[k],
          });
        }
      });
    });
    const modelReq = models.reduce((a, [, u]) => a + u.requests, 0);
    const rest = {
      input: Math.max(0, d.input - dayIn),
      output: Math.max(0, d.output - (modelSum - dayIn)),
      requests: Math.max(0, d.requests - modelReq),
    };
    if (rest.input || rest.output || rest.requests) {
      pieces.push({ at: dayNoon, model: UNKNOWN_MODEL, ...rest });
    }
  }
  for (const p of pieces) {
    sumIn += p.input;
    sumOut += p.output;
    sumReq += p.requests;
  }
  const rest = {
    input: Math.max(0, usage.total_input - sumIn),
    output: Math.max(0, usage.total_output - sumOut),
    requests: Math.max(0, usage.total_requests - sumReq),
  };
  if (rest.input || rest.output || rest.requests) {
    pieces.push({ at: createdMs, model: UNKNOWN_MODEL, ...rest });
  }
  return pieces;
}

/** One bucket's imported usage. */
interface Entry {
  bucket: Bucket;
  line: UsageLine;
}

function entriesOf(pieces: Piece[], clock: BucketClock): Entry[] {
  const merged = new Map<string, Entry>();
  for (const p of pieces) {
    const bucket = clock.bucket(p.at);
    const id = `${bucket.day}|${bucket.hour}|${p.model}`;
    let e = merged.get(id);
    if (!e) {
      e = { bucket, line: { model: p.model, provider: LUNA_PROVIDER, counters: zeroCounters() } };
      merged.set(id, e);
    }
    const c = e.line.counters;
    c.input_uncached += p.input;
    c.output += p.output;
    c.requests += p.requests;
  }
  return [...merged.values()];
}

/**
 * A key's usage mutations in deterministic batches that each fit one atomic
 * commit (KV's limits on mutations and on total key size), with room for a
 * marker and `last_used`.
 */
function batchMutations(
  keyId: string,
  entries: Entry[],
  builder: UsageMutations,
): UsageMutation[][] {
  const batches: UsageMutation[][] = [[]];
  let bytes = 0;
  for (const e of entries) {
    const muts = builder.build(keyId, e.bucket, [e.line]);
    const b = muts.reduce((a, m) => a + m.bytes, 0);
    const cur = batches[batches.length - 1];
    if (cur.length > 0 && (cur.length + muts.length > MAX_MUTATIONS || bytes + b > MAX_KEY_BYTES)) {
      batches.push([]);
      bytes = 0;
    }
    batches[batches.length - 1].push(...muts);
    bytes += b;
  }
  return batches;
}

/** What an import did with one key of the file. */
export interface ImportedKey {
  id: string;
  name: string;
  status: "imported" | "skipped";
  /** For a key imported before: the fields where the file differs, left unchanged. */
  differs?: KeyDifference[];
}

/** A field of an already-imported key that the file no longer matches. */
export type KeyDifference = "deleted" | "name" | "enabled" | "allowed_providers" | "usage";

/** Outcome of an import. */
export interface ImportResult {
  imported: number;
  skipped: number;
  /** Skipped keys that differ from the file (see {@link ImportedKey.differs}). */
  differing: number;
  keys: ImportedKey[];
}

/** The usage a key's entry imports, by instant. */
function importedUsage(entry: LunaKeyEntry, createdMs: number) {
  const usage = entry.usage ?? Usage.parse({});
  return { pieces: lunaPieces(usage, createdMs), lastUsed: toMs(usage.last_used) };
}

/** A digest of {@link importedUsage}, independent of the order of models in the file. */
async function usageFingerprint(entry: LunaKeyEntry, createdMs: number): Promise<string> {
  const { pieces, lastUsed } = importedUsage(entry, createdMs);
  const sorted = pieces.map((p) => [p.at, p.model, p.input, p.output, p.requests]).sort();
  return await sha256Hex(JSON.stringify({ pieces: sorted, lastUsed }));
}

/** Per model: input, output, requests. Independent of the time zone usage was filed in. */
function perModel(items: { model: string; input: number; output: number; requests: number }[]) {
  const out: Record<string, [number, number, number]> = {};
  for (const p of items) {
    const t = out[p.model] ??= [0, 0, 0];
    t[0] += p.input;
    t[1] += p.output;
    t[2] += p.requests;
  }
  return JSON.stringify(Object.entries(out).sort(([a], [b]) => (a < b ? -1 : 1)));
}

/**
 * Whether the stored import of a key matches the file's usage. Imports made
 * before fingerprints were kept are checked once against the stored rows
 * (per model) and then get a fingerprint.
 */
async function sameUsage(
  kv: Deno.Kv,
  hash: string,
  record: KeyRecord,
  entry: LunaKeyEntry,
): Promise<boolean> {
  const createdMs = Date.parse(record.created);
  const fingerprint = await usageFingerprint(entry, createdMs);
  const stored = await kv.get<string>(["luna_import", hash, "usage"]);
  if (stored.value !== null) return stored.value === fingerprint;
  const rows = (await new UsageReader(kv).byKey(record.id))
    .filter((r) => r.provider === LUNA_PROVIDER)
    .map((r) => ({
      model: r.model,
      input: r.counters.input_uncached,
      output: r.counters.output,
      requests: r.counters.requests,
    }));
  if (perModel(rows) !== perModel(importedUsage(entry, createdMs).pieces)) return false;
  await kv.atomic().check(stored).set(["luna_import", hash, "usage"], fingerprint).commit();
  return true;
}

function sameProviders(a: readonly string[] | null | undefined, b: typeof a): boolean {
  const norm = (l: typeof a) => (l ? JSON.stringify([...l].sort()) : null);
  return norm(a) === norm(b);
}

/** How an already-imported key differs from its entry in the file. */
async function differences(
  kv: Deno.Kv,
  hash: string,
  record: KeyRecord | undefined,
  entry: LunaKeyEntry,
): Promise<KeyDifference[]> {
  if (!record || record.deleted) return ["deleted"];
  const out: KeyDifference[] = [];
  if (record.name !== entry.name) out.push("name");
  if (record.enabled !== entry.enabled) out.push("enabled");
  if (!sameProviders(record.allowedProviders, entry.allowed_providers)) {
    out.push("allowed_providers");
  }
  if (!(await sameUsage(kv, hash, record, entry))) out.push("usage");
  return out;
}

/** Imports every key of a parsed Luna file. */
async function importLunaKeys(
  kv: Deno.Kv,
  keys: KeyStore,
  clock: BucketClock,
  entries: Map<string, LunaKeyEntry>,
): Promise<ImportResult> {
  const result: ImportResult = { imported: 0, skipped: 0, differing: 0, keys: [] };
  const builder = new UsageMutations();
  // Deterministic order, so batches are the same on every run.
  for (const secret of [...entries.keys()].sort()) {
    const entry = entries.get(secret)!;
    const hash = await sha256Hex(secret);
    const state = await kv.get<string>(["luna_import", hash]);
    if (state.value === "done") {
      const id = (await keys.idForHash(hash)) ?? "";
      const differs = await differences(kv, hash, keys.get(id), entry);
      result.skipped++;
      if (differs.length) result.differing++;
      result.keys.push({
        id,
        name: entry.name,
        status: "skipped",
        ...(differs.length ? { differs } : {}),
      });
      continue;
    }
    let id = await keys.idForHash(hash);
    if (id === undefined) {
      const createdMs = toMs(entry.created);
      const rec = await keys.insert(
        secret,
        {
          name: entry.name,
          enabled: entry.enabled,
          created: createdMs !== undefined ? new Date(createdMs).toISOString() : undefined,
          allowedProviders: entry.allowed_providers ?? undefined,
        },
        "luna",
        (op) => op.set(["luna_import", hash], "started"),
      );
      id = rec?.id ?? (await keys.idForHash(hash));
    } else if (state.value !== "started") {
      // The secret belongs to a key that did not come from this import.
      result.skipped++;
      result.keys.push({ id, name: entry.name, status: "skipped" });
      continue;
    }
    if (id === undefined) throw new LunaImportError(`could not store key "${entry.name}"`);
    const created = keys.get(id)?.created;
    const createdMs = created ? Date.parse(created) : Date.now();
    const { pieces, lastUsed } = importedUsage(entry, createdMs);
    const batches = batchMutations(id, entriesOf(pieces, clock), builder);
    for (const [b, muts] of batches.entries()) {
      if (b === 0 && lastUsed !== undefined) {
        muts.push(...builder.build(id, clock.bucket(lastUsed), [], lastUsed));
      }
      const marker = ["luna_import", hash, b];
      const op = kv.atomic().check({ key: marker, versionstamp: null }).set(marker, true);
      await applyMutations(op, muts).commit(); // a failed check: written before
    }
    await kv.atomic()
      .set(["luna_import", hash], "done")
      .set(["luna_import", hash, "usage"], await usageFingerprint(entry, createdMs))
      .commit();
    result.imported++;
    result.keys.push({ id, name: entry.name, status: "imported" });
  }
  return result;
}

/** Reads, validates and imports a Luna `keys.json` file. */
export async function importLunaFile(
  path: string,
  kv: Deno.Kv,
  keys: KeyStore,
  clock: BucketClock,
): Promise<ImportResult> {
  let raw: unknown;
  try {
    raw = JSON.parse(await Deno.readTextFile(path));
  } catch (e) {
    throw new LunaImportError(`${path}: ${(e as Error).message}`);
  }
  return await importLunaKeys(kv, keys, clock, parseLunaKeys(raw, path));
}
