/**
 * Anthropic Messages (`POST /v1/messages`, `/v1/messages/count_tokens`):
 * endpoints, error and model-list shapes, usage fields and the streaming
 * usage accumulator (docs/metering.md, "Anthropic").
 */
import { z } from "zod";
import { named } from "../http/named_schemas.ts";
import { jsonResponse } from "../http/json.ts";
import {
  addTokens,
  count,
  isObject,
  type Metered,
  type StreamMeter,
  type Tokens,
  tryParse,
  zeroTokens,
} from "../metering/tokens.ts";
import type { KnownModel } from "../config/registry.ts";
import { type ApiFormat, limitParam, type ReachableModel } from "./format.ts";

const ERROR_TYPES: Record<number, string> = {
  400: "invalid_request_error",
  401: "authentication_error",
  402: "billing_error",
  403: "permission_error",
  404: "not_found_error",
  405: "invalid_request_error",
  408: "timeout_error",
  413: "request_too_large",
  429: "rate_limit_error",
  500: "api_error",
  502: "api_error",
  503: "overloaded_error",
  504: "timeout_error",
  529: "overloaded_error",
};

/** The Anthropic error type Anthropic uses for an HTTP status. */
function anthropicErrorType(status: number): string {
  return ERROR_TYPES[status] ?? (status >= 500 ? "api_error" : "invalid_request_error");
}

/** Usage fields as they are accumulated: undefined until seen. */
interface Acc {
  input?: number;
  cacheWrite?: number;
  /** `cache_creation.ephemeral_1h_input_tokens`: the one-hour part of `cacheWrite`. */
  cacheWrite1h?: number;
  cacheRead?: number;
  output?: number;
  webSearch?: number;
  webFetch?: number;
  iterations?: unknown[];
}

/** Overwrites every field the usage object carries (never adds). */
function apply(acc: Acc, usage: unknown): boolean {
  if (!isObject(usage)) return false;
  const set = <K extends keyof Acc>(k: K, v: Acc[K] | undefined) => {
    if (v !== undefined) acc[k] = v;
  };
  set("input", count(usage.input_tokens));
  set("cacheWrite", count(usage.cache_creation_input_tokens));
  if (isObject(usage.cache_creation)) {
    set("cacheWrite1h", count(usage.cache_creation.ephemeral_1h_input_tokens));
  }
  set("cacheRead", count(usage.cache_read_input_tokens));
  set("output", count(usage.output_tokens));
  const stu = usage.server_tool_use;
  if (isObject(stu)) {
    set("webSearch", count(stu.web_search_requests));
    set("webFetch", count(stu.web_fetch_requests));
  }
  if (Array.isArray(usage.iterations)) acc.iterations = usage.iterations;
  return true;
}

/**
 * The one-hour part of a cache write: the reported split, never more than
 * the write itself (the two may come from different events); without a
 * split every write is a five-minute one.
 */
function oneHour(cacheWrite: number, split: number | undefined): number {
  return Math.min(cacheWrite, split ?? 0);
}

function tokensOf(u: Record<string, unknown>): Tokens {
  const cacheWrite = count(u.cache_creation_input_tokens) ?? 0;
  const split = isObject(u.cache_creation)
    ? count(u.cache_creation.ephemeral_1h_input_tokens)
    : undefined;
  return {
    inputUncached: count(u.input_tokens) ?? 0,
    cacheWrite,
    cacheWrite1h: oneHour(cacheWrite, split),
    cacheRead: count(u.cache_read_input_tokens) ?? 0,
    output: count(u.output_tokens) ?? 0,
    webSearch: 0,
    webFetch: 0,
  };
}

/**
 * Final buckets from the accumulated top-level usage plus `iterations`:
 * top-level fields exclude compaction and advisor steps, so compaction
 * iterations are added in and advisor iterations are billed under their own
 * model (docs/metering.md, "Iterations: compaction and advisor").
 */
function finish(acc: Acc): { tokens: Tokens; extra: Metered["extra"] } {
  const cacheWrite = acc.cacheWrite ?? 0;
  const tokens: Tokens = {
    inputUncached: acc.input ?? 0,
    cacheWrite,
    cacheWrite1h: oneHour(cacheWrite, acc.cacheWrite1h),
    cacheRead: acc.cacheRead ?? 0,
    output: acc.output ?? 0,
    webSearch: acc.webSearch ?? 0,
    webFetch: acc.webFetch ?? 0,
  };
  const extra: Metered["extra"] = [];
  for (const it of acc.iterations ?? []) {
    if (!isObject(it)) continue;
    if (it.type === "compaction") addTokens(tokens, tokensOf(it));
    else if (it.type === "advisor_message" && typeof it.model === "string") {
      const prev = extra.find((e) => e.model === it.model);
      if (prev) addTokens(prev.tokens, tokensOf(it));
      else extra.push({ model: it.model, tokens: tokensOf(it) });
    }
  }
  return { tokens, extra };
}

// Events without an `event:` line (some compatible proxies) are recognised by
// their JSON `type`; only these types can carry usage or end the stream.
const TYPE_RE = /"type"\s*:\s*"(message_start|message_delta|message_stop|error)"/;

class AnthropicStreamMeter implements StreamMeter {
  #acc: Acc = {};
  #seen = false;
  #stopped = false;
  #messageId?: string;
  #errorType?: string;
  /** A stop reason (message_delta) or message_stop was seen: only usage may follow. */
  finished = false;

