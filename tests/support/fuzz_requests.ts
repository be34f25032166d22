/**
 * Random requests for the gateway's property test: valid calls of both API
 * formats (streamed and not, count_tokens), mutated bodies, odd headers and
 * credentials, random methods and paths, admin calls, bodies near the size
 * limit, streamed uploads and bodies that never arrive whole; each with the
 * acts the scripted provider answers it with and what its client does.
 *
 * Everything is drawn from one seeded source in request order, so a seed
 * names the same requests on every run (their timing is the machine's).
 */
import type { Rand } from "./random.ts";
import { mutate } from "./mutations.ts";
import type { Act, Buckets, StreamEnding } from "./scripted_provider.ts";

const enc = new TextEncoder();

/** A client key as the test knows it. */
export interface ClientKey {
  id: string;
  name: string;
  secret: string;
  /**
   * `valid`: works throughout; `flappy`: switched on and off while the test
   * runs (so only ever presented alone); `refused`: disabled, expired,
   * deleted or rotated out.
   */
  state: "valid" | "flappy" | "refused";
}

/** What the generator draws keys, ids and limits from. */
export interface FuzzEnv {
  /** Keys whose requests may all reach a provider (no allowlist, no limits). */
  open: ClientKey[];
  /** Valid keys with an allowlist or limits. */
  restricted: ClientKey[];
  flappy: ClientKey;
  refused: ClientKey[];
  adminKey: string;
  maxBodyBytes: number;
}

/** What the client does with its response. */
export type ClientPlan =
  /** Reads the whole response (`slow`: in small steps with pauses). */
  | { kind: "read"; slow: boolean }
  /** Hangs up once the provider has the request, before any answer (on its own connection). */
  | { kind: "abort-on-arrival" }
  /** Reads a stream up to the provider's mark, then cancels it. */
  | { kind: "leave-at-mark" }
  /** Reads a stream to its end, saying when it has read the provider's mark. */
  | { kind: "read-through-mark" }
  /** Sends `sent` of `declared` body bytes on a raw connection, then hangs up or waits. */
  | { kind: "raw"; declared: number; ending: "hang-up" | "wait" };

/** One generated request. */
export interface Spec {
  id: number;
  /** What kind of case, for failure reports. */
  label: string;
  method: string;
  /** Path and query string. */
  path: string;
  headers: [string, string][];
  body?: Uint8Array;
  /** `stream`: the body goes as a chunked upload without content-length. */
  upload: "bytes" | "stream";
  /** The key usage must be filed under if the request reaches a provider. */
  keyId?: string;
  acts: Act[];
  client: ClientPlan;
}

// ---------------------------------------------------------------------------
// Credentials.

/** The secrets a request presents, in the gateway's documented order (x-api-key, then Bearer). */
export function presented(headers: [string, string][]): string[] {
  const get = (n: string) => headers.find(([k]) => k.toLowerCase() === n)?.[1];
  const out: string[] = [];
  const x = get("x-api-key")?.trim();
  if (x) out.push(x);
  const m = /^\s*bearer\s+(.+?)\s*$/i.exec(get("authorization") ?? "");
  if (m && m[1] !== x) out.push(m[1]);
  return out;
}

/** The key the gateway authenticates: the first presented secret of a live key. */
export function attributed(headers: [string, string][], keys: ClientKey[]): string | undefined {
  for (const s of presented(headers)) {
    const k = keys.find((k) => k.secret === s);
    if (k && k.state !== "refused") return k.id;
  }
  return undefined;
}

function garbageSecret(rand: Rand): string {
  return rand.pick([
    "sk-gw-" + rand.string(32),
    "sk-ant-" + rand.string(40),
    rand.string(rand.int(1, 20)),
    "x".repeat(rand.int(1000, 8000)),
    "sk-gw-caf\u00e9\u00ff",
    "null",
    "Bearer",
  ]);
}

