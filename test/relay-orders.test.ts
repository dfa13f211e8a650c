import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { getJson, notifyIpn, posUrlOf, PUBLIC_URL, startHarness, TestKiosk, type Harness } from './relay-helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

describe('order.ready', () => {
  it('prices from the relay catalog and accepts, keeping the earlier of the two deadlines', async () => {
    h = await startHarness();
    const k = await TestKiosk.connect(h.relay, h.token);
    const accepted = await k.ready('ord_priced01', { deadline: h.clock.t + 600_000 });
    expect(accepted).toMatchObject({ type: 'order.accepted', orderId: 'ord_priced01', amount: 150000, currency: 'ARS' });
    const order = (await h.relay.store.getOrder('ord_priced01'))!;
    expect(order).toMatchObject({ state: 'pending', kioskId: 'k1', sku: 'COLA', amount: 150000, unitPrice: 150000, title: 'Cola 500ml' });
    expect(order.deadline).toBe(h.clock.t + 120_000); // maxPaymentSeconds wins over the kiosk's 10 minutes

    const two = await k.ready('ord_priced02', { sku: 'WATER', quantity: 2, amount: 180000, deadline: h.clock.t + 30_000 });
    // kiosk busy: ord_priced01 is still pending
    expect(two).toMatchObject({ type: 'order.rejected', reason: 'kiosk_busy' });
    await k.close();
  });

  it('refuses a kiosk lying about the price, logs it, and never offers the order', async () => {
    h = await startHarness({ generation: 'v2' });
    const k = await TestKiosk.connect(h.relay, h.token);
    const answer = await k.ready('ord_liar0001', { amount: 100000 });
    expect(answer).toMatchObject({ type: 'order.rejected', orderId: 'ord_liar0001', reason: 'price_mismatch' });
    expect(h.log.warns()).toContain('kiosk k1 claimed 1000.00 ARS for COLA, catalog says 1500.00 ARS: order ord_liar0001 refused');
    expect(await h.relay.store.getOrder('ord_liar0001')).toMatchObject({ state: 'rejected', rejectReason: 'price_mismatch', claimedAmount: 100000 });
    const pos = await getJson(posUrlOf(h));
    expect(pos).toMatchObject({ status: 202, body: { status: { status_detail: 'Waiting_for_order' } } });

    const wrongCurrency = await k.ready('ord_liar0002', { currency: 'BRL' });
    expect(wrongCurrency).toMatchObject({ type: 'order.rejected', reason: 'price_mismatch' });
    await k.close();
  });

  it('refuses an unknown product and a re-used order id', async () => {
    h = await startHarness();
    const k = await TestKiosk.connect(h.relay, h.token);
    expect(await k.ready('ord_unknown1', { sku: 'CAVIAR' })).toMatchObject({ type: 'order.rejected', reason: 'unknown_product' });
    expect((await h.relay.store.getOrder('ord_unknown1'))!.state).toBe('rejected');
    const dup = k.nextFrame((f) => f.type === 'order.rejected' && f.reason === 'duplicate');
    await k.ready('ord_unknown1');
    expect(await dup).toMatchObject({ orderId: 'ord_unknown1' });
    await k.close();
  });

  it('cancels a pending order on order.cancel and expires one past its deadline', async () => {
    h = await startHarness();
    const k = await TestKiosk.connect(h.relay, h.token);
    await k.ready('ord_cancel01', { now: h.clock.t });
    k.send({ type: 'order.cancel', orderId: 'ord_cancel01', reason: 'customer' });
    await k.roundTrip();
    expect((await h.relay.store.getOrder('ord_cancel01'))!.state).toBe('cancelled');

    await k.ready('ord_expire01', { now: h.clock.t });
    h.clock.t += 121_000;
    expect(await h.relay.runExpiry()).toBe(1);
    const expired = await k.waitFrame((f) => f.type === 'order.expired');
    expect(expired).toMatchObject({ orderId: 'ord_expire01' });
    expect((await h.relay.store.orderEvents('ord_expire01')).map((e) => e.to)).toEqual(['pending', 'expired']);
    await k.close();
  });

  it('expires at start-up what passed its deadline while the relay was down', async () => {
    h = await startHarness();
    const k = await TestKiosk.connect(h.relay, h.token);
    await k.ready('ord_downtime', { now: h.clock.t });
    await k.close();
    await h.relay.close();
    h.clock.t += 200_000;
    await h.restart();
    expect((await h.relay.store.getOrder('ord_downtime'))!.state).toBe('expired');
    expect((await h.relay.store.outboxOf('k1')).map((r) => r.type)).toEqual(['order.expired']);
  });

  it('refuses an illegal transition (vend.result for an unpaid order) and logs it', async () => {
    h = await startHarness();
    const k = await TestKiosk.connect(h.relay, h.token);
    await k.ready('ord_illegal1', { now: h.clock.t });
    k.send({ type: 'vend.result', orderId: 'ord_illegal1', result: 'dispensed' });
    await k.roundTrip();
    expect((await h.relay.store.getOrder('ord_illegal1'))!.state).toBe('pending');
    expect(h.log.warns().some((m) => /event "vend_ok" is not allowed in state "pending"; refused/.test(m))).toBe(true);
    await k.close();
  });
});

