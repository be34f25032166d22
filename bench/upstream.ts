/**
 * The benchmark's fake LLM provider, run as its own process. It serves the
 * Anthropic Messages API under `/anthropic/v1/messages` and OpenAI Chat
 * Completions under `/openai/v1/chat/completions`, and picks what to send
 * from the model name in the request (`claude-bench-<mode>` / `gpt-bench-<mode>`):
 *
 * - `json`, `large`: an instant JSON body of about 1 KB with a usage object
 *   (`large` is the same answer to a 500 KB request);
 * - `sse`: an unpaced stream of 50 to 64 deltas, one event per chunk, no delay;
 * - `paced`: 64 deltas 20 ms apart, each stamped with its send time (`bench_t`);
 * - `slow`: one delta a second until `POST /stats/finish-slow` (for the
 *   1,000-open-streams test).
 *
 * It counts exactly what it served: requests started, responses fully
 * written and their tokens, streams cut before their end, and requests it
 * held. `POST /stats/hold` parks every new request (without answering) until
 * its client goes away or `POST /stats/release` (which answers them at once
 * with zero tokens); the benchmark uses it to end each run at a point where
 * no response is half-written. `GET /stats` and
 * `POST /stats/reset` expose and zero the counters.
 *
 * Env: `BENCH_PORT` (default 0), `BENCH_SECRET_A` (the `x-api-key` the
 * Anthropic path requires), `BENCH_SECRET_O` (the bearer token of the OpenAI
 * path). Prints `{"port":N}` once listening.
 */

/** Counters the upstream exposes at `GET /stats`. */
export interface UpstreamStats {
  /** Requests that reached a provider path (counted on arrival, before the body is read). */
  started: number;
  /** Responses written to their end (held ones served after a release included). */
  completed: number;
  /** Requests parked by a hold. */
  held: number;
  /** Held requests whose client went away. */
  heldAborted: number;
  /** Held requests answered after `POST /stats/release` (with zero tokens, not counted as completed). */
  heldReleased: number;
  /** Streams cancelled by their reader before their last event. */
  cut: number;
  /** Requests whose body could not be read (client gone). */
  aborted: number;
  /** Requests with a wrong or missing provider credential. */
  unauthorized: number;
  /** Bodies that are not a complete benchmark request. */
  badRequests: number;
  /** Request body bytes received. */
  bytesIn: number;
  /** Tokens of the completed responses, in the gateway's buckets. */
  tokens: { input: number; cacheRead: number; cacheWrite: number; output: number };
  /** Requests being handled now (a gauge, not reset). */
  inflight: number;
  /** Requests parked by the hold now (a gauge, not reset). */
  heldNow: number;
  /** Slow streams open now (a gauge, not reset). */
  slowOpen: number;
  /** The same counts for requests sent with an `x-bench-tag` header, by tag. */
  tags: Record<string, TagStats>;
}

/** Counts for the requests of one `x-bench-tag`. */
export interface TagStats {
  started: number;
  completed: number;
  cut: number;
  tokens: { input: number; cacheRead: number; cacheWrite: number; output: number };
}

/** What a benchmark request asks for. */
export type Mode = "json" | "large" | "sse" | "paced" | "slow";
type Format = "anthropic" | "openai";

/** Deltas of a paced stream and the time between them. */
export const PACED_DELTAS = 64;
/** Milliseconds between paced deltas. */
export const PACED_GAP_MS = 20;
const SLOW_GAP_MS = 1000;
const SLOW_MAX_MS = 120_000;

const enc = new TextEncoder();
const dec = new TextDecoder();

function zeroStats(): UpstreamStats {
  return {
    started: 0,
    completed: 0,
    held: 0,
    heldAborted: 0,
    heldReleased: 0,
    cut: 0,
    aborted: 0,
    unauthorized: 0,
    badRequests: 0,
    bytesIn: 0,
    tokens: { input: 0, cacheRead: 0, cacheWrite: 0, output: 0 },
    inflight: 0,
    heldNow: 0,
    slowOpen: 0,
    tags: {},
  };
}

function zeroTag(): TagStats {
  return {
    started: 0,
    completed: 0,
    cut: 0,
    tokens: { input: 0, cacheRead: 0, cacheWrite: 0, output: 0 },
  };
}

interface Usage {
  input: number;
  cacheRead: number;
  output: number;
}

interface Parsed {
  mode: Mode;
  model: string;
  includeUsage: boolean;
}

const MODEL_RE = /"model"\s*:\s*"((?:claude|gpt)-bench-(json|large|sse|paced|slow))"/;
const INCLUDE_USAGE_RE = /"include_usage"\s*:\s*true/;

