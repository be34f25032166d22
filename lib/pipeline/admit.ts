/**
 * Stage "admit": the home of per-key policy. Decides whether this key may
 * make this request before any provider is chosen: its model allowlist
 * (exact ids and `*` / `?` globs, matched without regard to case, as
 * routing matches). The provider allowlist is applied when the chain is
 * chosen (`chain.ts`), since it filters providers rather than requests.
 */
import { GatewayError } from "../http/errors.ts";
import type { KeyRecord } from "../store/keys.ts";
import { quote } from "../http/client_text.ts";
import { ok, refused, type Result } from "./result.ts";

/** True when `text` matches a glob of `*` (any run) and `?` (one character); case-insensitive. */
function globMatch(glob: string, text: string): boolean {
  const g = glob.toLowerCase(), t = text.toLowerCase();
  let gi = 0, ti = 0, star = -1, mark = 0;
  while (ti < t.length) {
    if (gi < g.length && (g[gi] === "?" || g[gi] === t[ti])) {
      gi++;
      ti++;
    } else if (gi < g.length && g[gi] === "*") {
      star = gi++;
      mark = ti;
    } else if (star !== -1) {
      gi = star + 1;
      ti = ++mark;
    } else return false;
  }
  while (gi < g.length && g[gi] === "*") gi++;
  return gi === g.length;
}

/** True when the key's `allowed_models` (absent: all) lets it use `model`. */
export function keyMayUseModel(key: KeyRecord, model: string): boolean {
  return !key.allowedModels || key.allowedModels.some((g) => globMatch(g, model));
}

/** True when the key's `allowed_providers` (absent: all) lets it use provider `id`. */
export function keyMayUseProvider(key: KeyRecord, id: string): boolean {
  return !key.allowedProviders || key.allowedProviders.includes(id);
}

/** Admits a request for `model` by `key`, or refuses it (403 naming the model). */
export function admit(key: KeyRecord, model: string): Result<true> {
  if (!keyMayUseModel(key, model)) {
    return refused(
      new GatewayError(
        403,
        "model_not_allowed",
        `API key "${key.name}" may not use model ${
          quote(model)
        } (GET /v1/models lists the models it may use)`,
      ),
    );
  }
  return ok(true);
}
