/**
 * Requests: the gateway's request log (`GET /admin/requests`), newest first,
 * filtered by key, model, status and time (in `USAGE_TZ`, like every time on
 * the page), a page at a time. `#/requests/KEY_ID` opens it filtered by key.
 */
import { useState } from "preact/hooks";
import type { Session } from "../app.tsx";
import { query } from "../api.ts";
import { Card, DataTable, ErrorNote, useLoad } from "../components.tsx";
import { int, time, usd } from "../format.ts";
import type { KeyView, RequestEntry, RequestPage } from "../types.ts";
import { zonedInstant } from "../zone.ts";

/** Entries per page. */
const PAGE = 50;

interface Filters {
  key: string;
  model: string;
  status: string;
  since: string;
  until: string;
}

/** A `datetime-local` value in the usage time zone as an ISO time ("" when empty or no time). */
function isoOf(local: string, timeZone: string): string {
  const ms = local ? zonedInstant(local, timeZone) : null;
  return ms === null ? "" : new Date(ms).toISOString();
}

/** The request log view, filtered by `keyId` to begin with when given. */
export function Requests(props: { s: Session; keyId?: string }) {
  const { api, timeZone } = props.s;
  const initial: Filters = { key: props.keyId ?? "", model: "", status: "", since: "", until: "" };
  const [draft, setDraft] = useState<Filters>(initial);
  const [filters, setFilters] = useState<Filters>(initial);
  // Cursors of the pages before this one, so "Newer" can step back.
  const [cursors, setCursors] = useState<string[]>([]);
  const cursor = cursors[cursors.length - 1] ?? "";
  const keys = useLoad(() => api.get<{ keys: KeyView[] }>("/admin/keys"), [api]);
  const page = useLoad(
    () =>
      api.get<RequestPage>(
        `/admin/requests${
          query({
            key: filters.key,
            model: filters.model.trim(),
            status: filters.status,
            since: isoOf(filters.since, timeZone),
            until: isoOf(filters.until, timeZone),
            limit: PAGE,
            cursor,
          })
        }`,
      ),
    [api, filters, cursor],
  );
  const set = (k: keyof Filters) => (e: { currentTarget: { value: string } }) =>
    setDraft({ ...draft, [k]: e.currentTarget.value });
  const rows = page.data?.requests ?? [];
  const pager = (
    <div class="pager">
      <span class="muted">Page {cursors.length + 1}</span>
      <button
        type="button"
        disabled={cursors.length === 0}
        onClick={() => setCursors(cursors.slice(0, -1))}
      >
        Newer
      </button>
      <button
        type="button"
        disabled={!page.data?.next_cursor}
        onClick={() => page.data?.next_cursor && setCursors([...cursors, page.data.next_cursor])}
      >
        Older
      </button>
    </div>
  );
  const tokens = (r: RequestEntry) => r.input_uncached + r.cache_read + r.cache_write + r.output;

  return (
    <div class="view">
      <h1>Requests</h1>
      <form
        class="toolbar filters"
        onSubmit={(e) => {
          e.preventDefault();
          setCursors([]);
          setFilters(draft);
        }}
      >
        <label>
          Key
          <select class="key-filter" value={draft.key} onChange={set("key")}>
            <option value="">All keys</option>
            {keys.data?.keys.map((k) => <option value={k.id} key={k.id}>{k.name}</option>)}
            {
              // A key asked for by id shows as its id until the key list is in.
              draft.key && !keys.data?.keys.some((k) => k.id === draft.key) && (
                <option value={draft.key}>{draft.key}</option>
              )
            }
          </select>
        </label>
        <label>
          Model
          <input value={draft.model} maxLength={200} onInput={set("model")} />
        </label>
        <label>
          Status
          <select value={draft.status} onChange={set("status")}>
            <option value="">Any</option>
            <option value="2xx">2xx success</option>
            <option value="4xx">4xx client error</option>
            <option value="403">403 not allowed</option>
            <option value="429">429 over a limit</option>
            <option value="5xx">5xx server error</option>
          </select>
        </label>
        <label>
          Since ({timeZone})
          <input type="datetime-local" value={draft.since} onChange={set("since")} />
        </label>
        <label>
          Until ({timeZone})
          <input type="datetime-local" value={draft.until} onChange={set("until")} />
        </label>
        <button type="submit" class="primary">Apply</button>
      </form>
      <ErrorNote error={page.error} retry={page.reload} />
      <Card title="Request log (newest first)" wide actions={pager}>
        <DataTable<RequestEntry>
          caption="Request log"
          testId="requests-table"
          loading={page.loading && !page.data}
          reserve={10}
          rows={rows}
          rowKey={(r) => r.id}
          empty="No request matches. The log keeps REQUEST_LOG_DAYS days (7 unless set; 0 keeps none)."
          columns={[
            {
              id: "time",
              label: "Time",
              cell: (r) => (
                <span title={`request ${r.id}`}>{time(r.time, timeZone, { seconds: true })}</span>
              ),
            },
            {
              id: "key",
              label: "Key",
              cell: (r) => <a href={`#/keys/${encodeURIComponent(r.key_id)}`}>{r.key_name}</a>,
            },
            { id: "model", label: "Model", cell: (r) => r.model },
            {
              id: "provider",
              label: "Provider",
              cell: (r) => r.provider ?? <span class="muted">none</span>,
            },
            {
              id: "status",
              label: "Status",
              cell: (r) => (
                <span class={`badge ${r.status < 400 ? "enabled" : "disabled"}`}>{r.status}</span>
              ),
            },
            { id: "tokens", label: "Tokens", numeric: true, cell: (r) => int(tokens(r)) },
            {
              id: "buckets",
              label: "In / cache r / cache w / out",
              numeric: true,
              cell: (r) =>
                `${int(r.input_uncached)} / ${int(r.cache_read)} / ${int(r.cache_write)} / ${
                  int(r.output)
                }`,
            },
            {
              id: "cost",
              label: "Cost",
              numeric: true,
              // A request that used no tokens cost nothing, priced or not.
              cell: (r) => r.cost_usd !== null ? usd(r.cost_usd) : tokens(r) > 0 ? "no price" : "–",
            },
            {
              id: "latency",
              label: "Latency",
              numeric: true,
              cell: (r) =>
                `${int(r.latency_ms)} ms${
                  r.ttfb_ms !== null ? ` (first byte ${int(r.ttfb_ms)})` : ""
                }`,
            },
            {
              id: "notes",
              label: "Notes",
              cell: (r) =>
                [
                  r.stream ? "stream" : "",
                  r.retries ? `${r.retries} ${r.retries === 1 ? "retry" : "retries"}` : "",
                  r.complete ? "" : "incomplete",
                  r.error ?? "",
                ].filter(Boolean).join("; "),
            },
          ]}
        />
        {
          // A second pager under a full page; it appears with the rows, so nothing moves.
          rows.length > 0 && pager
        }
      </Card>
    </div>
  );
}
