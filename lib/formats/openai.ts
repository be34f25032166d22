/**
 * OpenAI Chat Completions (`POST /v1/chat/completions`) and compatible APIs
 * (DeepSeek, Moonshot/Kimi, GLM, Gemini's OpenAI endpoint, aggregators):
 * error shape, usage normalization, the stream accumulator and the
 * `stream_options.include_usage` injection (docs/metering.md, "OpenAI and
 * compatible APIs").
 */
import { z } from "zod";
import { named } from "../http/named_schemas.ts";
import { jsonResponse } from "../http/json.ts";
import {
  count,
  isObject,
  type Metered,
  type StreamMeter,
  type Tokens,
  tryParse,
  zeroTokens,
} from "../metering/tokens.ts";
import type { KnownModel } from "../config/registry.ts";
import {
  type ApiFormat,
  limitParam,
  type PreparedBody,
  type StreamUsageRequest,
} from "./format.ts";
import { findMember, isEmptyObject, spliceBytes } from "../pipeline/json_scan.ts";
import { SseEventDropper } from "../metering/sse_event_filter.ts";

const ERROR_TYPES: Record<number, string> = {
  401: "authentication_error",
  403: "permission_error",
  404: "not_found_error",
  429: "rate_limit_error",
  504: "timeout_error",
};

/** The OpenAI-style error type for an HTTP status. */
function openaiErrorType(status: number): string {
  return ERROR_TYPES[status] ?? (status >= 500 ? "server_error" : "invalid_request_error");
}

/**
 * Normalizes an OpenAI-style usage object into disjoint buckets.
 * `prompt_tokens` includes cached tokens (OpenAI `prompt_tokens_details`,
 * DeepSeek `prompt_cache_hit_tokens`, Kimi top-level `cached_tokens`);
 * Gemini counts thinking only in `total_tokens`, so a positive
 * `total - prompt - completion` is added to output.
 */
export function openaiTokens(u: Record<string, unknown>): Tokens {
  const prompt = count(u.prompt_tokens) ?? 0;
  const completion = count(u.completion_tokens) ?? 0;
  const details = isObject(u.prompt_tokens_details) ? u.prompt_tokens_details : {};
  const cached = Math.min(
    prompt,
    count(details.cached_tokens) ?? count(u.prompt_cache_hit_tokens) ?? count(u.cached_tokens) ?? 0,
  );
  const written = Math.min(prompt - cached, count(details.cache_write_tokens) ?? 0);
  const total = count(u.total_tokens);
  const hidden = total !== undefined ? Math.max(0, total - prompt - completion) : 0;
  return {
    inputUncached: prompt - cached - written,
    cacheRead: cached,
    cacheWrite: written,
    cacheWrite1h: 0,
    output: completion + hidden,
    webSearch: 0,
    webFetch: 0,
  };
}

/** The usage object of a chunk: top-level `usage`, else any `choices[i].usage` (Moonshot). */
function usageOf(j: Record<string, unknown>): Record<string, unknown> | undefined {
  if (isObject(j.usage)) return j.usage;
  if (Array.isArray(j.choices)) {
    for (const c of j.choices) if (isObject(c) && isObject(c.usage)) return c.usage;
  }
  return undefined;
}

function errorTypeOf(j: Record<string, unknown>): string | undefined {
  const e = j.error;
  if (e === undefined || e === null) return undefined;
  if (isObject(e)) {
    for (const k of ["type", "code"] as const) if (typeof e[k] === "string") return e[k] as string;
  }
  return "error";
}

// Only chunks whose text holds a usage object or an error key are parsed.
const USAGE_OBJECT_RE = /"usage"\s*:\s*\{/;

/**
 * True when a chunk carrying usage is one that ends the response: the
 * usage-only chunk (no or empty `choices`) or a finish chunk (DeepSeek, GLM,
 * Moonshot). Usage on other chunks (Gemini repeats it, some proxies send
 * placeholders) may still change.
 */
function endsResponse(j: Record<string, unknown>): boolean {
  if (!Array.isArray(j.choices) || j.choices.length === 0) return true;
  return j.choices.some((c) =>
    isObject(c) && typeof c.finish_reason === "string" && c.finish_reason !== ""
  );
}

// A choice with a non-empty finish reason (`null` on every other chunk).
const FINISH_RE = /"finish_reason"\s*:\s*"[^"]/;

