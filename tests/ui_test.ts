/**
 * The admin dashboard end to end in headless Chromium against a real
 * gateway and a fake upstream: signing in, the numbers the page shows
 * against the admin API's, creating a key in the page and using it,
 * disabling, rotating and deleting it, a key name that is HTML, keyboard
 * use, light and dark, a phone-sized screen, no layout jump while loading,
 * and no Content-Security-Policy violation anywhere. Screenshots of every
 * view land in test-output/ui/ (git-ignored).
 */
import type { Page } from "npm:playwright-core@1.65.1";
import { assert, assertEquals } from "./support/assert.ts";
import { browserBlocker, launchBrowser } from "./support/browser.ts";
import { admin, ADMIN_KEY, post, startTestGateway, testRegistry } from "./support/gateway.ts";
import { fakeUpstream, type Seen } from "./support/upstream.ts";
import { waitFor } from "./support/wait.ts";

const OUT = new URL("../test-output/ui/", import.meta.url).pathname;

const blocker = await browserBlocker();
if (blocker) console.log(`skipped: dashboard browser tests: ${blocker}`);

const dec = new TextDecoder();

/** Anthropic and OpenAI answers with usage; `claude-fail` answers 500. */
function upstream(s: Seen): Response {
  const body = JSON.parse(dec.decode(s.body));
  if (body.model === "claude-fail") {
    return Response.json({ type: "error", error: { type: "api_error", message: "boom" } }, {
      status: 500,
    });
  }
  if (s.path.endsWith("/messages")) {
    return Response.json({
      id: "msg_ui",
      type: "message",
      role: "assistant",
      model: body.model,
      content: [{ type: "text", text: "hi" }],
      stop_reason: "end_turn",
      usage: {
        input_tokens: 11,
        cache_creation_input_tokens: 20,
        cache_read_input_tokens: 30,
        output_tokens: 7,
      },
    });
  }
  return Response.json({
    id: "chatcmpl-ui",
    object: "chat.completion",
    model: body.model,
    choices: [{ index: 0, message: { role: "assistant", content: "hi" }, finish_reason: "stop" }],
    usage: {
      prompt_tokens: 40,
      completion_tokens: 9,
      prompt_tokens_details: { cached_tokens: 15 },
    },
  });
}

const anthropicCall = (base: string, key: string, model = "claude-test") =>
  post(`${base}/v1/messages`, {
    model,
    max_tokens: 16,
    messages: [{ role: "user", content: "hi" }],
  }, {
    "x-api-key": key,
  });
const openaiCall = (base: string, key: string) =>
  post(`${base}/v1/chat/completions`, {
    model: "gpt-test",
    messages: [{ role: "user", content: "hi" }],
  }, { authorization: `Bearer ${key}` });

/** Status of a client request, its body drained. */
async function status(res: Promise<Response>): Promise<number> {
  const r = await res;
  await r.body?.cancel();
  return r.status;
}

/** A number as the page prints it ("1,234" -> 1234). */
const num = (s: string | null) => Number((s ?? "").replace(/[^0-9.\-]/g, ""));

/** Opens a view by its fragment and waits for its heading. */
async function open(page: Page, hash: string, heading: string): Promise<void> {
  await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
  await page.getByRole("heading", { level: 1, name: heading, exact: true }).waitFor();
}

/** A figure of an overview period once loaded. */
async function stat(page: Page, scope: string, id: string): Promise<number> {
  const loc = page.locator(`[data-testid="${scope}"] [data-stat="${id}"] .stat-value`);
  await page.locator(`[data-testid="${scope}"] [data-stat="${id}"] [aria-busy="false"]`).waitFor();
  return num(await loc.textContent());
}

/** The cells of a table row whose first cell is `first`, as text. */
async function row(page: Page, table: string, first: string): Promise<string[]> {
  const r = page.locator(`[data-testid="${table}"] tbody tr`).filter({
    has: page.locator("td:first-child", { hasText: first }),
  });
  await r.first().waitFor();
  return await r.first().locator("td").allTextContents();
}

