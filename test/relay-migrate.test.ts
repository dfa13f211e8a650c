// `qrkiosk relay migrate --from sqlite:… --to postgres://…` on a real SQLite relay file with
// orders in every state and a real PostgreSQL database: everything arrives (the printed counts
// and checksums agree), the PostgreSQL store carries on with the orders where SQLite left them,
// ids of deleted rows are never given again, and a refused or failed copy leaves PostgreSQL as it was.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { relayMain } from '../src/cli/relay-commands.js';
import { ORDER_STATES } from '../src/core/relay-order.js';
import { openPostgresStore, type PostgresRelayStore } from '../src/relay/store/postgres/index.js';
import { hashToken, type NewOrder } from '../src/relay/store/types.js';
import { createTestDatabase, skipWithoutPostgres, type TestDatabase } from './helpers/pg.js';
import { openSqliteTestStore } from './helpers/relay-stores.js';

const skip = await skipWithoutPostgres();
const T0 = 1_764_000_000_000;

function order(id: string, over: Partial<NewOrder> = {}): NewOrder {
  return {
    id,
    kioskId: 'k1',
    slot: 2,
    sku: 'agua',
    title: 'Agua',
    quantity: 1,
    unitPrice: 99_950,
    amount: 99_950,
    currency: 'ARS',
    claimedAmount: 99_950,
    claimedCurrency: 'ARS',
    state: 'pending',
    deadline: T0 + 60_000,
    createdAt: T0,
    ...over,
  };
}

/** A relay file as a season of sales leaves it: every order state, refunds, gaps in the ids. */
async function seedSqlite(path: string): Promise<{ token: string }> {
  const s = await openSqliteTestStore(path);
  try {
    const { token } = await s.addKiosk({ id: 'k1', posExternalId: 'POS1', storeExternalId: 'S1', model: 'unattended' }, T0 - 10);
    await s.addKiosk({ id: 'k2', posExternalId: 'POS2', model: 'dynamic', modelMode: 'online', posQr: 'QR2' }, T0 - 5);
    await s.setKioskPosQr('k1', 'QR1');
    let t = T0;
    const pay = async (id: string) => {
      await s.upsertPayment({ paymentId: `p-${id}`, orderId: id, merchantOrderId: `mo-${id}`, status: 'approved', amount: 99_950, currency: 'ARS' }, ++t);
      await s.transitionOrder(id, 'payment_verified', ++t, `mo-${id}`, { paidAt: t, merchantOrderId: `mo-${id}`, paymentIds: [`p-${id}`] });
      await s.enqueueOutbox('k1', { id: `paid-${id}`, type: 'order.paid' }, t);
    };
    await s.insertOrder(order('o-pending', { createdAt: ++t, deadline: T0 + 1e9, offerState: 'due' }));
    await s.insertOrder(order('o-paid', { createdAt: ++t }));
    await pay('o-paid');
    await s.insertOrder(order('o-vended', { createdAt: ++t }));
    await pay('o-vended');
    await s.transitionOrder('o-vended', 'vend_ok', ++t, null, { vendResult: 'dispensed' });
    await s.insertOrder(order('o-refunding', { createdAt: ++t }));
    await pay('o-refunding');
    await s.transitionOrder('o-refunding', 'vend_failed', ++t, 'jam', { vendResult: 'failed' });
    await s.insertRefundIntent('o-refunding', 'p-o-refunding', 'refund-o-refunding', ++t);
    await s.recordRefundAttempt('refund-o-refunding', 'timeout');
    await s.insertOrder(order('o-refunded', { createdAt: ++t }));
    await pay('o-refunded');
    await s.transitionOrder('o-refunded', 'vend_failed', ++t);
    await s.insertRefundIntent('o-refunded', 'p-o-refunded', 'refund-o-refunded', ++t);
    await s.completeRefund('refund-o-refunded', { mpRefundId: 'R1', amount: 99_950, currency: 'ARS', status: 'approved' }, ++t);
    await s.transitionOrder('o-refunded', 'refund_done', ++t);
    await s.insertOrder(order('o-cancelled', { createdAt: ++t }));
    await s.transitionOrder('o-cancelled', 'cancel', ++t);
    await s.insertOrder(order('o-expired', { createdAt: ++t, kioskId: 'k2', slot: null }));
    await s.transitionOrder('o-expired', 'expire', ++t);
    await s.insertOrder(order('o-rejected', { createdAt: ++t, state: 'rejected', rejectReason: 'price mismatch' }));
    await s.flagReview('o-paid', 'no vend result');
    await s.markVendOverdue('o-paid', ++t, 'overdue');
    await s.insertRefundIntent('o-vended', 'p-extra', 'surplus-1', ++t, 'surplus');
    await s.recordExternalRefund('o-cancelled', 'p-ext', 'ext-1', 500, 'ARS', ++t, 'surplus');
    // notifications: three stored, the first pruned (its id must never be given again)
    const n = { form: 'webhook' as const, topic: 'merchant_order', resourceId: '1', query: { 'data.id': '1' }, body: '{"ñ":"ü"}', headers: { 'x-request-id': 'r' }, signatureOk: true, processedAt: null, outcome: null, source: '10.0.0.9' };
    const n1 = await s.insertNotification({ ...n, receivedAt: ++t });
    await s.markNotification(n1, 'ok', ++t);
    await s.insertNotification({ ...n, receivedAt: ++t, signatureOk: null });
    const n3 = await s.insertNotification({ ...n, receivedAt: ++t, signatureOk: false });
    await s.noteNotificationFailure(n3, 'mp 500');
    await s.pruneNotifications(t + 1);
    // the kiosk acked the first outbox message (deleted: its seq must never come back)
    await s.deleteOutbox('k1', 'paid-o-paid');
    await s.recordInbox('k1', 'vend-1', 'vend.result', ++t);
    await s.insertDexAudit('k1', { v: 1, id: 'x', type: 'dex.audit', auditId: 'dex_abcdef1', readAt: ++t, machine: { serial: 'SN', model: 'm', location: 'l', asset: 'a' }, products: [] } as never, t);
    for (const st of ORDER_STATES) expect(await s.countOrders(st)).toBe(1);
    return { token };
  } finally {
    await s.close();
  }
}

