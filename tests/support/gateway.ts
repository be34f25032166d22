/**
 * The gateway under test, in process: on 127.0.0.1 port 0 with in-memory KV,
 * a test registry whose providers all point at one fake upstream, one client
 * key, a clock the test moves, and small HTTP conveniences.
 */
import { type Config, loadConfig } from "../../lib/config/env.ts";
import { parseRegistry, type Registry } from "../../lib/config/registry.ts";
import { type Gateway, startGateway } from "../../lib/ops/server.ts";
import type { Clock } from "../../lib/ops/clock.ts";
import { type FakeUpstream, fakeUpstream, type Seen } from "./upstream.ts";

/** The admin secret every test gateway uses. */
export const ADMIN_KEY = "test-admin-key-0123456789";

/**
 * Test configuration: port 0 on 127.0.0.1, in-memory KV, no spill file
 * (never a developer's ./data), admin on, no coalescing delay.
 */
export function testConfig(over: Partial<Config> = {}): Config {
  return {
    ...loadConfig({}),
    port: 0,
    host: "127.0.0.1",
    kvPath: ":memory:",
    spillPath: undefined,
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

/** A clock the test sets by hand (ISO instants). */
export function fakeClock(iso: string): Clock & { set(iso: string): void } {
  let t = Date.parse(iso);
  return { now: () => t, set: (s) => t = Date.parse(s) };
}

/** A fake upstream with a test gateway in front of it. */
export interface Stack {
  up: FakeUpstream;
  t: TestGateway;
  /** Stops the gateway, then the upstream. */
  close(): Promise<void>;
}

/**
 * Starts a fake upstream answering with `handler` and a gateway routing to
 * it (by default through {@link testRegistry}).
 */
export async function startStack(
  handler: (seen: Seen, req: Request) => Response | Promise<Response>,
  o: Omit<TestOptions, "registry"> & { registry?: (upstream: string) => Registry } = {},
): Promise<Stack> {
  const up = fakeUpstream(handler);
  try {
    const t = await startTestGateway({ ...o, registry: (o.registry ?? testRegistry)(up.url) });
    return {
      up,
      t,
      close: async () => {
        await t.close();
        await up.close();
      },
    };
  } catch (e) {
    await up.close();
    throw e;
  }
}
