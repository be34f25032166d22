/**
 * `GET /openapi.json` describes every route the gateway serves, every
 * reference resolves, and real responses of the gateway's own endpoints
 * match the zod schemas the document is generated from.
 */
import { assert, assertEquals } from "./support/assert.ts";
import { admin, post, startStack } from "./support/gateway.ts";
import { ROUTES } from "../lib/http/routes.ts";
import * as S from "../lib/admin/schemas.ts";
import { anthropic } from "../lib/formats/anthropic.ts";
import { openai } from "../lib/formats/openai.ts";
import type { z } from "zod";

function refs(node: unknown, out: string[] = []): string[] {
  if (Array.isArray(node)) { for (const n of node) refs(n, out); }
  else if (node && typeof node === "object") {
    for (const [k, v] of Object.entries(node)) {
      if (k === "$ref" && typeof v === "string") out.push(v);
      else refs(v, out);
    }
  }
  return out;
}

function check<T>(schema: z.ZodType<T>, value: unknown, what: string): void {
  const r = schema.safeParse(value);
  assert(
    r.success,
    `${what} does not match its schema: ${r.success ? "" : JSON.stringify(r.error.issues[0])}`,
  );
}

Deno.test("openapi.json lists every route with its method, and every $ref resolves", async () => {
  const { t, close } = await startStack(() => Response.json({}));
  try {
    const res = await fetch(`${t.url}/openapi.json`);
    assertEquals(res.status, 200);
    const doc = await res.json();
    assertEquals(doc.openapi, "3.1.0");
    for (const r of ROUTES) {
      const path = r.path.replace(/:(\w+)/g, "{$1}");
      assert(doc.paths[path], `path ${path} documented`);
      assert(doc.paths[path][r.method.toLowerCase()], `${r.method} ${path} documented`);
    }
    for (const ref of refs(doc)) {
      const id = ref.replace("#/components/schemas/", "");
      assert(doc.components.schemas[id], `${ref} resolves`);
    }
    const create = doc.components.schemas.CreateKeyBody;
    assertEquals(create.required, ["name"]);
    assertEquals(create.additionalProperties, false);
  } finally {
    await close();
  }
});

Deno.test("real responses match the documented schemas", async () => {
  const { t, close } = await startStack(() =>
    Response.json({
      type: "message",
      usage: { input_tokens: 2, cache_read_input_tokens: 3, output_tokens: 4 },
    })
  );
  try {
    const res = await post(`${t.url}/v1/messages`, { model: "claude-test" }, {
      "x-api-key": t.secret,
    });
    await res.arrayBuffer();
    const created = await admin(t.url, "POST", "/admin/keys", { name: "docs" });
    check(S.CreatedKey, created.json, "POST /admin/keys");
    const id = created.json.id as string;
    check(S.KeyList, (await admin(t.url, "GET", "/admin/keys")).json, "GET /admin/keys");
    check(
      S.KeyView,
      (await admin(t.url, "GET", `/admin/keys/${t.keyId}`)).json,
      "GET /admin/keys/{id}",
    );
    check(
      S.KeyUsage,
      (await admin(t.url, "GET", `/admin/keys/${t.keyId}/usage`)).json,
      "key usage",
    );
    check(S.KeyStatus, (await admin(t.url, "POST", `/admin/keys/${id}/disable`)).json, "disable");
    check(S.RotatedKey, (await admin(t.url, "POST", `/admin/keys/${id}/rotate`)).json, "rotate");
    check(S.KeyStatus, (await admin(t.url, "DELETE", `/admin/keys/${id}`)).json, "delete");
    check(S.UsageSummary, (await admin(t.url, "GET", "/admin/usage")).json, "usage");
    check(S.DailyReport, (await admin(t.url, "GET", "/admin/usage/daily")).json, "daily");
    check(S.HourlyReport, (await admin(t.url, "GET", "/admin/usage/hourly")).json, "hourly");
    check(S.ModelsStatus, (await admin(t.url, "GET", "/admin/models")).json, "models");
    const log = (await admin(t.url, "GET", "/admin/requests")).json;
    check(S.RequestLogPage, log, "requests");
    assert((log.requests as unknown[]).length > 0, "the request above is in the log");
    check(S.AdminError, (await admin(t.url, "GET", "/admin/keys/nope")).json, "admin 404");
    check(S.Health, await (await fetch(`${t.url}/health`)).json(), "health");
    const h = { "x-api-key": t.secret };
    check(
      openai.schemas.modelList,
      await (await fetch(`${t.url}/v1/models`, { headers: h })).json(),
      "models",
    );
    check(
      anthropic.schemas.modelList,
      await (await fetch(`${t.url}/v1/models`, {
        headers: { ...h, "anthropic-version": "2023-06-01" },
      }))
        .json(),
      "anthropic models",
    );
    check(
      anthropic.schemas.error,
      await (await post(`${t.url}/v1/messages`, {}, h)).json(),
      "anthropic error",
    );
    check(
      openai.schemas.error,
      await (await post(`${t.url}/v1/chat/completions`, {}, h)).json(),
      "openai error",
    );
  } finally {
    await close();
  }
});
