/** The command line's help texts: the overview and one per command. */
import { VERSION } from "../ops/health.ts";
import { keyFlagHelp } from "./key_flags.ts";

/** Help by command name; `main` is the overview. */
export const HELP: Record<string, string> = {
  main: `llm-gateway ${VERSION}: an LLM API gateway (Anthropic Messages, OpenAI Chat Completions)

Usage: llm-gateway [command] [options]

Commands:
  serve                      start the gateway (the default)
  keys create <name>         create a client API key (the secret is shown once)
  keys list                  list keys
  keys show <id>             one key with its totals
  keys disable <id>          disable a key (a running gateway stops accepting it)
  keys enable <id>           enable a key again
  keys delete <id>           delete a key (its usage history is kept)
  keys edit <id>             change a key's name, allowlists, limits, expiry, labels
  keys rotate <id>           give a key a new secret (the old one stops, or after --grace)
  usage                      usage table by day, key and model
  requests                   recent requests from the request log (newest first)
  import-luna <keys.json>    import keys and usage history from Luna API Proxy
  check-config [models.json] validate a model registry and print its routing table
  healthcheck                exit 0 when the local gateway answers /health

Every command reads the same environment as the server (KV_PATH, MODELS_CONFIG,
USAGE_TZ, ...; see docs/configuration.md). Run "llm-gateway <command> --help" for its options.
Errors are one line on stderr; exit status 2 for a mistake in the command line,
1 otherwise (a key that does not exist, a bad file, ...).`,
  serve: `Usage: llm-gateway serve [--workers N|auto]

Starts the gateway on HOST:PORT (default 0.0.0.0:8180) with KV at KV_PATH and the
registry at MODELS_CONFIG (when that is unset and ./models.json is missing, the
bundled models.json is used). Stops cleanly on SIGTERM or SIGINT; SIGHUP reloads
models.json.

  --workers   processes serving the port (default: WORKERS, else 1); auto is one per
              CPU core. With more than 1, this process supervises them: it restarts
              one that dies, passes SIGHUP on, and on SIGTERM or SIGINT drains them
              all and exits after them. Linux only; elsewhere the gateway serves
              with 1 (and says so).

(--worker <id>/<count> is how the supervisor starts each worker; not for direct use.)`,
  keys: `Usage:
  llm-gateway keys create <name> [options] [--json]
  llm-gateway keys list [--json]
  llm-gateway keys show <id> [--json]
  llm-gateway keys edit <id> [--name <name>] [options] [--json]
  llm-gateway keys disable|enable|delete <id> [--json]
  llm-gateway keys rotate <id> [--grace <seconds>] [--json]

Options of "keys create" and "keys edit" (validated as the admin API validates
POST /admin/keys and PATCH /admin/keys/{id}; on edit, "none" clears a field):
${keyFlagHelp()}

"keys rotate --grace 3600" keeps the old secret working for an hour.

Works directly on the KV at KV_PATH. Keys are addressed by id (see "keys list").
--json prints what the admin API answers: "keys list" as GET /admin/keys, "keys show"
as GET /admin/keys/{id}, "keys create" as POST /admin/keys, "keys edit" as
PATCH /admin/keys/{id}, "keys rotate" as POST /admin/keys/{id}/rotate, the others
{status, name, id}.`,
  usage:
    `Usage: llm-gateway usage [--from YYYY-MM-DD] [--to YYYY-MM-DD] [--key <id>] [--model <id>] [--json]

Prints usage by day, key and model (days in USAGE_TZ), with a total line. Dates are
real calendar days and --from may not be after --to; --key takes an existing key id
(see "keys list"). Input buckets: input_uncached, cache_read, cache_write; "input" is
their sum (the whole prompt). COST_USD is the cost of the priced usage ("-" when the
model has no price in models.json); UNPRICED counts requests whose model had none.
--json prints one object per row with the fields of the admin API's per-key reports:
date, key_id, key_name, model, input, output, requests, input_uncached, cache_read,
cache_write, failed, incomplete, web_search_requests, web_fetch_requests, cost_usd
(null when unpriced), unpriced_requests.`,
  requests: `Usage: llm-gateway requests [--key <id>] [--model <id>] [--status <code|class>]
                          [--since <time>] [--until <time>] [--limit N] [--cursor C] [--json]

Prints the request log, newest first: time, request id, key, model, provider, status,
the four token buckets, cost ("-" when the model has no price), latency, time to first
byte, retries, whether its usage is complete, and why it failed or was refused. Never
any prompt or completion text. Entries are kept REQUEST_LOG_DAYS days (default 7).

  --key       one key's requests (an id from "keys list"; deleted keys too)
  --model     the model exactly as the client sent it
  --status    an HTTP status (429) or a class (2xx, 4xx, 5xx)
  --since     an ISO time with its offset (2026-03-01T12:00:00Z) or a day (YYYY-MM-DD in
  --until     USAGE_TZ: from its start, or until its end)
  --limit     entries per page, 1 to 1000 (default 100)
  --cursor    continue with the page after the one that printed "more: --cursor ..."

At most 10,000 entries are examined per page, so a rare filter can print fewer than
--limit entries and still offer a cursor. --json prints what GET /admin/requests
answers: {"requests": [...], "next_cursor": ...}. The CLI reads KV directly, so it may
miss a running gateway's last USAGE_FLUSH_MS of requests.`,
  "import-luna": `Usage: llm-gateway import-luna <keys.json>

Imports a Luna API Proxy keys.json: keys (stored hashed), names, enabled, created,
allowed_providers, and daily/hourly usage history.

Importing the same file again changes nothing. A key imported before is skipped,
and compared with the file: when its name, enabled flag or allowed_providers (as the
gateway holds them now) or its usage (as imported) differ, the key's line says
"differs: <fields>" (or "differs: deleted" for a key deleted since). Nothing is
overwritten: change the key with "keys" or the admin API if the file is right.
Usage cannot be imported twice; to take over a changed history, import into a
fresh KV.`,
  "check-config": `Usage: llm-gateway check-config [models.json]

Validates a model registry (default: MODELS_CONFIG, else ./models.json) and prints its
providers, routing table and known models. Exit status 1 when it is invalid; fields it
ignores (unknown names, often typos) are reported as warnings on stderr.`,
  healthcheck: `Usage: llm-gateway healthcheck [--url <url>] [--timeout <ms>]

Exits 0 when GET <url> (default http://127.0.0.1:$PORT/health) answers 200: status "ok", or
"degraded" (its KV failing while it serves; said on stderr). 1 otherwise. Used by the Docker
HEALTHCHECK.`,
};
