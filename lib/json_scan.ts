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
