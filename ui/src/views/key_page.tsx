/**
 * One key: its settings and all-time figures, each limit's standing, its
 * own tokens, cost and requests over time, and the actions on it: edit
 * (limits, allowlists, expiry, labels), disable/enable, rotate with a grace
 * period, delete with confirmation.
 */
import { useMemo, useState } from "preact/hooks";
import type { Session } from "../app.tsx";
import { ApiError, query } from "../api.ts";
import { ChartCard } from "../chart.tsx";
import {
  Card,
  ConfirmDialog,
  ErrorNote,
  KeyStatus,
  LimitBar,
  SecretDialog,
  Stat,
  UnpricedNote,
  useLoad,
} from "../components.tsx";
import { addDays, datesBetween, isDate } from "../dates.ts";
import { compact, costText, int, time, usd } from "../format.ts";
import { limitStates } from "../limits.ts";
import { allBuckets, BucketToggles, type Range, RangePicker } from "../pickers.tsx";
import { costByModel, modelColors, requestsPerHour, tokensByModel } from "../series.ts";
import type { KeyUsageReport, KeyView, KeyWithSecret } from "../types.ts";
import { KeyEdit } from "./key_edit.tsx";

/** The longest grace period the admin API accepts (30 days). */
const MAX_GRACE_S = 30 * 86_400;

type Action = "disable" | "enable" | "rotate" | "delete";

