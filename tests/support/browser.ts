/**
 * Headless Chromium for the dashboard tests: Debian's `chromium` driven by
 * playwright-core (a test-only npm import) through `executablePath`, with a
 * fresh profile and no background networking. Where no browser can be had,
 * {@link browserBlocker} says why, and the tests report themselves skipped.
 */
import { type BrowserContext, chromium } from "npm:playwright-core@1.65.1";

/** Debian's Chromium (`.ci/run` installs it with apt when missing). */
export const CHROMIUM = Deno.env.get("CHROMIUM_PATH") ?? "/usr/bin/chromium";

/**
 * As root in a sandboxed CI there is no user namespace for Chromium's own
 * sandbox; the network flags keep it from calling home on a closed network.
 */
const FLAGS = [
  "--headless",
  "--no-sandbox",
  "--disable-gpu",
  "--disable-quic",
  "--no-first-run",
  "--disable-background-networking",
  "--disable-component-update",
  "--disable-sync",
];

/** Why no browser test can run here, or undefined when Chromium starts. */
export async function browserBlocker(): Promise<string | undefined> {
  const st = await Deno.stat(CHROMIUM).catch(() => null);
  if (!st?.isFile) {
    return `no Chromium at ${CHROMIUM} (install Debian's chromium package: apt-get install chromium)`;
  }
  try {
    const r = await new Deno.Command(CHROMIUM, {
      args: ["--version"],
      stdout: "piped",
      stderr: "piped",
      stdin: "null",
    }).output();
    if (!r.success) {
      return `${CHROMIUM} --version failed: ${new TextDecoder().decode(r.stderr).trim()}`;
    }
  } catch (e) {
    return `${CHROMIUM} does not run: ${(e as Error).message}`;
  }
  return undefined;
}

/** A running browser with one fresh profile. */
export interface Browser {
  ctx: BrowserContext;
  close(): Promise<void>;
}

/**
 * Starts Chromium with a new empty profile (`--user-data-dir` in a temp
 * folder), its clock in `timezoneId` (the machine's zone when absent).
 */
export async function launchBrowser(o: { timezoneId?: string } = {}): Promise<Browser> {
  const profile = await Deno.makeTempDir({ prefix: "ui-test-chromium-" });
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    headless: true,
    args: FLAGS,
    viewport: { width: 1280, height: 900 },
    acceptDownloads: true,
    colorScheme: "light",
    timezoneId: o.timezoneId,
  });
  return {
    ctx,
    close: async () => {
      await ctx.close();
      await Deno.remove(profile, { recursive: true }).catch(() => {});
    },
  };
}
