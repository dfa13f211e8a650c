import type { AlertCondition } from '../../core/alert.js';

// Which alert conditions hold right now, from facts the relay already has. A pure function of its
// inputs, so every rule is tested on its own with made-up fleets and clocks; the alert manager
// turns "holds now" into "fired once" and "cleared once".

export interface AlertRulesConfig {
  /** a kiosk without a live link for this long is offline */
  offlineAfterMinutes: number;
  /** no sale for this many hours inside the kiosk's usual hours */
  noSalesHours: number;
  /** an hour of the day is "usual" for a kiosk when it sold in that hour on at least this many of the last 14 days */
  usualHourMinDays: number;
  /** this many failed vends in a row (no success between) */
  vendFailuresInRow: number;
  /** IANA time zone the usual hours are counted in (the operator's, not the server's) */
  timeZone: string;
}

export const DEFAULT_ALERT_RULES: AlertRulesConfig = {
  offlineAfterMinutes: 10,
  noSalesHours: 4,
  usualHourMinDays: 4,
  vendFailuresInRow: 3,
  timeZone: 'America/Argentina/Buenos_Aires',
};

export interface KioskFacts {
  kioskId: string;
  /** the kiosk has a live link on some relay instance */
  online: boolean;
  /** when it was last connected or heard from; null when never */
  lastSeenAt: number | null;
  /** out of service on purpose: no offline or no-sales alerts */
  inService: boolean;
  faults: Array<{ code: string; message: string; since: number }>;
  /** outcomes of its latest vends, newest first */
  recentVends: Array<'dispensed' | 'failed'>;
  /** times of its sales (dispensed) over the last 14 days, any order */
  salesTimes: number[];
}

export interface FailingRefundFacts {
  refundKey: string;
  orderId: string;
  kioskId: string;
  error: string;
  gaveUp: boolean;
}

export interface AlertFacts {
  kiosks: KioskFacts[];
  failingRefunds: FailingRefundFacts[];
}

const HOUR = 3_600_000;
const DAY = 24 * HOUR;

/** The hour of day (0-23) and calendar day of `t` in `timeZone`. */
export function localHour(t: number, timeZone: string): { hour: number; day: string } {
  const parts = hourFormat(timeZone).formatToParts(new Date(t));
  const get = (type: string) => parts.find((p) => p.type === type)?.value ?? '';
  return { hour: Number(get('hour')) % 24, day: `${get('year')}-${get('month')}-${get('day')}` };
}

const formats = new Map<string, Intl.DateTimeFormat>();
function hourFormat(timeZone: string): Intl.DateTimeFormat {
  let f = formats.get(timeZone);
  if (!f) {
    f = new Intl.DateTimeFormat('en-CA', { timeZone, year: 'numeric', month: '2-digit', day: '2-digit', hour: '2-digit', hourCycle: 'h23' });
    formats.set(timeZone, f);
  }
  return f;
}

/** Hours of the day in which the kiosk sold on at least `minDays` distinct days of the last 14. */
export function usualHours(salesTimes: number[], now: number, cfg: Pick<AlertRulesConfig, 'usualHourMinDays' | 'timeZone'>): Set<number> {
  const daysByHour = new Map<number, Set<string>>();
  for (const t of salesTimes) {
    if (t > now || t < now - 14 * DAY) continue;
    const { hour, day } = localHour(t, cfg.timeZone);
    let days = daysByHour.get(hour);
    if (!days) daysByHour.set(hour, (days = new Set()));
    days.add(day);
  }
  const usual = new Set<number>();
  for (const [hour, days] of daysByHour) if (days.size >= cfg.usualHourMinDays) usual.add(hour);
  return usual;
}

export function evaluateAlerts(facts: AlertFacts, cfg: AlertRulesConfig, now: number): AlertCondition[] {
  const out: AlertCondition[] = [];
  for (const k of facts.kiosks) {
    const offlineFor = k.online ? 0 : k.lastSeenAt === null ? Infinity : now - k.lastSeenAt;
    // a kiosk never seen is not "offline": it was never installed (the console lists it as new)
    if (k.inService && !k.online && k.lastSeenAt !== null && offlineFor >= cfg.offlineAfterMinutes * 60_000) {
      out.push({
        kind: 'kiosk_offline',
        subject: k.kioskId,
        kioskId: k.kioskId,
        summary: `kiosk ${k.kioskId} offline for ${Math.floor(offlineFor / 60_000)} minutes`,
        facts: { lastSeenAt: new Date(k.lastSeenAt).toISOString(), thresholdMinutes: cfg.offlineAfterMinutes },
      });
    }
    if (k.inService && k.online) {
      const windowStart = now - cfg.noSalesHours * HOUR;
      const lastSale = k.salesTimes.reduce((m, t) => (t <= now && t > m ? t : m), 0);
      if (lastSale < windowStart) {
        const usual = usualHours(k.salesTimes, now, cfg);
        let usualInWindow = 0;
        for (let t = windowStart; t < now; t += HOUR) if (usual.has(localHour(t, cfg.timeZone).hour)) usualInWindow++;
        // most of the window is the kiosk's selling time, and it sold nothing in it
        if (usual.size > 0 && usualInWindow * 2 >= cfg.noSalesHours) {
          out.push({
            kind: 'no_sales',
            subject: k.kioskId,
            kioskId: k.kioskId,
            summary: `kiosk ${k.kioskId}: no sales for ${cfg.noSalesHours} hours in its usual selling hours`,
            facts: { lastSaleAt: lastSale ? new Date(lastSale).toISOString() : null, usualHoursInWindow: usualInWindow, hours: cfg.noSalesHours },
          });
        }
      }
    }
    let failedInRow = 0;
    for (const v of k.recentVends) {
      if (v !== 'failed') break;
      failedInRow++;
    }
    if (failedInRow >= cfg.vendFailuresInRow) {
      out.push({
        kind: 'vend_failures',
        subject: k.kioskId,
        kioskId: k.kioskId,
        summary: `kiosk ${k.kioskId}: the last ${failedInRow} vends failed`,
        facts: { failedInRow, threshold: cfg.vendFailuresInRow },
      });
    }
    for (const f of k.faults) {
      out.push({
        kind: 'hardware_fault',
        subject: `${k.kioskId}/${f.code}`,
        kioskId: k.kioskId,
        summary: `kiosk ${k.kioskId}: ${f.message}`,
        facts: { code: f.code, since: new Date(f.since).toISOString() },
      });
    }
  }
  for (const r of facts.failingRefunds) {
    out.push({
      kind: 'refund_failing',
      subject: r.refundKey,
      kioskId: r.kioskId,
      summary: `refund of order ${r.orderId} ${r.gaveUp ? 'failed for good' : 'keeps failing'}: ${r.error}`,
      facts: { orderId: r.orderId, error: r.error, gaveUp: r.gaveUp },
    });
  }
  return out;
}
