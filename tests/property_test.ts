/**
 * Property test of the live gateway: 10,000 random and mutated requests
 * (bodies, headers, methods, paths, sizes, keys, clients that leave) through
 * the gateway to a scripted fake provider that answers in both API formats
 * (JSON and SSE, errors, slow, cut and silent streams) and counts the usage
 * it served. Properties:
 *
 * - the gateway itself never answers 5xx, except 502/504 when the provider's
 *   last answer was a transport failure, and 503 while it shuts down;
 * - every error the gateway makes is in the native shape of its endpoint,
 *   and what the provider answered reaches the client unchanged;
 * - a body is refused as invalid JSON exactly when `JSON.parse` refuses it,
 *   and as too large exactly when it is over MAX_BODY_BYTES;
 * - `/health` answers 200 throughout;
 * - usage per key and model equals what the provider served (reader, admin
 *   reports, each request's log line), also after a shutdown that ends
 *   streams still running;
 * - one request log line per request; the heap does not grow with traffic.
 *
 * The seed is printed; `FUZZ_SEED=<n>` replays the same requests (their
 * timing is the machine's), `FUZZ_REQUESTS=<n>` changes how many.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { ADMIN_KEY, testConfig } from "./support/gateway.ts";
import { parseRegistry } from "../lib/config/registry.ts";
import { type Gateway, startGateway } from "../lib/ops/server.ts";
import { Rand, seedFrom } from "./support/random.ts";
import {
  type Buckets,
  type ProviderRoute,
  scriptedProvider,
  type Served,
} from "./support/scripted_provider.ts";
import {
  ADDRESS_HEADERS,
  type ClientKey,
  type FuzzEnv,
  generateSpec,
  type Spec,
} from "./support/fuzz_requests.ts";
import { deferred, type Outcome, sendSpec } from "./support/fuzz_client.ts";
import { isNativeStreamError, shapeFor, shapeProblem } from "./support/native_shapes.ts";
import { liveHeapBytes } from "./support/memory.ts";
import { delay } from "./support/wait.ts";

const REQUESTS = Number(Deno.env.get("FUZZ_REQUESTS") ?? 10_000);
/** Longest the whole run may take before it fails naming what is still open. */
const RUN_LIMIT_MS = 240_000 * Math.max(1, REQUESTS / 10_000);
const CONCURRENCY = 24;
const MAX_BODY_BYTES = 64 * 1024;
const MAX_RESPONSE_BYTES = 128 * 1024;
/**
 * Growth of the live heap allowed over the last three quarters of the
 * traffic: some slack for the collector, and a few hundred bytes per request
 * (the test keeps almost nothing per request; measured in all: under 250).
 */
const HEAP_GROWTH_LIMIT = 2 * 1024 * 1024 + 256 * Math.floor(REQUESTS * 0.75);

const SECRETS: Record<string, string> = {
  ANTHROPIC_TEST_KEY: "upstream-anthropic-secret",
  OPENAI_TEST_KEY: "upstream-openai-secret",
  DEEPSEEK_TEST_KEY: "upstream-deepseek-secret",
  PLAIN_TEST_KEY: "upstream-plain-secret",
};

/**
 * Providers on the scripted server: a fallback pair for Claude models, an
 * OpenAI one, a drainer (`deepseek*`) and one that never asks for stream
 * usage (`plain*`). Timeouts are short so that silent providers cost
 * seconds, not minutes, and long enough that a busy machine's pauses do not
 * end answers the provider did send.
 */
