/**
 * Byte-level JSON scanning, used to edit one member of a request body without
 * re-serializing it (so every other byte goes upstream unchanged). Works on
 * UTF-8 bytes: JSON's structural characters are ASCII and never occur inside
 * a multi-byte sequence. Input must already be known to parse as JSON.
 */

const QUOTE = 0x22,
  BACKSLASH = 0x5c,
  OPEN_OBJ = 0x7b,
  CLOSE_OBJ = 0x7d,
  OPEN_ARR = 0x5b,
  CLOSE_ARR = 0x5d,
  COMMA = 0x2c,
  COLON = 0x3a;

function skipWs(b: Uint8Array, i: number): number {
  while (i < b.length && (b[i] === 0x20 || b[i] === 0x0a || b[i] === 0x0d || b[i] === 0x09)) i++;
  return i;
}

function skipString(b: Uint8Array, i: number): number {
  for (i++; i < b.length; i++) {
    if (b[i] === BACKSLASH) i++;
    else if (b[i] === QUOTE) return i + 1;
  }
  return b.length;
}

function skipValue(b: Uint8Array, i: number): number {
  const c = b[i];
  if (c === QUOTE) return skipString(b, i);
  if (c === OPEN_OBJ || c === OPEN_ARR) {
    let depth = 0;
    for (; i < b.length; i++) {
      const x = b[i];
      if (x === QUOTE) i = skipString(b, i) - 1;
      else if (x === OPEN_OBJ || x === OPEN_ARR) depth++;
      else if (x === CLOSE_OBJ || x === CLOSE_ARR) {
        if (--depth === 0) return i + 1;
      }
    }
    return b.length;
  }
  while (
    i < b.length && b[i] !== COMMA && b[i] !== CLOSE_OBJ && b[i] !== CLOSE_ARR &&
    b[i] !== 0x20 && b[i] !== 0x0a && b[i] !== 0x0d && b[i] !== 0x09
  ) i++;
  return i;
}

const dec = new TextDecoder();

/**
 * The byte span of the value of member `key` in the object whose `{` is at
 * `objStart`; the last one wins when a key repeats, as with `JSON.parse`.
 */
export function findMember(
  b: Uint8Array,
  objStart: number,
  key: string,
): { start: number; end: number } | undefined {
  let found: { start: number; end: number } | undefined;
  let i = skipWs(b, objStart + 1);
  while (i < b.length && b[i] === QUOTE) {
    const keyEnd = skipString(b, i);
    const name = JSON.parse(dec.decode(b.subarray(i, keyEnd)));
    i = skipWs(b, keyEnd);
    if (b[i] !== COLON) return found;
    const start = skipWs(b, i + 1);
    const end = skipValue(b, start);
    if (name === key) found = { start, end };
    i = skipWs(b, end);
    if (b[i] !== COMMA) break;
    i = skipWs(b, i + 1);
  }
  return found;
}

/** True when the object whose `{` is at `objStart` has no members. */
export function isEmptyObject(b: Uint8Array, objStart: number): boolean {
  return b[skipWs(b, objStart + 1)] === CLOSE_OBJ;
}

/** A copy of `b` with bytes `[start, end)` replaced by `insert`. */
export function spliceBytes(
  b: Uint8Array,
  start: number,
  end: number,
  insert: Uint8Array,
): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(b.length - (end - start) + insert.length);
  out.set(b.subarray(0, start), 0);
  out.set(insert, start);
  out.set(b.subarray(end), start + insert.length);
  return out;
}

/** Thrown by {@link scanObject} for text that is not a JSON object. */
export class JsonScanError extends Error {}

const WS = new Set([0x20, 0x0a, 0x0d, 0x09]);
const NUMBER_RE = /-?(?:0|[1-9]\d*)(?:\.\d+)?(?:[eE][+-]?\d+)?/y;

function textWs(s: string, i: number): number {
  while (i < s.length && WS.has(s.charCodeAt(i))) i++;
  return i;
}

