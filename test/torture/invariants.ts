import type { MpPayment } from '../../src/mercadopago/types.js';
import type { RefundRecord } from '../../src/sandbox/types.js';
import type { AgentOrderRow, RelayOrderRow } from './world.js';

// The four promises every torture run is checked against, read from the three independent
// records of what happened: the agent's journal (and the simulated motor's pulse log, the ground
// truth of "did the motor move"), the relay's database, and the Mercado Pago emulator's ledger
// (the ground truth of money).
//
//   1. No payment dispensed twice.
//   2. No dispense without a payment in full.
//   3. Every approved payment ends dispensed (the one payment its order used), or refunded
//      exactly once.
//   4. Nothing lost: every order a kiosk made is known to the relay with a final state that
//      agrees with the kiosk's, and nothing is left waiting in an outbox or a refund queue.

export interface Evidence {
  agentOrders: AgentOrderRow[];
  pulses: Array<{ slot: number; pulse: number }>;
  /** most pulses one vend may take (1 with the simulated motor and no dispenser fault) */
  pulsesPerVend?: number;
  agentOutbox: number;
  relayOrders: RelayOrderRow[];
  relayBacklog: { outbox: number; refunds: number; notifications: number };
  payments: MpPayment[];
  refunds: RefundRecord[];
}

export interface Verdict {
  violations: string[];
  counts: { orders: number; dispensed: number; refundedPayments: number; cancelled: number; approvedPayments: number; motorPulses: number };
}

const AGENT_FINAL = new Set(['dispensed', 'vend_failed', 'vend_unknown', 'cancelled', 'rejected', 'not_dispensed']);
const PASSED_DISPENSING = new Set(['dispensing', 'dispensed', 'vend_failed', 'vend_unknown']);
/** what the relay must say once the kiosk's order is final */
const RELAY_AGREES: Record<string, string[]> = {
  dispensed: ['vended'],
  vend_failed: ['refunded'],
  vend_unknown: ['refunded'],
  not_dispensed: ['refunded'],
  cancelled: ['cancelled', 'expired', 'refunded'],
  rejected: ['rejected'],
};

/** ARS has 2 decimals; the torture world sells in ARS only */
const minor = (decimal: number): number => Math.round(decimal * 100);

