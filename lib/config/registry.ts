/**
 * The model registry: `models.json` (Luna's format, plus optional fields),
 * validated with zod, and the routing of a model id to an ordered chain of
 * providers.
 */
import { z } from "zod";
import { type ApiFormat, AUTH_STYLES, type CredentialHeader } from "../formats/format.ts";
import { FORMAT_NAMES, formatNamed } from "../formats/mod.ts";
import { DEFAULT_POLICY, mergePolicy, type Policy, PolicySchema } from "./policy.ts";

const usd = z.number().min(0);
const PricingSchema = z.strictObject({
  /** USD per million uncached input tokens. */
  input: usd,
  /** USD per million output tokens. */
  output: usd,
  /** USD per million cache-read tokens (default: the input price). */
  cache_read: usd.optional(),
  /** USD per million cache-write tokens (default: the input price). */
  cache_write: usd.optional(),
  /** USD per million one-hour cache-write tokens (default: the cache-write price). */
  cache_write_1h: usd.optional(),
});

const ProviderSchema = PolicySchema.extend({
  name: z.string().optional(),
  format: z.enum(FORMAT_NAMES),
  // A missing URL falls through to "is missing" (see `parseRegistry`).
  base_url: z.url({
    protocol: /^https?$/,
    error: (iss) => iss.input === undefined ? undefined : "must be an http(s) URL",
  }),
  api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name")
    .optional(),
  auth_header: z.enum(Object.keys(AUTH_STYLES) as [keyof typeof AUTH_STYLES]).optional(),
  chat_endpoint: z.string().startsWith("/", "must start with /").optional(),
  model_prefixes: z.array(z.string().min(1)).default([]),
  /** OpenAI format only: ask for `stream_options.include_usage` on streams (default true). */
  stream_usage: z.boolean().default(true),
  /** Extra static headers sent upstream (e.g. an aggregator's routing header). */
  headers: z.record(z.string(), z.string()).default({}),
  /** Pass the client's X-Forwarded-For, Forwarded, X-Real-IP, Via, ... upstream (default false). */
  forward_client_ip: z.boolean().default(false),
  /** Prices through this provider by exact model id (an aggregator's own price list). */
  pricing: z.record(z.string().min(1), PricingSchema).default({}),
}).strip();

/** A routing entry: Luna's plain provider list, or an object that also prices what it routes. */
const RoutingEntrySchema = z.union([
  z.array(z.string().min(1)).min(1),
  z.strictObject({
    providers: z.array(z.string().min(1)).min(1),
    /** The price of models this prefix routes that `known_models` does not price. */
    pricing: PricingSchema.optional(),
  }),
], { error: "must be a list of provider ids, or an object with providers (and pricing)" });

const KnownModelSchema = z.object({
  id: z.string().min(1),
  provider: z.string().min(1),
  owned_by: z.string().optional(),
  display_name: z.string().optional(),
  pricing: PricingSchema.optional(),
});

/** Prices of a model, USD per million tokens of each bucket. */
export interface Pricing {
  input: number;
  output: number;
  cacheRead: number;
  /** Five-minute writes, and every write of a provider that reports no split. */
  cacheWrite: number;
  /** One-hour writes (Anthropic `cache_creation.ephemeral_1h_input_tokens`). */
  cacheWrite1h: number;
}

const PRICE_FIELDS = ["input", "output", "cacheRead", "cacheWrite", "cacheWrite1h"] as const;

/** Prices with the documented defaults filled in. */
function pricingOf(p: z.infer<typeof PricingSchema>): Pricing {
  const cacheWrite = p.cache_write ?? p.input;
  return {
    input: p.input,
    output: p.output,
    cacheRead: p.cache_read ?? p.input,
    cacheWrite,
    cacheWrite1h: p.cache_write_1h ?? cacheWrite,
  };
}

const ModelsFileSchema = z.object({
  providers: z.record(z.string().min(1), ProviderSchema).refine(
    (p) => Object.keys(p).length > 0,
    "at least one provider is required",
  ),
  routing: z.record(z.string().min(1), RoutingEntrySchema).default({}),
  known_models: z.array(KnownModelSchema).default([]),
  /** Resilience policy for every provider (each provider may override it). */
  defaults: PolicySchema.optional(),
});