describe('unattended POS url', () => {
  it('v1: unavailable without an order, the exact order body when ready, timeout when the kiosk is offline', async () => {
    h = await startHarness({ generation: 'v1', sponsorId: 777 });
    const k = await TestKiosk.connect(h.relay, h.token);
    expect(await getJson(posUrlOf(h))).toMatchObject({ status: 400, body: { error: { type: 'unavailable' } } });

    await k.ready('ord_v1ready1', { sku: 'WATER', quantity: 2, amount: 180000, now: h.clock.t });
    const ready = await getJson(posUrlOf(h));
    expect(ready.status).toBe(200);
    expect(ready.body).toEqual({
      collector_id: 123456789,
      sponsor_id: 777,
      items: [{ title: 'Agua 500ml', currency_id: 'ARS', description: 'Agua 500ml (kiosk k1, slot 1)', quantity: 2, unit_price: 900 }],
      external_reference: 'ord_v1ready1',
      notification_url: `${PUBLIC_URL}/mp/notifications`,
    });
    // MP does not document the method: POST answers the same.
    const viaPost = await getJson(posUrlOf(h), { method: 'POST', headers: { 'content-type': 'application/json' }, body: '' });
    expect(viaPost).toMatchObject({ status: 200, body: { external_reference: 'ord_v1ready1' } });

    const offline = once(h.relay.hub, 'offline');
    await k.close();
    await offline;
    expect(await getJson(posUrlOf(h))).toEqual(expect.objectContaining({ status: 400, body: { error: { type: 'timeout' } } }));
  });

  it('v2: Waiting_for_order, then the exact order body with order-version 2, then notihing_to_pay after payment', async () => {
    h = await startHarness({ generation: 'v2' });
    const k = await TestKiosk.connect(h.relay, h.token);
    expect(await getJson(posUrlOf(h))).toMatchObject({ status: 202, body: { status: { status_detail: 'Waiting_for_order' } } });

    await k.ready('ord_v2ready1', { now: h.clock.t });
    const ready = await getJson(posUrlOf(h));
    expect(ready.status).toBe(200);
    expect(ready.headers.get('order-version')).toBe('2');
    expect(ready.body).toEqual({
      external_reference: 'ord_v2ready1',
      total_amount: 1500,
      items: [
        {
          sku_number: 'COLA',
          category: 'vending',
          title: 'Cola 500ml',
          description: 'Cola 500ml (kiosk k1, slot 1)',
          quantity: 1,
          unit_measure: 'unit',
          unit_price: 1500,
          total_amount: 1500,
        },
      ],
      title: 'Cola 500ml',
      description: 'Cola 500ml (kiosk k1, slot 1)',
      notification_url: `${PUBLIC_URL}/mp/notifications`,
    });

    const { moId } = h.mp.pay('ord_v2ready1', 1500);
    expect(await notifyIpn(h, 'merchant_order', moId)).toBe(200);
    await k.waitFrame((f) => f.type === 'order.paid');
    expect(await getJson(posUrlOf(h))).toMatchObject({ status: 202, body: { status: { status_detail: 'notihing_to_pay' } } });
    h.clock.t += 31_000;
    expect(await getJson(posUrlOf(h))).toMatchObject({ status: 202, body: { status: { status_detail: 'Waiting_for_order' } } });
    await k.close();
  });

  it('v2: an offline kiosk is not offered', async () => {
    h = await startHarness({ generation: 'v2' });
    const k = await TestKiosk.connect(h.relay, h.token);
    await k.ready('ord_offline1', { now: h.clock.t });
    const offline = once(h.relay.hub, 'offline');
    await k.close();
    await offline;
    expect(await getJson(posUrlOf(h))).toMatchObject({ status: 202, body: { status: { status_detail: 'Waiting_for_order' } } });
  });

  it('does not offer an order past its deadline even before the expiry timer runs', async () => {
    h = await startHarness({ generation: 'v1' });
    const k = await TestKiosk.connect(h.relay, h.token);
    await k.ready('ord_late0001', { now: h.clock.t, deadline: h.clock.t + 5_000 });
    h.clock.t += 5_000;
    expect(await getJson(posUrlOf(h))).toMatchObject({ status: 400, body: { error: { type: 'unavailable' } } });
    await k.close();
  });

  it('a warm poll answer still follows every state change at once (the answer is reused between changes)', async () => {
    h = await startHarness({ generation: 'v2' });
    const k = await TestKiosk.connect(h.relay, h.token);
    const poll = () => getJson(posUrlOf(h!));
    const detail = async () => ((await poll()).body as { status?: { status_detail?: string } }).status?.status_detail;
    for (let i = 0; i < 5; i++) expect(await detail()).toBe('Waiting_for_order');

    // a new order: served on the very next poll, and "serving order" logged once, not per poll
    await k.ready('ord_warm0001', { now: h.clock.t, deadline: h.clock.t + 60_000 });
    for (let i = 0; i < 5; i++) expect(await poll()).toMatchObject({ status: 200, body: { external_reference: 'ord_warm0001' } });
    expect(h.log.lines.filter((l) => String(l.msg).includes('serving order ord_warm0001'))).toHaveLength(1);

    // the deadline passes on the clock alone (no write): not offered on the next poll
    h.clock.t += 60_000;
    expect(await detail()).toBe('Waiting_for_order');

    // the next order is served; then the kiosk drops (no database write): not offered
    await h.relay.runExpiry();
    await k.ready('ord_warm0002', { now: h.clock.t, deadline: h.clock.t + 60_000 });
    for (let i = 0; i < 3; i++) expect(await poll()).toMatchObject({ status: 200, body: { external_reference: 'ord_warm0002' } });
    const offline = once(h.relay.hub, 'offline');
    await k.close();
    await offline;
    expect(await detail()).toBe('Waiting_for_order');

    // a wrong key is refused however warm the entry is
    expect((await getJson(posUrlOf(h, 'not-the-key'))).status).toBe(400);
  });

  it('answers invalid to a wrong key or an unknown POS, and logs it', async () => {
    h = await startHarness();
    const k = await TestKiosk.connect(h.relay, h.token);
    await k.ready('ord_wrongkey', { now: h.clock.t });
    const wrong = await getJson(posUrlOf(h, 'not-the-key'));
    expect(wrong.status).toBe(400);
    expect(wrong.body).toEqual({ error: { type: 'invalid', message: expect.any(String) } });
    expect((await getJson(posUrlOf(h, h.posKey, 'NOPE1'))).body).toMatchObject({ error: { type: 'invalid' } });
    expect((await getJson(`${h.relay.url}/mp/pos/POS1`)).body).toMatchObject({ error: { type: 'invalid' } });
    // refusals are logged aggregated per source: the first in full, then a count (relay/limits.ts)
    expect(h.log.warns().filter((m) => /POS url called with/.test(m))).toHaveLength(1);
    await k.close();
    await h.relay.close();
    expect(h.log.warns().at(-1)).toMatch(/^2 requests from 127\.0\.0\.1 refused in the last period \(1 unknown POS, 1 wrong POS key\)$|^2 requests from 127\.0\.0\.1 refused in the last period \(1 wrong POS key, 1 unknown POS\)$/);
  });
});