/** Auth headers for a request meant to pass with `key` (sometimes beside a wrong secret). */
function authFor(rand: Rand, key: ClientKey, others: ClientKey[]): [string, string][] {
  const s = key.secret;
  const choice = rand.weighted(
    [
      [50, "x-api-key"],
      [25, "bearer"],
      [5, "both-same"],
      [5, "bearer-odd"],
      [7, "wrong-then-right"],
      [5, "two-live"],
      [3, "right-then-wrong"],
    ] as const,
  );
  if (key.state === "flappy" && choice !== "x-api-key") return [["x-api-key", s]];
  switch (choice) {
    case "x-api-key":
      return [["x-api-key", rand.chance(0.1) ? `  ${s}  ` : s]];
    case "bearer":
      return [["authorization", `Bearer ${s}`]];
    case "both-same":
      return [["x-api-key", s], ["authorization", `Bearer ${s}`]];
    case "bearer-odd":
      return [["authorization", rand.pick([`bearer ${s}`, `BEARER   ${s}  `, `Bearer\t${s}`])]];
    case "wrong-then-right": {
      const wrong = rand.chance(0.5) && others.length
        ? rand.pick(others).secret
        : garbageSecret(rand);
      return [["x-api-key", wrong], ["authorization", `Bearer ${s}`]];
    }
    case "two-live": {
      // Both valid: x-api-key wins.
      return [["x-api-key", s], ["authorization", `Bearer ${rand.pick(others).secret}`]];
    }
    case "right-then-wrong":
      return [["x-api-key", s], ["authorization", `Bearer ${garbageSecret(rand)}`]];
  }
}

/** Credentials that must fail (or the admin key on a client route). */
function badAuth(rand: Rand, env: FuzzEnv): [string, string][] {
  return rand.weighted<[string, string][]>([
    [3, []],
    [3, [["x-api-key", rand.pick(env.refused).secret]]],
    [2, [["authorization", `Bearer ${rand.pick(env.refused).secret}`]]],
    [3, [["x-api-key", garbageSecret(rand)]]],
    [2, [["authorization", rand.pick(["Basic dXNlcjpwYXNz", "Bearer", "Bearer ", "token x"])]]],
    [2, [["x-api-key", env.adminKey]]],
    [1, [["x-api-key", ""], ["authorization", ""]]],
  ]);
}

// ---------------------------------------------------------------------------
// Bodies.

const ANTHROPIC_MODELS: readonly (readonly [number, () => string])[] = [
  [40, () => "claude-test"],
  [10, () => "claude-sonnet-4-5"],
  [4, () => "Claude-Test"],
  [3, () => "claude-ünïcødé-🙂"],
  [1, () => "claude-\u0000x"],
  [1, () => "claude-\ud800"],
  [1, () => "claude-\t\n"],
];

const OPENAI_MODELS: readonly (readonly [number, () => string])[] = [
  [35, () => "gpt-test"],
  [8, () => "gpt-4o-mini"],
  [12, () => "deepseek-chat"],
  [8, () => "plain-model"],
  [3, () => "GPT-Test"],
  [1, () => "gpt-\udfff"],
];

/** A model for the endpoint: mostly served ones, sometimes another format's, unknown or odd. */
function modelFor(rand: Rand, api: "anthropic" | "openai"): string {
  const served = api === "anthropic" ? ANTHROPIC_MODELS : OPENAI_MODELS;
  const kind = rand.weighted(
    [
      [88, "served"],
      [3, "other-format"],
      [3, "unknown"],
      [2, "long"],
      [2, "too-long"],
      [2, "blank"],
    ] as const,
  );
  const prefix = api === "anthropic" ? "claude-" : rand.pick(["gpt-", "deepseek-", "plain-"]);
  switch (kind) {
    case "served":
      return rand.weighted(served)();
    case "other-format":
      return api === "anthropic" ? "gpt-test" : "claude-test";
    case "unknown":
      return rand.pick(["llama-3", "mistral-large", "unknown", "-", "../claude"]);
    case "long":
      return prefix + rand.string(rand.int(100, 256 - prefix.length));
    case "too-long":
      return prefix + rand.string(rand.pick([250, 300, 5000, 60_000]));
    case "blank":
      return rand.pick(["", " ", "\t"]);
  }
}

