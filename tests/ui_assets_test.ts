/**
 * The dashboard as the gateway serves it, without a browser: the page and
 * its assets under /admin/ui with a strict Content-Security-Policy and no
 * caching, an HTML page with no inline script or style, admin API answers
 * marked no-store, the embedded bundle up to date with ui/, and the page's
 * npm packages kept out of what the server downloads.
 */
import { assert, assertEquals, assertIncludes } from "./support/assert.ts";
import { admin, ADMIN_KEY, startTestGateway, testRegistry } from "./support/gateway.ts";
import { fakeUpstream } from "./support/upstream.ts";
import { UI_ASSETS } from "../lib/admin/ui_assets.ts";

const ROOT = new URL("..", import.meta.url).pathname;

Deno.test("GET /admin/ui serves the page and its assets with CSP, no-store, nosniff, no framing", async () => {
  const up = fakeUpstream(() => Response.json({}));
  const t = await startTestGateway({ registry: testRegistry(up.url) });
  try {
    for (
      const [path, type, name] of [
        ["/admin/ui", "text/html", "index.html"],
        ["/admin/ui/", "text/html", "index.html"],
        ["/admin/ui/app.js", "text/javascript", "app.js"],
        ["/admin/ui/app.css", "text/css", "app.css"],
        ["/admin/ui/icon.svg", "image/svg+xml", "icon.svg"],
      ]
    ) {
      // No admin key: the page holds no data (its script calls the admin API with the key).
      const res = await fetch(`${t.url}${path}`);
      assertEquals(res.status, 200, path);
      assert(res.headers.get("content-type")!.startsWith(type), `${path} content-type`);
      assertEquals(res.headers.get("cache-control"), "no-store", path);
      assertEquals(res.headers.get("x-content-type-options"), "nosniff", path);
      assertEquals(res.headers.get("x-frame-options"), "DENY", path);
      const csp = res.headers.get("content-security-policy") ?? "";
      for (
        const d of [
          "default-src 'none'",
          "script-src 'self'",
          "style-src 'self'",
          "connect-src 'self'",
          "frame-ancestors 'none'",
          "base-uri 'none'",
          "form-action 'none'",
        ]
      ) assertIncludes(csp, d);
      assert(!csp.includes("unsafe-inline") && !csp.includes("unsafe-eval"), csp);
      assertEquals(await res.text(), UI_ASSETS[name].body, path);
    }
    const missing = await fetch(`${t.url}/admin/ui/nope.js`);
    assertEquals(missing.status, 404);
    assertEquals((await missing.json()).error.code, "not_found");
    const post = await fetch(`${t.url}/admin/ui`, { method: "POST" });
    assertEquals(post.status, 405);
    await post.body?.cancel();
  } finally {
    await t.close();
    await up.close();
  }
});

Deno.test("with ADMIN_KEY unset the dashboard is off like the admin API (503 saying how to enable it)", async () => {
  const up = fakeUpstream(() => Response.json({}));
  const t = await startTestGateway({
    registry: testRegistry(up.url),
    config: { adminKey: undefined },
  });
  try {
    for (const path of ["/admin/ui", "/admin/ui/app.js"]) {
      const res = await fetch(`${t.url}${path}`);
      assertEquals(res.status, 503, path);
      assertIncludes((await res.json()).detail, "ADMIN_KEY");
    }
  } finally {
    await t.close();
    await up.close();
  }
});

Deno.test("the page has no inline script, style or handler, and loads nothing from elsewhere", () => {
  const html = UI_ASSETS["index.html"].body;
  const scripts = [...html.matchAll(/<script\b([^>]*)>([\s\S]*?)<\/script>/gi)];
  assertEquals(scripts.length, 1);
  for (const [, attrs, body] of scripts) {
    assertIncludes(attrs, 'src="/admin/ui/app.js"');
    assertEquals(body.trim(), "");
  }
  assert(!/<style\b/i.test(html), "no <style> element");
  assert(!/\sstyle=/i.test(html), "no style attribute");
  assert(!/\son[a-z]+=/i.test(html), "no inline event handler");
  for (const [, url] of html.matchAll(/(?:src|href)="([^"]+)"/g)) {
    assert(url.startsWith("/admin/ui/"), `only the gateway's own files: ${url}`);
  }
  for (const name of ["app.js", "app.css"]) {
    const body = UI_ASSETS[name].body;
    assert(
      !/https?:\/\/(?!www\.w3\.org)/.test(body.replace(/\/\*![^]*?\*\//, "")),
      `${name} fetches nothing remote`,
    );
  }
});

Deno.test("admin API answers are never cached by a browser (cache-control: no-store)", async () => {
  const up = fakeUpstream(() => Response.json({}));
  const t = await startTestGateway({ registry: testRegistry(up.url) });
  try {
    for (const path of ["/admin/keys", "/admin/usage", "/admin/usage/daily", "/admin/models"]) {
      const res = await fetch(`${t.url}${path}`, { headers: { "x-api-key": ADMIN_KEY } });
      assertEquals(res.status, 200, path);
      assertEquals(res.headers.get("cache-control"), "no-store", path);
      await res.body?.cancel();
    }
    const created = await admin(t.url, "POST", "/admin/keys", { name: "x" });
    assertEquals(created.status, 200);
  } finally {
    await t.close();
    await up.close();
  }
});

Deno.test("the embedded bundle is what ui/ builds to (deno task ui:build --check)", async () => {
  const r = await new Deno.Command(Deno.execPath(), {
    args: [
      "run",
      "--allow-read",
      "--allow-write",
      "--allow-run",
      "--allow-env",
      "ui/build.ts",
      "--check",
    ],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  const out = new TextDecoder().decode(r.stdout) + new TextDecoder().decode(r.stderr);
  assert(r.success, out);
});

Deno.test("the page's npm packages stay out of the server's lock file; main.ts imports only server packages", async () => {
  const lock = await Deno.readTextFile(`${ROOT}deno.lock`);
  for (const pkg of ["preact", "uplot", "esbuild"]) {
    assert(!lock.includes(`"${pkg}@`), `${pkg} is not in deno.lock (deno task start downloads it)`);
  }
  const r = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(r.success, new TextDecoder().decode(r.stderr));
  const info = JSON.parse(new TextDecoder().decode(r.stdout)) as {
    modules: { kind: string; npmPackage?: string }[];
  };
  const graph = info.modules.filter((m) => m.kind === "npm").map((m) =>
    m.npmPackage!.replace(/@[^@]+$/, "")
  );
  assertEquals(graph.sort(), ["eventsource-parser", "ulid", "zod"]);
});
