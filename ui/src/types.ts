/**
 * The admin API's responses, as far as the dashboard reads them
 * (`lib/admin/schemas.ts` is the source of truth; `GET /openapi.json`
 * describes them).
 */

/** The four token buckets. */
export interface Buckets {
  input_uncached: number;
  cache_read: number;
  cache_write: number;
  output: number;
}

/** What usage cost, at `models.json` prices. */
export interface Priced {
  /** USD; null when none of the usage had a price. */
  cost_usd: number | null;
  /** Requests whose model had no price: their tokens count, their cost is unknown. */
  unpriced_requests: number;
}

/** One model's figures in a report. */
export interface ModelStats extends Buckets, Priced {
  total: number;
  requests: number;
  input: number;
  failed: number;
  incomplete: number;
}

/** A period's figures for one key (daily report `keys[]`, key usage `daily`/`hourly`). */
export interface PeriodStats extends Buckets, Priced {
  input: number;
  requests: number;
  failed: number;
  incomplete: number;
  by_model: Record<string, ModelStats>;
}

/** A period's totals (daily report `days[]`, hourly report `hours[]`). */
export interface PeriodTotals extends Priced {
  total_input: number;
  total_output: number;
  total_requests: number;
  input_uncached: number;
  cache_read: number;
  cache_write: number;
  failed: number;
  incomplete: number;
  by_model: Record<string, ModelStats>;
}

/** `GET /admin/usage/daily` */
export interface DailyReport {
  days: (PeriodTotals & { date: string; keys: (PeriodStats & { id: string; name: string })[] })[];
}

/** `GET /admin/usage/hourly` */
export interface HourlyReport {
  date: string;
  time_zone: string;
  hours: (PeriodTotals & { hour: string })[];
}

/** One limit's standing (money in USD). */
export interface LimitUse {
  limit: number;
  /** Committed in the current window. */
  used: number;
  /** Held by requests in flight (their worst case). */
  reserved: number;
  remaining: number;
  /** When the window starts over; null for `max_concurrent`. */
  resets_at: string | null;
}

/** The limits a key can have; each is also a field of the key view (null: not set). */
export const LIMIT_FIELDS = [
  "rpm",
  "tpm",
  "max_concurrent",
  "daily_token_quota",
  "monthly_token_quota",
  "daily_budget_usd",
  "monthly_budget_usd",
] as const;

/** A limit's name. */
export type LimitField = typeof LIMIT_FIELDS[number];

/** A key as `GET /admin/keys` lists it (never the secret). */
export interface KeyView extends Priced, Record<LimitField, number | null> {
  id: string;
  /** The secret, masked. */
  key: string;
  name: string;
  enabled: boolean;
  created: string;
  allowed_providers: string[] | null;
  allowed_models: string[] | null;
  expires_at: string | null;
  expired: boolean;
  metadata: Record<string, string> | null;
  /** After a rotation with grace: until when the old secret still works. */
  previous_key_valid_until: string | null;
  /** Each limit that is set, with its standing. */
  limits?: Partial<Record<LimitField, LimitUse>>;
  source: string;
  total_input: number;
  total_output: number;
  total_requests: number;
  last_used: string | null;
  input_uncached: number;
  cache_read: number;
  cache_write: number;
  failed: number;
  incomplete: number;
}

/** `POST /admin/keys` and `POST /admin/keys/{id}/rotate` */
export interface KeyWithSecret extends KeyView {
  api_key: string;
}

/** `PATCH /admin/keys/{id}`: the fields to change; null clears one. */
export type KeyChanges = Partial<
  & Pick<KeyView, "name" | "allowed_providers" | "allowed_models" | "expires_at" | "metadata">
  & Record<LimitField, number | null>
>;

/** `GET /admin/keys/{id}/usage` */
export interface KeyUsageReport {
  id: string;
  name: string;
  enabled: boolean;
  usage: Priced & {
    total_input: number;
    total_output: number;
    total_requests: number;
    last_used: string | null;
    daily: Record<string, PeriodStats>;
    hourly: Record<string, PeriodStats>;
    total_by_model: Record<string, ModelStats>;
  };
}

/** One provider in `GET /admin/models`. */
export interface ProviderStatus {
  id: string;
  name: string;
  format: string;
  base_url: string;
  api_key_env: string | null;
  has_api_key: boolean;
  model_prefixes: string[];
  breaker: { state: string; consecutive_failures: number; open_until: string | null };
  last_success: string | null;
  recent_error: { message: string; at: string | null; status: number | null } | null;
  /** Moving average of recent upstream latency. */
  latency_ms: number | null;
  requests: number;
  failures: number;
}

/** `GET /admin/models` */
export interface ModelsStatus {
  providers: ProviderStatus[];
  known_models: { id: string; provider: string; owned_by: string }[];
  routing: Record<string, string[]>;
  config: {
    path: string;
    loaded_at: string;
    last_reload_error: { message: string; at: string } | null;
  };
}

/** One entry of the request log. */
export interface RequestEntry {
  id: string;
  time: string;
  key_id: string;
  key_name: string;
  model: string;
  /** The provider that served or last failed it; null when refused before one was chosen. */
  provider: string | null;
  endpoint: string;
  stream: boolean;
  status: number;
  input_uncached: number;
  cache_read: number;
  cache_write: number;
  output: number;
  cost_usd: number | null;
  latency_ms: number;
  ttfb_ms: number | null;
  retries: number;
  complete: boolean;
  error: string | null;
}

/** `GET /admin/requests` */
export interface RequestPage {
  requests: RequestEntry[];
  next_cursor: string | null;
}