/**
 * Reads what the request asks for from the start of its body (benchmark
 * bodies put `model`, `stream` and `stream_options` first, and the gateway
 * inserts `stream_options` right after the opening brace), so even a 500 KB
 * body costs one short decode. A body whose last byte is not `}` was cut.
 */
function parse(body: Uint8Array): Parsed | undefined {
  let end = body.length - 1;
  while (end >= 0 && (body[end] === 0x20 || body[end] === 0x0a || body[end] === 0x0d)) end--;
  if (end < 1 || body[end] !== 0x7d) return undefined;
  const head = dec.decode(body.subarray(0, 1024));
  const m = MODEL_RE.exec(head);
  if (!m) return undefined;
  return { model: m[1], mode: m[2] as Mode, includeUsage: INCLUDE_USAGE_RE.test(head) };
}

/** Varied but deterministic token counts, so that a lost or doubled response shows. */
function usageFor(p: Parsed, seq: number, bodyBytes: number): Usage {
  const input = p.mode === "large" ? Math.floor(bodyBytes / 4) : 12 + (seq % 89);
  const cacheRead = seq % 4 === 0 ? 1024 + (seq % 7) : 0;
  const output = p.mode === "sse"
    ? 50 + (seq % 15)
    : p.mode === "paced"
    ? PACED_DELTAS
    : p.mode === "slow"
    ? 0
    : 30 + (seq % 170);
  return { input, cacheRead, output };
}

const TEXT = "The quick brown fox jumps over the lazy dog while the benchmark counts tokens. "
  .repeat(9);

function anthropicJson(model: string, u: Usage): string {
  return `{"id":"msg_bench","type":"message","role":"assistant","model":"${model}",` +
    `"content":[{"type":"text","text":"${TEXT}"}],"stop_reason":"end_turn","stop_sequence":null,` +
    `"usage":{"input_tokens":${u.input},"cache_creation_input_tokens":0,` +
    `"cache_read_input_tokens":${u.cacheRead},"output_tokens":${u.output}}}`;
}

function openaiUsage(u: Usage): string {
  return `{"prompt_tokens":${u.input + u.cacheRead},"completion_tokens":${u.output},` +
    `"total_tokens":${u.input + u.cacheRead + u.output},` +
    `"prompt_tokens_details":{"cached_tokens":${u.cacheRead}}}`;
}

function openaiJson(model: string, u: Usage): string {
  return `{"id":"chatcmpl-bench","object":"chat.completion","created":1700000000,"model":"${model}",` +
    `"choices":[{"index":0,"message":{"role":"assistant","content":"${TEXT}"},` +
    `"finish_reason":"stop"}],"usage":${openaiUsage(u)}}`;
}

/** The events of one stream, built lazily (a slow stream's end depends on its length). */
interface StreamShape {
  start(u: Usage): Uint8Array;
  delta(i: number, stamp?: number): Uint8Array;
  end(u: Usage): Uint8Array;
}

const word = (i: number) => `tok${String(i).padStart(3, "0")} `;

function anthropicStream(model: string): StreamShape {
  const deltas = new Map<number, Uint8Array>();
  return {
    start: (u) =>
      enc.encode(
        `event: message_start\ndata: {"type":"message_start","message":{"id":"msg_bench",` +
          `"type":"message","role":"assistant","model":"${model}","content":[],` +
          `"stop_reason":null,"stop_sequence":null,"usage":{"input_tokens":${u.input},` +
          `"cache_creation_input_tokens":0,"cache_read_input_tokens":${u.cacheRead},` +
          `"output_tokens":1}}}\n\n` +
          `event: content_block_start\ndata: {"type":"content_block_start","index":0,` +
          `"content_block":{"type":"text","text":""}}\n\n`,
      ),
    delta: (i, stamp) => {
      const build = (s: string) =>
        enc.encode(
          `event: content_block_delta\ndata: {"type":"content_block_delta","index":0,` +
            `"delta":{"type":"text_delta","text":"${word(i)}"}${s}}\n\n`,
        );
      if (stamp !== undefined) return build(`,"bench_t":${stamp.toFixed(3)}`);
      let d = deltas.get(i);
      if (!d) deltas.set(i, d = build(""));
      return d;
    },
    end: (u) =>
      enc.encode(
        `event: content_block_stop\ndata: {"type":"content_block_stop","index":0}\n\n` +
          `event: message_delta\ndata: {"type":"message_delta","delta":{"stop_reason":"end_turn",` +
          `"stop_sequence":null},"usage":{"input_tokens":${u.input},` +
          `"cache_creation_input_tokens":0,"cache_read_input_tokens":${u.cacheRead},` +
          `"output_tokens":${u.output}}}\n\n` +
          `event: message_stop\ndata: {"type":"message_stop"}\n\n`,
      ),
  };
}

