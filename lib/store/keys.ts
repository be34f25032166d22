/**
 * Gateway-issued client API keys, stored in Deno KV by id with only the
 * SHA-256 of the secret. Secrets carry 192 random bits and are shown once.
 *
 * Authentication never reads KV: every key record is held in memory, loaded
 * at start and reloaded when the `["keys_version"]` counter changes. Changes
 * made through this store apply to this process at once; other processes
 * (workers, other hosts, the CLI) see them at their next check, every
 * `KEYS_REFRESH_MS` (250 ms). A check is one point read of one KV entry,
 * tens of microseconds: cheap enough to run often in every worker.
 * `kv.watch` is not used: on a local KV file (Deno 2.9) it only sees commits
 * made through the same process, never another process's.
 *
 * KV layout: `["keys", id]` record, `["key_hash", sha256hex]` -> id,
 * `["keys_version"]` KvU64 bumped by every change.
 */
import { type Clock, systemClock } from "../ops/clock.ts";
import { newId } from "../ops/ids.ts";
import { whileBusy } from "./kv_busy.ts";

/** A stored key (never the secret). */
export interface KeyRecord {
  id: string;
  name: string;
  /** SHA-256 of the secret, lowercase hex. */
  hash: string;
  /** The secret with all but its edges hidden, for display. */
  masked: string;
  enabled: boolean;
  /** ISO 8601 creation time. */
  created: string;
  /** Provider ids this key may use; absent means all. */
  allowedProviders?: string[];
  /** Model ids or globs (`claude-*`) this key may use; absent means all. */
  allowedModels?: string[];
  /** Rate limits, quotas and budgets; each absent one is unlimited. */
  limits?: KeyLimits;
  /** ISO 8601 time after which the key no longer works. */
  expiresAt?: string;
  /** Free-form labels (shown in reports). */
  metadata?: Record<string, string>;
  /** The secret replaced by a rotation, still accepted until `until` (ISO 8601). */
  previous?: { hash: string; until: string };
  /** Where the key came from. */
  source: "gateway" | "luna";
  /** Set when deleted; kept so that usage history still has a name. */
  deleted?: string;
}

/** A key's limits. Money is in micro-USD (integers); days and months on the `USAGE_TZ` calendar. */
export interface KeyLimits {
  rpm?: number;
  tpm?: number;
  maxConcurrent?: number;
  dailyTokens?: number;
  monthlyTokens?: number;
  dailyMicroUsd?: number;
  monthlyMicroUsd?: number;
}

/** The editable fields of a key; `null` clears a field. */
export interface KeyChanges {
  name?: string;
  enabled?: boolean;
  allowedProviders?: string[] | null;
  allowedModels?: string[] | null;
  limits?: { [K in keyof KeyLimits]?: number | null };
  expiresAt?: string | null;
  metadata?: Record<string, string> | null;
}

/** A key with `changes` applied (`null` removes a field; an empty limits object goes). */
function applyChanges(k: KeyRecord, changes: KeyChanges): KeyRecord {
  const next: KeyRecord = { ...k };
  const put = <F extends "allowedProviders" | "allowedModels" | "expiresAt" | "metadata">(
    f: F,
    v: KeyRecord[F] | null | undefined,
  ) => {
    if (v === null) delete next[f];
    else if (v !== undefined) next[f] = v;
  };
  if (changes.name !== undefined) next.name = changes.name;
  if (changes.enabled !== undefined) next.enabled = changes.enabled;
  put("allowedProviders", changes.allowedProviders);
  put("allowedModels", changes.allowedModels);
  put("expiresAt", changes.expiresAt);
  put("metadata", changes.metadata);
  if (changes.limits) {
    const limits: KeyLimits = { ...k.limits };
    for (const [f, v] of Object.entries(changes.limits) as [keyof KeyLimits, number | null][]) {
      if (v === null) delete limits[f];
      else if (v !== undefined) limits[f] = v;
    }
    if (Object.keys(limits).length > 0) next.limits = limits;
    else delete next.limits;
  }
  return next;
}

const SECRET_PREFIX = "sk-gw-";

/** A new random secret: `sk-gw-` and 32 base64url characters (192 bits). */
export function newSecret(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  const b64 = btoa(String.fromCharCode(...bytes)).replaceAll("+", "-").replaceAll("/", "_");
  return SECRET_PREFIX + b64;
}

