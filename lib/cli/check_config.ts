/**
 * `check-config [models.json]`: validates a model registry and prints its
 * providers (with whether their key variable is set), routing table and
 * known models.
 */
import { loadRegistry } from "../config/registry.ts";
import { noMoreThan, parse } from "./args.ts";
import { cliConfig } from "./context.ts";
import { HELP } from "./help.ts";
import { CliError, type Command } from "./io.ts";
import { table } from "./table.ts";

/** `check-config [models.json]` */
export const checkConfigCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {});
  if (values.help) {
    io.out(HELP["check-config"]);
    return 0;
  }
  noMoreThan(positionals, 1, "check-config");
  const path = positionals[0] ?? cliConfig(io).modelsPath;
  const reg = await loadRegistry(path).catch((e) => {
    throw new CliError((e as Error).message);
  });
  io.out(
    `${path}: valid (${reg.providers.size} providers, ${reg.knownModels.length} known models)`,
  );
  for (const w of reg.warnings) io.err(`warning: ${path}: ${w}`);
  io.out("");
  for (
    const l of table(
      ["PROVIDER", "FORMAT", "ENDPOINT", "KEY ENV", "KEY SET"],
      [...reg.providers.values()].map((p) => [
        p.id,
        p.format.name,
        p.endpointUrl,
        p.apiKeyEnv ?? "-",
        !p.apiKeyEnv ? "n/a" : io.env[p.apiKeyEnv] ? "yes" : "no",
      ]),
    )
  ) io.out(l);
  io.out("");
  const routes: (string | number)[][] = [...reg.routing].map(([prefix, chain]) => [
    `${prefix}*`,
    "routing",
    chain.map((p) => p.id).join(" -> "),
  ]);
  for (const p of reg.providers.values()) {
    for (const prefix of p.modelPrefixes) routes.push([`${prefix}*`, "model_prefixes", p.id]);
  }
  for (const l of table(["MODELS", "VIA", "PROVIDERS (in order)"], routes)) io.out(l);
  io.out("");
  for (
    const l of table(
      ["KNOWN MODEL", "PROVIDERS (in order)"],
      reg.knownModels.map((m) => [
        m.id,
        reg.resolve(m.id)?.chain.map((p) => p.id).join(" -> ") ?? "-",
      ]),
    )
  ) io.out(l);
  return 0;
};
