/**
 * What the benchmark sends: the four workloads (instant JSON, unpaced SSE,
 * paced SSE, 500 KB request bodies), each as one Anthropic and one OpenAI
 * request that the load generator alternates, and the targets (direct to
 * the fake upstream, the three floors, Portkey, the gateway) with the
 * paths, credentials and headers each expects.
 */
import { portkeyHeaders } from "./portkey.ts";
import type { Mode } from "./upstream.ts";

/** A workload's name (`slow` is only used by the open-streams test). */
export type WorkloadName = "json" | "sse" | "paced" | "large" | "slow";

/** One workload. */
export interface Workload {
  name: WorkloadName;
  /** Shown in tables. */
  label: string;
  /** The upstream behaviour it asks for (via the model name). */
  mode: Mode;
  stream: boolean;
  /** Longest a response takes upstream; the end-of-run drain allows for it. */
  responseMs: number;
}

/** Every workload, in table order. */
export const WORKLOADS: Workload[] = [
  { name: "json", label: "JSON (1 KB)", mode: "json", stream: false, responseMs: 0 },
  { name: "sse", label: "SSE unpaced", mode: "sse", stream: true, responseMs: 0 },
  { name: "paced", label: "SSE paced 64×20 ms", mode: "paced", stream: true, responseMs: 1300 },
  { name: "large", label: "500 KB body", mode: "large", stream: false, responseMs: 0 },
];

/** Long-lived streams (a delta a second until the upstream is told to finish them). */
export const SLOW: Workload = {
  name: "slow",
  label: "SSE slow (open streams)",
  mode: "slow",
  stream: true,
  responseMs: 0,
};

/**
 * Where load goes: straight to the fake upstream; the bare floor
 * (floor.ts); the metering floors (floor_meter_tee.ts,
 * floor_meter_inline.ts); Portkey's gateway (portkey.ts); our gateway; our
 * gateway with limits set on its client key (`gw-limits`, see
 * `BENCH_KEY_LIMITS` in gateway.ts).
 */
export type TargetName =
  | "direct"
  | "bare"
  | "meter-tee"
  | "meter-inline"
  | "portkey"
  | "gateway"
  | "gw-limits";

/** Every target, in the order each round visits them. */
export const TARGETS: TargetName[] = [
  "direct",
  "bare",
  "meter-tee",
  "meter-inline",
  "portkey",
  "gateway",
  "gw-limits",
];

/** The targets that are this gateway (without and with limits on the key). */
export type GatewayName = "gateway" | "gw-limits";

/** Both gateway targets. */
export const GATEWAYS: GatewayName[] = ["gateway", "gw-limits"];

/** True for the targets that are this gateway. */
export function isGateway(t: TargetName): t is GatewayName {
  return t === "gateway" || t === "gw-limits";
}

/** The targets that are a process of their own between the load and the upstream. */
export type ProxyName = Exclude<TargetName, "direct">;

/** One request as the load generator sends it. */
export interface RequestSpec {
  path: string;
  /** Every header besides the ones HTTP itself needs (host, content-length). */
  headers: Record<string, string>;
  body: string;
}

/** Credentials of each hop (and where the upstream is, which Portkey is told per request). */
export interface Credentials {
  /** The fake upstream's base URL. */
  upstreamUrl: string;
  /** What the upstream requires on its Anthropic path. */
  upstreamA: string;
  /** What the upstream requires on its OpenAI path (bearer token). */
  upstreamO: string;
  /** The gateway client key (no limits). */
  gatewayKey: string;
  /** The client key of the `gw-limits` gateway (limits set on it). */
  limitsKey: string;
}

const USER_TEXT = "Summarise the benchmark results in one short paragraph, please.";

/**
 * About 500 KB of conversation, as a coding agent sends after a while:
 * a long system prompt, tool results with file contents, many turns.
 */
function bigMessages(format: "anthropic" | "openai", targetBytes: number): unknown[] {
  const line = "export function example(value: number): number { return value * 2 + 1; }\n";
  const file = line.repeat(64); // ~4.7 KB
  const out: unknown[] = [];
  let size = 0;
  for (let i = 0; size < targetBytes; i++) {
    const user = `Turn ${i}: here is src/module_${i}.ts:\n${file}`;
    const assistant = `I read module ${i}; it doubles and increments its input. ${
      "ok ".repeat(60)
    }`;
    if (format === "anthropic") {
      out.push({ role: "user", content: [{ type: "text", text: user }] });
      out.push({ role: "assistant", content: [{ type: "text", text: assistant }] });
    } else {
      out.push({ role: "user", content: user });
      out.push({ role: "assistant", content: assistant });
    }
    size += user.length + assistant.length + 120;
  }
  out.push({ role: "user", content: USER_TEXT });
  return out;
}

/** The request body of a workload in one format; `model`, `stream` come first (the upstream reads only the head). */
export function requestBody(w: Workload, format: "anthropic" | "openai"): string {
  const model = `${format === "anthropic" ? "claude" : "gpt"}-bench-${w.mode}`;
  const messages = w.mode === "large"
    ? bigMessages(format, 500 * 1024)
    : [{ role: "user", content: USER_TEXT }];
  if (format === "anthropic") {
    return JSON.stringify({
      model,
      stream: w.stream,
      max_tokens: 4096,
      ...(w.mode === "large" ? { system: "You are a careful coding assistant. ".repeat(200) } : {}),
      messages,
    });
  }
  // No stream_options: as the OpenAI SDKs send by default, so the gateway
  // adds include_usage and removes the usage-only event, its real work.
  return JSON.stringify({ model, stream: w.stream, max_tokens: 4096, messages });
}

/** The two requests (Anthropic, OpenAI) of a workload for one target. */
export function requestsFor(w: Workload, target: TargetName, c: Credentials): RequestSpec[] {
  const spec = (format: "anthropic" | "openai", key: string): RequestSpec => {
    // The bare floor forwards to the same path; the others route like the gateway.
    const path = format === "anthropic" ? "/v1/messages" : "/v1/chat/completions";
    return {
      path: target === "direct" || target === "bare" ? `/${format}${path}` : path,
      headers: {
        "content-type": "application/json",
        ...(format === "anthropic"
          ? { "x-api-key": key, "anthropic-version": "2023-06-01" }
          : { "authorization": `Bearer ${key}` }),
        ...(target === "portkey" ? portkeyHeaders(c.upstreamUrl, format) : {}),
      },
      body: requestBody(w, format),
    };
  };
  // Direct and Portkey carry the provider's credential; the floors swap
  // whatever they are sent for it; the gateway wants its own client key.
  const keyA = target === "gateway"
    ? c.gatewayKey
    : target === "gw-limits"
    ? c.limitsKey
    : target === "direct" || target === "portkey"
    ? c.upstreamA
    : "floor-client-key";
  const keyO = target === "gateway"
    ? c.gatewayKey
    : target === "gw-limits"
    ? c.limitsKey
    : target === "direct" || target === "portkey"
    ? c.upstreamO
    : "floor-client-key";
  return [spec("anthropic", keyA), spec("openai", keyO)];
}
