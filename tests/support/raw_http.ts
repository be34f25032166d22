/**
 * HTTP/1.1 over raw TCP, for fakes that need what `Deno.serve` and `fetch`
 * cannot do: a server that closes a connection right after a given byte, or
 * knows its bytes reached the socket before it takes the next step; and a
 * client that sends half a body and then stops or hangs up.
 *
 * The server keeps connections alive between responses (the gateway's
 * `fetch` pools them) and reads request bodies by `content-length`, as
 * `fetch` sends them.
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A request as the raw server read it. */
export interface RawRequest {
  method: string;
  /** The path without the query string. */
  path: string;
  /** The query string with its `?`, or "". */
  search: string;
  headers: Headers;
  body: Uint8Array;
}

/** One request and the connection to answer it on. */
export interface RawExchange {
  readonly req: RawRequest;
  /** Writes bytes to the connection; false when the peer has gone. */
  write(data: string | Uint8Array): Promise<boolean>;
  /** Resolves when the peer closes the connection (it gave up on the response). */
  readonly peerClosed: Promise<void>;
}

/** What becomes of the connection after the handler: reused, or closed as it stands. */
export type RawOutcome = "keep-alive" | "close";

/** A running raw server. */
export interface RawHttpServer {
  url: string;
  /** Stops listening and closes every open connection. */
  close(): void;
}

function concat(a: Uint8Array, b: Uint8Array): Uint8Array {
  if (a.length === 0) return b.slice();
  const out = new Uint8Array(a.length + b.length);
  out.set(a, 0);
  out.set(b, a.length);
  return out;
}

const CRLFCRLF = [13, 10, 13, 10];

function headEnd(b: Uint8Array): number {
  for (let i = b.indexOf(13); i !== -1 && i + 3 < b.length; i = b.indexOf(13, i + 1)) {
    if (b[i + 1] === CRLFCRLF[1] && b[i + 2] === CRLFCRLF[2] && b[i + 3] === CRLFCRLF[3]) {
      return i;
    }
  }
  return -1;
}

/** Parses one request from the front of `b`: the request and the bytes it used, or undefined. */
function parseRequest(b: Uint8Array): { req: RawRequest; used: number } | undefined {
  const end = headEnd(b);
  if (end === -1) return undefined;
  // Header bytes are Latin-1 (obs-text included), one character per byte.
  let head = "";
  for (let i = 0; i < end; i++) head += String.fromCharCode(b[i]);
  const lines = head.split("\r\n");
  const [method, target] = lines[0].split(" ");
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  if (headers.get("transfer-encoding")?.toLowerCase().includes("chunked")) {
    throw new Error("raw server: chunked request bodies are not supported");
  }
  const length = Number(headers.get("content-length") ?? 0);
  const start = end + 4;
  if (b.length - start < length) return undefined;
  const q = target.indexOf("?");
  return {
    req: {
      method,
      path: q === -1 ? target : target.slice(0, q),
      search: q === -1 ? "" : target.slice(q),
      headers,
      body: b.slice(start, start + length),
    },
    used: start + length,
  };
}

async function writeAll(conn: Deno.Conn, bytes: Uint8Array): Promise<boolean> {
  try {
    for (let off = 0; off < bytes.length;) off += await conn.write(bytes.subarray(off));
    return true;
  } catch {
    return false;
  }
}

