/**
 * Models and providers: the configuration in force (and the last reload
 * error, if any), each provider's key, breaker, recent error and latency,
 * the routing table and the known models.
 */
import type { Session } from "../app.tsx";
import { Card, DataTable, ErrorNote, useLoad } from "../components.tsx";
import { int, time } from "../format.ts";
import type { ModelsStatus, ProviderStatus } from "../types.ts";

/** The models and providers view. */
export function Models(props: { s: Session }) {
  const { api, timeZone } = props.s;
  const st = useLoad(() => api.get<ModelsStatus>("/admin/models"), [api]);
  const d = st.data;
  const loading = st.loading && !d;
  return (
    <div class="view">
      <h1>Models & providers</h1>
      <ErrorNote error={st.error} retry={st.reload} />
      {d?.config.last_reload_error && (
        <div class="error-note" role="alert" data-testid="reload-error">
          <strong>The last reload of {d.config.path} failed</strong>{" "}
          ({time(d.config.last_reload_error.at, timeZone)}):{" "}
          {d.config.last_reload_error.message}. The configuration loaded at{" "}
          {time(d.config.loaded_at, timeZone)} is still in force.
        </div>
      )}
      <Card title="Providers" wide>
        <DataTable<ProviderStatus>
          caption="Providers"
          testId="providers-table"
          loading={loading}
          reserve={3}
          rows={d?.providers ?? []}
          rowKey={(p) => p.id}
          empty="No providers are configured."
          columns={[
            {
              id: "id",
              label: "Provider",
              sort: (p) => p.id,
              cell: (p) => (
                <>
                  <strong>{p.id}</strong>
                  {p.name !== p.id && <div class="muted">{p.name}</div>}
                </>
              ),
            },
            { id: "format", label: "Format", sort: (p) => p.format, cell: (p) => p.format },
            {
              id: "key",
              label: "API key",
              sort: (p) => (p.has_api_key ? 1 : 0),
              cell: (p) => (
                <span class={`badge ${p.has_api_key ? "enabled" : "disabled"}`}>
                  {p.api_key_env === null
                    ? "none needed"
                    : p.has_api_key
                    ? `${p.api_key_env} set`
                    : `${p.api_key_env} missing`}
                </span>
              ),
            },
            {
              id: "breaker",
              label: "Breaker",
              sort: (p) => p.breaker.state,
              cell: (p) => (
                <span class={`badge breaker-${p.breaker.state}`}>
                  {p.breaker.state.replace("_", "-")}
                  {p.breaker.consecutive_failures > 0 &&
                    ` (${p.breaker.consecutive_failures} failures in a row)`}
                </span>
              ),
            },
            {
              id: "requests",
              label: "Requests",
              numeric: true,
              sort: (p) => p.requests,
              cell: (p) => int(p.requests),
            },
            {
              id: "failures",
              label: "Failures",
              numeric: true,
              sort: (p) => p.failures,
              cell: (p) => int(p.failures),
            },
            {
              id: "latency",
              label: "Latency",
              numeric: true,
              sort: (p) => p.latency_ms,
              cell: (p) => (p.latency_ms === null ? "–" : `${int(p.latency_ms)} ms`),
            },
            {
              id: "success",
              label: "Last success",
              sort: (p) => p.last_success ?? "",
              cell: (p) => time(p.last_success, timeZone),
            },
            {
              id: "error",
              label: "Recent error",
              cell: (p) =>
                p.recent_error
                  ? (
                    <span class="error-text">
                      {p.recent_error.status !== null && `${p.recent_error.status}: `}
                      {p.recent_error.message}{" "}
                      <span class="muted">({time(p.recent_error.at, timeZone)})</span>
                    </span>
                  )
                  : "none",
            },
          ]}
        />
      </Card>
      <div class="grid two">
        <Card title="Routing">
          <DataTable<[string, string[]]>
            caption="Routing: model prefix to provider chain"
            testId="routing-table"
            loading={loading}
            reserve={3}
            rows={Object.entries(d?.routing ?? {})}
            rowKey={(r) => r[0]}
            empty="No routing prefixes: providers match by their model prefixes."
            columns={[
              { id: "prefix", label: "Model prefix", sort: (r) => r[0], cell: (r) => r[0] },
              {
                id: "chain",
                label: "Providers (in fallback order)",
                cell: (r) => r[1].join(" → "),
              },
            ]}
          />
          <p class="hint">
            Providers also serve their own prefixes:{" "}
            {(d?.providers ?? []).filter((p) => p.model_prefixes.length).map((p) =>
              `${p.id} (${p.model_prefixes.join(", ")})`
            ).join("; ") || "none"}.
          </p>
        </Card>
        <Card title="Known models">
          <DataTable
            caption="Known models"
            testId="models-table"
            loading={loading}
            reserve={3}
            rows={d?.known_models ?? []}
            rowKey={(m) => m.id}
            empty="No known models listed."
            columns={[
              { id: "id", label: "Model", sort: (m) => m.id, cell: (m) => m.id },
              {
                id: "provider",
                label: "Provider",
                sort: (m) => m.provider,
                cell: (m) => m.provider,
              },
              { id: "owner", label: "Owned by", sort: (m) => m.owned_by, cell: (m) => m.owned_by },
            ]}
          />
        </Card>
      </div>
      {d && (
        <p class="hint">
          Configuration: <code>{d.config.path}</code>, loaded {time(d.config.loaded_at, timeZone)}.
        </p>
      )}
    </div>
  );
}