/** Whole-token figures, mostly realistic, sometimes zero or huge. */
function usage(rand: Rand): Buckets {
  const big = rand.chance(0.02);
  const n = (max: number, pZero: number) =>
    rand.chance(pZero) ? 0 : big ? rand.int(1e8, 1e9) : rand.int(1, max);
  return {
    uncached: n(5000, 0.05),
    cacheRead: n(20_000, 0.5),
    cacheWrite: n(3000, 0.7),
    output: n(4000, 0.05),
  };
}

function text(rand: Rand): string {
  return rand.pick([
    "Hello",
    "Write a haiku about gateways.",
    "Ünïcødé ✓ 🙂 \u202e reversed",
    'line\nbreaks\tand "quotes" and \\ backslashes',
    "x".repeat(rand.int(10, 2000)),
    "</script><script>alert(1)</script>",
    "\u0000\u0001 escaped controls",
  ]);
}

function serialize(rand: Rand, o: Record<string, unknown>): Uint8Array {
  const entries = rand.shuffle(Object.entries(o));
  const obj = Object.fromEntries(entries);
  return enc.encode(JSON.stringify(obj, null, rand.pick([undefined, undefined, 2, "\t"])));
}

/** A valid body for the endpoint (what an SDK would send). */
function validBody(
  rand: Rand,
  endpoint: Endpoint,
  model: string,
  stream: boolean | undefined,
): Uint8Array {
  const messages = [{ role: "user", content: text(rand) }];
  if (endpoint === "count") {
    return serialize(rand, { model, messages, ...(rand.chance(0.1) ? { stream: true } : {}) });
  }
  const o: Record<string, unknown> = { model, messages };
  if (stream !== undefined) o.stream = stream;
  if (endpoint === "anthropic") {
    o.max_tokens = rand.pick([1, 64, 1024, 4096, 64_000]);
    if (rand.chance(0.2)) o.system = "You are terse.";
    if (rand.chance(0.1)) o.metadata = { user_id: "u-" + rand.string(6) };
    if (rand.chance(0.2)) o.temperature = rand.pick([0, 0.5, 1]);
  } else {
    if (rand.chance(0.5)) o[rand.pick(["max_tokens", "max_completion_tokens"])] = rand.int(1, 8000);
    if (stream && rand.chance(0.6)) {
      o.stream_options = rand.pick([
        null,
        {},
        { include_usage: true },
        { include_usage: false },
        { include_usage: "yes", continuous_usage_stats: false },
      ]);
    }
  }
  return serialize(rand, o);
}

// ---------------------------------------------------------------------------
// Acts.

type Endpoint = "anthropic" | "count" | "openai";

const PATHS: Record<Endpoint, string> = {
  anthropic: "/v1/messages",
  count: "/v1/messages/count_tokens",
  openai: "/v1/chat/completions",
};

function success(rand: Rand, stream: boolean): Act {
  const u = usage(rand);
  const style = rand.int(0, 11);
  if (stream) {
    return {
      kind: "sse",
      usage: u,
      style,
      deltas: rand.int(0, 8),
      gapMs: rand.chance(0.2) ? rand.int(1, 5) : 0,
      crlf: rand.chance(0.2),
      lengthKnown: rand.chance(0.2),
      ending: { at: "end" },
      delayMs: rand.chance(0.05) ? rand.int(20, 300) : 0,
      seed: rand.int(0, 2 ** 31),
    };
  }
  return json(rand, 200, u, style);
}

function json(rand: Rand, status: number, u: Buckets, style: number): Act {
  return {
    kind: "json",
    status,
    usage: u,
    style,
    delayMs: rand.chance(0.05) ? rand.int(20, 300) : 0,
    gzip: rand.chance(0.1),
    chunked: rand.chance(0.2),
    errorIn200: false,
    usageInError: status >= 400 && rand.chance(0.15),
    retryAfter: status === 429 || status === 503 || status === 529
      ? rand.pick([undefined, "0", "1", "120", "soon"])
      : undefined,
  };
}

