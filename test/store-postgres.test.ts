// What only the PostgreSQL store has to prove: several relay instances (here: several pools, as
// separate processes would have) on one database never both win the same order move, share the
// background work without doing a row twice (FOR UPDATE SKIP LOCKED), migrate at the same time
// without racing, and refuse a number that a JS number cannot hold exactly.

import pg from 'pg';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IllegalTransition } from '../src/core/state-machine.js';
import { SchemaTooNew } from '../src/runtime/sqlite.js';
import { openPostgresStore, PG_SCHEMA_VERSION, PostgresOpenError, type PostgresRelayStore } from '../src/relay/store/postgres/index.js';
import { PG_MIGRATIONS } from '../src/relay/store/postgres/migrations.js';
import { exactInteger } from '../src/relay/store/postgres/rows.js';
import { StoreError, type NewOrder } from '../src/relay/store/types.js';
import { createTestDatabase, skipWithoutPostgres, type TestDatabase } from './helpers/pg.js';

const skip = await skipWithoutPostgres();
const T0 = 1_764_000_000_000;

function order(id: string, over: Partial<NewOrder> = {}): NewOrder {
  return {
    id,
    kioskId: 'k1',
    slot: 1,
    sku: 'cola',
    title: 'Cola',
    quantity: 1,
    unitPrice: 1000,
    amount: 1000,
    currency: 'ARS',
    claimedAmount: 1000,
    claimedCurrency: 'ARS',
    state: 'pending',
    deadline: T0 + 60_000,
    createdAt: T0,
    ...over,
  };
}

/** A promise with its resolve, to hand a moment from one async flow to another (no timers). */
function signal(): { promise: Promise<void>; resolve: () => void } {
  let resolve!: () => void;
  const promise = new Promise<void>((r) => (resolve = r));
  return { promise, resolve };
}