/** The column texts of a table's header row. */
async function headers(page: Page, table: string): Promise<string[]> {
  return (await page.locator(`[data-testid="${table}"] thead th`).allTextContents()).map((h) =>
    h.replace(/[▲▼]/g, "").trim()
  );
}

async function shot(page: Page, name: string): Promise<void> {
  await page.evaluate("scrollTo(0, 0)"); // the sticky top bar would print mid-page otherwise
  await page.waitForTimeout(150); // let charts finish their first paint
  await page.screenshot({ path: `${OUT}${name}.png`, fullPage: true });
}

/** Layout shift (CLS) of a fresh load of a view until its data is shown. */
async function layoutShift(page: Page, hash: string, ready: string): Promise<number> {
  await page.goto(`${page.url().split("#")[0]}#${hash}`);
  await page.reload();
  await page.locator(ready).first().waitFor();
  await page.waitForTimeout(300);
  return await page.evaluate(`new Promise((resolve) => {
    let cls = 0;
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) if (!e.hadRecentInput) cls += e.value;
    }).observe({ type: "layout-shift", buffered: true });
    setTimeout(() => resolve(cls), 100);
  })`) as number;
}

Deno.test({
  name: "dashboard in headless Chromium: sign-in, numbers, key lifecycle, XSS, phone, dark, CSP",
  ignore: blocker !== undefined,
  // playwright-core keeps its own pipes and timers open between calls
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await Deno.mkdir(OUT, { recursive: true });
    const up = fakeUpstream(upstream);
    const gw = await startTestGateway({ registry: testRegistry(up.url) });
    const browser = await launchBrowser();
    const page = await browser.ctx.newPage();
    const problems: string[] = [];
    const alerts: string[] = [];
    const sent: { url: string; headers: Record<string, string> }[] = [];
    page.on("pageerror", (e) => problems.push(`page error: ${e.message}`));
    page.on("console", (m) => {
      if (/Content Security Policy|CSP violation/i.test(m.text())) problems.push(m.text());
    });
    page.on("dialog", (d) => {
      alerts.push(d.message());
      void d.dismiss();
    });
    page.on("request", (r) => sent.push({ url: r.url(), headers: r.headers() }));
    // Browser-side code is given as strings: this file is type-checked without the DOM library.
    await page.addInitScript(
      `document.addEventListener("securitypolicyviolation", (e) =>
        console.error("CSP violation: " + e.violatedDirective + " " + e.blockedURI))`,
    );
    const api = (path: string) => admin(gw.url, "GET", path);

    try {
      // Two keys of traffic: the helper's key on Anthropic (one failure), a second on OpenAI.
      const second = await admin(gw.url, "POST", "/admin/keys", { name: "second-key" });
      const secondSecret = second.json.api_key as string;
      for (let i = 0; i < 3; i++) assertEquals(await status(anthropicCall(gw.url, gw.secret)), 200);
      assertEquals(await status(anthropicCall(gw.url, gw.secret, "claude-fail")), 500);
      for (let i = 0; i < 2; i++) assertEquals(await status(openaiCall(gw.url, secondSecret)), 200);
      await gw.gw.ctx.usageWriter.flush();
      const today = (await api("/admin/usage/hourly")).json.date as string;

      await t.step(
        "sign in with the admin key, by keyboard; it stays out of URLs and cookies",
        async () => {
          await page.goto(`${gw.url}/admin/ui/`);
          await page.locator("#admin-key").waitFor();
          await shot(page, "desktop-signin");
          await page.keyboard.press("Tab");
          assertEquals(await page.evaluate("document.activeElement?.id"), "admin-key");
          await page.keyboard.type("not-the-admin-key-123");
          await page.keyboard.press("Enter");
          await page.getByRole("alert").filter({ hasText: "invalid admin key" }).waitFor();
          await page.locator("#admin-key").fill(ADMIN_KEY);
          await page.keyboard.press("Enter");
          await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();
          assert(!page.url().includes(ADMIN_KEY), "the key is not in the URL");
          assertEquals(await browser.ctx.cookies(), []);
          assertEquals(
            await page.evaluate('sessionStorage.getItem("gateway-admin-key")'),
            ADMIN_KEY,
          );
          // Still signed in after a reload (same tab), signed out by the button.
          await page.reload();
          await page.getByRole("heading", { level: 1, name: "Overview" }).waitFor();
        },
      );

      await t.step("overview: today's and this month's figures equal the admin API's", async () => {
        const day = ((await api(`/admin/usage/daily?date=${today}`)).json.days as Record<
          string,
          number
        >[])[0];
        const tokens = day.total_input + day.total_output;
        for (const scope of ["period-today", "period-month"]) {
          assertEquals(await stat(page, scope, "requests"), day.total_requests);
          assertEquals(await stat(page, scope, "tokens"), tokens);
          assertEquals(await stat(page, scope, "input_uncached"), day.input_uncached);
          assertEquals(await stat(page, scope, "cache_read"), day.cache_read);
          assertEquals(await stat(page, scope, "cache_write"), day.cache_write);
          assertEquals(await stat(page, scope, "output"), day.total_output);
        }
        assertEquals(day.total_requests, 6);
        assertEquals(day.failed, 1);
        const rate = await page.locator(
          '[data-testid="period-today"] [data-stat="error_rate"] .stat-value',
        ).textContent();
        assertEquals(rate, "16.7%");
        const keys = (await api("/admin/keys")).json.keys as Record<string, number & string>[];
        for (const k of keys.filter((k) => k.total_requests > 0)) {
          const cells = await row(page, "top-keys", k.name);
          assertEquals(num(cells[1]), k.total_requests, `${k.name} requests`);
          assertEquals(num(cells[2]), k.total_input + k.total_output, `${k.name} tokens`);
        }
        const models = day.by_model as unknown as Record<
          string,
          { total: number; requests: number }
        >;
        for (const [m, s] of Object.entries(models)) {
          const cells = await row(page, "top-models", m);
          assertEquals([num(cells[1]), num(cells[2])], [s.requests, s.total], m);
        }
        await shot(page, "desktop-overview");
      });

      await t.step("requests nav item is shown exactly when the request log answers", async () => {
        const has = (await api("/admin/requests?limit=1")).status !== 404;
        const link = page.locator("nav a", { hasText: "Requests" });
        assertEquals(await link.count(), has ? 1 : 0);
      });

      await t.step("usage: chart tables and CSV equal the API; bucket toggles apply", async () => {
        await open(page, "#/usage", "Usage");
        const day = ((await api(`/admin/usage/daily?date=${today}`)).json.days as {
          by_model: Record<string, { total: number; input: number }>;
        }[])[0];
        const card = page.locator("section", { has: page.getByTestId("chart-tokens") });
        await card.locator("summary", { hasText: "Table" }).click();
        const cells = async () => {
          const r = card.locator("tbody tr", { hasText: today });
          await r.waitFor();
          const head = (await card.locator("thead th").allTextContents()).slice(1);
          const vals = (await r.locator("td").allTextContents()).map(num);
          return Object.fromEntries(head.map((h, i) => [h, vals[i]]));
        };
        assertEquals(
          await cells(),
          Object.fromEntries(Object.entries(day.by_model).map(([m, s]) => [m, s.total])),
        );
        const download = page.waitForEvent("download");
        await card.getByRole("button", { name: "Export CSV" }).click();
        const csv = await Deno.readTextFile(await (await download).path());
        const lines = csv.trim().split("\r\n");
        const header = lines[0].split(",");
        const last = lines.at(-1)!.split(",");
        assertEquals(header[0], "date");
        assertEquals(last[0], today);
        for (const [m, s] of Object.entries(day.by_model)) {
          assertEquals(Number(last[header.indexOf(m)]), s.total, `CSV ${m}`);
        }
        await page.getByRole("checkbox", { name: "Output" }).uncheck();
        assertEquals(
          await cells(),
          Object.fromEntries(Object.entries(day.by_model).map(([m, s]) => [m, s.input])),
        );
        await page.getByRole("checkbox", { name: "Output" }).check();
        // Requests per hour of today add up to today's requests.
        const hourly = page.locator("section", { has: page.getByTestId("chart-hourly") });
        await hourly.locator("summary", { hasText: "Table" }).click();
        const perHour = (await hourly.locator("tbody tr td:nth-child(2)").allTextContents()).map(
          num,
        );
        assertEquals(perHour.length, 24);
        assertEquals(perHour.reduce((a, b) => a + b, 0), 6);
        // Both keys are compared by default.
        const legend = await page.locator("section", { has: page.getByTestId("chart-compare") })
          .locator(".legend-label").allTextContents();
        assertEquals(legend.sort(), ["second-key", "test-key"]);
        const expanded = page.locator("details[open] > summary");
        while (await expanded.count()) await expanded.first().click();
        await shot(page, "desktop-usage");
      });

      await t.step("keys: the table equals the API, sorts and filters", async () => {
        await open(page, "#/keys", "Keys");
        const keys = (await api("/admin/keys")).json.keys as Record<string, number & string>[];
        for (const k of keys) {
          const cells = await row(page, "keys-table", k.name);
          assertEquals(num(cells[2]), k.total_requests, `${k.name} requests`);
          assertEquals(num(cells[3]), k.total_input + k.total_output, `${k.name} tokens`);
        }
        assertEquals((await headers(page, "keys-table")).slice(0, 4), [
          "Name",
          "Status",
          "Requests",
          "Tokens",
        ]);
        const names = () =>
          page.locator('[data-testid="keys-table"] tbody td:first-child a').allTextContents();
        // Sorted by tokens, most first; a click on Name sorts by name.
        assertEquals(
          await names(),
          ["second-key", "test-key"].sort((a, b) => {
            const t = (n: string) => keys.find((k) => k.name === n)!;
            return (t(b).total_input + t(b).total_output) - (t(a).total_input + t(a).total_output);
          }),
        );
        await page.getByRole("button", { name: "Name" }).focus();
        await page.keyboard.press("Enter");
        assertEquals(await names(), ["second-key", "test-key"]);
        await page.getByRole("searchbox").fill("second");
        assertEquals(await names(), ["second-key"]);
        await page.getByRole("searchbox").fill("");
        await shot(page, "desktop-keys");
      });

      let secret = "";
      await t.step("create a key in the page, copy its secret, and use it", async () => {
        await page.getByRole("button", { name: "Create key" }).click();
        await page.getByLabel("Name").fill("from-the-page");
        await page.getByRole("button", { name: "Create", exact: true }).click();
        const input = page.getByTestId("secret");
        await input.waitFor();
        secret = await input.inputValue();
        assert(secret.startsWith("sk-gw-"), secret);
        await browser.ctx.grantPermissions(["clipboard-read", "clipboard-write"], {
          origin: gw.url,
        });
        await page.getByRole("button", { name: "Copy" }).click();
        await page.getByRole("button", { name: "Copied" }).waitFor();
        assertEquals(await page.evaluate("navigator.clipboard.readText()"), secret);
        await shot(page, "desktop-key-created");
        await page.getByRole("button", { name: "Done" }).click();
        assertEquals(await status(openaiCall(gw.url, secret)), 200);
        await gw.gw.ctx.usageWriter.flush();
        await page.reload();
        const cells = await row(page, "keys-table", "from-the-page");
        assertEquals(num(cells[2]), 1);
      });

      await t.step("key page: its totals, disable and enable, rotate", async () => {
        await page.getByRole("link", { name: "from-the-page" }).click();
        await page.getByTestId("key-name").filter({ hasText: "from-the-page" }).waitFor();
        const id = decodeURIComponent(page.url().split("#/keys/")[1]);
        const view = (await api(`/admin/keys/${id}`)).json as Record<string, number>;
        assertEquals(await stat(page, "key-totals", "requests"), view.total_requests);
        assertEquals(
          await stat(page, "key-totals", "tokens"),
          view.total_input + view.total_output,
        );
        await shot(page, "desktop-key-page");

        await page.getByRole("button", { name: "Disable" }).click();
        await page.getByTestId("confirm-dialog").getByRole("button", { name: "Disable" }).click();
        await page.locator(".key-title .badge", { hasText: "disabled" }).waitFor();
        assertEquals(await status(openaiCall(gw.url, secret)), 403);
        await page.getByRole("button", { name: "Enable" }).click();
        await page.getByTestId("confirm-dialog").getByRole("button", { name: "Enable" }).click();
        await page.locator(".key-title .badge", { hasText: "enabled" }).waitFor();
        assertEquals(await status(openaiCall(gw.url, secret)), 200);

        await page.getByRole("button", { name: "Rotate" }).click();
        await page.getByTestId("confirm-dialog").getByRole("button", { name: "Rotate" }).click();
        const fresh = await page.getByTestId("secret").inputValue();
        assert(fresh.startsWith("sk-gw-") && fresh !== secret, "a new secret is shown");
        await page.getByRole("button", { name: "Done" }).click();
        assertEquals(await status(openaiCall(gw.url, secret)), 401);
        assertEquals(await status(openaiCall(gw.url, fresh)), 200);
        secret = fresh;
      });

      await t.step("delete asks first; cancel keeps the key, confirm deletes it", async () => {
        const id = decodeURIComponent(page.url().split("#/keys/")[1]);
        await page.getByRole("button", { name: "Delete", exact: true }).click();
        await page.getByTestId("confirm-dialog").getByRole("button", { name: "Cancel" }).click();
        assertEquals((await api(`/admin/keys/${id}`)).status, 200);
        await page.getByRole("button", { name: "Delete", exact: true }).click();
        await page.getByTestId("confirm-dialog").waitFor();
        await page.keyboard.press("Escape");
        await page.getByTestId("confirm-dialog").waitFor({ state: "detached" });
        assertEquals((await api(`/admin/keys/${id}`)).status, 200);
        await page.getByRole("button", { name: "Delete", exact: true }).click();
        await page.getByRole("button", { name: "Delete key" }).click();
        await page.getByRole("heading", { name: "Key deleted" }).waitFor();
        assertEquals((await api(`/admin/keys/${id}`)).status, 404);
        assertEquals(await status(openaiCall(gw.url, secret)), 401);
      });

      await t.step("a key named like HTML shows as that text and runs nothing", async () => {
        const name = "<img src=x onerror=alert(1)>";
        const made = await admin(gw.url, "POST", "/admin/keys", { name });
        const id = made.json.id as string;
        await open(page, "#/keys", "Keys");
        const link = page.locator(`a[data-key-id="${id}"]`);
        await link.waitFor();
        assertEquals(await link.textContent(), name);
        await link.click();
        await page.getByTestId("key-name").filter({ hasText: name }).waitFor();
        assertEquals(await page.getByTestId("key-name").textContent(), name);
        assertEquals(await page.locator("img").count(), 0);
        assertEquals(await page.locator("[onerror]").count(), 0);
        await page.waitForTimeout(200);
        assertEquals(alerts, []);
      });

      await t.step("models & providers: the routing table and each provider's state", async () => {
        await open(page, "#/models", "Models & providers");
        const st = (await api("/admin/models")).json as {
          providers: { id: string; format: string; breaker: { state: string } }[];
          routing: Record<string, string[]>;
        };
        for (const p of st.providers) {
          const cells = await row(page, "providers-table", p.id);
          assertEquals(cells[1], p.format);
          assert(cells[2].endsWith(" set"), `${p.id} key configured: ${cells[2]}`);
          assert(cells[3].startsWith(p.breaker.state.replace("_", "-")), cells[3]);
        }
        // The failed Anthropic call is the provider's recent error.
        assert((await row(page, "providers-table", "anthropic"))[8].includes("500"));
        for (const [prefix, chain] of Object.entries(st.routing)) {
          assertEquals((await row(page, "routing-table", prefix))[1], chain.join(" → "));
        }
        await shot(page, "desktop-models");
      });

      await t.step("no layout jump while data loads", async () => {
        for (
          const [hash, ready] of [
            ["/", '[data-testid="period-month"] [data-stat="requests"] [aria-busy="false"]'],
            ["/usage", '[data-testid="chart-tokens"] canvas'],
            ["/keys", '[data-testid="keys-table"] tbody a'],
          ]
        ) {
          const cls = await layoutShift(page, hash, ready);
          assert(cls < 0.02, `layout shift on #${hash}: ${cls}`);
        }
      });

      await t.step("dark color scheme", async () => {
        const bg = () => page.evaluate("getComputedStyle(document.body).backgroundColor");
        const light = await bg();
        await page.emulateMedia({ colorScheme: "dark" });
        assert((await bg()) !== light, "the dark scheme changes the page");
        for (
          const [hash, heading, name] of [
            ["#/", "Overview", "dark-overview"],
            ["#/usage", "Usage", "dark-usage"],
            ["#/keys", "Keys", "dark-keys"],
          ]
        ) {
          await open(page, hash, heading);
          await page.waitForTimeout(300);
          await shot(page, name);
        }
        await page.emulateMedia({ colorScheme: "light" });
      });

      await t.step("phone-sized screen: every view fits its width", async () => {
        await page.setViewportSize({ width: 390, height: 844 });
        for (
          const [hash, heading, name] of [
            ["#/", "Overview", "phone-overview"],
            ["#/usage", "Usage", "phone-usage"],
            ["#/keys", "Keys", "phone-keys"],
            ["#/models", "Models & providers", "phone-models"],
          ]
        ) {
          await open(page, hash, heading);
          await page.waitForTimeout(300);
          const [scroll, width] = await page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]",
          ) as number[];
          assert(scroll <= width, `${hash} is ${scroll}px wide on a ${width}px screen`);
          await shot(page, name);
        }
        await page.setViewportSize({ width: 1280, height: 900 });
      });

      await t.step(
        "governance fields and the request log show when the API returns them",
        async () => {
          // The per-key governance API is not in this gateway yet: its draft wire contract
          // (cost_usd, limits, GET /admin/requests) is answered here by the browser's router.
          const keys = (await api("/admin/keys")).json.keys as Record<string, unknown>[];
          const governed = keys.map((k) => ({
            ...k,
            cost_usd: k.name === "test-key" ? 1.25 : null,
            expired: false,
            expires_at: null,
            limits: k.name === "test-key"
              ? {
                rpm: { limit: 60, used: 1, remaining: 59, resets_at: null },
                daily_token_quota: { limit: 250, used: 204, remaining: 46, resets_at: null },
              }
              : {},
          }));
          const entry = (id: string, status: number) => ({
            id,
            time: new Date().toISOString(),
            key_id: gw.keyId,
            key_name: "test-key",
            model: "claude-test",
            provider: "anthropic",
            endpoint: "/v1/messages",
            stream: false,
            status,
            input_uncached: 11,
            cache_read: 30,
            cache_write: 20,
            output: 7,
            cost_usd: null,
            latency_ms: 12,
            ttfb_ms: null,
            retries: 0,
            complete: true,
            error: status >= 400 ? "upstream said boom" : null,
          });
          const queries: URLSearchParams[] = [];
          await page.route(
            "**/admin/keys",
            (r) =>
              r.request().method() === "GET"
                ? r.fulfill({ json: { keys: governed } })
                : r.fallback(),
          );
          await page.route((u) => u.pathname === "/admin/requests", (r) => {
            const q = new URL(r.request().url()).searchParams;
            queries.push(q);
            return r.fulfill({
              json: q.get("cursor")
                ? { requests: [entry("r1", 500)], next_cursor: null }
                : { requests: [entry("r2", 200)], next_cursor: "page-2" },
            });
          });
          try {
            await page.goto(`${gw.url}/admin/ui/#/`);
            await page.reload(); // a new document: the page probes the request log again
            const near = page.getByTestId("near-limits").locator("li");
            await near.first().waitFor();
            assertEquals(await near.count(), 1);
            assert((await near.textContent())!.includes("test-key"));
            assert((await near.textContent())!.includes("204 / 250"));
            await open(page, "#/keys", "Keys");
            const cells = await row(page, "keys-table", "test-key");
            const cols = await headers(page, "keys-table");
            assert(cols.includes("Cost") && cols.includes("Limits"), cols.join(","));
            assertEquals(cells[cols.indexOf("Cost")], "$1.25");
            assertEquals(
              await page.locator('[data-testid="keys-table"] [role="meter"]').count(),
              2,
            );
            await page.locator("nav a", { hasText: "Requests" }).click();
            await page.getByRole("heading", { level: 1, name: "Requests" }).waitFor();
            await row(page, "requests-table", new Date().getUTCFullYear().toString());
            assertEquals(queries.at(-1)!.get("limit"), "50");
            await page.getByRole("button", { name: "Older" }).click();
            await page.locator('[data-testid="requests-table"] td', {
              hasText: "upstream said boom",
            })
              .waitFor();
            assertEquals(queries.at(-1)!.get("cursor"), "page-2");
            await page.getByLabel("Status").selectOption("5xx");
            await page.getByRole("button", { name: "Apply" }).click();
            // The filtered query goes out after the click: wait for it, not for a busy flag.
            await waitFor("the filtered query", () => queries.at(-1)!.get("status") === "5xx");
            assertEquals([queries.at(-1)!.get("status"), queries.at(-1)!.get("cursor")], [
              "5xx",
              null,
            ]);
            await shot(page, "contract-requests");
          } finally {
            await page.unrouteAll();
          }
        },
      );

      await t.step("sign out forgets the key", async () => {
        await page.getByRole("button", { name: "Sign out" }).click();
        await page.locator("#admin-key").waitFor();
        assertEquals(await page.evaluate('sessionStorage.getItem("gateway-admin-key")'), null);
      });

      await t.step("the admin key only ever travelled in a header", () => {
        const calls = sent.filter((s) =>
          new URL(s.url).pathname.startsWith("/admin/") &&
          !new URL(s.url).pathname.startsWith("/admin/ui")
        );
        assert(calls.length > 10, `admin API calls seen: ${calls.length}`);
        for (const c of sent) assert(!c.url.includes(ADMIN_KEY), `key in a URL: ${c.url}`);
        for (const c of calls.filter((c) => c.headers["x-api-key"] !== undefined)) {
          assert(
            c.headers["x-api-key"] === ADMIN_KEY ||
              c.headers["x-api-key"] === "not-the-admin-key-123",
            c.url,
          );
        }
        for (const c of sent.filter((s) => new URL(s.url).pathname.startsWith("/admin/ui"))) {
          assertEquals(
            c.headers["x-api-key"],
            undefined,
            `the page itself is fetched without the key`,
          );
        }
        assertEquals(problems, []);
      });
    } finally {
      await browser.close();
      await gw.close();
      await up.close();
    }
  },
});
