/**
 * The parts of a request URL handlers use, parsed with string operations
 * (a full `new URL()` per request is measurable on the hot path);
 * `searchParams` is built only when asked for.
 */

/** Path, query string and query parameters of a request. */
export interface RequestUrl {
  readonly pathname: string;
  /** The query string with its leading `?`, or "" (forwarded upstream as is). */
  readonly search: string;
  readonly searchParams: URLSearchParams;
}

/** Splits an absolute request URL (as `Deno.serve` gives it). */
export function requestUrl(href: string): RequestUrl {
  const scheme = href.indexOf("://");
  let start = href.indexOf("/", scheme === -1 ? 0 : scheme + 3);
  if (start === -1) start = href.length;
  let end = href.indexOf("?", start);
  const hash = href.indexOf("#", start);
  if (end === -1) end = hash === -1 ? href.length : hash;
  const pathname = start === href.length ? "/" : href.slice(start, end);
  const search = end < href.length && href[end] === "?"
    ? href.slice(end, hash === -1 ? href.length : hash)
    : "";
  let params: URLSearchParams | undefined;
  return {
    pathname,
    search: search === "?" ? "" : search,
    get searchParams() {
      return params ??= new URLSearchParams(search);
    },
  };
}
