import type { Logger } from './log.js';

// Warnings about refused requests, aggregated per source. Refusals are what an attacker can make
// us do as often as they like: one warning line per wrong-key poll filled 5.8 MB of logs a
// minute. Here the first refusal from a source in a period is logged at once (an operator sees a
// misconfigured kiosk immediately), the rest are counted, and at the end of the period one line
// per source says how many more there were and why. The table of sources is bounded: past
// `maxSources`, the others are counted together under "other sources".

export interface RefusalLogOptions {
  logger: Logger;
  /** length of a period, ms (default 60 000: one line per source per minute) */
  periodMs?: number;
  maxSources?: number;
}

interface Tally {
  count: number;
  reasons: Map<string, number>;
}

const OTHERS = 'other sources';

export class RefusalLog {
  private readonly tallies = new Map<string, Tally>();
  /** sources still refused when the last period ended: a continuing flood gets no "first" line */
  private continuing = new Set<string>();
  private readonly timer: NodeJS.Timeout;
  private readonly maxSources: number;

  constructor(private readonly o: RefusalLogOptions) {
    this.maxSources = o.maxSources ?? 1000;
    this.timer = setInterval(() => this.flush(), o.periodMs ?? 60_000);
    this.timer.unref();
  }

  /**
   * A refusal from `source`. `reason` is short and stable ("wrong POS key", "rate limited") so it
   * can be counted; `message` is the full sentence logged for the first one of the period.
   */
  note(source: string, reason: string, message: string, fields: Record<string, unknown> = {}): void {
    let key = source;
    if (!this.tallies.has(key) && this.tallies.size >= this.maxSources) key = OTHERS;
    const t = this.tallies.get(key);
    if (!t) {
      if (this.continuing.has(key)) {
        this.tallies.set(key, { count: 1, reasons: new Map([[reason, 1]]) });
        return;
      }
      // first of the period: said now, in full
      this.tallies.set(key, { count: 0, reasons: new Map() });
      this.o.logger.warn({ remote: source, reason, ...fields }, message);
      return;
    }
    t.count++;
    t.reasons.set(reason, (t.reasons.get(reason) ?? 0) + 1);
  }

  /** Logs one line per source that had more refusals this period, and starts a new period. */
  flush(): void {
    const continuing = new Set<string>();
    for (const [source, t] of this.tallies) {
      if (t.count === 0) continue;
      continuing.add(source);
      const why = [...t.reasons].map(([r, n]) => `${n} ${r}`).join(', ');
      this.o.logger.warn({ remote: source, refused: t.count, reasons: Object.fromEntries(t.reasons) }, `${t.count} ${t.count === 1 ? 'request' : 'requests'} from ${source} refused in the last period (${why})`);
    }
    this.tallies.clear();
    this.continuing = continuing;
  }

  close(): void {
    clearInterval(this.timer);
    this.flush();
  }
}
