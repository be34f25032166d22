/** Aligned text tables for command output. */

/**
 * Formats rows as an aligned text table: columns separated by two spaces,
 * numeric columns right-aligned, no trailing blanks.
 */
export function table(head: string[], rows: (string | number)[][]): string[] {
  const cells = [head, ...rows.map((r) => r.map(String))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const numeric = head.map((_, i) =>
    rows.length > 0 && rows.every((r) => typeof r[i] === "number")
  );
  return cells.map((r) =>
    r.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ").trimEnd()
  );
}

/** An ISO time as `YYYY-MM-DD HH:MM:SS` (UTC), or "-" when absent. */
export function shortTime(iso: string | null | undefined): string {
  return iso ? iso.slice(0, 19).replace("T", " ") : "-";
}