function failure(rand: Rand): Act {
  return rand.weighted<Act>([
    [6, json(rand, rand.pick([500, 502, 503, 504, 529, 429, 408, 409]), usage(rand), 0)],
    [2, { kind: "text", status: rand.pick([502, 503]), delayMs: 0 }],
    [2, { kind: "reset" }],
  ]);
}

/** `a` with another ending when it is a stream. */
function withEnding(ending: StreamEnding, a: Act): Act {
  return a.kind === "sse" ? { ...a, ending } : a;
}

/** The acts for a request: mostly one quick answer, sometimes failures and retries. */
function planActs(rand: Rand, stream: boolean): Act[] {
  const outcome = rand.weighted(
    [
      [62, "ok"],
      [8, "client-error"],
      [7, "retry-then-ok"],
      [4, "always-retryable"],
      [3, "cut"],
      [3, "error-event"],
      [1, "stall"],
      [2, "text"],
      [1, "reset"],
      [0.4, "hang"],
      [0.4, "stall-body"],
      [0.7, "huge"],
      [1, "error-in-200"],
    ] as const,
  );
  switch (outcome) {
    case "ok":
      return [success(rand, stream)];
    case "client-error":
      return [json(rand, rand.pick([400, 401, 403, 404, 413, 422]), usage(rand), rand.int(0, 11))];
    case "retry-then-ok":
      return [failure(rand), success(rand, stream)];
    case "always-retryable":
      return [failure(rand)];
    case "cut":
    case "error-event":
    case "stall":
      return [
        withEnding({
          at: outcome === "cut" ? "cut" : outcome === "stall" ? "stall" : "error",
          after: rand.float(),
        }, success(rand, true)),
      ];
    case "text":
      return [{ kind: "text", status: rand.pick([200, 404, 502]), delayMs: 0 }];
    case "reset":
      return [{ kind: "reset" }];
    case "hang":
      return [{ kind: "hang" }];
    case "stall-body":
      return [{ kind: "stall-body" }];
    case "huge":
      return [{ kind: "huge", declared: rand.chance(0.5) }];
    case "error-in-200": {
      const a = json(rand, 200, usage(rand), 0);
      return [{
        ...(a as Act & { kind: "json" }),
        errorIn200: true,
        usageInError: rand.chance(0.3),
      }];
    }
  }
}

// ---------------------------------------------------------------------------
// Headers.

/** Headers a proxy in front of the gateway, or a client, sets about the client's address. */
export const ADDRESS_HEADERS = [
  "x-forwarded-for",
  "forwarded",
  "x-real-ip",
  "via",
  "x-forwarded-host",
  "true-client-ip",
  "cf-connecting-ip",
] as const;

function latin1(rand: Rand, n: number): string {
  let s = "";
  for (let i = 0; i < n; i++) {
    const c = rand.chance(0.9) ? rand.int(0x20, 0x7e) : rand.int(0xa0, 0xff);
    s += String.fromCharCode(c);
  }
  return s.trim() || "v";
}

/** Extra headers of a request (content type, format hints, address headers, noise). */
function extraHeaders(rand: Rand, odd: boolean): [string, string][] {
  const out: [string, string][] = [];
  const ct = odd
    ? rand.pick([
      undefined,
      "text/plain",
      "application/json; charset=latin1",
      "multipart/form-data; boundary=x",
      "application/x-www-form-urlencoded",
      "application/json, text/html",
      latin1(rand, 300),
    ])
    : rand.chance(0.9)
    ? "application/json"
    : undefined;
  if (ct) out.push(["content-type", ct]);
  if (rand.chance(0.5)) out.push(["anthropic-version", "2023-06-01"]);
  if (rand.chance(0.1)) out.push(["anthropic-beta", "prompt-caching-2024-07-31"]);
  if (odd || rand.chance(0.1)) {
    for (const h of rand.shuffle(ADDRESS_HEADERS).slice(0, rand.int(1, 4))) {
      out.push([
        h,
        rand.pick(["203.0.113.7", "unknown", "for=192.0.2.60;proto=http", "1.1 proxy"]),
      ]);
    }
  }
  if (odd) {
    const n = rand.int(1, 6);
    for (let i = 0; i < n; i++) {
      out.push([
        `x-fuzz-${rand.string(rand.int(1, 12))}`,
        latin1(rand, rand.chance(0.2) ? rand.int(1000, 12_000) : rand.int(1, 40)),
      ]);
    }
    if (rand.chance(0.3)) out.push(["accept-encoding", rand.pick(["gzip", "br", "identity", "*"])]);
    if (rand.chance(0.2)) out.push(["connection", rand.pick(["close", "keep-alive"])]);
    if (rand.chance(0.2)) out.push(["cookie", "session=" + rand.string(20)]);
    if (rand.chance(0.2)) out.push(["proxy-authorization", "Basic " + rand.string(20)]);
    if (rand.chance(0.2)) out.push(["user-agent", latin1(rand, rand.int(1, 500))]);
    if (rand.chance(0.1)) out.push(["x-request-id", rand.string(30)]);
  }
  return out;
}