function registryFor(up: string) {
  return parseRegistry({
    providers: {
      anthropic: {
        format: "anthropic",
        base_url: `${up}/anthropic/v1`,
        api_key_env: "ANTHROPIC_TEST_KEY",
      },
      "anthropic-b": {
        format: "anthropic",
        base_url: `${up}/anthropic-b/v1`,
        api_key_env: "ANTHROPIC_TEST_KEY",
      },
      openai: { format: "openai", base_url: `${up}/openai/v1`, api_key_env: "OPENAI_TEST_KEY" },
      deepseek: {
        format: "openai",
        base_url: `${up}/deepseek`,
        api_key_env: "DEEPSEEK_TEST_KEY",
        model_prefixes: ["deepseek"],
        on_disconnect: "drain",
        drain_timeout_ms: 1000,
      },
      plain: {
        format: "openai",
        base_url: `${up}/plain/v1`,
        api_key_env: "PLAIN_TEST_KEY",
        model_prefixes: ["plain"],
        stream_usage: false,
      },
    },
    routing: { claude: ["anthropic", "anthropic-b"], gpt: ["openai"] },
    known_models: [
      { id: "claude-test", provider: "anthropic" },
      { id: "gpt-test", provider: "openai" },
      { id: "deepseek-chat", provider: "deepseek" },
      { id: "plain-model", provider: "plain" },
    ],
    defaults: {
      timeouts: { connect_ms: 3000, ttfb_ms: 3000, stream_ttfb_ms: 3000, idle_ms: 3000 },
      retries: { max: 1, base_delay_ms: 5, max_delay_ms: 20, deadline_ms: 6000 },
      usage_wait_ms: 1000,
    },
  });
}

/** The same providers as the scripted server sees them. */
const ROUTES: ProviderRoute[] = [
  { prefix: "/anthropic", credential: ["x-api-key", SECRETS.ANTHROPIC_TEST_KEY], drain: false },
  { prefix: "/anthropic-b", credential: ["x-api-key", SECRETS.ANTHROPIC_TEST_KEY], drain: false },
  {
    prefix: "/openai",
    credential: ["authorization", `Bearer ${SECRETS.OPENAI_TEST_KEY}`],
    drain: false,
  },
  {
    prefix: "/deepseek",
    credential: ["authorization", `Bearer ${SECRETS.DEEPSEEK_TEST_KEY}`],
    drain: true,
  },
  {
    prefix: "/plain",
    credential: ["authorization", `Bearer ${SECRETS.PLAIN_TEST_KEY}`],
    drain: false,
  },
];

const PROXIED = ["/v1/messages", "/v1/messages/count_tokens", "/v1/chat/completions"];

// deno-lint-ignore no-explicit-any
type Json = any;

const dec = new TextDecoder();

function isObject(v: unknown): v is Record<string, Json> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------
// One response.

/** Checks one response against the properties; returns what is wrong. */
function judge(spec: Spec, o: Outcome, served: Served | undefined, stopping: boolean): string[] {
  const out: string[] = [];
  if (o.aborted) return out;
  const tooLarge = (spec.body?.length ?? 0) > MAX_BODY_BYTES;
  if (o.error !== undefined) {
    // An upload the gateway refused before reading all of it may end the client's side early.
    if (!tooLarge && spec.client.kind !== "raw") out.push(`client error: ${o.error}`);
    return out;
  }
  if (o.status === undefined) return out;
  const status = o.status;
  if (o.headers?.get("x-fake-upstream") === "1") return passedOn(status, o, served);

  // Made by the gateway.
  if (status >= 500) {
    const ok = ((status === 502 || status === 504) && served?.failure !== undefined) ||
      (status === 503 && stopping);
    if (!ok) {
      out.push(
        `gateway-made ${status} (provider's last answer: ${
          served ? served.failure ?? served.status : "none"
        }): ${o.text?.slice(0, 300)}`,
      );
    }
  }
  const pathname = new URL("http://gateway" + spec.path).pathname;
  if (status >= 400 && spec.method !== "HEAD" && o.whole) {
    const shape = shapeFor(pathname, spec.method.toUpperCase(), spec.headers);
    let body: Json;
    try {
      body = JSON.parse(o.text ?? "");
    } catch {
      body = undefined;
    }
    const problem = shapeProblem(shape, body);
    if (problem) {
      out.push(`${status} error body ${problem} (want ${shape}): ${o.text?.slice(0, 300)}`);
    }
  }
  // Once a key is accepted on a proxied endpoint, the body is judged first: too large exactly
  // when it is over the limit, invalid JSON exactly when JSON.parse says so.
  const trimmed = pathname.length > 1 && pathname.endsWith("/") ? pathname.slice(0, -1) : pathname;
  const judged = spec.method === "POST" && PROXIED.includes(trimmed) && spec.keyId !== undefined &&
    spec.body !== undefined && spec.client.kind !== "raw" && status !== 401 && status !== 403;
  if (judged && (status === 413) !== tooLarge) {
    out.push(`${spec.body!.length}-byte body answered ${status} (limit ${MAX_BODY_BYTES})`);
  }
  if (judged && !tooLarge) {
    let parses = false;
    try {
      parses = isObject(JSON.parse(dec.decode(spec.body)));
    } catch {
      parses = false;
    }
    const says = status === 400 && /not valid JSON/.test(o.text ?? "");
    if (parses === says) {
      out.push(
        parses
          ? `JSON.parse reads the body but the gateway calls it invalid: ${o.text?.slice(0, 200)}`
          : `JSON.parse refuses the body but the gateway answered ${status}`,
      );
    }
  }
  return out;
}

