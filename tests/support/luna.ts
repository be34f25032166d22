/**
 * The Luna API Proxy our users migrate from, as the tests meet it: its real
 * `models.json` (a byte-for-byte copy in `tests/data/`) with every provider
 * pointed at a fake upstream, the provider secrets it names, and an upstream
 * that answers every provider in its own format.
 */
import { fileURLToPath } from "node:url";
import { parseRegistry, type Registry } from "../../lib/config/registry.ts";
import { type FakeUpstream, fakeUpstream, type Seen } from "./upstream.ts";

/** Path of Luna's `models.json` copy. */
export const LUNA_MODELS = fileURLToPath(new URL("../data/luna_models.json", import.meta.url));

/** Every provider secret Luna's `models.json` names. */
export const LUNA_ENV: Record<string, string> = {
  KIMI_API_KEY: "up-kimi",
  DEEPSEEK_API_KEY: "up-deepseek",
  ZAI_API_KEY: "up-zai",
  JOSE_OPENAI_API_KEY: "up-openai",
  JOSE_GEMINI_API_KEY: "up-gemini",
  AIBERM_API_KEY: "up-aiberm",
};

/**
 * Luna's registry with every provider pointed at the fake upstream
 * (`<upstream>/<provider id>`); `edit` may change the raw file first.
 */
export function lunaRegistry(
  upstream: string,
  // deno-lint-ignore no-explicit-any
  edit: (raw: any) => void = () => {},
): Registry {
  const raw = JSON.parse(Deno.readTextFileSync(LUNA_MODELS));
  for (const [id, p] of Object.entries<Record<string, unknown>>(raw.providers)) {
    p.base_url = `${upstream}/${id}`;
  }
  edit(raw);
  return parseRegistry(raw, LUNA_MODELS);
}

/** Answers Anthropic and OpenAI-format providers alike, with a small usage. */
export function lunaReply(s: Seen): Response {
  return s.path.endsWith("/messages")
    ? Response.json({
      type: "message",
      content: [],
      usage: { input_tokens: 1, output_tokens: 1 },
    })
    : Response.json({
      object: "chat.completion",
      choices: [{ index: 0, message: { role: "assistant", content: "ok" } }],
      usage: { prompt_tokens: 3, completion_tokens: 2, total_tokens: 5 },
    });
}

/** A fake upstream answering with {@link lunaReply}. */
export function lunaUpstream(): FakeUpstream {
  return fakeUpstream(lunaReply);
}
