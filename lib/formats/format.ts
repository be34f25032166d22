/**
 * The boundary every API format sits behind. Everything that differs between
 * Anthropic Messages and OpenAI Chat Completions (paths, upstream defaults,
 * error and list shapes, usage extraction, stream handling) is a field or
 * method of {@link ApiFormat}; the rest of the gateway only talks to this
 * interface and never compares format names. A new format is one module
 * implementing it plus one line in `mod.ts`.
 */
import type { z } from "zod";
import { errors } from "../http/errors.ts";
import type { RequestUrl } from "../http/request_url.ts";
import type { BodyFields } from "../pipeline/body.ts";
import type { Metered, StreamMeter } from "../metering/tokens.ts";
import type { SseEventDropper } from "../metering/sse_event_filter.ts";
import type { KnownModel, Provider } from "../config/registry.ts";

/** The credential header styles `models.json` accepts in a provider's `auth_header`. */
export const AUTH_STYLES = {
  "x-api-key": { header: "x-api-key", prefix: "" },
  "authorization_bearer": { header: "authorization", prefix: "Bearer " },
} as const;

/** How a provider expects its secret: `x-api-key: <secret>` or `Authorization: Bearer <secret>`. */
export type AuthStyle = keyof typeof AUTH_STYLES;

/** A credential header: its name and what precedes the secret in its value. */
export type CredentialHeader = typeof AUTH_STYLES[AuthStyle];

/** One POST endpoint of a format, proxied to the provider serving the body's `model`. */
export interface FormatEndpoint {
  /** The gateway path, e.g. `/v1/messages`. */
  readonly path: string;
  /** Appended to the provider's endpoint URL (`/count_tokens` for Anthropic's token count). */
  readonly upstreamSuffix: string;
  /**
   * False for free calls whose answer is not billed (Anthropic count_tokens):
   * no usage is read from them and they never stream.
   */
  readonly metered: boolean;
  /** One line for the OpenAPI document. */
  readonly summary: string;
  /** The upstream API reference. */
  readonly docs: string;
}

/** The request body as it will go upstream. */
export interface PreparedBody {
  bytes: Uint8Array<ArrayBuffer>;
  /** True when the gateway asked for stream usage the client did not ask for. */
  stripUsageEvent: boolean;
}

/**
 * For formats whose streams report usage only when asked (OpenAI's
 * `stream_options.include_usage`): the one body edit the gateway makes, and
 * the filter that removes the usage event the client did not ask for.
 */
export interface StreamUsageRequest {
  /** The body to send upstream to `provider` for a streaming request. */
  prepare(raw: Uint8Array<ArrayBuffer>, fields: BodyFields, provider: Provider): PreparedBody;
  /** A filter that removes the injected usage-only event, and nothing else. */
  usageEventFilter(): SseEventDropper;
}

/** A model a key can reach, with the format of the provider that serves it. */
export interface ReachableModel {
  model: KnownModel;
  format: ApiFormat;
}

/** One API format's behaviour. */
export interface ApiFormat {
  /** The name `models.json` uses in a provider's `format`. */
  readonly name: string;
  /** A human name, e.g. "Anthropic Messages". */
  readonly label: string;
  /** The proxied endpoints; the first is the main call. */
  readonly endpoints: readonly FormatEndpoint[];
  /** Where on a provider the main call lives (default `chat_endpoint`) and how it authenticates. */
  readonly upstream: { readonly path: string; readonly auth: AuthStyle };
  /**
   * True when a request to a route that several formats share (`GET
   * /v1/models`, unknown paths) asks for this format's shapes.
   */
  claims(req: Request): boolean;
  /** An error response in this format's native shape (`param`: the request field at fault). */
  error(status: number, message: string, code?: string, param?: string): Response;
  /** The bytes of a native SSE error event, sent when a stream must end early. */
  sseError(status: number, message: string): Uint8Array;
  /** Named zod schemas of the error body and the model list, for the OpenAPI document. */
  readonly schemas: { readonly error: z.ZodType; readonly modelList: z.ZodType };
  /** `GET /v1/models` in this format's list shape (with its paging parameters). */
  listModels(models: ReachableModel[], url: RequestUrl): Response;
  /** `GET /v1/models/{id}`: one model in this format's shape, or undefined when it does not list it. */
  getModel(models: ReachableModel[], id: string): Response | undefined;
  /** Usage from a complete JSON response body (any status). */
  meterJson(body: unknown): Omit<Metered, "status">;
  /** A fresh accumulator for one streamed response. */
  streamMeter(): StreamMeter;
  /** Present when streams report usage only if the request asks for it. */
  readonly streamUsage?: StreamUsageRequest;
}

/** The `limit` query parameter: a whole number within `[1, max]`, else 400. */
export function limitParam(url: RequestUrl, fallback: number, max = 1000): number {
  const v = url.searchParams.get("limit");
  if (v === null) return fallback;
  const n = Number(v);
  if (!Number.isInteger(n) || n < 1 || n > max) {
    throw errors.badRequest("invalid_limit", `limit must be a whole number from 1 to ${max}`);
  }
  return n;
}
