/**
 * Mutations of a JSON request body, for property tests: the ways real
 * clients, buggy SDKs and hostile callers get bodies wrong. Each takes the
 * serialized body and returns other bytes; none promises the result is
 * valid or invalid JSON (the test judges the gateway by what it does).
 */
import type { Rand } from "./random.ts";

const enc = new TextEncoder();

/** A mutation's name (for failure reports) and its bytes. */
export interface Mutated {
  name: string;
  bytes: Uint8Array;
}

function splice(b: Uint8Array, at: number, remove: number, insert: Uint8Array): Uint8Array {
  // Positions found in decoded text may be past the end of bytes that were not UTF-8.
  at = Math.min(at, b.length);
  remove = Math.min(remove, b.length - at);
  const out = new Uint8Array(b.length - remove + insert.length);
  out.set(b.subarray(0, at), 0);
  out.set(insert, at);
  out.set(b.subarray(at + remove), at + insert.length);
  return out;
}

/** The index just after the first `{` (where a member can be inserted), or 0. */
function afterBrace(b: Uint8Array): number {
  const i = b.indexOf(0x7b);
  return i === -1 ? 0 : i + 1;
}

/** Inserts a top-level member (with a separating comma) right after the opening brace. */
function insertMember(b: Uint8Array, member: string): Uint8Array {
  return splice(b, afterBrace(b), 0, enc.encode(member + ","));
}

/** A position inside the first string value of a member called `name`, if any. */
function insideValueOf(text: string, name: string): number | undefined {
  const m = new RegExp(`"${name}"\\s*:\\s*"`).exec(text);
  return m ? enc.encode(text.slice(0, m.index + m[0].length)).length : undefined;
}

/** JSON values of every type but the one a field wants. */
const WRONG_VALUES = [
  "123",
  "-1",
  "0",
  "1e400",
  "1.5",
  "null",
  "true",
  "false",
  "[]",
  '["claude-test"]',
  "{}",
  '{"model":"claude-test"}',
  '"true"',
  '""',
  '"  "',
  '"\\u0000"',
  "[[[[[[]]]]]]",
];

/** Bytes that are not UTF-8: lone continuation, overlong, surrogate, out of range. */
const INVALID_UTF8 = [
  [0xff],
  [0xfe, 0xff],
  [0x80],
  [0xc0, 0x80],
  [0xc3, 0x28],
  [0xed, 0xa0, 0x80],
  [0xf4, 0x90, 0x80, 0x80],
  [0xf8, 0x88, 0x80, 0x80, 0x80],
  [0xe2, 0x82],
];

const FIELDS = ["model", "stream", "stream_options", "max_tokens", "max_completion_tokens"];

/** Replaces the value of top-level member `name` (found by a simple match) with `value`. */
function replaceValue(text: string, name: string, value: string): string | undefined {
  const m = new RegExp(`"${name}"\\s*:\\s*("(?:[^"\\\\]|\\\\.)*"|[^,}\\]]*)`).exec(text);
  if (!m) return undefined;
  const start = m.index + m[0].length - m[1].length;
  return text.slice(0, start) + value + text.slice(start + m[1].length);
}

