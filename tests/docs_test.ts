/**
 * The documentation as a reader meets it: README stays a short entry point,
 * every relative link and anchor in README.md, docs/*.md and bench/README.md
 * leads somewhere that exists in this repository, every page in docs/ is
 * reachable from README, nothing cites a document outside the repository,
 * and README still gives the exact commands CI and users run.
 */
import { assert, assertEquals } from "./support/assert.ts";

const ROOT = new URL("..", import.meta.url);
const README_LIMIT = 16 * 1024;

function read(path: string): string {
  return Deno.readTextFileSync(new URL(path, ROOT));
}

function exists(url: URL): boolean {
  try {
    Deno.statSync(url);
    return true;
  } catch {
    return false;
  }
}

/** The documentation files checked, relative to the repository root. */
function docFiles(): string[] {
  const docs = [...Deno.readDirSync(new URL("docs/", ROOT))]
    .filter((e) => e.isFile && e.name.endsWith(".md"))
    .map((e) => `docs/${e.name}`)
    .sort();
  return ["README.md", ...docs, "bench/README.md"];
}

/** The text outside fenced code blocks and inline code spans, line by line. */
function prose(md: string): string[] {
  const out: string[] = [];
  let fence: string | undefined;
  for (const line of md.split("\n")) {
    const m = /^\s*(`{3,}|~{3,})/.exec(line);
    if (m) {
      if (!fence) fence = m[1][0];
      else if (m[1][0] === fence) fence = undefined;
      out.push("");
      continue;
    }
    out.push(fence ? "" : line.replace(/(`+)[^`]*?\1/g, ""));
  }
  return out;
}

/** GitHub's anchor for a heading: lower case, punctuation dropped, spaces as hyphens. */
function slug(heading: string): string {
  return heading
    .replace(/\[([^\]]*)\]\([^)]*\)/g, "$1")
    .trim()
    .toLowerCase()
    .replace(/[^\p{L}\p{M}\p{N}\p{Pc}\- ]/gu, "")
    .replace(/ /g, "-");
}

/** Every anchor a Markdown file defines, with GitHub's suffixes for repeated headings. */
function anchors(md: string): Set<string> {
  const seen = new Map<string, number>();
  const out = new Set<string>();
  let fence: string | undefined;
  for (const line of md.split("\n")) {
    const f = /^\s*(`{3,}|~{3,})/.exec(line);
    if (f) {
      if (!fence) fence = f[1][0];
      else if (f[1][0] === fence) fence = undefined;
      continue;
    }
    if (fence) continue;
    const h = /^#{1,6}\s+(.*?)\s*#*\s*$/.exec(line);
    if (!h) continue;
    const base = slug(h[1]);
    const n = seen.get(base) ?? 0;
    seen.set(base, n + 1);
    out.add(n === 0 ? base : `${base}-${n}`);
  }
  return out;
}

interface Link {
  file: string;
  line: number;
  target: string;
}

/** Inline (`[text](target)`) and reference (`[id]: target`) links outside code. */
function links(file: string, md: string): Link[] {
  const out: Link[] = [];
  prose(md).forEach((text, i) => {
    for (const m of text.matchAll(/\]\(\s*<?([^)\s>]*)>?(?:\s+"[^"]*")?\s*\)/g)) {
      out.push({ file, line: i + 1, target: m[1] });
    }
    const ref = /^\s*\[[^\]]+\]:\s*<?(\S+?)>?(\s|$)/.exec(text);
    if (ref) out.push({ file, line: i + 1, target: ref[1] });
  });
  return out;
}

const anchorCache = new Map<string, Set<string>>();
function anchorsOf(url: URL): Set<string> {
  let a = anchorCache.get(url.href);
  if (!a) {
    a = anchors(Deno.readTextFileSync(url));
    anchorCache.set(url.href, a);
  }
  return a;
}

