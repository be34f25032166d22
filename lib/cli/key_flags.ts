/**
 * The `keys` command's flags for key fields: each maps 1:1 to a field of the
 * admin API's key body (`CreateKeyBody` in `lib/admin/schemas.ts`), whose
 * zod schema then validates it exactly as the API does. A new key field is
 * one row here plus its schema field; error messages name the flag.
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
  /** The field's raw value from the flag's; the body schema judges it. */
  toField: (value: string | boolean) => unknown;
  /** Help: the flag's argument, then what it does. */
  usage: string;
  help: string;
}

/** Every key-field flag of `keys create`. */
const KEY_FLAGS: readonly KeyFlag[] = [
  {
    flag: "allow",
    field: "allowed_providers",
    type: "string",
    toField: (v) => String(v).split(",").map((s) => s.trim()).filter(Boolean),
    usage: "--allow <provider,...>",
    help: "providers the key may use (ids from models.json; default: all)",
  },
  {
    flag: "disabled",
    field: "enabled",
    type: "boolean",
    toField: (v) => !v,
    usage: "--disabled",
    help: "create the key disabled",
  },
];

/** The flags as `parseArgs` options. */
export function keyFlagOptions(): Options {
  return Object.fromEntries(KEY_FLAGS.map((f) => [f.flag, { type: f.type }]));
}

/** The body fields set by the flags that were given. */
export function bodyFromFlags(values: Record<string, unknown>): Record<string, unknown> {
  const body: Record<string, unknown> = {};
  for (const f of KEY_FLAGS) {
    const v = values[f.flag];
    if (typeof v === "string" || typeof v === "boolean") body[f.field] = f.toField(v);
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
