import { defineMachine } from './state-machine.js';

// Where an order stands AT MERCADO PAGO, beside its own state (core/relay-order.ts). Models that
// need a call before the customer can pay (attended, dynamic online, Orders API) go through `due`
// -> `offered`; models that need none (unattended, offline dynamic) start `local`. When the order
// stops being payable (cancel, expiry) whatever was made payable is withdrawn, and an order created
// while the cancel raced it is withdrawn too: `due` -> `withdraw_due` remembers to do it once the
// create has answered. Terminal states: nothing left payable at Mercado Pago.

export const OFFER_STATES = [
  'local', // nothing to create or withdraw at Mercado Pago (unattended POS url, offline QR)
  'due', // the call that makes it payable is to be made (or is in flight)
  'offered', // payable at Mercado Pago; the kiosk shows its QR
  'refused', // Mercado Pago refused to make it payable: the order was withdrawn from the kiosk
  'withdraw_due', // no longer payable here: cancel/delete it at Mercado Pago
  'withdrawn', // Mercado Pago confirmed it (or there was nothing to withdraw)
  'withdraw_failed', // Mercado Pago refused the withdrawal for good: flagged for a person
] as const;
export type OfferState = (typeof OFFER_STATES)[number];

export type OfferEvent = 'created' | 'refused' | 'withdraw' | 'withdrawn' | 'withdraw_failed';

export const mpOffer = defineMachine<OfferState, OfferEvent>('mp-offer', {
  local: {},
  due: { created: 'offered', refused: 'refused', withdraw: 'withdraw_due' },
  offered: { withdraw: 'withdraw_due' },
  refused: {},
  withdraw_due: { withdrawn: 'withdrawn', withdraw_failed: 'withdraw_failed', created: 'withdraw_due' },
  withdrawn: {},
  withdraw_failed: {},
});
