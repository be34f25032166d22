/**
 * A raw TCP "upstream" for faults `Deno.serve` cannot produce: connections
 * reset before the response headers, or cut in the middle of a chunked body.
 */

const enc = new TextEncoder();
const dec = new TextDecoder();

/** A fault server: `onRequest` gets the connection after the request has been read. */
export interface RawServer {
  url: string;
  /** Requests received so far. */
  count: number;
  close(): void;
}

async function readRequest(conn: Deno.Conn): Promise<string> {
  const buf = new Uint8Array(64 * 1024);
  let text = "";
  for (;;) {
    const n = await conn.read(buf);
    if (n === null) return text;
    text += dec.decode(buf.subarray(0, n));
    const head = text.indexOf("\r\n\r\n");
    if (head === -1) continue;
    const len = Number(/content-length:\s*(\d+)/i.exec(text.slice(0, head))?.[1] ?? 0);
    if (text.length - head - 4 >= len) return text;
  }
}

/** Starts a raw TCP server on 127.0.0.1 port 0. */
export function rawServer(
  onRequest: (conn: Deno.Conn, request: string) => Promise<void>,
): RawServer {
  const listener = Deno.listen({ hostname: "127.0.0.1", port: 0 });
  const server: RawServer = {
    url: `http://127.0.0.1:${(listener.addr as Deno.NetAddr).port}`,
    count: 0,
    close: () => listener.close(),
  };
  (async () => {
    for await (const conn of listener) {
      (async () => {
        try {
          const req = await readRequest(conn);
          if (!req) return conn.close();
          server.count++;
          await onRequest(conn, req);
        } catch {
          // the gateway hung up
        }
        try {
          conn.close();
        } catch {
          // already closed
        }
      })();
    }
  })().catch(() => {});
  return server;
}

/** Writes the head of a chunked SSE response. */
export async function writeSseHead(conn: Deno.Conn): Promise<void> {
  await conn.write(
    enc.encode(
      "HTTP/1.1 200 OK\r\ncontent-type: text/event-stream\r\ntransfer-encoding: chunked\r\n\r\n",
    ),
  );
}

/** Writes one HTTP chunk. */
export async function writeChunk(conn: Deno.Conn, text: string): Promise<void> {
  const bytes = enc.encode(text);
  await conn.write(enc.encode(bytes.length.toString(16) + "\r\n"));
  await conn.write(bytes);
  await conn.write(enc.encode("\r\n"));
}

/** Closes the connection with a TCP reset where the platform allows it. */
export function reset(conn: Deno.Conn): void {
  try {
    (conn as Deno.TcpConn).setNoDelay?.(true);
    conn.close();
  } catch {
    // already closed
  }
}
