import { afterEach, describe, expect, it } from 'vitest';
import { kioskWithOrder, notifyIpn, startHarness, type Harness } from './relay-helpers.js';

// vend.resolve at the relay: a technician's verdict moves a paid order by the order machine's own
// transitions, once, and a verdict that disagrees with what already happened goes to review.

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

async function paidOrder(orderId: string) {
  h = await startHarness({ orders: { uncertainVendPolicy: 'review' } });
  const k = await kioskWithOrder(h, orderId);
  const { moId } = h.mp.pay(orderId, 1500);
  await notifyIpn(h, 'merchant_order', moId);
  await h.relay.whenIdle();
  await k.waitFrame((f) => f.type === 'order.paid');
  k.send({ type: 'vend.result', orderId, result: 'vend_unknown', pulses: 1, detail: 'agent restarted while dispensing' });
  await k.roundTrip();
  expect(await h.relay.store.getOrder(orderId)).toMatchObject({ state: 'paid' });
  expect((await h.relay.store.getOrder(orderId))!.needsReview).toMatch(/^vend_unknown/);
  return k;
}

describe('vend.resolve', () => {
  it('dispensed: paid -> vended, the review reason cleared, and the same frame again changes nothing', async () => {
    const k = await paidOrder('ord_resolve1');
    const at = Date.UTC(2026, 11, 1, 7, 0, 0);
    const id = k.send({ type: 'vend.resolve', orderId: 'ord_resolve1', resolution: 'dispensed', by: 'ana', at });
    await k.roundTrip();
    const o = (await h!.relay.store.getOrder('ord_resolve1'))!;
    expect(o.state).toBe('vended');
    expect(o.needsReview).toBeNull();
    k.send({ id, type: 'vend.resolve', orderId: 'ord_resolve1', resolution: 'dispensed', by: 'ana', at });
    await k.roundTrip();
    const events = (await h!.relay.store.orderEvents('ord_resolve1')).filter((e) => /technician ana at 2026-12-01T07:00:00\.000Z/.test(e.detail ?? ''));
    expect(events).toHaveLength(1);
    expect(k.of('ack').filter((a) => a.ackId === id)).toHaveLength(2);
    await k.close();
  });

  it('a verdict that disagrees with an order already settled is recorded and sent to review, the state kept', async () => {
    const k = await paidOrder('ord_resolve2');
    k.send({ type: 'vend.resolve', orderId: 'ord_resolve2', resolution: 'dispensed', by: 'ana', at: Date.now() });
    await k.roundTrip();
    k.send({ type: 'vend.resolve', orderId: 'ord_resolve2', resolution: 'refund', by: 'beto', at: Date.now() });
    await k.roundTrip();
    const o = (await h!.relay.store.getOrder('ord_resolve2'))!;
    expect(o.state).toBe('vended');
    expect(o.needsReview).toMatch(/technician says refund but the order is vended/);
    expect(h!.mp.refunds ?? []).toHaveLength(0);
    await k.close();
  });
});
