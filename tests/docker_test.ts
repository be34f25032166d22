/**
 * Docker contract: no Docker engine runs on our machines, so this test reads
 * `Dockerfile`, `compose.yml`, `.env.example` and `.dockerignore` and checks
 * them against the code: every env var they set is one the gateway reads,
 * every path they copy or mount exists (or is produced by an earlier stage, or
 * created at start), the port is the config default, the health check is the
 * binary's `healthcheck` command (which must exist and work), the Deno
 * version matches README and .ci/run, the user is not root and the KV lives
 * in the declared volume.
 *
 * compose.yml is read with the `yaml` package (YAML 1.2 core schema, as
 * compose reads it) and any YAML error or warning fails the test instead of
 * being half-read; the Dockerfile with the reader in `support/dockerfile.ts`.
 */
import { posix } from "node:path";
import { parseDocument } from "npm:yaml@2.9.1";
import { assert, assertEquals } from "./support/assert.ts";
import {
  durationMs,
  execForm,
  flags,
  type Instruction,
  parseDockerfile,
  type Stage,
  words,
} from "./support/dockerfile.ts";
import { ignoreMatcher } from "./support/dockerignore.ts";
import { ROOT, runCommand } from "./support/process.ts";
import { fakeUpstream } from "./support/upstream.ts";
import { CONFIG_ENV_VARS, loadConfig } from "../lib/config/env.ts";

const read = (path: string) => Deno.readTextFileSync(`${ROOT}/${path}`);

/** A YAML value. */
type Yaml = string | number | boolean | null | Yaml[] | { [key: string]: Yaml };

/** One YAML document as plain data; throws naming `file` on any YAML error or warning. */
function readYaml(src: string, file = "yaml"): Yaml {
  const doc = parseDocument(src, { prettyErrors: true, strict: true, uniqueKeys: true });
  const problems = [...doc.errors, ...doc.warnings];
  if (problems.length) {
    throw new Error(`${file}: ${problems.map((p) => `${p.code}: ${p.message}`).join("\n")}`);
  }
  return doc.toJS() as Yaml;
}

// ---------------------------------------------------------------------------
// What the files say.

const dockerfile = parseDockerfile(read("Dockerfile"));
const final = dockerfile.at(-1)!;
const compose = readYaml(read("compose.yml"), "compose.yml") as Record<string, Yaml>;
const services = compose.services as Record<string, Record<string, Yaml>>;
const bundledModels = JSON.parse(read("models.json")) as {
  providers: Record<string, { api_key_env?: string }>;
};
const PROVIDER_SECRETS = Object.values(bundledModels.providers)
  .map((p) => p.api_key_env).filter((v): v is string => !!v);
const KNOWN_ENV = new Set([...CONFIG_ENV_VARS, ...PROVIDER_SECRETS]);
const CONFIG_DEFAULTS = loadConfig({});
const denoJson = JSON.parse(read("deno.json")) as { tasks: Record<string, string> };

const gateway = (() => {
  const names = Object.keys(services);
  assertEquals(names, ["gateway"], "compose.yml defines the one service `gateway`");
  return services.gateway;
})();

/** Instructions of one kind in a stage. */
const all = (stage: Stage, cmd: string) => stage.instructions.filter((i) => i.cmd === cmd);
const one = (stage: Stage, cmd: string) => {
  const found = all(stage, cmd);
  assertEquals(found.length, 1, `exactly one ${cmd} in the stage FROM ${stage.base}`);
  return found[0];
};

/** ENV of a stage as a map (both `ENV K=V ...` and `ENV K V`). */
function stageEnv(stage: Stage): Map<string, string> {
  const env = new Map<string, string>();
  for (const ins of all(stage, "ENV")) {
    const w = words(ins.args);
    if (w.length && !w[0].includes("=")) env.set(w[0], ins.args.slice(w[0].length).trim());
    else {
      for (const kv of w) {
        const eq = kv.indexOf("=");
        assert(eq > 0, `Dockerfile:${ins.line}: cannot read ENV ${ins.args}`);
        env.set(kv.slice(0, eq), kv.slice(eq + 1));
      }
    }
  }
  return env;
}

