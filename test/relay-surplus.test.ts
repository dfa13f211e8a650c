import { once } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { describeRefusal, isPermanentRefusal, refundIdempotencyKey } from '../src/relay/refunds.js';
import { FakeMpHttpError, getJson, kioskWithOrder, notifyIpn, startHarness, TestKiosk, type Harness, type LogLine } from './relay-helpers.js';

// Money the relay must give back on its own without touching the order's state (surplus payments),
// what it must NOT give back (overpayment, a vend the kiosk has not reported yet), and refunds that
// Mercado Pago refuses for good.

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

const WARN = 40;
const ERROR = 50;

async function paidOrder(h: Harness, orderId: string) {
  const k = await kioskWithOrder(h, orderId);
  const { moId, paymentId } = h.mp.pay(orderId, 1500);
  await notifyIpn(h, 'merchant_order', moId);
  await k.waitFrame((f) => f.type === 'order.paid' && f.orderId === orderId);
  await h.relay.whenIdle();
  return { k, moId, paymentId: String(paymentId) };
}

function logsAt(h: Harness, level: number, re: RegExp): LogLine[] {
  return h.log.lines.filter((l) => l.level === level && re.test(l.msg));
}

const tooOld = () => new FakeMpHttpError(400, '15016', 'payment too old to be refunded', 'Payment too old to be refunded');

