/**
 * Reading a client's request body once, within `MAX_BODY_BYTES`, and the few
 * facts routing needs from it (`model`, `stream`).
 */
import { errors, GatewayError } from "../http/errors.ts";
import { ok, refused, type Result } from "./result.ts";
import { JsonScanError, scanObject } from "./json_scan.ts";

/** Reads the whole body; 413 when it exceeds `limit` bytes. */
async function readBody(req: Request, limit: number): Promise<Uint8Array<ArrayBuffer>> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limit) throw errors.tooLarge(limit);
  if (!req.body) return new Uint8Array(0);
  if (declared !== null) return await req.bytes();
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const part of req.body) {
    size += part.length;
    if (size > limit) throw errors.tooLarge(limit);
    parts.push(part);
  }
  const out = new Uint8Array(size);
  let at = 0;
  for (const p of parts) {
    out.set(p, at);
    at += p.length;
  }
  return out;
}

const dec = new TextDecoder();

/** The top-level request fields the gateway reads; everything else is forwarded unread. */
export interface BodyFields {
  model?: unknown;
  stream?: unknown;
  stream_options?: unknown;
  /** The output cap (Anthropic, OpenAI), for limit reservations. */
  max_tokens?: unknown;
  /** OpenAI's newer output cap. */
  max_completion_tokens?: unknown;
}

/** A request body's routing facts. */
export interface InspectedBody {
  /** The top-level fields the gateway reads (only those present). */
  json: BodyFields;
  model: string;
  stream: boolean;
}

const WANTED = [
  "model",
  "stream",
  "stream_options",
  "max_tokens",
  "max_completion_tokens",
] as const;

/**
 * Checks that the body is a JSON object with a string `model`; 400
 * otherwise. Only the fields routing needs are parsed: the structure of the
 * rest is checked without building it (a 500 KB conversation costs no
 * garbage), and the upstream judges what is inside its strings.
 */
function inspectBody(raw: Uint8Array): InspectedBody {
  let members: Map<string, string>;
  try {
    members = scanObject(dec.decode(raw), WANTED);
  } catch (e) {
    if (!(e instanceof JsonScanError)) throw e;
    const why = raw.length === 0 ? "the body is empty" : e.message;
    throw errors.badRequest("invalid_json", `request body is not valid JSON: ${why}`);
  }
  const json: BodyFields = {};
  for (const [k, v] of members) json[k as keyof BodyFields] = JSON.parse(v);
  const model = json.model;
  if (typeof model !== "string" || model.trim() === "") {
    throw errors.badRequest("missing_model", 'request body needs a "model" string');
  }
  return { json, model, stream: json.stream === true };
}

/** The request body as the pipeline carries it: the bytes and what routing read from them. */
export interface RequestBody extends InspectedBody {
  raw: Uint8Array<ArrayBuffer>;
}

/** Stage "read and inspect": the body read once within `maxBytes`, or the client's 400/413. */
export async function readRequestBody(
  req: Request,
  maxBytes: number,
): Promise<Result<RequestBody>> {
  try {
    const raw = await readBody(req, maxBytes);
    return ok({ raw, ...inspectBody(raw) });
  } catch (e) {
    if (e instanceof GatewayError) return refused(e);
    throw e;
  }
}