  event(name: string | undefined, data: string): void {
    let type = name;
    if (type === undefined || type === "message") {
      const m = TYPE_RE.exec(data);
      if (!m) return;
      type = m[1];
    }
    if (type === "message_stop") {
      this.#stopped = this.finished = true;
      return;
    }
    if (type !== "message_start" && type !== "message_delta" && type !== "error") return;
    const j = tryParse(data);
    if (type === "error") {
      // An error event ends the stream even when its data is not JSON (an
      // intermediary's text), as the SDKs treat it.
      const err = isObject(j) ? j.error : undefined;
      this.#errorType = isObject(err) && typeof err.type === "string" ? err.type : "error";
      return;
    }
    if (!isObject(j)) return;
    if (type === "message_start") {
      const msg = isObject(j.message) ? j.message : {};
      const id = typeof msg.id === "string" ? msg.id : undefined;
      // A second message_start for another message (a spliced stream):
      // count only the last message.
      if (this.#messageId !== undefined && id !== undefined && id !== this.#messageId) {
        this.#acc = {};
        this.#stopped = this.finished = false;
      }
      this.#messageId = id ?? this.#messageId;
      if (apply(this.#acc, msg.usage)) this.#seen = true;
      return;
    }
    if (apply(this.#acc, j.usage)) this.#seen = true;
    if (isObject(j.delta) && typeof j.delta.stop_reason === "string") this.finished = true;
  }

  end(): Metered {
    const { tokens, extra } = finish(this.#acc);
    const status = this.#errorType ? "stream_error" : this.#stopped ? "ok" : "incomplete";
    return { status, tokens, extra, usageSeen: this.#seen, errorType: this.#errorType };
  }
}

const ErrorBody = named(
  "AnthropicError",
  z.object({
    type: z.literal("error"),
    error: z.object({ type: z.string(), message: z.string() }),
  }),
);

const ModelList = named(
  "AnthropicModelList",
  z.object({
    data: z.array(z.object({
      type: z.literal("model"),
      id: z.string(),
      display_name: z.string(),
      created_at: z.string().describe("ISO 8601 time"),
    })),
    has_more: z.boolean(),
    first_id: z.string().nullable(),
    last_id: z.string().nullable(),
  }),
);

const EPOCH_ISO = "1970-01-01T00:00:00Z";

function modelItem(m: KnownModel) {
  return { type: "model", id: m.id, display_name: m.displayName ?? m.id, created_at: EPOCH_ISO };
}

/** The Anthropic Messages format. */
export const anthropic: ApiFormat = {
  name: "anthropic",
  label: "Anthropic Messages",
  endpoints: [
    {
      path: "/v1/messages",
      upstreamSuffix: "",
      metered: true,
      summary: "Anthropic Messages",
      docs: "https://docs.anthropic.com/en/api/messages",
    },
    {
      path: "/v1/messages/count_tokens",
      upstreamSuffix: "/count_tokens",
      metered: false,
      summary: "Anthropic token counting (free: recorded with zero tokens)",
      docs: "https://docs.anthropic.com/en/api/messages-count-tokens",
    },
  ],
  upstream: { path: "/messages", auth: "x-api-key" },

  // The Anthropic SDKs and Claude Code always send `anthropic-version`.
  claims: (req) => req.headers.has("anthropic-version"),

  error(status, message) {
    return jsonResponse(status, {
      type: "error",
      error: { type: anthropicErrorType(status), message },
    });
  },

  sseError(status, message) {
    const body = JSON.stringify({
      type: "error",
      error: { type: anthropicErrorType(status), message },
    });
    return new TextEncoder().encode(`event: error\ndata: ${body}\n\n`);
  },

  schemas: { error: ErrorBody, modelList: ModelList },

  // Anthropic's list holds only models served in this format, paged by id.
  listModels(reachable, url) {
    const models = own(reachable);
    const limit = limitParam(url, 20);
    const after = url.searchParams.get("after_id");
    const before = url.searchParams.get("before_id");
    let start = 0, end = models.length;
    if (after !== null) start = models.findIndex((m) => m.id === after) + 1;
    if (before !== null) {
      const i = models.findIndex((m) => m.id === before);
      end = i === -1 ? models.length : i;
    }
    const window = models.slice(start, end);
    const page = before !== null && after === null ? window.slice(-limit) : window.slice(0, limit);
    return jsonResponse(200, {
      data: page.map(modelItem),
      has_more: page.length < window.length,
      first_id: page[0]?.id ?? null,
      last_id: page[page.length - 1]?.id ?? null,
    });
  },

  getModel(reachable, id) {
    const m = own(reachable).find((m) => m.id === id);
    return m && jsonResponse(200, modelItem(m));
  },

  meterJson(body) {
    if (!isObject(body)) return { tokens: zeroTokens(), extra: [], usageSeen: false };
    const acc: Acc = {};
    const seen = apply(acc, body.usage);
    const { tokens, extra } = finish(acc);
    const err = body.type === "error" && isObject(body.error) ? body.error.type : undefined;
    return { tokens, extra, usageSeen: seen, errorType: typeof err === "string" ? err : undefined };
  },

  streamMeter: () => new AnthropicStreamMeter(),
};

function own(reachable: ReachableModel[]): KnownModel[] {
  return reachable.filter((r) => r.format === anthropic).map((r) => r.model);
}
