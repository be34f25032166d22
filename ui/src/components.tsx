/**
 * Building blocks shared by the views: data loading, cards, figures,
 * sortable tables, dialogs, the one-time secret display, limit bars.
 * Everything user-supplied (key names, model names, errors) is rendered as
 * text by Preact, never as HTML.
 */
import type { ComponentChildren } from "preact";
import { useCallback, useEffect, useLayoutEffect, useMemo, useRef, useState } from "preact/hooks";
import { ApiError } from "./api.ts";
import { int, shortTime, time, usd } from "./format.ts";
import type { LimitState } from "./limits.ts";

/** The state of one load from the admin API. */
export interface Loaded<T> {
  data?: T;
  error?: string;
  loading: boolean;
  reload(): void;
}

/** Runs `load` when `deps` change; the latest call wins. */
export function useLoad<T>(load: () => Promise<T>, deps: unknown[]): Loaded<T> {
  const [state, setState] = useState<{ data?: T; error?: string; loading: boolean }>({
    loading: true,
  });
  const [tick, setTick] = useState(0);
  const seq = useRef(0);
  useEffect(() => {
    const mine = ++seq.current;
    setState((s) => ({ ...s, loading: true }));
    load().then(
      (data) => mine === seq.current && setState({ data, loading: false }),
      (e) =>
        mine === seq.current &&
        setState({ error: e instanceof ApiError ? e.message : String(e), loading: false }),
    );
    // Callers list what `load` depends on in `deps`.
  }, [...deps, tick]);
  const reload = useCallback(() => setTick((t) => t + 1), []);
  return { ...state, reload };
}

/** "light" or "dark", following the system setting live. */
export function useColorScheme(): "light" | "dark" {
  const mq = useMemo(() => matchMedia("(prefers-color-scheme: dark)"), []);
  const [dark, setDark] = useState(mq.matches);
  useEffect(() => {
    const on = () => setDark(mq.matches);
    mq.addEventListener("change", on);
    return () => mq.removeEventListener("change", on);
  }, [mq]);
  return dark ? "dark" : "light";
}

/** A titled panel. */
export function Card(
  props: {
    title: string;
    actions?: ComponentChildren;
    children: ComponentChildren;
    wide?: boolean;
  },
) {
  return (
    <section class={props.wide ? "card wide" : "card"} aria-label={props.title}>
      <header class="card-head">
        <h2>{props.title}</h2>
        {props.actions && <div class="card-actions">{props.actions}</div>}
      </header>
      {props.children}
    </section>
  );
}

/** One figure with its label; the value keeps its height while loading. */
export function Stat(props: { label: string; value?: string; hint?: string; id?: string }) {
  return (
    <div class="stat" data-stat={props.id}>
      <div class="stat-label">{props.label}</div>
      <div class="stat-value" aria-busy={props.value === undefined}>{props.value ?? "\u00a0"}</div>
      <div class="stat-hint">{props.hint ?? "\u00a0"}</div>
    </div>
  );
}

/** An error from the admin API, said in words, with a retry. */
export function ErrorNote(props: { error?: string; retry?: () => void }) {
  if (!props.error) return null;
  return (
    <div class="error-note" role="alert">
      <span>{props.error}</span>
      {props.retry && <button type="button" onClick={props.retry}>Retry</button>}
    </div>
  );
}

/** A column of a {@link DataTable}. */
export interface Column<T> {
  id: string;
  label: string;
  /** The sort value; omit for a column that does not sort. */
  sort?: (row: T) => number | string | null;
  cell: (row: T) => ComponentChildren;
  numeric?: boolean;
}

