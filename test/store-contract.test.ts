// The relay store's contract, one set of test bodies run against BOTH implementations (SQLite
// file, real PostgreSQL database): every method of src/relay/store/api.ts, transactions that roll
// back on a throw, and what a second instance sees. PostgreSQL tests fail in CI when the server
// is missing (test/helpers/pg.ts), they are skipped only on a laptop without one.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IllegalTransition } from '../src/core/state-machine.js';
import type { RelayStore } from '../src/relay/store/api.js';
import { StoreError, hashToken, type NewOrder } from '../src/relay/store/types.js';
import type { DexAuditFrame } from '../src/protocol/messages.js';
import { skipWithoutPostgres } from './helpers/pg.js';
import { openTestStore, STORE_KINDS, type StoreKind, type TestStore } from './helpers/relay-stores.js';

const skipPg = await skipWithoutPostgres();

const T0 = 1_764_000_000_000; // epoch ms (beyond 2^31: a BIGINT must carry it exactly)

function order(id: string, over: Partial<NewOrder> = {}): NewOrder {
  return {
    id,
    kioskId: 'k1',
    slot: 3,
    sku: 'cola',
    title: 'Cola 500 ml',
    quantity: 2,
    unitPrice: 150_000,
    amount: 300_000,
    currency: 'ARS',
    claimedAmount: 300_000,
    claimedCurrency: 'ARS',
    state: 'pending',
    deadline: T0 + 60_000,
    createdAt: T0,
    ...over,
  };
}

function dexFrame(auditId: string, readAt: number, serial = 'SN1'): DexAuditFrame {
  return {
    v: 1,
    id: `m_${auditId}`,
    type: 'dex.audit',
    auditId,
    readAt,
    protocol: 'dex',
    cashlessDevice: 1,
    machine: { serial, model: 'M', location: 'L', asset: 'A' },
    decimals: 2,
    currency: 'ARS',
    products: [],
  } as unknown as DexAuditFrame;
}

