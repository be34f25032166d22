/**
 * One spill file per worker process, and what processes that no longer
 * exist left behind is adopted by worker 1 so that it is replayed.
 */
import { assertEquals } from "./support/assert.ts";
import { adoptSpills, spillPathOf } from "../lib/ops/stores.ts";

Deno.test("spill files: one per worker; orphans adopted by worker 1, live workers' files left alone", async () => {
  const dir = await Deno.makeTempDir();
  const base = `${dir}/gw.kv.spill.jsonl`;
  try {
    assertEquals(spillPathOf(base, 1, 1), base, "one process: the plain name");
    assertEquals(spillPathOf(base, 2, 3), `${base}.w2`);
    // Left by an earlier run: a single process, and workers 2 to 4 of four.
    await Deno.writeTextFile(base, '{"a":1}\n');
    for (const w of [2, 3, 4]) await Deno.writeTextFile(`${base}.w${w}`, `{"w":${w}}`);
    await Deno.writeTextFile(`${dir}/gw.kv.spill.jsonl.rejected`, "kept");
    // Now three workers: worker 1 adopts the single process's file and worker 4's.
    const own = spillPathOf(base, 1, 3);
    const adopted = await adoptSpills(base, own, 3);
    assertEquals(adopted, '{"a":1}\n'.length + '{"w":4}'.length);
    assertEquals(await Deno.readTextFile(own), '{"a":1}\n{"w":4}\n');
    const left = (await Array.fromAsync(Deno.readDir(dir))).map((e) => e.name).sort();
    assertEquals(left, [
      "gw.kv.spill.jsonl.rejected",
      "gw.kv.spill.jsonl.w1",
      "gw.kv.spill.jsonl.w2",
      "gw.kv.spill.jsonl.w3",
    ]);
    // Back to one process: it takes every worker's file.
    await adoptSpills(base, base, 1);
    assertEquals((await Deno.readTextFile(base)).split("\n").filter(Boolean).length, 4);
  } finally {
    await Deno.remove(dir, { recursive: true });
  }
});
