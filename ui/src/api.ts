/**
 * The only way the page reaches the gateway: `fetch()` of the admin API with
 * the admin key in the `x-api-key` header. Never a URL parameter, never a
 * cookie; responses are not cached (`cache: "no-store"`, and the gateway
 * says `cache-control: no-store`).
 */

/** An admin API error: the status and the gateway's `detail` message. */
export class ApiError extends Error {
  constructor(readonly status: number, message: string) {
    super(message);
  }
}

/** A signed-in client of the admin API. */
export class Api {
  constructor(
    private readonly key: string,
    /** Called when the gateway no longer accepts the key (401/403). */
    private readonly onRejected: (message: string) => void,
  ) {}

  /** Calls the admin API; resolves with the JSON body, rejects with {@link ApiError}. */
  async call<T>(method: string, path: string, body?: unknown): Promise<T> {
    const headers: Record<string, string> = { "x-api-key": this.key };
    if (body !== undefined) headers["content-type"] = "application/json";
    let res: Response;
    try {
      res = await fetch(path, {
        method,
        headers,
        body: body === undefined ? undefined : JSON.stringify(body),
        cache: "no-store",
        credentials: "omit",
        redirect: "error",
      });
    } catch (e) {
      throw new ApiError(0, `the gateway did not answer (${(e as Error).message})`);
    }
    const json = await res.json().catch(() => null) as
      | { detail?: unknown; error?: { message?: unknown } }
      | null;
    if (!res.ok) {
      const detail = typeof json?.detail === "string"
        ? json.detail
        : typeof json?.error?.message === "string"
        ? json.error.message
        : `HTTP ${res.status}`;
      if (res.status === 401 || res.status === 403) this.onRejected(detail);
      throw new ApiError(res.status, detail);
    }
    return json as T;
  }

  /** `GET` */
  get<T>(path: string): Promise<T> {
    return this.call<T>("GET", path);
  }

  /** `POST` */
  post<T>(path: string, body?: unknown): Promise<T> {
    return this.call<T>("POST", path, body);
  }

  /** `PATCH` */
  patch<T>(path: string, body: unknown): Promise<T> {
    return this.call<T>("PATCH", path, body);
  }

  /** `DELETE` */
  delete<T>(path: string): Promise<T> {
    return this.call<T>("DELETE", path);
  }
}

/** A query string from the set values of `params` ("" when none is set). */
export function query(params: Record<string, string | number | undefined | null>): string {
  const q = new URLSearchParams();
  for (const [k, v] of Object.entries(params)) {
    if (v !== undefined && v !== null && v !== "") q.set(k, String(v));
  }
  const s = q.toString();
  return s ? `?${s}` : "";
}

/** Checks an admin key without keeping it: resolves when the gateway accepts it. */
export async function verifyKey(key: string): Promise<void> {
  await new Api(key, () => {}).get("/admin/usage/hourly");
}