/** A table whose headers sort it (click or Enter on a header; again to reverse). */
export function DataTable<T>(props: {
  caption: string;
  columns: Column<T>[];
  rows: T[];
  rowKey: (row: T) => string;
  initialSort?: { id: string; desc: boolean };
  empty: string;
  loading?: boolean;
  /** Rows to reserve room for while loading, so the page does not jump. */
  reserve?: number;
  testId?: string;
}) {
  const [sort, setSort] = useState(props.initialSort);
  const rows = useMemo(() => {
    const col = props.columns.find((c) => c.id === sort?.id);
    if (!col?.sort || !sort) return props.rows;
    const get = col.sort;
    const dir = sort.desc ? -1 : 1;
    return [...props.rows].sort((a, b) => {
      const x = get(a), y = get(b);
      if (x === y) return 0;
      if (x === null) return 1;
      if (y === null) return -1;
      return (x < y ? -1 : 1) * dir;
    });
  }, [props.rows, props.columns, sort]);
  const reserve = props.loading && props.rows.length === 0 ? props.reserve ?? 0 : 0;
  return (
    <div class="table-wrap">
      <table data-testid={props.testId}>
        <caption class="sr-only">{props.caption}</caption>
        <thead>
          <tr>
            {props.columns.map((c) => {
              const active = sort?.id === c.id;
              const aria = active ? (sort!.desc ? "descending" : "ascending") : undefined;
              return (
                <th scope="col" class={c.numeric ? "num" : undefined} aria-sort={aria} key={c.id}>
                  {c.sort
                    ? (
                      <button
                        type="button"
                        class="sort"
                        onClick={() =>
                          setSort({ id: c.id, desc: active ? !sort!.desc : c.numeric === true })}
                      >
                        {c.label}
                        <span aria-hidden="true" class="sort-mark">
                          {active ? (sort!.desc ? "▼" : "▲") : ""}
                        </span>
                      </button>
                    )
                    : c.label}
                </th>
              );
            })}
          </tr>
        </thead>
        <tbody>
          {rows.map((r) => (
            <tr key={props.rowKey(r)}>
              {props.columns.map((c) => (
                <td class={c.numeric ? "num" : undefined} key={c.id}>{c.cell(r)}</td>
              ))}
            </tr>
          ))}
          {Array.from(
            { length: reserve },
            (_, i) => (
              <tr class="reserve" key={`reserve-${i}`} aria-hidden="true">
                <td colSpan={props.columns.length}>&nbsp;</td>
              </tr>
            ),
          )}
          {!props.loading && rows.length === 0 && (
            <tr>
              <td colSpan={props.columns.length} class="empty">{props.empty}</td>
            </tr>
          )}
        </tbody>
      </table>
    </div>
  );
}

/** A modal dialog (the browser's own: focus is trapped, Escape closes it). */
export function Dialog(props: {
  title: string;
  onClose: () => void;
  children: ComponentChildren;
  testId?: string;
}) {
  const ref = useRef<HTMLDialogElement>(null);
  // Opened in the same commit it is rendered in, so a key pressed right after the click reaches it.
  useLayoutEffect(() => {
    const d = ref.current;
    if (d && !d.open) d.showModal();
  }, []);
  return (
    <dialog
      ref={ref}
      aria-label={props.title}
      data-testid={props.testId}
      onClose={props.onClose}
    >
      <h2>{props.title}</h2>
      {props.children}
    </dialog>
  );
}

/** Copies text to the clipboard, falling back to selecting it where the Clipboard API is not offered. */
async function copyText(text: string, fallback: HTMLInputElement | null): Promise<boolean> {
  try {
    await navigator.clipboard.writeText(text);
    return true;
  } catch {
    if (!fallback) return false;
    fallback.select();
    // The Clipboard API needs a secure context; plain-http admin pages fall back to this.
    return document.execCommand("copy");
  }
}

