import type { OrderState } from '../../core/relay-order.js';
import type { OrderRecord } from '../store/types.js';
import type { Channel } from './channels.js';
import { deliveriesFor, type NewDelivery } from './deliveries.js';

// The outbound webhook of every order event: the order's new state names the event (order.created,
// order.paid, order.vended, order.refunding, order.refunded, order.cancelled, order.expired,
// order.rejected), the payload is what an integration needs to act on it without calling back.
// The rows (one per channel that wants the event) must be written in the SAME transaction as the
// order's move, through the DeliveryStore of migration 7 (the lead's), so a webhook is sent for
// every move that committed and for none that rolled back; DeliveryWorker signs, sends and
// retries them with backoff. Subject `order:<id>`: the console lists an order's deliveries.

export const ORDER_WEBHOOK_EVENTS: Record<OrderState, string> = {
  pending: 'order.created',
  paid: 'order.paid',
  vended: 'order.vended',
  refunding: 'order.refunding',
  refunded: 'order.refunded',
  cancelled: 'order.cancelled',
  expired: 'order.expired',
  rejected: 'order.rejected',
};

/** The delivery rows for an order that just moved to `order.state` (or was inserted). */
export function orderDeliveries(channels: readonly Channel[], order: OrderRecord, at: number): NewDelivery[] {
  const event = ORDER_WEBHOOK_EVENTS[order.state];
  const data = {
    orderId: order.id,
    kioskId: order.kioskId,
    state: order.state,
    sku: order.sku,
    slot: order.slot,
    quantity: order.quantity,
    amount: order.amount,
    currency: order.currency,
    createdAt: new Date(order.createdAt).toISOString(),
    paidAt: order.paidAt === null ? null : new Date(order.paidAt).toISOString(),
    paymentIds: order.paymentIds,
    needsReview: order.needsReview,
    ...(order.state === 'rejected' ? { rejectReason: order.rejectReason } : {}),
  };
  return deliveriesFor(channels, event, `order:${order.id}`, data, at);
}
