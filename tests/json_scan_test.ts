/**
 * Byte-level JSON editing of request bodies: the OpenAI format's
 * `prepareBody` asks for `stream_options.include_usage` on streams and must
 * leave every other byte alone; plus the `json_scan` helpers it is built on.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { openai } from "../lib/formats/openai.ts";
import { anthropic } from "../lib/formats/anthropic.ts";
import {
  findMember,
  hasControlByte,
  isEmptyObject,
  JsonScanError,
  scanObject,
  spliceBytes,
} from "../lib/pipeline/json_scan.ts";
import { parseRegistry, type Provider } from "../lib/config/registry.ts";

const enc = new TextEncoder();
const dec = new TextDecoder();

const registry = parseRegistry({
  providers: {
    openai: { format: "openai", base_url: "https://api.openai.example/v1" },
    bytez: { format: "openai", base_url: "https://bytez.example/v1", stream_usage: false },
    anthropic: { format: "anthropic", base_url: "https://api.anthropic.example/v1" },
  },
});
const provider = (id: string): Provider => {
  const p = registry.providers.get(id);
  assert(p, id);
  return p;
};
const OPENAI = provider("openai");

/** Runs `prepareBody` on `text`; returns the edited text and the strip flag. */
function prepare(text: string, p: Provider = OPENAI) {
  const raw = enc.encode(text);
  const out = openai.streamUsage!.prepare(raw, JSON.parse(text), p);
  return { text: dec.decode(out.bytes), strip: out.stripUsageEvent, same: out.bytes === raw };
}

/**
 * Asserts the edit gives exactly `expected`, that it parses with
 * `include_usage: true`, and that nothing else in the parsed body changed.
 */
function assertInjected(text: string, expected: string): void {
  const r = prepare(text);
  assertEquals(r.text, expected);
  assertEquals(r.strip, true, "the client did not ask for usage: strip the injected event");
  const before = JSON.parse(text);
  const after = JSON.parse(r.text);
  assertEquals(after.stream_options.include_usage, true);
  const { stream_options: so1, ...rest1 } = before;
  const { stream_options: so2, ...rest2 } = after;
  assertEquals(rest2, rest1, "members other than stream_options are unchanged");
  if (so1 !== null && typeof so1 === "object") {
    const { include_usage: _a, ...o1 } = so1;
    const { include_usage: _b, ...o2 } = so2;
    assertEquals(o2, o1, "other stream_options members are kept");
  }
}

function assertUnchanged(text: string, p: Provider = OPENAI): void {
  const r = prepare(text, p);
  assertEquals(r.text, text);
  assert(r.same, "an unchanged body is forwarded as the very same bytes");
  assertEquals(r.strip, false);
}

const INJECT = '"stream_options":{"include_usage":true}';

Deno.test("prepareBody: no stream_options: member inserted right after the opening brace", () => {
  assertInjected(
    '{"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}',
    `{${INJECT},"model":"gpt-4o","stream":true,"messages":[{"role":"user","content":"hi"}]}`,
  );
});

Deno.test("prepareBody: whitespace before the first key and around the body is kept", () => {
  const body = '{\n  "model": "gpt-4o",\n  "stream": true,\n  "messages": []\n}\n';
  assertInjected(
    body,
    `{${INJECT},\n  "model": "gpt-4o",\n  "stream": true,\n  "messages": []\n}\n`,
  );
  assertInjected(`  \r\n\t${body}`, `  \r\n\t{${INJECT},${body.slice(1)}`);
});

Deno.test("prepareBody: every other byte is identical, unicode and escapes included", () => {
  const content = 'é 👋 你好 \\u00e9 \\" \\\\ {not: \\"json\\"} } { \\"stream_options\\": null \\n';
  const text = `{ "messages": [{"role": "user", "content": "${content}"}],` +
    ` "model": "gpt-4o", "stream": true, "tools": [{"type": "function"}] }`;
  const raw = enc.encode(text);
  const out = openai.streamUsage!.prepare(raw, JSON.parse(text), OPENAI);
  const member = enc.encode(`${INJECT},`);
  assertEquals(out.bytes.length, raw.length + member.length);
  assertEquals([...out.bytes.subarray(0, 1)], [...raw.subarray(0, 1)]);
  assertEquals([...out.bytes.subarray(1, 1 + member.length)], [...member]);
  assertEquals([...out.bytes.subarray(1 + member.length)], [...raw.subarray(1)]);
  assertEquals(
    JSON.parse(dec.decode(out.bytes)).messages[0].content,
    JSON.parse(text).messages[0].content,
  );
  assertInjected(text, `{${INJECT},${text.slice(1)}`);
});

