/**
 * Reading a client's request body once, within `MAX_BODY_BYTES` and
 * `BODY_TIMEOUT_MS`, and the few facts routing needs from it (`model`,
 * `stream`), checked strictly enough that no provider can read them
 * differently from the gateway.
 */
import { errors, GatewayError } from "../http/errors.ts";
import { clip } from "../http/client_text.ts";
import { ok, refused, type Result } from "./result.ts";
import type { Deadlines } from "../upstream/deadlines.ts";
import { hasControlByte, JsonScanError, scanObject } from "./json_scan.ts";

/** How much of a body the gateway reads, and for how long. */
export interface BodyLimits {
  /** Largest body accepted (413 above it). */
  maxBytes: number;
  /** Time allowed to receive the whole body once the gateway starts reading it (408 after). */
  timeoutMs: number;
  /** The shared ticker that runs the timeout. */
  deadlines: Deadlines;
}

/**
 * Reads the whole body; 413 when it exceeds `maxBytes`, 408 when the client
 * has not sent all of it within `timeoutMs` (a client that declares 1000
 * bytes and sends 10 would otherwise hold its request open for ever), 499
 * when the client hung up before sending all of it.
 */
async function readBody(req: Request, limits: BodyLimits): Promise<Uint8Array<ArrayBuffer>> {
  const declared = req.headers.get("content-length");
  if (declared !== null && Number(declared) > limits.maxBytes) {
    throw errors.tooLarge(limits.maxBytes);
  }
  // With a declared length, `bytes()` reads in one native call; otherwise count as chunks come.
  // (Only the second touches `req.body`: once that stream exists, `bytes()` reads through it in
  // JavaScript, ~130 µs more per 500 KB body.)
  let reading: Promise<Uint8Array<ArrayBuffer>>;
  if (declared !== null) reading = req.bytes();
  else if (req.body) reading = readChunked(req.body, limits.maxBytes);
  else return new Uint8Array(0);
  let expire = () => {};
  const expired = new Promise<never>((_, reject) => {
    expire = () => reject(errors.requestTimeout(limits.timeoutMs));
  });
  const deadline = limits.deadlines.add(performance.now() + limits.timeoutMs, expire);
  try {
    return await Promise.race([reading, expired]);
  } catch (e) {
    if (e instanceof GatewayError) throw e;
    // Reading a request body fails only when the client's connection does: it hung up mid-body.
    throw errors.clientClosed();
  } finally {
    limits.deadlines.cancel(deadline);
    // After a timeout the read fails once the 408 is sent (Deno then closes the body).
    reading.catch(() => {});
  }
}

async function readChunked(body: ReadableStream<Uint8Array>, limit: number) {
  const parts: Uint8Array[] = [];
  let size = 0;
  for await (const part of body) {
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

/** Longest `model` accepted, in UTF-8 bytes: real ids are under 100, and it is a cache and usage key. */
const MAX_MODEL_BYTES = 256;

/** UTF-8 length of a string (lone surrogates count as the 3 bytes of U+FFFD). */
function utf8Length(s: string): number {
  let n = 0;
  for (let i = 0; i < s.length; i++) {
    const c = s.charCodeAt(i);
    if (c < 0x80) n += 1;
    else if (c < 0x800) n += 2;
    else if (c >= 0xd800 && c < 0xdc00 && (s.charCodeAt(i + 1) & 0xfc00) === 0xdc00) {
      n += 4;
      i++;
    } else n += 3;
  }
  return n;
}

/**
 * Checks that the body is a JSON object with a usable `model`, and that
 * `stream` and `stream_options` have types every provider reads the same
 * way; 400 otherwise. Only those fields are parsed: the rest is checked
 * as JSON without being built (a 500 KB conversation costs no garbage).
 *
 * Each of those fields must appear once, in lower case: providers' JSON
 * parsers disagree on which of two `"stream"` keys wins, and some match
 * names without regard to case, so a body the gateway reads as not
 * streaming could stream unmetered.
 */
function inspectBody(raw: Uint8Array): InspectedBody {
  let members;
  try {
    members = scanObject(dec.decode(raw), WANTED, hasControlByte(raw));
  } catch (e) {
    if (!(e instanceof JsonScanError)) throw e;
    const why = raw.length === 0 ? "the body is empty" : e.message;
    throw errors.badRequest("invalid_json", `request body is not valid JSON: ${why}`);
  }
  const json: BodyFields = {};
  for (const m of members) {
    if (m.key !== m.name) {
      throw errors.badRequest(
        "invalid_field",
        `"${clip(m.key)}" is not a field name; write "${m.name}" in lower case`,
      );
    }
    if (m.name in json) {
      throw errors.badRequest(
        "duplicate_field",
        `"${m.name}" appears more than once in the request body; send it once`,
      );
    }
    // A model id longer than the limit is refused without decoding it (6 is the longest escape).
    if (m.name === "model" && m.text.length > 2 + 6 * MAX_MODEL_BYTES) throw modelTooLong();
    json[m.name as keyof BodyFields] = JSON.parse(m.text);
  }
  const model = json.model;
  if (typeof model !== "string" || model.trim() === "") {
    throw errors.badRequest("missing_model", 'request body needs a "model" string');
  }
  if (utf8Length(model) > MAX_MODEL_BYTES) throw modelTooLong();
  // An escaped half of a surrogate pair: usage keys are stored as UTF-8 (where it becomes U+FFFD,
  // merging different ids), and providers' parsers keep, replace or refuse it.
  if (!model.isWellFormed()) {
    throw errors.badRequest(
      "invalid_model",
      '"model" holds an unpaired surrogate escape (\\uD800-\\uDFFF); no model id does',
    );
  }
  if (json.stream !== undefined && json.stream !== null && typeof json.stream !== "boolean") {
    throw errors.badRequest("invalid_stream", '"stream" must be true, false or null');
  }
  const so = json.stream_options;
  if (so !== undefined && so !== null && (typeof so !== "object" || Array.isArray(so))) {
    throw errors.badRequest("invalid_stream_options", '"stream_options" must be an object or null');
  }
  return { json, model, stream: json.stream === true };
}

function modelTooLong() {
  return errors.badRequest(
    "invalid_model",
    `"model" is longer than ${MAX_MODEL_BYTES} bytes; no model id is that long`,
  );
}

/** The request body as the pipeline carries it: the bytes and what routing read from them. */
export interface RequestBody extends InspectedBody {
  raw: Uint8Array<ArrayBuffer>;
}

/** Stage "read and inspect": the body read once within its limits, or the client's 400/408/413. */
export async function readRequestBody(
  req: Request,
  limits: BodyLimits,
): Promise<Result<RequestBody>> {
  try {
    const raw = await readBody(req, limits);
    return ok({ raw, ...inspectBody(raw) });
  } catch (e) {
    if (e instanceof GatewayError) return refused(e);
    throw e;
  }
}