describe.skipIf(skip)('PostgreSQL relay store: several instances on one database', () => {
  let db: TestDatabase;
  const stores: PostgresRelayStore[] = [];
  const open = async (poolSize = 4) => {
    const s = await openPostgresStore(db.url, { poolSize, applicationName: 'qrkiosk-test' });
    stores.push(s);
    return s;
  };

  beforeEach(async () => {
    db = await createTestDatabase();
  });
  afterEach(async () => {
    for (const s of stores.splice(0)) await s.close().catch(() => undefined);
    await db.drop();
  });

  it('two instances racing the same release 100 times: 100 single winners, one outbox row each', async () => {
    const a = await open();
    const b = await open();
    await a.addKiosk({ id: 'k1', posExternalId: 'POS1' }, T0);
    const N = 100;
    for (let i = 0; i < N; i++) await a.insertOrder(order(`o${i}`));
    // what the notification handler does: the checked move and its outbox row in one transaction
    const release = (s: PostgresRelayStore, id: string, who: string) =>
      s.transaction(async (tx) => {
        await tx.transitionOrder(id, 'payment_verified', T0 + 1, who, { paidAt: T0 + 1 });
        await tx.enqueueOutbox('k1', { id: `paid-${id}-${who}`, type: 'order.paid' }, T0 + 1);
        return who;
      });
    let winsA = 0;
    let winsB = 0;
    for (let i = 0; i < N; i++) {
      const results = await Promise.allSettled([release(a, `o${i}`, 'A'), release(b, `o${i}`, 'B')]);
      const won = results.filter((r) => r.status === 'fulfilled');
      const lost = results.filter((r): r is PromiseRejectedResult => r.status === 'rejected');
      expect(won).toHaveLength(1);
      expect(lost).toHaveLength(1);
      expect(lost[0]!.reason).toBeInstanceOf(IllegalTransition);
      if ((won[0] as PromiseFulfilledResult<string>).value === 'A') winsA++;
      else winsB++;
    }
    expect(winsA + winsB).toBe(N);
    expect(await a.countOrders('paid')).toBe(N);
    expect(await a.outboxOf('k1')).toHaveLength(N);
    for (let i = 0; i < N; i += 17) {
      const events = await b.orderEvents(`o${i}`);
      expect(events.map((e) => e.event)).toEqual(['created', 'payment_verified']);
    }
    // both sides won some races: the test did race (reported, not asserted: scheduling decides)
    console.log(`release race: A won ${winsA}, B won ${winsB} of ${N}`);
  });

  it('background work is claimed with SKIP LOCKED: two instances take disjoint rows, each expired once', async () => {
    const a = await open();
    const b = await open();
    await a.addKiosk({ id: 'k1', posExternalId: 'POS1' }, T0);
    for (let i = 0; i < 10; i++) await a.insertOrder(order(`o${i}`, { createdAt: T0 + i, deadline: T0 + i }));
    const aHolds = signal();
    const bDone = signal();
    const aWork = a.transaction(async (tx) => {
      const mine = await tx.claimPendingPastDeadline(T0 + 100, 6);
      aHolds.resolve();
      await bDone.promise; // A holds its 6 rows while B claims
      for (const o of mine) await tx.transitionOrder(o.id, 'expire', T0 + 100);
      return mine.map((o) => o.id);
    });
    await aHolds.promise;
    const bIds = await b.transaction(async (tx) => {
      const theirs = await tx.claimPendingPastDeadline(T0 + 100, 10);
      for (const o of theirs) await tx.transitionOrder(o.id, 'expire', T0 + 100);
      return theirs.map((o) => o.id);
    });
    bDone.resolve();
    const aIds = await aWork;
    expect(aIds).toHaveLength(6);
    expect(bIds).toHaveLength(4);
    expect(new Set([...aIds, ...bIds]).size).toBe(10);
    expect(await a.countOrders('expired')).toBe(10);
    for (const id of [...aIds, ...bIds]) expect((await a.orderEvents(id)).filter((e) => e.event === 'expire')).toHaveLength(1);
  });

  it('every claim* skips what another instance holds and needs a transaction', async () => {
    const a = await open();
    const b = await open();
    await a.addKiosk({ id: 'k1', posExternalId: 'POS1' }, T0);
    // one row for each kind of background work
    await a.insertOrder(order('pend', { deadline: T0 })); // past deadline, quiet: expiry + contingency
    await a.insertOrder(order('paid'));
    await a.transitionOrder('paid', 'payment_verified', T0 + 1, null, { paidAt: T0 + 1 }); // overdue vend
    await a.insertOrder(order('refd'));
    await a.transitionOrder('refd', 'cancel', T0 + 1);
    await a.transitionOrder('refd', 'late_payment', T0 + 2); // refunding
    await a.insertOrder(order('offr', { offerState: 'due' })); // offer work
    await a.insertRefundIntent('paid', 'p9', 'surplus-1', T0 + 3, 'surplus'); // surplus due
    const nid = await a.insertNotification({ receivedAt: T0, form: 'webhook', topic: 't', resourceId: '1', query: {}, body: null, headers: {}, signatureOk: true, processedAt: null, outcome: null });

    const claimAll = async (tx: PostgresRelayStore) => ({
      expiry: (await tx.claimPendingPastDeadline(T0 + 10, 10)).map((o) => o.id),
      contingency: (await tx.claimContingencyCandidates(T0 + 10, T0 + 10, T0 + 10, 10)).map((o) => o.id),
      refunding: (await tx.claimOrdersInState('refunding', 10)).map((o) => o.id),
      surplus: (await tx.claimSurplusRefundsDue(10)).map((r) => r.idempotencyKey),
      notifications: (await tx.claimUnprocessedNotifications(10)).map((n) => n.id),
      offers: (await tx.claimOfferWork(10)).map((o) => o.id),
      overdue: (await tx.claimOverdueVends(T0 + 10, 10)).map((o) => o.id),
    });
    const held = signal();
    const release = signal();
    const first = a.transaction(async (tx) => {
      const got = await claimAll(tx);
      held.resolve();
      await release.promise;
      return got;
    });
    await held.promise;
    const second = await b.transaction(claimAll);
    release.resolve();
    const got = await first;
    expect(got).toEqual({
      expiry: ['pend'],
      contingency: ['offr', 'pend'], // both pending and quiet; same created_at, then by id
      refunding: ['refd'],
      surplus: ['surplus-1'],
      notifications: [nid],
      offers: ['offr'],
      overdue: ['paid'],
    });
    expect(second).toEqual({ expiry: [], contingency: [], refunding: [], surplus: [], notifications: [], offers: [], overdue: [] });
    // once A's transaction ended, its rows are free again
    expect((await b.transaction((tx) => tx.claimOfferWork(10))).map((o) => o.id)).toEqual(['offr']);
    await expect(a.claimOfferWork(10)).rejects.toThrow(/transaction/);
  });

  it('a refused move inside a transaction leaves it usable', async () => {
    const a = await open();
    await a.addKiosk({ id: 'k1', posExternalId: 'POS1' }, T0);
    await a.insertOrder(order('o1'));
    await a.transaction(async (tx) => {
      await expect(tx.transitionOrder('o1', 'vend_ok', T0 + 1)).rejects.toThrow(IllegalTransition);
      await expect(tx.transitionOrder('nope', 'vend_ok', T0 + 1)).rejects.toThrow(StoreError);
      await tx.noteOrderEvent('o1', 'pending', 'refused_vend_ok', null, T0 + 1);
    });
    expect((await a.orderEvents('o1')).map((e) => e.event)).toEqual(['created', 'refused_vend_ok']);
  });

  it('a transaction store used after its transaction ended is refused', async () => {
    const a = await open();
    let leaked: PostgresRelayStore | undefined;
    await a.transaction(async (tx) => {
      leaked = tx;
    });
    await expect(leaked!.listKiosks()).rejects.toThrow(/transaction has ended/);
  });

  it('a call on the outer store from inside its own transaction is refused (as SQLite refuses it)', async () => {
    const a = await open();
    await a.addKiosk({ id: 'k1', posExternalId: 'POS1' }, T0);
    await a.insertOrder(order('o1'));
    await expect(
      a.transaction(async (tx) => {
        await tx.transitionOrder('o1', 'cancel', T0 + 1); // the row is locked by tx now
        await a.flagReview('o1', 'from outside'); // would wait for tx forever
      }),
    ).rejects.toThrow(/on the `tx` handle/);
    expect((await a.getOrder('o1'))?.state).toBe('pending'); // rolled back
  });

  it('close() lets a running transaction finish, then refuses calls', async () => {
    const a = await open();
    await a.addKiosk({ id: 'k1', posExternalId: 'POS1' }, T0);
    const inside = signal();
    const goOn = signal();
    const tx = a.transaction(async (t) => {
      inside.resolve();
      await goOn.promise;
      await t.insertOrder(order('o1'));
      return 'committed';
    });
    await inside.promise;
    const closing = a.close();
    goOn.resolve();
    expect(await tx).toBe('committed');
    await closing;
    await expect(a.getOrder('o1')).rejects.toThrow(/closed/);
    const b = await open();
    expect((await b.getOrder('o1'))?.state).toBe('pending');
  });

  it('a connection killed inside a transaction fails that transaction only; the store goes on', async () => {
    const a = await open();
    await a.addKiosk({ id: 'k1', posExternalId: 'POS1' }, T0);
    const inside = signal();
    const killed = signal();
    const tx = a.transaction(async (t) => {
      await t.insertOrder(order('o1'));
      inside.resolve();
      await killed.promise;
      await t.insertOrder(order('o2'));
    });
    await inside.promise;
    const admin = new pg.Client({ connectionString: db.url });
    await admin.connect();
    const r = await admin.query(
      `SELECT pg_terminate_backend(pid) AS done FROM pg_stat_activity WHERE datname = current_database() AND state = 'idle in transaction' AND pid <> pg_backend_pid()`,
    );
    await admin.end();
    expect(r.rows).toEqual([{ done: true }]);
    killed.resolve();
    await expect(tx).rejects.toThrow();
    expect(await a.getOrder('o1')).toBeUndefined(); // rolled back with the connection
    await a.insertOrder(order('o3')); // the pool opened a new connection
    expect((await a.getOrder('o3'))?.state).toBe('pending');
  });

  it('instances starting together migrate once, without racing', async () => {
    const started = await Promise.all([open(2), open(2), open(2), open(2)]);
    expect(started).toHaveLength(4);
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    try {
      const meta = await c.query(`SELECT key, value FROM schema_meta ORDER BY key`);
      expect(meta.rows).toEqual([
        // code that stops at the last step that is not additive can still use the schema
        { key: 'oldest_reader', value: String(Math.max(...PG_MIGRATIONS.filter((m) => !m.additive).map((m) => m.version))) },
        { key: 'version', value: String(PG_SCHEMA_VERSION) },
      ]);
    } finally {
      await c.end();
    }
  });

  it('refuses a schema written by newer code that this code cannot use', async () => {
    await (await open()).close();
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(`UPDATE schema_meta SET value = 99`);
    await c.end();
    await expect(openPostgresStore(db.url)).rejects.toThrow(SchemaTooNew);
  });

  it('never rounds a BIGINT: a value beyond 2^53 is refused, not returned as a float', async () => {
    const a = await open();
    await a.addKiosk({ id: 'k1', posExternalId: 'POS1' }, T0);
    await a.insertOrder(order('o1'));
    const c = new pg.Client({ connectionString: db.url });
    await c.connect();
    await c.query(`UPDATE orders SET amount = 9007199254740993 WHERE id = 'o1'`);
    await c.end();
    await expect(a.getOrder('o1')).rejects.toThrow(/2\^53/);
    expect(exactInteger('9007199254740991')).toBe(Number.MAX_SAFE_INTEGER);
    expect(() => exactInteger('12.5')).toThrow(StoreError);
  });
});

describe.skipIf(skip)('PostgreSQL relay store: bad settings', () => {
  it('names the address (not the password) and what to check when nothing answers', async () => {
    const err = await openPostgresStore('postgres://relay:s3cret@127.0.0.1:1/relay', { connectTimeoutMs: 5000 }).catch((e: Error) => e);
    expect(err).toBeInstanceOf(PostgresOpenError);
    expect((err as Error).message).toMatch(/cannot connect to the relay database postgres:\/\/relay:\*\*\*@127\.0\.0\.1:1\/relay/);
    expect((err as Error).message).not.toContain('s3cret');
  });

  it('refuses a url that is not postgres://', async () => {
    await expect(openPostgresStore('mysql://x@h/db')).rejects.toThrow(/must start with postgres:\/\//);
    await expect(openPostgresStore('not a url')).rejects.toThrow(/store.url is not a URL/);
  });
});
