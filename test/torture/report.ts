import { percentile } from './cycle.js';

// What a suite run hands back and prints: enough to fill docs/reliability.md and to replay.

export interface SuiteReport {
  suite: string;
  seed: number;
  model: string;
  cycles: number;
  /** faults injected, by kind */
  faults: Record<string, number>;
  violations: string[];
  /** payment to `dispensed` on the kiosk, over the cycles that dispensed */
  payToDispenseMs?: { n: number; p50?: number; p99?: number; max?: number };
  durationMs: number;
  /** suite-specific figures (soak memory, fuzz cases...) */
  extra?: Record<string, unknown>;
}

export function latencyFigures(samples: number[]): SuiteReport['payToDispenseMs'] {
  return { n: samples.length, p50: percentile(samples, 50), p99: percentile(samples, 99), max: samples.length ? Math.max(...samples) : undefined };
}

/**
 * A run cut short by its time budget (--minutes): what it reached. Its report's `cycles` is the
 * cycles it ran, so the replay line replays exactly those (each cycle draws from its own fork of
 * the seed, `cycle<n>`, whatever the run's length).
 */
export function stoppedBy(done: number, o: { cycles: number; minutes?: number }): { stoppedBy?: string } {
  return done < o.cycles ? { stoppedBy: `the ${o.minutes}-minute budget, at ${done} of ${o.cycles} cycles` } : {};
}

export function bump(faults: Record<string, number>, kind: string, n = 1): void {
  faults[kind] = (faults[kind] ?? 0) + n;
}

export function formatReport(r: SuiteReport): string {
  const lines = [
    `suite ${r.suite}  seed ${r.seed}  model ${r.model}  cycles ${r.cycles}  ${(r.durationMs / 1000).toFixed(1)} s`,
    `  faults injected: ${Object.entries(r.faults).map(([k, n]) => `${k} ${n}`).join(', ') || 'none'} (total ${Object.values(r.faults).reduce((a, b) => a + b, 0)})`,
  ];
  if (r.payToDispenseMs) {
    const l = r.payToDispenseMs;
    lines.push(`  payment -> dispensed: n ${l.n}, p50 ${l.p50 ?? '-'} ms, p99 ${l.p99 ?? '-'} ms, max ${l.max ?? '-'} ms`);
  }
  if (r.extra) for (const [k, v] of Object.entries(r.extra)) lines.push(`  ${k}: ${typeof v === 'string' ? v : JSON.stringify(v)}`);
  lines.push(`  violations: ${r.violations.length}`);
  for (const v of r.violations.slice(0, 50)) lines.push(`    ${v}`);
  lines.push(`  replay: npm run torture -- ${r.suite} --cycles ${r.cycles} --seed ${r.seed}${r.model !== 'unattended' && r.suite !== 'fuzz' ? ` --model ${r.model}` : ''}`);
  return lines.join('\n');
}
