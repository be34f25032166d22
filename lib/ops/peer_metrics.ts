/**
 * `/metrics` when several workers serve: whichever worker a scrape lands on
 * answers for all of them. Each worker keeps its own metrics in memory and
 * serves them on a private listener (127.0.0.1, a random port, a random
 * token); the answering worker reads every other serving worker's there and
 * puts all of them in one exposition, each sample labelled `worker="<n>"`.
 *
 * Why not one worker's own metrics: Prometheus keeps its connection open,
 * so every scrape would land on the same worker and the others would never
 * be seen. Why a label and not sums: a worker that restarts starts its
 * counters at zero; summed, that looks like the whole gateway's counters
 * going back, which `rate()` reads as a huge jump. Per worker it is an
 * ordinary counter reset. `sum without (worker) (...)` gives host totals.
 */
import type { Metrics } from "./metrics.ts";
import type { WorkerInfo } from "./workers.ts";

/** How long the answering worker waits for another worker's metrics. */
const PEER_TIMEOUT_MS = 2000;

/** A worker's private metrics listener. */
export interface PeerListener {
  port: number;
  token: string;
  close(): Promise<void>;
}

function randomToken(): string {
  const bytes = crypto.getRandomValues(new Uint8Array(24));
  return Array.from(bytes, (b) => b.toString(16).padStart(2, "0")).join("");
}

/** Serves this worker's metrics (labelled with its number) to the other workers. */
export function listenForPeers(metrics: Metrics, worker: WorkerInfo): PeerListener {
  const token = randomToken();
  const expected = `Bearer ${token}`;
  const server = Deno.serve(
    { hostname: "127.0.0.1", port: 0, onListen: () => {} },
    (req) => {
      if (new URL(req.url).pathname !== "/metrics") return new Response(null, { status: 404 });
      // Loopback only and a 192-bit token: an equality check is enough here.
      if (req.headers.get("authorization") !== expected) {
        return new Response(null, { status: 403 });
      }
      return new Response(metrics.render(worker.id));
    },
  );
  return { port: server.addr.port, token, close: () => server.shutdown() };
}

/**
 * Every serving worker's metrics in one exposition: this worker's own and
 * each other's, read from their private listeners. A worker that does not
 * answer in time (it is restarting) is left out of this scrape.
 */
export async function allWorkersMetrics(
  metrics: Metrics,
  worker: WorkerInfo,
  onMissing: (id: number, why: string) => void,
): Promise<string> {
  const peers = [...worker.peers].sort((a, b) => a.id - b.id);
  const texts = await Promise.all(peers.map(async (p) => {
    try {
      const res = await fetch(`http://127.0.0.1:${p.port}/metrics`, {
        headers: { authorization: `Bearer ${p.token}` },
        signal: AbortSignal.timeout(PEER_TIMEOUT_MS),
      });
      if (res.ok) return await res.text();
      await res.body?.cancel();
      onMissing(p.id, `status ${res.status}`);
    } catch (e) {
      onMissing(p.id, e instanceof Error ? e.message : String(e));
    }
    return "";
  }));
  const own = metrics.render(worker.id);
  const byId = peers.map((p, i) => ({ id: p.id, text: texts[i] }));
  byId.push({ id: worker.id, text: own });
  byId.sort((a, b) => a.id - b.id);
  return mergeExpositions(byId.map((x) => x.text));
}

/**
 * Expositions of the same metric families merged into one: each family's
 * `# HELP` and `# TYPE` once, then its samples from every text in order (the
 * format wants a family's samples together).
 */
export function mergeExpositions(texts: string[]): string {
  const families = new Map<string, { head: string[]; samples: string[] }>();
  for (const text of texts) {
    let family: { head: string[]; samples: string[] } | undefined;
    let fresh = false;
    for (const line of text.split("\n")) {
      if (!line) continue;
      const help = /^# HELP (\S+)/.exec(line);
      if (help) {
        family = families.get(help[1]);
        fresh = !family;
        if (!family) families.set(help[1], family = { head: [line], samples: [] });
      } else if (line.startsWith("# ")) {
        if (fresh) family?.head.push(line);
      } else {
        family?.samples.push(line);
      }
    }
  }
  return [...families.values()].flatMap((f) => [...f.head, ...f.samples]).join("\n") + "\n";
}
