/**
 * Extra suite: the recorded responses in `../shared/fixtures/` (real/ and
 * composite/), which exist only in the development workspace. Expected usage
 * comes from `real/SOURCES.md`: parsed from its JSON "Expected final usage"
 * values, or, where SOURCES.md states it in prose, from the table below,
 * whose numbers are checked against that prose. The file list comes from the
 * directories, so a new recording without a known expectation fails.
 * Every recording's cost at a test price is checked against the cost worked
 * out from SOURCES.md's raw numbers in the provider's own convention.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { bytewise, lineEndings } from "./support/rechunk.ts";
import { meterChunks, meteredView } from "./support/meter.ts";
import { anthropic } from "../lib/formats/anthropic.ts";
import { openai } from "../lib/formats/openai.ts";
import type { ApiFormat } from "../lib/formats/format.ts";
import type { Metered, Tokens } from "../lib/metering/tokens.ts";
import { costMicroUsd } from "../lib/metering/cost.ts";
import type { Pricing } from "../lib/config/registry.ts";

const ROOT = new URL("../../shared/fixtures/", import.meta.url);
const SKIPPED = "skipped: ../shared/fixtures not present (only in the development workspace)";

function isDir(url: URL): boolean {
  try {
    return Deno.statSync(url).isDirectory;
  } catch {
    return false;
  }
}

/** Provider usage fields as SOURCES.md writes them (Anthropic or OpenAI-style names). */
type RawUsage = Record<string, unknown>;

interface Expectation {
  /** Metered status; JSON bodies get the proxy's status for `http`. */
  status: Metered["status"];
  /** Usage the file must yield, or null when it carries none. */
  usage: RawUsage | null;
  errorType: string | null;
  /** HTTP status of a JSON body. */
  http?: number;
}

interface ProseExpectation extends Expectation {
  /** Phrases that must appear in the file's SOURCES.md text (keeps this table honest). */
  evidence: string[];
}

/** Expectations SOURCES.md gives in prose, transcribed (file paths relative to fixtures/). */
const FROM_PROSE: Record<string, ProseExpectation> = {
  "real/anthropic-count-tokens.json": {
    status: "ok",
    http: 200,
    usage: null,
    errorType: null,
    evidence: ['{"input_tokens":1114}', "NOT consumption"],
  },
  "real/anthropic-error-400-invalid-request.json": {
    status: "http_error",
    http: 400,
    usage: null,
    errorType: "invalid_request_error",
    evidence: ["HTTP 400 invalid_request_error", "no usage"],
  },
  "real/anthropic-message-cache-write-read.json": {
    status: "ok",
    http: 200,
    usage: {
      input_tokens: 3,
      cache_creation_input_tokens: 418,
      cache_read_input_tokens: 1111,
      output_tokens: 33,
    },
    errorType: null,
    evidence: ["input=3", "cc=418", "cr=1111", "output=33"],
  },
  "real/anthropic-message-text.json": {
    status: "ok",
    http: 200,
    usage: {
      input_tokens: 16,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: 34,
    },
    errorType: null,
    evidence: ["input=16", "cc=0", "cr=0", "output=34"],
  },
  "real/deepseek-chat-cache-hit.json": {
    status: "ok",
    http: 200,
    usage: {
      prompt_tokens: 563,
      completion_tokens: 116,
      total_tokens: 679,
      prompt_cache_hit_tokens: 512,
    },
    errorType: null,
    evidence: ["prompt 563", "hit 512", "completion 116", "total 679"],
  },
  "real/gemini-openai-compat-chat.json": {
    status: "ok",
    http: 200,
    usage: { prompt_tokens: 35, completion_tokens: 12, total_tokens: 109 },
    errorType: null,
    evidence: ["prompt 35", "completion 12", "total 109", "total - prompt = 74"],
  },
  "real/openai-chat-completion-cached.json": {
    status: "ok",
    http: 200,
    usage: {
      prompt_tokens: 4020,
      completion_tokens: 4,
      total_tokens: 4024,
      cached_tokens: 4012,
      cache_write_tokens: 0,
    },
    errorType: null,
    evidence: ["prompt 4020", "cached 4012", "cache_write_tokens 0", "completion 4", "total 4024"],
  },
  "real/openai-chat-completion-reasoning.json": {
    status: "ok",
    http: 200,
    usage: { prompt_tokens: 19, completion_tokens: 139, total_tokens: 158, cached_tokens: 0 },
    errorType: null,
    evidence: ["prompt 19", "completion 139", "total 158", "cached 0"],
  },
  "real/openai-error-400-unsupported-parameter.json": {
    status: "http_error",
    http: 400,
    usage: null,
    errorType: "invalid_request_error",
    evidence: ["HTTP 400", '"type":"invalid_request_error"', "no usage"],
  },
  "composite/anthropic-stream-midstream-overloaded-error.COMPOSITE.sse": {
    status: "stream_error",
    usage: {
      input_tokens: 16,
      cache_creation_input_tokens: 0,
      cache_read_input_tokens: 0,
      output_tokens: 5,
    },
    errorType: "overloaded_error",
    evidence: ["type overloaded_error", "input 16, cache 0/0, output 5"],
  },
};

