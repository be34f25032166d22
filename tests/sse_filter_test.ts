/**
 * The client-side filter used when the gateway injected
 * `stream_options.include_usage`: the OpenAI format's `injectedUsageDropper()`
 * must remove exactly the usage-only event (`choices: []` plus a usage object)
 * and pass every other byte through unchanged, however the stream is chunked
 * and whatever its line endings.
 */
import process from "node:process";
import { assert, assertEquals } from "./support/assert.ts";
import { bytewise, lineEndings, prng, randomChunks } from "./support/rechunk.ts";
import { concatBytes } from "./support/streams.ts";
import { openai } from "../lib/formats/openai.ts";
import { MAX_HELD_BYTES, SseEventDropper } from "../lib/metering/sse_event_filter.ts";

const DIR = new URL("./data/streams/", import.meta.url);
const enc = new TextEncoder();
const dec = new TextDecoder();

/** Runs `chunks` through a fresh dropper; returns the output pieces. */
function filter(chunks: Iterable<Uint8Array>): Uint8Array[] {
  const d = openai.streamUsage!.usageEventFilter();
  const out: Uint8Array[] = [];
  const emit = (b: Uint8Array) => out.push(b.slice());
  for (const c of chunks) d.push(c, emit);
  d.flush(emit);
  return out;
}

/**
 * Reference answer for an LF stream, written independently of the filter:
 * cut after every blank line, drop the pieces whose joined `data:` is a JSON
 * object with an empty `choices` array and a non-null `usage` object.
 */
function withoutUsageOnly(text: string): string {
  const pieces: string[] = [];
  let cur = "";
  for (const line of text.split(/(?<=\n)/)) {
    cur += line;
    if (line === "\n") {
      pieces.push(cur);
      cur = "";
    }
  }
  if (cur) pieces.push(cur);
  return pieces.filter((p) => !isUsageOnlyEvent(p)).join("");
}

function isUsageOnlyEvent(piece: string): boolean {
  const data = piece.split("\n").filter((l) => l.startsWith("data:"))
    .map((l) => l.slice(l[5] === " " ? 6 : 5)).join("\n");
  let j: unknown;
  try {
    j = JSON.parse(data);
  } catch {
    return false;
  }
  if (typeof j !== "object" || j === null) return false;
  const o = j as { choices?: unknown; usage?: unknown };
  return Array.isArray(o.choices) && o.choices.length === 0 && typeof o.usage === "object" &&
    o.usage !== null && !Array.isArray(o.usage);
}

/** Checks `input` (LF) against `expected` (LF) under every chunking and EOL. */
function checkAllChunkings(name: string, input: Uint8Array, expected: Uint8Array): void {
  const rand = prng(input.length);
  for (const eol of ["LF", "CRLF", "CR"] as const) {
    const b = lineEndings(input, eol);
    const want = dec.decode(lineEndings(expected, eol));
    const check = (chunks: Uint8Array[], what: string) => {
      const got = dec.decode(concatBytes(filter(chunks)));
      if (got !== want) assertEquals(got, want, `${name}: ${eol} ${what}`);
    };
    check([b], "whole");
    for (let i = 0; i <= b.length; i++) check([b.subarray(0, i), b.subarray(i)], `split at ${i}`);
    check(bytewise(b), "one byte per chunk");
    for (let k = 0; k < 20; k++) {
      const chunks = randomChunks(b, rand, 79);
      check(chunks, `random chunks ${chunks.map((c) => c.length)}`);
    }
  }
}

const chunk = (o: unknown) => `data: ${JSON.stringify(o)}\n\n`;
const base = { id: "chatcmpl-F1", object: "chat.completion.chunk", created: 1, model: "gpt-4o" };
const USAGE = { prompt_tokens: 10, completion_tokens: 2, total_tokens: 12 };

