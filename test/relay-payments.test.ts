import { once } from 'node:events';
import { createHmac } from 'node:crypto';
import { afterEach, describe, expect, it } from 'vitest';
import { verifyWebhookSignature } from '../src/relay/notifications.js';
import { refundIdempotencyKey } from '../src/relay/refunds.js';
import { kioskWithOrder, notifyIpn, startHarness, TestKiosk, type Harness } from './relay-helpers.js';

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

const SECRET = 'whsec_test_secret';

function sign(dataId: string, requestId: string, ts: number, secret = SECRET): string {
  const v1 = createHmac('sha256', secret).update(`id:${dataId};request-id:${requestId};ts:${ts};`).digest('hex');
  return `ts=${ts},v1=${v1}`;
}

async function webhook(h: Harness, type: string, dataId: string | number, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(`${h.relay.url}/mp/notifications?data.id=${dataId}&type=${type}`, {
    method: 'POST',
    headers: { 'content-type': 'application/json', ...headers },
    body: JSON.stringify({ type, action: `${type}.updated`, data: { id: String(dataId) } }),
  });
  await res.text();
  return res.status;
}

describe('payment notifications', () => {
  it('IPN merchant_order: re-reads the MO and releases exactly once for 5 copies of the notification', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_ipn00001');
    const { moId, paymentId } = h.mp.pay('ord_ipn00001', 1500);
    const statuses = await Promise.all(Array.from({ length: 5 }, () => notifyIpn(h!, 'merchant_order', moId)));
    expect(statuses).toEqual([200, 200, 200, 200, 200]);
    await h.relay.whenIdle();
    const paid = await k.waitFrame((f) => f.type === 'order.paid');
    expect(paid).toMatchObject({ orderId: 'ord_ipn00001', paymentId: String(paymentId), amount: 150000, currency: 'ARS' });
    // a sixth copy after processing is harmless too
    await notifyIpn(h, 'merchant_order', moId);
    await h.relay.whenIdle();
    await k.roundTrip();
    expect(k.of('order.paid')).toHaveLength(1);
    expect(h.log.errors()).toEqual([]);
    const order = (await h.relay.store.getOrder('ord_ipn00001'))!;
    expect(order).toMatchObject({ state: 'paid', merchantOrderId: String(moId), paymentIds: [String(paymentId)] });
    const notes = await h.relay.store.listNotifications();
    expect(notes).toHaveLength(6);
    expect(notes.every((n) => n.processedAt !== null && n.form === 'ipn' && n.topic === 'merchant_order')).toBe(true);
    expect(notes.filter((n) => n.outcome === 'released')).toHaveLength(1);

    // the kiosk dispenses
    k.send({ type: 'vend.result', orderId: 'ord_ipn00001', result: 'dispensed', pulses: 1 });
    await k.roundTrip();
    expect((await h.relay.store.getOrder('ord_ipn00001'))!.state).toBe('vended');
    await k.close();
  });

  it('coalesces copies arriving while the first is being processed: one re-read, one release', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_inflight');
    const { moId } = h.mp.pay('ord_inflight', 1500);
    let open!: () => void;
    h.mp.gate = new Promise<void>((r) => (open = r));
    const firstRead = once(h.mp, 'mo-read');
    expect(await notifyIpn(h, 'merchant_order', moId)).toBe(200);
    await firstRead; // the first copy is now in flight
    for (let i = 0; i < 4; i++) expect(await notifyIpn(h, 'merchant_order', moId)).toBe(200);
    h.mp.gate = null;
    open();
    await h.relay.whenIdle();
    await k.roundTrip();
    expect(k.of('order.paid')).toHaveLength(1);
    // the in-flight read plus ONE re-read for the four copies (MP may have changed meanwhile)
    expect(h.mp.calls.filter((c) => c.method === 'getMerchantOrder')).toHaveLength(2);
    expect((await h.relay.store.listNotifications()).map((n) => n.outcome)).toEqual(['released', 'coalesced', 'coalesced', 'coalesced', 'coalesced']);
    await k.close();
  });

  it('IPN with topic and resource only in the body is understood', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_ipnbody1');
    const { moId } = h.mp.pay('ord_ipnbody1', 1500);
    const res = await fetch(`${h.relay.url}/mp/notifications`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ resource: `https://api.mercadolibre.com/merchant_orders/${moId}`, topic: 'merchant_order' }),
    });
    expect(res.status).toBe(200);
    await k.waitFrame((f) => f.type === 'order.paid');
    await k.close();
  });

  it('IPN payment topic: goes payment -> merchant order -> release', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_ipnpay01');
    const { paymentId } = h.mp.pay('ord_ipnpay01', 1500);
    expect(await notifyIpn(h, 'payment', paymentId)).toBe(200);
    await k.waitFrame((f) => f.type === 'order.paid');
    expect(h.mp.calls.map((c) => c.method)).toEqual(['getPayment', 'getMerchantOrder']);
    await k.close();
  });

  it('webhook with a valid signature releases; the body is never trusted', async () => {
    h = await startHarness({ webhookSecret: SECRET });
    const k = await kioskWithOrder(h, 'ord_webhook1');
    const { moId } = h.mp.pay('ord_webhook1', 1500);
    const ts = Math.floor(h.clock.t / 1000);
    const status = await webhook(h, 'topic_merchant_order_wh', moId, { 'x-request-id': 'req-1', 'x-signature': sign(String(moId), 'req-1', ts) });
    expect(status).toBe(200);
    await k.waitFrame((f) => f.type === 'order.paid');
    expect((await h.relay.store.listNotifications())[0]).toMatchObject({ form: 'webhook', signatureOk: true, outcome: 'released' });
    await k.close();
  });

  it('refuses a forged or stale webhook signature with 401, does not store it, and does nothing else', async () => {
    h = await startHarness({ webhookSecret: SECRET });
    const k = await kioskWithOrder(h, 'ord_forged01');
    const { moId, paymentId } = h.mp.pay('ord_forged01', 1500);
    const ts = Math.floor(h.clock.t / 1000);
    expect(await webhook(h, 'merchant_order', moId, { 'x-request-id': 'r', 'x-signature': sign(String(moId), 'r', ts, 'wrong-secret') })).toBe(401);
    expect(await webhook(h, 'payment', paymentId, { 'x-request-id': 'r', 'x-signature': sign(String(paymentId), 'r', ts - 3600) })).toBe(401);
    expect(await webhook(h, 'payment', paymentId, {})).toBe(401);
    await h.relay.whenIdle();
    expect(h.mp.calls).toEqual([]);
    // refusals are logged aggregated per source: the first in full, the rest counted
    expect(h.log.warns().filter((m) => /forged or stale webhook signature/.test(m))).toHaveLength(1);
    // refused requests are not stored (a flood of them once grew the database without limit)
    expect(await h.relay.store.listNotifications()).toEqual([]);
    expect((await h.relay.store.getOrder('ord_forged01'))!.state).toBe('pending');
    await k.roundTrip();
    expect(k.of('order.paid')).toHaveLength(0);
    await k.close();
  });

  it('answers 200 to a notification about a merchant order that is not ours, without error', async () => {
    h = await startHarness();
    const { moId } = h.mp.pay('someone-elses-order', 99);
    expect(await notifyIpn(h, 'merchant_order', moId)).toBe(200);
    expect(await notifyIpn(h, 'merchant_order', 987654321)).toBe(200); // 404 at MP
    expect(await notifyIpn(h, 'chargebacks', 5)).toBe(200); // topic we do not handle
    await h.relay.whenIdle();
    expect(h.log.errors()).toEqual([]);
    expect(h.log.lines.some((l) => /is not ours/.test(l.msg))).toBe(true);
    expect((await h.relay.store.listNotifications()).map((n) => n.outcome)).toEqual(['not_ours', 'not_found', 'ignored: topic "chargebacks"']);
  });

  it('accepts an IPN with an empty JSON body and a webhook without a secret configured', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_emptybdy');
    const { moId } = h.mp.pay('ord_emptybdy', 1500);
    const res = await fetch(`${h.relay.url}/mp/notifications?topic=merchant_order&id=${moId}`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: '',
    });
    expect(res.status).toBe(200);
    expect(await webhook(h, 'merchant_order', moId)).toBe(200);
    await k.waitFrame((f) => f.type === 'order.paid');
    await h.relay.whenIdle();
    await k.roundTrip();
    expect(k.of('order.paid')).toHaveLength(1);
    await k.close();
  });

  it('does not release an open merchant order, a foreign collector or another currency', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_notyet01');
    const a = h.mp.pay('ord_notyet01', 1500, { moStatus: 'opened' });
    const b = h.mp.pay('ord_notyet01', 1500, { collectorId: 42 });
    const c = h.mp.pay('ord_notyet01', 1500, { currency: 'BRL' });
    for (const x of [a, b, c]) await notifyIpn(h, 'merchant_order', x.moId);
    await h.relay.whenIdle();
    expect((await h.relay.store.listNotifications()).map((n) => n.outcome)).toEqual(['waiting', 'foreign_collector', 'currency_mismatch']);
    await k.roundTrip();
    expect(k.of('order.paid')).toHaveLength(0);
    expect((await h.relay.store.getOrder('ord_notyet01'))!.state).toBe('pending');
    await k.close();
  });

  it('underpaid: never released, refunded once the order expires', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_underpd1');
    const { moId, paymentId } = h.mp.pay('ord_underpd1', 1000);
    await notifyIpn(h, 'merchant_order', moId);
    await h.relay.whenIdle();
    expect(h.log.warns()).toContain('order ord_underpd1 underpaid: 1000.00 of 1500.00 ARS');
    expect((await h.relay.store.getOrder('ord_underpd1'))!.state).toBe('pending');

    h.clock.t += 121_000;
    await h.relay.runExpiry();
    const refunded = await k.waitFrame((f) => f.type === 'order.refunded');
    expect(refunded).toMatchObject({ orderId: 'ord_underpd1', amount: 100000, currency: 'ARS' });
    expect(k.of('order.expired')).toHaveLength(1);
    expect(k.of('order.paid')).toHaveLength(0);
    expect(h.mp.refundCalls()).toEqual([{ paymentId: String(paymentId), key: refundIdempotencyKey('ord_underpd1', String(paymentId)) }]);
    expect((await h.relay.store.orderEvents('ord_underpd1')).map((e) => e.to)).toEqual(['pending', 'expired', 'refunding', 'refunded']);
    await k.close();
  });

  it('payment after cancel: refunded, never released', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_cancpay1');
    k.send({ type: 'order.cancel', orderId: 'ord_cancpay1', reason: 'customer' });
    await k.roundTrip();
    const { moId } = h.mp.pay('ord_cancpay1', 1500);
    await notifyIpn(h, 'merchant_order', moId);
    const refunded = await k.waitFrame((f) => f.type === 'order.refunded');
    expect(refunded).toMatchObject({ orderId: 'ord_cancpay1', amount: 150000 });
    expect(k.of('order.paid')).toHaveLength(0);
    expect(h.mp.refunds).toHaveLength(1);
    expect((await h.relay.store.getOrder('ord_cancpay1'))!.state).toBe('refunded');
    await k.close();
  });

  it('contingency: a lost notification is recovered by searching merchant orders, late payments too', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_lostnot1');
    h.mp.pay('ord_lostnot1', 1500);
    expect(await h.relay.runContingency()).toBe(0); // too young to poll
    h.clock.t += 21_000;
    expect(await h.relay.runContingency()).toBe(1);
    await k.waitFrame((f) => f.type === 'order.paid' && f.orderId === 'ord_lostnot1');

    // An expired order whose payment lands later, notification lost as well.
    k.send({ type: 'vend.result', orderId: 'ord_lostnot1', result: 'dispensed' });
    await k.ready('ord_lostnot2', { now: h.clock.t });
    h.clock.t += 121_000;
    await h.relay.runExpiry();
    h.mp.pay('ord_lostnot2', 1500);
    await h.relay.runContingency();
    await k.waitFrame((f) => f.type === 'order.refunded' && f.orderId === 'ord_lostnot2');
    expect(k.of('order.paid', 'ord_lostnot2')).toHaveLength(0);
    await k.close();
  });

  it('resumes a notification stored but not processed before a restart', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_resume01');
    const { moId } = h.mp.pay('ord_resume01', 1500);
    await k.close();
    await h.relay.close();
    // As if the relay died right after answering 200: the row exists, unprocessed.
    const { openRelayStore } = await import('../src/relay/store/index.js');
    const s = await openRelayStore(h.dbPath);
    await s.insertNotification({
      receivedAt: h.clock.t,
      form: 'ipn',
      topic: 'merchant_order',
      resourceId: String(moId),
      query: { topic: 'merchant_order', id: String(moId) },
      body: null,
      headers: {},
      signatureOk: null,
      processedAt: null,
      outcome: null,
    });
    await s.close();
    await h.restart();
    await h.relay.whenIdle();
    expect((await h.relay.store.getOrder('ord_resume01'))!.state).toBe('paid');
    const k2 = await TestKiosk.connect(h.relay, h.token, { openOrders: [{ orderId: 'ord_resume01', state: 'awaiting_payment' }] });
    await k2.waitFrame((f) => f.type === 'order.paid');
    await k2.close();
  });

  it('answers 200 only once the stored notification is durable, and processing does not wait for that', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_durable1');
    const { moId } = h.mp.pay('ord_durable1', 1500);
    // hold the store's durable(): the row is in the log, not yet known to be on disk
    const store = h.relay.store;
    let release!: () => void;
    const held = new Promise<void>((r) => (release = r));
    const durable = store.durable.bind(store);
    store.durable = () => held.then(durable);
    let answered = false;
    const status = notifyIpn(h, 'merchant_order', moId).then((s) => ((answered = true), s));
    // released meanwhile: its `paid` transaction is synced, which flushes the row with it
    await k.waitFrame((f) => f.type === 'order.paid' && f.orderId === 'ord_durable1');
    expect(answered).toBe(false);
    release();
    expect(await status).toBe(200);
    await k.close();
  });

  it('a processed mark and an ack lost to a power cut (not fsync\'d on their own): processed again at the next start, released once', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_lostmark');
    const { moId } = h.mp.pay('ord_lostmark', 1500);
    expect(await notifyIpn(h, 'merchant_order', moId)).toBe(200);
    const paid = await k.waitFrame((f) => f.type === 'order.paid'); // acked by the test kiosk
    await h.relay.whenIdle();
    const result = k.send({ type: 'vend.result', orderId: 'ord_lostmark', result: 'dispensed', pulses: 1 });
    await k.waitFrame((f) => f.type === 'ack' && f.ackId === result);
    await k.close();
    await h.relay.close();
    // What a power cut may take: the mark (markNotification) and the ack's delete (deleteOutbox),
    // committed without an fsync of their own; the synced `paid` and `vended` commits stay.
    const Database = (await import('better-sqlite3')).default;
    const db = new Database(h.dbPath);
    const marked = db.prepare('SELECT id, outcome FROM notifications WHERE processed_at IS NOT NULL').all() as Array<{ id: number; outcome: string }>;
    expect(marked).toHaveLength(1);
    expect(marked[0]!.outcome).toBe('released');
    db.prepare('UPDATE notifications SET processed_at = NULL, outcome = NULL').run();
    expect(db.prepare('SELECT COUNT(*) AS n FROM outbox').get()).toEqual({ n: 0 });
    db.prepare('INSERT INTO outbox (kiosk_id, message_id, type, payload, created_at) VALUES (?, ?, ?, ?, ?)').run('k1', paid.id, 'order.paid', JSON.stringify(paid), h.clock.t);
    db.close();
    await h.restart();
    await h.relay.whenIdle();
    // processed again: re-read at Mercado Pago, nothing new to do
    const notes = await h.relay.store.listNotifications();
    expect(notes.map((n) => n.outcome)).toEqual(['already_done']);
    expect((await h.relay.store.getOrder('ord_lostmark'))!.state).toBe('vended');
    // the frame whose ack was lost goes again, byte for byte the same (the agent's inbox drops it)
    const k2 = await TestKiosk.connect(h.relay, h.token);
    const again = await k2.waitFrame((f) => f.type === 'order.paid');
    expect(again.id).toBe(paid.id);
    expect(again).toEqual(paid);
    await k2.close();
  });
});

