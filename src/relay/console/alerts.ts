import type { Logger } from '../../runtime/log.js';
import { alertKey, type AlertCondition } from '../../core/alert.js';
import type { AlertStore } from '../store/index.js';
import type { Channel } from './channels.js';
import { deliveriesFor } from './deliveries.js';
import { evaluateAlerts, type AlertFacts, type AlertRulesConfig } from './alert-rules.js';

// Turns "this condition holds now" into alerts that fire once and clear once. The open alerts are
// rows in the store, unique per condition key, so a restart, or a second relay instance running
// the same check, never fires the same alert twice: firing inserts the row and its deliveries in
// one transaction, and an insert that meets an open row for the key does nothing.

export interface AlertManagerOptions {
  store: AlertStore;
  channels: readonly Channel[];
  rules: AlertRulesConfig;
  /** gathers the facts (presence, vends, sales, faults, refunds) from the store and fleet view */
  facts: () => Promise<AlertFacts>;
  logger: Logger;
  now?: () => number;
  /** new deliveries were written: wake the delivery worker */
  onDeliveries?: () => void;
}

export class AlertManager {
  private readonly now: () => number;
  private checking: Promise<{ fired: number; cleared: number }> | undefined;

  constructor(private readonly o: AlertManagerOptions) {
    this.now = o.now ?? Date.now;
  }

  /** One check: fire what started, clear what ended. Overlapping calls share one run. */
  check(): Promise<{ fired: number; cleared: number }> {
    this.checking ??= this.checkOnce().finally(() => {
      this.checking = undefined;
    });
    return this.checking;
  }

  private async checkOnce(): Promise<{ fired: number; cleared: number }> {
    const at = this.now();
    const conditions = evaluateAlerts(await this.o.facts(), this.o.rules, at);
    const holding = new Map<string, AlertCondition>(conditions.map((c) => [alertKey(c), c]));
    const open = await this.o.store.openAlerts();
    const openKeys = new Set(open.map((a) => a.key));
    let fired = 0;
    let cleared = 0;
    for (const [key, c] of holding) {
      if (openKeys.has(key)) continue;
      const id = `alr_${at.toString(36)}_${Math.random().toString(36).slice(2, 10)}`;
      const data = { alertId: id, kind: c.kind, kioskId: c.kioskId, summary: c.summary, facts: c.facts, firedAt: new Date(at).toISOString() };
      const made = await this.o.store.fireAlert(
        { id, key, kind: c.kind, kioskId: c.kioskId, summary: c.summary, facts: c.facts, firedAt: at },
        deliveriesFor(this.o.channels, 'alert.fired', `alert:${id}`, data, at),
      );
      if (made) {
        fired++;
        this.o.logger.warn({ alertId: id, kind: c.kind, kioskId: c.kioskId }, `alert: ${c.summary}`);
      }
    }
    for (const a of open) {
      if (holding.has(a.key)) continue;
      const data = { alertId: a.id, kind: a.kind, kioskId: a.kioskId, summary: a.summary, facts: a.facts, firedAt: new Date(a.firedAt).toISOString(), clearedAt: new Date(at).toISOString() };
      if (await this.o.store.clearAlert(a.id, at, deliveriesFor(this.o.channels, 'alert.cleared', `alert:${a.id}`, data, at))) {
        cleared++;
        this.o.logger.info({ alertId: a.id, kind: a.kind, kioskId: a.kioskId }, `alert cleared: ${a.summary}`);
      }
    }
    if (fired || cleared) this.o.onDeliveries?.();
    return { fired, cleared };
  }
}
