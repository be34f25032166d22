/**
 * A byte-level SSE event filter for the client's copy of a stream: passes
 * every event through unchanged except those `drop` selects. It works on
 * event boundaries (blank lines in LF, CRLF or CR form) and decodes nothing
 * it need not look at; a chunk made of whole events with no candidate passes
 * through as the very same bytes.
 *
 * Time is linear in the bytes: each byte is scanned once, and an event that
 * spans chunks is held as the pieces it came in, joined once when it ends.
 * Memory is bounded: an event that grows past `maxHeld` bytes cannot be the
 * small event a filter drops, so it goes out as it arrives, unjudged.
 */

const LF = 0x0a, CR = 0x0d;

/**
 * Largest event held back to be judged (bytes). The events filters drop (an
 * injected usage chunk) are a few hundred bytes; anything bigger is content.
 */
export const MAX_HELD_BYTES = 1024 * 1024;

/** Finds the ends of events in a byte stream fed chunk by chunk, looking at each byte once. */
class EventEnds {
  /** No byte of the current line has been seen yet. */
  #lineStart = true;
  /** The last chunk ended with a CR: an LF first in the next one belongs to it. */
  #cr = false;
  /** That CR ended a blank line, so an event ends once the LF question is settled. */
  #crBlank = false;

  /**
   * Offsets in `b` just past each blank line. 0 means the event ended with the
   * previous chunk (whose last byte was a CR not followed by an LF).
   */
  scan(b: Uint8Array): number[] {
    const ends: number[] = [];
    if (b.length === 0) return ends;
    let i = 0;
    if (this.#cr) {
      this.#cr = false;
      if (b[0] === LF) i = 1;
      if (this.#crBlank) ends.push(i);
    }
    // Next CR and LF at or after i, each searched again only once passed.
    let nextCr = b.indexOf(CR, i);
    let nextLf = b.indexOf(LF, i);
    while (i < b.length) {
      if (nextLf !== -1 && nextLf < i) nextLf = b.indexOf(LF, i);
      if (nextCr !== -1 && nextCr < i) nextCr = b.indexOf(CR, i);
      const t = nextCr === -1 ? nextLf : nextLf === -1 ? nextCr : Math.min(nextCr, nextLf);
      if (t === -1) {
        this.#lineStart = false;
        break;
      }
      const blank = this.#lineStart && t === i;
      this.#lineStart = true;
      if (b[t] === CR) {
        if (t + 1 === b.length) {
          this.#cr = true;
          this.#crBlank = blank;
          break;
        }
        i = b[t + 1] === LF ? t + 2 : t + 1;
      } else i = t + 1;
      if (blank) ends.push(i);
    }
    return ends;
  }
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
  #ends = new EventEnds();
  /** Pieces of the event in progress, not yet passed on. */
  #held: Uint8Array[] = [];
  #heldBytes = 0;
  /** The event in progress outgrew `maxHeld`: the rest of it goes out as it comes. */
  #passing = false;
  #mayDrop: (bytes: Uint8Array) => boolean;
  #drop: (data: string) => boolean;
  #maxHeld: number;

  constructor(
    mayDrop: (bytes: Uint8Array) => boolean,
    drop: (data: string) => boolean,
    maxHeld = MAX_HELD_BYTES,
  ) {
    this.#mayDrop = mayDrop;
    this.#drop = drop;
    this.#maxHeld = maxHeld;
  }

  /** Passes on one complete event unless it is to be dropped. */
  #decide(ev: Uint8Array, out: (b: Uint8Array) => void): void {
    if (ev.length === 0) return;
    if (!this.#mayDrop(ev) || !this.#drop(eventData(dec.decode(ev)))) out(ev);
  }

  /** Adds bytes of the unfinished event; past the limit, lets it all go. */
  #hold(piece: Uint8Array, out: (b: Uint8Array) => void): void {
    if (this.#passing) return out(piece);
    this.#held.push(piece);
    this.#heldBytes += piece.length;
    if (this.#heldBytes <= this.#maxHeld) return;
    for (const p of this.#held) out(p);
    this.#held = [];
    this.#heldBytes = 0;
    this.#passing = true;
  }

  /** The held event as one array (joined once, when it is complete). */
  #take(): Uint8Array {
    const held = this.#held;
    this.#held = [];
    this.#heldBytes = 0;
    if (held.length === 1) return held[0];
    const ev = new Uint8Array(held.reduce((n, p) => n + p.length, 0));
    let at = 0;
    for (const p of held) {
      ev.set(p, at);
      at += p.length;
    }
    return ev;
  }

  /** Passes the complete events of `chunk` (after any held bytes) to `out`. */
  push(chunk: Uint8Array, out: (b: Uint8Array) => void): void {
    const ends = this.#ends.scan(chunk);
    let start = 0, k = 0;
    if (this.#passing || this.#held.length > 0) {
      // The chunk continues an event begun earlier.
      if (ends.length === 0) return this.#hold(chunk, out);
      start = ends[k++];
      const rest = chunk.subarray(0, start);
      if (this.#passing) {
        this.#passing = false;
        if (rest.length > 0) out(rest);
      } else {
        this.#held.push(rest);
        this.#decide(this.#take(), out);
      }
    }
    // Whole events within the chunk are pre-checked together.
    const cut = k < ends.length ? ends[ends.length - 1] : start;
    if (cut > start) {
      const whole = start === 0 && cut === chunk.length ? chunk : chunk.subarray(start, cut);
      if (!this.#mayDrop(whole)) out(whole);
      else {
        for (; k < ends.length; k++) {
          this.#decide(chunk.subarray(start, ends[k]), out);
          start = ends[k];
        }
      }
      start = cut;
    }
    if (start < chunk.length) this.#hold(chunk.subarray(start), out);
  }

  /** Passes on a last event that had no terminating blank line. */
  flush(out: (b: Uint8Array) => void): void {
    this.#passing = false;
    if (this.#held.length > 0) this.#decide(this.#take(), out);
  }
}