/** One upstream provider, with defaults filled in. */
export interface Provider {
  id: string;
  name: string;
  /** The API format the provider speaks. */
  format: ApiFormat;
  baseUrl: string;
  /** Full URL of the format's main endpoint (base_url + chat_endpoint). */
  endpointUrl: string;
  apiKeyEnv?: string;
  /** The header that carries the provider's secret. */
  credential: CredentialHeader;
  modelPrefixes: string[];
  streamUsage: boolean;
  headers: Record<string, string>;
  /** Client address headers (X-Forwarded-For, Forwarded, ...) go upstream only when set. */
  forwardClientIp: boolean;
  /** Price overrides by lower-cased model id. */
  pricing: Map<string, Pricing>;
  /** Timeouts, retries, breaker and disconnect handling (defaults merged in). */
  policy: Policy;
}

/** A model listed in `known_models`. */
export interface KnownModel {
  id: string;
  provider: string;
  ownedBy: string;
  displayName?: string;
  pricing?: Pricing;
}

/** How a model id was resolved to its provider chain. */
export interface Route {
  /** Providers to try, in order (before key/secret eligibility is applied). */
  chain: Provider[];
  via: "routing" | "known_model" | "model_prefix";
  /** The routing or model prefix that matched, or the known model id. */
  match: string;
}

/** Thrown when `models.json` cannot be read or does not validate. */
export class RegistryError extends Error {}

/** Longest model id whose route is cached (longer ids are resolved each time). */
const CACHED_ID_CHARS = 256;
/** Most routes cached; the cache starts over when full. */
const CACHE_ENTRIES = 10_000;

/** A loaded, validated `models.json` and the routing over it. */
export class Registry {
  readonly providers: Map<string, Provider>;
  readonly knownModels: KnownModel[];
  readonly routing: Map<string, Provider[]>;
  /** Things in the file that load but look wrong (unknown fields), one line each. */
  readonly warnings: readonly string[];
  /** Routing prefixes, longest first. */
  #routingPrefixes: string[];
  /** Provider model prefixes, longest first (stable in file order). */
  #providerPrefixes: { prefix: string; provider: Provider }[];
  #known: Map<string, KnownModel>;
  /** Routes of ids that matched; ids that match nothing are never kept (any client can send those). */
  #cache = new Map<string, Route>();
  /** Prices of routing entries written as objects, by lower-cased prefix. */
  #routingPricing: Map<string, Pricing>;

  constructor(
    providers: Map<string, Provider>,
    routing: Map<string, Provider[]>,
    knownModels: KnownModel[],
    warnings: readonly string[] = [],
    routingPricing: Map<string, Pricing> = new Map(),
  ) {
    this.providers = providers;
    this.routing = routing;
    this.knownModels = knownModels;
    this.warnings = warnings;
    this.#routingPricing = routingPricing;
    this.#routingPrefixes = [...routing.keys()].sort((a, b) => b.length - a.length);
    this.#providerPrefixes = [...providers.values()]
      .flatMap((p) =>
        p.modelPrefixes.map((prefix) => ({ prefix: prefix.toLowerCase(), provider: p }))
      )
      .sort((a, b) => b.prefix.length - a.prefix.length);
    this.#known = new Map(knownModels.map((m) => [m.id.toLowerCase(), m]));
  }

  /**
   * The price of `model` served by `provider` (ids match without case): the
   * provider's own price for the model, else the `known_models` price, else
   * the price of the routing entry that routes it; the first that is set
   * wins. Undefined when none is: the model has no price.
   */
  pricing(model: string, provider?: string): Pricing | undefined {
    const id = model.toLowerCase();
    const own = provider === undefined ? undefined : this.providers.get(provider)?.pricing.get(id);
    if (own) return own;
    const known = this.#known.get(id)?.pricing;
    if (known) return known;
    const route = this.resolve(model);
    return route?.via === "routing" ? this.#routingPricing.get(route.match) : undefined;
  }

