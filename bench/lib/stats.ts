// Small helpers shared by the benchmarks: percentiles and one shape for every measured figure.

export function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

export function median(samples: number[]): number {
  return percentile([...samples].sort((a, b) => a - b), 50);
}

export interface Spread {
  runs: number;
  median: number;
  p99: number;
}

export function spread(samples: number[]): Spread {
  const s = [...samples].sort((a, b) => a - b);
  return { runs: s.length, median: percentile(s, 50), p99: percentile(s, 99) };
}

/** true when the bench runs in its short mode (BENCH_QUICK=1): fewer runs, shorter loads */
export const QUICK = process.env.BENCH_QUICK === '1';
