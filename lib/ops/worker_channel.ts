/**
 * What the supervisor and its workers say to each other, over the worker's
 * standard streams (they work on every platform and need no port or file):
 *
 * - worker to supervisor, on stdout: its log lines, which the supervisor
 *   relays whole to its own stdout (lines of several workers never mix), and
 *   one control line when it serves, marked by a leading ASCII record
 *   separator (log lines never hold one: JSON escapes it, pretty lines
 *   quote any value with it);
 * - supervisor to worker, on stdin: one JSON line whenever the set of
 *   serving workers changes; the end of stdin means "drain and stop" (the
 *   supervisor closed it, or died).
 */
import { z } from "zod";

const MARK = 0x1e;
const NL = 0x0a;
/** A worker line longer than this is passed on in pieces rather than held. */
const MAX_HELD = 1024 * 1024;

const ReadySchema = z.object({
  /** The port the worker serves (the supervisor learns a port 0 listen's real port). */
  port: z.number().int().min(1).max(65535),
  /** Its private metrics port and token. */
  metrics: z.object({ port: z.number().int().min(1).max(65535), token: z.string().min(16) }),
});

/** What a worker says when it serves. */
export type Ready = z.infer<typeof ReadySchema>;

const PeersSchema = z.object({
  serving: z.number().int().min(1),
  peers: z.array(z.object({ id: z.number().int().min(1), ...ReadySchema.shape.metrics.shape })),
});

/** What the supervisor says when the set of serving workers changes. */
export type Peers = z.infer<typeof PeersSchema>;

const enc = new TextEncoder();
const dec = new TextDecoder();

function writeAll(bytes: Uint8Array): void {
  for (let off = 0; off < bytes.length;) off += Deno.stdout.writeSync(bytes.subarray(off));
}

/** Worker side: tells the supervisor this worker serves. */
export function announceReady(ready: Ready): void {
  writeAll(enc.encode(`\x1eready ${JSON.stringify(ready)}\n`));
}

/** Supervisor side: the line telling every worker who serves. */
export function peersLine(peers: Peers): Uint8Array {
  return enc.encode(JSON.stringify(peers) + "\n");
}

/**
 * Worker side: reads the supervisor's lines from stdin; `onPeers` for each,
 * `onEnd` once stdin ends (the supervisor wants this worker to stop, or is
 * gone). Lines that do not parse are ignored.
 */
export async function listenToSupervisor(
  onPeers: (p: Peers) => void,
  onEnd: () => void,
): Promise<void> {
  let held = "";
  try {
    for await (const chunk of Deno.stdin.readable.pipeThrough(new TextDecoderStream())) {
      held += chunk;
      let nl;
      while ((nl = held.indexOf("\n")) !== -1) {
        const line = held.slice(0, nl);
        held = held.slice(nl + 1);
        try {
          onPeers(PeersSchema.parse(JSON.parse(line)));
        } catch {
          // not from a supervisor of this version: nothing to act on
        }
      }
      if (held.length > MAX_HELD) held = "";
    }
  } finally {
    onEnd();
  }
}

/**
 * Supervisor side: relays a worker's stdout to `out` in whole lines, and
 * hands its control lines (without the mark) to `onReady`. Returns when the
 * worker's stdout ends.
 */
export async function relayWorkerOutput(
  stdout: ReadableStream<Uint8Array>,
  out: (bytes: Uint8Array) => void,
  onReady: (ready: Ready) => void,
): Promise<void> {
  let held = new Uint8Array(0);
  const control = (line: Uint8Array) => {
    const text = dec.decode(line);
    const m = /^ready (.*)$/.exec(text);
    if (!m) return;
    try {
      onReady(ReadySchema.parse(JSON.parse(m[1])));
    } catch {
      // a malformed control line is dropped; the worker is then never counted as serving
    }
  };
  for await (const chunk of stdout) {
    let data = chunk;
    if (held.length) {
      data = new Uint8Array(held.length + chunk.length);
      data.set(held);
      data.set(chunk, held.length);
    }
    // Control lines are rare (one per worker start): cut them out, pass the rest on.
    for (let mark = data.indexOf(MARK); mark !== -1; mark = data.indexOf(MARK)) {
      const end = data.indexOf(NL, mark);
      if (end === -1) break;
      if (mark > 0) out(data.subarray(0, mark));
      control(data.subarray(mark + 1, end));
      data = data.subarray(end + 1);
    }
    const lastNl = data.lastIndexOf(NL);
    const pendingMark = data.indexOf(MARK);
    const cut = pendingMark !== -1 ? pendingMark : lastNl + 1;
    if (cut > 0) out(data.subarray(0, cut));
    held = data.slice(cut);
    if (held.length > MAX_HELD) {
      out(held);
      held = new Uint8Array(0);
    }
  }
  if (held.length) out(held);
}

/** Writes bytes to this process's stdout; a closed stdout drops them. */
export function writeStdout(bytes: Uint8Array): void {
  try {
    writeAll(bytes);
  } catch {
    // stdout closed: nothing useful left to do with log lines.
  }
}
