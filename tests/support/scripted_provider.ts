/**
 * A fake LLM provider for property tests. Each request carries the id of a
 * script the test wrote for it (header `x-fuzz-id`); the provider answers
 * attempt n with the script's act n (the last act repeats), in the native
 * shape of the API it was called on (Anthropic Messages, its count_tokens,
 * OpenAI Chat Completions), and keeps account of what it served:
 *
 * - the tokens the gateway must record if that attempt is the last one, by
 *   the rules of docs/metering.md: usage is a running total (the last value
 *   seen wins), a stream cut, ended by an error event or left by its client
 *   counts the usage sent before that point, and a request answered by a
 *   transport failure or a body that is not metered counts none;
 * - the status and body the client must get when the answer is passed on.
 *
 * The acts are exact about what reached the gateway: the server writes raw
 * HTTP on TCP, so a stream "cut after k events" is k events and a closed
 * connection, and a stream whose client leaves holds its next byte until
 * the gateway has given up on it (or, where the gateway reads on, until the
 * client has gone).
 *
 * It also checks what arrived, recording anomalies: an unknown script, a
 * body that is not a JSON object with a string model, another body than the
 * client sent (beyond the one documented edit, OpenAI's injected
 * `stream_options.include_usage`), a wrong provider credential, a client
 * secret or client address header passed upstream.
 */
import {
  chunk,
  chunkedHead,
  LAST_CHUNK,
  type RawExchange,
  rawHttpServer,
  type RawOutcome,
  responseHead,
} from "./raw_http.ts";
import { Rand } from "./random.ts";

/** Tokens in the four buckets the gateway records. */
export interface Buckets {
  uncached: number;
  cacheRead: number;
  cacheWrite: number;
  output: number;
}

/** No tokens. */
export const NO_TOKENS: Buckets = Object.freeze({
  uncached: 0,
  cacheRead: 0,
  cacheWrite: 0,
  output: 0,
});

/**
 * How a streamed answer ends: whole; cut (connection closed), followed by
 * an error event, or silent (until the gateway gives up) after a fraction
 * of its events; or with a mark the client waits for before it leaves, then
 * either silence or (`rest`) the remaining events once the client has gone,
 * for providers that drain or a prefix that ends with the finish event.
 */
export type StreamEnding =
  | { at: "end" }
  | { at: "cut" | "error" | "stall"; after: number }
  | { at: "leave"; after: number | "finish"; rest: boolean };

/** One answer to one attempt. */
export type Act =
  /** JSON: the API's success shape for 2xx (with usage), its error shape otherwise. */
  | {
    kind: "json";
    status: number;
    usage: Buckets;
    /** Which of the API's usage spellings (OpenAI-compatible providers differ). */
    style: number;
    delayMs: number;
    gzip: boolean;
    chunked: boolean;
    /** An error body under status 200. */
    errorIn200: boolean;
    /** An error body that carries usage. */
    usageInError: boolean;
    retryAfter?: string;
  }
  /** A body that is not JSON (a proxy's HTML page, plain text). */
  | { kind: "text"; status: number; delayMs: number }
  /** An SSE stream when the request streams; else a 200 JSON answer with the same usage. */
  | {
    kind: "sse";
    usage: Buckets;
    style: number;
    deltas: number;
    gapMs: number;
    crlf: boolean;
    /** A content-length body instead of chunks (whole streams only). */
    lengthKnown: boolean;
    ending: StreamEnding;
    delayMs: number;
    /** Seeds the split of the stream into writes. */
    seed: number;
  }
  /** Closes the connection without answering. */
  | { kind: "reset" }
  /** Never answers: the gateway's first-byte timeout ends it. */
  | { kind: "hang" }
  /** The head and half of a JSON body, then silence. */
  | { kind: "stall-body" }
  /** A JSON body over the gateway's response limit, with or without its length declared. */
  | { kind: "huge"; declared: boolean };

/** What the test attaches to one request. */
export interface Script {
  acts: Act[];
  /** The body the client sent, to compare with what arrives. */
  clientBody: Uint8Array;
  /** Resolves once the client has gone or finished (a leaving client's stream waits for it). */
  clientLeft: Promise<void>;
  /** Called when the first attempt arrives. */
  onArrive?: () => void;
}

/** How the last attempt of a request failed below HTTP. */
export type TransportFailure = "reset" | "hang" | "stall-body" | "huge";