async function cli(args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await relayMain(['migrate', ...args], { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

describe.skipIf(skip)('qrkiosk relay migrate (SQLite -> PostgreSQL)', () => {
  let dir: string;
  let file: string;
  let db: TestDatabase;
  let pgStore: PostgresRelayStore | undefined;

  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'qk-migrate-'));
    file = join(dir, 'relay.sqlite');
    db = await createTestDatabase();
  });
  afterEach(async () => {
    await pgStore?.close();
    pgStore = undefined;
    await db.drop();
    rmSync(dir, { recursive: true, force: true });
  });

  it('copies every table with matching counts and checksums, and PostgreSQL carries on with every order', async () => {
    const { token } = await seedSqlite(file);
    const r = await cli(['--from', `sqlite:${file}`, '--to', db.url]);
    expect(r.err).toEqual([]);
    expect(r.code).toBe(0);
    // the printed before/after lines per table agree
    const lines = (prefix: string) => {
      // every table's line: the indented lines after the heading
      const start = r.out.findIndex((l) => l.startsWith(prefix));
      const rest = r.out.slice(start + 1);
      const end = rest.findIndex((l) => !l.startsWith('  '));
      return end < 0 ? rest : rest.slice(0, end);
    };
    const before = lines('source ');
    const after = lines('target ');
    // every table of the schema: 9 of the spine, 3 of schema 7 (presence, alerts, deliveries), 3 of schema 9 (console operators), 9 of schema 8 (fleet recorder, par levels, API keys)
    expect(before).toHaveLength(24);
    expect(after).toEqual(before);
    expect(before.find((l) => l.includes('orders ') && !l.includes('order_events'))).toMatch(/\s8 rows/);
    expect(r.out.at(-1)).toMatch(/every count and checksum matches/);

    // record for record what the SQLite store answers, the PostgreSQL store answers
    const sq = await openSqliteTestStore(file);
    pgStore = await openPostgresStore(db.url, { poolSize: 2 });
    const p = pgStore;
    try {
      expect(await p.listKiosks()).toEqual(await sq.listKiosks());
      expect((await p.getKioskByTokenHash(hashToken(token)))?.id).toBe('k1');
      expect(await p.kioskRevision()).toBe(await sq.kioskRevision());
      for (const st of ORDER_STATES) {
        const [o] = await sq.ordersInState(st);
        expect(await p.getOrder(o!.id)).toEqual(o);
        expect(await p.orderEvents(o!.id)).toEqual(await sq.orderEvents(o!.id));
        expect(await p.paymentsOf(o!.id)).toEqual(await sq.paymentsOf(o!.id));
        expect(await p.refundsOf(o!.id)).toEqual(await sq.refundsOf(o!.id));
      }
      expect(await p.listNotifications()).toEqual(await sq.listNotifications());
      expect(await p.outboxOf('k1')).toEqual(await sq.outboxOf('k1'));
      expect(await p.inInbox('k1', 'vend-1')).toBe(true);
      expect(await p.getDexAudit('dex_abcdef1')).toEqual(await sq.getDexAudit('dex_abcdef1'));
      expect(await p.ordersNeedingReview()).toEqual(await sq.ordersNeedingReview());
      expect(await p.surplusRefundsDue()).toEqual(await sq.surplusRefundsDue());
      expect(await p.offerWork()).toEqual(await sq.offerWork());

      // carrying on: each open order takes its next step on PostgreSQL
      const t = T0 + 10_000;
      await p.transaction(async (tx) => {
        await tx.transitionOrder('o-pending', 'payment_verified', t, null, { paidAt: t });
        await tx.enqueueOutbox('k1', { id: 'paid-o-pending', type: 'order.paid' }, t);
      });
      await p.transitionOrder('o-paid', 'vend_ok', t + 1, null, { vendResult: 'dispensed' });
      await p.completeRefund('refund-o-refunding', { mpRefundId: 'R2', amount: 99_950, currency: 'ARS', status: 'approved' }, t + 2);
      await p.transitionOrder('o-refunding', 'refund_done', t + 2);
      await p.transitionOrder('o-cancelled', 'late_payment', t + 3);
      await p.moveOffer('o-pending', 'created', t + 4, { mpOrderId: 'ORD9' });
      expect(await p.countOrders('vended')).toBe(2);
      expect(await p.countOrders('refunded')).toBe(2);
      expect(await p.countOrders('refunding')).toBe(1);

      // ids continue after the highest ever given in SQLite, deleted rows included
      const seqs = (await p.outboxOf('k1')).map((m) => m.seq);
      const ro = new Database(file, { readonly: true });
      const sqliteSeqMax = (ro.prepare(`SELECT seq FROM sqlite_sequence WHERE name = 'outbox'`).get() as { seq: number }).seq;
      ro.close();
      expect(seqs.at(-1)).toBe(sqliteSeqMax + 1);
      const newNotification = await p.insertNotification({ receivedAt: t, form: 'ipn', topic: null, resourceId: null, query: {}, body: null, headers: {}, signatureOk: null, processedAt: null, outcome: null });
      expect(newNotification).toBe(4); // 1 was pruned, 2 and 3 copied: never 1 again
      const refund = await p.insertRefundIntent('o-cancelled', 'p-late', 'refund-late', t + 5);
      expect(refund.id).toBe(Math.max(...(await sq.allRefunds()).map((x) => x.id)) + 1);
    } finally {
      await sq.close();
    }
  });

  it('refuses a target that already has relay rows, and --force replaces them', async () => {
    await seedSqlite(file);
    expect((await cli(['--from', `sqlite:${file}`, '--to', db.url])).code).toBe(0);
    const again = await cli(['--from', `sqlite:${file}`, '--to', db.url]);
    expect(again.code).toBe(1);
    expect(again.err.join('\n')).toMatch(/already has relay rows: kiosks \(2 rows\).*--force/);
    // PostgreSQL gains a row the file does not have; --force makes it an exact copy again
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(`INSERT INTO inbox (kiosk_id, message_id, type, applied_at) VALUES ('k9', 'stray', 'x', 1)`);
    const forced = await cli(['--from', `sqlite:${file}`, '--to', db.url, '--force']);
    expect(forced.code).toBe(0);
    expect(forced.out.join('\n')).toMatch(/--force: replacing/);
    expect((await c.query(`SELECT COUNT(*)::int AS n FROM inbox`)).rows[0].n).toBe(1);
    await c.end();
  });

  it('a copy that fails half-way leaves PostgreSQL empty and says why', async () => {
    await seedSqlite(file);
    // a NUL character: SQLite keeps it, PostgreSQL text cannot hold it
    const raw = new Database(file);
    raw.prepare(`UPDATE notifications SET body = 'a' || char(0) || 'b' WHERE id = 2`).run();
    raw.close();
    const r = await cli(['--from', `sqlite:${file}`, '--to', db.url]);
    expect(r.code).toBe(1);
    expect(r.err.join('\n')).toMatch(/qrkiosk relay migrate: failed: /);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    expect((await c.query(`SELECT COUNT(*)::int AS n FROM kiosks`)).rows[0].n).toBe(0);
    await c.end();
  });

  it('names what is wrong with the arguments', async () => {
    expect((await cli(['--to', db.url])).err[0]).toMatch(/--from must be sqlite:FILE/);
    expect((await cli(['--from', `sqlite:${file}`, '--to', 'mysql://x'])).err[0]).toMatch(/--to must be a postgres:\/\/ url/);
    const missing = await cli(['--from', `sqlite:${join(dir, 'none.sqlite')}`, '--to', db.url]);
    expect(missing.code).toBe(1);
    expect(missing.err[0]).toMatch(/cannot open the SQLite relay database .*none\.sqlite/);
  });
});