// ---------------------------------------------------------------------------
// Routes.

const ODD_PATHS = [
  "/",
  "/v1",
  "/v1/messages/",
  "/V1/MESSAGES",
  "/v1//messages",
  "/v1/messages/../models",
  "/v1/messages%2Fcount_tokens",
  "/v1/messages/count_tokens/extra",
  "/v1/chat/completions/",
  "/v1/chat",
  "/v1/models",
  "/v1/models/",
  "/v1/models/claude-test",
  "/v1/models/gpt-test",
  "/v1/models/%zz",
  "/v1/models/%F0%9F%99%82",
  "/v1/models/a%2Fb",
  "/v1/responses",
  "/health",
  "/health/",
  "/metrics",
  "/openapi.json",
  "/admin",
  "/admin/",
  "/admin/keys",
  "/admin/keys/%00",
  "/admin/keys/does-not-exist/usage",
  "/admin/usage",
  "/admin/ui",
  "/admin/ui/app.js",
  "/admin/ui/..%2F..%2Fetc%2Fpasswd",
  "/favicon.ico",
  "/api/hello",
  "/%00",
  "/%",
  "/ünï",
  "/.env",
];

const METHODS = [
  "GET",
  "POST",
  "PUT",
  "DELETE",
  "PATCH",
  "OPTIONS",
  "HEAD",
  "FOO",
  "patch",
  "PROPFIND",
];

function query(rand: Rand): string {
  if (rand.chance(0.6)) return "";
  return "?" + rand.pick([
    "beta=true",
    "limit=0",
    "limit=5",
    "limit=99999",
    "after_id=claude-test",
    "a=" + rand.string(rand.int(1, 3000)),
    "%zz=%zz",
    "x=1&x=2&&=",
    "from=2020-01-01&to=2030-12-31",
  ]);
}

// ---------------------------------------------------------------------------

/** Draws request number `id`. */
export function generateSpec(id: number, rand: Rand, env: FuzzEnv): Spec {
  const category = rand.weighted(
    [
      [44, "proxy"],
      [22, "mutated"],
      [9, "headers"],
      [11, "route"],
      [6, "admin"],
      [3, "large"],
      [2, "upload"],
      [1.5, "raw"],
    ] as const,
  );
  const spec = ((): Omit<Spec, "id" | "keyId"> => {
    switch (category) {
      case "proxy":
      case "mutated":
      case "headers":
      case "large":
      case "upload":
      case "raw":
        return proxied(rand, env, category);
      case "route":
        return route(rand, env);
      case "admin":
        return adminCall(rand, env);
    }
  })();
  const all = [...env.open, ...env.restricted, env.flappy, ...env.refused];
  const headers: [string, string][] = [["x-fuzz-id", String(id)], ...spec.headers];
  return { ...spec, id, headers, keyId: attributed(headers, all) };
}

function pickKey(rand: Rand, env: FuzzEnv): ClientKey {
  return rand.weighted<ClientKey>([
    [70, rand.pick(env.open)],
    [20, rand.pick(env.restricted)],
    [5, env.flappy],
    [5, rand.pick(env.refused)],
  ]);
}

