/**
 * Who is calling: gateway client keys (`x-api-key` or `Authorization:
 * Bearer`, either may hold the key when a client sends both) and the admin
 * secret (compared in constant time).
 */
import type { KeyRecord, KeyStore } from "../store/keys.ts";
import type { ClientCall, ClientHandler, Handler } from "./call.ts";
import { GatewayError } from "./errors.ts";

/** The credentials a request presents, in header order, without duplicates. */
export function presentedSecrets(headers: Headers): string[] {
  const out: string[] = [];
  const x = headers.get("x-api-key")?.trim();
  if (x) out.push(x);
  const auth = headers.get("authorization");
  if (auth) {
    const m = /^\s*bearer\s+(.+?)\s*$/i.exec(auth);
    if (m && m[1] !== x) out.push(m[1]);
  }
  return out;
}

/** The calling client's key; throws 401 (missing, unknown or expired) or 403 (disabled). */
export async function authenticateClient(
  keys: KeyStore,
  headers: Headers,
  now: number,
): Promise<KeyRecord> {
  const secrets = presentedSecrets(headers);
  if (secrets.length === 0) {
    throw new GatewayError(
      401,
      "missing_api_key",
      "missing API key: send it in the x-api-key header or as Authorization: Bearer <key>",
    );
  }
  let disabled: KeyRecord | undefined;
  let expired: KeyRecord | undefined;
  for (const s of secrets) {
    const rec = await keys.lookup(s);
    if (rec?.expiresAt && now >= Date.parse(rec.expiresAt)) expired ??= rec;
    else if (rec?.enabled) return rec;
    else disabled ??= rec;
  }
  if (expired) {
    throw new GatewayError(
      401,
      "key_expired",
      `API key "${expired.name}" expired at ${expired.expiresAt}`,
    );
  }
  if (disabled) {
    throw new GatewayError(403, "key_disabled", `API key "${disabled.name}" is disabled`);
  }
  throw new GatewayError(401, "invalid_api_key", "invalid API key");
}

const enc = new TextEncoder();

async function digest(s: string): Promise<Uint8Array> {
  return new Uint8Array(await crypto.subtle.digest("SHA-256", enc.encode(s)));
}

/** Checks the admin secret in constant time (comparing SHA-256 digests). */
export class AdminAuth {
  #digest?: Promise<Uint8Array>;

  constructor(adminKey: string | undefined) {
    this.#digest = adminKey ? digest(adminKey) : undefined;
  }

  /** True when `ADMIN_KEY` is set. */
  get enabled(): boolean {
    return this.#digest !== undefined;
  }

  /**
   * Throws unless the request carries the admin secret: 503 when the admin
   * API is disabled, 403 for a client key, 401 otherwise.
   */
  async check(headers: Headers, keys: KeyStore): Promise<void> {
    if (!this.#digest) {
      throw new GatewayError(
        503,
        "admin_disabled",
        "the admin API is disabled: set the ADMIN_KEY environment variable (16+ characters) and restart",
      );
    }
    const want = await this.#digest;
    const secrets = presentedSecrets(headers);
    for (const s of secrets) {
      const got = await digest(s);
      let diff = 0;
      for (let i = 0; i < want.length; i++) diff |= want[i] ^ got[i];
      if (diff === 0) return;
    }
    if (secrets.length === 0) {
      throw new GatewayError(
        401,
        "missing_api_key",
        "missing admin key: send it in x-api-key or as Authorization: Bearer <key>",
      );
    }
    for (const s of secrets) {
      if (await keys.lookup(s)) {
        throw new GatewayError(403, "not_admin", "this key is not the admin key");
      }
    }
    throw new GatewayError(401, "invalid_api_key", "invalid admin key");
  }
}

/** Wraps a handler for client keys: 401/403 in the route's shape unless the request carries a live key. */
export function withClient(h: ClientHandler): Handler {
  return async (req, ctx, call) => {
    call.key = await authenticateClient(ctx.keys, req.headers, ctx.clock.now());
    return await h(req, ctx, call as ClientCall);
  };
}

/** Wraps a handler for the admin key. */
export function withAdmin(h: Handler): Handler {
  return async (req, ctx, call) => {
    await ctx.admin.check(req.headers, ctx.keys);
    const res = await h(req, ctx, call);
    res.headers.set("cache-control", "no-store"); // admin data never lands in a browser cache
    return res;
  };
}
