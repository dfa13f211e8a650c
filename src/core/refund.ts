import { defineMachine } from './state-machine.js';

// A refund of one payment (relay/refunds.ts). The intent row is written `requested` BEFORE
// Mercado Pago is called, with a stable idempotency key; Mercado Pago's answer moves it on. A
// payment Mercado Pago shows refunded although we never asked starts `external`. Whether a state
// settles the payment (the order may be called refunded) and whether a person must act are read
// from REFUND_STATES here, nowhere else.

export const REFUND_STATES = {
  requested: { settles: false, needsPerson: false }, // intent written; Mercado Pago has not answered yet
  in_process: { settles: true, needsPerson: false }, // accepted, the money is on its way back
  approved: { settles: true, needsPerson: false }, // refunded
  external: { settles: true, needsPerson: false }, // refunded outside the relay (Mercado Pago's panel)
  rejected: { settles: false, needsPerson: true }, // Mercado Pago accepted, then refused it
  cancelled: { settles: false, needsPerson: true }, // Mercado Pago cancelled it
  failed: { settles: false, needsPerson: true }, // Mercado Pago refused the call for good (a 4xx): no retry
} as const;
export type RefundState = keyof typeof REFUND_STATES;

/** Mercado Pago's answers (a refund's status) and our own verdict on a refused call. */
export type RefundEvent = 'mp_in_process' | 'mp_approved' | 'mp_rejected' | 'mp_cancelled' | 'refused';

export const refundMachine = defineMachine<RefundState, RefundEvent>('refund', {
  requested: { mp_in_process: 'in_process', mp_approved: 'approved', mp_rejected: 'rejected', mp_cancelled: 'cancelled', refused: 'failed' },
  // a refund still in process when its answer was recorded may be answered again (a retry with the same key)
  in_process: { mp_in_process: 'in_process', mp_approved: 'approved', mp_rejected: 'rejected', mp_cancelled: 'cancelled' },
  approved: {},
  external: {},
  rejected: {},
  cancelled: {},
  failed: {},
});

/**
 * The event for a refund status as Mercado Pago reports it. Statuses it documents besides these
 * (`authorized`, or one added later) mean "accepted, not finished": in process.
 */
export function refundEventOf(mpStatus: string): RefundEvent {
  switch (mpStatus) {
    case 'approved':
      return 'mp_approved';
    case 'rejected':
      return 'mp_rejected';
    case 'cancelled':
      return 'mp_cancelled';
    default:
      return 'mp_in_process';
  }
}

function known(status: string): RefundState | undefined {
  return Object.hasOwn(REFUND_STATES, status) ? (status as RefundState) : undefined;
}

/** Whether a refund in this state settles its payment (nothing more to give back for it). */
export function refundSettles(status: string): boolean {
  const s = known(status);
  // a status written by an older relay (Mercado Pago's own word) that is not ours: it was an answer, so accepted
  return s ? REFUND_STATES[s].settles : true;
}

/** Whether Mercado Pago will not give the money back by itself: a person must look. */
export function refundNeedsPerson(status: string): boolean {
  const s = known(status);
  return s ? REFUND_STATES[s].needsPerson : false;
}

// ---- partial and retried refunds (schema 10) ---------------------------------------------------
// A payment may be given back in several parts (an operator's partial refunds), and a refund
// Mercado Pago refused may be tried again as a NEW refund row with a new idempotency key (the
// old key would only replay the refusal). What of a payment is left, and whether it is given back
// in full, are read from its refund rows here.

/** What the arithmetic needs of a refund row. */
export interface RefundFacts {
  status: string;
  reason: string;
  /** what Mercado Pago answered it refunded; null before the answer */
  amount: number | null;
  /** what was asked (null: all that remained of the payment) */
  requestedAmount: number | null;
}

/** Whether a refund takes its amount off the payment: settled or still on its way (not refused). */
export function refundCounts(status: string): boolean {
  return !refundNeedsPerson(status);
}

/** The minor units a refund row stands for; one that asked for "all that remained" stands for the whole payment. */
function amountOf(r: RefundFacts, paymentAmount: number): number {
  return r.amount ?? r.requestedAmount ?? paymentAmount;
}

/** What of a payment may still be refunded, given its refund rows (minor units, never negative). */
export function refundableOf(paymentAmount: number, refunds: readonly RefundFacts[]): number {
  const taken = refunds.filter((r) => refundCounts(r.status)).reduce((s, r) => s + amountOf(r, paymentAmount), 0);
  return Math.max(0, paymentAmount - taken);
}

/**
 * Whether a payment is given back in full: a settled refund of all that remained of it (the
 * order's or a surplus refund), or settled partial refunds that add up to it.
 */
export function paymentRefundSettled(paymentAmount: number, refunds: readonly RefundFacts[]): boolean {
  const settled = refunds.filter((r) => refundSettles(r.status));
  if (settled.some((r) => r.reason !== 'partial')) return true;
  return settled.reduce((s, r) => s + amountOf(r, paymentAmount), 0) >= paymentAmount;
}