Deno.test("prepareBody: an existing stream_options object gains include_usage", () => {
  assertInjected(
    '{"model":"m","stream":true,"stream_options":{"include_obfuscation":false}}',
    '{"model":"m","stream":true,"stream_options":{"include_usage":true,"include_obfuscation":false}}',
  );
  assertInjected(
    '{"model":"m","stream":true,"stream_options" : {\n  "include_obfuscation" : false\n}}',
    '{"model":"m","stream":true,"stream_options" : {"include_usage":true,\n  "include_obfuscation" : false\n}}',
  );
});

Deno.test("prepareBody: empty stream_options object", () => {
  assertInjected(
    '{"model":"m","stream":true,"stream_options":{}}',
    '{"model":"m","stream":true,"stream_options":{"include_usage":true}}',
  );
  assertInjected(
    '{"model":"m","stream":true,"stream_options":{ \n }}',
    '{"model":"m","stream":true,"stream_options":{"include_usage":true \n }}',
  );
});

Deno.test("prepareBody: include_usage false or null becomes true (and the event is stripped)", () => {
  assertInjected(
    '{"stream":true,"stream_options":{"include_usage":false,"include_obfuscation":true},"model":"m"}',
    '{"stream":true,"stream_options":{"include_usage":true,"include_obfuscation":true},"model":"m"}',
  );
  assertInjected(
    '{"stream":true,"stream_options":{ "include_usage" : null },"model":"m"}',
    '{"stream":true,"stream_options":{ "include_usage" : true },"model":"m"}',
  );
});

Deno.test("prepareBody: stream_options null is replaced by an object", () => {
  assertInjected(
    '{"model":"m","stream":true,"stream_options":null,"n":2}',
    '{"model":"m","stream":true,"stream_options":{"include_usage":true},"n":2}',
  );
  assertInjected(
    '{"model":"m","stream":true,"stream_options": null}',
    '{"model":"m","stream":true,"stream_options": {"include_usage":true}}',
  );
});

Deno.test("prepareBody: client already asked for usage: unchanged, nothing stripped", () => {
  assertUnchanged('{"model":"m","stream":true,"stream_options":{"include_usage":true}}');
  assertUnchanged(
    '{"model":"m","stream":true,"stream_options":{"include_obfuscation":false,"include_usage":true}}',
  );
});

Deno.test("prepareBody: requests that are not streams are unchanged", () => {
  assertUnchanged('{"model":"m","messages":[]}');
  assertUnchanged('{"model":"m","stream":false,"messages":[]}');
  assertUnchanged('{"model":"m","stream":"true","messages":[]}');
  assertUnchanged('{"model":"m","stream":false,"stream_options":{"include_usage":false}}');
});

Deno.test("prepareBody: a provider with stream_usage false is left alone", () => {
  const bytez = provider("bytez");
  assertEquals(bytez.streamUsage, false);
  assertUnchanged('{"model":"m","stream":true}', bytez);
  assertUnchanged('{"model":"m","stream":true,"stream_options":{"include_usage":false}}', bytez);
});

Deno.test("prepareBody: the Anthropic format never edits a body (it declares no usage request)", () => {
  assertEquals(anthropic.streamUsage, undefined);
});

Deno.test("prepareBody: duplicate keys: the last one wins, as with JSON.parse", () => {
  // The last stream_options says false: edit that one, not the first.
  assertInjected(
    '{"stream":true,"stream_options":{"include_usage":true},"model":"m","stream_options":{"include_usage":false}}',
    '{"stream":true,"stream_options":{"include_usage":true},"model":"m","stream_options":{"include_usage":true}}',
  );
  // The last one says true: the client asked, nothing to do.
  assertUnchanged(
    '{"stream":true,"stream_options":{"include_usage":false},"stream_options":{"include_usage":true}}',
  );
  // Duplicate include_usage inside one object.
  assertInjected(
    '{"stream":true,"stream_options":{"include_usage":true,"include_usage":false}}',
    '{"stream":true,"stream_options":{"include_usage":true,"include_usage":true}}',
  );
  // The last stream_options is null.
  assertInjected(
    '{"stream":true,"stream_options":{"include_usage":true},"stream_options":null}',
    '{"stream":true,"stream_options":{"include_usage":true},"stream_options":{"include_usage":true}}',
  );
  // stream given twice, the last is true.
  assertInjected(
    '{"stream":false,"model":"m","stream":true}',
    `{${INJECT},"stream":false,"model":"m","stream":true}`,
  );
  assertUnchanged('{"stream":true,"model":"m","stream":false}');
});

