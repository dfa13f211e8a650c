import { describe, expect, it } from 'vitest';
import { ORDER_STATES } from '../src/core/relay-order.js';
import type { Channel } from '../src/relay/console/channels.js';
import { eventMatches } from '../src/relay/console/channels.js';
import { ORDER_WEBHOOK_EVENTS, orderDeliveries } from '../src/relay/console/order-webhooks.js';
import type { OrderRecord } from '../src/relay/store/types.js';

// Which order events become webhook rows, for which channels, with what payload.

function channel(name: string, events: string[]): Channel {
  return { name, kind: 'webhook', quietHours: undefined, wants: (e) => eventMatches(events, e), send: async () => ({ ok: true }), close: () => undefined };
}

const order = { id: 'ord_1', kioskId: 'k1', state: 'paid', sku: 'COLA', slot: 1, quantity: 1, amount: 150_000, currency: 'ARS', createdAt: 1_764_000_000_000, paidAt: 1_764_000_005_000, paymentIds: ['123'], needsReview: null, rejectReason: null } as unknown as OrderRecord;

describe('order webhooks', () => {
  it('every order state has its event; a channel gets the ones it asked for, with subject order:<id>', () => {
    expect(ORDER_STATES.map((s) => ORDER_WEBHOOK_EVENTS[s])).toEqual(ORDER_STATES.map((s) => ORDER_WEBHOOK_EVENTS[s]).filter((e) => /^order\.[a-z]+$/.test(e)));
    const rows = orderDeliveries([channel('erp', ['order.*']), channel('ops', ['alert.*']), channel('acct', ['order.paid', 'order.refunded'])], order, 1_764_000_006_000);
    expect(rows.map((r) => [r.channel, r.event, r.subject])).toEqual([
      ['erp', 'order.paid', 'order:ord_1'],
      ['acct', 'order.paid', 'order:ord_1'],
    ]);
    const body = JSON.parse(rows[0]!.payload) as { id: string; type: string; data: Record<string, unknown> };
    expect(body).toMatchObject({ id: rows[0]!.id, type: 'order.paid', data: { orderId: 'ord_1', amount: 150_000, currency: 'ARS', paidAt: '2025-11-24T16:00:05.000Z', paymentIds: ['123'] } });
    expect(rows[0]!.id).not.toBe(rows[1]!.id); // one delivery id per channel: receivers de-duplicate by it
    expect(orderDeliveries([channel('acct', ['order.paid'])], { ...order, state: 'vended' }, 0)).toEqual([]);
  });
});
