/**
 * The gateway's own wire shapes as zod schemas: the admin request bodies
 * (validated with them) and every response of the gateway's own endpoints.
 * `GET /openapi.json` is generated from these, and the tests check real
 * responses against them, so the documentation cannot drift.
 */
import { z } from "zod";
import { FORMAT_NAMES } from "../formats/mod.ts";
import { named } from "../http/named_schemas.ts";

const count = z.number().int().min(0);
const isoTime = z.string().describe("ISO 8601 time");

const positive = (what: string) =>
  z.number({ error: "must be a whole number" }).int("must be a whole number").min(
    1,
    "must be 1 or more",
  ).max(1e12).describe(what);
const dollars = (what: string) =>
  z.number({ error: "must be an amount in USD, e.g. 5 or 2.50" }).positive("must be more than 0")
    .max(1e9).refine(
      (v) => Math.abs(v * 1e6 - Math.round(v * 1e6)) < 1e-6,
      "at most 6 decimals (micro-dollars)",
    ).describe(what);

/** Fields a key body may set; on PATCH, null clears one. */
const keyFields = {
  allowed_providers: z.array(z.string().min(1).max(200)).min(1).max(100).nullish().describe(
    "provider ids this key may use; omitted or null: all",
  ),
  allowed_models: z.array(z.string().min(1).max(256)).min(1).max(200).nullish().describe(
    "model ids or globs (`claude-*`, `?` for one character) this key may use; null: all",
  ),
  rpm: positive("requests per minute").nullish(),
  tpm: positive("tokens (input + output, as metered) per minute").nullish(),
  max_concurrent: positive("requests and streams open at once").nullish(),
  daily_token_quota: positive("tokens per day (USAGE_TZ calendar)").nullish(),
  monthly_token_quota: positive("tokens per month (USAGE_TZ calendar)").nullish(),
  daily_budget_usd: dollars("USD per day (USAGE_TZ calendar)").nullish(),
  monthly_budget_usd: dollars("USD per month (USAGE_TZ calendar)").nullish(),
  expires_at: z.iso.datetime({ offset: true }).nullish().describe(
    "ISO 8601 time after which the key no longer works",
  ),
  metadata: z.record(z.string().min(1).max(64), z.string().max(256)).refine(
    (m) => Object.keys(m).length <= 32,
    "at most 32 labels",
  ).nullish().describe("free-form labels, shown in reports"),
};

/** Body of `POST /admin/keys`. */
export const CreateKeyBody = named(
  "CreateKeyBody",
  z.strictObject({
    name: z.string().trim().min(1, "name must not be empty").max(200).describe("display name"),
    enabled: z.boolean().optional().describe("default true"),
    ...keyFields,
  }),
);

/** Body of `PATCH /admin/keys/{id}`: the fields to change; null clears a limit or list. */
export const UpdateKeyBody = named(
  "UpdateKeyBody",
  z.strictObject({
    name: z.string().trim().min(1, "name must not be empty").max(200).optional(),
    enabled: z.boolean().optional(),
    ...keyFields,
  }).refine((b) => Object.keys(b).length > 0, "give at least one field to change"),
);

/** Body of `POST /admin/keys/{id}/rotate` (optional). */
export const RotateKeyBody = named(
  "RotateKeyBody",
  z.strictObject({
    grace_seconds: z.number().int().min(0).max(30 * 86_400).optional().describe(
      "how long the old secret keeps working (default 0: it stops at once)",
    ),
  }),
);

/** Error body of every admin call: Luna's `detail` plus a structured error. */
export const AdminError = named(
  "AdminError",
  z.object({
    detail: z.string(),
    error: z.object({
      message: z.string(),
      type: z.string(),
      code: z.string(),
      param: z.string().optional().describe("the body field at fault (invalid_body)"),
    }),
  }),
);

const bucketFields = {
  input_uncached: count.describe("prompt tokens neither read from nor written to a cache"),
  cache_read: count,
  cache_write: count,
  failed: count.describe("requests that failed"),
  incomplete: count.describe("requests whose usage is a lower bound"),
  web_search_requests: count,
  web_fetch_requests: count,
};

/** Cost beside tokens at every level of the usage reports. */
const costFields = {
  cost_usd: z.number().min(0).nullable().describe(
    "USD of the priced usage; null when none of it had a price",
  ),
  unpriced_requests: count.describe(
    "requests (and advisor uses) whose model had no price: their tokens count, their cost is unknown",
  ),
};

/** Per-model figures; `total` = `input` + `output`, `input` = the whole prompt. */
export const ModelStats = named(
  "ModelStats",
  z.object({
    total: count,
    requests: count,
    input: count,
    output: count,
    input_uncached: count,
    cache_read: count,
    cache_write: count,
    failed: count,
    incomplete: count,
    ...costFields,
  }),
);

