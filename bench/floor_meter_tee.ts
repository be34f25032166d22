/**
 * A metering floor, "tee": the least a Deno proxy must do to meter, written
 * the obvious way, as a bound for the gateway's own proxy path. Beside the
 * bare floor (floor.ts) it routes like the gateway (`/v1/messages` to the
 * upstream's Anthropic path, `/v1/chat/completions` to its OpenAI path),
 * reads the request body whole and `JSON.parse`s it for `model`, forwards
 * it byte for byte with the provider's credential in place of the client's,
 * reads JSON answers whole and parses them for `usage`, and `tee()`s event
 * streams: the client gets one branch untouched, the other is decoded
 * (`TextDecoderStream`), split into events, and every event whose data
 * mentions "usage" is parsed. No KV, no logging: totals stay in memory and
 * `GET /stats` shows them. Env as floor.ts; prints `{"port":N}`.
 */

/** What the floor metered, by model (at most 100 models; the rest under "other"). */
type Totals = Map<string, { responses: number; withUsage: number; output: number }>;

/** Counts one finished response and its (last) usage object. */
function meter(totals: Totals, model: string, usage: Record<string, number> | undefined): void {
  const key = totals.has(model) || totals.size < 100 ? model : "other";
  let t = totals.get(key);
  if (!t) totals.set(key, t = { responses: 0, withUsage: 0, output: 0 });
  t.responses++;
  if (usage) {
    t.withUsage++;
    t.output += usage.output_tokens ?? usage.completion_tokens ?? 0;
  }
}

async function meterStream(
  totals: Totals,
  events: ReadableStream<Uint8Array>,
  model: string,
): Promise<void> {
  let buf = "";
  let last: Record<string, number> | undefined;
  try {
    for await (const text of events.pipeThrough(new TextDecoderStream())) {
      buf += text;
      let cut;
      while ((cut = buf.indexOf("\n\n")) >= 0) {
        const event = buf.slice(0, cut);
        buf = buf.slice(cut + 2);
        const at = event.indexOf("data:");
        if (at < 0 || !event.includes('"usage"', at)) continue;
        const j = JSON.parse(event.slice(at + 5));
        last = j.usage ?? j.message?.usage ?? last;
      }
    }
    meter(totals, model, last);
  } catch {
    // the client left: the stream was cut
  }
}

if (import.meta.main) {
  // Exit normally on SIGTERM, so that `--cpu-prof` (bench --profile) writes its profile.
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  const upstream = Deno.env.get("BENCH_UPSTREAM") ?? "http://127.0.0.1:9000";
  const secretA = Deno.env.get("BENCH_SECRET_A") ?? "bench-upstream-secret-a";
  const bearerO = `Bearer ${Deno.env.get("BENCH_SECRET_O") ?? "bench-upstream-secret-o"}`;
  const dec = new TextDecoder();
  const totals: Totals = new Map();
  Deno.serve({
    port: Number(Deno.env.get("BENCH_PORT") ?? 0),
    hostname: "127.0.0.1",
    onListen: (a) => console.log(JSON.stringify({ port: a.port })),
  }, async (req) => {
    const path = req.url.slice(req.url.indexOf("/", 8));
    if (path === "/stats") return Response.json(Object.fromEntries(totals));
    const anthropic = path === "/v1/messages";
    if (!anthropic && path !== "/v1/chat/completions") return new Response(null, { status: 404 });
    try {
      const body = await req.bytes();
      const model = String(JSON.parse(dec.decode(body)).model);
      const headers = new Headers(req.headers);
      if (anthropic) headers.set("x-api-key", secretA);
      else headers.set("authorization", bearerO);
      const res = await fetch(`${upstream}/${anthropic ? "anthropic" : "openai"}${path}`, {
        method: "POST",
        headers,
        body,
        signal: req.signal,
      });
      if (!res.body || !res.headers.get("content-type")?.startsWith("text/event-stream")) {
        const bytes = await res.bytes();
        if (res.ok) meter(totals, model, JSON.parse(dec.decode(bytes)).usage);
        return new Response(bytes, { status: res.status, headers: res.headers });
      }
      const [client, metered] = res.body.tee();
      meterStream(totals, metered, model);
      return new Response(client, { status: res.status, headers: res.headers });
    } catch {
      return new Response(null, { status: req.signal.aborted ? 499 : 502 });
    }
  });
}