/** Why a relative link does not resolve, or undefined when it does. */
function brokenLink(link: Link): string | undefined {
  const { target } = link;
  if (/^[a-z][a-z0-9+.-]*:/i.test(target)) return undefined; // https:, mailto:, ...
  if (target === "") return "empty link";
  const from = new URL(link.file, ROOT);
  const [path, anchor] = target.split("#", 2) as [string, string | undefined];
  const url = path === "" ? from : new URL(decodeURI(path), from);
  if (!url.href.startsWith(ROOT.href)) return `${target} points outside the repository`;
  if (!exists(url)) return `${target}: no such file`;
  if (anchor === undefined) return undefined;
  if (!url.pathname.endsWith(".md")) return `${target}: an anchor into a file that is not Markdown`;
  if (!anchorsOf(url).has(decodeURIComponent(anchor))) {
    return `${target}: no heading with anchor #${anchor}`;
  }
  return undefined;
}

Deno.test("docs: the GitHub anchor rule this test relies on", () => {
  assertEquals(slug("Iterations: compaction and advisor"), "iterations-compaction-and-advisor");
  assertEquals(slug("Injected include_usage"), "injected-include_usage");
  assertEquals(slug("models.json reference"), "modelsjson-reference");
  assertEquals(slug("Running it: binary, Docker, compose"), "running-it-binary-docker-compose");
  assertEquals([...anchors("# A\n## B\n```\n# not a heading\n```\n## B\n")], ["a", "b", "b-1"]);
});

Deno.test("docs: README is an entry point under 16 KB", () => {
  const size = new TextEncoder().encode(read("README.md")).length;
  assert(size <= README_LIMIT, `README.md is ${size} bytes; move reference material to docs/`);
});

Deno.test("docs: every relative link and anchor resolves inside the repository", () => {
  const broken: string[] = [];
  let checked = 0;
  for (const file of docFiles()) {
    for (const link of links(file, read(file))) {
      checked++;
      const why = brokenLink(link);
      if (why) broken.push(`${link.file}:${link.line}: ${why}`);
    }
  }
  assert(checked > 50, `only ${checked} links found: is the link reader broken?`);
  assertEquals(broken, []);
});

Deno.test("docs: every page in docs/ is linked from README", () => {
  const linked = new Set(
    links("README.md", read("README.md")).map((l) => l.target.split("#")[0]),
  );
  const missing = docFiles().filter((f) => f.startsWith("docs/") && !linked.has(f));
  assertEquals(missing, [], "add these to README's documentation map");
});

Deno.test("docs: nothing cites a document outside the repository or a tracker issue", () => {
  const outside = [
    /\.\.\/shared\b/,
    /\bUSAGE_RULES\.md\b/,
    /\bADMIN_API\.md\b/,
    /\bSOURCES\.md\b/,
    /\bLuna(?: API Proxy)?'s README\b/i,
    /\bissue[- ]#?\d+/i,
    /(^|[\s(])#\d+\b/,
  ];
  const found: string[] = [];
  for (const file of docFiles()) {
    read(file).split("\n").forEach((line, i) => {
      if (outside.some((re) => re.test(line))) found.push(`${file}:${i + 1}: ${line.trim()}`);
    });
  }
  assertEquals(found, []);
});

Deno.test("docs: README gives the exact start command and the test command CI runs", () => {
  const readme = read("README.md");
  // Besides setting up the machine (a browser for the dashboard tests), CI runs one command.
  const ci = read(".ci/run").split("\n").map((l) => l.trim()).filter((l) => / task test$/.test(l));
  assertEquals(ci.length, 1, ".ci/run runs one test command");
  assert(readme.includes(`\n${ci[0]}\n`), `README does not give CI's command: ${ci[0]}`);
  const start = ci[0].replace(/ task test$/, " task start");
  assert(start !== ci[0] && readme.includes(`\n${start}\n`), `README does not give: ${start}`);
});
