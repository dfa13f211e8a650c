import { defineMachine } from './state-machine.js';

// One message the relay owes to the outside world: an alert e-mail, a signed webhook about an
// alert or an order event. It is written in the same transaction as the fact it reports, so it
// exists exactly when the fact does, and it is then tried until it is delivered or given up.
//
//   pending --delivered--> delivered
//   pending --failed-----> pending        (attempts + 1, next try after a backoff)
//   pending --give_up----> failed         (attempts exhausted, or the receiver refused for good)
//   pending --hold-------> held           (the channel's quiet hours)
//   held    --release----> pending        (quiet hours over)
//   failed  --retry------> pending        (an operator asked for another try)

export const DELIVERY_STATES = ['pending', 'held', 'delivered', 'failed'] as const;
export type DeliveryState = (typeof DELIVERY_STATES)[number];
export type DeliveryEvent = 'delivered' | 'failed' | 'give_up' | 'hold' | 'release' | 'retry';

export const outboundDelivery = defineMachine<DeliveryState, DeliveryEvent>('outbound-delivery', {
  pending: { delivered: 'delivered', failed: 'pending', give_up: 'failed', hold: 'held' },
  held: { release: 'pending' },
  delivered: {},
  failed: { retry: 'pending' },
});