describe('surplus payments are refunded one by one, the order keeps its state', () => {
  it('two customers pay the same order: the second payment is refunded, the order stays paid then vended', async () => {
    h = await startHarness();
    const { k, paymentId: first } = await paidOrder(h, 'ord_twopay01');
    const second = h.mp.pay('ord_twopay01', 1500); // another customer's merchant order
    await notifyIpn(h, 'merchant_order', second.moId);
    await h.relay.whenIdle();

    const key = refundIdempotencyKey('ord_twopay01', String(second.paymentId));
    expect(key).toBe(`qrkiosk-refund-ord_twopay01-${second.paymentId}`);
    expect(h.mp.refundCalls()).toEqual([{ paymentId: String(second.paymentId), key }]);
    expect(h.mp.refunds).toHaveLength(1);
    expect(await h.relay.store.getOrder('ord_twopay01')).toMatchObject({ state: 'paid', paymentIds: [first], needsReview: null });
    expect(await h.relay.store.refundsOf('ord_twopay01')).toMatchObject([
      { paymentId: String(second.paymentId), idempotencyKey: key, reason: 'surplus', status: 'approved', amount: 150000, currency: 'ARS' },
    ]);
    const warn = logsAt(h, WARN, /surplus payment/);
    expect(warn).toHaveLength(1);
    expect(warn[0]).toMatchObject({ orderId: 'ord_twopay01', paymentId: String(second.paymentId), amount: 150000, currency: 'ARS' });
    expect(warn[0]!.msg).toBe(`order ord_twopay01 (paid) received surplus payment ${second.paymentId} of 1500.00 ARS: refunding it, the order stays paid`);
    expect(h.log.errors()).toEqual([]);
    expect((await h.relay.store.listNotifications()).map((n) => n.outcome)).toEqual(['released', 'surplus_refund']);

    // The kiosk was told to dispense once and is told nothing about the other customer's money.
    k.send({ type: 'vend.result', orderId: 'ord_twopay01', result: 'dispensed', pulses: 1 });
    await k.roundTrip();
    expect(k.of('order.paid')).toHaveLength(1);
    expect(k.of('order.refunded')).toHaveLength(0);
    expect((await h.relay.store.getOrder('ord_twopay01'))!.state).toBe('vended');

    // Replays and restarts change nothing: no second call, no second refund.
    await notifyIpn(h, 'merchant_order', second.moId);
    await h.relay.runContingency();
    await k.close();
    await h.restart();
    await h.relay.whenIdle();
    expect(h.mp.refundCalls()).toHaveLength(1);
    expect((await h.relay.store.getOrder('ord_twopay01'))!.state).toBe('vended');
    expect((await h.relay.store.orderEvents('ord_twopay01')).map((e) => e.event)).toEqual(['created', 'payment_verified', 'surplus_payment', 'vend_ok']);
  });

  it('a customer who pays again after the vend gets the second payment back; the order stays vended', async () => {
    h = await startHarness();
    const { k } = await paidOrder(h, 'ord_paytwice');
    k.send({ type: 'vend.result', orderId: 'ord_paytwice', result: 'dispensed', pulses: 1 });
    await k.roundTrip();
    const again = h.mp.pay('ord_paytwice', 1500);
    await notifyIpn(h, 'payment', again.paymentId);
    await h.relay.whenIdle();
    expect(h.mp.refundCalls()).toEqual([{ paymentId: String(again.paymentId), key: refundIdempotencyKey('ord_paytwice', String(again.paymentId)) }]);
    expect(await h.relay.store.getOrder('ord_paytwice')).toMatchObject({ state: 'vended', needsReview: null });
    expect(logsAt(h, WARN, /order ord_paytwice \(vended\) received surplus payment/)).toHaveLength(1);
    await k.close();
  });

  it('a second approved payment inside the releasing merchant order is surplus too', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_samemo01');
    const { moId, paymentId } = h.mp.pay('ord_samemo01', 1500);
    const extra = 990001;
    h.mp.merchantOrders.get(String(moId))!.payments.push({ id: extra, transaction_amount: 1500, currency_id: 'ARS', status: 'approved' });
    h.mp.payments.set(String(extra), { id: extra, status: 'approved', transaction_amount: 1500, currency_id: 'ARS', order: { id: moId } });
    await notifyIpn(h, 'merchant_order', moId);
    await k.waitFrame((f) => f.type === 'order.paid');
    await h.relay.whenIdle();
    expect(await h.relay.store.getOrder('ord_samemo01')).toMatchObject({ state: 'paid', paymentIds: [String(paymentId)], needsReview: null });
    expect(h.mp.refundCalls().map((c) => c.paymentId)).toEqual([String(extra)]);
    await k.close();
  });

  it('an underpaying payment is refunded as soon as another payment releases the order', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_underrel');
    const short = h.mp.pay('ord_underrel', 1000, { moStatus: 'opened' });
    await notifyIpn(h, 'merchant_order', short.moId);
    await h.relay.whenIdle();
    expect((await h.relay.store.getOrder('ord_underrel'))!.state).toBe('pending');
    const full = h.mp.pay('ord_underrel', 1500);
    await notifyIpn(h, 'merchant_order', full.moId);
    await k.waitFrame((f) => f.type === 'order.paid');
    await h.relay.whenIdle();
    // Without it the first payment would wait for a re-read of its merchant order that may never come.
    expect(h.mp.refundCalls().map((c) => c.paymentId)).toEqual([String(short.paymentId)]);
    expect(await h.relay.store.refundsOf('ord_underrel')).toMatchObject([{ paymentId: String(short.paymentId), reason: 'surplus', amount: 100000 }]);
    expect(await h.relay.store.getOrder('ord_underrel')).toMatchObject({ state: 'paid', paymentIds: [String(full.paymentId)] });
    await k.close();
  });

  it('an approved payment on a rejected order is refunded; the order stays rejected', async () => {
    h = await startHarness();
    const k = await TestKiosk.connect(h.relay, h.token);
    expect(await k.ready('ord_rejpaid1', { amount: 100000 })).toMatchObject({ type: 'order.rejected', reason: 'price_mismatch' });
    const { moId, paymentId } = h.mp.pay('ord_rejpaid1', 1000);
    await notifyIpn(h, 'merchant_order', moId);
    await h.relay.whenIdle();
    expect(h.mp.refundCalls()).toEqual([{ paymentId: String(paymentId), key: refundIdempotencyKey('ord_rejpaid1', String(paymentId)) }]);
    expect(await h.relay.store.getOrder('ord_rejpaid1')).toMatchObject({ state: 'rejected', needsReview: null });
    expect(logsAt(h, WARN, /order ord_rejpaid1 \(rejected\) received surplus payment \d+ of 1000\.00 ARS/)).toHaveLength(1);
    expect(h.log.errors()).toEqual([]);
    await k.close();
  });

  it('a payment left over after the order was refunded is refunded too; the kiosk hears of the order refund once', async () => {
    h = await startHarness();
    const { k, paymentId } = await paidOrder(h, 'ord_leftover');
    k.send({ type: 'vend.result', orderId: 'ord_leftover', result: 'vend_failed', pulses: 2 });
    await k.waitFrame((f) => f.type === 'order.refunded');
    await h.relay.whenIdle();
    const late = h.mp.pay('ord_leftover', 1500);
    await notifyIpn(h, 'merchant_order', late.moId);
    await h.relay.whenIdle();
    expect(h.mp.refundCalls().map((c) => c.paymentId)).toEqual([paymentId, String(late.paymentId)]);
    expect((await h.relay.store.getOrder('ord_leftover'))!.state).toBe('refunded');
    expect((await h.relay.store.refundsOf('ord_leftover')).map((r) => [r.paymentId, r.reason, r.status])).toEqual([
      [paymentId, 'order', 'approved'],
      [String(late.paymentId), 'surplus', 'approved'],
    ]);
    await k.roundTrip();
    expect(k.of('order.refunded')).toHaveLength(1);
    await k.close();
  });

  it('a payment that lands while the order refund is in flight is refunded before the order is called refunded', async () => {
    h = await startHarness();
    const { k, paymentId } = await paidOrder(h, 'ord_inflight2');
    const late = h.mp.pay('ord_inflight2', 1500);
    // The late merchant order is read (as its notification would) while MP handles the first refund.
    h.mp.once('refund-call', async () => {
      expect(await h!.relay.orders.applyMerchantOrder(h!.mp.merchantOrders.get(String(late.moId))!, 'notification')).toBe('already_done');
    });
    k.send({ type: 'vend.result', orderId: 'ord_inflight2', result: 'jammed', pulses: 1 });
    const refunded = await k.waitFrame((f) => f.type === 'order.refunded');
    expect(refunded).toMatchObject({ orderId: 'ord_inflight2', amount: 300000 });
    expect(h.mp.refundCalls().map((c) => c.paymentId)).toEqual([paymentId, String(late.paymentId)]);
    expect((await h.relay.store.refundsOf('ord_inflight2')).every((r) => r.reason === 'order' && r.status === 'approved')).toBe(true);
    await k.close();
  });

  it('a surplus refund whose answer is lost is repeated with the same key after a restart: one refund at MP', async () => {
    h = await startHarness();
    const { k } = await paidOrder(h, 'ord_surplost');
    await k.close();
    h.mp.refundMode = 'lose-response';
    const second = h.mp.pay('ord_surplost', 1500);
    const called = once(h.mp, 'refund-call');
    await notifyIpn(h, 'merchant_order', second.moId);
    await called;
    await h.relay.whenIdle();
    const key = refundIdempotencyKey('ord_surplost', String(second.paymentId));
    expect(await h.relay.store.refundsOf('ord_surplost')).toMatchObject([{ status: 'requested', reason: 'surplus', attempts: 1 }]);

    h.mp.refundMode = 'ok';
    await h.restart();
    await h.relay.whenIdle();
    expect(h.mp.refundCalls().map((c) => c.key)).toEqual([key, key]);
    expect(h.mp.refunds).toHaveLength(1);
    expect(await h.relay.store.refundsOf('ord_surplost')).toMatchObject([{ status: 'approved', mpRefundId: String(h.mp.refunds[0]!.id) }]);
    expect((await h.relay.store.getOrder('ord_surplost'))!.state).toBe('paid');
  });

  it('overpayment by a single payment is released, flagged for review and not refunded', async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_overpay1');
    const { moId } = h.mp.pay('ord_overpay1', 2000);
    await notifyIpn(h, 'merchant_order', moId);
    await k.waitFrame((f) => f.type === 'order.paid');
    await h.relay.whenIdle();
    const order = (await h.relay.store.getOrder('ord_overpay1'))!;
    expect(order.state).toBe('paid');
    expect(order.needsReview).toMatch(/^overpaid: payments \d+ paid 2000\.00 ARS for 1500\.00 ARS$/);
    expect(h.mp.refundCalls()).toEqual([]);
    expect(logsAt(h, WARN, /order ord_overpay1 overpaid: 2000\.00 of 1500\.00 ARS/)).toHaveLength(1);
    expect((await h.relay.store.ordersNeedingReview()).map((o) => o.id)).toEqual(['ord_overpay1']);
    await k.close();
  });
});

