/**
 * The date-range picker (presets and from/to dates on the usage calendar)
 * and the token-bucket toggles, shared by the usage view and the key page.
 */
import { useState } from "preact/hooks";
import { addDays, datesBetween, isDate, PRESETS } from "./dates.ts";
import { type Bucket, BUCKETS } from "./series.ts";

/** A date range on the usage calendar. */
export interface Range {
  from: string;
  to: string;
}

/** The longest range the page asks for at once (a year of days). */
export const MAX_DAYS = 366;

/** Presets and two date fields; applies only valid ranges. */
export function RangePicker(props: {
  today: string;
  value: Range;
  onChange: (r: Range) => void;
}) {
  const [preset, setPreset] = useState("30d");
  const [from, setFrom] = useState(props.value.from);
  const [to, setTo] = useState(props.value.to);
  const [error, setError] = useState("");
  const apply = (f: string, t: string) => {
    if (!isDate(f) || !isDate(t)) return setError("Pick both dates.");
    if (f > t) return setError("The first day is after the last day.");
    if (datesBetween(f, t).length > MAX_DAYS) return setError(`Pick at most ${MAX_DAYS} days.`);
    setError("");
    props.onChange({ from: f, to: t });
  };
  return (
    <fieldset class="range">
      <legend class="sr-only">Date range ({props.today} is today)</legend>
      <label>
        Range
        <select
          value={preset}
          onChange={(e) => {
            const id = e.currentTarget.value;
            setPreset(id);
            const p = PRESETS.find((x) => x.id === id);
            if (!p) return;
            const r = p.range(props.today);
            setFrom(r.from);
            setTo(r.to);
            apply(r.from, r.to);
          }}
        >
          {PRESETS.map((p) => <option value={p.id} key={p.id}>{p.label}</option>)}
          <option value="custom">Custom</option>
        </select>
      </label>
      <label>
        From
        <input
          type="date"
          value={from}
          max={props.today}
          min={addDays(props.today, -3 * MAX_DAYS)}
          onChange={(e) => {
            setPreset("custom");
            setFrom(e.currentTarget.value);
            apply(e.currentTarget.value, to);
          }}
        />
      </label>
      <label>
        To
        <input
          type="date"
          value={to}
          max={props.today}
          onChange={(e) => {
            setPreset("custom");
            setTo(e.currentTarget.value);
            apply(from, e.currentTarget.value);
          }}
        />
      </label>
      <span class="error-text" role="alert">{error}</span>
    </fieldset>
  );
}

/** Checkboxes for the token buckets a chart adds up. */
export function BucketToggles(props: {
  value: ReadonlySet<Bucket>;
  onChange: (b: Set<Bucket>) => void;
}) {
  return (
    <fieldset class="buckets">
      <legend class="sr-only">Token buckets</legend>
      {BUCKETS.map((b) => (
        <label key={b.id}>
          <input
            type="checkbox"
            checked={props.value.has(b.id)}
            onChange={(e) => {
              const next = new Set(props.value);
              if (e.currentTarget.checked) next.add(b.id);
              else next.delete(b.id);
              props.onChange(next);
            }}
          />
          {b.label}
        </label>
      ))}
    </fieldset>
  );
}

/** Every bucket on. */
export function allBuckets(): Set<Bucket> {
  return new Set(BUCKETS.map((b) => b.id));
}