/** The key page. */
export function KeyPage(props: { s: Session; id: string }) {
  const { api, today, timeZone } = props.s;
  const path = `/admin/keys/${encodeURIComponent(props.id)}`;
  const [range, setRange] = useState<Range>({ from: addDays(today, -29), to: today });
  const [buckets, setBuckets] = useState(allBuckets);
  const [hourDay, setHourDay] = useState(today);
  const key = useLoad(() => api.get<KeyView>(path), [api, path]);
  const usage = useLoad(
    () => api.get<KeyUsageReport>(`${path}/usage${query({ from: range.from, to: range.to })}`),
    [api, path, range.from, range.to],
  );
  const [action, setAction] = useState<Action | null>(null);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [grace, setGrace] = useState("0");
  const [rotated, setRotated] = useState<KeyWithSecret>();
  const [deleted, setDeleted] = useState(false);
  const [editing, setEditing] = useState(false);
  const [saved, setSaved] = useState("");

  const k = key.data;
  const u = usage.data?.usage;
  const dates = useMemo(() => datesBetween(range.from, range.to), [range]);
  const perDay = useMemo(
    () => new Map(Object.entries(u?.daily ?? {}).map(([d, s]) => [d, s.by_model])),
    [u],
  );
  const tokens = useMemo(() => u && tokensByModel(perDay, dates, buckets), [
    u,
    perDay,
    dates,
    buckets,
  ]);
  const cost = useMemo(() => u && costByModel(perDay, dates), [u, perDay, dates]);
  const colorOf = useMemo(() => modelColors(perDay, dates), [perDay, dates]);
  const hours = useMemo(
    () =>
      u &&
      requestsPerHour(
        Object.entries(u.hourly).map(([hour, stats]) => ({ hour, stats })),
        hourDay,
      ),
    [u, hourDay],
  );
  const run = async () => {
    if (!action) return;
    setBusy(true);
    setError(undefined);
    try {
      if (action === "delete") {
        await api.delete(path);
        setDeleted(true);
      } else if (action === "rotate") {
        // The API checks the value; text that is no number is sent as typed, for it to refuse.
        const typed = grace.trim();
        const n = typed === "" ? 0 : Number(typed);
        setRotated(
          await api.post<KeyWithSecret>(`${path}/rotate`, {
            grace_seconds: Number.isFinite(n) ? n : typed,
          }),
        );
        key.reload();
      } else {
        await api.post(`${path}/${action}`);
        key.reload();
      }
      setAction(null);
    } catch (e) {
      setError(e instanceof ApiError ? e.message : String(e));
    } finally {
      setBusy(false);
    }
  };

  if (deleted) {
    return (
      <div class="view">
        <h1>Key deleted</h1>
        <p>
          The key no longer works. Its usage history is kept in the reports.{" "}
          <a href="#/keys">Back to keys</a>
        </p>
      </div>
    );
  }

  const limits = k ? limitStates(k) : [];
  const tokenTotal = k && k.total_input + k.total_output;
  return (
    <div class="view">
      <p class="crumbs">
        <a href="#/keys">Keys</a> /
      </p>
      <h1 class="key-title">
        <span data-testid="key-name">{k?.name ?? "\u00a0"}</span>
        {k && <KeyStatus enabled={k.enabled} expired={k.expired} />}
      </h1>
      <ErrorNote error={key.error} retry={key.reload} />
      <div class="toolbar actions">
        <button
          type="button"
          disabled={!k || editing}
          onClick={() => {
            setSaved("");
            setEditing(true);
          }}
        >
          Edit
        </button>
        <button
          type="button"
          disabled={!k}
          onClick={() => setAction(k?.enabled ? "disable" : "enable")}
        >
          {k?.enabled === false ? "Enable" : "Disable"}
        </button>
        <button type="button" disabled={!k} onClick={() => setAction("rotate")}>Rotate</button>
        <button type="button" class="danger" disabled={!k} onClick={() => setAction("delete")}>
          Delete
        </button>
        <a href={`#/requests/${encodeURIComponent(props.id)}`}>Its requests</a>
        <span class="hint" role="status">{saved}</span>
      </div>
      {editing && k && (
        <KeyEdit
          api={api}
          view={k}
          path={path}
          timeZone={timeZone}
          onCancel={() => setEditing(false)}
          onSaved={() => {
            setEditing(false);
            setSaved("Saved.");
            key.reload();
          }}
        />
      )}
      <div class="grid two">
        <Card title="Key">
          <dl class="facts">
            <dt>Id</dt>
            <dd>
              <code>{props.id}</code>
            </dd>
            <dt>Key</dt>
            <dd>
              <code>{k?.key ?? "\u00a0"}</code>
              {k?.previous_key_valid_until && (
                <span class="muted previous-key" data-testid="previous-key">
                  (the old secret works until {time(k.previous_key_valid_until, timeZone)})
                </span>
              )}
            </dd>
            <dt>Created</dt>
            <dd>{k ? time(k.created, timeZone) : "\u00a0"}</dd>
            <dt>Last used</dt>
            <dd>{k ? time(k.last_used, timeZone) : "\u00a0"}</dd>
            <dt>Expires</dt>
            <dd>{k ? (k.expires_at ? time(k.expires_at, timeZone) : "never") : "\u00a0"}</dd>
            <dt>Providers</dt>
            <dd>{k ? (k.allowed_providers?.join(", ") || "every provider") : "\u00a0"}</dd>
            <dt>Models</dt>
            <dd>{k ? (k.allowed_models?.join(", ") || "every model") : "\u00a0"}</dd>
            <dt>Labels</dt>
            <dd data-testid="key-labels">
              {k
                ? (Object.keys(k.metadata ?? {}).length === 0 ? "none" : (
                  <ul class="labels">
                    {Object.entries(k.metadata ?? {}).map(([mk, mv]) => (
                      <li key={mk}>
                        <span class="muted">{mk}:</span> {mv}
                      </li>
                    ))}
                  </ul>
                ))
                : "\u00a0"}
            </dd>
          </dl>
        </Card>
        <Card title="All time">
          <div class="stats" data-testid="key-totals">
            <Stat id="requests" label="Requests" value={k && int(k.total_requests)} />
            <Stat
              id="tokens"
              label="Tokens"
              value={tokenTotal === undefined ? undefined : int(tokenTotal)}
            />
            <Stat id="input_uncached" label="Input (uncached)" value={k && int(k.input_uncached)} />
            <Stat id="cache_read" label="Cache read" value={k && int(k.cache_read)} />
            <Stat id="cache_write" label="Cache write" value={k && int(k.cache_write)} />
            <Stat id="output" label="Output" value={k && int(k.total_output)} />
            <Stat id="failed" label="Failed" value={k && int(k.failed)} />
            <Stat
              id="cost"
              label="Cost"
              value={k && costText(k).text}
              hint={k && costText(k).note}
            />
          </div>
        </Card>
      </div>
      <Card title="Limits" wide>
        {/* Room for one row of bars while loading, so the page below does not move. */}
        <div class="limits-body">
          {k && limits.length === 0
            ? <p class="empty">No limits: edit the key to set some.</p>
            : (
              <div class="limits wide" data-testid="key-limits">
                {limits.map((l) => (
                  <LimitBar limit={l} key={l.name} timeZone={timeZone} today={today} />
                ))}
              </div>
            )}
        </div>
      </Card>
      <div class="toolbar">
        <RangePicker today={today} value={range} onChange={setRange} />
        <BucketToggles value={buckets} onChange={setBuckets} />
      </div>
      <ErrorNote error={usage.error} retry={usage.reload} />
      <ChartCard
        title="Tokens per day by model"
        testId="key-chart-tokens"
        kind="stacked"
        table={tokens}
        exact={int}
        xName="date"
        csvName={`key-${props.id}-tokens_${range.from}_${range.to}.csv`}
        colorOf={colorOf}
        empty="No tokens in this range for the chosen buckets."
      />
      <ChartCard
        title="Cost per day by model"
        testId="key-chart-cost"
        kind="stacked"
        table={cost?.table}
        format={(n) => `$${compact(n)}`}
        exact={usd}
        integer={false}
        xName="date"
        csvName={`key-${props.id}-cost_${range.from}_${range.to}.csv`}
        colorOf={colorOf}
        empty="No priced usage in this range."
        note={<UnpricedNote n={cost?.unpriced} />}
      />
      <ChartCard
        title="Requests per hour"
        testId="key-chart-hourly"
        kind="bars"
        table={hours}
        exact={int}
        xName="hour"
        csvName={`key-${props.id}-requests-per-hour_${hourDay}.csv`}
        empty="No requests on this day in the chosen range."
        controls={
          <label class="inline">
            Day
            <input
              type="date"
              value={hourDay}
              min={range.from}
              max={range.to}
              onChange={(e) => isDate(e.currentTarget.value) && setHourDay(e.currentTarget.value)}
            />
          </label>
        }
      />
      {action && k && (
        <ConfirmDialog
          title={action === "delete"
            ? `Delete key "${k.name}"?`
            : action === "rotate"
            ? `Rotate key "${k.name}"?`
            : `${action === "disable" ? "Disable" : "Enable"} key "${k.name}"?`}
          confirm={action === "delete"
            ? "Delete key"
            : action === "rotate"
            ? "Rotate"
            : action === "disable"
            ? "Disable"
            : "Enable"}
          danger={action === "delete" || action === "disable"}
          busy={busy}
          error={error}
          onConfirm={run}
          onClose={() => {
            setAction(null);
            setError(undefined);
          }}
        >
          {action === "delete" && (
            <p>Clients using this key stop working at once. Its usage history is kept.</p>
          )}
          {action === "disable" && <p>Clients using this key are refused until it is enabled.</p>}
          {action === "enable" && <p>Clients using this key work again.</p>}
          {action === "rotate" && (
            <>
              <p>
                The key gets a new secret, shown once. The old secret keeps working for the grace
                period (so clients can move over), then stops; 0 stops it at once.
              </p>
              <label>
                Grace period (seconds)
                <input
                  inputMode="numeric"
                  autocomplete="off"
                  value={grace}
                  onInput={(e) => setGrace(e.currentTarget.value)}
                />
              </label>
              <p class="hint">Up to {int(MAX_GRACE_S)} (30 days). 3600 is an hour.</p>
            </>
          )}
        </ConfirmDialog>
      )}
      {rotated && (
        <SecretDialog
          title={`New secret for "${rotated.name}"`}
          secret={rotated.api_key}
          note={rotated.previous_key_valid_until && (
            <p>The old secret works until {time(rotated.previous_key_valid_until, timeZone)}.</p>
          )}
          onClose={() => setRotated(undefined)}
        />
      )}
    </div>
  );
}
