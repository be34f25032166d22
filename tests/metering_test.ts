/**
 * Token metering on our own corpus (`tests/data/streams/`, expectations in
 * `cases.json`): every SSE case is fed through `SseReader` and the format's
 * stream meter whole, at every two-chunk split point, byte by byte, in seeded
 * random chunks, and with CRLF and CR line endings; the totals (and the
 * dispatched events) must never change. JSON cases go through `meterJson`.
 * Each case also pins what its usage costs at {@link PRICE}, the request's
 * own model and advisor models alike.
 */
import process from "node:process";
import { assert, assertEquals } from "./support/assert.ts";
import { bytewise, lineEndings, prng, randomChunks } from "./support/rechunk.ts";
import { meterChunks, type MeteredView, meteredView, tokensView } from "./support/meter.ts";
import { anthropic } from "../lib/formats/anthropic.ts";
import { openai, openaiTokens } from "../lib/formats/openai.ts";
import type { ApiFormat } from "../lib/formats/format.ts";
import { type Metered, zeroTokens } from "../lib/metering/tokens.ts";
import { SseReader } from "../lib/metering/sse_reader.ts";
import { costMicroUsd } from "../lib/metering/cost.ts";
import type { Pricing } from "../lib/config/registry.ts";

const DIR = new URL("./data/streams/", import.meta.url);

/** One entry of `cases.json`. */
interface Case {
  file: string;
  format: "anthropic" | "openai";
  kind: "sse" | "json";
  /** Which metering rule (docs/metering.md) the file exercises. */
  covers: string;
  /** JSON cases: the HTTP status the body came with. */
  httpStatus?: number;
  expect: MeteredView & { costMicroUsd: number };
}

/** The price the corpus costs are pinned at (USD per million tokens, Claude Sonnet's list price). */
const PRICE: Pricing = { input: 3, output: 15, cacheRead: 0.3, cacheWrite: 3.75, cacheWrite1h: 6 };

/** The expected meter result without its pinned cost. */
function expected(c: Case): MeteredView {
  const { costMicroUsd: _, ...view } = c.expect;
  return view;
}

/** Micro-dollars of a meter result at {@link PRICE}: every share priced, summed. */
function costOf(m: MeteredView): number {
  return [m.tokens, ...m.extra.map((e) => e.tokens)].reduce(
    (sum, t) => sum + costMicroUsd(t, PRICE),
    0,
  );
}

const CASES: Case[] = JSON.parse(Deno.readTextFileSync(new URL("cases.json", DIR)));
const FORMATS: Record<Case["format"], ApiFormat> = { anthropic, openai };

/** One run: the meter result as JSON, the events the reader dispatched, and the result. */
interface Run {
  metered: string;
  events: string;
  result: MeteredView;
}

/** Feeds `chunks` through an SseReader into a fresh meter of `format`. */
function meterRun(format: ApiFormat, chunks: Iterable<Uint8Array>): Run {
  const events: string[] = [];
  const result = meteredView(
    meterChunks(format, chunks, (name, data) => events.push(`${name ?? ""}\u0001${data}`)),
  );
  return { metered: JSON.stringify(result), events: events.join("\u0002"), result };
}

function hash(s: string): number {
  let h = 2166136261;
  for (let i = 0; i < s.length; i++) h = Math.imul(h ^ s.charCodeAt(i), 16777619);
  return h >>> 0;
}

const read = (file: string) => Deno.readFileSync(new URL(file, DIR));

Deno.test("corpus: every file in tests/data/streams has exactly one case, and vice versa", () => {
  const files = [...Deno.readDirSync(DIR)]
    .filter((e) => e.isFile && e.name !== "cases.json")
    .map((e) => e.name)
    .sort();
  const listed = CASES.map((c) => c.file).sort();
  assertEquals(listed, [...new Set(listed)], "a file is listed twice in cases.json");
  assertEquals(listed, files, "cases.json and the directory disagree");
  for (const c of CASES) {
    assertEquals(c.kind, c.file.endsWith(".sse") ? "sse" : "json", `${c.file}: kind`);
    assert(c.format in FORMATS, `${c.file}: unknown format ${c.format}`);
    assert(c.covers.length > 0, `${c.file}: say which rule it covers`);
  }
});

Deno.test("corpus: files use LF only, so CRLF and CR variants can be derived", () => {
  for (const c of CASES) assert(!read(c.file).includes(0x0d), `${c.file} contains a raw CR`);
});

