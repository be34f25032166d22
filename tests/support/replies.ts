/**
 * What fake providers answer, in each API's own shape: Anthropic Messages
 * and OpenAI Chat Completions JSON bodies, and the Anthropic stream events
 * that carry usage.
 */
import { sseEvent } from "./streams.ts";

/** A usage object as the provider writes it (field names are the API's own). */
export type ProviderUsage = Record<string, unknown>;

/** Optional fields of a canned reply. */
export interface ReplyOptions {
  id?: string;
  model?: string;
  text?: string;
}

/** A complete Anthropic Messages response carrying `usage`. */
export function anthropicMessage(usage: ProviderUsage, o: ReplyOptions = {}) {
  return {
    id: o.id ?? "msg_1",
    type: "message",
    role: "assistant",
    model: o.model ?? "claude-test",
    content: [{ type: "text", text: o.text ?? "hi" }],
    stop_reason: "end_turn",
    stop_sequence: null,
    usage,
  };
}

/** A complete OpenAI Chat Completions response carrying `usage`. */
export function openaiCompletion(usage: ProviderUsage, o: ReplyOptions = {}) {
  return {
    id: o.id ?? "chatcmpl-1",
    object: "chat.completion",
    created: 1,
    model: o.model ?? "gpt-test",
    choices: [{
      index: 0,
      message: { role: "assistant", content: o.text ?? "ok" },
      finish_reason: "stop",
    }],
    usage,
  };
}

/** Anthropic stream events (each with its blank line), the ones metering reads. */
export const anthropicSse = {
  /** `message_start` with the input side of usage. */
  start(usage: ProviderUsage, id = "m1"): string {
    return sseEvent("message_start", { type: "message_start", message: { id, usage } });
  },
  /** One `content_block_delta` of text. */
  delta(text = "hi"): string {
    return sseEvent("content_block_delta", {
      type: "content_block_delta",
      index: 0,
      delta: { type: "text_delta", text },
    });
  },
  /** `message_delta` with the final usage, then `message_stop`. */
  end(usage: ProviderUsage, delta: Record<string, unknown> = {}): string {
    return sseEvent("message_delta", { type: "message_delta", delta, usage }) +
      sseEvent("message_stop", { type: "message_stop" });
  },
};