/** One random mutation of `body` (bodies near `maxBytes` stay within reach of it). */
export function mutate(body: Uint8Array, rand: Rand, maxBytes: number): Mutated {
  const text = new TextDecoder().decode(body);
  const kind = rand.weighted(
    [
      [3, "flip"],
      [3, "truncate"],
      [3, "duplicate"],
      [3, "case"],
      [2, "huge-string"],
      [2, "deep"],
      [3, "invalid-utf8"],
      [3, "control"],
      [5, "wrong-type"],
      [3, "whole"],
      [1, "bom"],
      [2, "trailing"],
      [2, "escapes"],
      [1, "proto"],
    ] as const,
  );
  switch (kind) {
    case "flip": {
      const out = body.slice();
      const n = rand.int(1, 4);
      for (let i = 0; i < n && out.length; i++) out[rand.int(0, out.length - 1)] = rand.int(0, 255);
      return { name: "flip", bytes: out };
    }
    case "truncate":
      return { name: "truncate", bytes: body.slice(0, rand.int(0, Math.max(0, body.length - 1))) };
    case "duplicate": {
      const f = rand.pick(FIELDS.slice(0, 3));
      const v = f === "model"
        ? '"claude-test"'
        : f === "stream"
        ? rand.pick(["true", "false"])
        : "{}";
      const out = insertMember(body, `"${f}":${v}`);
      // Sometimes at the end instead, so the duplicate comes last.
      return { name: `duplicate ${f}`, bytes: rand.chance(0.5) ? out : appendMember(body, f, v) };
    }
    case "case": {
      const f = rand.pick(FIELDS);
      const variant = rand.pick([
        f.toUpperCase(),
        f[0].toUpperCase() + f.slice(1),
        f.replace("s", "\u017f"), // Go's encoding/json folds the long s to s
        f.replace("k", "\u212a"), // the Kelvin sign lower-cases to k
        f + " ",
        "\\u00" + f.charCodeAt(0).toString(16) + f.slice(1), // an escaped first letter
      ]);
      const replaced = text.replace(`"${f}"`, `"${variant}"`);
      const out = replaced !== text ? replaced : `{"${variant}":true,` + text.slice(1);
      return { name: `case ${JSON.stringify(variant)}`, bytes: enc.encode(out) };
    }
    case "huge-string": {
      const room = Math.max(16, maxBytes - body.length - 16);
      const n = rand.chance(0.5) ? rand.int(room - 64, room + 64) : rand.int(1000, room);
      const where = rand.pick(["pad", "model", "system"]);
      const filler = rand.pick(["x", "é", "\\n", "\\u00e9", "🙂"]);
      const s = filler.repeat(Math.max(1, Math.floor(n / enc.encode(filler).length)));
      const out = where === "model"
        ? replaceValue(text, "model", `"claude-${s}"`) ?? text
        : new TextDecoder().decode(insertMember(body, `"${where}":"${s}"`));
      return { name: `huge ${where}`, bytes: enc.encode(out) };
    }
    case "deep": {
      const depth = rand.pick([64, 1000, 10_000, 100_000]);
      const open = rand.chance(0.5) ? "[" : '{"a":';
      const close = open === "[" ? "]" : "}";
      let member = `"deep":${open.repeat(depth)}1${close.repeat(depth)}`;
      if (rand.chance(0.2)) member = `"deep":${open.repeat(depth)}1`; // never closed
      return { name: `deep ${depth}`, bytes: insertMember(body, member) };
    }
    case "invalid-utf8": {
      const bad = new Uint8Array(rand.pick(INVALID_UTF8));
      const inModel = rand.chance(0.3) ? insideValueOf(text, "model") : undefined;
      const at = inModel ?? insideValueOf(text, "content") ?? rand.int(0, body.length);
      return {
        name: `invalid utf-8${inModel ? " in model" : ""}`,
        bytes: splice(body, at, 0, bad),
      };
    }
    case "control": {
      const c = new Uint8Array([rand.int(0, 0x1f)]);
      const at = rand.chance(0.5)
        ? insideValueOf(text, rand.pick(["model", "content"])) ?? 1
        : rand.int(0, body.length);
      return { name: `control 0x${c[0].toString(16)}`, bytes: splice(body, at, 0, c) };
    }
    case "wrong-type": {
      const f = rand.pick(FIELDS);
      const v = rand.pick(WRONG_VALUES);
      const out = replaceValue(text, f, v) ?? `{"${f}":${v},` + text.slice(1);
      return { name: `${f}: ${v}`, bytes: enc.encode(out) };
    }
    case "whole": {
      const v = rand.pick([
        "",
        " ",
        "\n\n",
        "null",
        "[]",
        "42",
        '"text"',
        "true",
        "{}",
        '{"model":}',
        '{"model":"claude-test"',
        `[${text}]`,
        `${text}${text}`,
        '{"model":"claude-test","model":"gpt-test"}',
        "\u0000",
      ]);
      return { name: `whole ${JSON.stringify(v.slice(0, 20))}`, bytes: enc.encode(v) };
    }
    case "bom":
      return {
        name: "byte order mark",
        bytes: splice(body, 0, 0, new Uint8Array([0xef, 0xbb, 0xbf])),
      };
    case "trailing":
      return {
        name: "trailing",
        bytes: enc.encode(text + rand.pick([" x", "}", ",", "\u0000", "\n", " {}", "]"])),
      };
    case "escapes": {
      // The model written with escapes: the same string to JSON.parse.
      const m = /"model"\s*:\s*"([^"\\]*)"/.exec(text);
      if (!m) return { name: "escapes (no model)", bytes: body };
      const escaped = [...m[1]].map((ch) =>
        rand.chance(0.5) ? "\\u" + ch.charCodeAt(0).toString(16).padStart(4, "0") : ch
      ).join("");
      return {
        name: "escaped model",
        bytes: enc.encode(text.replace(m[0], `"model":"${escaped}"`)),
      };
    }
    case "proto":
      return {
        name: "__proto__",
        bytes: insertMember(body, `"__proto__":{"model":"gpt-test","stream":true}`),
      };
  }
}

function appendMember(body: Uint8Array, f: string, v: string): Uint8Array {
  const i = body.lastIndexOf(0x7d);
  if (i === -1) return body;
  return splice(body, i, 0, enc.encode(`,"${f}":${v}`));
}
