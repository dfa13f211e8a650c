import { defineMachine } from './state-machine.js';

// The relay's view of an order. Only `pending` orders are offered to Mercado Pago, and only
// `paid` is ever released to the kiosk. Every path that took money without giving product ends
// in `refunding` -> `refunded`.

export const ORDER_STATES = [
  'pending', // kiosk reported ready; offered at the POS while the kiosk is online and in time
  'paid', // merchant order closed, verified; order.paid sent to the kiosk
  'vended', // kiosk reports the drop sensor saw the product
  'refunding', // money must go back (vend failed/unknown, payment after cancel/expiry, underpaid)
  'refunded', // Mercado Pago confirmed the refund
  'cancelled', // kiosk or customer cancelled before payment
  'expired', // deadline passed before payment
  'rejected', // never offered: price mismatch, unknown product
] as const;
export type OrderState = (typeof ORDER_STATES)[number];

export type OrderEvent =
  | 'created'
  | 'rejected'
  | 'payment_verified'
  | 'vend_ok'
  | 'vend_failed'
  | 'cancel'
  | 'expire'
  | 'late_payment'
  | 'refund_done'
  // an operator gives the money of a dispensed order back (console/actions.ts): audited, with a reason
  | 'operator_refund';

/**
 * Before its first row an order is `new`: it is either accepted (`created` -> pending) or refused
 * (`rejected`), and that first step goes through the table like every other one.
 */
export type OrderStart = 'new';

export const relayOrder = defineMachine<OrderState | OrderStart, OrderEvent>('relay-order', {
  new: { created: 'pending', rejected: 'rejected' },
  pending: { payment_verified: 'paid', cancel: 'cancelled', expire: 'expired' },
  paid: { vend_ok: 'vended', vend_failed: 'refunding' },
  vended: { operator_refund: 'refunding' },
  refunding: { refund_done: 'refunded' },
  refunded: {},
  cancelled: { late_payment: 'refunding' },
  expired: { late_payment: 'refunding' },
  rejected: {},
});
