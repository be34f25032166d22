/**
 * The checks on admin input that the admin API and the command line share,
 * so both accept and refuse exactly the same values: dates (real calendar
 * days, ranges in order), provider ids (known to the registry), key ids
 * (existing, not deleted) and key bodies (the zod schemas of `schemas.ts`).
 *
 * Each check throws {@link InvalidInput}; the API renders it in its admin
 * shape, the CLI prints its message with an exit status. Callers pass how
 * they name a value (`from` in a query string, `--from` on the command line)
 * so messages point at what the user typed.
 */
import type { z } from "zod";
import { quote } from "../http/client_text.ts";
import { GatewayError } from "../http/errors.ts";
import type { Registry } from "../config/registry.ts";
import type { KeyChanges, KeyRecord, KeyStore, NewKey } from "../store/keys.ts";
import { CreateKeyBody, RotateKeyBody, UpdateKeyBody } from "./schemas.ts";

/** Refused admin input: 400 (malformed or inconsistent) or 404 (no such key). */
export class InvalidInput extends GatewayError {
  constructor(status: 400 | 404, code: string, message: string, param?: string) {
    super(status, code, message);
    this.param = param;
  }
}

/** How a surface names an input field (`from` for the API, `--from` for the CLI). */
export type Label = (field: string) => string;

const asIs: Label = (field) => field;

const DATE_RE = /^\d{4}-\d{2}-\d{2}$/;

/** A `YYYY-MM-DD` calendar date, or undefined when absent or empty. */
export function parseDate(value: string | null | undefined, name: string): string | undefined {
  if (value === null || value === undefined || value === "") return undefined;
  // Date.parse rolls "2026-02-30" over to March 2; a real date survives the round trip.
  const ms = DATE_RE.test(value) ? Date.parse(value) : NaN;
  if (Number.isNaN(ms) || new Date(ms).toISOString().slice(0, 10) !== value) {
    throw new InvalidInput(400, "invalid_date", `${name} must be a date as YYYY-MM-DD`);
  }
  return value;
}

/** Raw date inputs: one `date`, or a `from`..`to` range (either end optional). */
export interface DateInput {
  date?: string | null;
  from?: string | null;
  to?: string | null;
}

/** An inclusive range of days; an absent end is open. */
export interface DateRange {
  from?: string;
  to?: string;
}

/** Validates `date` (which wins) or `from`/`to`; `from` after `to` is refused. */
export function parseDateRange(input: DateInput, label: Label = asIs): DateRange {
  const date = parseDate(input.date, label("date"));
  if (date) return { from: date, to: date };
  const from = parseDate(input.from, label("from"));
  const to = parseDate(input.to, label("to"));
  if (from && to && from > to) {
    throw new InvalidInput(
      400,
      "invalid_date_range",
      `${label("from")} (${from}) is after ${label("to")} (${to}); give the earlier day first`,
    );
  }
  return { from, to };
}

/** Refuses provider ids the registry does not know (`ids` absent: all providers). */
function checkProviders(
  registry: Registry,
  ids: readonly string[] | null | undefined,
  name: string,
): void {
  for (const id of ids ?? []) {
    if (!registry.providers.has(id)) {
      const known = [...registry.providers.keys()].join(", ");
      throw new InvalidInput(
        400,
        "unknown_provider",
        `${name}: unknown provider ${quote(id)} (known: ${known})`,
      );
    }
  }
}

/**
 * The key with this id; deleted keys count as absent. The message never
 * repeats the id: callers sometimes paste a secret where an id belongs.
 */
export function requireKey(keys: KeyStore, id: string, hint: string): KeyRecord {
  const k = keys.get(id);
  if (!k || k.deleted) {
    throw new InvalidInput(404, "key_not_found", `no API key with that id (${hint})`);
  }
  return k;
}

/** Parses `raw` with a body schema; the first issue becomes the message. */
function parseBody<T>(schema: z.ZodType<T>, raw: unknown, label: Label = asIs): T {
  const r = schema.safeParse(raw);
  if (r.success) return r.data;
  const issue = r.error.issues[0];
  const [field, ...within] = issue.path.map(String);
  const where = field === undefined ? "" : `${[label(field), ...within].join(".")}: `;
  const param = field === undefined ? undefined : [field, ...within].join(".");
  throw new InvalidInput(400, "invalid_body", `${where}${issue.message}`, param);
}

type KeyBody = z.infer<typeof UpdateKeyBody>;

const LIMIT_FIELDS = [
  ["rpm", "rpm"],
  ["tpm", "tpm"],
  ["max_concurrent", "maxConcurrent"],
  ["daily_token_quota", "dailyTokens"],
  ["monthly_token_quota", "monthlyTokens"],
] as const;
const BUDGET_FIELDS = [
  ["daily_budget_usd", "dailyMicroUsd"],
  ["monthly_budget_usd", "monthlyMicroUsd"],
] as const;

/** A validated key body as key changes (money to micro-dollars; null clears). */
function changesOf(body: KeyBody): KeyChanges {
  const limits: NonNullable<KeyChanges["limits"]> = {};
  for (const [field, name] of LIMIT_FIELDS) {
    if (body[field] !== undefined) limits[name] = body[field];
  }
  for (const [field, name] of BUDGET_FIELDS) {
    const v = body[field];
    if (v !== undefined) limits[name] = v === null ? null : Math.round(v * 1e6);
  }
  const changes: KeyChanges = {
    name: body.name,
    enabled: body.enabled,
    allowedProviders: body.allowed_providers,
    allowedModels: body.allowed_models,
    expiresAt: body.expires_at && new Date(body.expires_at).toISOString(),
    metadata: body.metadata,
  };
  if (Object.keys(limits).length > 0) changes.limits = limits;
  return changes;
}

/**
 * A `POST /admin/keys` body (or the CLI's equivalent), validated, as a new
 * key. The registry is read only when the body names providers, so the CLI
 * need not load `models.json` for other keys.
 */
export async function newKeyFromBody(
  raw: unknown,
  registry: () => Registry | Promise<Registry>,
  label: Label = asIs,
): Promise<NewKey> {
  const body = parseBody(CreateKeyBody, raw, label);
  if (body.allowed_providers) {
    checkProviders(await registry(), body.allowed_providers, label("allowed_providers"));
  }
  const { name, ...changes } = changesOf(body);
  return { ...changes, name: name! };
}

/** A `PATCH /admin/keys/{id}` body (or `keys edit`), validated, as key changes. */
export async function keyChangesFromBody(
  raw: unknown,
  registry: () => Registry | Promise<Registry>,
  label: Label = asIs,
): Promise<KeyChanges> {
  const body = parseBody(UpdateKeyBody, raw, label);
  if (body.allowed_providers) {
    checkProviders(await registry(), body.allowed_providers, label("allowed_providers"));
  }
  return changesOf(body);
}

/** A `POST /admin/keys/{id}/rotate` body (or `keys rotate --grace`): the grace in ms. */
export function rotationGraceMs(raw: unknown, label: Label = asIs): number {
  return (parseBody(RotateKeyBody, raw ?? {}, label).grace_seconds ?? 0) * 1000;
}