/** What the provider served for one request, as of its last attempt. */
export interface Served {
  /** The model as the body names it. */
  model: string;
  tokens: Buckets;
  attempts: number;
  /** The status the client gets when the answer is passed on (undefined: transport failure). */
  status?: number;
  failure?: TransportFailure;
  /**
   * The body the client must get: all of it (`whole`), or (a stream the
   * gateway ends, or one the client leaves) the part it must start with.
   */
  body?: { text: string; whole: boolean };
  /** The gateway must end the stream with its own native error event. */
  gatewayEndsStream: boolean;
  /** The API: `anthropic`, `count` (count_tokens) or `openai`. */
  api: Api;
}

/** One provider of the registry, as this server sees it. */
export interface ProviderRoute {
  /** Path prefix of the provider's base URL on this server, e.g. `/anthropic`. */
  prefix: string;
  /** The credential header the gateway must send, and its whole value. */
  credential: [string, string];
  /** The provider's policy reads a stream on after its client left (`on_disconnect: drain`). */
  drain: boolean;
}

/** Options of {@link scriptedProvider}. */
export interface ProviderOptions {
  routes: ProviderRoute[];
  /** Secrets that must never reach a provider (client keys, the admin key). */
  secrets: () => string[];
  /** Headers that must never reach a provider (client address headers). */
  forbiddenHeaders: readonly string[];
  /** The gateway's MAX_RESPONSE_BYTES. */
  maxResponseBytes: number;
  /** Longest any act waits for the gateway or the client before it is called stuck. */
  stuckMs?: number;
  /** Names a request in anomaly reports (by its script id). */
  describe?: (id: number) => string;
}

/** A running scripted provider. */
export interface ScriptedProvider {
  url: string;
  scripts: Map<number, Script>;
  served: Map<number, Served>;
  /** What arrived that should not have (empty when all is well). */
  anomalies: string[];
  close(): void;
}

type Api = "anthropic" | "count" | "openai";

const enc = new TextEncoder();
const dec = new TextDecoder();

function apiOf(path: string): Api | undefined {
  if (path.endsWith("/messages/count_tokens")) return "count";
  if (path.endsWith("/messages")) return "anthropic";
  if (path.endsWith("/chat/completions")) return "openai";
  return undefined;
}

function sameBytes(a: Uint8Array, b: Uint8Array): boolean {
  if (a.length !== b.length) return false;
  for (let i = 0; i < a.length; i++) if (a[i] !== b[i]) return false;
  return true;
}

function sleep(ms: number): Promise<void> {
  return new Promise((r) => setTimeout(r, ms));
}

// deno-lint-ignore no-explicit-any
type Json = any;

function isObject(v: unknown): v is Record<string, Json> {
  return typeof v === "object" && v !== null && !Array.isArray(v);
}

// ---------------------------------------------------------------------------
// Usage in each API's spelling.

/** Anthropic's usage object for `b`. */
function anthropicUsage(b: Buckets): Record<string, number> {
  return {
    input_tokens: b.uncached,
    cache_creation_input_tokens: b.cacheWrite,
    cache_read_input_tokens: b.cacheRead,
    output_tokens: b.output,
  };
}

/** OpenAI-compatible usage spellings: OpenAI, DeepSeek, Gemini (hidden thinking), Kimi. */
const OPENAI_STYLES = 4;

/** `b` as the OpenAI-compatible style can express it (only OpenAI reports cache writes, Gemini no cache). */
function fitOpenai(b: Buckets, style: number): Buckets {
  const s = style % OPENAI_STYLES;
  if (s === 0) return b;
  if (s === 2) {
    return {
      uncached: b.uncached + b.cacheRead + b.cacheWrite,
      cacheRead: 0,
      cacheWrite: 0,
      output: b.output,
    };
  }
  return { ...b, uncached: b.uncached + b.cacheWrite, cacheWrite: 0 };
}