function proxied(
  rand: Rand,
  env: FuzzEnv,
  category: "proxy" | "mutated" | "headers" | "large" | "upload" | "raw",
): Omit<Spec, "id" | "keyId"> {
  const endpoint = rand.weighted<Endpoint>([[45, "anthropic"], [40, "openai"], [15, "count"]]);
  const api = endpoint === "openai" ? "openai" : "anthropic";
  const model = modelFor(rand, api);
  const stream = endpoint === "count" ? undefined : rand.pick([true, true, false, undefined]);
  let body = validBody(rand, endpoint, model, stream);
  let label = `${category} ${endpoint} ${JSON.stringify(model.slice(0, 40))}${
    stream ? " stream" : ""
  }`;
  const key = pickKey(rand, env);
  let headers: [string, string][] = [...authFor(rand, key, env.open), ...extraHeaders(rand, false)];
  let acts = planActs(rand, stream === true);
  let client: ClientPlan = { kind: "read", slow: rand.chance(0.03) };
  let upload: Spec["upload"] = "bytes";

  switch (category) {
    case "proxy": {
      // Clients that leave: only for requests sure to reach a provider.
      const sure = key.state === "valid" && env.open.includes(key) &&
        /^(claude-test|gpt-test|deepseek-chat|plain-model)$/.test(model);
      if (sure && rand.chance(0.05)) {
        client = { kind: "abort-on-arrival" };
        acts = [{ kind: "hang" }];
        label += " (client aborts)";
        // Deno reports a client that hangs up before the response only for small request
        // bodies (docs/resilience.md, "Client disconnects"): half of these are small.
        if (rand.chance(0.5)) {
          body = enc.encode(JSON.stringify({
            model,
            ...(endpoint === "count" ? {} : { max_tokens: 16 }),
            ...(stream === undefined ? {} : { stream }),
            messages: [{ role: "user", content: "hi" }],
          }));
        }
      } else if (sure && stream === true && rand.chance(0.08)) {
        client = { kind: "leave-at-mark" };
        const a = success(rand, true);
        const after = rand.chance(0.5) ? "finish" as const : rand.float();
        acts = [withEnding({ at: "leave", after, rest: rand.chance(0.6) }, a)];
        label += " (client leaves)";
      }
      break;
    }
    case "mutated": {
      const m = mutate(body, rand, env.maxBodyBytes);
      body = m.bytes;
      label += ` mutated: ${m.name}`;
      if (rand.chance(0.3)) {
        const m2 = mutate(body, rand, env.maxBodyBytes);
        body = m2.bytes;
        label += ` + ${m2.name}`;
      }
      break;
    }
    case "headers":
      headers = rand.chance(0.5)
        ? [...badAuth(rand, env), ...extraHeaders(rand, true)]
        : [...authFor(rand, key, env.open), ...extraHeaders(rand, true)];
      label += " odd headers";
      break;
    case "large": {
      const target = env.maxBodyBytes + rand.pick([-200, -1, 0, 1, 2, 4096, env.maxBodyBytes]);
      const pad = Math.max(0, target - body.length - 10);
      const text = new TextDecoder().decode(body);
      body = enc.encode(`{"pad":"${"p".repeat(pad)}",` + text.slice(text.indexOf("{") + 1));
      label += ` large ${body.length} bytes`;
      upload = rand.chance(0.3) ? "stream" : "bytes";
      break;
    }
    case "upload":
      upload = "stream";
      label += " streamed upload";
      break;
    case "raw": {
      const ending = rand.chance(0.5) ? "hang-up" as const : "wait" as const;
      client = { kind: "raw", declared: body.length + rand.int(1, 500), ending };
      label += ` raw body that never arrives whole (${ending})`;
      break;
    }
  }
  return { label, method: "POST", path: PATHS[endpoint], headers, body, upload, acts, client };
}

