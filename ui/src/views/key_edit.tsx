/**
 * The key edit form on the key page: name, expiry, provider and model
 * allowlists, every limit, metadata labels. Saving sends only what changed
 * (`PATCH /admin/keys/{id}`); an error of the admin API is shown next to the
 * field it names.
 */
import type { ComponentChildren } from "preact";
import { useState } from "preact/hooks";
import { type Api, ApiError } from "../api.ts";
import { Card, ErrorNote, useLoad } from "../components.tsx";
import { changesOf, errorField, type FormField, formOf, type KeyForm } from "../key_form.ts";
import { LIMIT_LABELS } from "../limits.ts";
import { type KeyView, LIMIT_FIELDS, type LimitField, type ModelsStatus } from "../types.ts";

const UNITS: Record<LimitField, string> = {
  rpm: "requests per minute",
  tpm: "tokens per minute (input + output)",
  max_concurrent: "requests and streams open at once",
  daily_token_quota: "tokens per day",
  monthly_token_quota: "tokens per month",
  daily_budget_usd: "USD per day",
  monthly_budget_usd: "USD per month",
};

/** A labelled control with its hint and, when the API refused it, its error. */
function Field(props: {
  id: FormField;
  label: string;
  hint?: string;
  error?: string;
  children: (
    attrs: Record<string, string | boolean | undefined>,
  ) => ComponentChildren;
}) {
  const id = `edit-${props.id}`;
  const described = [props.hint && `${id}-hint`, props.error && `${id}-error`]
    .filter(Boolean);
  return (
    <div class="field" data-field={props.id}>
      <label for={id}>{props.label}</label>
      {props.children({
        id,
        "aria-invalid": props.error ? "true" : undefined,
        "aria-describedby": described.join(" ") || undefined,
      })}
      {props.hint && <span class="hint" id={`${id}-hint`}>{props.hint}</span>}
      <span class="field-error" id={`${id}-error`}>{props.error ?? ""}</span>
    </div>
  );
}

