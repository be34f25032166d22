/**
 * Starts Portkey's open-source gateway (the npm build's own server, as
 * `npx @portkey-ai/gateway` runs it) as a benchmark target:
 * `node bench/portkey/start.mjs PORT`. Headless (no log UI) and on
 * 127.0.0.1 only: the build listens on every interface and has no option
 * for that, so the one `listen` call without a host gets the loopback host.
 * bench/portkey.ts installs the pinned dependencies and runs this.
 */
import net from "node:net";

const port = Number(process.argv[2]);
if (!Number.isInteger(port) || port <= 0) {
  console.error("usage: node start.mjs PORT");
  process.exit(2);
}
const listen = net.Server.prototype.listen;
net.Server.prototype.listen = function (p, host, ...rest) {
  return typeof p === "number" && host === undefined
    ? listen.call(this, p, "127.0.0.1", ...rest)
    : listen.call(this, p, host, ...rest);
};
process.argv.splice(2, Infinity, `--port=${port}`, "--headless");
await import("@portkey-ai/gateway/build/start-server.js");