/** A provider's answer the gateway passed on: its status and bytes, unchanged. */
function passedOn(status: number, o: Outcome, served: Served | undefined): string[] {
  if (!served) return [`a provider's answer (status ${status}) the provider has no record of`];
  const out: string[] = [];
  if (served.status !== status) {
    out.push(`status ${status}, the provider answered ${served.status}`);
  }
  if (o.text === undefined || !served.body) return out;
  const text = o.text, want = served.body.text;
  const show = (t: string) => JSON.stringify(t.slice(0, 300));
  if (served.body.whole && !served.gatewayEndsStream && o.whole) {
    if (text !== want) out.push(`body differs: got ${show(text)}, the provider sent ${show(want)}`);
  } else if (!text.startsWith(want)) {
    out.push(`the stream does not start with what the provider sent: ${show(text)}`);
  } else if (served.gatewayEndsStream && o.whole) {
    const api = served.api === "openai" ? "openai" : "anthropic";
    if (!isNativeStreamError(api, text.slice(want.length))) {
      out.push(
        `a stream the gateway ended lacks its native error event: ${show(text.slice(want.length))}`,
      );
    }
  }
  return out;
}

// ---------------------------------------------------------------------------
// Bookkeeping, folded in as requests finish (the heap is measured).

interface Tally {
  requests: number;
  uncached: number;
  cacheRead: number;
  cacheWrite: number;
  output: number;
}

/** `keyId model` (the model JSON-quoted). */
function usageKey(keyId: string, model: string): string {
  return `${keyId} ${JSON.stringify(model)}`;
}

function addTally(m: Map<string, Tally>, key: string, requests: number, t: Buckets): void {
  const cur = m.get(key) ?? { requests: 0, uncached: 0, cacheRead: 0, cacheWrite: 0, output: 0 };
  cur.requests += requests;
  cur.uncached += t.uncached;
  cur.cacheRead += t.cacheRead;
  cur.cacheWrite += t.cacheWrite;
  cur.output += t.output;
  m.set(key, cur);
}

const tokensText = (t: Buckets) => `${t.uncached},${t.cacheRead},${t.cacheWrite},${t.output}`;

/**
 * What the provider served, per key and model; and the per-request check of
 * each request's log line against it (whichever of the two comes second
 * does the check; the provider's request id names the script in the line).
 */
class Ledger {
  readonly served = new Map<string, Tally>();
  readonly problems: string[] = [];
  /** Log lines counted; one per request is the property. */
  lines = 0;
  #logged = new Map<number, string>();
  #awaiting = new Map<number, string>();

  /** A finished request's usage, as the provider served it. */
  finished(spec: Spec, s: Served): void {
    if (!spec.keyId) {
      this.#problem(`#${spec.id} [${spec.label}] reached the provider without a live key`);
      return;
    }
    addTally(this.served, usageKey(spec.keyId, s.model), 1, s.tokens);
    if (s.status === undefined || spec.client.kind === "abort-on-arrival") return;
    const want = tokensText(s.tokens);
    const logged = this.#logged.get(spec.id);
    if (logged === undefined) this.#awaiting.set(spec.id, want);
    else {
      this.#logged.delete(spec.id);
      if (logged !== want) this.#problem(`#${spec.id}: served ${want}, logged ${logged}`);
    }
  }

  /** One request log line of the gateway. */
  line(j: Record<string, Json>): void {
    this.lines++;
    const id = Number(/^req_(\d+)$/.exec(j.upstream_request_id ?? "")?.[1] ?? NaN);
    if (Number.isNaN(id)) return;
    const logged = `${j.input_uncached},${j.cache_read},${j.cache_write},${j.output}`;
    const want = this.#awaiting.get(id);
    if (want === undefined) this.#logged.set(id, logged);
    else {
      this.#awaiting.delete(id);
      if (logged !== want) this.#problem(`#${id}: served ${want}, logged ${logged}`);
    }
  }

