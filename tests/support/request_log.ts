/** Reading the request log back in tests. */
import { readRequestLog } from "../../lib/store/request_log.ts";

/** How many request-log entries `kv` holds for `keyId`, every page read. */
export async function loggedCount(kv: Deno.Kv, keyId: string): Promise<number> {
  let n = 0;
  let cursor: string | undefined;
  do {
    const page = await readRequestLog(kv, { keyId, limit: 1000, cursor });
    n += page.requests.length;
    cursor = page.nextCursor ?? undefined;
  } while (cursor);
  return n;
}