async function serveConnection(
  conn: Deno.Conn,
  handler: (x: RawExchange) => Promise<RawOutcome>,
): Promise<void> {
  let buf: Uint8Array = new Uint8Array(0);
  let eof = false;
  let wake: (() => void) | undefined;
  let peerGone!: () => void;
  const peerClosed = new Promise<void>((r) => peerGone = r);
  // One reader for the connection's life: it buffers the next request and sees the peer leave.
  (async () => {
    const chunk = new Uint8Array(64 * 1024);
    try {
      for (;;) {
        const n = await conn.read(chunk);
        if (n === null) break;
        buf = concat(buf, chunk.subarray(0, n));
        wake?.();
      }
    } catch {
      // reset by the peer, or closed by us
    }
    eof = true;
    peerGone();
    wake?.();
  })();
  try {
    for (;;) {
      const parsed = parseRequest(buf);
      if (!parsed) {
        if (eof) return;
        await new Promise<void>((r) => wake = r);
        wake = undefined;
        continue;
      }
      buf = buf.subarray(parsed.used);
      const outcome = await handler({
        req: parsed.req,
        write: (data) => writeAll(conn, typeof data === "string" ? enc.encode(data) : data),
        peerClosed,
      });
      if (outcome === "close" || eof) return;
    }
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

/** Starts a raw HTTP/1.1 server on 127.0.0.1 port 0; `handler` answers each request. */
export function rawHttpServer(handler: (x: RawExchange) => Promise<RawOutcome>): RawHttpServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const conns = new Set<Deno.Conn>();
  (async () => {
    for await (const conn of listener) {
      conns.add(conn);
      serveConnection(conn, handler).catch(() => {}).finally(() => conns.delete(conn));
    }
  })().catch(() => {});
  return {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    close: () => {
      try {
        listener.close();
      } catch {
        // already closed
      }
      for (const c of conns) {
        try {
          c.close();
        } catch {
          // already closed
        }
      }
    },
  };
}

/** The head of a response whose body has a known length. */
export function responseHead(status: number, headers: [string, string][], length: number): string {
  return `HTTP/1.1 ${status} X\r\n${
    headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")
  }content-length: ${length}\r\n\r\n`;
}

/** The head of a response sent in chunks (`chunk`, then `LAST_CHUNK`). */
export function chunkedHead(status: number, headers: [string, string][]): string {
  return `HTTP/1.1 ${status} X\r\n${
    headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")
  }transfer-encoding: chunked\r\n\r\n`;
}

/** One HTTP chunk holding `data`. */
export function chunk(data: string | Uint8Array): Uint8Array {
  const bytes = typeof data === "string" ? enc.encode(data) : data;
  return concat(enc.encode(bytes.length.toString(16) + "\r\n"), concat(bytes, enc.encode("\r\n")));
}

/** The chunk that ends a chunked body. */
export const LAST_CHUNK = "0\r\n\r\n";

/** A raw client request: its head and body bytes, and when to hang up. */
export interface RawClientRequest {
  method: string;
  path: string;
  headers: [string, string][];
  body: Uint8Array;
  /** The `content-length` to declare (default: the body's); more than sent leaves the body unfinished. */
  declared?: number;
  /**
   * Hang up instead of reading the answer: `"now"` (after `lingerMs`, so the
   * server has read the head), or once the promise resolves (unless the
   * answer came first).
   */
  hangUp?: "now" | Promise<unknown>;
  lingerMs?: number;
}

/** What a raw client got: the status and body, or nothing when it hung up first. */
export interface RawClientResult {
  status?: number;
  headers?: Headers;
  text?: string;
}

/**
 * Sends a request on its own TCP connection, so that hanging up really
 * closes it (a pooled `fetch` connection may outlive an aborted request).
 */
export async function rawRequest(url: string, o: RawClientRequest): Promise<RawClientResult> {
  const u = new URL(url);
  const conn = await Deno.connect({ hostname: u.hostname, port: Number(u.port) });
  try {
    const head = `${o.method} ${o.path} HTTP/1.1\r\nhost: ${u.host}\r\n${
      o.headers.map(([k, v]) => `${k}: ${v}\r\n`).join("")
    }content-length: ${o.declared ?? o.body.length}\r\n\r\n`;
    const latin1 = new Uint8Array(head.length);
    for (let i = 0; i < head.length; i++) latin1[i] = head.charCodeAt(i) & 0xff;
    await writeAll(conn, concat(latin1, o.body));
    if (o.hangUp === "now") {
      await new Promise((r) => setTimeout(r, o.lingerMs ?? 0));
      return {};
    }
    const reading = readResponse(conn);
    if (o.hangUp) {
      const first = await Promise.race([reading, o.hangUp.then(() => undefined)]);
      if (first === undefined) {
        reading.catch(() => {});
        return {};
      }
      return first;
    }
    return await reading;
  } finally {
    try {
      conn.close();
    } catch {
      // already closed
    }
  }
}

/** Reads one response with a `content-length` body (or up to the end of the connection). */
async function readResponse(conn: Deno.Conn): Promise<RawClientResult> {
  let got: Uint8Array = new Uint8Array(0);
  const buf = new Uint8Array(16 * 1024);
  let end = -1;
  let length = Infinity;
  for (;;) {
    if (end === -1) {
      end = headEnd(got);
      if (end !== -1) {
        const m = /\r\ncontent-length:\s*(\d+)/i.exec(dec.decode(got.subarray(0, end)));
        if (m) length = Number(m[1]);
      }
    }
    if (end !== -1 && got.length - end - 4 >= length) break;
    const n = await conn.read(buf).catch(() => null);
    if (n === null) break;
    got = concat(got, buf.subarray(0, n));
  }
  if (end === -1) return {};
  const lines = dec.decode(got.subarray(0, end)).split("\r\n");
  const headers = new Headers();
  for (const line of lines.slice(1)) {
    const colon = line.indexOf(":");
    if (colon > 0) headers.append(line.slice(0, colon).trim(), line.slice(colon + 1).trim());
  }
  const status = Number(/^HTTP\/1\.1 (\d{3})/.exec(lines[0])?.[1]);
  return { status, headers, text: dec.decode(got.subarray(end + 4)) };
}
