/**
 * A KV file's write lock, held by another process: SQLite's `BEGIN
 * EXCLUSIVE` from a child process, so every write of a gateway on that
 * file fails (after SQLite's busy wait) while reads still work. The lock
 * is taken in a process of its own because two SQLite libraries in one
 * process (Deno KV's and `node:sqlite`) do not see each other's POSIX
 * locks, and closing one can pull the other's files away.
 */

const SCRIPT = `
import { DatabaseSync } from "node:sqlite";
const db = new DatabaseSync(Deno.args[0]);
db.exec("BEGIN EXCLUSIVE");
console.log("locked");
for await (const _ of Deno.stdin.readable) { /* held until stdin closes */ }
db.exec("ROLLBACK");
db.close();
`;

/** A held lock. */
export interface WriteLock {
  /** Releases it; resolves once the holder has exited. */
  release(): Promise<void>;
}

/** Takes the write lock of the SQLite file at `path`; resolves once it is held. */
export async function holdWriteLock(path: string): Promise<WriteLock> {
  const proc = new Deno.Command(Deno.execPath(), {
    args: ["eval", "--ext=ts", SCRIPT, path],
    stdin: "piped",
    stdout: "piped",
    stderr: "inherit",
  }).spawn();
  const out = proc.stdout.pipeThrough(new TextDecoderStream());
  const reader = out.getReader();
  let seen = "";
  while (!seen.includes("locked")) {
    const { done, value } = await reader.read();
    if (done) throw new Error(`could not lock ${path}`);
    seen += value;
  }
  reader.releaseLock();
  return {
    async release() {
      await proc.stdin.close();
      await out.cancel();
      const status = await proc.status;
      if (!status.success) throw new Error(`the lock holder of ${path} failed`);
    },
  };
}