describe('paid but no vend result', () => {
  it('flags the order once after vendResultTimeoutSeconds, never refunds, and clears the flag when the result comes', async () => {
    h = await startHarness();
    const { k } = await paidOrder(h, 'ord_novend01');
    const paidAt = (await h.relay.store.getOrder('ord_novend01'))!.paidAt!;
    await k.close();

    h.clock.t = paidAt + 299_999;
    expect(await h.relay.runWatchdog()).toBe(0);
    h.clock.t = paidAt + 300_000;
    expect(await h.relay.runWatchdog()).toBe(1);
    expect(await h.relay.runWatchdog()).toBe(0);
    const warns = logsAt(h, WARN, /has not reported the vend/);
    expect(warns.map((l) => l.msg)).toEqual(['kiosk k1 has not reported the vend of ord_novend01 for 300 s']);
    expect(warns[0]).toMatchObject({ kioskId: 'k1', orderId: 'ord_novend01', kioskOnline: false });
    expect(await h.relay.store.getOrder('ord_novend01')).toMatchObject({ state: 'paid', needsReview: 'vend result overdue: kiosk k1 has not reported the vend of ord_novend01 for 300 s' });
    expect((await h.relay.store.ordersNeedingReview()).map((o) => o.id)).toEqual(['ord_novend01']);
    expect((await getJson(`${h.relay.url}/healthz`)).body).toMatchObject({ needsReview: 1 });

    // Once, whatever restarts follow.
    h.clock.t += 3_600_000;
    await h.restart();
    expect(await h.relay.runWatchdog()).toBe(0);
    expect(logsAt(h, WARN, /has not reported the vend/)).toHaveLength(1);
    expect(h.mp.refundCalls()).toEqual([]);

    // The kiosk comes back and its outbox delivers the result.
    const k2 = await TestKiosk.connect(h.relay, h.token, { openOrders: [{ orderId: 'ord_novend01', state: 'dispensing' }] });
    k2.send({ type: 'vend.result', orderId: 'ord_novend01', result: 'dispensed', pulses: 1 });
    await k2.roundTrip();
    expect(await h.relay.store.getOrder('ord_novend01')).toMatchObject({ state: 'vended', needsReview: null });
    expect(await h.relay.store.ordersNeedingReview()).toEqual([]);
    expect((await getJson(`${h.relay.url}/healthz`)).body).toMatchObject({ needsReview: 0 });
    expect(h.log.lines.some((l) => l.msg === 'kiosk k1 reported the overdue vend of ord_novend01: dispensed')).toBe(true);
    expect((await h.relay.store.orderEvents('ord_novend01')).map((e) => e.event)).toEqual(['created', 'payment_verified', 'vend_overdue', 'vend_ok']);
    await k2.close();
  });

  it('honours orders.vendResultTimeoutSeconds, keeps other review reasons, and ignores orders with a result', async () => {
    h = await startHarness({ orders: { vendResultTimeoutSeconds: 60, uncertainVendPolicy: 'review' } });
    const a = await paidOrder(h, 'ord_novend02');
    a.k.send({ type: 'vend.result', orderId: 'ord_novend02', result: 'vend_unknown', pulses: 1 });
    await a.k.roundTrip();
    await a.k.close();
    const b = await paidOrder(h, 'ord_novend03');
    await b.k.close();
    h.clock.t += 60_000;
    expect(await h.relay.runWatchdog()).toBe(1); // ord_novend02 has a result (vend_unknown, kept for review)
    expect(logsAt(h, WARN, /has not reported the vend/).map((l) => l.msg)).toEqual(['kiosk k1 has not reported the vend of ord_novend03 for 60 s']);
    expect((await h.relay.store.ordersNeedingReview()).map((o) => o.id)).toEqual(['ord_novend02', 'ord_novend03']);
    expect((await getJson(`${h.relay.url}/healthz`)).body).toMatchObject({ ok: true, needsReview: 2 });
  });
});