/** SHA-256 of a string, lowercase hex. */
export async function sha256Hex(text: string): Promise<string> {
  const digest = new Uint8Array(
    await crypto.subtle.digest("SHA-256", new TextEncoder().encode(text)),
  );
  let hex = "";
  for (const b of digest) hex += b.toString(16).padStart(2, "0");
  return hex;
}

/** The display form of a secret: its first 8 and last 4 characters. */
export function maskSecret(secret: string): string {
  if (secret.length < 16) return "*".repeat(Math.min(secret.length, 8));
  return `${secret.slice(0, 8)}...${secret.slice(-4)}`;
}

/** Thrown for a key operation on an id that does not exist. */
export class KeyNotFound extends Error {
  constructor(id: string) {
    super(`no API key with id ${id}`);
  }
}

/** Options for a new key. */
export interface NewKey extends Omit<KeyChanges, "name" | "enabled"> {
  name: string;
  enabled?: boolean;
  created?: string;
}

/** Key storage plus the in-memory authentication cache. */
export class KeyStore {
  #kv: Deno.Kv;
  #byId = new Map<string, KeyRecord>();
  #byHash = new Map<string, KeyRecord>();
  /** secret -> record, so a warm key costs neither a hash nor a KV read. */
  #bySecret = new Map<string, { rec: KeyRecord; previous: boolean }>();
  #version = -1n;
  #timer?: ReturnType<typeof setTimeout>;
  #watching = false;
  #clock: Clock;

  constructor(kv: Deno.Kv, clock: Clock = systemClock) {
    this.#kv = kv;
    this.#clock = clock;
  }

  #nowIso(): string {
    return new Date(this.#clock.now()).toISOString();
  }

  /** Loads every key into memory. */
  async load(): Promise<void> {
    const version = await this.#kv.get<Deno.KvU64>(["keys_version"]);
    const byId = new Map<string, KeyRecord>();
    for await (const e of this.#kv.list<KeyRecord>({ prefix: ["keys"] })) {
      byId.set(e.value.id, e.value);
    }
    this.#byId = byId;
    this.#byHash = new Map();
    for (const k of byId.values()) this.#index(k);
    this.#bySecret.clear();
    this.#version = version.value?.value ?? 0n;
  }