const byModel = z.record(z.string(), ModelStats).describe("by model, sorted by total descending");

/** One limit's standing: the limit, what is used and held against it, when it resets. */
const LimitStanding = z.object({
  limit: z.number(),
  used: z.number().describe("committed in the current window"),
  reserved: z.number().describe("held by requests in flight (their worst case)"),
  remaining: z.number(),
  resets_at: isoTime.nullable().describe("null for max_concurrent"),
});

/** Every limit a key has, by name (money in USD). */
export const LimitsView = named(
  "LimitsView",
  z.partialRecord(
    z.enum([
      "rpm",
      "tpm",
      "max_concurrent",
      "daily_token_quota",
      "monthly_token_quota",
      "daily_budget_usd",
      "monthly_budget_usd",
    ]),
    LimitStanding,
  ),
);

/** A key as listed (never the secret). */
export const KeyView = named(
  "KeyView",
  z.object({
    id: z.string().describe("ULID; key routes take this id"),
    key: z.string().describe("the secret, masked"),
    name: z.string(),
    enabled: z.boolean(),
    created: isoTime,
    allowed_providers: z.array(z.string()).nullable(),
    allowed_models: z.array(z.string()).nullable(),
    rpm: count.nullable(),
    tpm: count.nullable(),
    max_concurrent: count.nullable(),
    daily_token_quota: count.nullable(),
    monthly_token_quota: count.nullable(),
    daily_budget_usd: z.number().nullable(),
    monthly_budget_usd: z.number().nullable(),
    expires_at: isoTime.nullable(),
    expired: z.boolean(),
    metadata: z.record(z.string(), z.string()).nullable(),
    previous_key_valid_until: isoTime.nullable().describe(
      "after a rotation with grace: until when the old secret still works",
    ),
    limits: LimitsView.describe("each limit that is set, with its consumption"),
    source: z.enum(["gateway", "luna"]),
    total_input: count.describe("whole prompt: input_uncached + cache_read + cache_write"),
    total_output: count,
    total_requests: count,
    last_used: isoTime.nullable(),
    ...bucketFields,
    // Usage cost (the cost work; the governance fields go above).
    ...costFields,
  }),
);

/** `GET /admin/keys` */
export const KeyList = named("KeyList", z.object({ keys: z.array(KeyView) }));

/** `POST /admin/keys`: the key and its secret, shown once. */
export const CreatedKey = named(
  "CreatedKey",
  KeyView.extend({ api_key: z.string().describe("the secret: shown only in this response") }),
);

/** `POST /admin/keys/{id}/rotate` */
export const RotatedKey = named(
  "RotatedKey",
  CreatedKey.extend({ status: z.literal("rotated") }),
);

/** Enable, disable, delete. */
export const KeyStatus = named(
  "KeyStatus",
  z.object({
    status: z.enum(["enabled", "disabled", "deleted"]),
    name: z.string(),
    id: z.string(),
  }),
);

const period = z.object({
  input: count,
  output: count,
  requests: count,
  ...bucketFields,
  ...costFields,
  by_model: byModel,
});

/** `GET /v1/key`: a client's own key, limits and usage (never the secret). */
export const OwnKey = named(
  "OwnKey",
  KeyView.pick({
    id: true,
    name: true,
    enabled: true,
    created: true,
    allowed_providers: true,
    allowed_models: true,
    rpm: true,
    tpm: true,
    max_concurrent: true,
    daily_token_quota: true,
    monthly_token_quota: true,
    daily_budget_usd: true,
    monthly_budget_usd: true,
    expires_at: true,
    expired: true,
    metadata: true,
    previous_key_valid_until: true,
  }).extend({
    limits: LimitsView,
    time_zone: z.string().describe("USAGE_TZ: the calendar of days and months"),
    usage: z.object({
      today: period.extend({ date: z.string() }),
      month: period.extend({ month: z.string().describe("YYYY-MM") }),
    }),
  }),
);

/** `GET /admin/keys/{id}/usage` */
export const KeyUsage = named(
  "KeyUsage",
  z.object({
    id: z.string(),
    name: z.string(),
    enabled: z.boolean(),
    usage: z.object({
      total_input: count,
      total_output: count,
      total_requests: count,
      last_used: isoTime.nullable(),
      ...bucketFields,
      ...costFields,
      daily: z.record(z.string(), period).describe("by YYYY-MM-DD in USAGE_TZ"),
      hourly: z.record(z.string(), period).describe('by "YYYY-MM-DD HH:00" in USAGE_TZ'),
      total_by_model: byModel,
    }),
  }),
);

/** `GET /admin/usage` */
export const UsageSummary = named(
  "UsageSummary",
  z.object({
    total_input_tokens: count,
    total_output_tokens: count,
    total_requests: count,
    total_keys: count,
    active_keys: count,
    ...bucketFields,
    ...costFields,
  }),
);

