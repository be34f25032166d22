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
  base_url: z.url({ protocol: /^https?$/, error: "must be an http(s) URL" }),
  api_key_env: z.string().regex(/^[A-Za-z_][A-Za-z0-9_]*$/, "must be an environment variable name")
    .optional(),
  auth_header: z.enum(Object.keys(AUTH_STYLES) as [keyof typeof AUTH_STYLES]).optional(),
  chat_endpoint: z.string().startsWith("/", "must start with /").optional(),
  model_prefixes: z.array(z.string().min(1)).default([]),
  /** OpenAI format only: ask for `stream_options.include_usage` on streams (default true). */
  stream_usage: z.boolean().default(true),
  /** Extra static headers sent upstream (e.g. an aggregator's routing header). */
  headers: z.record(z.string(), z.string()).default({}),
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

/** A loaded, validated `models.json` and the routing over it. */
export class Registry {
  readonly providers: Map<string, Provider>;
  readonly knownModels: KnownModel[];
  readonly routing: Map<string, Provider[]>;
  /** Routing prefixes, longest first. */
  #routingPrefixes: string[];
  /** Provider model prefixes, longest first (stable in file order). */
  #providerPrefixes: { prefix: string; provider: Provider }[];
  #known: Map<string, KnownModel>;
  /** Prices of routing entries written as objects, by lower-cased prefix. */
  #routingPricing: Map<string, Pricing>;
  #cache = new Map<string, Route | null>();

  constructor(
    providers: Map<string, Provider>,
    routing: Map<string, Provider[]>,
    knownModels: KnownModel[],
    routingPricing: Map<string, Pricing> = new Map(),
  ) {
    this.providers = providers;
    this.routing = routing;
    this.#routingPricing = routingPricing;
    this.knownModels = knownModels;
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
    if (this.#cache.size > 10_000) this.#cache.clear();
    this.#cache.set(model, route);
    return route;
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

/** Validates parsed `models.json` content; `source` names the file in errors. */
export function parseRegistry(raw: unknown, source = "models.json"): Registry {
  const parsed = ModelsFileSchema.safeParse(raw);
  if (!parsed.success) {
    const issue = reported(parsed.error.issues[0]);
    const where = issue.path.length ? formatPath(issue.path) : "(top level)";
    throw new RegistryError(`${source}: ${where}: ${issue.message}`);
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
  return new Registry(providers, routing, knownModels, routingPricing);
}

/** Reads and validates a `models.json` file. */
export async function loadRegistry(path: string): Promise<Registry> {
  let text: string;
  try {
    text = await Deno.readTextFile(path);
  } catch (e) {
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
