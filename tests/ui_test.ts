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

/** The gateway's usage calendar (`USAGE_TZ`): +05:30 all year, no daylight saving. */
const USAGE_TZ = "Asia/Kolkata";
/** The browser's own zone, which the page must not use for times. */
const BROWSER_TZ = "America/Los_Angeles";

/** An instant as the usage calendar's clock shows it: "YYYY-MM-DD HH:MM". */
const wall = (iso: string) =>
  new Date(Date.parse(iso) + 5.5 * 3_600_000).toISOString().slice(0, 16).replace("T", " ");

/** Prices in USD per million tokens; a test-key request costs $0.074, a gpt-test one $0.1295. */
const PRICED_MODELS = [
  {
    id: "claude-test",
    provider: "anthropic",
    owned_by: "anthropic",
    pricing: { input: 1000, output: 5000, cache_read: 100, cache_write: 1250 },
  },
  {
    id: "gpt-test",
    provider: "openai",
    owned_by: "openai",
    pricing: { input: 2000, output: 8000, cache_read: 500 },
  },
  // No price: its requests count as unpriced.
  { id: "deepseek-chat", provider: "deepseek", owned_by: "deepseek" },
];

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
const openaiCall = (base: string, key: string, model = "gpt-test") =>
  post(`${base}/v1/chat/completions`, {
    model,
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

/**
 * Asserts that a cost the page shows is the admin API's, to the digits it
 * shows: "$0.074" for 0.074; "no price" when nothing was priced but some
 * requests were.
 */
function assertCost(
  shown: string | null,
  api: { cost_usd: number | null; unpriced_requests?: number },
  what: string,
): void {
  const text = (shown ?? "").trim();
  if (api.cost_usd === null && (api.unpriced_requests ?? 0) > 0) {
    assert(text.startsWith("no price"), `${what}: page ${text}, API null (unpriced)`);
    return;
  }
  const m = /^\$([\d,]+(?:\.(\d+))?)/.exec(text);
  assert(m, `${what}: ${JSON.stringify(text)} is no dollar amount`);
  const value = Number(m[1].replaceAll(",", ""));
  const half = 0.5 * 10 ** -(m[2]?.length ?? 0);
  assert(
    Math.abs(value - (api.cost_usd ?? 0)) <= half + 1e-12,
    `${what}: page ${text}, API ${api.cost_usd}`,
  );
}

/** Opens a view by its fragment and waits for its heading (on a key's page: the key's name). */
async function open(page: Page, hash: string, heading: string): Promise<void> {
  await page.evaluate(`location.hash = ${JSON.stringify(hash)}`);
  if (/^#\/keys\/./.test(hash)) {
    await page.getByTestId("key-name").filter({ hasText: heading }).waitFor();
  } else {
    await page.getByRole("heading", { level: 1, name: heading, exact: true }).waitFor();
  }
}

/** A figure's text once loaded. */
async function statText(page: Page, scope: string, id: string): Promise<string> {
  const loc = page.locator(`[data-testid="${scope}"] [data-stat="${id}"] .stat-value`);
  await page.locator(`[data-testid="${scope}"] [data-stat="${id}"] [aria-busy="false"]`).waitFor();
  return (await loc.textContent()) ?? "";
}

/** A figure of an overview period once loaded. */
async function stat(page: Page, scope: string, id: string): Promise<number> {
  return num(await statText(page, scope, id));
}

/** The cells of a table row whose first cell is `first`, as text. */
async function row(page: Page, table: string, first: string): Promise<string[]> {
  const r = page.locator(`[data-testid="${table}"] tbody tr`).filter({
    has: page.locator("td:first-child", { hasText: first }),
  });
  await r.first().waitFor();
  return await r.first().locator("td").allInnerTexts();
}

/** The rows of a chart card's number table, by x label, as {series label: cell text}. */
async function chartTable(
  page: Page,
  testId: string,
): Promise<Map<string, Record<string, string>>> {
  const card = page.locator("section", { has: page.getByTestId(testId) });
  const details = card.locator("details.chart-table");
  if (!(await details.evaluate("(d) => d.open"))) await details.locator("summary").click();
  await card.locator("details.chart-table tbody tr").first().waitFor();
  const head = (await card.locator("details.chart-table thead th").allTextContents()).slice(1);
  const out = new Map<string, Record<string, string>>();
  for (const r of await card.locator("details.chart-table tbody tr").all()) {
    const x = (await r.locator("th").textContent()) ?? "";
    const cells = await r.locator("td").allTextContents();
    out.set(x, Object.fromEntries(head.map((h, i) => [h, cells[i]])));
  }
  await details.locator("summary").click();
  return out;
}

/** The CSV a chart card exports, as {series label: value} of the row for `x`. */
async function csvRow(page: Page, testId: string, x: string): Promise<Record<string, string>> {
  const card = page.locator("section", { has: page.getByTestId(testId) });
  const download = page.waitForEvent("download");
  await card.getByRole("button", { name: "Export CSV" }).click();
  const csv = await Deno.readTextFile(await (await download).path());
  const lines = csv.trim().split("\r\n").map((l) => l.split(","));
  const row = lines.find((l) => l[0] === x);
  assert(row, `no CSV row for ${x} in ${csv}`);
  return Object.fromEntries(lines[0].map((h, i) => [h, row[i]]).slice(1));
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

/**
 * Layout shift (CLS) of a fresh load of a view until its data is shown, and
 * what moved (tag, class and distance), to say where a failure comes from.
 */
async function layoutShift(
  page: Page,
  hash: string,
  ready: string,
): Promise<{ cls: number; moved: string[] }> {
  await page.goto(`${page.url().split("#")[0]}#${hash}`);
  await page.reload();
  await page.locator(ready).first().waitFor();
  await page.waitForTimeout(300);
  return await page.evaluate(`new Promise((resolve) => {
    let cls = 0;
    const moved = [];
    new PerformanceObserver((list) => {
      for (const e of list.getEntries()) {
        if (e.hadRecentInput) continue;
        cls += e.value;
        for (const s of e.sources) {
          const n = s.node;
          const what = n && n.tagName ? n.tagName.toLowerCase() + "." + n.className : "text";
          const dx = s.currentRect.x - s.previousRect.x, dy = s.currentRect.y - s.previousRect.y;
          moved.push(what + " by " + dx + "," + dy);
        }
      }
    }).observe({ type: "layout-shift", buffered: true });
    setTimeout(() => resolve({ cls, moved }), 100);
  })`) as { cls: number; moved: string[] };
}

Deno.test({
  name:
    "dashboard in headless Chromium: sign-in, numbers and cost, key lifecycle and limits, request log, XSS, phone, dark, CSP",
  ignore: blocker !== undefined,
  // playwright-core keeps its own pipes and timers open between calls
  sanitizeOps: false,
  sanitizeResources: false,
  async fn(t) {
    await Deno.mkdir(OUT, { recursive: true });
    const up = fakeUpstream(upstream);
    const gw = await startTestGateway({
      registry: testRegistry(up.url, { known_models: PRICED_MODELS }),
      config: { usageTz: USAGE_TZ },
    });
    const browser = await launchBrowser({ timezoneId: BROWSER_TZ });
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
    type Cost = { cost_usd: number | null; unpriced_requests: number };

    try {
      // Two keys of traffic: the helper's key on Anthropic (one failure), a second on OpenAI
      // (priced) and DeepSeek (no price).
      const second = await admin(gw.url, "POST", "/admin/keys", { name: "second-key" });
      const secondSecret = second.json.api_key as string;
      for (let i = 0; i < 3; i++) assertEquals(await status(anthropicCall(gw.url, gw.secret)), 200);
      assertEquals(await status(anthropicCall(gw.url, gw.secret, "claude-fail")), 500);
      for (let i = 0; i < 2; i++) assertEquals(await status(openaiCall(gw.url, secondSecret)), 200);
      assertEquals(await status(openaiCall(gw.url, secondSecret, "deepseek-chat")), 200);
      await gw.gw.ctx.usageWriter.flush();
      const hourly = (await api("/admin/usage/hourly")).json;
      const today = hourly.date as string;
      assertEquals(hourly.time_zone, USAGE_TZ);
      type Day = Record<string, number> & Cost & {
        by_model: Record<string, { total: number; input: number; requests: number } & Cost>;
        keys: ({ id: string; name: string } & Cost)[];
      };
      const todayReport = async () =>
        ((await api(`/admin/usage/daily?date=${today}`)).json.days as Day[])[0];

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
          assertEquals(await page.locator(".tz").textContent(), USAGE_TZ);
        },
      );

      await t.step(
        "overview: today's and this month's figures and cost equal the admin API's",
        async () => {
          const day = await todayReport();
          const tokens = day.total_input + day.total_output;
          for (const scope of ["period-today", "period-month"]) {
            assertEquals(await stat(page, scope, "requests"), day.total_requests);
            assertEquals(await stat(page, scope, "tokens"), tokens);
            assertEquals(await stat(page, scope, "input_uncached"), day.input_uncached);
            assertEquals(await stat(page, scope, "cache_read"), day.cache_read);
            assertEquals(await stat(page, scope, "cache_write"), day.cache_write);
            assertEquals(await stat(page, scope, "output"), day.total_output);
            assertCost(await statText(page, scope, "cost"), day, `${scope} cost`);
          }
          assertEquals(day.total_requests, 7);
          assertEquals(day.failed, 1);
          // 3 x $0.074 (claude-test) + 2 x $0.1295 (gpt-test); deepseek-chat has no price.
          assertEquals(day.cost_usd, 0.481);
          assert(day.unpriced_requests >= 1, "the DeepSeek request is unpriced");
          const rate = await page.locator(
            '[data-testid="period-today"] [data-stat="error_rate"] .stat-value',
          ).textContent();
          assertEquals(rate, "14.3%");
          const hint = await page.locator(
            '[data-testid="period-today"] [data-stat="cost"] .stat-hint',
          ).textContent();
          assertEquals(hint, `${day.unpriced_requests} without a price`);
          const keys = (await api("/admin/keys")).json.keys as Record<string, number & string>[];
          for (const k of keys.filter((k) => k.total_requests > 0)) {
            const cells = await row(page, "top-keys", k.name);
            assertEquals(num(cells[1]), k.total_requests, `${k.name} requests`);
            assertEquals(num(cells[2]), k.total_input + k.total_output, `${k.name} tokens`);
            assertCost(cells[3], day.keys.find((x) => x.id === k.id)!, `${k.name} cost`);
          }
          for (const [m, s] of Object.entries(day.by_model)) {
            const cells = await row(page, "top-models", m);
            assertEquals([num(cells[1]), num(cells[2])], [s.requests, s.total], m);
            assertCost(cells[3], s, `${m} cost`);
          }
          await page.getByTestId("near-none").waitFor();
          await shot(page, "desktop-overview");
        },
      );

      await t.step(
        "usage: chart tables and CSV (tokens and cost) equal the API; buckets and groupings apply",
        async () => {
          await open(page, "#/usage", "Usage");
          const day = await todayReport();
          const byModel = Object.entries(day.by_model);
          const tokens = await chartTable(page, "chart-tokens");
          assertEquals(
            Object.fromEntries(Object.entries(tokens.get(today)!).map(([m, v]) => [m, num(v)])),
            Object.fromEntries(byModel.map(([m, s]) => [m, s.total])),
          );
          const csv = await csvRow(page, "chart-tokens", today);
          for (const [m, s] of byModel) assertEquals(Number(csv[m]), s.total, `CSV ${m}`);
          await page.getByRole("checkbox", { name: "Output" }).uncheck();
          const inputs = await chartTable(page, "chart-tokens");
          assertEquals(
            Object.fromEntries(Object.entries(inputs.get(today)!).map(([m, v]) => [m, num(v)])),
            Object.fromEntries(byModel.map(([m, s]) => [m, s.input])),
          );
          await page.getByRole("checkbox", { name: "Output" }).check();
          // Cache reads and writes on their own, grouped by bucket.
          const tokenCard = page.locator("section", { has: page.getByTestId("chart-tokens") });
          await tokenCard.getByRole("combobox", { name: "By" }).selectOption("bucket");
          const buckets = (await chartTable(page, "chart-tokens")).get(today)!;
          assertEquals(
            [
              buckets["Input (uncached)"],
              buckets["Cache read"],
              buckets["Cache write"],
              buckets["Output"],
            ].map(num),
            [day.input_uncached, day.cache_read, day.cache_write, day.total_output],
          );
          await tokenCard.getByRole("combobox", { name: "By" }).selectOption("model");

          // Cost per day by model: every priced model, to the digits shown, in the table and CSV.
          const cost = (await chartTable(page, "chart-cost")).get(today)!;
          const priced = byModel.filter(([, s]) => s.cost_usd !== null);
          assertEquals(Object.keys(cost).sort(), priced.map(([m]) => m).sort());
          for (const [m, s] of priced) assertCost(cost[m], s, `cost chart ${m}`);
          const costCsv = await csvRow(page, "chart-cost", today);
          for (const [m, s] of priced) {
            assertEquals(Number(costCsv[m]), s.cost_usd, `cost CSV ${m}`);
          }
          const note = await page.locator("section", { has: page.getByTestId("chart-cost") })
            .locator(".chart-note").textContent();
          assertEquals(
            note,
            `${day.unpriced_requests} request${
              day.unpriced_requests === 1 ? "" : "s"
            } without a price (the model has none in models.json): not in the cost.`,
          );

          // Requests per hour of today add up to today's requests.
          const perHour = [...(await chartTable(page, "chart-hourly")).values()].map((r) =>
            num(r.Requests)
          );
          assertEquals(perHour.length, 24);
          assertEquals(perHour.reduce((a, b) => a + b, 0), day.total_requests);

          // Both keys are compared by default, by tokens or by cost.
          const compare = page.locator("section", { has: page.getByTestId("chart-compare") });
          assertEquals((await compare.locator(".legend-label").allTextContents()).sort(), [
            "second-key",
            "test-key",
          ]);
          await compare.getByRole("combobox", { name: "Compare" }).selectOption("cost");
          const perKey = (await chartTable(page, "chart-compare")).get(today)!;
          for (const k of day.keys) assertCost(perKey[k.name], k, `compared ${k.name}`);
          await compare.getByRole("combobox", { name: "Compare" }).selectOption("tokens");
          await shot(page, "desktop-usage");
        },
      );

      await t.step(
        "keys: the table equals the API (cost, limits, expiry), sorts and filters",
        async () => {
          await open(page, "#/keys", "Keys");
          const keys = (await api("/admin/keys")).json
            .keys as (Record<string, number & string> & Cost)[];
          await row(page, "keys-table", "test-key");
          const cols = await headers(page, "keys-table");
          assertEquals(cols, [
            "Name",
            "Status",
            "Requests",
            "Tokens",
            "Cost",
            "Limits",
            "Last used",
            "Expires",
            "Created",
          ]);
          for (const k of keys) {
            const cells = await row(page, "keys-table", k.name);
            assertEquals(num(cells[2]), k.total_requests, `${k.name} requests`);
            assertEquals(num(cells[3]), k.total_input + k.total_output, `${k.name} tokens`);
            assertCost(cells[4], k, `${k.name} cost`);
            assertEquals(cells[5], "none");
            assertEquals(cells[6], wall(String(k.last_used)), `${k.name} last used`);
            assertEquals(cells[7], "never");
          }
          const names = () =>
            page.locator('[data-testid="keys-table"] tbody td:first-child a').allTextContents();
          // Sorted by tokens, most first; a click on Name sorts by name.
          assertEquals(
            await names(),
            ["second-key", "test-key"].sort((a, b) => {
              const t = (n: string) => keys.find((k) => k.name === n)!;
              return (t(b).total_input + t(b).total_output) -
                (t(a).total_input + t(a).total_output);
            }),
          );
          await page.getByRole("button", { name: "Name" }).focus();
          await page.keyboard.press("Enter");
          assertEquals(await names(), ["second-key", "test-key"]);
          await page.getByRole("searchbox").fill("second");
          assertEquals(await names(), ["second-key"]);
          await page.getByRole("searchbox").fill("");
        },
      );

      let secret = "";
      let graced = "";
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

      await t.step(
        "key page: its totals and cost, disable and enable, rotate at once",
        async () => {
          await page.getByRole("link", { name: "from-the-page" }).click();
          await page.getByTestId("key-name").filter({ hasText: "from-the-page" }).waitFor();
          const id = decodeURIComponent(page.url().split("#/keys/")[1]);
          const view = (await api(`/admin/keys/${id}`)).json as Record<string, number> & Cost;
          assertEquals(await stat(page, "key-totals", "requests"), view.total_requests);
          assertEquals(
            await stat(page, "key-totals", "tokens"),
            view.total_input + view.total_output,
          );
          assertEquals(view.cost_usd, 0.1295);
          assertCost(await statText(page, "key-totals", "cost"), view, "key page cost");
          const cost = (await chartTable(page, "key-chart-cost")).get(today)!;
          assertCost(cost["gpt-test"], view, "key cost chart");

          await page.getByRole("button", { name: "Disable" }).click();
          await page.getByTestId("confirm-dialog").getByRole("button", { name: "Disable" }).click();
          await page.locator(".key-title .badge", { hasText: "disabled" }).waitFor();
          assertEquals(await status(openaiCall(gw.url, secret)), 403);
          await page.getByRole("button", { name: "Enable" }).click();
          await page.getByTestId("confirm-dialog").getByRole("button", { name: "Enable" }).click();
          await page.locator(".key-title .badge", { hasText: "enabled" }).waitFor();
          assertEquals(await status(openaiCall(gw.url, secret)), 200);

          // Grace 0 (the default): the old secret stops at once.
          await page.getByRole("button", { name: "Rotate" }).click();
          await page.getByTestId("confirm-dialog").getByRole("button", { name: "Rotate" }).click();
          const fresh = await page.getByTestId("secret").inputValue();
          assert(fresh.startsWith("sk-gw-") && fresh !== secret, "a new secret is shown");
          await page.getByRole("button", { name: "Done" }).click();
          assertEquals(await status(openaiCall(gw.url, secret)), 401);
          assertEquals(await status(openaiCall(gw.url, fresh)), 200);
          secret = fresh;
          await shot(page, "desktop-key-page");
        },
      );

      await t.step(
        "rotate with a grace period: the old secret keeps working until it ends",
        async () => {
          const id = decodeURIComponent(page.url().split("#/keys/")[1]);
          await page.getByRole("button", { name: "Rotate" }).click();
          const dialog = page.getByTestId("confirm-dialog");
          // The API's own check of the value, said in the dialog.
          await dialog.getByLabel("Grace period (seconds)").fill("an hour");
          await dialog.getByRole("button", { name: "Rotate" }).click();
          await dialog.getByRole("alert").filter({ hasText: "grace_seconds" }).waitFor();
          assertEquals(await status(openaiCall(gw.url, secret)), 200, "not rotated");
          await dialog.getByLabel("Grace period (seconds)").fill("300");
          await dialog.getByRole("button", { name: "Rotate" }).click();
          const fresh = await page.getByTestId("secret").inputValue();
          const view = (await api(`/admin/keys/${id}`)).json;
          const until = view.previous_key_valid_until as string;
          assert(until, "the API reports the grace");
          const note = page.getByTestId("secret-dialog").locator("p", { hasText: "old secret" });
          assertEquals(await note.textContent(), `The old secret works until ${wall(until)}.`);
          await page.getByRole("button", { name: "Done" }).click();
          assertEquals(await status(openaiCall(gw.url, secret)), 200, "old secret, in its grace");
          assertEquals(await status(openaiCall(gw.url, fresh)), 200, "new secret");
          await page.getByTestId("previous-key").filter({ hasText: wall(until) }).waitFor();
          graced = secret;
          secret = fresh;
        },
      );

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
        assertEquals(await status(openaiCall(gw.url, graced)), 401, "the grace ends with the key");
      });

      const expiresDay = new Date(Date.parse(today) + 30 * 86_400_000).toISOString().slice(0, 10);
      await t.step(
        "edit a key in the page: the API's refusal shows at its field; a daily quota set here refuses requests",
        async () => {
          await open(page, `#/keys/${gw.keyId}`, "test-key");
          await page.getByRole("button", { name: "Edit" }).click();
          const form = page.getByTestId("key-edit");
          await form.waitFor();
          // rpm 0 is a number, so the page sends it; the admin API refuses it, next to the field.
          await form.locator("#edit-rpm").fill("0");
          await form.getByRole("button", { name: "Save" }).click();
          const rpmError = form.locator('[data-field="rpm"] .field-error');
          await rpmError.filter({ hasText: "must be 1 or more" }).waitFor();
          assertEquals(await form.locator("#edit-rpm").getAttribute("aria-invalid"), "true");
          assertEquals((await api(`/admin/keys/${gw.keyId}`)).json.rpm, null);
          await shot(page, "desktop-key-edit");

          await form.locator("#edit-rpm").fill("");
          await form.locator("#edit-daily_token_quota").fill("250");
          await form.locator("#edit-allowed_models").fill("claude-*");
          await form.locator("#edit-expires_at").fill(`${expiresDay}T12:00`);
          await form.getByRole("button", { name: "Add label" }).click();
          await form.getByLabel("Label 1 name").fill("team");
          await form.getByLabel("Label 1 value").fill("research");
          await form.getByRole("button", { name: "Save" }).click();
          await form.waitFor({ state: "detached" });
          await page.getByRole("status").filter({ hasText: "Saved." }).waitFor();
          const view = (await api(`/admin/keys/${gw.keyId}`)).json as Record<string, unknown> & {
            limits: Record<string, { used: number; limit: number; resets_at: string }>;
          };
          assertEquals(
            [view.rpm, view.daily_token_quota, view.allowed_models, view.metadata],
            [null, 250, ["claude-*"], { team: "research" }],
          );
          // Typed on the usage calendar's clock, not the browser's.
          assertEquals(view.expires_at, new Date(`${expiresDay}T12:00:00+05:30`).toISOString());
          await page.getByTestId("key-labels").filter({ hasText: "team: research" }).waitFor();

          // Today's use (its three requests) already counts against the new quota.
          const quota = view.limits.daily_token_quota;
          assert(quota.used >= 200, `used ${quota.used}`);
          const bar = page.locator('[data-testid="key-limits"] [data-limit="daily_token_quota"]');
          await bar.filter({ hasText: `${quota.used} / 250` }).waitFor();
          assertEquals(
            await bar.locator(".limit-reset").textContent(),
            `resets ${wall(quota.resets_at)}`,
          );
          assert((await bar.locator(".bar").getAttribute("class"))!.includes("near"));

          // The quota refuses the next request; the model allowlist refuses another model.
          const refused = await anthropicCall(gw.url, gw.secret);
          assertEquals(refused.status, 429);
          const body = await refused.json();
          assert(String(body.error.message).includes("daily token quota"), body.error.message);
          assertEquals(await status(openaiCall(gw.url, gw.secret)), 403);
          await page.reload();
          await bar.filter({ hasText: `${quota.used} / 250` }).waitFor();

          // The overview lists the key as near a limit, and the keys table shows it with its expiry.
          await open(page, "#/", "Overview");
          const near = page.getByTestId("near-limits").locator("li");
          await near.first().waitFor();
          assertEquals(await near.count(), 1);
          const text = (await near.textContent())!;
          assert(text.includes("test-key") && text.includes(`${quota.used} / 250`), text);
          await open(page, "#/keys", "Keys");
          const cells = await row(page, "keys-table", "test-key");
          assert(
            cells[5].includes("Tokens today") && cells[5].includes(`${quota.used} / 250`),
            cells[5],
          );
          assertEquals(cells[7], `${expiresDay} 12:00`);
          assertEquals(
            await page.locator('[data-testid="keys-table"] [role="meter"]').count(),
            1,
          );
          await shot(page, "desktop-keys");
        },
      );

      await t.step(
        "requests: the log shows what was sent, with its statuses; filters and pages match the API",
        async () => {
          // More than a page of requests.
          for (let i = 0; i < 55; i += 5) {
            const batch = Array.from({ length: 5 }, () => status(openaiCall(gw.url, secondSecret)));
            assertEquals(await Promise.all(batch), [200, 200, 200, 200, 200]);
          }
          type Entry = {
            id: string;
            time: string;
            status: number;
            key_name: string;
            provider: string | null;
          };
          const log = async (q: string) =>
            (await api(`/admin/requests?${q}`)).json as {
              requests: Entry[];
              next_cursor: string | null;
            };
          // Read in one go: the table may be re-rendering between two reads.
          const shown = () =>
            page.evaluate(`[...document.querySelectorAll(
              '[data-testid="requests-table"] tbody tr:not(.reserve)',
            )].map((r) => ({
              id: (r.querySelector("td:first-child span")?.title ?? "").replace("request ", ""),
              cells: [...r.querySelectorAll("td")].map((td) => td.textContent),
            }))`) as Promise<{ id: string; cells: string[] }[]>;
          const showsPage = async (want: Entry[], what: string) => {
            await waitFor(what, async () => {
              const got = await shown();
              return got.length === want.length && got.every((g, i) => g.id === want[i].id);
            });
            for (const [i, g] of (await shown()).entries()) {
              assertEquals(
                [g.cells[1], g.cells[3], num(g.cells[4])],
                [want[i].key_name, want[i].provider ?? "none", want[i].status],
                `${what} row ${i}`,
              );
            }
          };
          await open(page, "#/requests", "Requests");
          const first = await log("limit=50");
          assertEquals(first.requests.length, 50);
          await showsPage(first.requests, "page 1");
          await page.getByRole("button", { name: "Older" }).first().click();
          const second = await log(`limit=50&cursor=${first.next_cursor}`);
          await showsPage(second.requests, "page 2");
          // Everything sent before the extra traffic, newest first, with the status each client got.
          const statuses = second.requests.map((r) => `${r.key_name} ${r.status}`).reverse();
          for (
            const want of [
              "test-key 500",
              "second-key 200",
              "from-the-page 200",
              "test-key 429",
              "test-key 403",
            ]
          ) {
            assert(statuses.includes(want), `${want} in ${statuses.join(", ")}`);
          }
          await page.getByRole("button", { name: "Newer" }).first().click();
          await showsPage(first.requests, "back to page 1");

          await page.getByLabel("Status").selectOption("429");
          await page.getByRole("button", { name: "Apply" }).click();
          const limited = await log("status=429&limit=50");
          assertEquals(limited.requests.length, 1);
          await showsPage(limited.requests, "429 only");
          assertEquals((await shown())[0].cells[3], "none", "refused before a provider");

          // Times are typed on the usage calendar: since the minute of the 429, nothing older.
          const at = wall(limited.requests[0].time);
          await page.getByLabel("Status").selectOption("");
          await page.getByLabel(`Since (${USAGE_TZ})`).fill(at.replace(" ", "T"));
          await page.getByRole("button", { name: "Apply" }).click();
          const since = new Date(`${at.replace(" ", "T")}:00+05:30`).toISOString();
          await showsPage((await log(`since=${since}&limit=50`)).requests, "since the 429");
          await page.getByLabel(`Since (${USAGE_TZ})`).fill("");

          // From a key's page, its own requests: every outcome the test-key had.
          await open(page, `#/keys/${gw.keyId}`, "test-key");
          await page.getByRole("link", { name: "Its requests" }).click();
          await page.getByRole("heading", { level: 1, name: "Requests" }).waitFor();
          const own = await log(`key=${gw.keyId}&limit=50`);
          assertEquals(own.requests.map((r) => r.status), [403, 429, 500, 200, 200, 200]);
          await showsPage(own.requests, "test-key only");
          await shot(page, "desktop-requests");
        },
      );

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
            [`/keys/${gw.keyId}`, '[data-testid="key-chart-tokens"] canvas'],
            ["/requests", '[data-testid="requests-table"] tbody a'],
          ]
        ) {
          const { cls, moved } = await layoutShift(page, hash, ready);
          assert(cls < 0.02, `layout shift on #${hash}: ${cls} (moved: ${moved.join("; ")})`);
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
            [`#/keys/${gw.keyId}`, "test-key", "dark-key-page"],
            [`#/requests/${gw.keyId}`, "Requests", "dark-requests"],
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
        const fits = async (what: string) => {
          const [scroll, width] = await page.evaluate(
            "[document.documentElement.scrollWidth, window.innerWidth]",
          ) as number[];
          assert(scroll <= width, `${what} is ${scroll}px wide on a ${width}px screen`);
        };
        for (
          const [hash, heading, name] of [
            ["#/", "Overview", "phone-overview"],
            ["#/usage", "Usage", "phone-usage"],
            ["#/keys", "Keys", "phone-keys"],
            [`#/keys/${gw.keyId}`, "test-key", "phone-key-page"],
            ["#/models", "Models & providers", "phone-models"],
            [`#/requests/${gw.keyId}`, "Requests", "phone-requests"],
          ]
        ) {
          await open(page, hash, heading);
          await page.waitForTimeout(300);
          await fits(hash);
          await shot(page, name);
        }
        await open(page, `#/keys/${gw.keyId}`, "test-key");
        await page.getByRole("button", { name: "Edit" }).click();
        await page.getByTestId("key-edit").waitFor();
        await fits("the key edit form");
        await shot(page, "phone-key-edit");
        await page.getByTestId("key-edit").getByRole("button", { name: "Cancel" }).click();
        await page.setViewportSize({ width: 1280, height: 900 });
      });

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