class OpenAIStreamMeter implements StreamMeter {
  #last?: Record<string, unknown>;
  /** The last usage seen came on a chunk that ends the response. */
  #final = false;
  #done = false;
  #errorType?: string;
  /** A choice finished (or the usage chunk or `[DONE]` came): only usage may follow. */
  finished = false;

  event(name: string | undefined, data: string): void {
    if (data.charCodeAt(0) === 91 /* [ */ && data.startsWith("[DONE]")) {
      this.#done = this.finished = true;
      return;
    }
    const isError = name === "error";
    const finish = !this.finished && FINISH_RE.test(data);
    if (!isError && !finish && !USAGE_OBJECT_RE.test(data) && !data.includes('"error"')) return;
    const j = tryParse(data);
    if (!isObject(j)) {
      if (isError) this.#errorType ??= "error";
      return;
    }
    const err = errorTypeOf(j);
    if (err || isError) this.#errorType = err ?? "error";
    if (finish && endsResponse(j)) this.finished = true;
    const u = usageOf(j);
    if (u) {
      this.#last = u;
      this.#final = endsResponse(j);
      if (this.#final) this.finished = true;
    }
  }

  end(): Metered {
    const tokens = this.#last ? openaiTokens(this.#last) : zeroTokens();
    // Without `[DONE]`, usage counts as final only if it came on a chunk that
    // ends the response; a stream cut after per-chunk usage is incomplete.
    const complete = this.#last && (this.#done || this.#final);
    const status = this.#errorType ? "stream_error" : complete ? "ok" : "incomplete";
    return { status, tokens, extra: [], usageSeen: !!this.#last, errorType: this.#errorType };
  }
}

const enc = new TextEncoder();

const EMPTY_CHOICES_RE = /"choices"\s*:\s*\[\s*\]/;
const dec = new TextDecoder();

/** True when the bytes hold an empty JSON array (`[]`, maybe with spaces inside). */
function hasEmptyArray(b: Uint8Array): boolean {
  for (let i = b.indexOf(0x5b); i !== -1; i = b.indexOf(0x5b, i + 1)) {
    let j = i + 1;
    while (b[j] === 0x20 || b[j] === 0x0a || b[j] === 0x0d || b[j] === 0x09) j++;
    if (b[j] === 0x5d) return true;
  }
  return false;
}

// Most chunks have no empty array at all and are passed on without decoding.
const mayBeUsageOnly = (b: Uint8Array) => {
  if (!hasEmptyArray(b)) return false;
  const text = dec.decode(b);
  return EMPTY_CHOICES_RE.test(text) && USAGE_OBJECT_RE.test(text);
};

/**
 * The event `stream_options.include_usage` adds: empty `choices` and a usage
 * object. Usage riding on a content or finish chunk (DeepSeek, GLM, Kimi) is
 * never matched, so no content is ever dropped.
 */
function isUsageOnly(data: string): boolean {
  const j = tryParse(data);
  return isObject(j) && Array.isArray(j.choices) && j.choices.length === 0 && isObject(j.usage);
}

const ErrorBody = named(
  "OpenAIError",
  z.object({
    error: z.object({
      message: z.string(),
      type: z.string(),
      param: z.string().nullable(),
      code: z.string().nullable(),
    }),
  }),
);

const ModelList = named(
  "OpenAIModelList",
  z.object({
    object: z.literal("list"),
    data: z.array(z.object({
      id: z.string(),
      object: z.literal("model"),
      created: z.number(),
      owned_by: z.string(),
    })),
  }),
);

function modelItem(m: KnownModel) {
  return { id: m.id, object: "model", created: 0, owned_by: m.ownedBy };
}

/**
 * OpenAI-format streams carry usage only when the request sets
 * `stream_options.include_usage`: the gateway sets it (at the byte level, no
 * re-serialization) and removes the usage-only event for clients that did
 * not ask for it.
 */
const streamUsage: StreamUsageRequest = {
  prepare(raw, json, provider): PreparedBody {
    if (json.stream !== true || !provider.streamUsage) {
      return { bytes: raw, stripUsageEvent: false };
    }
    const so = json.stream_options;
    if (so === undefined) {
      // Insert the member right after the opening brace: no re-serialization.
      const open = raw.indexOf(0x7b /* { */);
      const member = isEmptyObject(raw, open)
        ? '"stream_options":{"include_usage":true}'
        : '"stream_options":{"include_usage":true},';
      return {
        bytes: spliceBytes(raw, open + 1, open + 1, enc.encode(member)),
        stripUsageEvent: true,
      };
    }
    if (isObject(so) && so.include_usage === true) return { bytes: raw, stripUsageEvent: false };
    const outer = findMember(raw, raw.indexOf(0x7b), "stream_options");
    if (!outer) return { bytes: raw, stripUsageEvent: false };
    if (so === null) {
      const repl = enc.encode('{"include_usage":true}');
      return { bytes: spliceBytes(raw, outer.start, outer.end, repl), stripUsageEvent: true };
    }
    if (!isObject(so)) return { bytes: raw, stripUsageEvent: false };
    const inner = findMember(raw, outer.start, "include_usage");
    if (inner) {
      return {
        bytes: spliceBytes(raw, inner.start, inner.end, enc.encode("true")),
        stripUsageEvent: true,
      };
    }
    const empty = isEmptyObject(raw, outer.start);
    const member = enc.encode(empty ? '"include_usage":true' : '"include_usage":true,');
    return {
      bytes: spliceBytes(raw, outer.start + 1, outer.start + 1, member),
      stripUsageEvent: true,
    };
  },

  usageEventFilter: () => new SseEventDropper(mayBeUsageOnly, isUsageOnly),
};

/** The OpenAI Chat Completions format. */
export const openai: ApiFormat = {
  name: "openai",
  label: "OpenAI Chat Completions",
  endpoints: [{
    path: "/v1/chat/completions",
    upstreamSuffix: "",
    metered: true,
    summary: "OpenAI Chat Completions",
    docs: "https://platform.openai.com/docs/api-reference/chat/create",
  }],
  upstream: { path: "/chat/completions", auth: "authorization_bearer" },

  // The default shape of shared routes: claimed by no request header.
  claims: () => false,

  error(status, message, code, param) {
    return jsonResponse(status, {
      error: { message, type: openaiErrorType(status), param: param ?? null, code: code ?? null },
    });
  },

  sseError(status, message) {
    const body = JSON.stringify({
      error: { message, type: openaiErrorType(status), param: null, code: null },
    });
    return enc.encode(`data: ${body}\n\n`);
  },

  schemas: { error: ErrorBody, modelList: ModelList },

  // OpenAI-compatible clients list every reachable model, whatever its format.
  listModels(reachable, url) {
    const limit = limitParam(url, 1000);
    return jsonResponse(200, {
      object: "list",
      data: reachable.slice(0, limit).map((r) => modelItem(r.model)),
    });
  },

  getModel(reachable, id) {
    const r = reachable.find((r) => r.model.id === id);
    return r && jsonResponse(200, modelItem(r.model));
  },

  meterJson(body) {
    if (!isObject(body)) return { tokens: zeroTokens(), extra: [], usageSeen: false };
    const u = usageOf(body);
    return {
      tokens: u ? openaiTokens(u) : zeroTokens(),
      extra: [],
      usageSeen: !!u,
      errorType: errorTypeOf(body),
    };
  },

  streamMeter: () => new OpenAIStreamMeter(),

  streamUsage,
};