const num = (v: unknown) => (typeof v === "number" ? v : 0);

/**
 * Our buckets from SOURCES.md's raw numbers, computed independently of the
 * formats: Anthropic input is already uncached; OpenAI-style prompt includes
 * cached (and written) tokens, completion includes reasoning, and a positive
 * total - prompt - completion (Gemini's hidden thinking) is output too.
 */
function bucketsOf(u: RawUsage): Tokens {
  if ("input_tokens" in u || "output_tokens" in u) {
    const stu = (u.server_tool_use ?? {}) as RawUsage;
    const split = (u.cache_creation ?? {}) as RawUsage;
    return {
      inputUncached: num(u.input_tokens),
      cacheRead: num(u.cache_read_input_tokens),
      cacheWrite: num(u.cache_creation_input_tokens),
      cacheWrite1h: num(split.ephemeral_1h_input_tokens),
      output: num(u.output_tokens),
      webSearch: num(stu.web_search_requests),
      webFetch: num(stu.web_fetch_requests),
    };
  }
  const prompt = num(u.prompt_tokens), completion = num(u.completion_tokens);
  const cached = num(u.cached_tokens ?? u.prompt_cache_hit_tokens);
  const written = num(u.cache_write_tokens);
  const hidden = "total_tokens" in u ? Math.max(0, num(u.total_tokens) - prompt - completion) : 0;
  return {
    inputUncached: prompt - cached - written,
    cacheRead: cached,
    cacheWrite: written,
    cacheWrite1h: 0,
    output: completion + hidden,
    webSearch: 0,
    webFetch: 0,
  };
}

/** Test prices, whole numbers (no rounding) and different per bucket (a swapped bucket shows). */
const PRICE: Pricing = { input: 3, output: 15, cacheRead: 1, cacheWrite: 4, cacheWrite1h: 6 };

/**
 * Micro-dollars from SOURCES.md's raw numbers, without our buckets: Anthropic
 * prices each field once (one-hour writes apart, the rest five-minute);
 * OpenAI-style `prompt_tokens` already holds the cached and written tokens,
 * so only the rest of it is priced as input, and Gemini's hidden thinking
 * (total - prompt - completion) as output.
 */
function rawCost(u: RawUsage): number {
  if ("input_tokens" in u || "output_tokens" in u) {
    const split = (u.cache_creation ?? {}) as RawUsage;
    const oneHour = num(split.ephemeral_1h_input_tokens);
    return num(u.input_tokens) * PRICE.input + num(u.cache_read_input_tokens) * PRICE.cacheRead +
      (num(u.cache_creation_input_tokens) - oneHour) * PRICE.cacheWrite +
      oneHour * PRICE.cacheWrite1h + num(u.output_tokens) * PRICE.output;
  }
  const prompt = num(u.prompt_tokens), completion = num(u.completion_tokens);
  const cached = num(u.cached_tokens ?? u.prompt_cache_hit_tokens);
  const written = num(u.cache_write_tokens);
  const hidden = "total_tokens" in u ? Math.max(0, num(u.total_tokens) - prompt - completion) : 0;
  return (prompt - cached - written) * PRICE.input + cached * PRICE.cacheRead +
    written * PRICE.cacheWrite + (completion + hidden) * PRICE.output;
}

/** What SOURCES.md says about each file: its summary row and its own section. */
interface Sourced {
  row?: string;
  rowUsage?: RawUsage;
  section?: string;
  sectionUsage?: RawUsage;
  sha256?: string;
}