describe('refunds', () => {
  async function paidOrder(h: Harness, orderId: string) {
    const k = await kioskWithOrder(h, orderId);
    const { moId, paymentId } = h.mp.pay(orderId, 1500);
    await notifyIpn(h, 'merchant_order', moId);
    await k.waitFrame((f) => f.type === 'order.paid');
    return { k, paymentId: String(paymentId) };
  }

  it('vend_failed: exactly one refund with the stable key, even when the answer is lost and the relay restarts', async () => {
    h = await startHarness();
    const { k, paymentId } = await paidOrder(h, 'ord_vendfail');
    const key = refundIdempotencyKey('ord_vendfail', paymentId);
    expect(key).toBe(`qrkiosk-refund-ord_vendfail-${paymentId}`);

    // MP makes the refund but the response is lost; then the relay goes down before its retry.
    h.mp.refundMode = 'lose-response';
    const called = once(h.mp, 'refund-call');
    k.send({ type: 'vend.result', orderId: 'ord_vendfail', result: 'jammed', pulses: 1 });
    await called;
    await h.relay.whenIdle();
    expect((await h.relay.store.getOrder('ord_vendfail'))!.state).toBe('refunding');
    expect(await h.relay.store.refundsOf('ord_vendfail')).toMatchObject([{ status: 'requested', idempotencyKey: key, attempts: 1 }]);
    await k.close();

    h.mp.refundMode = 'ok';
    await h.restart();
    await h.relay.whenIdle();
    expect((await h.relay.store.getOrder('ord_vendfail'))!.state).toBe('refunded');
    expect(h.mp.refunds).toHaveLength(1);
    expect(h.mp.refundCalls().map((c) => c.key)).toEqual([key, key]);
    expect(await h.relay.store.refundsOf('ord_vendfail')).toMatchObject([{ status: 'approved', mpRefundId: String(h.mp.refunds[0]!.id), amount: 150000 }]);

    // A third start changes nothing: no more calls.
    await h.restart();
    await h.relay.whenIdle();
    expect(h.mp.refundCalls()).toHaveLength(2);

    const k2 = await TestKiosk.connect(h.relay, h.token);
    expect(await k2.waitFrame((f) => f.type === 'order.refunded')).toMatchObject({ orderId: 'ord_vendfail', amount: 150000, currency: 'ARS' });
    await k2.close();
  });

  it('retries a failing refund with backoff and finishes once MP answers', async () => {
    h = await startHarness();
    const { k } = await paidOrder(h, 'ord_retry001');
    h.mp.refundMode = 'fail';
    const first = once(h.mp, 'refund-call');
    k.send({ type: 'vend.result', orderId: 'ord_retry001', result: 'vend_failed' });
    await first;
    await h.relay.whenIdle();
    h.mp.refundMode = 'ok';
    const refunded = await k.waitFrame((f) => f.type === 'order.refunded'); // first retry after ~1s
    expect(refunded).toMatchObject({ orderId: 'ord_retry001' });
    expect(h.mp.refunds).toHaveLength(1);
    expect(h.log.warns().some((m) => /refund for order ord_retry001 failed/.test(m))).toBe(true);
    await k.close();
  });

  it('vend_unknown: refunded under policy refund, kept paid for review under policy review', async () => {
    h = await startHarness({ orders: { uncertainVendPolicy: 'review' } });
    const { k } = await paidOrder(h, 'ord_unknown1');
    k.send({ type: 'vend.result', orderId: 'ord_unknown1', result: 'vend_unknown' });
    await k.roundTrip();
    await h.relay.whenIdle();
    expect(await h.relay.store.getOrder('ord_unknown1')).toMatchObject({ state: 'paid', vendResult: 'vend_unknown' });
    expect((await h.relay.store.getOrder('ord_unknown1'))!.needsReview).toMatch(/vend_unknown/);
    expect(h.mp.refunds).toHaveLength(0);
    await k.close();
    await h.cleanup();

    h = await startHarness();
    const p = await paidOrder(h, 'ord_unknown2');
    p.k.send({ type: 'vend.result', orderId: 'ord_unknown2', result: 'vend_unknown' });
    await p.k.waitFrame((f) => f.type === 'order.refunded');
    expect(h.mp.refunds).toHaveLength(1);
    await p.k.close();
  });
});