Deno.test("prepareBody: braces, quotes and `stream_options` inside strings or nested objects", () => {
  const prefix =
    '{"messages":[{"role":"user","content":"set \\"stream_options\\": {\\"include_usage\\": ' +
    'false} and }}{{ \\\\\\""}],"metadata":{"stream_options":{"include_usage":false}},' +
    '"tools":[{"function":{"parameters":{"stream_options":{"type":"object"}}}}],' +
    '"model":"m","stream":true,"stream_options":{"include_obfuscation":true}}';
  assertInjected(
    prefix,
    prefix.replace(
      '"stream_options":{"include_obfuscation":true}}',
      '"stream_options":{"include_usage":true,"include_obfuscation":true}}',
    ),
  );
  // Only nested or quoted occurrences, no top-level member: insert a new one.
  const nested =
    '{"metadata":{"stream_options":null},"note":"\\"stream_options\\":{}","stream":true}';
  assertInjected(nested, `{${INJECT},${nested.slice(1)}`);
});

Deno.test("prepareBody: an escaped key spelling is the same member", () => {
  assertInjected(
    '{"stream":true,"stream\\u005foptions":{"include_usage":false}}',
    '{"stream":true,"stream\\u005foptions":{"include_usage":true}}',
  );
  assertInjected(
    '{"stream":true,"stream_options":{"include\\u005Fusage":false}}',
    '{"stream":true,"stream_options":{"include\\u005Fusage":true}}',
  );
});

Deno.test("prepareBody: a stream_options of the wrong type is left for the upstream to reject", () => {
  assertUnchanged('{"model":"m","stream":true,"stream_options":[]}');
  assertUnchanged('{"model":"m","stream":true,"stream_options":"include_usage"}');
  assertUnchanged('{"model":"m","stream":true,"stream_options":1}');
});

Deno.test("findMember: value spans of every JSON type, last duplicate wins", () => {
  const text = '{ "a" : 1.5e3 , "b":"x\\"}" ,"c":[1,{"d":[]}],"e":{"f":"}"},"g":true,"h":null,' +
    '"i":-0,"a":"last"}';
  const b = enc.encode(text);
  const span = (k: string) => {
    const m = findMember(b, 0, k);
    return m && text.slice(m.start, m.end);
  };
  assertEquals(span("a"), '"last"');
  assertEquals(span("b"), '"x\\"}"');
  assertEquals(span("c"), '[1,{"d":[]}]');
  assertEquals(span("e"), '{"f":"}"}');
  assertEquals(span("g"), "true");
  assertEquals(span("h"), "null");
  assertEquals(span("i"), "-0");
  assertEquals(span("d"), undefined, "only the object's own members");
  assertEquals(span("f"), undefined);
  const e = findMember(b, 0, "e");
  assert(e);
  const f = findMember(b, e.start, "f");
  assert(f);
  assertEquals(text.slice(f.start, f.end), '"}"');
  // UTF-8 before the member: offsets are byte offsets.
  const u = enc.encode('{"t":"é👋你","k":7}');
  const k = findMember(u, 0, "k");
  assert(k);
  assertEquals(dec.decode(u.subarray(k.start, k.end)), "7");
});

Deno.test("isEmptyObject and spliceBytes", () => {
  assert(isEmptyObject(enc.encode("{}"), 0));
  assert(isEmptyObject(enc.encode("{ \r\n\t}"), 0));
  assert(!isEmptyObject(enc.encode('{"a":1}'), 0));
  assert(isEmptyObject(enc.encode('[{"x":{ }}]'), 6));
  const b = enc.encode("abcdef");
  assertEquals(dec.decode(spliceBytes(b, 2, 4, enc.encode("XYZ"))), "abXYZef");
  assertEquals(dec.decode(spliceBytes(b, 0, 0, enc.encode(">"))), ">abcdef");
  assertEquals(dec.decode(spliceBytes(b, 6, 6, enc.encode("<"))), "abcdef<");
  assertEquals(dec.decode(spliceBytes(b, 1, 5, new Uint8Array())), "af");
  assertEquals(dec.decode(b), "abcdef", "the input is not modified");
});

Deno.test("scanObject: reads top-level members only, every repeat and letter case, without parsing the rest", () => {
  const text =
    ' { "messages": [{"model": "nested", "content": "say \\"model\\": x ]}{"}], "model": "first",\n "stream": true, "Model" : "last" } ';
  const m = scanObject(text, ["model", "stream", "stream_options"]);
  assertEquals(m, [
    { key: "model", name: "model", text: '"first"' },
    { key: "stream", name: "stream", text: "true" },
    { key: "Model", name: "model", text: '"last"' },
  ]);
  assertEquals(
    scanObject('{"mod\\u0065l": "escaped key", "\u017ftream": 1}', ["model", "stream"]),
    [
      { key: "model", name: "model", text: '"escaped key"' },
      { key: "\u017ftream", name: "stream", text: "1" },
    ],
    "escapes decoded; Go's encoding/json folds the long s to s",
  );
  assertEquals(scanObject("{}", ["model"]), []);
});