for (const c of CASES.filter((c) => c.kind === "sse")) {
  Deno.test(`stream ${c.file}: ${c.expect.status}, same totals for every chunking and EOL`, () => {
    const format = FORMATS[c.format];
    const lf = read(c.file);
    const ref = meterRun(format, [lf]);
    assertEquals(ref.result, expected(c), `${c.file}: whole stream (${c.covers})`);
    assertEquals(costOf(ref.result), c.expect.costMicroUsd, `${c.file}: cost`);
    const rand = prng(hash(c.file));

    const check = (run: Run, what: string) => {
      if (run.metered !== ref.metered) assertEquals(run.result, expected(c), `${c.file}: ${what}`);
      assert(run.events === ref.events, `${c.file}: ${what}: dispatched events differ`);
    };

    for (const eol of ["LF", "CRLF", "CR"] as const) {
      const b = lineEndings(lf, eol);
      check(meterRun(format, [b]), `${eol} whole`);
      for (let i = 0; i <= b.length; i++) {
        check(meterRun(format, [b.subarray(0, i), b.subarray(i)]), `${eol} split at ${i}`);
      }
      check(meterRun(format, bytewise(b)), `${eol} one byte per chunk`);
      for (let k = 0; k < 20; k++) {
        const chunks = randomChunks(b, rand, 96);
        check(meterRun(format, chunks), `${eol} random chunks ${chunks.map((x) => x.length)}`);
      }
    }
  });
}

Deno.test("streams: damaged bytes never make the meter throw", () => {
  const rand = prng(7);
  for (const c of CASES.filter((c) => c.kind === "sse")) {
    const lf = read(c.file);
    for (let k = 0; k < 30; k++) {
      const b = lf.slice();
      for (let j = 0; j < 4; j++) b[Math.floor(rand() * b.length)] = Math.floor(rand() * 256);
      const r = meterRun(FORMATS[c.format], randomChunks(b, rand, 96)).result;
      assert(["ok", "stream_error", "incomplete"].includes(r.status), `${c.file}: ${r.status}`);
    }
  }
});

/** The proxy's rule for a non-streamed answer (lib/proxy.ts): error bodies are http_error. */
function jsonStatus(httpStatus: number, m: Omit<Metered, "status">): Metered["status"] {
  const errorBody = m.errorType !== undefined && !m.usageSeen;
  return httpStatus >= 200 && httpStatus < 300 && !errorBody ? "ok" : "http_error";
}

for (const c of CASES.filter((c) => c.kind === "json")) {
  Deno.test(`body ${c.file}: ${c.expect.status}`, () => {
    assert(c.httpStatus !== undefined, `${c.file}: httpStatus missing in cases.json`);
    const body = JSON.parse(new TextDecoder().decode(read(c.file)));
    const m = FORMATS[c.format].meterJson(body);
    const view = meteredView({ ...m, status: jsonStatus(c.httpStatus, m) });
    assertEquals(view, expected(c), c.covers);
    assertEquals(costOf(view), c.expect.costMicroUsd, `${c.file}: cost`);
  });
}

Deno.test("meterJson: bodies that are not objects carry no usage", () => {
  for (const format of [anthropic, openai]) {
    for (const body of [undefined, null, 42, "text", [1, 2]]) {
      const m = format.meterJson(body);
      assertEquals(meteredView({ ...m, status: "ok" }).tokens, tokensView(zeroTokens()));
      assertEquals(m.usageSeen, false);
    }
  }
});

