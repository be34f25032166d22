/**
 * The API formats the gateway speaks. Adding one (say OpenAI's Responses
 * API) is a module implementing {@link ApiFormat} and one entry here; the
 * router, the models list, `models.json` validation and the OpenAPI
 * document all read this list.
 */
import { anthropic } from "./anthropic.ts";
import type { ApiFormat, FormatEndpoint } from "./format.ts";
import { openai } from "./openai.ts";

/** Every format, in the order they are tried for routes they share. */
export const FORMATS: readonly ApiFormat[] = [anthropic, openai];

/** The format of shared routes no format claims: OpenAI's shapes are the common denominator. */
export const DEFAULT_FORMAT: ApiFormat = openai;

/** The format names `models.json` accepts. */
export const FORMAT_NAMES = FORMATS.map((f) => f.name) as [string, ...string[]];

/** A format by its `models.json` name. */
export function formatNamed(name: string): ApiFormat | undefined {
  return FORMATS.find((f) => f.name === name);
}

/** The format whose shapes a request on a shared route asks for. */
export function formatFor(req: Request): ApiFormat {
  return FORMATS.find((f) => f.claims(req)) ?? DEFAULT_FORMAT;
}

/** The format owning a path (its endpoints and anything below them), if any. */
export function formatOwning(path: string): ApiFormat | undefined {
  return FORMATS.find((f) => f.endpoints.some((e) => path.startsWith(e.path)));
}

/** Every proxied endpoint with its format. */
export function proxiedEndpoints(): { format: ApiFormat; endpoint: FormatEndpoint }[] {
  return FORMATS.flatMap((format) => format.endpoints.map((endpoint) => ({ format, endpoint })));
}
