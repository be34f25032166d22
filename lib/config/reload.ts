/**
 * Live configuration: `models.json` is reloaded when the file changes (a
 * watch on its folder, so editors that replace the file are seen too) and
 * on SIGHUP. A file that fails validation is refused: the registry in force
 * stays, and the reason is logged and shown by `GET /admin/models`.
 * Requests already running keep the registry they started with.
 */
import { basename, dirname, resolve } from "node:path";
import type { Context } from "../context.ts";
import { errorMessage } from "../ops/log.ts";
import { parseRegistry, type Registry } from "./registry.ts";

/** Logs what the registry loader ignored (unknown fields), one line each. */
export function logRegistryWarnings(ctx: Context, file: string, registry: Registry): void {
  for (const warning of registry.warnings) ctx.log.warn("models.json warning", { file, warning });
}

/** Loads `path` again; returns true when the new registry is in force. */
export async function reloadRegistry(ctx: Context, path: string, why: string): Promise<boolean> {
  try {
    let raw: unknown;
    const text = await Deno.readTextFile(path);
    try {
      raw = JSON.parse(text);
    } catch (e) {
      throw new Error(`${path}: not valid JSON: ${errorMessage(e)}`);
    }
    const registry = parseRegistry(raw, path);
    ctx.registry = registry;
    ctx.registryStatus = { loadedAt: ctx.clock.now() };
    ctx.log.info("models.json reloaded", {
      why,
      providers: registry.providers.size,
      models: registry.knownModels.length,
    });
    logRegistryWarnings(ctx, path, registry);
    return true;
  } catch (e) {
    const message = errorMessage(e);
    ctx.registryStatus = { ...ctx.registryStatus, error: { message, at: ctx.clock.now() } };
    ctx.log.error("models.json reload refused; the previous configuration stays in force", {
      why,
      error: message,
    });
    return false;
  }
}

/** Forgets a refused reload once the file again holds the configuration in force. */
function clearReloadError(ctx: Context, why: string): void {
  ctx.registryStatus = { loadedAt: ctx.registryStatus.loadedAt };
  ctx.log.info("models.json is back to the configuration in force", { why });
}

/** Watches `path` (and SIGHUP); returns a function that stops watching. */
export function watchRegistry(ctx: Context, path: string, debounceMs = 200): () => void {
  const file = resolve(path);
  let timer: ReturnType<typeof setTimeout> | undefined;
  let last: string | undefined;
  Deno.readTextFile(file).then((t) => last ??= t, () => {});
  const schedule = (why: string, force = false) => {
    clearTimeout(timer);
    timer = setTimeout(async () => {
      let text: string | undefined;
      try {
        text = await Deno.readTextFile(file);
      } catch {
        // Missing for a moment while an editor replaces it: the next event retries.
      }
      if (!force && text !== undefined && text === last) {
        // Back to the content in force (a bad edit reverted): that content is valid.
        if (ctx.registryStatus.error) clearReloadError(ctx, why);
        return;
      }
      if (await reloadRegistry(ctx, path, why)) last = text;
    }, debounceMs);
  };
  let watcher: Deno.FsWatcher | undefined;
  try {
    watcher = Deno.watchFs(dirname(file), { recursive: false });
    (async () => {
      for await (const ev of watcher!) {
        if (ev.paths.some((p) => basename(p) === basename(file))) schedule("file changed");
      }
    })().catch((e) => ctx.log.warn("models.json watch stopped", { error: errorMessage(e) }));
  } catch (e) {
    ctx.log.warn("cannot watch models.json; reload with SIGHUP", { error: errorMessage(e) });
  }
  const onHup = () => schedule("SIGHUP", true);
  let hup = false;
  try {
    Deno.addSignalListener("SIGHUP", onHup);
    hup = true;
  } catch {
    // No SIGHUP on this platform (Windows).
  }
  return () => {
    clearTimeout(timer);
    watcher?.close();
    if (hup) Deno.removeSignalListener("SIGHUP", onHup);
  };
}