  /** Requests whose log line never came, and log lines of no finished request. */
  unmatched(): string[] {
    return [
      ...[...this.#awaiting.keys()].slice(0, 20).map((id) => `#${id}: no log line`),
      ...[...this.#logged.keys()].slice(0, 20).map((id) => `#${id}: logged, never finished`),
    ];
  }

  #problem(p: string): void {
    if (this.problems.length < 100) this.problems.push(p);
  }
}

/** What the gateway recorded, per key and model. */
async function recordedUsage(gw: Gateway, keyIds: string[]): Promise<Map<string, Tally>> {
  const got = new Map<string, Tally>();
  for (const id of keyIds) {
    for (const r of await gw.ctx.usageReader.byKey(id)) {
      const c = r.counters;
      addTally(got, usageKey(id, r.model), c.requests, {
        uncached: c.input_uncached,
        cacheRead: c.cache_read,
        cacheWrite: c.cache_write,
        output: c.output,
      });
    }
  }
  return got;
}

function diffUsage(want: Map<string, Tally>, got: Map<string, Tally>): string[] {
  const out: string[] = [];
  for (const k of new Set([...want.keys(), ...got.keys()])) {
    const w = JSON.stringify(want.get(k) ?? null), g = JSON.stringify(got.get(k) ?? null);
    if (w !== g) out.push(`${k}: served ${w}, recorded ${g}`);
  }
  return out;
}

/** `GET /admin/usage` and each key's `GET /admin/keys/{id}/usage` against what was served. */
async function adminReports(url: string, keyIds: string[], want: Map<string, Tally>) {
  const get = async (path: string) => {
    const res = await fetch(url + path, { headers: { "x-api-key": ADMIN_KEY } });
    return { status: res.status, json: await res.json() };
  };
  const sums = (list: Tally[]) => ({
    requests: list.reduce((n, t) => n + t.requests, 0),
    input: list.reduce((n, t) => n + t.uncached + t.cacheRead + t.cacheWrite, 0),
    output: list.reduce((n, t) => n + t.output, 0),
  });
  const out: string[] = [];
  const compare = (what: string, w: unknown, g: unknown) => {
    if (JSON.stringify(w) !== JSON.stringify(g)) {
      out.push(`${what}: served ${JSON.stringify(w)}, reported ${JSON.stringify(g)}`);
    }
  };
  const all = await get("/admin/usage");
  compare("GET /admin/usage", sums([...want.values()]), {
    requests: all.json.total_requests,
    input: all.json.total_input_tokens,
    output: all.json.total_output_tokens,
  });
  for (const id of keyIds) {
    const r = await get(`/admin/keys/${id}/usage`);
    if (r.status === 404) continue; // the deleted key
    const mine = [...want].filter(([k]) => k.startsWith(id + " "));
    const u = r.json.usage;
    compare(`key ${id} totals`, sums(mine.map(([, t]) => t)), {
      requests: u.total_requests,
      input: u.total_input,
      output: u.total_output,
    });
    for (const [k, t] of mine) {
      const model = JSON.parse(k.slice(id.length + 1));
      const m = u.total_by_model[model];
      compare(`key ${id} model ${k.slice(id.length + 1)}`, sums([t]), {
        requests: m?.requests,
        input: m?.input,
        output: m?.output,
      });
    }
  }
  return { problems: out, calls: 1 + keyIds.length };
}

// ---------------------------------------------------------------------------
// Keys and background traffic.

/** Client keys of every kind the generator draws from. */
async function createKeys(gw: Gateway): Promise<{ env: FuzzEnv; all: ClientKey[] }> {
  const keys = gw.ctx.keys;
  const mk = async (name: string, o: Omit<Parameters<typeof keys.create>[0], "name"> = {}) => {
    const { record, secret } = await keys.create({ ...o, name });
    return { id: record.id, name, secret, state: "valid" as ClientKey["state"] };
  };
  const open = [await mk("main"), await mk("second")];
  const rotated = await mk("rotated");
  open.push({ ...rotated, secret: (await keys.rotate(rotated.id)).secret });
  const restricted = [
    await mk("models-only", { allowedModels: ["claude-*", "gpt-test"] }),
    await mk("limited", { limits: { rpm: 40, maxConcurrent: 2, dailyTokens: 2_000_000 } }),
  ];
  const flappy: ClientKey = { ...await mk("flappy"), state: "flappy" };
  const deleted = await mk("deleted");
  await keys.delete(deleted.id);
  const refused: ClientKey[] = [
    { ...await mk("disabled", { enabled: false }), state: "refused" },
    { ...await mk("expired", { expiresAt: "2000-01-01T00:00:00Z" }), state: "refused" },
    { ...rotated, state: "refused" }, // its old secret
    { ...deleted, state: "refused" },
  ];
  return {
    env: {
      open,
      restricted,
      flappy,
      refused,
      adminKey: ADMIN_KEY,
      maxBodyBytes: MAX_BODY_BYTES,
    },
    all: [...open, ...restricted, flappy, ...refused],
  };
}

/** `/health` polled and the flappy key switched on and off until `stop()`. */
function background(url: string, flappy: ClientKey, count: () => void) {
  let running = true;
  let checks = 0;
  const failures: string[] = [];
  const poller = (async () => {
    while (running) {
      count();
      checks++;
      try {
        const res = await fetch(`${url}/health`);
        const j = await res.json();
        if (res.status !== 200 || j.status !== "ok") {
          failures.push(`/health: ${res.status} ${JSON.stringify(j)}`);
        }
      } catch (e) {
        failures.push(`/health: ${e}`);
      }
      await delay(100);
    }
  })();
  const toggler = (async () => {
    for (let on = false; running; on = !on) {
      count();
      try {
        const res = await fetch(`${url}/admin/keys/${flappy.id}/${on ? "enable" : "disable"}`, {
          method: "POST",
          headers: { "x-api-key": ADMIN_KEY },
        });
        await res.body?.cancel();
        if (res.status !== 200) failures.push(`switching the flappy key: ${res.status}`);
      } catch (e) {
        failures.push(`switching the flappy key: ${e}`);
      }
      await delay(150);
    }
  })();
  return {
    failures,
    checks: () => checks,
    stop: async () => {
      running = false;
      await Promise.all([poller, toggler]);
    },
  };
}

/** Requests in flight when the gateway shuts down: streams holding usage, and ones with no answer. */
function lateSpecs(first: number, key: ClientKey): Spec[] {
  const out: Spec[] = [];
  for (let i = 0; i < 16; i++) {
    const stream = i % 2 === 0;
    const anthropic = i % 4 < 2;
    const id = first + i;
    out.push({
      id,
      label: `in flight at shutdown (${stream ? "stream" : "no answer"})`,
      method: "POST",
      path: anthropic ? "/v1/messages" : "/v1/chat/completions",
      headers: [
        ["x-fuzz-id", String(id)],
        ["x-api-key", key.secret],
        ["content-type", "application/json"],
      ],
      keyId: key.id,
      upload: "bytes",
      body: new TextEncoder().encode(JSON.stringify({
        model: anthropic ? "claude-test" : "gpt-test",
        max_tokens: 10,
        stream,
        messages: [{ role: "user", content: "hi" }],
      })),
      client: stream ? { kind: "read-through-mark" } : { kind: "read", slow: false },
      acts: [
        stream
          ? {
            kind: "sse",
            usage: { uncached: 11 + i, cacheRead: 5, cacheWrite: 0, output: 7 },
            style: 0,
            deltas: 4,
            gapMs: 0,
            crlf: false,
            lengthKnown: false,
            // Half the stream, then silence until the gateway ends it.
            ending: { at: "leave", after: 0.5, rest: false },
            delayMs: 0,
            seed: i,
          }
          : { kind: "hang" },
      ],
    });
  }
  return out;
}

// ---------------------------------------------------------------------------

Deno.test("property: 10,000 random and mutated requests keep the gateway's promises", async () => {
  const seed = seedFrom(Deno.env.get("FUZZ_SEED"));
  console.log(`property test seed ${seed} (replay with FUZZ_SEED=${seed})`);
  const rand = new Rand(seed);
  const live = new Map<number, Spec>();
  let secrets: string[] = [ADMIN_KEY];
  const up = scriptedProvider({
    routes: ROUTES,
    secrets: () => secrets,
    forbiddenHeaders: [...ADDRESS_HEADERS, "cookie", "proxy-authorization"],
    maxResponseBytes: MAX_RESPONSE_BYTES,
    describe: (id) => live.get(id)?.label ?? "its client has finished",
  });
  const ledger = new Ledger();
  const internalErrors: string[] = [];
  const kv = await Deno.openKv(":memory:");
  const gw = await startGateway({
    config: testConfig({
      maxBodyBytes: MAX_BODY_BYTES,
      maxResponseBytes: MAX_RESPONSE_BYTES,
      bodyTimeoutMs: 500,
      usageFlushMs: 20,
      shutdownGraceMs: 300,
    }),
    registry: registryFor(up.url),
    env: (n) => SECRETS[n],
    kv,
    logSink: (line) => {
      const j = JSON.parse(line);
      if (j.msg === "request") ledger.line(j);
      else if (j.msg === "internal error" || j.msg === "response failed") {
        if (internalErrors.length < 50) internalErrors.push(line.slice(0, 500));
      }
    },
  });
  const url = gw.url;
  let sent = 0;
  const problems: string[] = [];
  const bg = { stop: () => Promise.resolve() };
  // A run that stalls fails with what it was doing instead of hanging the suite.
  let phase = "creating keys";
  let next = 0;
  let watchdog: ReturnType<typeof setTimeout> | undefined;
  const stalled = new Promise<never>((_, reject) => {
    watchdog = setTimeout(() => {
      const stuck = [...live.values()].slice(0, 10).map((s) =>
        `#${s.id} [${s.label}] ${JSON.stringify(s.acts).slice(0, 200)}`
      );
      reject(
        new Error(
          `seed ${seed}: still ${phase} after ${
            RUN_LIMIT_MS / 1000
          } s (${next} requests sent, ${live.size} open, ${gw.ctx.inflight.size} in the gateway):\n  ${
            stuck.join("\n  ")
          }`,
        ),
      );
    }, RUN_LIMIT_MS);
  });
  const main = async () => {
    const { env, all } = await createKeys(gw);
    secrets = [ADMIN_KEY, ...all.map((k) => k.secret)];
    const keyIds = [...new Set(all.map((k) => k.id))];
    const health = background(url, env.flappy, () => sent++);
    bg.stop = health.stop;

    // How each request ended for its client, counted by kind.
    const endings = new Map<string, number>();
    let reachedProvider = 0, retried = 0, endedByGateway = 0;
    const run = async (
      spec: Spec,
      stopping = () => false,
      left = deferred(),
    ): Promise<Outcome> => {
      const arrived = deferred();
      live.set(spec.id, spec);
      up.scripts.set(spec.id, {
        acts: spec.acts,
        clientBody: spec.body ?? new Uint8Array(0),
        clientLeft: left.promise,
        onArrive: arrived.resolve,
      });
      sent++;
      let o: Outcome;
      try {
        o = await sendSpec(url, spec, arrived, left);
      } finally {
        left.resolve();
      }
      const served = up.served.get(spec.id);
      for (const p of judge(spec, o, served, stopping())) {
        if (problems.length < 100) problems.push(`#${spec.id} [${spec.label}]: ${p}`);
      }
      const ending = o.aborted
        ? "client left"
        : o.error !== undefined
        ? "client error"
        : `${o.headers?.get("x-fake-upstream") ? "provider" : "gateway"} ${o.status}`;
      endings.set(ending, (endings.get(ending) ?? 0) + 1);
      if (served) {
        ledger.finished(spec, served);
        reachedProvider++;
        if (served.attempts > 1) retried++;
        if (served.gatewayEndsStream) endedByGateway++;
        up.served.delete(spec.id);
      }
      live.delete(spec.id);
      // A client that hung up may go unnoticed (docs/resilience.md, "Client disconnects"): the
      // gateway may still retry for it, so its script stays.
      if (spec.client.kind !== "abort-on-arrival") up.scripts.delete(spec.id);
      return o;
    };

    phase = "sending the traffic";
    const heap: number[] = [];
    const t0 = performance.now();
    const worker = async () => {
      while (next < REQUESTS) {
        const spec = generateSpec(next++, rand, env);
        if (next === Math.floor(REQUESTS / 4)) heap.push(liveHeapBytes());
        await run(spec);
      }
    };
    await Promise.all(Array.from({ length: CONCURRENCY }, worker));
    const trafficMs = performance.now() - t0;
    phase = "waiting for the requests in flight";
    await health.stop();
    assert(await gw.ctx.inflight.idle(30_000), "requests still in flight 30 s after the traffic");
    heap.push(liveHeapBytes());

    phase = "reading usage";
    const usageDiff = diffUsage(ledger.served, await recordedUsage(gw, keyIds));
    const reports = await adminReports(url, keyIds, ledger.served);
    sent += reports.calls;

    phase = "shutting down with requests in flight";
    let stopping = false;
    const late = lateSpecs(REQUESTS, env.open[0]);
    const marks = late.map(() => deferred());
    const lateRuns = late.map((spec, i) => run(spec, () => stopping, marks[i]));
    // Once each has reached the provider, and each stream's client has read its first half.
    const deadline = Date.now() + 10_000;
    while (late.some((s) => !up.served.has(s.id)) && Date.now() < deadline) await delay(10);
    await Promise.all(late.map((s, i) => s.acts[0].kind === "sse" ? marks[i].promise : undefined));
    stopping = true;
    await gw.shutdown();
    for (const [i, o] of (await Promise.all(lateRuns)).entries()) {
      const spec = late[i];
      // No answer yet: a native 503. A stream: what it had, then a native error event.
      const api = spec.path === "/v1/messages" ? "anthropic" : "openai";
      const tail = (o.text ?? "").slice(
        (o.text ?? "").lastIndexOf("\n\n", (o.text ?? "").length - 3) + 2,
      );
      const ok = spec.acts[0].kind === "hang"
        ? o.status === 503
        : o.status === 200 && isNativeStreamError(api, tail);
      if (!ok) {
        problems.push(
          `#${spec.id} [${spec.label}]: ${o.status} ${JSON.stringify(o.text?.slice(-300))}`,
        );
      }
    }
    const finalDiff = diffUsage(ledger.served, await recordedUsage(gw, keyIds));

    const growth = heap[1] - heap[0];
    console.log(
      `${REQUESTS} requests in ${(trafficMs / 1000).toFixed(1)} s (${
        Math.round(REQUESTS / (trafficMs / 1000))
      }/s); ${reachedProvider} reached the provider (${retried} more than once, ${endedByGateway} streams ended by the gateway); ${health.checks()} health checks; live heap ${
        heap.map((h) => (h / 2 ** 20).toFixed(1)).join(" -> ")
      } MiB (${Math.round(growth / (REQUESTS * 0.75))} bytes per request)\n  endings: ${
        [...endings].sort((a, b) => b[1] - a[1]).map(([k, n]) => `${k} ${n}`).join(", ")
      }`,
    );
    const report: [string, string[]][] = [
      ["what reached the provider", up.anomalies],
      ["responses", problems],
      ["/health and the admin calls beside the traffic", health.failures],
      ["internal errors logged", internalErrors],
      ["usage per key and model after the traffic", usageDiff],
      ["admin usage reports after the traffic", reports.problems],
      ["tokens in each request's log line", [...ledger.problems, ...ledger.unmatched()]],
      ["usage per key and model after shutdown", finalDiff],
    ];
    const bad = report.filter(([, list]) => list.length > 0);
    assert(
      bad.length === 0,
      `seed ${seed}:\n` +
        bad.map(([what, list]) => `${what}:\n  ${list.slice(0, 40).join("\n  ")}`).join("\n"),
    );
    assertEquals(ledger.lines, sent, "one request log line per request");
    assert(
      growth < HEAP_GROWTH_LIMIT,
      `the live heap grew by ${(growth / 2 ** 20).toFixed(1)} MiB over 3/4 of the traffic`,
    );
  };
  try {
    await Promise.race([main(), stalled]);
  } finally {
    clearTimeout(watchdog);
    await bg.stop();
    await gw.shutdown();
    up.close();
    kv.close();
  }
});
