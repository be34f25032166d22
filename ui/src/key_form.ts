/**
 * The key edit form's logic, pure: the form's fields from a key view, the
 * `PATCH /admin/keys/{id}` body of what the user changed, and which field an
 * error of the admin API is about. The page checks only what it must to
 * build a body (a number is a number); the admin API validates the values
 * and its message is shown next to the field it names.
 */
import type { KeyChanges, KeyView, LimitField } from "./types.ts";
import { LIMIT_FIELDS } from "./types.ts";
import { wallTime, zonedInstant } from "./zone.ts";

/** One metadata label as typed. */
export interface Label {
  key: string;
  value: string;
}

/** The form's fields, as typed. */
export interface KeyForm {
  name: string;
  /** null: every provider. */
  providers: string[] | null;
  /** Model ids or globs, separated by commas or new lines; empty: every model. */
  models: string;
  /** Each limit as typed; empty: no limit. */
  limits: Record<LimitField, string>;
  /** `datetime-local` value in the usage time zone; empty: never expires. */
  expires: string;
  metadata: Label[];
}

/** A field of the form (a key body field). */
export type FormField =
  | "name"
  | "allowed_providers"
  | "allowed_models"
  | LimitField
  | "expires_at"
  | "metadata";

/** What to send, or what the page could not read (by field). */
export type FormResult =
  | { ok: true; changes: KeyChanges }
  | { ok: false; errors: Partial<Record<FormField, string>> };

/** The form filled in from a key as it is. */
export function formOf(k: KeyView, timeZone: string): KeyForm {
  const limits = {} as Record<LimitField, string>;
  for (const f of LIMIT_FIELDS) limits[f] = k[f] === null ? "" : String(k[f]);
  return {
    name: k.name,
    providers: k.allowed_providers && [...k.allowed_providers],
    models: (k.allowed_models ?? []).join("\n"),
    limits,
    expires: k.expires_at ? wallTime(Date.parse(k.expires_at), timeZone) : "",
    metadata: Object.entries(k.metadata ?? {}).map(([key, value]) => ({
      key,
      value,
    })),
  };
}

/** A list typed one per line or comma-separated; null when empty. */
function listOf(text: string): string[] | null {
  const items = text.split(/[\n,]/).map((s) => s.trim()).filter(Boolean);
  return items.length ? [...new Set(items)] : null;
}

const sameList = (a: readonly string[] | null, b: readonly string[] | null) =>
  JSON.stringify(a && [...a].sort()) === JSON.stringify(b && [...b].sort());

/** The number typed (null when empty), or undefined when it is not a number. */
function numberOf(text: string): number | null | undefined {
  const t = text.trim().replaceAll(",", "").replace(/^\$/, "");
  if (t === "") return null;
  const n = Number(t);
  return /^[+-]?(\d+\.?\d*|\.\d+)([eE][+-]?\d+)?$/.test(t) && Number.isFinite(n) ? n : undefined;
}

/**
 * The changes the form makes to the key: only fields that differ (null
 * clears one). Values the page cannot read come back as errors instead.
 */
export function changesOf(
  k: KeyView,
  f: KeyForm,
  timeZone: string,
): FormResult {
  const changes: KeyChanges = {};
  const errors: Partial<Record<FormField, string>> = {};
  if (f.name.trim() !== k.name) changes.name = f.name.trim();
  if (!sameList(f.providers, k.allowed_providers)) {
    changes.allowed_providers = f.providers;
  }
  const models = listOf(f.models);
  if (!sameList(models, k.allowed_models)) changes.allowed_models = models;
  for (const field of LIMIT_FIELDS) {
    const v = numberOf(f.limits[field]);
    if (v === undefined) errors[field] = "Enter a number, or leave it empty for no limit.";
    else if (v !== k[field]) changes[field] = v;
  }
  const expires = f.expires.trim();
  const current = k.expires_at && wallTime(Date.parse(k.expires_at), timeZone);
  if (expires === "") {
    if (k.expires_at !== null) changes.expires_at = null;
  } else if (expires !== current) {
    // The field shows minutes: an expiry with seconds stays as it is unless the field is changed.
    const at = zonedInstant(expires, timeZone);
    if (at === null) errors.expires_at = "Enter a date and time, or leave it empty for never.";
    else changes.expires_at = new Date(at).toISOString();
  }
  const labels = f.metadata.filter((l) => l.key.trim() !== "" || l.value !== "");
  const metadata: Record<string, string> = {};
  for (const l of labels) {
    // Names are kept as typed (labels set through the API or CLI may have spaces).
    if (l.key.trim() === "") errors.metadata = "Every label needs a name.";
    else if (l.key in metadata) errors.metadata = `The label "${l.key}" is there twice.`;
    else metadata[l.key] = l.value;
  }
  const meta = labels.length ? metadata : null;
  if (JSON.stringify(sortedEntries(meta)) !== JSON.stringify(sortedEntries(k.metadata))) {
    changes.metadata = meta;
  }
  return Object.keys(errors).length ? { ok: false, errors } : { ok: true, changes };
}

function sortedEntries(
  m: Record<string, string> | null,
): [string, string][] | null {
  return m &&
    Object.entries(m).sort(([a], [b]) => (a < b ? -1 : a > b ? 1 : 0));
}

const FIELDS: readonly string[] = [
  "name",
  "allowed_providers",
  "allowed_models",
  ...LIMIT_FIELDS,
  "expires_at",
  "metadata",
];

/**
 * The field an admin API error is about, and the message without the field
 * name: the API says `field: message` (or `field.part: message`, as in
 * `metadata.team: ...`). Undefined field when the message names none.
 */
export function errorField(
  message: string,
): { field?: FormField; message: string } {
  const m = /^([a-z_]+)((?:\.[^:]*)?): (.*)$/s.exec(message);
  if (!m || !FIELDS.includes(m[1])) return { message };
  const part = m[2].slice(1);
  return {
    field: m[1] as FormField,
    message: part ? `${part}: ${m[3]}` : m[3],
  };
}