describe.each(STORE_KINDS)('relay store contract: %s', (kind: StoreKind) => {
  const skip = kind === 'postgres' && skipPg;
  let t: TestStore;
  let s: RelayStore;

  beforeEach(async () => {
    if (skip) return;
    t = await openTestStore(kind);
    s = t.store;
    await s.addKiosk({ id: 'k1', posExternalId: 'POS1', storeExternalId: 'STORE1', model: 'unattended' }, T0 - 1000);
  });
  afterEach(async () => {
    if (!skip) await t.cleanup();
  });

  it.skipIf(skip)('names its kind and answers a ping', async () => {
    expect(s.kind).toBe(kind);
    await expect(s.ping()).resolves.toBeUndefined();
  });

  it.skipIf(skip)('kiosks: add, find by id, token hash and POS, list, revisions, rotate', async () => {
    const added = await s.addKiosk({ id: 'k2', posExternalId: 'POS2', generation: 'v1', posQr: 'QR', model: 'dynamic', modelMode: 'online' }, T0);
    expect(added.kiosk).toMatchObject({ id: 'k2', posExternalId: 'POS2', generation: 'v1', posQr: 'QR', paymentModel: 'dynamic', modelMode: 'online', createdAt: T0 });
    expect(added.posPath).toBe(`/mp/pos/POS2?key=${added.posKey}`);
    expect((await s.getKioskByTokenHash(hashToken(added.token)))?.id).toBe('k2');
    expect((await s.getKioskByPos('POS2'))?.id).toBe('k2');
    expect((await s.getKiosk('nope'))).toBeUndefined();
    expect((await s.listKiosks()).map((k) => k.id)).toEqual(['k1', 'k2']);
    await expect(s.addKiosk({ id: 'k2', posExternalId: 'POS9' })).rejects.toThrow(StoreError);
    await expect(s.addKiosk({ id: 'k9', posExternalId: 'POS2' })).rejects.toThrow(/already/);
    await expect(s.addKiosk({ id: 'bad id', posExternalId: 'POS9' })).rejects.toThrow(/kiosk id/);

    const r0 = await s.kioskRevision();
    await s.setKioskPosQr('k2', 'QR2');
    await s.setKioskModel('k1', 'attended', null);
    await s.setKioskStore('k2', 'STORE2');
    const changed = await s.kiosksChangedAfter(r0);
    expect(changed.map((k) => k.id)).toEqual(['k1', 'k2']); // by revision: k1's change came after k2's first
    expect(await s.kioskRevision()).toBe(r0 + 3);
    expect((await s.getKiosk('k2'))).toMatchObject({ posQr: 'QR2', storeExternalId: 'STORE2' });
    expect((await s.getKiosk('k1'))).toMatchObject({ paymentModel: 'attended', modelMode: null });
    await expect(s.setKioskPosQr('nope', 'x')).rejects.toThrow(/no kiosk/);
    await expect(s.setKioskStore('k1', 'bad store!')).rejects.toThrow(/store external id/);

    const token = await s.rotateKioskToken('k2');
    expect(await s.getKioskByTokenHash(hashToken(added.token))).toBeUndefined();
    expect((await s.getKioskByTokenHash(hashToken(token)))?.id).toBe('k2');
    await expect(s.rotateKioskToken('nope')).rejects.toThrow(/no kiosk/);
  });

  it.skipIf(skip)('orders: insert with history, exact money and times, queries by state and kiosk', async () => {
    const big = 9_007_199_254_740_000; // near 2^53: exact, never a float rounding
    const o = await s.insertOrder(order('o1', { amount: big, claimedAmount: big }));
    expect(o).toMatchObject({ id: 'o1', state: 'pending', amount: big, unitPrice: 150_000, createdAt: T0, updatedAt: T0, paymentIds: [], offerState: 'local', qr: null, slot: 3 });
    await s.insertOrder(order('o2', { createdAt: T0 + 1, deadline: T0 + 10, offerState: 'due', qr: 'Q' }));
    await s.insertOrder(order('o3', { createdAt: T0 + 2, state: 'rejected', rejectReason: 'price', slot: null }));
    expect((await s.getOrder('o3'))).toMatchObject({ state: 'rejected', rejectReason: 'price', slot: null });
    expect(await s.orderEvents('o3')).toEqual([{ orderId: 'o3', from: null, to: 'rejected', event: 'rejected', detail: 'price', at: T0 + 2 }]);
    expect((await s.pendingOrderOf('k1'))?.id).toBe('o2');
    expect((await s.latestOrderOf('k1'))?.id).toBe('o2');
    expect((await s.ordersInState('pending')).map((x) => x.id)).toEqual(['o1', 'o2']);
    expect((await s.pendingPastDeadline(T0 + 10)).map((x) => x.id)).toEqual(['o2']);
    expect((await s.pendingPastDeadline(T0 + 10, 'other')).map((x) => x.id)).toEqual([]);
    expect(await s.countOrders('pending')).toBe(2);
    expect(await s.countOrders('rejected')).toBe(1);
    expect((await s.recentOrders({ limit: 2 })).map((x) => x.id)).toEqual(['o3', 'o2']);
    expect((await s.recentOrders({ limit: 9, state: 'pending', kioskId: 'k1' })).map((x) => x.id)).toEqual(['o2', 'o1']);
    expect((await s.offerWork()).map((x) => x.id)).toEqual(['o2']);
    await expect(s.insertOrder(order('o1'))).rejects.toThrow();
    // the first step goes through the order's table: an order cannot be born paid
    await expect(s.insertOrder(order('o9', { state: 'paid' as never }))).rejects.toThrow(IllegalTransition);
    expect(await s.getOrder('o9')).toBeUndefined();
  });

  it.skipIf(skip)('latest order: a tie on created_at goes to the later inserted, whatever the ids', async () => {
    await s.insertOrder(order('zz-first', { createdAt: T0 + 5 }));
    await s.insertOrder(order('aa-second', { createdAt: T0 + 5 }));
    expect((await s.latestOrderOf('k1'))?.id).toBe('aa-second');
    await s.insertOrder(order('mm-rejected', { createdAt: T0 + 5, state: 'rejected', rejectReason: 'x' }));
    expect((await s.latestOrderOf('k1'))?.id).toBe('aa-second');
    expect(await s.latestOrderOf('k2')).toBeUndefined();
  });

  it.skipIf(skip)('transitions: checked against the table, patch applied, history written', async () => {
    await s.insertOrder(order('o1'));
    const paid = await s.transitionOrder('o1', 'payment_verified', T0 + 5, 'mo 77', { paidAt: T0 + 5, merchantOrderId: '77', paymentIds: ['p1'] });
    expect(paid).toMatchObject({ state: 'paid', updatedAt: T0 + 5, paidAt: T0 + 5, merchantOrderId: '77', paymentIds: ['p1'], vendResult: null });
    await expect(s.transitionOrder('o1', 'payment_verified', T0 + 6)).rejects.toThrow(IllegalTransition);
    await expect(s.transitionOrder('nope', 'cancel', T0)).rejects.toThrow(/no order/);
    const vended = await s.transitionOrder('o1', 'vend_ok', T0 + 7, null, { vendResult: 'dispensed' });
    expect(vended).toMatchObject({ state: 'vended', vendResult: 'dispensed', paidAt: T0 + 5, merchantOrderId: '77' });
    expect((await s.orderEvents('o1')).map((e) => [e.from, e.to, e.event])).toEqual([
      [null, 'pending', 'created'],
      ['pending', 'paid', 'payment_verified'],
      ['paid', 'vended', 'vend_ok'],
    ]);
    await s.noteOrderEvent('o1', 'vended', 'refused_repeat', 'why', T0 + 8);
    expect((await s.orderEvents('o1')).at(-1)).toEqual({ orderId: 'o1', from: 'vended', to: 'vended', event: 'refused_repeat', detail: 'why', at: T0 + 8 });
    await s.patchOrder('o1', { lastNotificationAt: T0 + 9, vendResult: 'dispensed', needsReview: null });
    expect((await s.getOrder('o1'))?.lastNotificationAt).toBe(T0 + 9);
    expect((await s.dispensedBySlot('k1', T0, T0 + 5))).toEqual([{ slot: 3, count: 1, amount: 300_000, currency: 'ARS' }]);
    expect((await s.dispensedBySlot('k1', T0 + 5, T0 + 9))).toEqual([]);
  });

  it.skipIf(skip)('offers: moves through mp-offer, errors noted, history when it moves', async () => {
    await s.insertOrder(order('o1', { offerState: 'due' }));
    const offered = await s.moveOffer('o1', 'created', T0 + 1, { mpOrderId: 'ORD1', qr: 'QRDATA' });
    expect(offered).toMatchObject({ offerState: 'offered', mpOrderId: 'ORD1', qr: 'QRDATA', offerError: null });
    await expect(s.moveOffer('o1', 'created', T0 + 2)).rejects.toThrow(IllegalTransition);
    await s.moveOffer('o1', 'withdraw', T0 + 3);
    expect((await s.offerWork()).map((o) => o.id)).toEqual(['o1']);
    await s.noteOfferError('o1', 'x'.repeat(600));
    expect((await s.getOrder('o1'))?.offerError).toHaveLength(500);
    const done = await s.moveOffer('o1', 'withdrawn', T0 + 4);
    expect(done).toMatchObject({ offerState: 'withdrawn', mpOrderId: 'ORD1', qr: 'QRDATA' });
    expect((await s.orderEvents('o1')).map((e) => e.event)).toEqual(['created', 'mp_created', 'mp_withdraw', 'mp_withdrawn']);
    expect(await s.offerWork()).toEqual([]);
  });

  it.skipIf(skip)('review flags, watchdog, contingency candidates', async () => {
    await s.insertOrder(order('o1'));
    await s.insertOrder(order('o2', { createdAt: T0 + 1 }));
    expect(await s.flagReview('o1', 'vend unknown')).toBe(true);
    expect(await s.flagReview('o1', 'vend unknown')).toBe(false);
    expect(await s.flagReview('o1', 'price odd')).toBe(true);
    expect((await s.getOrder('o1'))?.needsReview).toBe('vend unknown; price odd');
    expect(await s.countNeedingReview()).toBe(1);
    expect((await s.ordersNeedingReview()).map((o) => o.id)).toEqual(['o1']);
    expect(await s.clearReview('o1', 'vend')).toBe(true);
    expect(await s.clearReview('o1', 'vend')).toBe(false);
    expect(await s.clearReview('o1', 'price')).toBe(true);
    expect((await s.getOrder('o1'))?.needsReview).toBeNull();
    await expect(s.flagReview('nope', 'x')).rejects.toThrow(/no order/);

    // contingency: o1 quiet pending; o2 heard from recently; o3 expired lately
    await s.patchOrder('o2', { lastNotificationAt: T0 + 100 });
    await s.insertOrder(order('o3', { createdAt: T0 + 2 }));
    await s.transitionOrder('o3', 'expire', T0 + 50);
    expect((await s.openContingencyCandidates(T0 + 10, T0 + 50, 10)).map((o) => o.id)).toEqual(['o1']);
    expect((await s.openContingencyCandidates(T0 + 10, T0 + 200, 10)).map((o) => o.id)).toEqual(['o1', 'o2']);
    expect((await s.openContingencyCandidates(T0 + 10, T0 + 200, 1)).map((o) => o.id)).toEqual(['o1']);
    expect((await s.closedContingencyCandidates(T0 + 40, undefined, 10)).map((o) => o.id)).toEqual(['o3']);
    expect(await s.closedContingencyCandidates(T0 + 60, undefined, 10)).toEqual([]);
    // the keyset walk: newest first, orders closed in the same millisecond ordered by id, each
    // page strictly below the last order of the one before, nothing read twice or skipped
    for (const [id, at] of [['c1', T0 + 70], ['c2', T0 + 80], ['c3', T0 + 80], ['c4', T0 + 80], ['c5', T0 + 90]] as const) {
      await s.insertOrder(order(id, { createdAt: T0 + 3 }));
      await s.transitionOrder(id, 'cancel', at);
    }
    const walked: string[] = [];
    for (let below: { updatedAt: number; id: string } | undefined, i = 0; i < 10; i++) {
      const page = await s.closedContingencyCandidates(T0 + 45, below, 2);
      walked.push(...page.map((o) => o.id));
      if (page.length < 2) break;
      below = { updatedAt: page[1]!.updatedAt, id: page[1]!.id };
    }
    expect(walked).toEqual(['c5', 'c4', 'c3', 'c2', 'c1', 'o3']);

    // watchdog
    await s.transitionOrder('o1', 'payment_verified', T0 + 20, null, { paidAt: T0 + 20 });
    expect((await s.overdueVends(T0 + 19)).map((o) => o.id)).toEqual([]);
    expect((await s.overdueVends(T0 + 20)).map((o) => o.id)).toEqual(['o1']);
    await s.markVendOverdue('o1', T0 + 30, 'no vend result');
    expect((await s.getOrder('o1'))).toMatchObject({ vendOverdueAt: T0 + 30, needsReview: 'no vend result' });
    expect(await s.overdueVends(T0 + 99)).toEqual([]);
  });

  it.skipIf(skip)('payments: upsert keeps ever-approved, unrefunded ones found', async () => {
    await s.insertOrder(order('o1'));
    await s.upsertPayment({ paymentId: 'p1', orderId: 'o1', merchantOrderId: 'm1', status: 'approved', amount: 300_000, currency: 'ARS' }, T0 + 1);
    await s.upsertPayment({ paymentId: 'p1', orderId: 'o1', merchantOrderId: 'm1', status: 'refunded', amount: 300_000, currency: 'ARS' }, T0 + 2);
    await s.upsertPayment({ paymentId: 'p2', orderId: 'o1', merchantOrderId: null, status: 'pending', amount: 1, currency: 'ARS' }, T0 + 3);
    expect(await s.getPayment('p1')).toEqual({ paymentId: 'p1', orderId: 'o1', merchantOrderId: 'm1', status: 'refunded', amount: 300_000, currency: 'ARS', everApproved: true, firstSeenAt: T0 + 1, updatedAt: T0 + 2 });
    expect((await s.paymentsOf('o1')).map((p) => p.paymentId)).toEqual(['p1', 'p2']);
    expect((await s.approvedPaymentsOf('o1')).map((p) => p.paymentId)).toEqual(['p1']);
    expect((await s.unrefundedApprovedPaymentsOf('o1')).map((p) => p.paymentId)).toEqual(['p1']);
    await s.insertRefundIntent('o1', 'p1', 'key1', T0 + 4);
    expect(await s.unrefundedApprovedPaymentsOf('o1')).toEqual([]);
    expect(await s.getPayment('nope')).toBeUndefined();
  });

  it.skipIf(skip)('refunds: intent once per key, attempts, completion, failure, surplus due', async () => {
    await s.insertOrder(order('o1'));
    await s.insertOrder(order('o2'));
    const r1 = await s.insertRefundIntent('o1', 'p1', 'key1', T0 + 1);
    expect(r1).toMatchObject({ orderId: 'o1', paymentId: 'p1', idempotencyKey: 'key1', reason: 'order', status: 'requested', attempts: 0, requestedAt: T0 + 1, amount: null });
    const again = await s.insertRefundIntent('o1', 'p1', 'key1', T0 + 9);
    expect(again).toEqual(r1);
    await s.recordRefundAttempt('key1', 'timeout');
    expect((await s.getRefundByKey('key1'))).toMatchObject({ attempts: 1, lastError: 'timeout' });
    await s.completeRefund('key1', { mpRefundId: 'R1', amount: 300_000, currency: 'ARS', status: 'approved' }, T0 + 2);
    expect((await s.getRefundByKey('key1'))).toMatchObject({ mpRefundId: 'R1', amount: 300_000, status: 'approved', completedAt: T0 + 2, lastError: null });
    await s.insertRefundIntent('o2', 'p2', 'key2', T0 + 3, 'surplus');
    await s.recordExternalRefund('o2', 'p3', 'key3', 5, 'ARS', T0 + 4, 'surplus');
    await s.recordExternalRefund('o2', 'p3', 'key3', 6, 'ARS', T0 + 5, 'surplus'); // no-op
    expect((await s.getRefundByKey('key3'))).toMatchObject({ status: 'external', amount: 5, completedAt: T0 + 4, reason: 'surplus' });
    expect((await s.surplusRefundsDue()).map((r) => r.idempotencyKey)).toEqual(['key2']);
    await s.transitionOrder('o2', 'cancel', T0 + 6);
    await s.transitionOrder('o2', 'late_payment', T0 + 7);
    expect(await s.surplusRefundsDue()).toEqual([]); // left to the order's own refund
    await s.failRefund('key2', 'refused', T0 + 8);
    expect((await s.getRefundByKey('key2'))).toMatchObject({ status: 'failed', attempts: 1, lastError: 'refused', completedAt: T0 + 8 });
    expect((await s.refundsOf('o2')).map((r) => r.idempotencyKey)).toEqual(['key2', 'key3']);
    expect((await s.allRefunds()).map((r) => r.idempotencyKey)).toEqual(['key1', 'key2', 'key3']);
    expect(typeof r1.id).toBe('number');
    // the alert's failing refunds: failed for good, or requested and tried `minAttempts` times
    await s.insertRefundIntent('o1', 'p9', 'key4', T0 + 9);
    await s.recordRefundAttempt('key4', 'timeout');
    await s.recordRefundAttempt('key4', 'timeout');
    expect((await s.failingRefunds(3)).map((r) => r.idempotencyKey)).toEqual(['key2']);
    expect((await s.failingRefunds(2)).map((r) => r.idempotencyKey)).toEqual(['key2', 'key4']);
  });

  it.skipIf(skip)('sale hours: the UTC hours a kiosk sold in since a time, and its last sale, counted by the database', async () => {
    const H = 3_600_000;
    const hourStart = Math.floor(T0 / H) * H;
    const sell = async (id: string, paidAt: number, kioskId = 'k1') => {
      await s.insertOrder(order(id, { kioskId }));
      await s.transitionOrder(id, 'payment_verified', paidAt, null, { paidAt, merchantOrderId: id, paymentIds: [id] });
      await s.transitionOrder(id, 'vend_ok', paidAt + 1, null, { vendResult: 'dispensed' });
    };
    await s.addKiosk({ id: 'k2', posExternalId: 'POS2', storeExternalId: 'STORE1', model: 'unattended' }, T0 - 1000);
    expect(await s.saleHoursOf('k1', 0)).toEqual({ hours: [], lastSaleAt: null });
    await sell('a', hourStart + 10);
    await sell('b', hourStart + 20 * 60_000); // the same hour: one entry
    await sell('c', hourStart + 2 * H + 5);
    await sell('d', hourStart + 3 * H, 'k2'); // another kiosk
    await s.insertOrder(order('e')); // paid, never dispensed: not a sale
    await s.transitionOrder('e', 'payment_verified', hourStart + 5 * H, null, { paidAt: hourStart + 5 * H, merchantOrderId: 'e', paymentIds: ['e'] });
    expect(await s.saleHoursOf('k1', 0)).toEqual({ hours: [hourStart, hourStart + 2 * H], lastSaleAt: hourStart + 2 * H + 5 });
    expect(await s.saleHoursOf('k1', hourStart + H)).toEqual({ hours: [hourStart + 2 * H], lastSaleAt: hourStart + 2 * H + 5 });
    expect(await s.saleHoursOf('k2', 0)).toEqual({ hours: [hourStart + 3 * H], lastSaleAt: hourStart + 3 * H });
  });

  it.skipIf(skip)('notifications: stored, counted by source, failures, give-up, pruning', async () => {
    const base = { form: 'webhook' as const, topic: 'merchant_order', resourceId: '77', query: { a: '1' }, body: '{"x":1}', headers: { 'x-signature': 's' }, signatureOk: true, processedAt: null, outcome: null };
    const id1 = await s.insertNotification({ ...base, receivedAt: T0, source: '10.0.0.1' });
    const id2 = await s.insertNotification({ ...base, receivedAt: T0 + 1, signatureOk: null, source: '10.0.0.1' });
    const id3 = await s.insertNotification({ ...base, receivedAt: T0 + 2, signatureOk: false, form: 'ipn', processedAt: T0 + 2, outcome: 'refused' });
    expect(id2).toBeGreaterThan(id1);
    expect(await s.countNotificationsFrom('10.0.0.1', T0 + 1)).toBe(1);
    expect(await s.countNotificationsFrom('10.0.0.1', T0)).toBe(2);
    expect((await s.unprocessedNotifications()).map((n) => n.id)).toEqual([id1, id2]);
    expect(await s.noteNotificationFailure(id1, 'mp down')).toBe(1);
    expect(await s.noteNotificationFailure(id1, 'mp down')).toBe(2);
    expect(await s.noteNotificationFailure(999_999, 'x')).toBe(0);
    await s.giveUpNotification(id1, 'given up', T0 + 10);
    expect(await s.countGivenUpNotifications()).toBe(1);
    await s.markNotification(id2, 'ok', T0 + 20);
    const all = await s.listNotifications();
    expect(all.map((n) => [n.id, n.signatureOk, n.processedAt, n.outcome])).toEqual([
      [id1, true, T0 + 10, 'given up'],
      [id2, null, T0 + 20, 'ok'],
      [id3, false, T0 + 2, 'refused'],
    ]);
    expect(all[0]).toMatchObject({ query: { a: '1' }, headers: { 'x-signature': 's' }, body: '{"x":1}', attempts: 2, givenUpAt: T0 + 10, source: '10.0.0.1', form: 'webhook' });
    expect(await s.unprocessedNotifications()).toEqual([]);
    expect(await s.pruneNotifications(T0 + 11)).toBe(2);
    expect((await s.listNotifications()).map((n) => n.id)).toEqual([id2]);
  });

  it.skipIf(skip)('outbox and inbox: byte-identical frames in order, ack by the right kiosk, inbox once', async () => {
    const f1 = { id: 'm1', type: 'order.paid', orderId: 'o1', amount: 10 };
    await s.enqueueOutbox('k1', f1, T0);
    await s.enqueueOutbox('k1', { id: 'm2', type: 'order.expired' }, T0 + 1);
    await s.enqueueOutbox('k2', { id: 'm3', type: 'order.paid' }, T0 + 2);
    const box = await s.outboxOf('k1');
    expect(box.map((r) => r.messageId)).toEqual(['m1', 'm2']);
    expect(box[0]).toMatchObject({ kioskId: 'k1', type: 'order.paid', payload: JSON.stringify(f1), createdAt: T0 });
    expect(box[1]!.seq).toBeGreaterThan(box[0]!.seq);
    expect(await s.outboxDepth()).toBe(3);
    await expect(s.enqueueOutbox('k1', f1, T0)).rejects.toThrow(); // message ids are unique
    expect(await s.deleteOutbox('k2', 'm1')).toBe(false);
    expect(await s.deleteOutbox('k1', 'm1')).toBe(true);
    expect((await s.outboxOf('k1')).map((r) => r.messageId)).toEqual(['m2']);
    expect(await s.outboxDepth()).toBe(2);
    expect(await s.inInbox('k1', 'a1')).toBe(false);
    await s.recordInbox('k1', 'a1', 'vend.result', T0);
    await s.recordInbox('k1', 'a2', 'vend.result', T0 + 100);
    expect(await s.inInbox('k1', 'a1')).toBe(true);
    expect(await s.inInbox('k2', 'a1')).toBe(false);
    await expect(s.recordInbox('k1', 'a1', 'vend.result', T0)).rejects.toThrow();
    expect(await s.pruneInbox(T0 + 50)).toBe(1);
    expect(await s.inInbox('k1', 'a1')).toBe(false);
    expect(await s.inInbox('k1', 'a2')).toBe(true);
  });

  it.skipIf(skip)('machine audits: stored once, listed newest first, the previous read found', async () => {
    expect(await s.insertDexAudit('k1', dexFrame('dex_aaaaaa1', T0), T0 + 1)).toBe(true);
    expect(await s.insertDexAudit('k1', dexFrame('dex_aaaaaa1', T0), T0 + 2)).toBe(false);
    await s.insertDexAudit('k1', dexFrame('dex_aaaaaa2', T0 + 100), T0 + 101);
    await s.insertDexAudit('k1', dexFrame('dex_aaaaaa3', T0 + 200, 'SN2'), T0 + 201);
    const a = await s.getDexAudit('dex_aaaaaa1');
    expect(a).toMatchObject({ auditId: 'dex_aaaaaa1', kioskId: 'k1', machineSerial: 'SN1', readAt: T0, receivedAt: T0 + 1 });
    expect(a?.body).toMatchObject({ auditId: 'dex_aaaaaa1', protocol: 'dex', machine: { serial: 'SN1' } });
    expect((a?.body as Record<string, unknown>).type).toBeUndefined();
    expect((await s.dexAudits({ limit: 10 })).map((x) => x.auditId)).toEqual(['dex_aaaaaa3', 'dex_aaaaaa2', 'dex_aaaaaa1']);
    expect((await s.dexAudits({ kioskId: 'k1', from: T0 + 1, to: T0 + 150, limit: 10 })).map((x) => x.auditId)).toEqual(['dex_aaaaaa2']);
    expect((await s.dexAudits({ kioskId: 'zz', limit: 10 }))).toEqual([]);
    expect((await s.previousDexAudit('k1', 'SN1', T0 + 100))?.auditId).toBe('dex_aaaaaa1');
    expect(await s.previousDexAudit('k1', 'SN2', T0 + 200)).toBeUndefined();
  });

  it.skipIf(skip)('a transaction commits together, rolls back everything when fn throws, nests as a savepoint', async () => {
    await s.insertOrder(order('o1'));
    await expect(
      s.transaction(async (tx) => {
        await tx.transitionOrder('o1', 'payment_verified', T0 + 1, null, { paidAt: T0 + 1 });
        await tx.enqueueOutbox('k1', { id: 'paid-o1', type: 'order.paid' }, T0 + 1);
        throw new Error('crash before commit');
      }),
    ).rejects.toThrow('crash before commit');
    expect((await s.getOrder('o1'))?.state).toBe('pending');
    expect(await s.outboxOf('k1')).toEqual([]);
    expect((await s.orderEvents('o1')).length).toBe(1);

    const r = await s.transaction(async (tx) => {
      await tx.transitionOrder('o1', 'payment_verified', T0 + 2, null, { paidAt: T0 + 2 });
      await tx.enqueueOutbox('k1', { id: 'paid-o1', type: 'order.paid' }, T0 + 2);
      await expect(
        tx.transaction(async (inner) => {
          await inner.flagReview('o1', 'inner');
          throw new Error('inner only');
        }),
      ).rejects.toThrow('inner only');
      return 'done';
    });
    expect(r).toBe('done');
    expect((await s.getOrder('o1'))).toMatchObject({ state: 'paid', needsReview: null });
    expect((await s.outboxOf('k1')).map((m) => m.messageId)).toEqual(['paid-o1']);
  });

  it.skipIf(skip)('a second instance on the same database sees committed changes', async () => {
    const other = await t.reopen();
    await s.insertOrder(order('o1'));
    await other.transitionOrder('o1', 'payment_verified', T0 + 1);
    expect((await s.getOrder('o1'))?.state).toBe('paid');
    await expect(s.transitionOrder('o1', 'payment_verified', T0 + 2)).rejects.toThrow(IllegalTransition);
  });

  it.skipIf(skip)('a closed store refuses calls', async () => {
    const other = await t.reopen();
    await other.close();
    await expect(other.getKiosk('k1')).rejects.toThrow();
  });
});
