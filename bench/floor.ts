/**
 * The "floor": the thinnest Deno pass-through, run as its own process. It is
 * what proxying costs in Deno itself, and what the gateway is measured
 * against: `Deno.serve`, one `fetch` to the same path on the upstream with
 * the request body streamed through, one auth header swapped for the
 * provider's (`x-api-key` when the client sent one, else `authorization`),
 * and the upstream response returned as is. No routing, metering, KV or
 * logging. The client's abort signal is passed on, so a client that leaves
 * cancels the upstream request, as the gateway does.
 *
 * Env: `BENCH_UPSTREAM` (e.g. `http://127.0.0.1:9000`), `BENCH_PORT`
 * (default 0), `BENCH_SECRET_A`, `BENCH_SECRET_O`. Prints `{"port":N}` once
 * listening.
 */

if (import.meta.main) {
  // Exit normally on SIGTERM, so that `--cpu-prof` (bench --profile) writes its profile.
  Deno.addSignalListener("SIGTERM", () => Deno.exit(0));
  const upstream = Deno.env.get("BENCH_UPSTREAM") ?? "http://127.0.0.1:9000";
  const secretA = Deno.env.get("BENCH_SECRET_A") ?? "bench-upstream-secret-a";
  const bearerO = `Bearer ${Deno.env.get("BENCH_SECRET_O") ?? "bench-upstream-secret-o"}`;
  Deno.serve({
    port: Number(Deno.env.get("BENCH_PORT") ?? 0),
    hostname: "127.0.0.1",
    onListen: (a) => console.log(JSON.stringify({ port: a.port })),
  }, async (req) => {
    const headers = new Headers(req.headers);
    if (headers.has("x-api-key")) headers.set("x-api-key", secretA);
    else headers.set("authorization", bearerO);
    const url = req.url;
    try {
      return await fetch(upstream + url.slice(url.indexOf("/", 8)), {
        method: req.method,
        headers,
        body: req.body,
        signal: req.signal,
      });
    } catch {
      return new Response(null, { status: 502 });
    }
  });
}
