/**
 * Keys: every key with its status, requests, tokens, cost, each limit's
 * standing and reset time, last use and expiry; sortable and filterable;
 * creating a key shows its secret once.
 */
import { useState } from "preact/hooks";
import type { Session } from "../app.tsx";
import type { Api } from "../api.ts";
import {
  Card,
  type Column,
  DataTable,
  Dialog,
  ErrorNote,
  KeyStatus,
  LimitBar,
  SecretDialog,
  useLoad,
} from "../components.tsx";
import { costText, int, time } from "../format.ts";
import { limitStates } from "../limits.ts";
import type { KeyView, KeyWithSecret, ModelsStatus } from "../types.ts";
import { ApiError } from "../api.ts";

/** The longest key name the form accepts (the admin API's own limit is checked there). */
const NAME_MAX = 200;

function statusOf(k: KeyView): "enabled" | "disabled" | "expired" {
  return k.expired ? "expired" : k.enabled ? "enabled" : "disabled";
}

/** The create-key form; on success shows the secret once. */
function CreateKey(props: { api: Api; onDone: (created: boolean) => void }) {
  const providers = useLoad(() => props.api.get<ModelsStatus>("/admin/models"), [props.api]);
  const [name, setName] = useState("");
  const [allowed, setAllowed] = useState<string[] | null>(null);
  const [enabled, setEnabled] = useState(true);
  const [busy, setBusy] = useState(false);
  const [error, setError] = useState<string>();
  const [created, setCreated] = useState<KeyWithSecret>();
  if (created) {
    return (
      <SecretDialog
        title={`Key "${created.name}" created`}
        secret={created.api_key}
        onClose={() => props.onDone(true)}
      />
    );
  }
  const ids = providers.data?.providers.map((p) => p.id) ?? [];
  return (
    <Dialog title="Create a key" onClose={() => props.onDone(false)} testId="create-dialog">
      <form
        onSubmit={async (e) => {
          e.preventDefault();
          setBusy(true);
          setError(undefined);
          try {
            setCreated(
              await props.api.post<KeyWithSecret>("/admin/keys", {
                name: name.trim(),
                allowed_providers: allowed,
                enabled,
              }),
            );
          } catch (err) {
            setError(err instanceof ApiError ? err.message : String(err));
          } finally {
            setBusy(false);
          }
        }}
      >
        <label for="new-key-name">Name</label>
        <input
          id="new-key-name"
          required
          maxLength={NAME_MAX}
          value={name}
          onInput={(e) => setName(e.currentTarget.value)}
        />
        <fieldset>
          <legend>Providers</legend>
          <label>
            <input
              type="radio"
              name="providers"
              checked={allowed === null}
              onChange={() => setAllowed(null)}
            />
            Every provider
          </label>
          <label>
            <input
              type="radio"
              name="providers"
              checked={allowed !== null}
              onChange={() => setAllowed([])}
            />
            Only these:
          </label>
          <div class="checks">
            {ids.map((id) => (
              <label key={id}>
                <input
                  type="checkbox"
                  disabled={allowed === null}
                  checked={allowed?.includes(id) ?? false}
                  onChange={(e) =>
                    setAllowed(
                      e.currentTarget.checked
                        ? [...(allowed ?? []), id]
                        : (allowed ?? []).filter((x) => x !== id),
                    )}
                />
                {id}
              </label>
            ))}
          </div>
        </fieldset>
        <label>
          <input
            type="checkbox"
            checked={enabled}
            onChange={(e) => setEnabled(e.currentTarget.checked)}
          />
          Enabled
        </label>
        <ErrorNote error={error ?? providers.error} />
        <div class="dialog-actions">
          <button type="button" onClick={() => props.onDone(false)}>Cancel</button>
          <button type="submit" class="primary" disabled={busy}>Create</button>
        </div>
      </form>
    </Dialog>
  );
}