/** compose `environment` (map or list form) as a map. */
function composeEnv(service: Record<string, Yaml>): Map<string, string> {
  const env = new Map<string, string>();
  const e = service.environment;
  if (Array.isArray(e)) {
    for (const item of e) {
      const s = String(item);
      const eq = s.indexOf("=");
      env.set(eq < 0 ? s : s.slice(0, eq), eq < 0 ? "" : s.slice(eq + 1));
    }
  } else if (e && typeof e === "object") {
    for (const [k, v] of Object.entries(e)) env.set(k, v === null ? "" : String(v));
  }
  return env;
}

/** Names used in `${NAME}`, `${NAME:-x}`, `$NAME` interpolations (`$$` is a literal `$`). */
function interpolated(s: string): string[] {
  return [
    ...s.replaceAll("$$", "").matchAll(/\$\{([A-Za-z_][A-Za-z0-9_]*)[^}]*\}|\$([A-Za-z_]\w*)/g),
  ]
    .map((m) => m[1] ?? m[2]);
}

/** Assignments in .env.example, active and commented out (`# NAME=value`). */
function envExample(): { name: string; value: string; active: boolean }[] {
  const out = [];
  for (const line of read(".env.example").split(/\r?\n/)) {
    const m = /^(#\s*)?([A-Za-z_][A-Za-z0-9_]*)=(.*)$/.exec(line.trim());
    if (m) out.push({ name: m[2], value: m[3], active: !m[1] });
  }
  return out;
}

/** Where a stage's WORKDIR is at each instruction, to resolve relative paths. */
function withWorkdir(stage: Stage): { ins: Instruction; cwd: string }[] {
  let cwd = "/";
  return stage.instructions.map((ins) => {
    if (ins.cmd === "WORKDIR") cwd = posix.resolve(cwd, ins.args);
    return { ins, cwd };
  });
}

/** The path a compile command writes (`-o X`, `--output X`), relative to its cwd. */
function compileOutput(command: string): string | undefined {
  const w = words(command);
  const i = w.findIndex((x) => x === "-o" || x === "--output");
  return i >= 0 ? w[i + 1] : w.find((x) => x.startsWith("--output="))?.slice(9);
}

interface Produced {
  path: string;
  dir: boolean;
  owner?: string;
}

/**
 * Paths each stage produces: COPY destinations (what another stage produced
 * maps onto the destination), `mkdir` folders and compile outputs of RUN.
 */
function producedPaths(): Map<Stage, Produced[]> {
  const out = new Map<Stage, Produced[]>();
  dockerfile.forEach((stage, index) => {
    const produced: Produced[] = [];
    for (const { ins, cwd } of withWorkdir(stage)) {
      if (ins.cmd === "RUN") {
        for (const part of ins.args.split(/&&|;|\|\|/)) {
          const w = words(part.trim());
          if (w[0] === "mkdir") {
            for (const p of w.slice(1).filter((x) => !x.startsWith("-"))) {
              produced.push({ path: posix.resolve(cwd, p), dir: true });
            }
          }
          const cmd = w[0] === "deno" && w[1] === "task" ? denoJson.tasks[w[2]] ?? "" : part;
          const o = /\bdeno compile\b/.test(cmd) ? compileOutput(cmd) : undefined;
          if (o) produced.push({ path: posix.resolve(cwd, o), dir: false });
        }
      }
      if (ins.cmd !== "COPY" && ins.cmd !== "ADD") continue;
      const { flags: f, rest } = flags(ins.args);
      const paths = execForm(rest) ?? words(rest);
      const dest = posix.resolve(cwd, paths.at(-1)!);
      const destIsDir = paths.at(-1)!.endsWith("/") || paths.length > 2;
      const owner = f.chown;
      // A folder's contents land in dest; a file lands at dest, or in it when dest is a folder.
      const place = (from: string, p: Produced) => {
        if (p.path === from) {
          const path = p.dir || !destIsDir ? dest : posix.join(dest, posix.basename(from));
          produced.push({ path, dir: p.dir, owner });
          return;
        }
        const rel = posix.relative(from, p.path);
        if (rel.startsWith("..")) return;
        const segs = rel.split("/");
        segs.forEach((_, n) => {
          produced.push({
            path: posix.join(dest, ...segs.slice(0, n + 1)),
            dir: n < segs.length - 1 || p.dir,
            owner,
          });
        });
      };
      for (const s of paths.slice(0, -1)) {
        if (f.from) {
          const src = fromStage(index, f.from);
          const from = posix.resolve("/", s);
          for (const p of out.get(src)!) place(from, p);
        } else {
          const rel = posix.normalize(s).replace(/\/$/, "");
          let dir = false;
          try {
            dir = Deno.statSync(`${ROOT}/${rel}`).isDirectory;
          } catch {
            // missing: the test of COPY sources says so
          }
          place(`/${rel}`, { path: `/${rel}`, dir });
        }
      }
    }
    out.set(stage, produced);
  });
  return out;
}

/** The earlier stage a `--from=` names (by name or index). */
function fromStage(index: number, from: string): Stage {
  const src = dockerfile.find((s, i) => i < index && (s.name === from || `${i}` === from));
  assert(src, `COPY --from=${from} is not an earlier stage`);
  return src;
}

/** Runs the entry point with the compile task's flags (the permissions the binary gets). */
async function runMain(
  args: string[],
  env: Record<string, string> = {},
  timeoutMs = 30_000,
): Promise<{ code: number; out: string }> {
  // The permission and unstable flags of `deno task compile` (all of them are `--x` or `--x=y`).
  const runFlags = words(denoJson.tasks.compile).filter((w) => w.startsWith("--"));
  const r = await runCommand(Deno.execPath(), ["run", ...runFlags, `${ROOT}/main.ts`, ...args], {
    cwd: ROOT,
    env: { KV_PATH: ":memory:", HOST: "127.0.0.1", ...env },
    timeoutMs,
  });
  return { code: r.code, out: r.out + r.err };
}

// ---------------------------------------------------------------------------
// The readers themselves.

Deno.test("YAML: compose constructs read as compose reads them; malformed YAML fails loudly", () => {
  const doc = readYaml(
    [
      "# comment",
      "a:",
      "  b: 'it''s'   # trailing comment",
      '  c: "x # not a comment"',
      "  list:",
      "  - one",
      "  - k: v",
      "    k2: [\"CMD\", '/bin', plain]",
      "  - 8180",
      "  flag: true",
      "  empty:",
      "d: 8180:8180",
      "e: yes",
    ].join("\n"),
  );
  assertEquals(doc, {
    a: {
      b: "it's",
      c: "x # not a comment",
      list: ["one", { k: "v", k2: ["CMD", "/bin", "plain"] }, 8180],
      flag: true,
      empty: null,
    },
    // YAML 1.2, like compose: no sexagesimal numbers, no yes/no booleans.
    d: "8180:8180",
    e: "yes",
  });
  for (
    const bad of [
      "a: 1\na: 2",
      "a:\n\tb: 1",
      "a: b: c",
      "a: 1\n---\nb: 2",
      "a: [1, 2",
      "a: 'open",
      "a:\n  - x\n - y",
    ]
  ) {
    let threw = false;
    try {
      readYaml(bad);
    } catch {
      threw = true;
    }
    assert(threw, `should refuse ${JSON.stringify(bad)}`);
  }
});

Deno.test("Dockerfile reader: stages, continuations, comments, exec form and flags", () => {
  const stages = parseDockerfile(
    [
      "ARG V=1",
      "# a comment",
      "FROM base:1 AS build",
      "RUN a \\",
      "    && b",
      "",
      "FROM --platform=linux/amd64 gcr.io/x/y:z",
      'COPY --from=build --chown=1:1 ["/app/x", "/a b"]',
      'HEALTHCHECK --interval=30s CMD ["/app/x", "healthcheck"]',
    ].join("\n"),
  );
  assertEquals(stages.map((s) => [s.base, s.name]), [["base:1", "build"], [
    "gcr.io/x/y:z",
    undefined,
  ]]);
  const run = stages[0].instructions.map((i) => [i.cmd, words(i.args), i.line]);
  assertEquals(run, [["RUN", ["a", "&&", "b"], 4]], "one instruction, from its first line");
  const copy = flags(stages[1].instructions[0].args);
  assertEquals(copy.flags, { from: "build", chown: "1:1" });
  assertEquals(execForm(copy.rest), ["/app/x", "/a b"]);
  const hc = flags(stages[1].instructions[1].args);
  assertEquals(hc.flags, { interval: "30s" });
  assertEquals(execForm(hc.rest.replace(/^CMD\s+/, "")), ["/app/x", "healthcheck"]);
  assertEquals(execForm("/app/x serve"), undefined);
  assertEquals(words(`a "b c" 'd e'`), ["a", "b c", "d e"]);
  assertEquals([durationMs("1m30s"), durationMs("45s"), durationMs("500ms")], [
    90_000,
    45_000,
    500,
  ]);
  let threw = false;
  try {
    parseDockerfile("RUN x\nFROM y");
  } catch {
    threw = true;
  }
  assert(threw, "an instruction before FROM is refused");
});

// ---------------------------------------------------------------------------
// Environment variables.

Deno.test("docker: every env var the Dockerfile and compose.yml set is one the gateway reads", () => {
  const set = [
    ...[...stageEnv(final).keys()].map((k) => ({ k, where: "Dockerfile ENV" })),
    ...[...composeEnv(gateway).keys()].map((k) => ({ k, where: "compose.yml environment" })),
  ];
  assert(set.length > 0);
  for (const { k, where } of set) {
    assert(
      KNOWN_ENV.has(k),
      `${where} sets ${k}, which the gateway does not read (config: ${
        CONFIG_ENV_VARS.join(", ")
      };` +
        ` provider secrets: ${PROVIDER_SECRETS.join(", ")})`,
    );
  }
  // Interpolations too: a typo in ${CLAUDE_API_KEY} would silently pass nothing.
  for (const [k, v] of composeEnv(gateway)) {
    for (const name of interpolated(v)) {
      assert(KNOWN_ENV.has(name), `compose.yml ${k} interpolates \${${name}}, an unknown variable`);
    }
  }
});

Deno.test("docker: compose passes ADMIN_KEY and every provider secret from the shell or .env", () => {
  const env = composeEnv(gateway);
  for (const name of ["ADMIN_KEY", ...PROVIDER_SECRETS]) {
    const v = env.get(name);
    assert(v !== undefined, `compose.yml environment lacks ${name}`);
    assertEquals(interpolated(v), [name], `compose.yml ${name} should be \${${name}:-}`);
    assert(/^\$\{\w+:-\}$/.test(v), `${name}: an unset variable should give "" (\${${name}:-})`);
  }
  const envFile = gateway.env_file as Yaml[];
  assert(Array.isArray(envFile), "compose.yml env_file is a list");
  const entry = envFile[0] as Record<string, Yaml>;
  assertEquals(entry.path, ".env");
  assertEquals(entry.required, false, ".env is optional");
});

Deno.test("docker: .env.example lists every variable, each one the gateway reads, no secrets", () => {
  const entries = envExample();
  const names = new Set(entries.map((e) => e.name));
  for (const e of entries) {
    assert(KNOWN_ENV.has(e.name), `.env.example sets ${e.name}, which the gateway does not read`);
  }
  for (const name of KNOWN_ENV) assert(names.has(name), `.env.example lacks ${name}`);
  assertEquals(entries.length, names.size, ".env.example names each variable once");
  for (const name of ["ADMIN_KEY", ...PROVIDER_SECRETS]) {
    const e = entries.find((x) => x.name === name)!;
    assert(e.active, `.env.example: ${name} is an active (uncommented) line to fill in`);
    assertEquals(e.value, "", `.env.example: ${name} must be empty (never a committed secret)`);
  }
  assert(read(".env.example").includes("openssl rand -hex 24"), "says how to make an ADMIN_KEY");
  // Commented defaults must be the real defaults.
  const defaults: Record<string, string> = {
    PORT: String(CONFIG_DEFAULTS.port),
    HOST: CONFIG_DEFAULTS.host,
    MODELS_CONFIG: CONFIG_DEFAULTS.modelsPath,
    KV_PATH: CONFIG_DEFAULTS.kvPath,
    USAGE_TZ: CONFIG_DEFAULTS.usageTz,
    MAX_BODY_BYTES: String(CONFIG_DEFAULTS.maxBodyBytes),
    BODY_TIMEOUT_MS: String(CONFIG_DEFAULTS.bodyTimeoutMs),
    USAGE_FLUSH_MS: String(CONFIG_DEFAULTS.usageFlushMs),
    KEYS_REFRESH_MS: String(CONFIG_DEFAULTS.keysRefreshMs),
    SHUTDOWN_GRACE_MS: String(CONFIG_DEFAULTS.shutdownGraceMs),
    LOG_FORMAT: CONFIG_DEFAULTS.logFormat,
    LOG_LEVEL: CONFIG_DEFAULTS.logLevel,
    METRICS_PUBLIC: String(CONFIG_DEFAULTS.metricsPublic),
    METRICS_PER_KEY: String(CONFIG_DEFAULTS.metricsPerKey),
    REQUEST_LOG_DAYS: String(CONFIG_DEFAULTS.requestLogDays),
  };
  for (const e of entries.filter((x) => !x.active && x.value !== "")) {
    if (e.name in defaults) {
      assertEquals(e.value, defaults[e.name], `.env.example: ${e.name} default`);
    }
  }
  // Every active setting must be valid configuration.
  loadConfig(Object.fromEntries(entries.filter((e) => e.active).map((e) => [e.name, e.value])));
});

Deno.test("docker: .env and other local state stay out of git and the build context", () => {
  const ignored = ignoreMatcher(read(".dockerignore"));
  for (
    const p of [
      ".env",
      "data/gateway.kv",
      "dist/llm-gateway",
      ".git/config",
      "tests/support/gateway.ts",
    ]
  ) {
    assert(ignored(p), `.dockerignore should keep ${p} out of the build context`);
  }
  assert(ignored("bench/results/run.json"), ".dockerignore: bench/results");
  assert(/^\.env$/m.test(read(".gitignore")), ".gitignore lists .env");
});

// ---------------------------------------------------------------------------
// Paths.

Deno.test("docker: every path the Dockerfile copies exists in the build context or an earlier stage", async () => {
  const ignored = ignoreMatcher(read(".dockerignore"));
  const produced = producedPaths();
  for (const [index, stage] of dockerfile.entries()) {
    for (const ins of [...all(stage, "COPY"), ...all(stage, "ADD")]) {
      const { flags: f, rest } = flags(ins.args);
      const paths = (execForm(rest) ?? words(rest)).slice(0, -1);
      assert(paths.length > 0, `Dockerfile:${ins.line}: COPY without a source`);
      for (const p of paths) {
        if (f.from) {
          const src = fromStage(index, f.from);
          const from = posix.resolve("/", p).replace(/\/$/, "");
          assert(
            produced.get(src)!.some((x) => x.path === from || x.path.startsWith(from + "/")),
            `Dockerfile:${ins.line}: ${p} is not produced by stage ${f.from}` +
              ` (it makes ${produced.get(src)!.map((x) => x.path).join(", ")})`,
          );
        } else {
          const rel = posix.normalize(p).replace(/\/$/, "");
          assert(!rel.startsWith(".."), `Dockerfile:${ins.line}: ${p} is outside the context`);
          const st = await Deno.stat(`${ROOT}/${rel}`).catch(() => null);
          assert(st, `Dockerfile:${ins.line}: ${p} does not exist in the repository`);
          assert(!ignored(rel), `Dockerfile:${ins.line}: ${p} is excluded by .dockerignore`);
        }
      }
    }
  }
});

Deno.test("docker: the build stage copies every local module main.ts imports, and no test-only package", async () => {
  const build = dockerfile.find((s) =>
    all(s, "RUN").some((r) => /deno (task compile|compile)\b/.test(r.args))
  );
  assert(build, "a stage runs deno compile (or deno task compile)");
  assert(
    all(build, "RUN").some((r) =>
      /deno (install|cache)\b.*--frozen|--frozen.*deno (install|cache)/.test(r.args)
    ) &&
      /--frozen/.test(denoJson.tasks.compile),
    "dependencies are installed and compiled --frozen against deno.lock",
  );
  const copied: string[] = [];
  for (const ins of all(build, "COPY")) {
    const { flags: f, rest } = flags(ins.args);
    if (f.from) continue;
    for (const p of (execForm(rest) ?? words(rest)).slice(0, -1)) {
      copied.push(posix.normalize(p).replace(/\/$/, ""));
    }
  }
  const info = await new Deno.Command(Deno.execPath(), {
    args: ["info", "--json", "main.ts"],
    cwd: ROOT,
    stdout: "piped",
    stderr: "piped",
  }).output();
  assert(info.success, new TextDecoder().decode(info.stderr));
  const graph = JSON.parse(new TextDecoder().decode(info.stdout)).modules as {
    specifier: string;
    npmPackage?: string;
  }[];
  const modules = graph.map((m) => m.specifier).filter((s) => s.startsWith("file://"))
    .map((s) => posix.relative(ROOT, new URL(s).pathname));
  assert(modules.includes("main.ts") && modules.includes("lib/ops/server.ts"));
  // Test-only npm imports (deno.json) must stay out of the binary.
  const npm = graph.flatMap((m) => (m.npmPackage ? [m.npmPackage] : []));
  assert(npm.length > 0, "deno info lists main.ts's npm packages");
  for (const pkg of ["yaml", "openai", "@anthropic-ai/sdk"]) {
    assert(!npm.some((p) => p.startsWith(`${pkg}@`)), `main.ts pulls in the test-only ${pkg}`);
  }
  for (const need of [...modules, "deno.json", "deno.lock"]) {
    assert(
      copied.some((c) => need === c || need.startsWith(c + "/")),
      `the build stage does not COPY ${need} (it copies ${copied.join(", ")})`,
    );
  }
});

Deno.test("docker: binary, models.json and the KV volume are where the config looks", () => {
  const produced = producedPaths().get(final)!;
  const workdir = withWorkdir(final).at(-1)?.cwd ?? "/";
  const env = stageEnv(final);
  const entrypoint = execForm(one(final, "ENTRYPOINT").args);
  assert(entrypoint, "ENTRYPOINT is exec form (signals reach the gateway)");
  assert(produced.some((p) => p.path === entrypoint[0]), `${entrypoint[0]} is copied in`);
  assertEquals(execForm(one(final, "CMD").args), ["serve"]);

  const models = posix.resolve(workdir, env.get("MODELS_CONFIG") ?? CONFIG_DEFAULTS.modelsPath);
  assert(produced.some((p) => p.path === models), `the image has ${models} (MODELS_CONFIG)`);

  const kvPath = posix.resolve(workdir, env.get("KV_PATH") ?? CONFIG_DEFAULTS.kvPath);
  const volumes = all(final, "VOLUME").flatMap((v) => execForm(v.args) ?? words(v.args));
  assert(
    volumes.some((v) => kvPath.startsWith(v.replace(/\/$/, "") + "/")),
    `KV_PATH ${kvPath} is under a VOLUME (${volumes.join(", ")})`,
  );
  const user = one(final, "USER").args;
  for (const v of volumes) {
    const dir = produced.find((p) => p.path === v.replace(/\/$/, ""));
    assert(dir, `the image creates ${v} (distroless has no mkdir: COPY it from the build stage)`);
    assertEquals(dir.owner, user, `${v} must be owned by the runtime user ${user} to be writable`);
  }
});

Deno.test("docker: compose mounts paths that exist or that the gateway creates", async () => {
  const workdir = withWorkdir(final).at(-1)?.cwd ?? "/";
  const env = new Map([...stageEnv(final), ...composeEnv(gateway)]);
  const models = posix.resolve(workdir, env.get("MODELS_CONFIG") ?? CONFIG_DEFAULTS.modelsPath);
  const kvDir = posix.dirname(posix.resolve(workdir, env.get("KV_PATH") ?? CONFIG_DEFAULTS.kvPath));
  const mounts = (gateway.volumes as string[]).map((v) => {
    const [host, target, mode] = String(v).split(":");
    return { host, target, mode };
  });
  const byTarget = new Map(mounts.map((m) => [m.target, m]));
  const m = byTarget.get(models);
  assert(m, `compose mounts models.json at ${models} (MODELS_CONFIG)`);
  assertEquals(m.host, "./models.json");
  assertEquals(m.mode, "ro", "models.json is mounted read-only");
  const kv = byTarget.get(kvDir);
  assert(kv, `compose mounts the KV folder ${kvDir}`);
  assertEquals(kv.host, "./data");
  for (const { host, target } of mounts) {
    assert(host.startsWith("./"), `bind mounts are relative to the repo: ${host}`);
    const exists = await Deno.stat(`${ROOT}/${host}`).then(() => true, () => false);
    // ./data is created on start: Docker makes a missing bind-mount folder, and the gateway
    // mkdirs the KV_PATH folder.
    assert(exists || target === kvDir, `${host} does not exist and nothing creates it`);
  }
  const volumes = all(final, "VOLUME").flatMap((v) => execForm(v.args) ?? words(v.args));
  assert(volumes.includes(kvDir), `the ./data mount target ${kvDir} is the image's VOLUME`);
});

Deno.test("docker: compose builds this Dockerfile as llm-gateway:latest, restarts unless stopped", () => {
  assertEquals(gateway.build, ".");
  assertEquals(gateway.image, "llm-gateway:latest");
  assertEquals(gateway.restart, "unless-stopped");
  const logging = gateway.logging as Record<string, Yaml>;
  assert(
    logging?.driver && (logging.options as Record<string, Yaml>)?.["max-size"],
    "log rotation",
  );
});

// ---------------------------------------------------------------------------
// Port, health check, shutdown.

Deno.test("docker: EXPOSE and the published port are the config's default port", () => {
  assertEquals(CONFIG_DEFAULTS.port, 8180);
  const exposed = all(final, "EXPOSE").flatMap((e) => words(e.args)).map((p) => p.split("/")[0]);
  assertEquals(exposed, [String(CONFIG_DEFAULTS.port)]);
  const envPort = composeEnv(gateway).get("PORT") ?? stageEnv(final).get("PORT");
  const listens = envPort ? Number(envPort) : CONFIG_DEFAULTS.port;
  assertEquals(listens, CONFIG_DEFAULTS.port, "the container listens on the default port");
  const ports = (gateway.ports as Yaml[]).map(String);
  assertEquals(ports.length, 1);
  const parts = ports[0].replace(/\/tcp$/, "").split(":");
  assertEquals(Number(parts.at(-1)), listens, "the container side of the mapping");
  assertEquals(Number(parts.at(-2)), CONFIG_DEFAULTS.port, "published on the host as 8180");
});

Deno.test("docker: HEALTHCHECK and compose's healthcheck run the binary's healthcheck command", () => {
  const hc = one(final, "HEALTHCHECK");
  const { flags: opts, rest } = flags(hc.args);
  const m = /^CMD\s+(.*)$/s.exec(rest);
  assert(m, "HEALTHCHECK CMD ...");
  const cmd = execForm(m[1]);
  assert(cmd, "HEALTHCHECK is exec form (the distroless image has no shell)");
  const entrypoint = execForm(one(final, "ENTRYPOINT").args)!;
  assertEquals(cmd, [entrypoint[0], "healthcheck"]);

  const chk = gateway.healthcheck as Record<string, Yaml>;
  const test = chk.test as string[];
  assertEquals(test[0], "CMD", "compose healthcheck is exec form (CMD, not CMD-SHELL)");
  assertEquals(test.slice(1), cmd, "compose and Dockerfile health checks agree");
  for (
    const [flag, key] of [["interval", "interval"], ["timeout", "timeout"], [
      "start-period",
      "start_period",
    ]]
  ) {
    assertEquals(durationMs(String(chk[key])), durationMs(opts[flag]), `health check ${flag}`);
  }
  assertEquals(Number(chk.retries), Number(opts.retries), "health check retries");
});

Deno.test("docker: main.ts --help lists the serve and healthcheck commands the image runs", async () => {
  const { code, out } = await runMain(["--help"], { PORT: "0" });
  assertEquals(code, 0, `main.ts --help exited ${code}: ${out.slice(0, 500)}`);
  for (const cmd of ["serve", "healthcheck"]) {
    assert(new RegExp(`^\\s+${cmd}\\b`, "m").test(out), `--help does not list ${cmd}:\n${out}`);
  }
});

Deno.test("docker: `healthcheck` exits 0 only when the server on $PORT answers /health ok", async () => {
  let status = 200;
  // A stand-in gateway: only /health, answering ok or degraded.
  const server = fakeUpstream((s) =>
    s.path === "/health"
      ? Response.json({ status: status === 200 ? "ok" : "degraded" }, { status })
      : new Response("no", { status: 404 })
  );
  const port = new URL(server.url).port;
  try {
    const ok = await runMain(["healthcheck"], { PORT: port });
    assertEquals(ok.code, 0, `healthcheck against a healthy server: ${ok.out}`);
    status = 503;
    const degraded = await runMain(["healthcheck"], { PORT: port });
    assert(degraded.code !== 0, "healthcheck fails when /health answers 503");
  } finally {
    await server.close();
  }
  const down = await runMain(["healthcheck"], { PORT: port });
  assert(down.code !== 0, "healthcheck fails when nothing listens");
});

Deno.test("docker: stop_grace_period outlasts the gateway's shutdown grace", () => {
  const env = new Map([...stageEnv(final), ...composeEnv(gateway)]);
  const grace = env.has("SHUTDOWN_GRACE_MS")
    ? Number(env.get("SHUTDOWN_GRACE_MS"))
    : CONFIG_DEFAULTS.shutdownGraceMs;
  const stop = durationMs(String(gateway.stop_grace_period));
  // After the grace period the gateway aborts what is left (up to 5 s), waits for the server
  // to close (up to 5 s) and writes usage: Docker must not SIGKILL it before that.
  assert(
    stop > grace + 10_000,
    `stop_grace_period ${stop} ms <= SHUTDOWN_GRACE_MS ${grace} + 10 s`,
  );
  for (const s of all(final, "STOPSIGNAL")) assertEquals(s.args, "SIGTERM");
});

// ---------------------------------------------------------------------------
// Image.

Deno.test("docker: build on the project's Deno version, run as non-root on glibc", () => {
  const build = dockerfile[0];
  const m = /^denoland\/deno:(\d+\.\d+\.\d+)$/.exec(build.base);
  assert(m, `the build stage is FROM denoland/deno:<version>, not ${build.base}`);
  const ci = [...read(".ci/run").matchAll(/deno@(\d+\.\d+\.\d+)/g)].map((x) => x[1]);
  const readme = [...read("README.md").matchAll(/deno@(\d+\.\d+\.\d+)/g)].map((x) => x[1]);
  assert(ci.length && readme.length, "README and .ci/run name a Deno version");
  for (const v of [...ci, ...readme]) {
    assertEquals(m[1], v, "Deno version: Dockerfile vs README/.ci/run");
  }
  assert(dockerfile.length >= 2, "multi-stage");
  assert(
    /^gcr\.io\/distroless\/cc-debian\d+(:[\w.-]+)?(@sha256:\w+)?$|^debian:[\w.-]*slim$/.test(
      final.base,
    ),
    `the runtime image is distroless cc or debian slim (glibc), not ${final.base}`,
  );
  const user = one(final, "USER").args;
  const [uid] = user.split(":");
  assert(uid !== "root" && uid !== "0" && uid !== "", `USER ${user} is root`);
});