  /**
   * The highest price `model` can cost, field by field, over the providers of
   * its route (a fallback may serve it through any of them): what to hold
   * back for a request before knowing who serves it. Undefined when no
   * provider of the route has a price for it.
   */
  reservationPricing(model: string): Pricing | undefined {
    let max: Pricing | undefined;
    for (const p of this.resolve(model)?.chain ?? []) {
      const price = this.pricing(model, p.id);
      if (!price) continue;
      if (!max) max = { ...price };
      else for (const f of PRICE_FIELDS) max[f] = Math.max(max[f], price[f]);
    }
    return max;
  }

  /**
   * A bounded metric label for a model id: the known model's id, the prefix
   * that routes it (`claude*`), or `other`; never the client's raw string.
   */
  modelLabel(model: string): string {
    const known = this.#known.get(model.toLowerCase());
    if (known) return known.id;
    const route = this.resolve(model);
    return route ? `${route.match}*` : "other";
  }

  /**
   * Resolves a model id the way Luna did: the longest matching `routing`
   * prefix; else an exact `known_models` id; else the providers whose
   * `model_prefixes` match (longest first). Matching ignores case.
   */
  resolve(model: string): Route | null {
    const cached = this.#cache.get(model);
    if (cached !== undefined) return cached;
    const route = this.#resolve(model.toLowerCase());
    if (route && model.length <= CACHED_ID_CHARS) {
      if (this.#cache.size >= CACHE_ENTRIES) this.#cache.clear();
      this.#cache.set(model, route);
    }
    return route;
  }

  /** How many routes are cached now (bounded by 10,000). */
  get cachedRoutes(): number {
    return this.#cache.size;
  }

  #resolve(model: string): Route | null {
    for (const prefix of this.#routingPrefixes) {
      if (model.startsWith(prefix)) {
        return { chain: this.routing.get(prefix)!, via: "routing", match: prefix };
      }
    }
    const known = this.#known.get(model);
    if (known) {
      return { chain: [this.providers.get(known.provider)!], via: "known_model", match: known.id };
    }
    const matches = this.#providerPrefixes.filter((p) => model.startsWith(p.prefix));
    if (matches.length > 0) {
      const chain = [...new Set(matches.map((m) => m.provider))];
      return { chain, via: "model_prefix", match: matches[0].prefix };
    }
    return null;
  }
}

function formatPath(path: PropertyKey[]): string {
  return path.map((p, i) =>
    typeof p === "number" ? `[${p}]` : (i === 0 ? String(p) : `.${String(p)}`)
  )
    .join("");
}

/** Edit distance with adjacent transpositions counted as one edit (`ulr` for `url`). */
function editDistance(a: string, b: string): number {
  const d: number[][] = Array.from({ length: a.length + 1 }, (_, i) => [i]);
  for (let j = 1; j <= b.length; j++) d[0][j] = j;
  for (let i = 1; i <= a.length; i++) {
    for (let j = 1; j <= b.length; j++) {
      const cost = a[i - 1] === b[j - 1] ? 0 : 1;
      d[i][j] = Math.min(d[i - 1][j] + 1, d[i][j - 1] + 1, d[i - 1][j - 1] + cost);
      if (i > 1 && j > 1 && a[i - 1] === b[j - 2] && a[i - 2] === b[j - 1]) {
        d[i][j] = Math.min(d[i][j], d[i - 2][j - 2] + 1);
      }
    }
  }
  return d[a.length][b.length];
}

/** The known field name `name` was most likely meant to be, if any is close. */
function nearestField(name: string, known: readonly string[]): string | undefined {
  const norm = (s: string) => s.toLowerCase().replaceAll("-", "_");
  let best: string | undefined;
  let bestDistance = Infinity;
  for (const k of known) {
    const dist = editDistance(norm(name), norm(k));
    if (dist < bestDistance) [best, bestDistance] = [k, dist];
  }
  return bestDistance <= Math.max(1, Math.floor(name.length / 3)) ? best : undefined;
}

