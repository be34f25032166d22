/**
 * JSON on the gateway's own endpoints: responses, and admin request bodies
 * read within a limit and validated with zod.
 */
import { errors } from "./errors.ts";

/** A JSON response with the given status. Nothing the gateway answers itself is cacheable. */
export function jsonResponse(status: number, body: unknown, headers?: HeadersInit): Response {
  const h = new Headers(headers);
  h.set("content-type", "application/json");
  return new Response(JSON.stringify(body), { status, headers: h });
}

/** Reads a JSON request body of at most `max` bytes; an empty body reads as `{}`. */
export async function readJsonBody(req: Request, max: number): Promise<unknown> {
  const declared = Number(req.headers.get("content-length") ?? 0);
  if (declared > max) throw errors.tooLarge(max);
  let bytes: Uint8Array;
  try {
    bytes = await req.bytes();
  } catch {
    throw errors.clientClosed(); // the client hung up mid-body
  }
  if (bytes.length > max) throw errors.tooLarge(max);
  const text = new TextDecoder().decode(bytes);
  if (text.trim() === "") return {};
  try {
    return JSON.parse(text);
  } catch (e) {
    throw errors.badRequest(
      "invalid_json",
      `request body is not valid JSON: ${(e as Error).message}`,
    );
  }
}
