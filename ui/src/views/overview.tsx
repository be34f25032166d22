/**
 * Overview: today and this month at a glance (requests, tokens by bucket,
 * cost, error rate), the top keys and models of the month, and the keys
 * within 20% of a limit.
 */
import type { Session } from "../app.tsx";
import { query } from "../api.ts";
import { Card, DataTable, ErrorNote, LimitBar, Stat, useLoad } from "../components.tsx";
import { monthStart } from "../dates.ts";
import { costText, int, pct } from "../format.ts";
import { nearLimits } from "../limits.ts";
import type { DailyReport, KeyView, Priced } from "../types.ts";

const NO_COST: Priced = { cost_usd: null, unpriced_requests: 0 };

/** Two costs added up (null only while neither has a priced part), in micro-dollars' precision. */
function addCost(a: Priced, b: Priced): Priced {
  return {
    cost_usd: a.cost_usd === null && b.cost_usd === null
      ? null
      : Math.round(((a.cost_usd ?? 0) + (b.cost_usd ?? 0)) * 1e6) / 1e6,
    unpriced_requests: a.unpriced_requests + b.unpriced_requests,
  };
}

/** Figures of a period, summed from daily report rows. */
interface Figures {
  requests: number;
  failed: number;
  input_uncached: number;
  cache_read: number;
  cache_write: number;
  output: number;
  cost: Priced;
}

function figures(days: DailyReport["days"]): Figures {
  const f: Figures = {
    requests: 0,
    failed: 0,
    input_uncached: 0,
    cache_read: 0,
    cache_write: 0,
    output: 0,
    cost: NO_COST,
  };
  for (const d of days) {
    f.requests += d.total_requests;
    f.failed += d.failed;
    f.input_uncached += d.input_uncached;
    f.cache_read += d.cache_read;
    f.cache_write += d.cache_write;
    f.output += d.total_output;
    f.cost = addCost(f.cost, d);
  }
  return f;
}

function Period(props: { title: string; id: string; f?: Figures }) {
  const f = props.f;
  const tokens = f && f.input_uncached + f.cache_read + f.cache_write + f.output;
  return (
    <Card title={props.title}>
      <div class="stats" data-testid={`period-${props.id}`}>
        <Stat id="requests" label="Requests" value={f && int(f.requests)} />
        <Stat id="tokens" label="Tokens" value={tokens === undefined ? undefined : int(tokens)} />
        <Stat id="input_uncached" label="Input (uncached)" value={f && int(f.input_uncached)} />
        <Stat id="cache_read" label="Cache read" value={f && int(f.cache_read)} />
        <Stat id="cache_write" label="Cache write" value={f && int(f.cache_write)} />
        <Stat id="output" label="Output" value={f && int(f.output)} />
        <Stat
          id="error_rate"
          label="Error rate"
          value={f && pct(f.failed, f.requests)}
          hint={f && `${int(f.failed)} failed`}
        />
        <Stat
          id="cost"
          label="Cost"
          value={f && costText(f.cost).text}
          hint={f && costText(f.cost).note}
        />
      </div>
    </Card>
  );
}

interface KeyRow {
  id: string;
  name: string;
  requests: number;
  tokens: number;
  cost: Priced;
}

interface ModelRow {
  model: string;
  requests: number;
  tokens: number;
  cost: Priced;
}

/** The overview view. */
export function Overview(props: { s: Session }) {
  const { api, today, timeZone } = props.s;
  const month = useLoad(
    () =>
      api.get<DailyReport>(`/admin/usage/daily${query({ from: monthStart(today), to: today })}`),
    [api, today],
  );
  const keys = useLoad(() => api.get<{ keys: KeyView[] }>("/admin/keys"), [api]);
  const days = month.data?.days;
  const todayF = days && figures(days.filter((d) => d.date === today));
  const monthF = days && figures(days);

  const byKey = new Map<string, KeyRow>();
  const byModel = new Map<string, ModelRow>();
  for (const d of days ?? []) {
    for (const k of d.keys) {
      const row = byKey.get(k.id) ??
        { id: k.id, name: k.name, requests: 0, tokens: 0, cost: NO_COST };
      row.requests += k.requests;
      row.tokens += k.input + k.output;
      row.cost = addCost(row.cost, k);
      byKey.set(k.id, row);
    }
    for (const [model, st] of Object.entries(d.by_model)) {
      const row = byModel.get(model) ?? { model, requests: 0, tokens: 0, cost: NO_COST };
      row.requests += st.requests;
      row.tokens += st.total;
      row.cost = addCost(row.cost, st);
      byModel.set(model, row);
    }
  }
  const topKeys = [...byKey.values()].sort((a, b) => b.tokens - a.tokens).slice(0, 5);
  const topModels = [...byModel.values()].sort((a, b) => b.tokens - a.tokens).slice(0, 5);
  const keyList = keys.data?.keys ?? [];
  const near = nearLimits(keyList);
  const loading = month.loading && !days;

  return (
    <div class="view">
      <h1>Overview</h1>
      <ErrorNote error={month.error ?? keys.error} retry={() => (month.reload(), keys.reload())} />
      <div class="grid two">
        <Period title={`Today (${today})`} id="today" f={todayF} />
        <Period title="This month" id="month" f={monthF} />
      </div>
      <div class="grid two">
        <Card title="Top keys this month">
          <DataTable
            caption="Top keys this month by tokens"
            testId="top-keys"
            loading={loading}
            reserve={5}
            rows={topKeys}
            rowKey={(r) => r.id}
            empty="No usage this month."
            columns={[
              {
                id: "name",
                label: "Key",
                cell: (r) => <a href={`#/keys/${encodeURIComponent(r.id)}`}>{r.name}</a>,
              },
              { id: "requests", label: "Requests", numeric: true, cell: (r) => int(r.requests) },
              { id: "tokens", label: "Tokens", numeric: true, cell: (r) => int(r.tokens) },
              { id: "cost", label: "Cost", numeric: true, cell: (r) => costText(r.cost).text },
            ]}
          />
        </Card>
        <Card title="Top models this month">
          <DataTable
            caption="Top models this month by tokens"
            testId="top-models"
            loading={loading}
            reserve={5}
            rows={topModels}
            rowKey={(r) => r.model}
            empty="No usage this month."
            columns={[
              { id: "model", label: "Model", cell: (r) => r.model },
              { id: "requests", label: "Requests", numeric: true, cell: (r) => int(r.requests) },
              { id: "tokens", label: "Tokens", numeric: true, cell: (r) => int(r.tokens) },
              { id: "cost", label: "Cost", numeric: true, cell: (r) => costText(r.cost).text },
            ]}
          />
        </Card>
      </div>
      <Card title="Keys within 20% of a limit" wide>
        {keys.data && near.length === 0
          ? <p class="empty" data-testid="near-none">No key is within 20% of a limit.</p>
          : (
            <ul class="near-list" data-testid="near-limits">
              {near.map(({ key, limit }) => (
                <li key={`${key.id}-${limit.name}`}>
                  <a href={`#/keys/${encodeURIComponent(key.id)}`}>{key.name}</a>
                  <LimitBar limit={limit} timeZone={timeZone} today={today} />
                </li>
              ))}
            </ul>
          )}
      </Card>
    </div>
  );
}
