/**
 * Checks every target before a phase measures it, so that a misrouted,
 * failing or buffering target stops the benchmark instead of producing
 * numbers: through each target, one JSON request and one paced stream of
 * each format (Anthropic, OpenAI). A JSON answer must be the upstream's
 * (its text and a usage object); a paced stream must deliver every delta
 * and its final event, spread over its life (first to last chunk ≥ 1 s of
 * the upstream's 1.3 s; a proxy that buffers delivers them at once). The
 * metering floors must then report exactly what they metered: 4 responses,
 * 3 with usage (both JSON answers and the Anthropic stream; the OpenAI
 * stream has none, since the benchmark's OpenAI bodies, which they forward
 * unchanged, do not ask for it).
 */
import { type Bench, urlOf } from "./measure.ts";
import { PACED_DELTAS, PACED_GAP_MS } from "./upstream.ts";
import { requestsFor, type RequestSpec, type TargetName, WORKLOADS } from "./workloads.ts";

const dec = new TextDecoder();

async function checkJson(url: string, spec: RequestSpec): Promise<string | undefined> {
  const res = await fetch(url + spec.path, {
    method: "POST",
    headers: spec.headers,
    body: spec.body,
    signal: AbortSignal.timeout(10_000),
  });
  const text = await res.text();
  if (!res.ok) return `HTTP ${res.status}: ${text.slice(0, 200)}`;
  const j = JSON.parse(text);
  const out = j.usage?.output_tokens ?? j.usage?.completion_tokens;
  const answer = j.content?.[0]?.text ?? j.choices?.[0]?.message?.content ?? "";
  if (typeof out !== "number") return `no usage in the answer: ${text.slice(0, 200)}`;
  if (!answer.startsWith("The quick brown fox")) {
    return `not the upstream's answer: ${text.slice(0, 200)}`;
  }
}

async function checkStream(url: string, spec: RequestSpec): Promise<string | undefined> {
  const res = await fetch(url + spec.path, {
    method: "POST",
    headers: spec.headers,
    body: spec.body,
    signal: AbortSignal.timeout(20_000),
  });
  if (!res.ok || !res.body) return `HTTP ${res.status}: ${(await res.text()).slice(0, 200)}`;
  let text = "", first = 0, last = 0;
  for await (const chunk of res.body) {
    last = performance.now();
    first ||= last;
    text += dec.decode(chunk, { stream: true });
  }
  const lastDelta = `tok${String(PACED_DELTAS - 1).padStart(3, "0")}`;
  if (!text.includes(lastDelta)) return `the stream lacks its last delta (${lastDelta})`;
  if (!text.includes("message_stop") && !text.includes("[DONE]")) {
    return "the stream lacks its final event";
  }
  const spread = last - first;
  if (spread < (PACED_DELTAS * PACED_GAP_MS) * 0.75) {
    return `the stream arrived within ${spread.toFixed(0)} ms: buffered, not streamed`;
  }
}

/** Checks each of `targets`; returns what is wrong (empty when all are fine). */
export async function preflight(b: Bench, targets: TargetName[]): Promise<string[]> {
  const json = WORKLOADS.find((w) => w.name === "json")!;
  const paced = WORKLOADS.find((w) => w.name === "paced")!;
  const problems: string[] = [];
  await Promise.all(targets.map(async (t) => {
    const url = urlOf(b, t);
    const formats = ["Anthropic", "OpenAI"];
    const failed = (e: unknown) => (e as Error).message;
    const checks = [
      ...requestsFor(json, t, b.creds).map((s, i) =>
        [`${formats[i]} JSON`, checkJson(url, s).catch(failed)] as const
      ),
      ...requestsFor(paced, t, b.creds).map((s, i) =>
        [`${formats[i]} SSE`, checkStream(url, s).catch(failed)] as const
      ),
    ];
    for (const [what, check] of checks) {
      const p = await check;
      if (p) problems.push(`${t}, ${what}: ${p}`);
    }
    if (t === "meter-tee" || t === "meter-inline") {
      const stats = await (await fetch(`${url}/stats`)).json() as Record<
        string,
        { responses: number; withUsage: number }
      >;
      const sum = (k: "responses" | "withUsage") =>
        Object.values(stats).reduce((n, m) => n + m[k], 0);
      if (sum("responses") !== 4 || sum("withUsage") !== 3) {
        problems.push(`${t} metered ${JSON.stringify(stats)}, not 4 responses with 3 usages`);
      }
    }
  }));
  return problems;
}
