import { defineMachine } from './state-machine.js';

// The agent's view of one sale, from the button press to the product in the tray.
// `dispensing` is journaled (and synced) BEFORE the motor moves; a process found in that state
// after a crash cannot know whether the product fell, so it becomes `vend_unknown` and is never
// pulsed again.

export const VEND_STATES = [
  'awaiting_payment', // order created, QR on screen, waiting for the relay to say paid
  'paid', // relay says paid; the motor has not moved yet
  'dispensing', // motor about to move / moving; journaled before the first pulse
  'dispensed', // drop sensor saw the product
  'vend_failed', // no drop seen, or jammed: refund
  'vend_unknown', // crashed while dispensing: never pulse again, refund by policy
  'cancelled', // customer cancelled or deadline passed before payment
  'rejected', // relay refused the order (price mismatch, unknown product, ...)
  'not_dispensed', // paid, but we could not dispense (cancelled first, deadline long gone): refund
] as const;
export type VendState = (typeof VEND_STATES)[number];

export type VendEvent =
  | 'paid'
  | 'start_dispense'
  | 'drop_seen'
  | 'no_drop'
  | 'jammed'
  | 'crash_recovered'
  | 'cancel'
  | 'expire'
  | 'reject'
  | 'give_up';

export const vendSession = defineMachine<VendState, VendEvent>('vend-session', {
  awaiting_payment: { paid: 'paid', cancel: 'cancelled', expire: 'cancelled', reject: 'rejected' },
  paid: { start_dispense: 'dispensing', give_up: 'not_dispensed' },
  dispensing: { drop_seen: 'dispensed', no_drop: 'vend_failed', jammed: 'vend_failed', crash_recovered: 'vend_unknown' },
  dispensed: {},
  vend_failed: {},
  vend_unknown: {},
  cancelled: {},
  rejected: {},
  not_dispensed: {},
});

/** States in which the kiosk is busy with a customer (no new selection). */
export const OPEN_VEND_STATES: readonly VendState[] = ['awaiting_payment', 'paid', 'dispensing'];