/** The edit form; calls `onSaved` with the key as the API answers after the change. */
export function KeyEdit(props: {
  api: Api;
  view: KeyView;
  path: string;
  timeZone: string;
  onSaved: (k: KeyView) => void;
  onCancel: () => void;
}) {
  const { view, timeZone } = props;
  const [form, setForm] = useState<KeyForm>(() => formOf(view, timeZone));
  const [errors, setErrors] = useState<Partial<Record<FormField, string>>>({});
  const [general, setGeneral] = useState<string>();
  const [note, setNote] = useState("");
  const [busy, setBusy] = useState(false);
  const set = (patch: Partial<KeyForm>) => setForm({ ...form, ...patch });
  const models = useLoad(() => props.api.get<ModelsStatus>("/admin/models"), [
    props.api,
  ]);
  // Providers the key names that the registry no longer has stay listed, so they can be unticked.
  const providers = [
    ...new Set([
      ...(models.data?.providers.map((p) => p.id) ?? []),
      ...(view.allowed_providers ?? []),
    ]),
  ];

  const save = async () => {
    setGeneral(undefined);
    setNote("");
    const r = changesOf(view, form, timeZone);
    if (!r.ok) return setErrors(r.errors);
    setErrors({});
    if (Object.keys(r.changes).length === 0) return setNote("Nothing changed.");
    setBusy(true);
    try {
      props.onSaved(await props.api.patch<KeyView>(props.path, r.changes));
    } catch (e) {
      const message = e instanceof ApiError ? e.message : String(e);
      const at = e instanceof ApiError && e.status === 400 ? errorField(message) : { message };
      if (at.field) setErrors({ [at.field]: at.message });
      else setGeneral(message);
    } finally {
      setBusy(false);
    }
  };

  return (
    <Card title="Edit key" wide>
      <form
        class="edit-form"
        data-testid="key-edit"
        noValidate
        onSubmit={(e) => {
          e.preventDefault();
          void save();
        }}
      >
        <div class="form-grid">
          <Field id="name" label="Name" error={errors.name}>
            {(a) => (
              <input
                {...a}
                value={form.name}
                maxLength={200}
                onInput={(e) => set({ name: e.currentTarget.value })}
              />
            )}
          </Field>
          <Field
            id="expires_at"
            label={`Expires (${timeZone})`}
            hint="Empty: never. After this time the key is refused."
            error={errors.expires_at}
          >
            {(a) => (
              <input
                {...a}
                type="datetime-local"
                value={form.expires}
                onInput={(e) => set({ expires: e.currentTarget.value })}
              />
            )}
          </Field>
        </div>
        <fieldset class="field" data-field="allowed_providers">
          <legend>Providers</legend>
          <label>
            <input
              type="radio"
              name="edit-providers"
              checked={form.providers === null}
              onChange={() => set({ providers: null })}
            />
            Every provider
          </label>
          <label>
            <input
              type="radio"
              name="edit-providers"
              checked={form.providers !== null}
              onChange={() => set({ providers: [] })}
            />
            Only these:
          </label>
          <div class="checks">
            {providers.map((id) => (
              <label key={id}>
                <input
                  type="checkbox"
                  disabled={form.providers === null}
                  checked={form.providers?.includes(id) ?? false}
                  onChange={(e) =>
                    set({
                      providers: e.currentTarget.checked
                        ? [...(form.providers ?? []), id]
                        : (form.providers ?? []).filter((x) => x !== id),
                    })}
                />
                {id}
              </label>
            ))}
          </div>
          <span class="field-error">{errors.allowed_providers ?? ""}</span>
        </fieldset>
        <Field
          id="allowed_models"
          label="Models"
          hint="Model ids or globs (claude-*, gpt-4?), one per line or comma-separated. Empty: every model."
          error={errors.allowed_models}
        >
          {(a) => (
            <textarea
              {...a}
              rows={2}
              value={form.models}
              onInput={(e) => set({ models: e.currentTarget.value })}
            />
          )}
        </Field>
        <fieldset>
          <legend>Limits (empty: no limit)</legend>
          <div class="form-grid limits-grid">
            {LIMIT_FIELDS.map((f) => (
              <Field
                id={f}
                key={f}
                label={LIMIT_LABELS[f]}
                hint={UNITS[f]}
                error={errors[f]}
              >
                {(a) => (
                  <input
                    {...a}
                    inputMode={f.endsWith("_usd") ? "decimal" : "numeric"}
                    autocomplete="off"
                    value={form.limits[f]}
                    onInput={(e) =>
                      set({
                        limits: { ...form.limits, [f]: e.currentTarget.value },
                      })}
                  />
                )}
              </Field>
            ))}
          </div>
        </fieldset>
        <fieldset class="field" data-field="metadata">
          <legend>Labels (metadata)</legend>
          {form.metadata.map((l, i) => (
            <div class="label-row" key={i}>
              <input
                aria-label={`Label ${i + 1} name`}
                placeholder="name"
                value={l.key}
                onInput={(e) =>
                  set({
                    metadata: form.metadata.map((x, j) =>
                      j === i ? { ...x, key: e.currentTarget.value } : x
                    ),
                  })}
              />
              <input
                aria-label={`Label ${i + 1} value`}
                placeholder="value"
                value={l.value}
                onInput={(e) =>
                  set({
                    metadata: form.metadata.map((x, j) =>
                      j === i ? { ...x, value: e.currentTarget.value } : x
                    ),
                  })}
              />
              <button
                type="button"
                aria-label={`Remove label ${i + 1}`}
                onClick={() => set({ metadata: form.metadata.filter((_, j) => j !== i) })}
              >
                Remove
              </button>
            </div>
          ))}
          <div>
            <button
              type="button"
              onClick={() => set({ metadata: [...form.metadata, { key: "", value: "" }] })}
            >
              Add label
            </button>
          </div>
          <span class="field-error">{errors.metadata ?? ""}</span>
        </fieldset>
        <ErrorNote error={general ?? models.error} />
        <p class="hint" role="status">
          {Object.keys(errors).length ? "The key was not saved: see the fields marked." : note}
        </p>
        <div class="dialog-actions">
          <button type="button" onClick={props.onCancel}>Cancel</button>
          <button type="submit" class="primary" disabled={busy}>Save</button>
        </div>
      </form>
    </Card>
  );
}