/** The OpenAI-compatible usage object of `b` (already fitted to the style). */
function openaiUsage(b: Buckets, style: number): Record<string, Json> {
  const prompt = b.uncached + b.cacheRead + b.cacheWrite;
  const base = {
    prompt_tokens: prompt,
    completion_tokens: b.output,
    total_tokens: prompt + b.output,
  };
  switch (style % OPENAI_STYLES) {
    case 0:
      return {
        ...base,
        prompt_tokens_details: { cached_tokens: b.cacheRead, cache_write_tokens: b.cacheWrite },
        completion_tokens_details: { reasoning_tokens: Math.floor(b.output / 3) },
      };
    case 1:
      return {
        ...base,
        prompt_cache_hit_tokens: b.cacheRead,
        prompt_cache_miss_tokens: b.uncached,
      };
    case 2: {
      // Gemini: thinking only in total_tokens.
      const hidden = Math.floor(b.output / 4);
      return { ...base, completion_tokens: b.output - hidden };
    }
    default:
      return { ...base, cached_tokens: b.cacheRead };
  }
}

function usageFor(
  api: Api,
  b: Buckets,
  style: number,
): { usage: Record<string, Json>; b: Buckets } {
  if (api === "openai") {
    const fitted = fitOpenai(b, style);
    return { usage: openaiUsage(fitted, style), b: fitted };
  }
  return { usage: anthropicUsage(b), b };
}

// ---------------------------------------------------------------------------
// JSON bodies.

function errorBody(api: Api, status: number): Record<string, Json> {
  if (api === "openai") {
    return {
      error: {
        message: `fake upstream error ${status}`,
        type: status >= 500 ? "server_error" : "invalid_request_error",
        param: null,
        code: null,
      },
    };
  }
  const type = status === 529
    ? "overloaded_error"
    : status >= 500
    ? "api_error"
    : status === 429
    ? "rate_limit_error"
    : "invalid_request_error";
  return { type: "error", error: { type, message: `fake upstream error ${status}` } };
}

function successBody(api: Api, model: string, usage: Record<string, Json>): Record<string, Json> {
  if (api === "count") return { input_tokens: usage.input_tokens ?? 0 };
  if (api === "anthropic") {
    return {
      id: "msg_fake",
      type: "message",
      role: "assistant",
      model,
      content: [{ type: "text", text: "hello" }],
      stop_reason: "end_turn",
      stop_sequence: null,
      usage,
    };
  }
  return {
    id: "chatcmpl-fake",
    object: "chat.completion",
    created: 1,
    model,
    choices: [{
      index: 0,
      message: { role: "assistant", content: "hello" },
      finish_reason: "stop",
    }],
    usage,
  };
}

async function gzip(bytes: Uint8Array): Promise<Uint8Array> {
  const s = new Blob([bytes as Uint8Array<ArrayBuffer>]).stream().pipeThrough(
    new CompressionStream("gzip"),
  );
  return new Uint8Array(await new Response(s).arrayBuffer());
}

// ---------------------------------------------------------------------------
// Streams.

/** One SSE event and the usage the gateway holds once it has read it. */
interface Event {
  text: string;
  after: Buckets;
  /** OpenAI's usage-only event (`choices: []`), removed for clients that did not ask for it. */
  usageOnly?: boolean;
  /** The response's content is complete with this event (a finish or stop reason). */
  finishes?: boolean;
}

function sse(name: string | undefined, data: unknown, named: boolean): string {
  return `${named && name ? `event: ${name}\n` : ""}data: ${JSON.stringify(data)}\n\n`;
}

/** Anthropic stream styles: standard, input only at the end, nulls in the delta, no event names. */
function anthropicEvents(b: Buckets, style: number, deltas: number, rand: Rand): Event[] {
  const s = style % 4;
  const named = s !== 3;
  const start = s === 1 ? { ...NO_TOKENS, output: 1 } : { ...b, output: 1 };
  const out: Event[] = [];
  const push = (name: string, data: unknown, after: Buckets, finishes = false) =>
    out.push({ text: sse(name, data, named), after, finishes });
  push("message_start", {
    type: "message_start",
    message: {
      id: "msg_fake",
      type: "message",
      role: "assistant",
      content: [],
      model: "fake",
      usage: anthropicUsage(start),
    },
  }, start);
  push("content_block_start", {
    type: "content_block_start",
    index: 0,
    content_block: { type: "text", text: "" },
  }, start);
  for (let i = 0; i < deltas; i++) {
    if (rand.chance(0.2)) push("ping", { type: "ping" }, start);
    push("content_block_delta", {
      type: "content_block_delta",
      index: 0,
      delta: { type: "text_delta", text: `part ${i} ` },
    }, start);
  }
  push("content_block_stop", { type: "content_block_stop", index: 0 }, start);
  const final = anthropicUsage(b);
  const deltaUsage = s === 1
    ? final
    : s === 2
    ? { input_tokens: null, cache_read_input_tokens: null, output_tokens: b.output }
    : { output_tokens: b.output };
  push(
    "message_delta",
    {
      type: "message_delta",
      delta: { stop_reason: "end_turn", stop_sequence: null },
      usage: deltaUsage,
    },
    b,
    true,
  );
  push("message_stop", { type: "message_stop" }, b, true);
  return out;
}

