import { defineMachine } from './state-machine.js';

// An alert is one condition about one subject (kiosk K has been offline for 10 minutes). It fires
// once when the condition starts and clears once when it ends: however often the condition is
// seen in between, nobody is told again (no alert storms). A condition that comes back after
// clearing is a new alert.

export const ALERT_KINDS = [
  'kiosk_offline', // no live link for longer than the threshold
  'no_sales', // no sale for N hours inside the kiosk's usual selling hours
  'vend_failures', // the last N vends of a kiosk failed in a row
  'refund_failing', // a refund Mercado Pago keeps refusing or that gave up
  'hardware_fault', // the kiosk reported a fault (dispenser jammed, sensor dead, printer out of paper)
] as const;
export type AlertKind = (typeof ALERT_KINDS)[number];

export const ALERT_STATES = ['firing', 'cleared'] as const;
export type AlertState = (typeof ALERT_STATES)[number];
export type AlertEvent = 'clear';

export const alertLifecycle = defineMachine<AlertState, AlertEvent>('alert', {
  firing: { clear: 'cleared' },
  cleared: {},
});

/** A condition seen now: `key` names it uniquely (kind + subject) so it fires once. */
export interface AlertCondition {
  kind: AlertKind;
  /** the kiosk id, or for refunds the refund's key */
  subject: string;
  kioskId: string | null;
  /** one line a person reads in an e-mail subject */
  summary: string;
  /** the facts behind it, as shown in the console and sent in webhooks */
  facts: Record<string, string | number | boolean | null>;
}

export function alertKey(c: Pick<AlertCondition, 'kind' | 'subject'>): string {
  return `${c.kind}:${c.subject}`;
}