Deno.test("scanObject: rejects what is not one JSON object, naming the position", () => {
  for (
    const bad of [
      "",
      "[1]",
      "{not json",
      '{"a":1,}',
      '{"a":[1,2}',
      '{"a":tru}',
      '{"a":"unterminated',
      '{"a":1} trailing',
      '{"n":01}',
      '{"a" 1}',
      '{"a":{"b":1]}',
    ]
  ) {
    let error: unknown;
    try {
      scanObject(bad, ["a"]);
    } catch (e) {
      error = e;
    }
    assert(error instanceof JsonScanError, `accepted ${JSON.stringify(bad)}`);
  }
  for (const good of ['{"a":[]}', '{"a":{"b":[{},[],"x\\\\"]},"c":-1.5e-3,"d":null,"e":false}']) {
    scanObject(good, ["a"]);
    JSON.parse(good);
  }
});

Deno.test("scanObject accepts exactly what JSON.parse accepts as an object (strings, escapes, control characters)", () => {
  const accepts = (text: string) => {
    // Searching the text for control characters, and being told from the bytes, agree.
    const verdicts = [undefined, hasControlByte(enc.encode(text))].map((controls) => {
      try {
        scanObject(text, ["model"], controls);
        return true;
      } catch (e) {
        assert(e instanceof JsonScanError, `not a JsonScanError: ${e}`);
        return false;
      }
    });
    assertEquals(verdicts[0], verdicts[1], JSON.stringify(text));
    return verdicts[0];
  };
  const parses = (text: string) => {
    try {
      const v = JSON.parse(text);
      return typeof v === "object" && v !== null && !Array.isArray(v);
    } catch {
      return false;
    }
  };
  const fixed = [
    '{"model":"claude\\x"}',
    '{"model":"a\\u00e9\\uD83D\\uDC4B"}',
    '{"model":"a\\u00g9"}',
    '{"model":"a\\u00"}',
    '{"model":"a\u0000"}',
    '{"a":["x\u001fy"]}',
    '{"a":"\\\\"}',
    '{"a":"\\\\\\"}',
    '{"a":"\u007f\u0080\u2028"}',
    '{\n"a"\t:\r"b"\n}',
    '{"a":"b\nc"}',
    '{"a\tb":1}',
    '{"a":1}\u000b',
    '\u000c{"a":1}',
  ];
  for (const text of fixed) assertEquals(accepts(text), parses(text), JSON.stringify(text));
  // Random bodies over an alphabet of JSON's troublemakers, from a fixed seed.
  const alphabet = ['"', "\\", "u", "0", "a", "F", "n", "/", "\u0000", "\n", "\t", " ", "é"];
  let seed = 42;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return seed % n;
  };
  let agreedValid = 0;
  for (let i = 0; i < 20_000; i++) {
    let inner = "";
    for (let n = rand(10); n > 0; n--) inner += alphabet[rand(alphabet.length)];
    const text = rand(2) ? `{"model":"${inner}"}` : `{"k":["${inner}",1],"model":"m"}`;
    const p = parses(text);
    assertEquals(accepts(text), p, JSON.stringify(text));
    if (p) agreedValid++;
  }
  assert(agreedValid > 1000, `the corpus holds valid bodies too (${agreedValid})`);
});

Deno.test("hasControlByte finds a byte below 0x20 wherever it is, at any alignment, and nothing else", () => {
  const naive = (b: Uint8Array) => b.some((x) => x < 0x20);
  // Bytes on both sides of the boundary, and ones whose high bit trips naive word tricks.
  const values = [0x00, 0x09, 0x0a, 0x1f, 0x20, 0x21, 0x7f, 0x80, 0x9f, 0xa0, 0xdf, 0xe0, 0xff];
  let seed = 7;
  const rand = (n: number) => {
    seed = (seed * 1103515245 + 12345) & 0x7fffffff;
    return (seed >>> 16) % n; // the high bits: the low ones of this generator cycle
  };
  let found = 0;
  for (let i = 0; i < 5_000; i++) {
    const buf = new Uint8Array(48);
    for (let j = 0; j < buf.length; j++) buf[j] = values[4 + rand(values.length - 4)]; // >= 0x20
    if (rand(2)) buf[rand(buf.length)] = values[rand(4)]; // one control byte, maybe
    const start = rand(8), end = start + rand(buf.length - start + 1);
    const view = buf.subarray(start, end);
    assertEquals(hasControlByte(view), naive(view), `${[...view]}`);
    if (naive(view)) found++;
  }
  assert(found > 1000, `the corpus holds control bytes too (${found})`);
  // A UTF-8 body: multi-byte sequences never look like control characters.
  assertEquals(
    hasControlByte(enc.encode('{"model":"é ∑ 👋 \\u0000 (an escape, not the character)"}')),
    false,
  );
  assertEquals(hasControlByte(enc.encode('{\n"model":"m"}')), true);
});