function parseSources(md: string): Map<string, Sourced> {
  const out = new Map<string, Sourced>();
  const get = (f: string) => out.get(f) ?? out.set(f, {}).get(f)!;
  for (const line of md.split("\n")) {
    const m = /^\| `([^`]+)` \|/.exec(line);
    if (!m) continue;
    const cells = line.split(" | ");
    const s = get(m[1].includes("/") ? m[1] : `real/${m[1]}`);
    s.row = line;
    const json = /^`(\{.*\})`/.exec(cells.slice(3).join(" | ").trim());
    if (json) s.rowUsage = JSON.parse(json[1]);
  }
  for (const part of md.split(/^### /m).slice(1)) {
    const m = /^`([^`]+)`/.exec(part);
    if (!m) continue;
    // Sections after the "## composite/" heading name their files with that prefix.
    const s = get(m[1].includes("/") ? m[1] : `real/${m[1]}`);
    s.section = part.split(/^## /m)[0];
    const usage = /^- Expected final usage: `(\{.*\})`/m.exec(s.section);
    if (usage) s.sectionUsage = JSON.parse(usage[1]);
    const sha = /sha256 `([0-9a-f]{64})`/.exec(s.section);
    if (sha) s.sha256 = sha[1];
  }
  return out;
}

async function sha256Hex(b: Uint8Array<ArrayBuffer>): Promise<string> {
  const d = new Uint8Array(await crypto.subtle.digest("SHA-256", b));
  return [...d].map((x) => x.toString(16).padStart(2, "0")).join("");
}

/** The expectation for one file, or an error message saying what is missing. */
function expectationFor(path: string, src: Sourced | undefined): Expectation | string {
  const prose = FROM_PROSE[path];
  const jsonUsage = src?.sectionUsage ?? src?.rowUsage;
  if (src?.sectionUsage && src.rowUsage) {
    assertEquals(src.sectionUsage, src.rowUsage, `${path}: SOURCES.md table and section disagree`);
  }
  if (jsonUsage && !prose) return { status: "ok", usage: jsonUsage, errorType: null };
  if (prose) {
    const text = `${src?.row ?? ""}\n${src?.section ?? ""}`;
    for (const e of prose.evidence) {
      assert(text.includes(e), `${path}: SOURCES.md no longer says ${JSON.stringify(e)}`);
    }
    if (jsonUsage) assertEquals(prose.usage, jsonUsage, `${path}: table vs SOURCES.md JSON`);
    return prose;
  }
  return `${path}: no expected usage known. Add an "Expected final usage" JSON line for it to ` +
    `real/SOURCES.md, or an entry to FROM_PROSE in tests/fixtures_test.ts.`;
}

const formatOf = (path: string): ApiFormat =>
  path.split("/").pop()!.startsWith("anthropic") ? anthropic : openai;

function meter(format: ApiFormat, chunks: Iterable<Uint8Array>): string {
  return JSON.stringify(meteredView(meterChunks(format, chunks)));
}

/**
 * Two-chunk split offsets: all of them for files up to 8 KiB; for larger
 * recordings the first 1 KiB, the last 6 KiB (where usage and the end of the
 * stream are) and every 61st offset in between, to keep the suite fast. The
 * one-byte-per-chunk run still puts a boundary at every offset.
 */
function splitOffsets(n: number): number[] {
  const all = n <= 8192;
  const out: number[] = [];
  for (let i = 0; i <= n; i++) if (all || i < 1024 || i > n - 6144 || i % 61 === 0) out.push(i);
  return out;
}

if (!isDir(ROOT)) {
  console.log(SKIPPED);
  Deno.test({ name: `fixtures: ${SKIPPED}`, ignore: true, fn() {} });
} else {
  const md = Deno.readTextFileSync(new URL("real/SOURCES.md", ROOT));
  const sources = parseSources(md);
  const files: string[] = [];
  for (const dir of ["real", "composite"]) {
    if (!isDir(new URL(`${dir}/`, ROOT))) continue;
    for (const e of Deno.readDirSync(new URL(`${dir}/`, ROOT))) {
      if (e.isFile && /\.(sse|json)$/.test(e.name)) files.push(`${dir}/${e.name}`);
    }
  }
  files.sort();

  Deno.test("fixtures: every recording named in SOURCES.md is present", () => {
    assert(files.length > 0, "no fixture files found");
    for (const f of sources.keys()) assert(files.includes(f), `${f} is in SOURCES.md but missing`);
  });

  for (const path of files) {
    Deno.test(`fixture ${path}`, async () => {
      const src = sources.get(path);
      const exp = expectationFor(path, src);
      if (typeof exp === "string") throw new Error(exp);
      const bytes = Deno.readFileSync(new URL(path, ROOT));
      if (src?.sha256) {
        assertEquals(await sha256Hex(bytes), src.sha256, `${path}: bytes differ from SOURCES.md`);
      }
      const want = {
        status: exp.status,
        usageSeen: exp.usage !== null,
        errorType: exp.errorType,
        tokens: exp.usage ? bucketsOf(exp.usage) : bucketsOf({}),
        extra: [],
      };
      const format = formatOf(path);
      const wantCost = exp.usage ? rawCost(exp.usage) : 0;

      if (path.endsWith(".json")) {
        const m = format.meterJson(JSON.parse(new TextDecoder().decode(bytes)));
        // The proxy's rule (lib/proxy.ts): a non-2xx or usage-less error body is http_error.
        const ok = (exp.http ?? 200) < 300 && !(m.errorType !== undefined && !m.usageSeen);
        assertEquals(meteredView({ ...m, status: ok ? "ok" : "http_error" }), want, path);
        assertEquals(costMicroUsd(m.tokens, PRICE), wantCost, `${path}: cost`);
        return;
      }

      const ref = meter(format, [bytes]);
      assertEquals(JSON.parse(ref), want, `${path}: whole stream`);
      assertEquals(costMicroUsd(JSON.parse(ref).tokens, PRICE), wantCost, `${path}: cost`);
      for (const eol of ["LF", "CRLF", "CR"] as const) {
        const b = lineEndings(bytes, eol);
        const check = (got: string, what: string) => {
          if (got !== ref) assertEquals(JSON.parse(got), want, `${path}: ${eol} ${what}`);
        };
        check(meter(format, [b]), "whole");
        for (const i of splitOffsets(b.length)) {
          check(meter(format, [b.subarray(0, i), b.subarray(i)]), `split at ${i}`);
        }
        check(meter(format, bytewise(b)), "one byte per chunk");
      }
    });
  }
}
