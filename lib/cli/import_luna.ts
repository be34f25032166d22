/**
 * `import-luna <keys.json>`: imports a Luna API Proxy key file into KV and
 * reports, key by key, what was imported, skipped, or skipped but differs
 * from the file (see `lib/store/luna_import.ts`).
 */
import { importLunaFile } from "../store/luna_import.ts";
import { exactlyOne, parse } from "./args.ts";
import { withContext } from "./context.ts";
import { HELP } from "./help.ts";
import type { Command } from "./io.ts";

/** `import-luna <keys.json>` */
export const importLunaCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {});
  if (values.help) {
    io.out(HELP["import-luna"]);
    return 0;
  }
  const file = exactlyOne(positionals, "<keys.json>", "import-luna");
  return await withContext(io, async (ctx) => {
    const r = await importLunaFile(file, ctx.kv, ctx.keys, ctx.buckets);
    for (const k of r.keys) {
      const differs = k.differs ? `  differs: ${k.differs.join(", ")}` : "";
      io.out(`${k.status.padEnd(8)} ${k.id}  ${k.name}${differs}`);
    }
    let summary = `${r.imported} imported, ${r.skipped} skipped (already imported)`;
    if (r.differing === 1) summary += "; 1 differs from the file and was left as it is";
    if (r.differing > 1) {
      summary += `; ${r.differing} differ from the file and were left as they are`;
    }
    io.out(summary);
    return 0;
  });
};