/**
 * OpenAI-compatible streams: usage on a usage-only chunk (OpenAI, only when
 * asked), on the finish chunk (DeepSeek, GLM), or a running total on every
 * chunk (Gemini).
 */
function openaiEvents(b: Buckets, style: number, deltas: number, asked: boolean): Event[] {
  const where = Math.floor(style / OPENAI_STYLES) % 3; // 0 usage chunk, 1 finish chunk, 2 every chunk
  const fitted = fitOpenai(b, style);
  const nullUsage = where === 0 && asked ? { usage: null } : {};
  const out: Event[] = [];
  let held = NO_TOKENS;
  const chunkOf = (choices: unknown[], extra: Record<string, unknown>) => ({
    id: "chatcmpl-fake",
    object: "chat.completion.chunk",
    created: 1,
    model: "fake",
    choices,
    ...extra,
  });
  out.push({
    text: sse(
      undefined,
      chunkOf([{ index: 0, delta: { role: "assistant", content: "" } }], nullUsage),
      false,
    ),
    after: held,
  });
  for (let i = 0; i < deltas; i++) {
    let extra: Record<string, unknown> = nullUsage;
    if (where === 2) {
      const partial = { ...fitted, output: Math.floor((fitted.output * (i + 1)) / (deltas + 1)) };
      extra = { usage: openaiUsage(partial, style) };
      held = partial;
    }
    out.push({
      text: sse(
        undefined,
        chunkOf([{ index: 0, delta: { content: `part ${i} ` }, finish_reason: null }], extra),
        false,
      ),
      after: held,
    });
  }
  const finishUsage = where === 0 ? nullUsage : { usage: openaiUsage(fitted, style) };
  if (where !== 0) held = fitted;
  out.push({
    text: sse(
      undefined,
      chunkOf([{ index: 0, delta: {}, finish_reason: "stop" }], finishUsage),
      false,
    ),
    after: held,
    finishes: true,
  });
  if (where === 0 && asked) {
    held = fitted;
    out.push({
      text: sse(undefined, chunkOf([], { usage: openaiUsage(fitted, style) }), false),
      after: held,
      usageOnly: true,
      finishes: true,
    });
  }
  out.push({ text: "data: [DONE]\n\n", after: held, finishes: true });
  return out;
}

function errorEvent(api: Api): string {
  return api === "openai" ? sse(undefined, errorBody(api, 500), false) : sse(
    "error",
    { type: "error", error: { type: "overloaded_error", message: "Overloaded" } },
    true,
  );
}

/** Splits text into writes: whole events, several together, or cut inside an event. */
function splitWrites(text: string, rand: Rand): string[] {
  const out: string[] = [];
  let i = 0;
  while (i < text.length) {
    const n = rand.chance(0.3) ? rand.int(1, 40) : rand.int(40, 600);
    out.push(text.slice(i, i + n));
    i += n;
  }
  return out;
}

/**
 * Headers on every answer: the mark of the provider (so the test tells its
 * answers from the gateway's) and its request id, which names the script
 * (the gateway logs it as `upstream_request_id`).
 */
function ownHeaders(api: Api, id: number): [string, string][] {
  return [["x-fake-upstream", "1"], [
    api === "openai" ? "x-request-id" : "request-id",
    `req_${id}`,
  ]];
}

/** Iterative deep equality of JSON values (bodies may nest 100,000 deep). */
function sameJson(a: unknown, b: unknown): boolean {
  const stack: [unknown, unknown][] = [[a, b]];
  while (stack.length) {
    const [x, y] = stack.pop()!;
    if (x === y) continue;
    if (typeof x !== "object" || typeof y !== "object" || x === null || y === null) return false;
    if (Array.isArray(x) !== Array.isArray(y)) return false;
    const kx = Object.keys(x), ky = Object.keys(y);
    if (kx.length !== ky.length) return false;
    for (const k of kx) {
      if (!Object.hasOwn(y, k)) return false;
      stack.push([(x as Record<string, unknown>)[k], (y as Record<string, unknown>)[k]]);
    }
  }
  return true;
}

