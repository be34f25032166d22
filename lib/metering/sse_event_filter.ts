/**
 * A byte-level SSE event filter for the client's copy of a stream: passes
 * every event through unchanged except those `drop` selects. It works on
 * event boundaries (blank lines in LF, CRLF or CR form) and decodes nothing
 * it need not look at; a chunk made of whole events with no candidate passes
 * through as the very same bytes.
 */

const LF = 0x0a, CR = 0x0d;

/**
 * Offsets just past each blank line (event end) in `b`. A CR as the very last
 * byte is not taken as a line end yet: it may be half of a CRLF.
 */
function eventEnds(b: Uint8Array): number[] {
  const ends: number[] = [];
  let lineStart = 0;
  let i = 0;
  let nextCr = b.indexOf(CR);
  while (i < b.length) {
    const nextLf = b.indexOf(LF, i);
    if (nextCr !== -1 && nextCr < i) nextCr = b.indexOf(CR, i);
    const t = nextCr === -1 ? nextLf : nextLf === -1 ? nextCr : Math.min(nextCr, nextLf);
    if (t === -1) break;
    let len = 1;
    if (b[t] === CR) {
      if (t + 1 === b.length) break;
      if (b[t + 1] === LF) len = 2;
    }
    const blank = t === lineStart;
    i = lineStart = t + len;
    if (blank) ends.push(i);
  }
  return ends;
}

const dec = new TextDecoder();

/** The joined `data:` field values of one raw event. */
function eventData(text: string): string {
  const parts: string[] = [];
  for (const line of text.split(/\r\n|\r|\n/)) {
    if (line.startsWith("data:")) parts.push(line.slice(line.charCodeAt(5) === 0x20 ? 6 : 5));
  }
  return parts.join("\n");
}

/**
 * Drops whole SSE events from a byte stream. `mayDrop` is a cheap pre-check
 * on raw bytes (of several events at once); `drop` decides for one event's
 * data. Feed chunks with `push`, and call `flush` at the end.
 */
export class SseEventDropper {
  #carry?: Uint8Array;
  #mayDrop: (bytes: Uint8Array) => boolean;
  #drop: (data: string) => boolean;

  constructor(mayDrop: (bytes: Uint8Array) => boolean, drop: (data: string) => boolean) {
    this.#mayDrop = mayDrop;
    this.#drop = drop;
  }

  #emit(b: Uint8Array, ends: number[], out: (b: Uint8Array) => void): void {
    if (b.length === 0) return;
    if (!this.#mayDrop(b)) return out(b);
    let start = 0;
    for (const end of ends) {
      const ev = b.subarray(start, end);
      if (!this.#drop(eventData(dec.decode(ev)))) out(ev);
      start = end;
    }
  }

  /** Passes the complete events of `chunk` (plus any carried bytes) to `out`. */
  push(chunk: Uint8Array, out: (b: Uint8Array) => void): void {
    let b = chunk;
    if (this.#carry) {
      b = new Uint8Array(this.#carry.length + chunk.length);
      b.set(this.#carry);
      b.set(chunk, this.#carry.length);
      this.#carry = undefined;
    }
    const ends = eventEnds(b);
    const cut = ends.length ? ends[ends.length - 1] : 0;
    if (cut < b.length) this.#carry = b.slice(cut);
    this.#emit(cut === b.length ? b : b.subarray(0, cut), ends, out);
  }

  /** Passes on a last event that had no terminating blank line. */
  flush(out: (b: Uint8Array) => void): void {
    const rest = this.#carry;
    this.#carry = undefined;
    if (rest) this.#emit(rest, [rest.length], out);
  }
}
