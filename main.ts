/**
 * Entry point: read configuration, start the gateway, stop cleanly on
 * SIGINT/SIGTERM. All logic lives in `lib/`.
 */
import { loadConfig } from "./lib/config.ts";
import { startGateway } from "./lib/server.ts";

if (import.meta.main) {
  try {
    const gw = await startGateway({ config: loadConfig() });
    const stop = async () => {
      await gw.shutdown();
      Deno.exit(0);
    };
    Deno.addSignalListener("SIGINT", stop);
    Deno.addSignalListener("SIGTERM", stop);
  } catch (e) {
    console.error(`gateway: ${(e as Error).message}`);
    Deno.exit(1);
  }
}
