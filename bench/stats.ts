/** Small statistics helpers for the benchmark: medians, percentiles, ratios. */

/** The median of the finite values, or NaN when there are none. */
export function median(values: number[]): number {
  return percentile(values, 50);
}

/** The p-th percentile (0..100, nearest rank) of the finite values, or NaN when there are none. */
export function percentile(values: number[], p: number): number {
  const v = values.filter(Number.isFinite).sort((a, b) => a - b);
  if (v.length === 0) return NaN;
  if (p === 50 && v.length % 2 === 0) return (v[v.length / 2 - 1] + v[v.length / 2]) / 2;
  const rank = Math.ceil((p / 100) * v.length);
  return v[Math.min(v.length - 1, Math.max(0, rank - 1))];
}

/** `a / b`, or NaN when `b` is not a positive number. */
export function ratio(a: number, b: number): number {
  return b > 0 && Number.isFinite(a) ? a / b : NaN;
}

/** The largest finite value, or NaN. */
export function max(values: number[]): number {
  const v = values.filter(Number.isFinite);
  return v.length ? Math.max(...v) : NaN;
}
