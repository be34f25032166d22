/**
 * Requests: the gateway's request log (`GET /admin/requests`), newest first,
 * filtered by key, model, status and time, a page at a time.
 */
import { useState } from "preact/hooks";
import type { Session } from "../app.tsx";
import { query } from "../api.ts";
import { Card, DataTable, ErrorNote, useLoad } from "../components.tsx";
import { int, time, usd } from "../format.ts";
import type { KeyView, RequestEntry, RequestPage } from "../types.ts";

/** Entries per page. */
const PAGE = 50;

interface Filters {
  key: string;
  model: string;
  status: string;
  since: string;
  until: string;
}

const NO_FILTERS: Filters = { key: "", model: "", status: "", since: "", until: "" };

/** A `datetime-local` value (the browser's local time) as an ISO time, or "" when empty. */
function isoOf(local: string): string {
  if (!local) return "";
  const d = new Date(local);
  return Number.isNaN(d.getTime()) ? "" : d.toISOString();
}

/** The request log view. */
export function Requests(props: { s: Session }) {
  const { api, timeZone } = props.s;
  const [draft, setDraft] = useState<Filters>(NO_FILTERS);
  const [filters, setFilters] = useState<Filters>(NO_FILTERS);
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
            since: isoOf(filters.since),
            until: isoOf(filters.until),
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
          <select value={draft.key} onChange={set("key")}>
            <option value="">All keys</option>
            {keys.data?.keys.map((k) => <option value={k.id} key={k.id}>{k.name}</option>)}
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
            <option value="429">429 limited</option>
            <option value="5xx">5xx server error</option>
          </select>
        </label>
        <label>
          Since
          <input type="datetime-local" value={draft.since} onChange={set("since")} />
        </label>
        <label>
          Until
          <input type="datetime-local" value={draft.until} onChange={set("until")} />
        </label>
        <button type="submit" class="primary">Apply</button>
      </form>
      <ErrorNote error={page.error} retry={page.reload} />
      <Card title="Request log (newest first)" wide>
        <DataTable<RequestEntry>
          caption="Request log"
          testId="requests-table"
          loading={page.loading && !page.data}
          reserve={10}
          rows={rows}
          rowKey={(r) => r.id}
          empty="No request matches."
          columns={[
            { id: "time", label: "Time", cell: (r) => time(r.time, timeZone) },
            { id: "key", label: "Key", cell: (r) => r.key_name },
            { id: "model", label: "Model", cell: (r) => r.model },
            { id: "provider", label: "Provider", cell: (r) => r.provider },
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
              cell: (r) => (r.cost_usd === null ? "no price" : usd(r.cost_usd)),
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
                  r.retries ? `${r.retries} retries` : "",
                  r.complete ? "" : "incomplete",
                  r.error ?? "",
                ].filter(Boolean).join("; "),
            },
          ]}
        />
        <div class="pager">
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
            onClick={() =>
              page.data?.next_cursor && setCursors([...cursors, page.data.next_cursor])}
          >
            Older
          </button>
        </div>
      </Card>
    </div>
  );
}
