/**
 * `GET /openapi.json`: an OpenAPI 3.1 description of the gateway's own
 * endpoints, generated from the named zod schemas (the admin API's in
 * `schemas.ts`, each format's error and list shapes in its module). The
 * proxied endpoints come from the formats and are described by reference to
 * their upstream APIs; the admin API in full.
 */
import { z } from "zod";
import { FORMATS } from "../formats/mod.ts";
import type { Handler } from "../http/call.ts";
import { jsonResponse } from "../http/json.ts";
import { schemaRegistry } from "../http/named_schemas.ts";
import { VERSION } from "../ops/health.ts";
import "./schemas.ts"; // registers the admin schemas

const ref = (id: string) => ({ $ref: `#/components/schemas/${id}` });
const json = (id: string) => ({ "application/json": { schema: ref(id) } });

function components() {
  const { schemas } = z.toJSONSchema(schemaRegistry, {
    uri: (id) => `#/components/schemas/${id}`,
    io: "output",
  });
  const out: Record<string, unknown> = {};
  for (const [id, schema] of Object.entries(schemas)) {
    const { $schema: _s, $id: _i, ...rest } = schema as Record<string, unknown>;
    out[id] = rest;
  }
  return out;
}

const adminErrors = {
  "400": { description: "bad request body or query", content: json("AdminError") },
  "401": { description: "missing or unknown admin key", content: json("AdminError") },
  "403": { description: "a client key, not the admin key", content: json("AdminError") },
  "503": { description: "the admin API is disabled: set ADMIN_KEY", content: json("AdminError") },
};

function adminOp(summary: string, ok: string, extra: Record<string, unknown> = {}) {
  return {
    tags: ["admin"],
    summary,
    security: [{ adminKey: [] }, { bearer: [] }],
    responses: { "200": { description: "OK", content: json(ok) }, ...adminErrors },
    ...extra,
  };
}

const idParam = {
  name: "id",
  in: "path",
  required: true,
  description: "key id (from GET /admin/keys), never the secret",
  schema: { type: "string" },
};
const dateParam = (name: string, description: string) => ({
  name,
  in: "query",
  required: false,
  description,
  schema: { type: "string", pattern: "^\\d{4}-\\d{2}-\\d{2}$" },
});

const queryParam = (
  name: string,
  description: string,
  schema: Record<string, unknown> = { type: "string" },
) => ({ name, in: "query", required: false, description, schema });

const proxyBody = {
  required: true,
  content: {
    "application/json": {
      schema: {
        type: "object",
        required: ["model"],
        properties: {
          model: { type: "string", description: "routes the request (see models.json)" },
          stream: { type: "boolean" },
        },
        additionalProperties: true,
      },
    },
  },
};

function proxyOp(summary: string, docs: string, errorSchema: string, description: string) {
  return {
    tags: ["proxy"],
    summary,
    description,
    externalDocs: { description: "upstream API reference", url: docs },
    security: [{ clientKey: [] }, { bearer: [] }],
    requestBody: proxyBody,
    responses: {
      "200": {
        description:
          "the upstream's response, unchanged (JSON, or text/event-stream when streaming)",
        content: { "application/json": {}, "text/event-stream": {} },
      },
      default: {
        description:
          "upstream errors pass through with their status and body; errors the gateway raises (400, 401, 403, 404, 405, 413, 502, 503, 504) use this shape",
        content: json(errorSchema),
      },
    },
  };
}

/** The id a schema was registered under. */
function idOf(schema: z.ZodType): string {
  return schemaRegistry.get(schema)!.id;
}

/** One path per proxied endpoint of every format. */
function proxyPaths() {
  return Object.fromEntries(
    FORMATS.flatMap((f) =>
      f.endpoints.map((e) => [
        e.path,
        {
          post: proxyOp(
            e.summary,
            e.docs,
            idOf(f.schemas.error),
            `${f.label}, passed through to the provider serving \`model\`${
              f.streamUsage
                ? "; streaming requests get usage reporting turned on upstream, and the usage event is removed when the client did not ask for it"
                : ""
            }. Query strings are forwarded.`,
          ),
        },
      ])
    ),
  );
}