Deno.test("openaiTokens: subsets, clamping and the Gemini gap", () => {
  const t = (u: Record<string, unknown>) => tokensView(openaiTokens(u));
  // cached_tokens is preferred over DeepSeek's hit count and Kimi's top-level spelling.
  assertEquals(
    t({
      prompt_tokens: 100,
      completion_tokens: 5,
      prompt_tokens_details: { cached_tokens: 60 },
      prompt_cache_hit_tokens: 60,
      cached_tokens: 60,
    }),
    { ...zeroTokens(), inputUncached: 40, cacheRead: 60, output: 5 },
  );
  // A cached count larger than the prompt cannot make uncached input negative.
  assertEquals(t({ prompt_tokens: 10, completion_tokens: 1, cached_tokens: 50 }), {
    ...zeroTokens(),
    cacheRead: 10,
    output: 1,
  });
  // total below prompt + completion adds nothing; absent total adds nothing.
  assertEquals(t({ prompt_tokens: 10, completion_tokens: 4, total_tokens: 12 }), {
    ...zeroTokens(),
    inputUncached: 10,
    output: 4,
  });
  assertEquals(t({ prompt_tokens: 10, completion_tokens: 4 }), {
    ...zeroTokens(),
    inputUncached: 10,
    output: 4,
  });
  // Negative, fractional-free garbage and nulls count as absent.
  assertEquals(
    t({
      prompt_tokens: -3,
      completion_tokens: "7",
      total_tokens: null,
      prompt_tokens_details: null,
    }),
    zeroTokens(),
  );
  // reasoning_tokens is a subset of completion_tokens.
  assertEquals(
    t({
      prompt_tokens: 3,
      completion_tokens: 9,
      total_tokens: 12,
      completion_tokens_details: { reasoning_tokens: 8 },
    }),
    { ...zeroTokens(), inputUncached: 3, output: 9 },
  );
});

/** CPU time (user + system, ms) this process spends in `fn`. */
function cpuMs(fn: () => void): number {
  const before = process.cpuUsage();
  fn();
  const used = process.cpuUsage(before);
  return (used.user + used.system) / 1000;
}

for (const mib of [6, 16, 32]) {
  Deno.test(`SseReader: a ${mib} MiB event in 16 KiB chunks costs linear time; usage after it counts`, () => {
    const enc = new TextEncoder();
    const meter = openai.streamMeter();
    const sizes: number[] = [];
    const reader = new SseReader((name, data) => {
      sizes.push(data.length);
      meter.event(name, data);
    });
    const content = "x".repeat(mib * 1024 * 1024);
    const body = enc.encode(
      `data: {"choices":[{"index":0,"delta":{"content":"${content}"}}]}\n\n` +
        'data: {"choices":[],"usage":{"prompt_tokens":7,"completion_tokens":3}}\n\ndata: [DONE]\n\n',
    );
    const ms = cpuMs(() => {
      for (let i = 0; i < body.length; i += 16384) reader.push(body.subarray(i, i + 16384));
      reader.end();
    });
    assert(ms < 3000, `took ${Math.round(ms)} ms of CPU`);
    const m = meter.end();
    assertEquals([m.status, m.tokens.inputUncached, m.tokens.output], ["ok", 7, 3]);
    // Events up to MAX_EVENT_CHARS reach the meter whole; bigger ones are skipped.
    assertEquals(sizes.length, mib < 8 ? 3 : 2);
    assertEquals(reader.oversized, mib < 8 ? 0 : 1);
  });
}

Deno.test("finished: set by the finish or stop reason, never by content; every ok stream ends finished", () => {
  const o = openai.streamMeter();
  const chunk = (choice: unknown) => JSON.stringify({ id: "c", choices: [choice] });
  o.event(undefined, chunk({ index: 0, delta: { content: '"finish_reason":"stop"' } }));
  o.event(undefined, chunk({ index: 0, delta: {}, finish_reason: null }));
  o.event(undefined, chunk({ index: 0, delta: {}, finish_reason: "" }));
  assertEquals(o.finished, false, "OpenAI content, a null and an empty finish reason");
  o.event(undefined, chunk({ index: 0, delta: {}, finish_reason: "length" }));
  assertEquals(o.finished, true, "OpenAI finish chunk");

  const a = anthropic.streamMeter();
  a.event("message_start", '{"type":"message_start","message":{"id":"m","usage":{}}}');
  a.event("content_block_delta", '{"type":"content_block_delta","delta":{"text":"stop_reason"}}');
  a.event("message_delta", '{"type":"message_delta","delta":{"stop_reason":null}}');
  assertEquals(a.finished, false, "Anthropic content and a delta without a stop reason");
  a.event("message_delta", '{"type":"message_delta","delta":{"stop_reason":"end_turn"}}');
  assertEquals(a.finished, true, "Anthropic stop reason");

  for (const c of CASES.filter((c) => c.kind === "sse" && c.expect.status === "ok")) {
    const m = FORMATS[c.format].streamMeter();
    const r = new SseReader((name, data) => m.event(name, data));
    r.push(read(c.file));
    r.end();
    assert(m.finished, `${c.file}: a complete stream ends finished`);
  }
});
