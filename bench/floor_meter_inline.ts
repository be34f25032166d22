/**
 * A metering floor, "inline": the same as floor_meter_tee.ts (routing like
 * the gateway, request body parsed for `model`, forwarded byte for byte with
 * the provider's credential, JSON answers parsed for `usage`) except for
 * event streams, which are metered by the one reader that feeds the client
 * instead of a `tee()`: each chunk is passed on first, then searched for the
 * bytes `"usage"`, and only a chunk that holds them is decoded, split into
 * events and parsed. Bytes after a chunk's last event boundary are carried
 * to the next chunk (at most 64 KiB), so an event split across chunks is
 * still metered. No KV, no logging: totals stay in memory and `GET /stats`
 * shows them. Env as floor.ts; prints `{"port":N}`.
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

const USAGE = new TextEncoder().encode('"usage"');

/** Whether `b[0, end)` holds the bytes `"usage"` (native `indexOf` for the quote, then a compare). */
function hasUsage(b: Uint8Array, end: number): boolean {
  for (let i = b.indexOf(0x22); i >= 0 && i + USAGE.length <= end; i = b.indexOf(0x22, i + 1)) {
    let j = 1;
    while (j < USAGE.length && b[i + j] === USAGE[j]) j++;
    if (j === USAGE.length) return true;
  }
  return false;
}

/** Passes chunks on and meters the events that hold usage. */
function meterInline(totals: Totals, model: string): TransformStream<Uint8Array, Uint8Array> {
  const dec = new TextDecoder();
  let carry: Uint8Array | undefined;
  let last: Record<string, number> | undefined;
  return new TransformStream({
    transform(chunk, c) {
      c.enqueue(chunk);
      let b = chunk;
      if (carry) {
        b = new Uint8Array(carry.length + chunk.length);
        b.set(carry);
        b.set(chunk, carry.length);
      }
      // The end of the last whole event (normally the chunk's end: one step).
      let end = b.length;
      while (end >= 2 && !(b[end - 1] === 0x0a && b[end - 2] === 0x0a)) end--;
      if (end < 2) end = 0;
      carry = end < b.length && b.length - end <= 65536 ? b.slice(end) : undefined;
      if (!hasUsage(b, end)) return;
      for (const event of dec.decode(b.subarray(0, end)).split("\n\n")) {
        const at = event.indexOf("data:");
        if (at < 0 || !event.includes('"usage"', at)) continue;
        try {
          const j = JSON.parse(event.slice(at + 5));
          last = j.usage ?? j.message?.usage ?? last;
        } catch {
          // not JSON: nothing to meter, and the client's stream goes on
        }
      }
    },
    flush: () => meter(totals, model, last),
  });
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
      const client = res.body.pipeThrough(meterInline(totals, model));
      return new Response(client, { status: res.status, headers: res.headers });
    } catch {
      return new Response(null, { status: req.signal.aborted ? 499 : 502 });
    }
  });
}
