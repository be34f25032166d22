/**
 * A Dockerfile reader for the Docker contract test (no Docker engine runs on
 * our machines): stages of instructions with continuations joined and
 * comments dropped, plus the small parsers instruction arguments need
 * (shell words, exec form, `--flag=value` prefixes, Go-style durations).
 */
import { assert } from "./assert.ts";

/** One instruction: its keyword (upper case), its argument text and its first line. */
export interface Instruction {
  cmd: string;
  args: string;
  line: number;
}

/** One build stage: its base image, its `AS` name and its instructions. */
export interface Stage {
  name?: string;
  base: string;
  instructions: Instruction[];
}

/** Splits a Dockerfile into stages of instructions (continuations joined, comments dropped). */
export function parseDockerfile(src: string): Stage[] {
  const stages: Stage[] = [];
  let buf = "";
  let start = 0;
  src.split(/\r?\n/).forEach((raw, i) => {
    const t = raw.trim();
    if (t.startsWith("#") || t === "") return;
    if (!buf) start = i + 1;
    if (t.endsWith("\\")) {
      buf += t.slice(0, -1) + " ";
      return;
    }
    buf += t;
    const m = /^(\S+)\s*(.*)$/s.exec(buf.trim())!;
    buf = "";
    const ins = { cmd: m[1].toUpperCase(), args: m[2].trim(), line: start };
    if (ins.cmd === "FROM") {
      const f = /^(?:--\S+\s+)*(\S+)(?:\s+AS\s+(\S+))?$/i.exec(ins.args);
      if (!f) throw new Error(`Dockerfile:${start}: cannot read FROM ${ins.args}`);
      stages.push({ base: f[1], name: f[2], instructions: [] });
    } else if (!stages.length) {
      if (ins.cmd !== "ARG") throw new Error(`Dockerfile:${start}: ${ins.cmd} before FROM`);
    } else stages.at(-1)!.instructions.push(ins);
  });
  return stages;
}

/** Splits shell-like words, honouring quotes. */
export function words(s: string): string[] {
  const out: string[] = [];
  const re = /"((?:[^"\\]|\\.)*)"|'([^']*)'|(\S+)/g;
  for (const m of s.matchAll(re)) out.push(m[1] ?? m[2] ?? m[3]);
  return out;
}

/** An exec-form JSON array, or undefined for shell form. */
export function execForm(args: string): string[] | undefined {
  if (!args.startsWith("[")) return undefined;
  const v = JSON.parse(args);
  assert(Array.isArray(v) && v.every((x) => typeof x === "string"), `bad exec form ${args}`);
  return v;
}

/** `--name=value` flags at the start of an instruction, and what follows them. */
export function flags(args: string): { flags: Record<string, string>; rest: string } {
  const out: Record<string, string> = {};
  let rest = args;
  for (;;) {
    const m = /^--([a-z-]+)(?:=(\S+))?\s*/.exec(rest);
    if (!m) break;
    out[m[1]] = m[2] ?? "true";
    rest = rest.slice(m[0].length);
  }
  return { flags: out, rest };
}

/** Go-style durations as Docker and compose write them ("1m30s", "45s", "500ms"), in ms. */
export function durationMs(v: string): number {
  const units: Record<string, number> = { h: 3600_000, m: 60_000, s: 1000, ms: 1, us: 1e-3 };
  let total = 0;
  const s = v.replace(/([\d.]+)(ms|us|h|m|s)/g, (_, n, u) => {
    total += Number(n) * units[u];
    return "";
  });
  assert(s === "" && v !== "", `cannot read duration ${JSON.stringify(v)}`);
  return total;
}
