/**
 * `.dockerignore` as Docker applies it: patterns in order, the last match
 * wins, and a pattern also matches everything below a folder it matches.
 */
import { posix } from "node:path";

/** A predicate telling whether a context-relative path is kept out of the build context. */
export function ignoreMatcher(src: string): (path: string) => boolean {
  const rules = src.split(/\r?\n/).map((l) => l.trim()).filter((l) => l && !l.startsWith("#"))
    .map((l) => {
      const negate = l.startsWith("!");
      const pat = posix.normalize(l.replace(/^!/, "").replace(/^\/+/, "")).replace(/\/+$/, "");
      const re = pat.split("/").map((part) =>
        part === "**" ? ".*" : part.replace(/[.+^${}()|\\]/g, "\\$&").replaceAll("*", "[^/]*")
          .replaceAll("?", "[^/]")
      ).join("/").replaceAll(".*/", "(?:.*/)?");
      return { negate, re: new RegExp(`^${re}$`) };
    });
  return (path: string) => {
    const parts = posix.normalize(path).split("/");
    let ignored = false;
    for (const r of rules) {
      for (let n = 1; n <= parts.length; n++) {
        if (r.re.test(parts.slice(0, n).join("/"))) {
          ignored = !r.negate;
          break;
        }
      }
    }
    return ignored;
  };
}
