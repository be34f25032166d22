/**
 * Reading a client's request body once, within `MAX_BODY_BYTES`, and the few
 * facts routing needs from it (`model`, `stream`).
 */
import { errors } from "./errors.ts";
import { isObject } from "./metering.ts";

/** Reads the whole body; 413 when it exceeds `limit` bytes. */
export async function readBody(req: Request, limit: number): Promise<Uint8Array<ArrayBuffer>> {
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

/** A parsed request body with the fields routing needs. */
export interface InspectedBody {
  json: Record<string, unknown>;
  model: string;
  stream: boolean;
}

/** Parses the body as a JSON object with a string `model`; 400 otherwise. */
export function inspectBody(raw: Uint8Array): InspectedBody {
  let json: unknown;
  try {
    json = JSON.parse(dec.decode(raw));
  } catch (e) {
    const why = raw.length === 0 ? "the body is empty" : (e as Error).message;
    throw errors.badRequest("invalid_json", `request body is not valid JSON: ${why}`);
  }
  if (!isObject(json)) {
    throw errors.badRequest("invalid_json", "request body must be a JSON object");
  }
  const model = json.model;
  if (typeof model !== "string" || model.trim() === "") {
    throw errors.badRequest("missing_model", 'request body needs a "model" string');
  }
  return { json, model, stream: json.stream === true };
}