/** The OpenAPI document. */
function openapiDocument() {
  return {
    openapi: "3.1.0",
    info: {
      title: "LLM API gateway",
      version: VERSION,
      description:
        "Routes Anthropic Messages and OpenAI Chat Completions requests by model, passes them through unchanged, and meters tokens per key, day, hour and model.",
    },
    components: {
      securitySchemes: {
        clientKey: {
          type: "apiKey",
          in: "header",
          name: "x-api-key",
          description: "a gateway key",
        },
        adminKey: { type: "apiKey", in: "header", name: "x-api-key", description: "ADMIN_KEY" },
        bearer: { type: "http", scheme: "bearer" },
      },
      schemas: components(),
    },
    paths: {
      ...proxyPaths(),
      "/v1/key": {
        get: {
          tags: ["proxy"],
          summary:
            "The calling key: its limits with consumption and reset times, today's and this month's usage and cost",
          security: [{ clientKey: [] }, { bearer: [] }],
          responses: { "200": { description: "OK", content: json("OwnKey") } },
        },
      },
      "/v1/models": {
        get: {
          tags: ["proxy"],
          summary: "Models the calling key can reach",
          description:
            "In the list shape of the format the request asks for: Anthropic's (its models only) when it carries anthropic-version, else OpenAI's.",
          security: [{ clientKey: [] }, { bearer: [] }],
          parameters: [
            { name: "limit", in: "query", schema: { type: "integer", minimum: 1, maximum: 1000 } },
            { name: "after_id", in: "query", schema: { type: "string" } },
            { name: "before_id", in: "query", schema: { type: "string" } },
          ],
          responses: {
            "200": {
              description: "OK",
              content: {
                "application/json": {
                  schema: { oneOf: FORMATS.map((f) => ref(idOf(f.schemas.modelList))) },
                },
              },
            },
          },
        },
      },
      "/v1/models/{id}": {
        get: {
          tags: ["proxy"],
          summary: "One model the calling key can reach",
          security: [{ clientKey: [] }, { bearer: [] }],
          parameters: [{ name: "id", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            "200": { description: "OK" },
            "404": { description: "not reachable with this key" },
          },
        },
      },
      "/health": {
        get: {
          tags: ["operations"],
          summary: "Health (no auth); 503 when KV does not answer",
          responses: {
            "200": { description: "healthy", content: json("Health") },
            "503": { description: "degraded", content: json("Health") },
          },
        },
      },
      "/metrics": {
        get: {
          tags: ["operations"],
          summary: "Prometheus metrics (admin key unless METRICS_PUBLIC=true)",
          security: [{ adminKey: [] }, { bearer: [] }, {}],
          responses: {
            "200": { description: "text exposition format", content: { "text/plain": {} } },
          },
        },
      },
      "/openapi.json": {
        get: {
          tags: ["operations"],
          summary: "This document",
          responses: { "200": { description: "OK" } },
        },
      },
      "/admin/keys": {
        get: adminOp("List keys (never secrets)", "KeyList"),
        post: {
          ...adminOp("Create a key; the secret is in this response only", "CreatedKey"),
          requestBody: { required: true, content: json("CreateKeyBody") },
          responses: {
            "200": { description: "created", content: json("CreatedKey") },
            ...adminErrors,
          },
        },
      },
      "/admin/keys/{id}": {
        get: adminOp("One key with its totals and each limit's consumption", "KeyView", {
          parameters: [idParam],
        }),
        patch: {
          ...adminOp(
            "Change a key: name, enabled, allowlists, limits, expiry, metadata",
            "KeyView",
            {
              parameters: [idParam],
            },
          ),
          requestBody: { required: true, content: json("UpdateKeyBody") },
        },
        delete: adminOp("Delete a key (usage history is kept)", "KeyStatus", {
          parameters: [idParam],
        }),
      },
      "/admin/keys/{id}/usage": {
        get: adminOp("A key's usage: daily, hourly, by model", "KeyUsage", {
          parameters: [
            idParam,
            dateParam("date", "one day"),
            dateParam("from", "first day"),
            dateParam("to", "last day"),
          ],
        }),
      },
      "/admin/keys/{id}/enable": {
        post: adminOp("Enable a key", "KeyStatus", { parameters: [idParam] }),
      },
      "/admin/keys/{id}/disable": {
        post: adminOp("Disable a key (effective at once)", "KeyStatus", { parameters: [idParam] }),
      },
      "/admin/keys/{id}/rotate": {
        post: {
          ...adminOp(
            "New secret for the same key; the old one stops working at once or after grace_seconds",
            "RotatedKey",
            { parameters: [idParam] },
          ),
          requestBody: { required: false, content: json("RotateKeyBody") },
        },
      },
      "/admin/usage": { get: adminOp("Usage totals", "UsageSummary") },
      "/admin/usage/daily": {
        get: adminOp("Usage by day (all days, one date, or from/to)", "DailyReport", {
          parameters: [
            dateParam("date", "one day"),
            dateParam("from", "first day"),
            dateParam("to", "last day"),
          ],
        }),
      },
      "/admin/usage/hourly": {
        get: adminOp("Usage by hour of one day (default today in USAGE_TZ)", "HourlyReport", {
          parameters: [dateParam("date", "the day")],
        }),
      },
      "/admin/info": {
        get: adminOp(
          "Version, the usage calendar (time zone, today) and request-log retention",
          "AdminInfo",
        ),
      },
      "/admin/models": {
        get: adminOp("Providers with key and health status, models, routing", "ModelsStatus"),
      },
      "/admin/ui": {
        get: {
          tags: ["admin"],
          summary: "The admin dashboard page (no auth: it holds no data; it calls this API)",
          responses: { "200": { description: "HTML", content: { "text/html": {} } } },
        },
      },
      "/admin/ui/{asset}": {
        get: {
          tags: ["admin"],
          summary: "The dashboard's script, style sheet and icon",
          parameters: [{ name: "asset", in: "path", required: true, schema: { type: "string" } }],
          responses: {
            "200": { description: "the file" },
            "404": { description: "no such asset" },
          },
        },
      },
      "/admin/requests": {
        get: adminOp("Recent requests, newest first (kept REQUEST_LOG_DAYS)", "RequestLogPage", {
          description:
            "At most 10,000 entries are examined per call: with rare filters a page can hold fewer than limit entries and still have a next_cursor.",
          parameters: [
            queryParam("key", "a key id: its requests only"),
            queryParam("model", "the model as the client sent it (exact)"),
            queryParam("status", "an HTTP status (429) or a class (2xx, 4xx, 5xx)", {
              type: "string",
              pattern: "^([1-5][0-9][0-9]|[1-5]xx)$",
            }),
            queryParam("since", "ISO time with offset, or a day (YYYY-MM-DD, USAGE_TZ)"),
            queryParam("until", "ISO time with offset, or a day (inclusive)"),
            queryParam("limit", "entries per page (default 100)", {
              type: "integer",
              minimum: 1,
              maximum: 1000,
            }),
            queryParam("cursor", "next_cursor of the previous page"),
          ],
          responses: {
            "200": { description: "OK", content: json("RequestLogPage") },
            "404": { description: "no key with that id", content: json("AdminError") },
            ...adminErrors,
          },
        }),
      },
    },
  };
}

/** `GET /openapi.json` (no auth: it holds no secrets). */
export const openapiEndpoint: Handler = () => jsonResponse(200, openapiDocument());