function openaiStream(model: string, includeUsage: boolean): StreamShape {
  const head =
    `data: {"id":"chatcmpl-bench","object":"chat.completion.chunk","created":1700000000,"model":"${model}",`;
  const deltas = new Map<number, Uint8Array>();
  return {
    start: () =>
      enc.encode(
        `${head}"choices":[{"index":0,"delta":{"role":"assistant","content":""},` +
          `"finish_reason":null}]}\n\n`,
      ),
    delta: (i, stamp) => {
      const build = (s: string) =>
        enc.encode(
          `${head}"choices":[{"index":0,"delta":{"content":"${
            word(i)
          }"},"finish_reason":null}]${s}}\n\n`,
        );
      if (stamp !== undefined) return build(`,"bench_t":${stamp.toFixed(3)}`);
      let d = deltas.get(i);
      if (!d) deltas.set(i, d = build(""));
      return d;
    },
    end: (u) =>
      enc.encode(
        `${head}"choices":[{"index":0,"delta":{},"finish_reason":"stop"}]}\n\n` +
          (includeUsage ? `${head}"choices":[],"usage":${openaiUsage(u)}}\n\n` : "") +
          "data: [DONE]\n\n",
      ),
  };
}

/** Wall-clock milliseconds with sub-millisecond precision (comparable across processes). */
export function wallMs(): number {
  return performance.timeOrigin + performance.now();
}

const sleep = (ms: number) => new Promise<void>((r) => setTimeout(r, ms));

/** The upstream server's state and handler. */
class FakeUpstream {
  readonly stats: UpstreamStats = zeroStats();
  #seq = 0;
  #hold = false;
  #releasers = new Set<() => void>();
  #finishSlow!: Promise<void>;
  #finishSlowNow!: () => void;
  #secretA: string;
  #secretO: string;

  constructor(secretA: string, secretO: string) {
    this.#secretA = secretA;
    this.#secretO = secretO;
    this.#armSlow();
  }