describe('webhook signature', () => {
  const base = { secret: SECRET, requestId: 'req-9', dataId: '123', nowMs: 1_700_000_000_000, toleranceSeconds: 600 };
  it('accepts the documented manifest and drops absent parts', () => {
    const ts = 1_700_000_000;
    expect(verifyWebhookSignature({ ...base, signatureHeader: sign('123', 'req-9', ts) })).toEqual({ ok: true });
    const noReq = createHmac('sha256', SECRET).update(`id:123;ts:${ts};`).digest('hex');
    expect(verifyWebhookSignature({ ...base, requestId: undefined, signatureHeader: `ts=${ts},v1=${noReq}` })).toEqual({ ok: true });
  });
  it('refuses wrong secret, tampered id, stale ts and garbage', () => {
    const ts = 1_700_000_000;
    expect(verifyWebhookSignature({ ...base, signatureHeader: sign('123', 'req-9', ts, 'other') }).ok).toBe(false);
    expect(verifyWebhookSignature({ ...base, dataId: '124', signatureHeader: sign('123', 'req-9', ts) }).ok).toBe(false);
    expect(verifyWebhookSignature({ ...base, signatureHeader: sign('123', 'req-9', ts - 601) }).ok).toBe(false);
    expect(verifyWebhookSignature({ ...base, signatureHeader: 'ts=abc,v1=zz' }).ok).toBe(false);
    expect(verifyWebhookSignature({ ...base, signatureHeader: undefined }).ok).toBe(false);
  });
});