Deno.test("dropper: removes exactly the injected usage-only event", () => {
  const events = [
    chunk({ ...base, choices: [{ index: 0, delta: { role: "assistant", content: "é👋" } }] }),
    chunk({ ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: null }),
    chunk({ ...base, choices: [], usage: USAGE }),
    "data: [DONE]\n\n",
  ];
  const input = enc.encode(events.join(""));
  const expected = enc.encode([events[0], events[1], events[3]].join(""));
  assertEquals(dec.decode(concatBytes(filter([input]))), dec.decode(expected));
  checkAllChunkings("hand-built", input, expected);
});

Deno.test("dropper: keeps usage that rides on a finish chunk (DeepSeek, GLM, Kimi, Moonshot)", () => {
  const events = [
    chunk({ ...base, choices: [{ index: 0, delta: { content: "x" }, finish_reason: null }] }),
    // DeepSeek: usage on the finish chunk.
    chunk({ ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop" }], usage: USAGE }),
    // Moonshot: usage inside choices[0].
    chunk({ ...base, choices: [{ index: 0, delta: {}, finish_reason: "stop", usage: USAGE }] }),
    // Azure: empty choices but usage null.
    chunk({ choices: [], id: "", prompt_filter_results: [], usage: null }),
    // Empty choices without any usage key.
    chunk({ ...base, choices: [] }),
    "data: [DONE]\n\n",
  ];
  const input = enc.encode(events.join(""));
  checkAllChunkings("finish-chunk usage", input, input);
});

Deno.test("dropper: a usage-only event split over several data lines is dropped", () => {
  const head = chunk({ ...base, choices: [{ index: 0, delta: { content: "hi" } }] });
  const usage = 'data: {"id":"c","choices":[],\ndata: "usage":{"prompt_tokens":3,\n' +
    'data: "completion_tokens":1,"total_tokens":4}}\n\n';
  const input = enc.encode(head + usage + "data: [DONE]\n\n");
  checkAllChunkings("multi-line", input, enc.encode(head + "data: [DONE]\n\n"));
});

Deno.test("dropper: an unterminated last event is decided at flush", () => {
  const head = chunk({ ...base, choices: [{ index: 0, delta: { content: "hi" } }] });
  // The usage-only chunk is last and has no blank line after it: still dropped.
  const usageLast = `data: ${JSON.stringify({ ...base, choices: [], usage: USAGE })}`;
  checkAllChunkings("usage last", enc.encode(head + usageLast), enc.encode(head));
  // A content chunk that is last and unterminated goes out unchanged at flush.
  const contentLast = `data: ${JSON.stringify({ ...base, choices: [{ index: 0, delta: {} }] })}\n`;
  const input = enc.encode(head + contentLast);
  checkAllChunkings("content last", input, input);
  const d = openai.streamUsage!.usageEventFilter();
  const out: Uint8Array[] = [];
  d.push(input, (b) => out.push(b.slice()));
  assertEquals(dec.decode(concatBytes(out)), head, "the partial event waits for its end");
  d.flush((b) => out.push(b.slice()));
  assertEquals(dec.decode(concatBytes(out)), dec.decode(input));
});

Deno.test("dropper: whole events without a candidate pass through as the same bytes", () => {
  const d = openai.streamUsage!.usageEventFilter();
  const c = enc.encode(
    chunk({ ...base, choices: [{ index: 0, delta: { content: "a" } }], usage: null }) +
      chunk({ ...base, choices: [{ index: 0, delta: { content: "b" } }], usage: null }),
  );
  const out: Uint8Array[] = [];
  d.push(c, (b) => out.push(b));
  d.flush((b) => out.push(b));
  assertEquals(out.length, 1);
  assert(out[0] === c, "an untouched chunk is forwarded without a copy");
});

Deno.test("dropper: comments, keep-alives and empty data lines are forwarded untouched", () => {
  const text = ": OPENROUTER PROCESSING\n\n:\n\ndata: : keepalive\n\ndata:\n\n" +
    chunk({ ...base, choices: [], usage: USAGE }) + ": trailing\n\ndata: [DONE]\n\n";
  const input = enc.encode(text);
  const expected = enc.encode(withoutUsageOnly(text));
  assertEquals(
    dec.decode(expected),
    ": OPENROUTER PROCESSING\n\n:\n\ndata: : keepalive\n\ndata:\n\n: trailing\n\ndata: [DONE]\n\n",
  );
  checkAllChunkings("keep-alives", input, expected);
});

// Every OpenAI-format stream of the metering corpus: the output is the input
// minus its usage-only events (none at all for the finish-chunk providers).
const CASES: { file: string; format: string; kind: string }[] = JSON.parse(
  Deno.readTextFileSync(new URL("cases.json", DIR)),
);
for (const c of CASES.filter((c) => c.format === "openai" && c.kind === "sse")) {
  Deno.test(`dropper on ${c.file}: only the usage-only event goes, for every chunking and EOL`, () => {
    const input = Deno.readFileSync(new URL(c.file, DIR));
    const text = dec.decode(input);
    const expected = enc.encode(withoutUsageOnly(text));
    if (/^(deepseek|glm|kimi|moonshot|gemini)-/.test(c.file)) {
      assertEquals(dec.decode(expected), text, `${c.file} has no usage-only event`);
    }
    checkAllChunkings(c.file, input, expected);
  });
}

Deno.test("dropper: the corpus exercises both dropping and keeping", () => {
  const texts = CASES.filter((c) => c.format === "openai" && c.kind === "sse")
    .map((c) => Deno.readTextFileSync(new URL(c.file, DIR)));
  assert(texts.filter((t) => withoutUsageOnly(t) !== t).length >= 5);
  assert(texts.filter((t) => withoutUsageOnly(t) === t).length >= 5);
});

/** CPU time (user + system, ms) this process spends in `fn`. */
function cpuMs(fn: () => void): number {
  const before = process.cpuUsage();
  fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

Deno.test("dropper: a 16 MiB event in 16 KiB chunks takes linear time and is streamed, not held", () => {
  const head = chunk({ ...base, choices: [{ index: 0, delta: { content: "hi" } }] });
  const usage = chunk({ ...base, choices: [], usage: USAGE });
  const huge = chunk({
    ...base,
    choices: [{ index: 0, delta: { content: "x".repeat(16 * 1024 * 1024) } }],
  });
  const input = enc.encode(head + huge + usage + "data: [DONE]\n\n");
  const d = openai.streamUsage!.usageEventFilter();
  const out: Uint8Array[] = [];
  let inBytes = 0, outBytes = 0, maxLag = 0;
  const emit = (b: Uint8Array) => {
    out.push(b);
    outBytes += b.length;
  };
  const ms = cpuMs(() => {
    for (let i = 0; i < input.length; i += 16384) {
      const c = input.subarray(i, i + 16384);
      d.push(c, emit);
      inBytes += c.length;
      maxLag = Math.max(maxLag, inBytes - outBytes);
    }
    d.flush(emit);
  });
  // The old filter re-joined and rescanned its carry on every chunk: 30 s of CPU here.
  assert(ms < 3000, `took ${Math.round(ms)} ms of CPU`);
  assert(
    maxLag <= MAX_HELD_BYTES + 16384,
    `held ${maxLag} bytes back: an event over the cap must stream through`,
  );
  assertEquals(dec.decode(concatBytes(out)), head + huge + "data: [DONE]\n\n");
});

Deno.test("dropper: an event over the hold cap passes unjudged; filtering resumes after it", () => {
  const usage = chunk({ ...base, choices: [], usage: USAGE });
  const big = chunk({ ...base, choices: [], usage: { ...USAGE, note: "y".repeat(500) } });
  // Drops every event whose data is JSON with empty choices, and holds at most 300 bytes.
  const d = new SseEventDropper(() => true, (data) => {
    try {
      return JSON.parse(data).choices?.length === 0;
    } catch {
      return false;
    }
  }, 300);
  const out: Uint8Array[] = [];
  const emit = (b: Uint8Array) => out.push(b.slice());
  const input = enc.encode(big + usage + big);
  for (let i = 0; i < input.length; i += 7) d.push(input.subarray(i, i + 7), emit);
  d.flush(emit);
  assertEquals(dec.decode(concatBytes(out)), big + big);
});