// ---------------------------------------------------------------------------

/** Starts a scripted provider on a raw TCP port. */
export function scriptedProvider(o: ProviderOptions): ScriptedProvider {
  const scripts = new Map<number, Script>();
  const served = new Map<number, Served>();
  const anomalies: string[] = [];
  const stuckMs = o.stuckMs ?? 30_000;
  const timers = new Set<ReturnType<typeof setTimeout>>();
  const flag = (id: number | string, what: string) => {
    const name = typeof id === "number" && o.describe ? ` [${o.describe(id)}]` : "";
    if (anomalies.length < 200) anomalies.push(`request ${id}${name}: ${what}`);
  };

  /** Waits for `p`, or flags the request as stuck after `stuckMs`. */
  const within = (id: number, what: string, p: Promise<void>) =>
    new Promise<void>((resolve) => {
      const t = setTimeout(() => {
        timers.delete(t);
        flag(id, `stuck waiting for ${what}`);
        resolve();
      }, stuckMs);
      timers.add(t);
      p.then(() => {
        clearTimeout(t);
        timers.delete(t);
        resolve();
      });
    });

  const handle = async (x: RawExchange): Promise<RawOutcome> => {
    const { req } = x;
    const idText = req.headers.get("x-fuzz-id");
    const id = Number(idText);
    const script = scripts.get(id);
    const api = apiOf(req.path);
    const route = o.routes.find((r) => req.path.startsWith(r.prefix + "/"));
    if (!script || !api || !route) {
      flag(
        Number.isInteger(id) ? id : idText ?? "?",
        `a request with no script reached the provider: ${req.method} ${req.path}`,
      );
      await x.write(responseHead(500, [], 0));
      return "keep-alive";
    }
    checkHeaders(id, req.headers, route);
    let body: Json;
    try {
      body = JSON.parse(dec.decode(req.body));
    } catch {
      body = undefined;
    }
    if (!isObject(body) || typeof body.model !== "string") {
      flag(id, "the body that reached the provider is not a JSON object with a string model");
      await x.write(responseHead(400, [], 0));
      return "keep-alive";
    }
    const stream = body.stream === true && api !== "count";
    const strip = checkBody(id, script, req.body, body, api, stream);
    const s: Served = served.get(id) ??
      { model: body.model, tokens: NO_TOKENS, attempts: 0, gatewayEndsStream: false, api };
    served.set(id, s);
    s.attempts++;
    s.model = body.model;
    s.api = api;
    s.status = undefined;
    s.failure = undefined;
    s.body = undefined;
    s.gatewayEndsStream = false;
    s.tokens = NO_TOKENS;
    if (s.attempts === 1) script.onArrive?.();
    const act = script.acts[Math.min(s.attempts - 1, script.acts.length - 1)];
    const askedUsage = isObject(body.stream_options) && body.stream_options.include_usage === true;
    switch (act.kind) {
      case "reset":
        s.failure = "reset";
        return "close";
      case "hang":
        s.failure = "hang";
        await within(id, "the gateway to give up", x.peerClosed);
        return "close";
      case "stall-body": {
        s.failure = "stall-body";
        const bytes = enc.encode(
          JSON.stringify(successBody(api, body.model, usageFor(api, NO_TOKENS, 0).usage)),
        );
        await x.write(responseHead(200, [["content-type", "application/json"]], bytes.length));
        await x.write(bytes.subarray(0, bytes.length >> 1));
        await within(id, "the gateway to give up on a stalled body", x.peerClosed);
        return "close";
      }
      case "huge": {
        s.failure = "huge";
        const pad = "x".repeat(o.maxResponseBytes + 1024);
        const bytes = enc.encode(JSON.stringify({
          ...successBody(api, body.model, usageFor(api, { ...NO_TOKENS, output: 7 }, 0).usage),
          pad,
        }));
        const head: [string, string][] = [
          ["content-type", "application/json"],
          ...ownHeaders(api, id),
        ];
        if (act.declared) {
          if (!await x.write(responseHead(200, head, bytes.length))) return "close";
          for (let i = 0; i < bytes.length; i += 16384) {
            if (!await x.write(bytes.subarray(i, i + 16384))) return "close";
          }
          return "keep-alive";
        }
        if (!await x.write(chunkedHead(200, head))) return "close";
        for (let i = 0; i < bytes.length; i += 16384) {
          if (!await x.write(chunk(bytes.subarray(i, i + 16384)))) return "close";
        }
        await x.write(LAST_CHUNK);
        return "keep-alive";
      }
      case "text": {
        await sleep(act.delayMs);
        const text = act.status === 200
          ? "OK"
          : `<html><body>${act.status} from a proxy</body></html>`;
        s.status = act.status;
        s.body = { text, whole: true };
        await x.write(
          responseHead(act.status, [
            ["content-type", act.status === 200 ? "text/plain" : "text/html"],
            ...ownHeaders(api, id),
          ], enc.encode(text).length) + text,
        );
        return "keep-alive";
      }
      case "json":
        return await answerJson(x, id, s, api, body.model, act);
      case "sse":
        if (!stream) {
          return await answerJson(x, id, s, api, body.model, {
            kind: "json",
            status: 200,
            usage: act.usage,
            style: act.style,
            delayMs: act.delayMs,
            gzip: false,
            chunked: false,
            errorIn200: false,
            usageInError: false,
          });
        }
        return await answerStream(x, id, s, script, api, route, act, askedUsage, strip);
    }
  };

  const answerJson = async (
    x: RawExchange,
    id: number,
    s: Served,
    api: Api,
    model: string,
    act: Act & { kind: "json" },
  ): Promise<RawOutcome> => {
    await sleep(act.delayMs);
    const { usage, b } = usageFor(api, act.usage, act.style);
    const ok = act.status < 300 && !act.errorIn200;
    const value = ok
      ? successBody(api, model, usage)
      : { ...errorBody(api, act.status), ...(act.usageInError ? { usage } : {}) };
    const text = JSON.stringify(value);
    s.status = act.status;
    s.body = { text, whole: true };
    s.tokens = api === "count" || !(ok || act.usageInError) ? NO_TOKENS : b;
    let bytes: Uint8Array = enc.encode(text);
    const head: [string, string][] = [
      ["content-type", "application/json"],
      ...ownHeaders(api, id),
    ];
    if (act.retryAfter !== undefined) head.push(["retry-after", act.retryAfter]);
    if (act.gzip) {
      bytes = await gzip(bytes);
      head.push(["content-encoding", "gzip"]);
    }
    if (act.chunked) {
      const half = bytes.length >> 1;
      await x.write(chunkedHead(act.status, head));
      await x.write(chunk(bytes.subarray(0, half)));
      await x.write(chunk(bytes.subarray(half)));
      await x.write(LAST_CHUNK);
    } else {
      await x.write(responseHead(act.status, head, bytes.length));
      await x.write(bytes);
    }
    return "keep-alive";
  };

  const answerStream = async (
    x: RawExchange,
    id: number,
    s: Served,
    script: Script,
    api: Api,
    route: ProviderRoute,
    act: Act & { kind: "sse" },
    askedUsage: boolean,
    strip: boolean,
  ): Promise<RawOutcome> => {
    const rand = new Rand(act.seed);
    const events = api === "openai"
      ? openaiEvents(act.usage, act.style, act.deltas, askedUsage)
      : anthropicEvents(act.usage, act.style, act.deltas, rand);
    const eol = (t: string) => (act.crlf ? t.replaceAll("\n", "\r\n") : t);
    const clientText = (list: Event[]) =>
      list.filter((e) => !(strip && e.usageOnly)).map((e) => eol(e.text)).join("");
    const e = act.ending;
    let k = events.length;
    if (e.at !== "end") {
      const finishAt = events.findIndex((ev) => ev.finishes) + 1;
      k = e.at === "leave" && e.after === "finish"
        ? finishAt
        : Math.max(1, Math.min(events.length - 1, Math.floor((e.after as number) * events.length)));
    }
    const prefix = events.slice(0, k);
    const rest = events.slice(k);
    // Whether the gateway reads what follows once the client has gone.
    const readsOn = e.at === "leave" && e.rest &&
      (route.drain || prefix.some((ev) => ev.finishes));
    const delivered = e.at === "end" || readsOn ? events : prefix;
    s.status = 200;
    s.tokens = delivered.length ? delivered[delivered.length - 1].after : NO_TOKENS;
    s.gatewayEndsStream = e.at === "cut" || e.at === "stall";
    s.body = e.at === "end"
      ? { text: clientText(events), whole: true }
      : e.at === "error"
      ? { text: clientText(prefix) + eol(errorEvent(api)), whole: true }
      : { text: clientText(prefix), whole: false };

    await sleep(act.delayMs);
    const head: [string, string][] = [
      ["content-type", "text/event-stream; charset=utf-8"],
      ["cache-control", "no-cache"],
      ...ownHeaders(api, id),
    ];
    const writes = (text: string) => splitWrites(text, rand);
    if (e.at === "end" && act.lengthKnown) {
      const bytes = enc.encode(eol(events.map((ev) => ev.text).join("")));
      if (!await x.write(responseHead(200, head, bytes.length))) return "close";
      let at = 0;
      for (const part of writes(dec.decode(bytes))) {
        const b = enc.encode(part);
        if (!await x.write(b)) return "close";
        at += b.length;
        if (act.gapMs) await sleep(act.gapMs);
      }
      return at === bytes.length ? "keep-alive" : "close";
    }
    if (!await x.write(chunkedHead(200, head))) return "close";
    const send = async (text: string) => {
      for (const part of writes(text)) {
        if (!await x.write(chunk(part))) return false;
        if (act.gapMs) await sleep(act.gapMs);
      }
      return true;
    };
    const prefixText = eol(prefix.map((ev) => ev.text).join(""));
    switch (e.at) {
      case "end":
        if (!await send(eol(events.map((ev) => ev.text).join("")))) return "close";
        await x.write(LAST_CHUNK);
        return "keep-alive";
      case "cut":
        await send(prefixText);
        return "close";
      case "error":
        if (!await send(prefixText + eol(errorEvent(api)))) return "close";
        await x.write(LAST_CHUNK);
        return "keep-alive";
      case "stall":
        await send(prefixText);
        await within(id, "the gateway to end a silent stream", x.peerClosed);
        return "close";
      case "leave": {
        if (!await send(prefixText + eol(": fuzz-mark\n\n"))) return "close";
        if (!readsOn) {
          await within(id, "the gateway to let go of a left stream", x.peerClosed);
          return "close";
        }
        await within(id, "the client to leave", script.clientLeft);
        if (!await send(eol(rest.map((ev) => ev.text).join("")))) return "close";
        await x.write(LAST_CHUNK);
        return "keep-alive";
      }
    }
  };

  /** Credentials, secrets and client address headers; returns nothing, flags problems. */
  const checkHeaders = (id: number, h: Headers, route: ProviderRoute) => {
    const [name, value] = route.credential;
    if (h.get(name) !== value) flag(id, `credential header ${name} is not the provider's`);
    for (const f of o.forbiddenHeaders) {
      if (h.has(f)) flag(id, `client header ${f} reached the provider`);
    }
    const secrets = o.secrets();
    h.forEach((v, k) => {
      for (const sec of secrets) {
        if (sec && v.includes(sec)) flag(id, `a client secret reached the provider in ${k}`);
      }
    });
  };

  /**
   * The body must be the client's, byte for byte, except OpenAI's injected
   * `include_usage` on streams. Returns true when the gateway injected it (the
   * client must not see the usage-only event).
   */
  const checkBody = (
    id: number,
    script: Script,
    raw: Uint8Array,
    body: Json,
    api: Api,
    stream: boolean,
  ): boolean => {
    if (sameBytes(raw, script.clientBody)) return false;
    let client: Json;
    try {
      client = JSON.parse(dec.decode(script.clientBody));
    } catch {
      flag(id, "the gateway forwarded a body JSON.parse rejects");
      return false;
    }
    if (api === "openai" && stream && isObject(client)) {
      const so = client.stream_options;
      const want = {
        ...client,
        stream_options: { ...(isObject(so) ? so : {}), include_usage: true },
      };
      if (sameJson(body, want)) return true;
    }
    flag(id, "the body that reached the provider is not the one the client sent");
    return false;
  };

  const server = rawHttpServer(handle);
  return {
    url: server.url,
    scripts,
    served,
    anomalies,
    close: () => {
      for (const t of timers) clearTimeout(t);
      server.close();
    },
  };
}