describe('refunds Mercado Pago refuses for good', () => {
  it('classifies 4xx other than 409/423/429 as final; network, 5xx and 429 are retried', () => {
    for (const status of [400, 401, 403, 404, 422]) expect(isPermanentRefusal({ status })).toBe(true);
    for (const status of [409, 423, 429, 500, 502, 503]) expect(isPermanentRefusal({ status })).toBe(false);
    expect(isPermanentRefusal(new Error('socket hang up'))).toBe(false);
    expect(isPermanentRefusal({ name: 'MpTimeoutError', status: undefined })).toBe(false);
    expect(describeRefusal(tooOld())).toBe('HTTP 400 15016: payment too old to be refunded; Payment too old to be refunded');
  });

  it('vend failed, refund refused (payment too old): marked failed, order flagged, error logged, never retried', async () => {
    h = await startHarness();
    const { k, paymentId } = await paidOrder(h, 'ord_tooold01');
    h.mp.refusedPayments.set(paymentId, tooOld());
    k.send({ type: 'vend.result', orderId: 'ord_tooold01', result: 'vend_failed', pulses: 2 });
    await once(h.mp, 'refund-call');
    await h.relay.whenIdle();
    const key = refundIdempotencyKey('ord_tooold01', paymentId);
    expect(await h.relay.store.refundsOf('ord_tooold01')).toMatchObject([
      { idempotencyKey: key, status: 'failed', attempts: 1, lastError: 'HTTP 400 15016: payment too old to be refunded; Payment too old to be refunded' },
    ]);
    const order = (await h.relay.store.getOrder('ord_tooold01'))!;
    expect(order.state).toBe('refunding');
    expect(order.needsReview).toBe(`refund of payment ${paymentId} refused by Mercado Pago: HTTP 400 15016: payment too old to be refunded; Payment too old to be refunded`);
    const errors = logsAt(h, ERROR, /refused for good/);
    expect(errors).toHaveLength(1);
    expect(errors[0]).toMatchObject({ orderId: 'ord_tooold01', paymentId });
    expect(errors[0]!.msg).toContain('payment too old to be refunded');
    expect(errors[0]!.msg).toContain(`payment ${paymentId} (order ord_tooold01)`);
    expect(h.log.warns().some((m) => /retrying/.test(m))).toBe(false);

    // Neither a later pass nor a restart calls Mercado Pago again.
    await h.restart();
    await h.relay.whenIdle();
    expect(h.mp.refundCalls()).toHaveLength(1);
    expect(logsAt(h, ERROR, /refused for good/)).toHaveLength(1);
    expect((await getJson(`${h.relay.url}/healthz`)).body).toMatchObject({ needsReview: 1 });
    await k.close();
  });

  it('a refused surplus refund (invalid state 2063) flags the order, which stays vended', async () => {
    h = await startHarness();
    const { k } = await paidOrder(h, 'ord_surpfail');
    k.send({ type: 'vend.result', orderId: 'ord_surpfail', result: 'dispensed', pulses: 1 });
    await k.roundTrip();
    const second = h.mp.pay('ord_surpfail', 1500);
    h.mp.refusedPayments.set(
      String(second.paymentId),
      new FakeMpHttpError(400, '2063', `payment ${second.paymentId} is in_mediation`, 'The action requested is not valid for the current payment state'),
    );
    await notifyIpn(h, 'merchant_order', second.moId);
    await h.relay.whenIdle();
    expect(await h.relay.store.refundsOf('ord_surpfail')).toMatchObject([{ reason: 'surplus', status: 'failed' }]);
    const order = (await h.relay.store.getOrder('ord_surpfail'))!;
    expect(order.state).toBe('vended');
    expect(order.needsReview).toMatch(new RegExp(`^refund of surplus payment ${second.paymentId} refused by Mercado Pago: HTTP 400 2063: .*in_mediation`));
    expect(logsAt(h, ERROR, new RegExp(`surplus payment ${second.paymentId} \\(order ord_surpfail\\)`))).toHaveLength(1);
    await h.restart();
    await h.relay.whenIdle();
    expect(h.mp.refundCalls()).toHaveLength(1);
    await k.close();
  });

  it('keeps retrying 5xx and 429 with the same key until Mercado Pago accepts', async () => {
    h = await startHarness();
    const { k, paymentId } = await paidOrder(h, 'ord_retry503');
    h.mp.refundErrors.push(
      new FakeMpHttpError(503, 'service_unavailable', 'service unavailable', 'try later'),
      new FakeMpHttpError(429, 'too_many_requests', 'rate limited', 'slow down'),
    );
    k.send({ type: 'vend.result', orderId: 'ord_retry503', result: 'vend_failed', pulses: 2 });
    const refunded = await k.waitFrame((f) => f.type === 'order.refunded', 30_000); // retries after ~1 s and ~2 s
    expect(refunded).toMatchObject({ orderId: 'ord_retry503', amount: 150000 });
    const key = refundIdempotencyKey('ord_retry503', paymentId);
    expect(h.mp.refundCalls().map((c) => c.key)).toEqual([key, key, key]);
    expect(h.mp.refunds).toHaveLength(1);
    expect(await h.relay.store.refundsOf('ord_retry503')).toMatchObject([{ status: 'approved', attempts: 2, lastError: null }]);
    expect((await h.relay.store.getOrder('ord_retry503'))!.needsReview).toBeNull();
    await k.close();
  }, 12_000);
});
