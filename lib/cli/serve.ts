/**
 * `serve` (the default command): starts the gateway and stops it cleanly on
 * SIGTERM or SIGINT. The process keeps running, so it answers null.
 */
import { startGateway } from "../ops/server.ts";
import { noMoreThan, parse } from "./args.ts";
import { bundledFallback, cliConfig } from "./context.ts";
import { HELP } from "./help.ts";
import type { Command } from "./io.ts";

/** `serve` */
export const serveCommand: Command = async (args, io) => {
  const { values, positionals } = parse(args, {});
  if (values.help) {
    io.out(HELP.serve);
    return 0;
  }
  noMoreThan(positionals, 0, "serve");
  const config = cliConfig(io);
  const bundled = await bundledFallback(config, io);
  const gw = await startGateway({ config, registry: bundled, watchConfig: !bundled });
  if (bundled) {
    // There is no file to reload, but SIGHUP must not end the process (its default action).
    try {
      Deno.addSignalListener(
        "SIGHUP",
        () =>
          gw.ctx.log.warn("SIGHUP: nothing to reload on the bundled models.json", {
            hint: "set MODELS_CONFIG or create ./models.json",
          }),
      );
    } catch {
      // No SIGHUP on this platform (Windows).
    }
    gw.ctx.log.warn("no models.json found: using the bundled one", { path: config.modelsPath });
  }
  const stop = async () => {
    await gw.shutdown();
    Deno.exit(0);
  };
  Deno.addSignalListener("SIGINT", stop);
  Deno.addSignalListener("SIGTERM", stop);
  return null;
};
