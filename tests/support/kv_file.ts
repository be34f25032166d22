/**
 * A gateway's KV file seen from outside the process, as an operator has it
 * before the start and after the stop: create a client key in it, read the
 * usage it holds.
 */
import { KeyStore } from "../../lib/store/keys.ts";
import { UsageReader, type UsageRow } from "../../lib/store/usage/reader.ts";

/** Creates a client key in the KV at `path`; returns its secret. */
export async function createKeyIn(path: string, name: string): Promise<string> {
  const kv = await Deno.openKv(path);
  try {
    return (await new KeyStore(kv).create({ name })).secret;
  } finally {
    kv.close();
  }
}

/** Every usage row in the KV at `path` (UTC buckets). */
export async function usageIn(path: string): Promise<UsageRow[]> {
  const kv = await Deno.openKv(path);
  try {
    return await new UsageReader(kv).byTime();
  } finally {
    kv.close();
  }
}