/** The keys view. */
export function Keys(props: { s: Session }) {
  const { api, timeZone, today } = props.s;
  const keys = useLoad(() => api.get<{ keys: KeyView[] }>("/admin/keys"), [api]);
  const [filter, setFilter] = useState("");
  const [status, setStatus] = useState("all");
  const [creating, setCreating] = useState(false);
  const list = keys.data?.keys ?? [];
  const needle = filter.trim().toLowerCase();
  const rows = list.filter((k) =>
    (status === "all" || statusOf(k) === status) &&
    (!needle || k.name.toLowerCase().includes(needle) || k.id.toLowerCase().includes(needle) ||
      k.key.toLowerCase().includes(needle))
  );

  const columns: Column<KeyView>[] = [
    {
      id: "name",
      label: "Name",
      sort: (k) => k.name.toLowerCase(),
      cell: (k) => <a href={`#/keys/${encodeURIComponent(k.id)}`} data-key-id={k.id}>{k.name}</a>,
    },
    {
      id: "status",
      label: "Status",
      sort: statusOf,
      cell: (k) => <KeyStatus enabled={k.enabled} expired={k.expired} />,
    },
    {
      id: "requests",
      label: "Requests",
      numeric: true,
      sort: (k) => k.total_requests,
      cell: (k) => int(k.total_requests),
    },
    {
      id: "tokens",
      label: "Tokens",
      numeric: true,
      sort: (k) => k.total_input + k.total_output,
      cell: (k) => int(k.total_input + k.total_output),
    },
    {
      id: "cost",
      label: "Cost",
      numeric: true,
      sort: (k) => k.cost_usd,
      cell: (k) => {
        const c = costText(k);
        return (
          <>
            {c.text}
            {c.note && <div class="muted small">{c.note}</div>}
          </>
        );
      },
    },
    {
      id: "limits",
      label: "Limits",
      sort: (k) => Math.max(0, ...limitStates(k).map((l) => l.takenShare)),
      cell: (k) => {
        const ls = limitStates(k);
        return ls.length === 0 ? <span class="muted">none</span> : (
          <div class="limits">
            {ls.map((l) => <LimitBar limit={l} key={l.name} timeZone={timeZone} today={today} />)}
          </div>
        );
      },
    },
    {
      id: "last_used",
      label: "Last used",
      sort: (k) => k.last_used ?? "",
      cell: (k) => time(k.last_used, timeZone),
    },
    {
      id: "expires",
      label: "Expires",
      // Keys that never expire sort after every date.
      sort: (k) => k.expires_at ?? "~",
      cell: (k) => (k.expires_at ? time(k.expires_at, timeZone) : "never"),
    },
    {
      id: "created",
      label: "Created",
      sort: (k) => k.created,
      cell: (k) => time(k.created, timeZone),
    },
  ];

  return (
    <div class="view">
      <h1>Keys</h1>
      <div class="toolbar">
        <label>
          Filter
          <input
            type="search"
            placeholder="name, id or key prefix"
            value={filter}
            onInput={(e) => setFilter(e.currentTarget.value)}
          />
        </label>
        <label>
          Status
          <select value={status} onChange={(e) => setStatus(e.currentTarget.value)}>
            <option value="all">All</option>
            <option value="enabled">Enabled</option>
            <option value="disabled">Disabled</option>
            {list.some((k) => k.expired) && <option value="expired">Expired</option>}
          </select>
        </label>
        <button type="button" class="primary" onClick={() => setCreating(true)}>
          Create key
        </button>
      </div>
      <ErrorNote error={keys.error} retry={keys.reload} />
      <Card title={`${rows.length} of ${list.length} keys`} wide>
        <DataTable
          caption="API keys"
          testId="keys-table"
          columns={columns}
          rows={rows}
          rowKey={(k) => k.id}
          initialSort={{ id: "tokens", desc: true }}
          loading={keys.loading && !keys.data}
          reserve={5}
          empty={list.length ? "No key matches the filter." : "No keys yet: create one."}
        />
      </Card>
      {creating && (
        <CreateKey
          api={api}
          onDone={(created) => {
            setCreating(false);
            if (created) keys.reload();
          }}
        />
      )}
    </div>
  );
}