export function checkInvariants(e: Evidence, opts: { settled: boolean } = { settled: true }): Verdict {
  const v: string[] = [];
  const relayById = new Map(e.relayOrders.map((o) => [o.id, o]));
  const agentById = new Map(e.agentOrders.map((o) => [o.id, o]));
  const everApproved = e.payments.filter((p) => p.status === 'approved' || p.status === 'refunded');
  const approvedByOrder = new Map<string, MpPayment[]>();
  for (const p of everApproved) if (p.external_reference) approvedByOrder.set(p.external_reference, [...(approvedByOrder.get(p.external_reference) ?? []), p]);
  const paymentById = new Map(e.payments.map((p) => [String(p.id), p]));
  const refundsByPayment = new Map<string, RefundRecord[]>();
  for (const r of e.refunds) refundsByPayment.set(String(r.paymentId), [...(refundsByPayment.get(String(r.paymentId)) ?? []), r]);

  // 1. no payment dispensed twice: the motor started no more vends than orders that journaled
  // `dispensing` first, per slot, and no payment id backs two vends
  // (the simulated motor drops the product on the first pulse unless a dispenser fault is set,
  // so with no fault one vend is one pulse)
  const perVend = e.pulsesPerVend ?? 1;
  const pulsesBySlot = new Map<number, number>();
  for (const p of e.pulses) pulsesBySlot.set(p.slot, (pulsesBySlot.get(p.slot) ?? 0) + 1);
  const journaledBySlot = new Map<number, number>();
  for (const o of e.agentOrders) if (PASSED_DISPENSING.has(o.state)) journaledBySlot.set(o.slot, (journaledBySlot.get(o.slot) ?? 0) + 1);
  for (const [slot, pulses] of pulsesBySlot) {
    const journaled = journaledBySlot.get(slot) ?? 0;
    if (pulses > journaled * perVend) v.push(`[1] slot ${slot}: the motor pulsed ${pulses} times for ${journaled} orders that journaled dispensing (at most ${perVend} each)`);
  }
  const vendsByPayment = new Map<string, string[]>();
  for (const o of e.agentOrders) {
    if (!PASSED_DISPENSING.has(o.state) || !o.payment_id) continue;
    vendsByPayment.set(o.payment_id, [...(vendsByPayment.get(o.payment_id) ?? []), o.id]);
  }
  for (const [pay, orders] of vendsByPayment) if (orders.length > 1) v.push(`[1] payment ${pay} was dispensed for ${orders.length} orders: ${orders.join(', ')}`);

  // 2. no dispense without a payment in full
  for (const o of e.agentOrders) {
    if (!PASSED_DISPENSING.has(o.state)) continue;
    const paid = (approvedByOrder.get(o.id) ?? []).reduce((s, p) => s + minor(p.transaction_amount), 0);
    if (!o.payment_id) v.push(`[2] order ${o.id} reached ${o.state} with no payment id`);
    if (paid < o.amount) v.push(`[2] order ${o.id} reached ${o.state} with ${paid} of ${o.amount} paid at Mercado Pago`);
    const r = relayById.get(o.id);
    if (r && !['paid', 'vended', 'refunding', 'refunded'].includes(r.state)) v.push(`[2] order ${o.id} reached ${o.state} on the kiosk while the relay has it ${r.state}`);
  }

  // 3. every approved payment dispensed or refunded exactly once (never twice, never both)
  for (const p of everApproved) {
    const refunds = refundsByPayment.get(String(p.id)) ?? [];
    const agent = p.external_reference ? agentById.get(p.external_reference) : undefined;
    const consumed = agent?.state === 'dispensed' && agent.payment_id === String(p.id);
    if (refunds.length > 1) v.push(`[3] payment ${p.id} (order ${p.external_reference}) refunded ${refunds.length} times`);
    if (consumed && refunds.length > 0) v.push(`[3] payment ${p.id} (order ${p.external_reference}) was dispensed AND refunded`);
    for (const r of refunds) if (r.amountMinor !== minor(p.transaction_amount)) v.push(`[3] payment ${p.id} refunded ${r.amountMinor} of ${minor(p.transaction_amount)}`);
    if (opts.settled && !consumed && refunds.length === 0) v.push(`[3] payment ${p.id} (order ${p.external_reference}, kiosk state ${agent?.state ?? 'unknown'}) was neither dispensed nor refunded`);
  }
  for (const r of e.refunds) {
    const p = paymentById.get(String(r.paymentId));
    if (!p || !(p.status === 'approved' || p.status === 'refunded')) v.push(`[3] refund ${r.id} of payment ${r.paymentId} which was never approved`);
  }

  // 4. nothing lost
  if (opts.settled) {
    for (const o of e.agentOrders) {
      if (!AGENT_FINAL.has(o.state)) {
        v.push(`[4] order ${o.id} still ${o.state} on the kiosk after the run settled`);
        continue;
      }
      const r = relayById.get(o.id);
      if (!r) {
        v.push(`[4] order ${o.id} (${o.state} on the kiosk) is unknown to the relay`);
        continue;
      }
      if (!RELAY_AGREES[o.state]!.includes(r.state)) v.push(`[4] order ${o.id} is ${o.state} on the kiosk but ${r.state} at the relay`);
    }
    for (const r of e.relayOrders) if (!agentById.has(r.id)) v.push(`[4] the relay has order ${r.id} (${r.state}) the kiosk never made`);
    if (e.agentOutbox > 0) v.push(`[4] ${e.agentOutbox} frames still in the kiosk's outbox`);
    if (e.relayBacklog.outbox > 0) v.push(`[4] ${e.relayBacklog.outbox} frames still in the relay's outbox`);
    if (e.relayBacklog.refunds > 0) v.push(`[4] ${e.relayBacklog.refunds} refunds still unanswered`);
    if (e.relayBacklog.notifications > 0) v.push(`[4] ${e.relayBacklog.notifications} notifications never processed`);
  }

  return {
    violations: v,
    counts: {
      orders: e.agentOrders.length,
      dispensed: e.agentOrders.filter((o) => o.state === 'dispensed').length,
      refundedPayments: new Set(e.refunds.map((r) => String(r.paymentId))).size,
      cancelled: e.agentOrders.filter((o) => o.state === 'cancelled').length,
      approvedPayments: everApproved.length,
      motorPulses: e.pulses.length,
    },
  };
}
