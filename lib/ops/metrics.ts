/**
 * Prometheus metrics, kept in process and rendered in the text exposition
 * format on `GET /metrics`. Label sets are bounded: per-key labels only
 * with `METRICS_PER_KEY=true`, and each metric keeps at most
 * {@link MAX_SERIES} label sets (further ones are folded into `other`).
 */

/** Most label sets one metric keeps. */
const MAX_SERIES = 2000;

type Labels = Record<string, string>;

function escape(v: string): string {
  return v.replace(/\\/g, "\\\\").replace(/"/g, '\\"').replace(/\n/g, "\\n");
}

function labelText(
  names: readonly string[],
  values: readonly string[],
  ...extra: string[]
): string {
  const parts = names.map((n, i) => `${n}="${escape(values[i])}"`);
  for (const e of extra) if (e) parts.push(e);
  return parts.length ? `{${parts.join(",")}}` : "";
}

abstract class Metric {
  readonly series = new Map<string, { values: string[] }>();
  constructor(readonly name: string, readonly help: string, readonly labels: readonly string[]) {}

  /** The series id of a label set, registering the series when new (or folding it into `other`). */
  protected key(l: Labels): string {
    let id = "";
    for (let i = 0; i < this.labels.length; i++) {
      id += (i ? "\u0000" : "") + (l[this.labels[i]] ?? "");
    }
    if (this.series.has(id)) return id;
    let values = this.labels.map((n) => l[n] ?? "");
    if (this.series.size >= MAX_SERIES) {
      values = this.labels.map(() => "other");
      id = values.join("\u0000");
      if (this.series.has(id)) return id;
    }
    this.series.set(id, { values });
    return id;
  }

  /** Exposition lines; `extra` is a `name="value"` label added to every sample. */
  abstract render(extra: string): string[];

  protected head(type: string): string[] {
    return [`# HELP ${this.name} ${this.help}`, `# TYPE ${this.name} ${type}`];
  }
}

/** A monotonically increasing counter. */
export class Counter extends Metric {
  #v = new Map<string, number>();

  inc(l: Labels, n = 1): void {
    if (n === 0) return;
    const id = this.key(l);
    this.#v.set(id, (this.#v.get(id) ?? 0) + n);
  }

  render(extra: string): string[] {
    const out = this.head("counter");
    for (const [id, s] of this.series) {
      out.push(`${this.name}${labelText(this.labels, s.values, extra)} ${this.#v.get(id)}`);
    }
    return out;
  }
}

/** A histogram with fixed buckets (seconds). */
export class Histogram extends Metric {
  #data = new Map<string, { counts: number[]; sum: number; n: number }>();
  constructor(
    name: string,
    help: string,
    labels: readonly string[],
    readonly buckets: readonly number[],
  ) {
    super(name, help, labels);
  }

  observe(l: Labels, v: number): void {
    const id = this.key(l);
    let d = this.#data.get(id);
    if (!d) {
      d = { counts: this.buckets.map(() => 0), sum: 0, n: 0 };
      this.#data.set(id, d);
    }
    for (let i = 0; i < this.buckets.length; i++) if (v <= this.buckets[i]) d.counts[i]++;
    d.sum += v;
    d.n++;
  }

  render(extra: string): string[] {
    const out = this.head("histogram");
    for (const [id, s] of this.series) {
      const d = this.#data.get(id)!;
      const bucket = (le: string) => labelText(this.labels, s.values, extra, `le="${le}"`);
      this.buckets.forEach((b, i) => {
        out.push(`${this.name}_bucket${bucket(String(b))} ${d.counts[i]}`);
      });
      out.push(`${this.name}_bucket${bucket("+Inf")} ${d.n}`);
      out.push(`${this.name}_sum${labelText(this.labels, s.values, extra)} ${d.sum}`);
      out.push(`${this.name}_count${labelText(this.labels, s.values, extra)} ${d.n}`);
    }
    return out;
  }
}

/** A gauge whose samples are computed when scraped. */
export class Gauge extends Metric {
  constructor(
    name: string,
    help: string,
    labels: readonly string[],
    readonly sample: () => [Labels, number][],
  ) {
    super(name, help, labels);
  }

  render(extra: string): string[] {
    const out = this.head("gauge");
    for (const [l, v] of this.sample()) {
      const values = this.labels.map((n) => l[n] ?? "");
      out.push(`${this.name}${labelText(this.labels, values, extra)} ${v}`);
    }
    return out;
  }
}

const LATENCY = [0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1, 2.5, 5, 10, 30, 60, 120, 300, 600];
const KV = [0.0005, 0.001, 0.0025, 0.005, 0.01, 0.025, 0.05, 0.1, 0.25, 0.5, 1];

/** The gateway's metrics. Gauges are added by whoever owns the state they show. */
export class Metrics {
  readonly perKey: boolean;
  readonly requests: Counter;
  readonly tokens: Counter;
  readonly cost: Counter;
  readonly incomplete: Counter;
  readonly http = new Counter(
    "gateway_http_requests_total",
    "Every HTTP request by route pattern and status class, refused ones included.",
    ["route", "status_class"],
  );
  readonly refused = new Counter(
    "gateway_refused_requests_total",
    "Requests the gateway answered with its own error, by reason code.",
    ["reason"],
  );
  readonly usageRejected = new Counter(
    "gateway_usage_rejected_total",
    "Usage entries Deno KV refused to store (set aside and logged, never retried).",
    [],
  );
  readonly usageSpilled = new Counter(
    "gateway_usage_spilled_total",
    "Requests whose usage went to the spill file (KV failing and the in-memory backlog full, or a stop during an outage).",
    [],
  );
  readonly usageDropped = new Counter(
    "gateway_usage_dropped_total",
    "Requests whose usage was lost: beyond the in-memory backlog with no spill file, or the spill file full.",
    [],
  );
  readonly limitFallbacks = new Counter(
    "gateway_limit_fallbacks_total",
    "Admissions decided without KV, by the policy that applied (local, open, closed).",
    ["policy"],
  );
  readonly upstreamErrors = new Counter(
    "gateway_upstream_errors_total",
    "Failed upstream attempts by provider and kind (network, timeout, status, stream).",
    ["provider", "kind"],
  );
  readonly duration = new Histogram(
    "gateway_request_duration_seconds",
    "Time from request arrival to the last byte of the response.",
    ["endpoint"],
    LATENCY,
  );
  readonly ttfb = new Histogram(
    "gateway_time_to_first_byte_seconds",
    "Time from request arrival to the response headers going to the client.",
    ["endpoint"],
    LATENCY,
  );
  readonly upstream = new Histogram(
    "gateway_upstream_response_seconds",
    "Time the upstream took to answer with headers (successful attempts).",
    ["provider"],
    LATENCY,
  );
  readonly kvWrite = new Histogram(
    "gateway_kv_write_seconds",
    "Latency of usage commits to Deno KV.",
    [],
    KV,
  );
  readonly gauges: Gauge[] = [];

  constructor(perKey: boolean) {
    this.perKey = perKey;
    const k = perKey ? ["key_id"] : [];
    this.requests = new Counter(
      "gateway_requests_total",
      "Proxied requests by endpoint, model, provider and HTTP status class.",
      ["endpoint", "model", "provider", "status_class", ...k],
    );
    this.tokens = new Counter(
      "gateway_tokens_total",
      "Metered tokens by model and type (input_uncached, cache_read, cache_write, output).",
      ["model", "type", ...k],
    );
    this.cost = new Counter(
      "gateway_cost_usd_total",
      "Cost in USD at the models.json prices, advisor models included (models without a price are not counted).",
      ["model", ...k],
    );
    this.incomplete = new Counter(
      "gateway_incomplete_requests_total",
      "Requests whose usage is a lower bound (stream cut, error event, client gone).",
      ["model", ...k],
    );
  }

  /** Adds a scrape-time gauge. */
  gauge(
    name: string,
    help: string,
    labels: readonly string[],
    sample: () => [Labels, number][],
  ): void {
    this.gauges.push(new Gauge(name, help, labels, sample));
  }

  /**
   * The exposition text; with `worker`, every sample carries a `worker`
   * label (when several workers serve, see lib/ops/peer_metrics.ts).
   */
  render(worker?: number): string {
    const extra = worker === undefined ? "" : `worker="${worker}"`;
    const all: Metric[] = [
      this.http,
      this.refused,
      this.requests,
      this.tokens,
      this.cost,
      this.incomplete,
      this.upstreamErrors,
      this.usageRejected,
      this.usageSpilled,
      this.usageDropped,
      this.limitFallbacks,
      this.duration,
      this.ttfb,
      this.upstream,
      this.kvWrite,
      ...this.gauges,
    ];
    return all.flatMap((m) => m.render(extra)).join("\n") + "\n";
  }
}