/** One line about an unknown field; `refused` when it fails validation instead of being ignored. */
function unknownField(
  path: string,
  name: string,
  known: readonly string[],
  refused = false,
): string {
  const near = nearestField(name, known);
  const what = near
    ? ` (did you mean ${near}?)`
    : refused
    ? ` (known: ${known.join(", ")})`
    : " (ignored)";
  return `${path}${path ? "." : ""}${name}: unknown field${what}`;
}

const TOP_FIELDS = Object.keys(ModelsFileSchema.shape);
const PROVIDER_FIELDS = Object.keys(ProviderSchema.shape);
const KNOWN_MODEL_FIELDS = Object.keys(KnownModelSchema.shape);

const isRecord = (v: unknown): v is Record<string, unknown> =>
  typeof v === "object" && v !== null && !Array.isArray(v);

/**
 * Fields the loader ignores (the top level, providers and known models
 * accept unknown fields, as Luna did), each as one line naming its path
 * and the nearest known name. The nested objects (timeouts, pricing, ...)
 * are strict: a typo there fails validation instead.
 */
function unknownFields(raw: unknown): string[] {
  const out: string[] = [];
  const check = (obj: unknown, known: readonly string[], path: string) => {
    if (!isRecord(obj)) return;
    for (const k of Object.keys(obj)) {
      if (!known.includes(k)) out.push(unknownField(path, k, known));
    }
  };
  if (!isRecord(raw)) return out;
  check(raw, TOP_FIELDS, "");
  if (isRecord(raw.providers)) {
    for (const [id, p] of Object.entries(raw.providers)) {
      check(p, PROVIDER_FIELDS, `providers.${id}`);
    }
  }
  if (Array.isArray(raw.known_models)) {
    raw.known_models.forEach((m, i) => check(m, KNOWN_MODEL_FIELDS, `known_models[${i}]`));
  }
  return out;
}

/** One line for the first validation problem, naming the field. */
function describeIssue(issue: z.core.$ZodIssue, source: string, raw: unknown): string {
  const where = issue.path.length ? formatPath(issue.path) : "";
  if (issue.code === "unrecognized_keys") {
    // Strict objects: the known names are the ones the schema at that path declares.
    const known = knownAt(issue.path);
    return `${source}: ${unknownField(where, issue.keys[0], known, true)}`;
  }
  const line = `${source}: ${where || "(top level)"}: ${issue.message}`;
  // A missing field is often there under a misspelt name: say so on the same line.
  const name = issue.path[issue.path.length - 1];
  const parent = formatPath(issue.path.slice(0, -1));
  const typo = issue.message === "is missing" && typeof name === "string"
    ? unknownFields(raw).find((w) =>
      w.startsWith(`${parent}.`) && w.endsWith(`(did you mean ${name}?)`)
    )
    : undefined;
  return typo ? `${line}; ${typo}` : line;
}

/** Field names of the strict object at `path` (policy sections and pricing). */
function knownAt(path: PropertyKey[]): string[] {
  const last = path[path.length - 1];
  const policy = PolicySchema.shape as Record<string, z.ZodType>;
  if (last === "pricing" || (path.length >= 2 && path[path.length - 2] === "pricing")) {
    return Object.keys(PricingSchema.shape);
  }
  if (path.length === 2 && path[0] === "routing") return ["providers", "pricing"];
  const section = typeof last === "string" ? policy[last] : undefined;
  const inner = section instanceof z.ZodOptional ? section.unwrap() : section;
  if (inner instanceof z.ZodObject) return Object.keys(inner.shape);
  return Object.keys(policy);
}

/** Says "is missing" for an absent required field, not what its value should have been. */
const missingError = (iss: z.core.$ZodRawIssue) =>
  iss.input === undefined && (iss.code === "invalid_type" || iss.code === "invalid_value")
    ? "is missing"
    : undefined;

/** A provider's price list by lower-cased model id; two ids differing only in case are refused. */
function priceList(
  list: Record<string, z.infer<typeof PricingSchema>>,
  where: string,
): Map<string, Pricing> {
  const out = new Map<string, Pricing>();
  for (const [model, p] of Object.entries(list)) {
    const id = model.toLowerCase();
    if (out.has(id)) {
      throw new RegistryError(`${where}: "${model}" is listed twice (ids ignore case)`);
    }
    out.set(id, pricingOf(p));
  }
  return out;
}