function fail(s: string, i: number, what: string): never {
  throw new JsonScanError(
    i >= s.length
      ? `unexpected end of input (expected ${what})`
      : `expected ${what} at position ${i}`,
  );
}

/** Index just past the string starting at `i` (a `"`). */
function skipText(s: string, i: number): number {
  let j = i + 1;
  for (;;) {
    const q = s.indexOf('"', j);
    if (q === -1) fail(s, s.length, "the end of a string");
    let k = q - 1;
    while (s.charCodeAt(k) === 0x5c) k--;
    if ((q - 1 - k) % 2 === 0) return q + 1;
    j = q + 1;
  }
}

function skipScalar(s: string, i: number): number {
  const c = s.charCodeAt(i);
  if (c === 0x22) return skipText(s, i);
  for (const lit of ["true", "false", "null"]) if (s.startsWith(lit, i)) return i + lit.length;
  NUMBER_RE.lastIndex = i;
  if (NUMBER_RE.test(s)) return NUMBER_RE.lastIndex;
  return fail(s, i, "a value");
}

/**
 * Index just past the JSON value at `i`, checking its structure without
 * building it (string contents are skipped, not decoded).
 */
function skipJson(s: string, i: number): number {
  const stack: number[] = []; // 0x7d: in an object, 0x5d: in an array
  let wantKey = false;
  for (;;) {
    i = textWs(s, i);
    if (wantKey) {
      if (s.charCodeAt(i) !== 0x22) fail(s, i, "a property name");
      i = textWs(s, skipText(s, i));
      if (s.charCodeAt(i) !== 0x3a) fail(s, i, "':'");
      i = textWs(s, i + 1);
      wantKey = false;
    }
    const c = s.charCodeAt(i);
    if (c === 0x7b || c === 0x5b) {
      const close = c === 0x7b ? 0x7d : 0x5d;
      i = textWs(s, i + 1);
      if (s.charCodeAt(i) !== close) {
        stack.push(close);
        wantKey = c === 0x7b;
        continue;
      }
      i++;
    } else i = skipScalar(s, i);
    // After a value: a separator, or the end of one or more containers.
    for (;;) {
      if (stack.length === 0) return i;
      i = textWs(s, i);
      const top = stack[stack.length - 1];
      const d = s.charCodeAt(i);
      if (d === 0x2c) {
        i++;
        wantKey = top === 0x7d;
        break;
      }
      if (d !== top) fail(s, i, top === 0x7d ? "',' or '}'" : "',' or ']'");
      stack.pop();
      i++;
    }
  }
}

/**
 * Checks that `s` is a JSON object and returns the raw text of the wanted
 * top-level members (the last one wins when a key repeats, as with
 * `JSON.parse`), without parsing the rest: a 500 KB request is read for its
 * `model` without building its messages.
 */
export function scanObject(s: string, want: readonly string[]): Map<string, string> {
  const out = new Map<string, string>();
  let i = textWs(s, 0);
  if (s.charCodeAt(i) !== 0x7b) fail(s, i, "a JSON object");
  i = textWs(s, i + 1);
  if (s.charCodeAt(i) === 0x7d) i++;
  else {
    for (;;) {
      if (s.charCodeAt(i) !== 0x22) fail(s, i, "a property name");
      const keyEnd = skipText(s, i);
      let key = s.slice(i + 1, keyEnd - 1);
      if (key.includes("\\")) key = JSON.parse(s.slice(i, keyEnd));
      i = textWs(s, keyEnd);
      if (s.charCodeAt(i) !== 0x3a) fail(s, i, "':'");
      const start = textWs(s, i + 1);
      i = skipJson(s, start);
      if (want.includes(key)) out.set(key, s.slice(start, i));
      i = textWs(s, i);
      if (s.charCodeAt(i) === 0x2c) {
        i = textWs(s, i + 1);
        continue;
      }
      if (s.charCodeAt(i) !== 0x7d) fail(s, i, "',' or '}'");
      i++;
      break;
    }
  }
  if (textWs(s, i) !== s.length) fail(s, textWs(s, i), "the end of the input");
  return out;
}
