import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ActionError, ConsoleActions, type Actor } from '../src/relay/console/actions.js';
import { hashPassword } from '../src/relay/console/passwords.js';
import { ConsoleSessions, SESSION_COOKIE } from '../src/relay/console/web/sessions.js';
import { orderTimeline, salesCsv, salesRows } from '../src/relay/console/web/views.js';
import type { OrderRecord, RelayStore } from '../src/relay/store/index.js';
import { silentLogger } from '../src/runtime/log.js';
import { openTestStore, STORE_KINDS, type TestStore } from './helpers/relay-stores.js';

// Console accounts, sessions and operator actions on real stores, SQLite and PostgreSQL (schema 9): the login
// limits, session expiry and logout, disabling an account, role checks, the second approver,
// the audit read into the order's timeline, and the sales CSV.

const PASSWORD = 'correct horse battery';
let t: TestStore;
let store: RelayStore;
let clock = 1_800_000_000_000;
const now = () => clock;

describe.each(STORE_KINDS)('on %s', (kind) => {
beforeEach(async () => {
  clock = 1_800_000_000_000;
  t = await openTestStore(kind);
  store = t.store;
  await store.addKiosk({ id: 'k1', posExternalId: 'POS1' });
});
afterEach(async () => {
  await t.cleanup();
});

const cookie = (secret: string) => `other=1; ${SESSION_COOKIE}=${encodeURIComponent(secret)}`;

describe('console sessions', () => {
  it('logs in, keeps only the hash, expires, logs out; a disabled account is refused and its sessions end', async () => {
    await store.addOperator('Ana@Example.com', 'operator', await hashPassword(PASSWORD), now());
    const s = new ConsoleSessions({ store, now, ttlMs: 3_600_000 });
    const r = await s.login('10.0.0.1', 'ana@example.com', PASSWORD);
    if (!r.ok) throw new Error(r.message);
    expect(await store.getOperatorSession(r.secret)).toBeUndefined(); // the secret itself is not stored
    const u = await s.user(cookie(r.secret));
    expect(u?.operator.email).toBe('ana@example.com');
    clock += 3_600_000;
    expect(await s.user(cookie(r.secret))).toBeUndefined(); // expired
    const r2 = await s.login('10.0.0.1', 'ana@example.com', PASSWORD);
    if (!r2.ok) throw new Error(r2.message);
    const u2 = (await s.user(cookie(r2.secret)))!;
    await s.logout(u2.tokenHash);
    expect(await s.user(cookie(r2.secret))).toBeUndefined();
    const r3 = await s.login('10.0.0.1', 'ana@example.com', PASSWORD);
    if (!r3.ok) throw new Error(r3.message);
    expect(await store.setOperatorDisabled('ana@example.com', now())).toBe(true);
    expect(await s.user(cookie(r3.secret))).toBeUndefined();
    expect(await s.login('10.0.0.1', 'ana@example.com', PASSWORD)).toMatchObject({ ok: false, status: 401 });
  });

  it('limits failed logins per account and per source', async () => {
    await store.addOperator('ana@example.com', 'operator', await hashPassword(PASSWORD), now());
    await store.addOperator('bob@example.com', 'operator', await hashPassword(PASSWORD), now());
    const s = new ConsoleSessions({ store, now, ttlMs: 3_600_000, limits: { windowMs: 60_000, perSource: 4, perAccount: 2 } });
    expect(await s.login('10.0.0.1', 'ana@example.com', 'wrong password!')).toMatchObject({ ok: false, status: 401 });
    expect(await s.login('10.0.0.2', 'ana@example.com', 'wrong password!')).toMatchObject({ ok: false, status: 401 });
    // the account is locked for the window even with the right password, from any source
    expect(await s.login('10.0.0.3', 'ana@example.com', PASSWORD)).toMatchObject({ ok: false, status: 429 });
    expect((await s.login('10.0.0.3', 'bob@example.com', PASSWORD)).ok).toBe(true);
    // one source guessing across accounts
    for (const e of ['x@example.com', 'y@example.com', 'z@example.com']) await s.login('10.0.0.9', e, 'nope nope nope');
    expect(await s.login('10.0.0.9', 'w@example.com', 'nope nope nope')).toMatchObject({ ok: false, status: 401 });
    expect(await s.login('10.0.0.9', 'bob@example.com', PASSWORD)).toMatchObject({ ok: false, status: 429 });
    clock += 60_001;
    expect((await s.login('10.0.0.3', 'ana@example.com', PASSWORD)).ok).toBe(true);
    expect((await s.login('10.0.0.9', 'bob@example.com', PASSWORD)).ok).toBe(true);
  });

  it('refuses a second account with the same e-mail', async () => {
    await store.addOperator('ana@example.com', 'viewer', 'scrypt$x', now());
    await expect(store.addOperator(' ANA@example.com', 'admin', 'scrypt$y', now())).rejects.toThrow(/exists already/);
  });
});

async function vendedOrder(id: string, amount: number): Promise<OrderRecord> {
  await store.insertOrder({ id, kioskId: 'k1', slot: 1, sku: 'COLA', title: 'Cola', quantity: 1, unitPrice: amount, amount, currency: 'ARS', claimedAmount: amount, claimedCurrency: 'ARS', state: 'pending', deadline: now() + 60_000, createdAt: now() });
  await store.transitionOrder(id, 'payment_verified', now() + 1000, 'paid', { paidAt: now() + 1000 });
  const o = await store.transitionOrder(id, 'vend_ok', now() + 2000, 'dispensed');
  clock += 3000; // the operator acts after the vend
  return o;
}

describe('operator actions', () => {
  const ana: Actor = { operatorId: 1, name: 'ana@example.com', role: 'operator' };
  const bob: Actor = { operatorId: 2, name: 'bob@example.com', role: 'operator' };
  const vic: Actor = { operatorId: 3, name: 'vic@example.com', role: 'viewer' };
  const issued: unknown[] = [];
  let actions: ConsoleActions;
  beforeEach(async () => {
    for (const a of [ana, bob, vic]) expect((await store.addOperator(a.name, a.role, 'scrypt$unused', now())).id).toBe(a.operatorId);
    issued.length = 0;
    actions = new ConsoleActions({
      store,
      // the order service's move, as relay/orders.ts does it: one transaction with the audit
      orders: {
        operatorRefund: (id, detail, audit) =>
          store.transaction(async (tx) => {
            const o = await tx.transitionOrder(id, 'operator_refund', now(), detail);
            await audit(tx);
            return o;
          }),
      },
      commands: { issue: async (kioskId, action, opts) => (issued.push({ kioskId, action, opts }), { id: 'cmd_abcdefgh' }) as never },
      logger: silentLogger(),
      now,
      approvalAbove: 100_000,
    });
  });

  it('a viewer cannot refund; an operator refunds a small order at once, with the audit in its timeline', async () => {
    await vendedOrder('ord_small', 50_000);
    await expect(actions.refund(vic, 'ord_small', 'x')).rejects.toMatchObject({ status: 403 });
    await expect(actions.refund(ana, 'ord_small', '  ')).rejects.toMatchObject({ status: 400 });
    expect(await actions.refund(ana, 'ord_small', 'warm can')).toMatchObject({ state: 'refunding' });
    expect((await store.getOrder('ord_small'))!.state).toBe('refunding');
    await expect(actions.refund(ana, 'ord_small', 'again')).rejects.toMatchObject({ status: 409 });
    const t = await orderTimeline(store, (await store.getOrder('ord_small'))!);
    expect(t.map((e) => `${e.step}/${e.source}`)).toEqual(['selected/kiosk', 'paid/mercadopago', 'dispensing/relay', 'dispensed/kiosk', 'refunding/operator', 'refund/operator']);
    expect(t.at(-1)).toMatchObject({ who: 'ana@example.com', detail: 'warm can' });
  });

  it('above the amount a refund waits for a second operator, not the one who asked', async () => {
    await vendedOrder('ord_big', 150_000);
    expect(await actions.refund(ana, 'ord_big', 'machine ate the coin')).toMatchObject({ state: 'awaiting_approval' });
    expect((await store.getOrder('ord_big'))!.state).toBe('vended');
    await expect(actions.refund(bob, 'ord_big', 'me too')).rejects.toMatchObject({ status: 409 });
    await expect(actions.approveRefund(ana, 'ord_big', 'ok')).rejects.toMatchObject({ status: 403 });
    await expect(actions.approveRefund(vic, 'ord_big', 'ok')).rejects.toBeInstanceOf(ActionError);
    await actions.approveRefund(bob, 'ord_big', 'seen the video');
    expect((await store.getOrder('ord_big'))!.state).toBe('refunding');
    expect((await store.operatorAuditOf('ord_big')).map((a) => `${a.action}:${a.actor}`)).toEqual(['refund.requested:ana@example.com', 'refund.approved:bob@example.com']);
    expect(await actions.pendingApproval('ord_big')).toBeUndefined();
  });

  it('partial refunds: the second approver looks at the amount refunded, spread over the payments, never above what is left', async () => {
    await vendedOrder('ord_p', 150_000);
    // two payments of the one order (a split payment): 100000 + 50000
    await store.upsertPayment({ paymentId: 'pay1', orderId: 'ord_p', merchantOrderId: 'mo1', status: 'approved', amount: 100_000, currency: 'ARS' }, now());
    await store.upsertPayment({ paymentId: 'pay2', orderId: 'ord_p', merchantOrderId: 'mo1', status: 'approved', amount: 50_000, currency: 'ARS' }, now());
    // 60000 is below the approval amount (100000) although the order is above it: at once
    expect(await actions.refund(ana, 'ord_p', 'dented', { amount: 60_000 })).toMatchObject({ state: 'partial', amount: 60_000 });
    expect((await store.refundsOf('ord_p')).map((r) => [r.paymentId, r.reason, r.requestedAmount, r.status])).toEqual([['pay1', 'partial', 60_000, 'requested']]);
    // 80000: from pay1 what is left (40000), then pay2 (40000)
    expect(await actions.refund(ana, 'ord_p', 'and more', { amount: 80_000, requestKey: 'x1' })).toMatchObject({ state: 'partial' });
    expect((await store.refundsOf('ord_p')).slice(1).map((r) => [r.paymentId, r.requestedAmount])).toEqual([['pay1', 40_000], ['pay2', 40_000]]);
    // the same request key again: the first answer, nothing written
    expect(await actions.refund(ana, 'ord_p', 'and more', { amount: 80_000, requestKey: 'x1' })).toMatchObject({ state: 'partial', amount: 80_000 });
    expect(await store.refundsOf('ord_p')).toHaveLength(3);
    await expect(actions.refund(ana, 'ord_p', 'too much', { amount: 10_001 })).rejects.toMatchObject({ status: 400 });
    await expect(actions.refund(ana, 'ord_p', 'bad', { amount: -5 })).rejects.toMatchObject({ status: 400 });
    // Mercado Pago refused the second part of pay2: that amount is refundable again
    const [, , part] = await store.refundsOf('ord_p');
    await store.failRefund(part!.idempotencyKey, 'HTTP 400 2063: invalid payment state', now());
    expect((await actions.refusedRefunds('ord_p')).map((r) => r.id)).toEqual([part!.id]);
    await expect(actions.refund(vic, 'ord_p', 'x', { amount: 1 })).rejects.toMatchObject({ status: 403 });
    await expect(actions.retryRefund(vic, 'ord_p', 'x')).rejects.toMatchObject({ status: 403 });
    await expect(actions.retryRefund(ana, 'ord_p', 'x', 999)).rejects.toMatchObject({ status: 409 });
    // two retries at once: one new row, with a key of its own
    const both = await Promise.allSettled([actions.retryRefund(ana, 'ord_p', 'payment fixed'), actions.retryRefund(bob, 'ord_p', 'payment fixed')]);
    expect(both.map((r) => r.status).sort()).toEqual(['fulfilled', 'rejected']);
    const rows = await store.refundsOf('ord_p');
    expect(rows).toHaveLength(4);
    expect(rows[3]).toMatchObject({ paymentId: 'pay2', reason: 'partial', requestedAmount: 40_000, status: 'requested' });
    expect(rows[3]!.idempotencyKey).toBe(`${part!.idempotencyKey}-r${part!.id}`);
    expect(await actions.refusedRefunds('ord_p')).toEqual([]);
    // 10000 left: a full refund now is of 10000; the order moves to refunding
    expect(await actions.refund(ana, 'ord_p', 'the rest')).toMatchObject({ state: 'refunding', amount: 10_000 });
  });

  it('a partial refund above the approval amount waits, and is approved as that partial refund', async () => {
    await vendedOrder('ord_q', 300_000);
    await store.upsertPayment({ paymentId: 'payq', orderId: 'ord_q', merchantOrderId: 'moq', status: 'approved', amount: 300_000, currency: 'ARS' }, now());
    expect(await actions.refund(ana, 'ord_q', 'big part', { amount: 120_000 })).toMatchObject({ state: 'awaiting_approval', amount: 120_000 });
    expect(await actions.pendingApproval('ord_q')).toMatchObject({ actor: 'ana@example.com', amount: 120_000 });
    expect(await store.refundsOf('ord_q')).toEqual([]);
    expect(await actions.approveRefund(bob, 'ord_q', 'ok')).toMatchObject({ state: 'partial', amount: 120_000 });
    expect((await store.refundsOf('ord_q')).map((r) => r.requestedAmount)).toEqual([120_000]);
    expect((await store.getOrder('ord_q'))!.state).toBe('vended');
    expect(await actions.pendingApproval('ord_q')).toBeUndefined();
  });

  it('clears a review with a decision; kiosk commands need the role of their kind', async () => {
    await vendedOrder('ord_r', 10_000);
    await store.flagReview('ord_r', 'vend result overdue: x');
    await expect(actions.clearReview(ana, 'ord_r', '', 'why')).rejects.toMatchObject({ status: 400 });
    await actions.clearReview(ana, 'ord_r', 'product was given', 'camera');
    expect((await store.getOrder('ord_r'))!.needsReview).toBeNull();
    expect(await store.operatorAuditOf('ord_r')).toMatchObject([{ action: 'review.cleared', reason: 'camera', detail: expect.stringContaining('product was given') }]);
    await expect(actions.kioskCommand(ana, 'k1', { kind: 'price.set', sku: 'COLA', price: 1, currency: 'ARS' }, 'x')).rejects.toMatchObject({ status: 403 });
    await expect(actions.kioskCommand(vic, 'k1', { kind: 'service', inService: false }, 'x')).rejects.toMatchObject({ status: 403 });
    await expect(actions.kioskCommand(ana, 'k1', { kind: 'reboot' }, 'x')).rejects.toMatchObject({ status: 400 });
    expect(await actions.kioskCommand(ana, 'k1', { kind: 'service', inService: false }, 'cleaning')).toEqual({ commandId: 'cmd_abcdefgh' });
    expect(issued).toEqual([{ kioskId: 'k1', action: { kind: 'service', inService: false }, opts: { by: 'ana@example.com', reason: 'cleaning' } }]);
    expect((await store.recentOperatorAudit(1))[0]).toMatchObject({ action: 'kiosk.service', kioskId: 'k1' });
  });

  it('sales per day, kiosk and product as CSV, formulas defused', async () => {
    await vendedOrder('ord_a', 150_000);
    await vendedOrder('ord_b', 150_000);
    const rows = await salesRows(store);
    // the test clock starts 2027-01-15T08:00Z: every sale falls on that UTC day
    expect(rows).toEqual([{ day: '2027-01-15', kioskId: 'k1', sku: 'COLA', title: 'Cola', count: 2, amount: 300_000, currency: 'ARS' }]);
    expect(salesCsv(rows).split('\n')[1]).toBe(`${rows[0]!.day},k1,COLA,Cola,2,300000,ARS`);
    expect(salesCsv([{ ...rows[0]!, title: '=HYPERLINK("x")' }]).split('\n')[1]).toContain(`"'=HYPERLINK(""x"")"`);
  });
});
});