function route(rand: Rand, env: FuzzEnv): Omit<Spec, "id" | "keyId"> {
  const method = rand.pick(METHODS);
  let path = rand.chance(0.1)
    ? "/x" + rand.string(rand.int(1000, 12_000), "abc/%.-_")
    : rand.pick(ODD_PATHS);
  if (rand.chance(0.1)) {
    // Within the URI length Deno's HTTP server accepts (it answers longer ones itself).
    path = "/v1/models/" +
      encodeURIComponent(modelFor(rand, "anthropic").toWellFormed()).slice(0, 8000);
  }
  path += query(rand);
  const key = pickKey(rand, env);
  const headers = rand.chance(0.7)
    ? [...authFor(rand, key, env.open), ...extraHeaders(rand, rand.chance(0.3))]
    : [...badAuth(rand, env), ...extraHeaders(rand, rand.chance(0.3))];
  const hasBody = method !== "GET" && method !== "HEAD" && rand.chance(0.7);
  const body = hasBody ? validBody(rand, "anthropic", "claude-test", rand.chance(0.5)) : undefined;
  return {
    label: `route ${method} ${path.slice(0, 80)}`,
    method,
    path,
    headers,
    body,
    upload: "bytes",
    acts: [success(rand, true)],
    client: { kind: "read", slow: false },
  };
}

function date(rand: Rand): string {
  return rand.pick([
    "2026-01-01",
    "0001-01-01",
    "9999-12-31",
    "2026-02-30",
    "2026-13-01",
    "yesterday",
    "",
    new Date().toISOString().slice(0, 10),
  ]);
}

function adminCall(rand: Rand, env: FuzzEnv): Omit<Spec, "id" | "keyId"> {
  const id = rand.chance(0.5) ? rand.pick([...env.open, ...env.restricted]).id : rand.string(26);
  const [method, path, body] = rand.weighted<[string, string, unknown]>([
    [4, ["GET", "/admin/keys", undefined]],
    [3, ["GET", `/admin/keys/${id}`, undefined]],
    [4, ["GET", `/admin/keys/${id}/usage?from=${date(rand)}&to=${date(rand)}`, undefined]],
    [4, ["GET", "/admin/usage", undefined]],
    [3, [
      "GET",
      `/admin/usage/daily?${rand.pick(["date", "from", "to"])}=${date(rand)}`,
      undefined,
    ]],
    [3, ["GET", `/admin/usage/hourly?date=${date(rand)}`, undefined]],
    [2, ["GET", "/admin/models", undefined]],
    [2, ["GET", "/metrics", undefined]],
    [2, ["POST", "/admin/keys", { name: "fuzz-" + rand.string(8) }]],
    [3, [
      "POST",
      "/admin/keys",
      rand.pick<unknown>([
        {},
        { name: "" },
        { name: 5 },
        { name: "x".repeat(500) },
        { name: "ok", allowed_providers: ["nope"] },
        { name: "ok", allowed_providers: [] },
        { name: "ok", extra: true },
        [],
        "text",
        null,
      ]),
    ]],
    [1, ["POST", "/admin/keys", "{not json"]],
    [2, ["DELETE", `/admin/keys/${rand.string(26)}`, undefined]],
    [2, [
      "POST",
      `/admin/keys/${rand.string(26)}/${rand.pick(["enable", "disable", "rotate"])}`,
      undefined,
    ]],
  ]);
  const auth: [string, string][] = rand.weighted<[string, string][]>([
    [80, [[rand.chance(0.5) ? "x-api-key" : "authorization", env.adminKey]]],
    [20, badAuth(rand, env)],
  ]);
  if (auth[0]?.[0] === "authorization" && auth[0][1] === env.adminKey) {
    auth[0] = ["authorization", `Bearer ${env.adminKey}`];
  }
  return {
    label: `admin ${method} ${path}`,
    method,
    path,
    headers: [...auth, ["content-type", "application/json"]],
    body: body === undefined
      ? undefined
      : enc.encode(typeof body === "string" ? body : JSON.stringify(body)),
    upload: "bytes",
    acts: [success(rand, false)],
    client: { kind: "read", slow: false },
  };
}