const byTenant = z.record(z.string(), byModel).describe("by key name, then model");

/** `GET /admin/usage/daily` */
export const DailyReport = named(
  "DailyReport",
  z.object({
    days: z.array(z.object({
      date: z.string(),
      total_input: count,
      total_output: count,
      total_requests: count,
      ...bucketFields,
      ...costFields,
      by_model: byModel,
      by_tenant: byTenant,
      keys: z.array(z.object({
        id: z.string(),
        name: z.string(),
        input: count,
        output: count,
        requests: count,
        ...bucketFields,
        ...costFields,
        by_model: byModel,
      })),
    })),
  }),
);

/** `GET /admin/usage/hourly` */
export const HourlyReport = named(
  "HourlyReport",
  z.object({
    date: z.string(),
    time_zone: z.string(),
    hours: z.array(z.object({
      hour: z.string().describe('"YYYY-MM-DD HH:00"'),
      total_input: count,
      total_output: count,
      total_requests: count,
      ...bucketFields,
      ...costFields,
      by_model: byModel,
      by_tenant: byTenant,
    })),
  }),
);

/** One request of the log (figures only: never prompt or completion text). */
export const LoggedRequest = named(
  "LoggedRequest",
  z.object({
    id: z.string().describe("the request id (ULID), as sent back in x-request-id"),
    time: isoTime.describe("when the request arrived"),
    key_id: z.string(),
    key_name: z.string(),
    model: z.string().describe("the model the client asked for"),
    provider: z.string().nullable().describe("the provider that served or last failed it"),
    endpoint: z.string(),
    stream: z.boolean(),
    status: z.number().int().describe("the HTTP status the client got"),
    input_uncached: count,
    cache_read: count,
    cache_write: count,
    output: count,
    cost_usd: z.number().min(0).nullable().describe("null when its model had no price"),
    latency_ms: count,
    ttfb_ms: count.nullable(),
    retries: count,
    complete: z.boolean().describe("false when its usage is a lower bound"),
    error: z.string().nullable().describe("why it failed or was refused"),
  }),
);

/** `GET /admin/requests` */
export const RequestLogPage = named(
  "RequestLogPage",
  z.object({
    requests: z.array(LoggedRequest).describe("newest first"),
    next_cursor: z.string().nullable().describe(
      "pass as cursor for the next (older) page; null when nothing is left",
    ),
  }),
);

/** `GET /admin/models` */
export const ModelsStatus = named(
  "ModelsStatus",
  z.object({
    providers: z.array(z.object({
      id: z.string(),
      name: z.string(),
      format: z.enum(FORMAT_NAMES),
      base_url: z.string(),
      api_key_env: z.string().nullable(),
      has_api_key: z.boolean(),
      model_prefixes: z.array(z.string()),
      breaker: z.object({
        state: z.enum(["closed", "open", "half_open"]),
        consecutive_failures: count,
        open_until: isoTime.nullable(),
      }),
      last_success: isoTime.nullable(),
      recent_error: z.object({ message: z.string(), status: z.number().nullable(), at: isoTime })
        .nullable(),
      latency_ms: z.number().nullable().describe("EWMA of time to response headers"),
      requests: count,
      failures: count,
      policy: z.record(z.string(), z.union([z.number(), z.string()])).describe(
        "timeouts, retries, breaker and disconnect settings in force",
      ),
    })),
    known_models: z.array(z.object({ id: z.string(), provider: z.string(), owned_by: z.string() })),
    routing: z.record(z.string(), z.array(z.string())),
    config: z.object({
      path: z.string(),
      loaded_at: isoTime,
      last_reload_error: z.object({ message: z.string(), at: isoTime }).nullable(),
    }),
  }),
);

/** `GET /admin/info`: what the dashboard and scripts need to read the other answers. */
export const AdminInfo = named(
  "AdminInfo",
  z.object({
    version: z.string(),
    time_zone: z.string().describe("USAGE_TZ: the calendar of days, hours and months"),
    today: z.string().describe("YYYY-MM-DD in time_zone"),
    month: z.string().describe("YYYY-MM in time_zone"),
    request_log_days: count.describe("days requests stay in the request log; 0: no request log"),
  }),
);

/** `GET /health` */
export const Health = named(
  "Health",
  z.object({
    status: z.enum(["ok", "degraded"]),
    providers: z.array(z.string()),
    models: z.array(z.string()),
    total_providers: count,
    total_models: count,
    configured_providers: z.array(z.string()),
    kv: z.enum(["ok", "unavailable"]),
    admin_api: z.boolean(),
    version: z.string(),
    uptime_s: count,
    workers: z.number().int().min(1).describe("workers serving now (1 without WORKERS)"),
    worker: z.number().int().min(1).describe("the worker that answered"),
  }),
);
