/** Aligned text tables for command output. */

/** A table cell: text, a number, a {@link decimal}, or null (shown as "-", "not known"). */
export type Cell = string | number | Decimal | null;

/** A number shown with a fixed count of decimals (aligned on the right like numbers). */
export interface Decimal {
  readonly decimal: string;
}

/** `n` with `digits` decimals, as a right-aligned table cell. */
export function decimal(n: number, digits: number): Decimal {
  return { decimal: n.toFixed(digits) };
}

function text(c: Cell): string {
  if (c === null) return "-";
  return typeof c === "object" ? c.decimal : String(c);
}

/**
 * Formats rows as an aligned text table: columns separated by two spaces,
 * numeric columns (numbers, decimals and unknowns) right-aligned, no
 * trailing blanks.
 */
export function table(head: string[], rows: Cell[][]): string[] {
  const cells = [head, ...rows.map((r) => r.map(text))];
  const widths = head.map((_, i) => Math.max(...cells.map((r) => r[i].length)));
  const numeric = head.map((_, i) =>
    rows.length > 0 && rows.every((r) => typeof r[i] === "number" || typeof r[i] === "object")
  );
  return cells.map((r) =>
    r.map((c, i) => (numeric[i] ? c.padStart(widths[i]) : c.padEnd(widths[i]))).join("  ").trimEnd()
  );
}

/** An ISO time as `YYYY-MM-DD HH:MM:SS` (UTC), or "-" when absent. */
export function shortTime(iso: string | null | undefined): string {
  return iso ? iso.slice(0, 19).replace("T", " ") : "-";
}
