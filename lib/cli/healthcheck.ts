/**
 * `healthcheck`: exit status 0 when the local gateway's `/health` answers
 * 200 (the Docker HEALTHCHECK), 1 otherwise. "degraded" (its KV failing
 * while it still serves) is healthy for this purpose, and said on stderr:
 * restarting a gateway does not bring its KV back, and a gateway that
 * restarts while KV is down cannot start at all.
 */
import { noMoreThan, parse } from "./args.ts";
import { HELP } from "./help.ts";
import { CliError, type Command } from "./io.ts";

/** `healthcheck [--url <url>] [--timeout <ms>]` */
export const healthcheckCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {
    url: { type: "string" },
    timeout: { type: "string" },
  });
  if (values.help) {
    io.out(HELP.healthcheck);
    return 0;
  }
  noMoreThan(positionals, 0, "healthcheck");
  const port = io.env.PORT || io.env.PROXY_PORT || "8180";
  const url = values.url ?? `http://127.0.0.1:${port}/health`;
  const timeout = Number(values.timeout ?? 5000);
  if (!Number.isInteger(timeout) || timeout <= 0) {
    throw new CliError("healthcheck: --timeout must be a whole number of milliseconds", 2);
  }
  try {
    const res = await fetch(url, { signal: AbortSignal.timeout(timeout) });
    const body = await res.json().catch(() => ({}));
    if (res.status === 200 && body.status === "ok") {
      io.out(`ok: ${url}`);
      return 0;
    }
    if (res.status === 200 && body.status === "degraded") {
      io.out(`ok: ${url}`);
      io.err(`degraded: ${url}: ${JSON.stringify(body.degraded ?? [])}`);
      return 0;
    }
    io.err(`unhealthy: ${url} answered ${res.status} ${JSON.stringify(body.status ?? null)}`);
    return 1;
  } catch (e) {
    io.err(`unhealthy: ${url}: ${(e as Error).message}`);
    return 1;
  }
};
