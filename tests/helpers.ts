/**
 * Test helpers: fake upstreams on 127.0.0.1 port 0, a gateway on port 0
 * with in-memory KV, and small HTTP conveniences. No test touches the
 * internet.
 */
import { type Config, loadConfig } from "../lib/config/env.ts";
import { parseRegistry, type Registry } from "../lib/config/registry.ts";
import { type Gateway, startGateway } from "../lib/ops/server.ts";
import type { Clock } from "../lib/ops/clock.ts";

/** The admin secret every test gateway uses. */
export const ADMIN_KEY = "test-admin-key-0123456789";

/** One request as the fake upstream saw it. */
export interface Seen {
  method: string;
  path: string;
  search: string;
  headers: Headers;
  body: Uint8Array;
  /** Aborts when the gateway drops the connection. */
  signal: AbortSignal;
}

/** A fake provider server. */
export interface FakeUpstream {
  url: string;
  seen: Seen[];
  close(): Promise<void>;
}

/** Starts a fake upstream; `handler` answers each request after its body is read. */
export function fakeUpstream(
  handler: (seen: Seen, req: Request) => Response | Promise<Response>,
): FakeUpstream {
  const seen: Seen[] = [];
  const server = Deno.serve({ port: 0, hostname: "127.0.0.1", onListen: () => {} }, async (req) => {
    const url = new URL(req.url);
    const s: Seen = {
      method: req.method,
      path: url.pathname,
      search: url.search,
      headers: req.headers,
      body: new Uint8Array(await req.arrayBuffer()),
      signal: req.signal,
    };
    seen.push(s);
    return await handler(s, req);
  });
  return {
    url: `http://127.0.0.1:${server.addr.port}`,
    seen,
    close: async () => {
      await server.shutdown();
    },
  };
}

/** Test configuration: port 0 on 127.0.0.1, in-memory KV, admin on, no coalescing delay. */
export function testConfig(over: Partial<Config> = {}): Config {
  return {
    ...loadConfig({}),
    port: 0,
    host: "127.0.0.1",
    kvPath: ":memory:",
    adminKey: ADMIN_KEY,
    usageFlushMs: 0,
    ...over,
  };
}

/** Provider secrets the test registry's providers read. */
export const TEST_ENV: Record<string, string> = {
  ANTHROPIC_TEST_KEY: "upstream-anthropic-secret",
  OPENAI_TEST_KEY: "upstream-openai-secret",
  DEEPSEEK_TEST_KEY: "upstream-deepseek-secret",
};

/**
 * A registry with an Anthropic provider (`claude*`), an OpenAI provider
 * (`gpt*`) and a DeepSeek provider (`deepseek*`), all on `upstream`.
 */
export function testRegistry(upstream: string, extra: Record<string, unknown> = {}): Registry {
  return parseRegistry({
    providers: {
      anthropic: {
        format: "anthropic",
        base_url: `${upstream}/anthropic/v1`,
        api_key_env: "ANTHROPIC_TEST_KEY",
        auth_header: "x-api-key",
        chat_endpoint: "/messages",
      },
      openai: {
        format: "openai",
        base_url: `${upstream}/openai/v1`,
        api_key_env: "OPENAI_TEST_KEY",
        auth_header: "authorization_bearer",
        chat_endpoint: "/chat/completions",
      },
      deepseek: {
        format: "openai",
        base_url: `${upstream}/deepseek`,
        api_key_env: "DEEPSEEK_TEST_KEY",
        model_prefixes: ["deepseek"],
      },
    },
    routing: { claude: ["anthropic"], gpt: ["openai"] },
    known_models: [
      { id: "claude-test", provider: "anthropic", owned_by: "anthropic" },
      { id: "gpt-test", provider: "openai", owned_by: "openai" },
      { id: "deepseek-chat", provider: "deepseek", owned_by: "deepseek" },
    ],
    ...extra,
  });
}

/** A running test gateway with one client key. */
export interface TestGateway {
  gw: Gateway;
  url: string;
  /** A valid client secret. */
  secret: string;
  keyId: string;
  logs: string[];
  close(): Promise<void>;
}

/** Options for {@link startTestGateway}. */
export interface TestOptions {
  registry: Registry;
  config?: Partial<Config>;
  env?: Record<string, string>;
  clock?: Clock;
  kv?: Deno.Kv;
}

/** Starts a gateway on port 0 with in-memory KV and creates a client key. */
export async function startTestGateway(o: TestOptions): Promise<TestGateway> {
  const logs: string[] = [];
  const env = { ...TEST_ENV, ...o.env };
  const kv = o.kv ?? await Deno.openKv(":memory:");
  const gw = await startGateway({
    config: testConfig(o.config),
    registry: o.registry,
    env: (n) => env[n],
    kv,
    clock: o.clock,
    logSink: (l) => logs.push(l),
  });
  const { record, secret } = await gw.ctx.keys.create({ name: "test-key" });
  return {
    gw,
    url: gw.url,
    secret,
    keyId: record.id,
    logs,
    close: async () => {
      await gw.shutdown();
      if (!o.kv) kv.close();
    },
  };
}

/** POSTs JSON (or raw text) with a client key. */
export function post(
  url: string,
  body: unknown,
  headers: Record<string, string> = {},
): Promise<Response> {
  return fetch(url, {
    method: "POST",
    headers: { "content-type": "application/json", ...headers },
    body: typeof body === "string" ? body : JSON.stringify(body),
  });
}

/** Calls the admin API. */
export async function admin(
  base: string,
  method: string,
  path: string,
  body?: unknown,
): Promise<{ status: number; json: Record<string, unknown> }> {
  const res = await fetch(base + path, {
    method,
    headers: { "x-api-key": ADMIN_KEY, "content-type": "application/json" },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  return { status: res.status, json: await res.json() };
}

/** An SSE response from event strings (each a full `event:`/`data:` block without the blank line). */
export function sseResponse(events: string[], headers: Record<string, string> = {}): Response {
  return new Response(events.map((e) => e + "\n\n").join(""), {
    headers: { "content-type": "text/event-stream", ...headers },
  });
}

/** A response streaming the given chunks, waiting `delayMs` between them. */
export function chunkedResponse(
  chunks: (string | Uint8Array)[],
  delayMs = 0,
  headers: Record<string, string> = { "content-type": "text/event-stream" },
): Response {
  const enc = new TextEncoder();
  let i = 0;
  const body = new ReadableStream<Uint8Array>({
    async pull(c) {
      if (i >= chunks.length) return c.close();
      if (delayMs && i > 0) await new Promise((r) => setTimeout(r, delayMs));
      const ch = chunks[i++];
      c.enqueue(typeof ch === "string" ? enc.encode(ch) : ch);
    },
  });
  return new Response(body, { headers });
}