/** A new secret, shown once, with a copy button. */
export function SecretDialog(props: {
  title: string;
  secret: string;
  note?: ComponentChildren;
  onClose: () => void;
}) {
  const input = useRef<HTMLInputElement>(null);
  const [copied, setCopied] = useState<boolean | null>(null);
  return (
    <Dialog title={props.title} onClose={props.onClose} testId="secret-dialog">
      <p>
        This is the only time the secret is shown. Copy it now: the gateway keeps only its hash.
      </p>
      <div class="secret-row">
        <input
          ref={input}
          class="secret"
          readOnly
          value={props.secret}
          aria-label="New API key"
          data-testid="secret"
          onFocus={(e) => e.currentTarget.select()}
        />
        <button
          type="button"
          onClick={async () => setCopied(await copyText(props.secret, input.current))}
        >
          {copied ? "Copied" : "Copy"}
        </button>
      </div>
      <p class="hint" role="status">
        {copied === false ? "Copying is blocked here: select the key and copy it by hand." : ""}
      </p>
      {props.note}
      <div class="dialog-actions">
        <button type="button" class="primary" onClick={props.onClose}>Done</button>
      </div>
    </Dialog>
  );
}

/** A question with a confirm and a cancel button. */
export function ConfirmDialog(props: {
  title: string;
  children: ComponentChildren;
  confirm: string;
  danger?: boolean;
  busy?: boolean;
  error?: string;
  onConfirm: () => void;
  onClose: () => void;
}) {
  return (
    <Dialog title={props.title} onClose={props.onClose} testId="confirm-dialog">
      {props.children}
      <ErrorNote error={props.error} />
      <div class="dialog-actions">
        <button type="button" onClick={props.onClose}>Cancel</button>
        <button
          type="button"
          class={props.danger ? "danger" : "primary"}
          disabled={props.busy}
          onClick={props.onConfirm}
        >
          {props.confirm}
        </button>
      </div>
    </Dialog>
  );
}

/**
 * How full a limit is, as a bar with its numbers and reset time in words:
 * committed use solid, what requests in flight hold beside it lighter.
 */
export function LimitBar(props: { limit: LimitState; timeZone: string; today: string }) {
  const l = props.limit;
  const n = (v: number) => (l.money ? usd(v) : int(v));
  const level = l.remaining <= 0 ? "full" : l.near ? "near" : "ok";
  const held = l.reserved > 0 ? ` (+${n(l.reserved)} in flight)` : "";
  const resets = l.resets_at ? time(l.resets_at, props.timeZone) : "";
  return (
    <div
      class="limit"
      data-limit={l.name}
      title={`${l.label}: ${n(l.used)} of ${n(l.limit)} used${held}, ${n(l.remaining)} left${
        resets && `; resets ${resets}`
      }`}
    >
      <div class="limit-text">
        <span>{l.label}</span>
        <span class="limit-use">{n(l.used)} / {n(l.limit)}{held}</span>
      </div>
      <div
        class={`bar ${level}`}
        role="meter"
        aria-label={l.label}
        aria-valuemin={0}
        aria-valuemax={l.limit}
        aria-valuenow={Math.min(l.used, l.limit)}
        aria-valuetext={`${n(l.used)} of ${n(l.limit)}${held}`}
      >
        <div class="bar-fill" style={{ width: `${(l.usedShare * 100).toFixed(1)}%` }} />
        <div
          class="bar-held"
          style={{ width: `${((l.takenShare - l.usedShare) * 100).toFixed(1)}%` }}
        />
      </div>
      <div class="limit-reset">
        {l.resets_at
          ? `resets ${shortTime(l.resets_at, props.timeZone, props.today)}`
          : "open requests now"}
      </div>
    </div>
  );
}

/** Under a cost chart: how many requests had no price (a blank line when none, so nothing moves). */
export function UnpricedNote(props: { n?: number }) {
  return (
    <p class="hint chart-note">
      {props.n
        ? `${int(props.n)} ${
          props.n === 1 ? "request" : "requests"
        } without a price (the model has none in models.json): not in the cost.`
        : "\u00a0"}
    </p>
  );
}

/** Status of a key in words. */
export function KeyStatus(props: { enabled: boolean; expired: boolean }) {
  const s = props.expired ? "expired" : props.enabled ? "enabled" : "disabled";
  return <span class={`badge ${s}`}>{s}</span>;
}