/**
 * The issue to report: inside a union (a routing entry), the one of the
 * branch the value was meant for, i.e. the first whose complaint is not
 * about the value's type as a whole.
 */
function reported(issue: z.core.$ZodIssue): z.core.$ZodIssue {
  if (issue.code !== "invalid_union") return issue;
  for (const branch of issue.errors) {
    const first = branch[0];
    if (first && !(first.code === "invalid_type" && first.path.length === 0)) {
      return reported({ ...first, path: [...issue.path, ...first.path] });
    }
  }
  return issue;
}

/**
 * Validates parsed `models.json` content; `source` names the file in errors.
 * Fields it ignores are reported in the registry's `warnings`.
 */
export function parseRegistry(raw: unknown, source = "models.json"): Registry {
  const parsed = ModelsFileSchema.safeParse(raw, { error: missingError });
  if (!parsed.success) {
    throw new RegistryError(describeIssue(reported(parsed.error.issues[0]), source, raw));
  }
  const file = parsed.data;
  const defaults = mergePolicy(DEFAULT_POLICY, file.defaults);
  const providers = new Map<string, Provider>();
  for (const [id, p] of Object.entries(file.providers)) {
    const format = formatNamed(p.format)!;
    const endpoint = p.chat_endpoint ?? format.upstream.path;
    const baseUrl = p.base_url.replace(/\/+$/, "");
    providers.set(id, {
      id,
      name: p.name ?? id,
      format,
      baseUrl,
      endpointUrl: baseUrl + endpoint,
      apiKeyEnv: p.api_key_env,
      credential: AUTH_STYLES[p.auth_header ?? format.upstream.auth],
      modelPrefixes: p.model_prefixes,
      streamUsage: p.stream_usage,
      headers: Object.fromEntries(Object.entries(p.headers).map(([k, v]) => [k.toLowerCase(), v])),
      forwardClientIp: p.forward_client_ip,
      pricing: priceList(p.pricing, `${source}: providers.${id}.pricing`),
      policy: mergePolicy(defaults, p),
    });
  }
  const routing = new Map<string, Provider[]>();
  const routingPricing = new Map<string, Pricing>();
  for (const [prefix, entry] of Object.entries(file.routing)) {
    const ids = Array.isArray(entry) ? entry : entry.providers;
    const where = Array.isArray(entry) ? `routing.${prefix}` : `routing.${prefix}.providers`;
    const chain = ids.map((id, i) => {
      const p = providers.get(id);
      if (!p) throw new RegistryError(`${source}: ${where}[${i}]: unknown provider "${id}"`);
      return p;
    });
    routing.set(prefix.toLowerCase(), chain);
    if (!Array.isArray(entry) && entry.pricing) {
      routingPricing.set(prefix.toLowerCase(), pricingOf(entry.pricing));
    }
  }
  const knownModels = file.known_models.map((m, i) => {
    if (!providers.has(m.provider)) {
      throw new RegistryError(
        `${source}: known_models[${i}].provider: unknown provider "${m.provider}"`,
      );
    }
    return {
      id: m.id,
      provider: m.provider,
      ownedBy: m.owned_by ?? m.provider,
      displayName: m.display_name,
      pricing: m.pricing && pricingOf(m.pricing),
    };
  });
  return new Registry(providers, routing, knownModels, unknownFields(raw), routingPricing);
}

/** Reads and validates a `models.json` file. */
export async function loadRegistry(path: string): Promise<Registry> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
    if (e instanceof Deno.errors.IsADirectory) {
      throw new RegistryError(`${path}: is a folder, not a file`);
    }
    if (e instanceof Deno.errors.NotFound) throw new RegistryError(`${path}: does not exist`);
    throw new RegistryError(`${path}: cannot read the file: ${(e as Error).message}`);
  }
  let raw: unknown;
  try {
    raw = JSON.parse(text);
  } catch (e) {
    throw new RegistryError(`${path}: not valid JSON: ${(e as Error).message}`);
  }
  return parseRegistry(raw, path);
}
