/**
 * Client-chosen text quoted back in error messages and log lines, cut to a
 * bounded length: a 30 MiB model name must not become a 30 MiB error body
 * or log line.
 */

/** Characters of client text a message quotes at most. */
const CLIP_CHARS = 200;

/**
 * `text` when it is at most `max` characters; else its first `max`
 * characters (never half a surrogate pair) and how long it was.
 */
export function clip(text: string, max = CLIP_CHARS): string {
  if (text.length <= max) return text;
  let end = max;
  const last = text.charCodeAt(end - 1);
  if (last >= 0xd800 && last < 0xdc00) end--;
  return `${text.slice(0, end)}… (${text.length} characters)`;
}

/** `text` clipped (see {@link clip}) and JSON-quoted, for a message naming client input. */
export function quote(text: string): string {
  return JSON.stringify(clip(text));
}