  /**
   * Starts reloading whenever another process changed keys: checks every
   * `intervalMs`, counted from the end of the previous check (a slow reload
   * never overlaps the next one).
   */
  watch(intervalMs: number, onError: (e: unknown) => void): void {
    this.#watching = true;
    const check = async () => {
      try {
        const v = await this.#kv.get<Deno.KvU64>(["keys_version"]);
        if ((v.value?.value ?? 0n) !== this.#version) await this.load();
      } catch (e) {
        onError(e);
      }
      if (this.#watching) this.#timer = setTimeout(check, intervalMs);
    };
    this.#timer = setTimeout(check, intervalMs);
  }

  /** Stops the reload timer. */
  close(): void {
    this.#watching = false;
    clearTimeout(this.#timer);
  }

  /**
   * The live record for a presented secret, or undefined when unknown,
   * deleted, or a rotated-out secret whose grace period is over.
   */
  async lookup(secret: string): Promise<KeyRecord | undefined> {
    let hit = this.#bySecret.get(secret);
    if (!hit) {
      const hash = await sha256Hex(secret);
      const rec = this.#byHash.get(hash);
      if (!rec) return undefined;
      hit = { rec, previous: rec.hash !== hash };
      if (this.#bySecret.size >= 100_000) this.#bySecret.clear();
      this.#bySecret.set(secret, hit);
    }
    if (hit.previous) {
      const until = hit.rec.previous ? Date.parse(hit.rec.previous.until) : 0;
      if (!(this.#clock.now() < until)) return undefined;
    }
    return hit.rec;
  }

  /** Makes a record findable by its secret's hash (and a rotated-out one's, during its grace). */
  #index(k: KeyRecord): void {
    if (k.deleted) return;
    this.#byHash.set(k.hash, k);
    if (k.previous) this.#byHash.set(k.previous.hash, k);
  }

  /** A key by id (deleted ones included), from memory. */
  get(id: string): KeyRecord | undefined {
    return this.#byId.get(id);
  }

  /** Every key that is not deleted, oldest first. */
  list(): KeyRecord[] {
    return [...this.#byId.values()].filter((k) => !k.deleted).sort((a, b) => a.id < b.id ? -1 : 1);
  }

  /** A key id by the hash of its secret (deleted keys included). */
  async idForHash(hash: string): Promise<string | undefined> {
    return (await this.#kv.get<string>(["key_hash", hash])).value ?? undefined;
  }

  /** Creates a key; returns its record and the secret (shown only now). */
  async create(opts: NewKey): Promise<{ record: KeyRecord; secret: string }> {
    const secret = newSecret();
    const record = await this.insert(secret, opts, "gateway");
    if (!record) throw new Error("a key with this secret already exists"); // 192 random bits: never
    return { record, secret };
  }

  /**
   * Stores a key for a given secret; returns undefined (and changes nothing)
   * when a key with that secret exists or existed.
   */
  async insert(
    secret: string,
    opts: NewKey,
    source: KeyRecord["source"],
    extra?: (op: Deno.AtomicOperation, record: KeyRecord) => void,
  ): Promise<KeyRecord | undefined> {
    const hash = await sha256Hex(secret);
    const { created, ...changes } = opts;
    const record = applyChanges({
      id: newId(),
      name: opts.name,
      hash,
      masked: maskSecret(secret),
      enabled: opts.enabled ?? true,
      created: created ?? this.#nowIso(),
      source,
    }, changes);
    const op = this.#kv.atomic()
      .check({ key: ["key_hash", hash], versionstamp: null })
      .set(["keys", record.id], record)
      .set(["key_hash", hash], record.id)
      .sum(["keys_version"], 1n);
    extra?.(op, record);
    const res = await whileBusy(() => op.commit());
    if (!res.ok) return undefined;
    this.#remember(record);
    return record;
  }

  async #update(id: string, change: (k: KeyRecord) => KeyRecord, newHash?: string) {
    for (;;) {
      const cur = await this.#kv.get<KeyRecord>(["keys", id]);
      if (!cur.value || cur.value.deleted) throw new KeyNotFound(id);
      const next = change(cur.value);
      const op = this.#kv.atomic().check(cur).set(["keys", id], next).sum(["keys_version"], 1n);
      if (newHash) {
        op.check({ key: ["key_hash", newHash], versionstamp: null }).set(["key_hash", newHash], id);
      }
      if ((await whileBusy(() => op.commit())).ok) {
        this.#remember(next, cur.value);
        return next;
      }
    }
  }

  #remember(next: KeyRecord, prev?: KeyRecord): void {
    if (prev) {
      this.#byHash.delete(prev.hash);
      if (prev.previous) this.#byHash.delete(prev.previous.hash);
    }
    for (const [s, r] of this.#bySecret) if (r.rec.id === next.id) this.#bySecret.delete(s);
    this.#byId.set(next.id, next);
    this.#index(next);
  }

  /** Changes a key's editable fields; effective on this gateway at once. */
  update(id: string, changes: KeyChanges): Promise<KeyRecord> {
    return this.#update(id, (k) => applyChanges(k, changes));
  }

  /** Enables or disables a key; effective on this gateway at once. */
  setEnabled(id: string, enabled: boolean): Promise<KeyRecord> {
    return this.#update(id, (k) => ({ ...k, enabled }));
  }

  /** Deletes a key: it stops working at once; its usage history stays. */
  delete(id: string): Promise<KeyRecord> {
    return this.#update(id, (k) => ({ ...k, enabled: false, deleted: this.#nowIso() }));
  }

  /**
   * Replaces a key's secret, keeping its id, limits and history. The old
   * secret keeps working for `graceMs` (0: it stops at once).
   */
  async rotate(id: string, graceMs = 0): Promise<{ record: KeyRecord; secret: string }> {
    const secret = newSecret();
    const hash = await sha256Hex(secret);
    const record = await this.#update(id, (k) => {
      const { previous: _, ...rest } = k;
      const next: KeyRecord = { ...rest, hash, masked: maskSecret(secret) };
      if (graceMs > 0) {
        next.previous = {
          hash: k.hash,
          until: new Date(this.#clock.now() + graceMs).toISOString(),
        };
      }
      return next;
    }, hash);
    return { record, secret };
  }
}
