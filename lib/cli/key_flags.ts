/**
 * The `keys` command's flags for key fields: each maps 1:1 to a field of the
 * admin API's key bodies (`CreateKeyBody`, `UpdateKeyBody` in
 * `lib/admin/schemas.ts`), whose zod schemas then validate it exactly as the
 * API does. A new key field is one row here plus its schema field; error
 * messages name the flag. On `keys edit`, the value `none` clears a field.
 */
import type { z } from "zod";
import type { Label } from "../admin/validation.ts";
import type { CreateKeyBody } from "../admin/schemas.ts";
import type { Options } from "./args.ts";

/** One flag and the body field it sets. */
interface KeyFlag {
  /** The flag without its dashes. */
  flag: string;
  /** The admin API body field it fills. */
  field: keyof z.input<typeof CreateKeyBody>;
  type: "string" | "boolean";
  /** Given several times, each adding a value. */
  multiple?: true;
  /** The field's raw value from the flag's; the body schema judges it. */
  toField: (value: string | boolean | string[]) => unknown;
  /** Help: the flag's argument, then what it does. */
  usage: string;
  help: string;
}

/** `none` clears the field (on edit); anything else is the raw value for the schema. */
const orNone = (f: (v: string) => unknown) => (v: string | boolean | string[]) =>
  v === "none" ? null : f(String(v));
const list = orNone((v) => v.split(",").map((s) => s.trim()).filter(Boolean));
// A number the schema can judge: "12x" stays a string and is refused with the flag's name.
const number = orNone((v) => (v.trim() !== "" && Number.isFinite(Number(v)) ? Number(v) : v));

/** Every key-field flag of `keys create` and `keys edit`. */
const KEY_FLAGS: readonly KeyFlag[] = [
  {
    flag: "allow",
    field: "allowed_providers",
    type: "string",
    toField: list,
    usage: "--allow <provider,...>",
    help: "providers the key may use (ids from models.json; default: all)",
  },
  {
    flag: "models",
    field: "allowed_models",
    type: "string",
    toField: list,
    usage: "--models <id or glob,...>",
    help: "models the key may use, e.g. claude-*,gpt-4o (default: all)",
  },
  {
    flag: "rpm",
    field: "rpm",
    type: "string",
    toField: number,
    usage: "--rpm <n>",
    help: "requests per minute",
  },
  {
    flag: "tpm",
    field: "tpm",
    type: "string",
    toField: number,
    usage: "--tpm <n>",
    help: "tokens per minute (input + output)",
  },
  {
    flag: "max-concurrent",
    field: "max_concurrent",
    type: "string",
    toField: number,
    usage: "--max-concurrent <n>",
    help: "requests and streams open at once",
  },
  {
    flag: "tokens-daily",
    field: "daily_token_quota",
    type: "string",
    toField: number,
    usage: "--tokens-daily <n>",
    help: "tokens per day (USAGE_TZ calendar)",
  },
  {
    flag: "tokens-monthly",
    field: "monthly_token_quota",
    type: "string",
    toField: number,
    usage: "--tokens-monthly <n>",
    help: "tokens per month",
  },
  {
    flag: "budget-daily",
    field: "daily_budget_usd",
    type: "string",
    toField: number,
    usage: "--budget-daily <usd>",
    help: "USD per day, e.g. 5 or 2.50",
  },
  {
    flag: "budget-monthly",
    field: "monthly_budget_usd",
    type: "string",
    toField: number,
    usage: "--budget-monthly <usd>",
    help: "USD per month",
  },
  {
    flag: "expires",
    field: "expires_at",
    type: "string",
    toField: orNone((v) => v),
    usage: "--expires <ISO time>",
    help: "when the key stops working, e.g. 2026-12-31T23:59:59Z",
  },
  {
    flag: "meta",
    field: "metadata",
    type: "string",
    multiple: true,
    toField: (v) => {
      const pairs = Array.isArray(v) ? v : [String(v)];
      if (pairs.length === 1 && pairs[0] === "none") return null;
      // "team=ml" -> { team: "ml" }; a pair without "=" is left for the schema to refuse.
      return Object.fromEntries(pairs.map((p) => {
        const i = p.indexOf("=");
        return i > 0 ? [p.slice(0, i), p.slice(i + 1)] : [p, 0];
      }));
    },
    usage: "--meta <key=value>",
    help: "a label (repeat for more)",
  },
  {
    flag: "disabled",
    field: "enabled",
    type: "boolean",
    toField: (v) => !v,
    usage: "--disabled",
    help: "create the key disabled (create only)",
  },
];

/** The flags as `parseArgs` options. */
export function keyFlagOptions(): Options {
  return Object.fromEntries(
    KEY_FLAGS.map((
      f,
    ) => [f.flag, f.multiple ? { type: f.type, multiple: true } : { type: f.type }]),
  );
}

/** The body fields set by the flags that were given. */
export function bodyFromFlags(values: Record<string, unknown>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const f of KEY_FLAGS) {
    const v = values[f.flag];
    if (typeof v === "string" || typeof v === "boolean" || Array.isArray(v)) {
      body[f.field] = f.toField(v as string | boolean | string[]);
    }
  }
  return body;
}

/** Names body fields as the user typed them: the flag, or `<name>` for the argument. */
export const flagLabel: Label = (field) => {
  if (field === "name") return "<name>";
  const f = KEY_FLAGS.find((k) => k.field === field);
  return f ? `--${f.flag}` : field;
};

/** The flags' lines for `keys --help`. */
export function keyFlagHelp(): string {
  const width = Math.max(...KEY_FLAGS.map((f) => f.usage.length));
  return KEY_FLAGS.map((f) => `  ${f.usage.padEnd(width)}  ${f.help}`).join("\n");
}
