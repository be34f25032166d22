/**
 * Server-sent events on the metering copy of a stream: incremental UTF-8
 * decoding and WHATWG event parsing (via `eventsource-parser`), so totals do
 * not depend on how the network chunked the bytes (docs/metering.md, "SSE parsing").
 */
import { createParser, type EventSourceParser } from "eventsource-parser";

/** Cap on one pending line or event on the metering copy (characters). */
export const MAX_EVENT_CHARS = 8 * 1024 * 1024;

/** Feeds raw stream bytes in, calls `onEvent(name, data)` per dispatched event. */
export class SseReader {
  #decoder = new TextDecoder();
  #parser: EventSourceParser;
  /** Events dropped because they exceeded {@link MAX_EVENT_CHARS}. */
  oversized = 0;

  constructor(
    onEvent: (name: string | undefined, data: string) => void,
    maxChars = MAX_EVENT_CHARS,
  ) {
    this.#parser = createParser({
      maxBufferSize: maxChars,
      onEvent: (e) => onEvent(e.event, e.data),
      onError: (err) => {
        if (err.type === "max-buffer-size-exceeded") this.oversized++;
      },
    });
  }

  #feed(text: string): void {
    if (text === "") return;
    try {
      this.#parser.feed(text);
    } catch {
      // The parser stopped after an oversized event: drop it and carry on
      // with the events that follow.
      this.#parser.reset();
      this.#parser.feed(text);
    }
  }

  /** Feeds the next chunk of bytes. */
  push(bytes: Uint8Array): void {
    this.#feed(this.#decoder.decode(bytes, { stream: true }));
  }

  /**
   * Ends the stream. A last event without its terminating blank line is
   * dispatched anyway: the spec discards it, but usage must not be lost.
   */
  end(): void {
    this.#feed(this.#decoder.decode());
    this.#feed("\n\n");
  }
}