  #armSlow(): void {
    this.#finishSlow = new Promise((r) => this.#finishSlowNow = r);
  }

  #tally(u: Usage, tag: TagStats | undefined): void {
    for (const c of tag ? [this.stats, tag] : [this.stats]) {
      c.tokens.input += u.input;
      c.tokens.cacheRead += u.cacheRead;
      c.tokens.output += u.output;
      c.completed++;
    }
  }

  handle = async (req: Request): Promise<Response> => {
    const url = req.url;
    const path = url.slice(url.indexOf("/", 8));
    const format: Format | undefined = path.startsWith("/anthropic/v1/messages")
      ? "anthropic"
      : path.startsWith("/openai/v1/chat/completions")
      ? "openai"
      : undefined;
    if (!format) return this.#control(req, path);
    const s = this.stats;
    const tagName = req.headers.get("x-bench-tag");
    const tag = tagName ? (s.tags[tagName] ??= zeroTag()) : undefined;
    s.started++;
    if (tag) tag.started++;
    s.inflight++;
    let open = true;
    const finish = () => {
      if (open) {
        open = false;
        s.inflight--;
      }
    };
    const ok = format === "anthropic"
      ? req.headers.get("x-api-key") === this.#secretA
      : req.headers.get("authorization") === `Bearer ${this.#secretO}`;
    if (!ok) {
      s.unauthorized++;
      finish();
      return Response.json({ error: { message: "bad provider credential" } }, { status: 401 });
    }
    let body: Uint8Array;
    try {
      body = await req.bytes();
    } catch {
      s.aborted++;
      finish();
      return new Response(null, { status: 499 });
    }
    s.bytesIn += body.length;
    const p = parse(body);
    if (!p) {
      s.badRequests++;
      finish();
      return Response.json({ error: { message: "not a benchmark request" } }, { status: 400 });
    }
    if (this.#hold) {
      s.held++;
      s.heldNow++;
      const released = await new Promise<boolean>((resolve) => {
        if (req.signal.aborted) return resolve(false);
        const release = () => resolve(true);
        this.#releasers.add(release);
        req.signal.addEventListener("abort", () => {
          this.#releasers.delete(release);
          resolve(false);
        }, { once: true });
      });
      s.heldNow--;
      s[released ? "heldReleased" : "heldAborted"]++;
      finish();
      if (!released) return new Response(null, { status: 499 });
      return releasedResponse(format, p);
    }
    const u = usageFor(p, ++this.#seq, body.length);
    if (p.mode === "json" || p.mode === "large") {
      const text = format === "anthropic" ? anthropicJson(p.model, u) : openaiJson(p.model, u);
      this.#tally(u, tag);
      finish();
      return new Response(text, { headers: { "content-type": "application/json" } });
    }
    const shape = format === "anthropic"
      ? anthropicStream(p.model)
      : openaiStream(p.model, p.includeUsage);
    return new Response(this.#stream(p.mode, shape, u, tag, finish), {
      headers: { "content-type": "text/event-stream", "cache-control": "no-cache" },
    });
  };

  #stream(
    mode: Mode,
    shape: StreamShape,
    u: Usage,
    tag: TagStats | undefined,
    finish: () => void,
  ): ReadableStream<Uint8Array> {
    const s = this.stats;
    let i = 0;
    let closed = false;
    const t0 = performance.now();
    const deltas = mode === "sse" ? u.output : PACED_DELTAS;
    if (mode === "slow") s.slowOpen++;
    const close = (c: ReadableStreamDefaultController<Uint8Array>, last: Uint8Array) => {
      c.enqueue(last);
      c.close();
      closed = true;
      if (mode === "slow") s.slowOpen--;
      this.#tally(u, tag);
      finish();
    };
    return new ReadableStream<Uint8Array>({
      start: (c) => {
        c.enqueue(shape.start(u));
      },
      pull: async (c) => {
        if (closed) return;
        if (mode === "sse") {
          if (i < deltas) c.enqueue(shape.delta(i++));
          else close(c, shape.end(u));
          return;
        }
        if (mode === "paced") {
          const due = t0 + (i + 1) * PACED_GAP_MS - performance.now();
          if (due > 0) await sleep(due);
          if (closed) return;
          const d = shape.delta(i++, wallMs());
          if (i < deltas) c.enqueue(d);
          else close(c, concat(d, shape.end(u)));
          return;
        }
        // slow: one delta a second until told to finish.
        let timer: ReturnType<typeof setTimeout> | undefined;
        const finishing = await Promise.race([
          new Promise<false>((r) => timer = setTimeout(() => r(false), SLOW_GAP_MS)),
          this.#finishSlow.then(() => true),
        ]);
        clearTimeout(timer);
        if (closed) return;
        if (finishing || performance.now() - t0 > SLOW_MAX_MS) {
          u.output = i;
          close(c, shape.end(u));
        } else c.enqueue(shape.delta(i++));
      },
      cancel: () => {
        if (closed) return;
        closed = true;
        if (mode === "slow") s.slowOpen--;
        s.cut++;
        if (tag) tag.cut++;
        finish();
      },
    });
  }

  #control(req: Request, path: string): Response {
    if (req.method === "GET" && path === "/stats") return Response.json(this.stats);
    if (req.method !== "POST") return new Response("not found", { status: 404 });
    switch (path) {
      case "/stats/reset": {
        // In place: requests in flight keep updating the same object.
        const { inflight, heldNow, slowOpen } = this.stats;
        Object.assign(this.stats, zeroStats(), { inflight, heldNow, slowOpen });
        break;
      }
      case "/stats/hold":
        this.#hold = true;
        break;
      case "/stats/release":
        this.#hold = false;
        for (const r of this.#releasers) r();
        this.#releasers.clear();
        break;
      case "/stats/finish-slow": {
        const now = this.#finishSlowNow;
        this.#armSlow();
        now();
        break;
      }
      default:
        return new Response("not found", { status: 404 });
    }
    return Response.json(this.stats);
  }
}

const NO_USAGE: Usage = { input: 0, cacheRead: 0, output: 0 };

/**
 * The answer to a parked request released after its run: complete, in one
 * piece, and carrying zero tokens, so that whether or not a proxy still
 * reads it, it changes no usage total.
 */
function releasedResponse(format: Format, p: Parsed): Response {
  if (p.mode === "json" || p.mode === "large") {
    const text = format === "anthropic"
      ? anthropicJson(p.model, NO_USAGE)
      : openaiJson(p.model, NO_USAGE);
    return new Response(text, { headers: { "content-type": "application/json" } });
  }
  const shape = format === "anthropic"
    ? anthropicStream(p.model)
    : openaiStream(p.model, p.includeUsage);
  return new Response(concat(shape.start(NO_USAGE), shape.end(NO_USAGE)), {
    headers: { "content-type": "text/event-stream" },
  });
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array<ArrayBuffer> {
  const out = new Uint8Array(a.length + b.length);
  out.set(a);
  out.set(b, a.length);
  return out;
}

if (import.meta.main) {
  const up = new FakeUpstream(
    Deno.env.get("BENCH_SECRET_A") ?? "bench-upstream-secret-a",
    Deno.env.get("BENCH_SECRET_O") ?? "bench-upstream-secret-o",
  );
  Deno.serve({
    port: Number(Deno.env.get("BENCH_PORT") ?? 0),
    hostname: "127.0.0.1",
    onListen: (a) => console.log(JSON.stringify({ port: a.port })),
  }, up.handle);
}
