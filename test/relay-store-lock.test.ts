import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IllegalTransition } from '../src/core/state-machine.js';
import { openRelayStore, StoreError, type NewOrder, type RelayStore } from '../src/relay/store/index.js';

// The SQLite store has one connection. While a transaction is open on it, a statement from any
// other caller would join that transaction or read its uncommitted rows; the store's lock makes
// every other caller wait until it commits or rolls back (src/relay/store/sqlite/index.ts).

/** A promise the test resolves by hand: the transaction stays open until then. */
function gate() {
  let open!: () => void;
  const opened = new Promise<void>((r) => (open = r));
  return { open, opened };
}

/** Lets every queued callback run (several turns of the event loop), without a clock. */
async function settle(): Promise<void> {
  for (let i = 0; i < 5; i++) await new Promise((r) => setImmediate(r));
}

const order = (id: string): NewOrder => ({
  id,
  kioskId: 'k1',
  slot: 1,
  sku: 'cola',
  title: 'Cola',
  quantity: 1,
  unitPrice: 1500,
  amount: 1500,
  currency: 'ARS',
  claimedAmount: 1500,
  claimedCurrency: 'ARS',
  state: 'pending',
  deadline: 2_000_000_000_000,
  createdAt: 1_000,
});

describe('SQLite store: one transaction at a time on the one connection', () => {
  let dir: string;
  let store: RelayStore;
  beforeEach(async () => {
    dir = mkdtempSync(join(tmpdir(), 'qrk-lock-'));
    store = await openRelayStore(join(dir, 'relay.sqlite'));
    await store.addKiosk({ id: 'k1', posExternalId: 'POS1' });
  });
  afterEach(async () => {
    await store.close();
    rmSync(dir, { recursive: true, force: true });
  });

  it('a call made while a transaction is open waits for its commit and sees the committed row', async () => {
    const g = gate();
    const events: string[] = [];
    const tx = store.transaction(async (t) => {
      await t.insertOrder(order('ord_1'));
      events.push('inserted, not committed');
      await g.opened;
      events.push('committing');
    });
    await settle(); // the transaction has written its row and waits at the gate
    expect(events).toEqual(['inserted, not committed']);
    const read = store.getOrder('ord_1').then((o) => {
      events.push(`outside read: ${o ? o.state : 'nothing'}`);
      return o;
    });
    const count = store.countOrders('pending').then((n) => events.push(`outside count: ${n}`));
    await settle();
    // Still waiting: had it run, it would have read the uncommitted row through the shared connection.
    expect(events).toEqual(['inserted, not committed']);
    g.open();
    await tx;
    expect((await read)?.state).toBe('pending');
    await count;
    expect(events).toEqual(['inserted, not committed', 'committing', 'outside read: pending', 'outside count: 1']);
  });

  it('a rolled-back transaction leaves nothing behind and frees the lock for the waiting callers', async () => {
    const g = gate();
    const tx = store.transaction(async (t) => {
      await t.insertOrder(order('ord_2'));
      await g.opened;
      throw new Error('the handler failed after writing');
    });
    await settle();
    const read = store.getOrder('ord_2');
    g.open();
    await expect(tx).rejects.toThrow('the handler failed after writing');
    expect(await read).toBeUndefined();
    expect(await store.orderEvents('ord_2')).toEqual([]);
    // the lock is free again: a new transaction and a plain call both run
    await store.transaction(async (t) => void (await t.insertOrder(order('ord_3'))));
    expect((await store.getOrder('ord_3'))?.state).toBe('pending');
  });

  it('two transactions never interleave: the second reads what the first committed', async () => {
    await store.insertOrder(order('ord_4'));
    const moves = ['payment_verified', 'cancel'] as const;
    // Both read the order as pending and decide; the store lock runs them one after the other,
    // so the second sees the first's move and its own is refused, never a lost update.
    const results = await Promise.allSettled(
      moves.map((event) =>
        store.transaction(async (t) => {
          const seen = (await t.getOrder('ord_4'))!.state;
          const moved = await t.transitionOrder('ord_4', event, 2_000);
          return `${seen} -> ${moved.state}`;
        }),
      ),
    );
    expect(results[0]).toEqual({ status: 'fulfilled', value: 'pending -> paid' });
    expect(results[1]!.status).toBe('rejected');
    expect((results[1] as PromiseRejectedResult).reason).toBeInstanceOf(IllegalTransition);
    const history = await store.orderEvents('ord_4');
    expect(history.map((e) => `${e.from ?? '-'}>${e.to}:${e.event}`)).toEqual(['->pending:created', 'pending>paid:payment_verified']);
  });

  it('a nested transaction rolls back alone; the outer one commits', async () => {
    await store.transaction(async (t) => {
      await t.insertOrder(order('ord_5'));
      await expect(
        t.transaction(async (inner) => {
          await inner.insertOrder(order('ord_6'));
          throw new Error('inner step failed');
        }),
      ).rejects.toThrow('inner step failed');
    });
    expect(await store.getOrder('ord_5')).toBeDefined();
    expect(await store.getOrder('ord_6')).toBeUndefined();
  });

  it('refuses, instead of hanging, a call on the store itself from inside its own transaction', async () => {
    await expect(
      store.transaction(async () => {
        await store.getOrder('ord_x');
      }),
    ).rejects.toThrow(/inside its own transaction.*`tx`/);
    // and the refusal rolled back and released the lock
    expect(await store.countOrders('pending')).toBe(0);
  });

  it('refuses a transaction handle used after its transaction ended', async () => {
    let kept: RelayStore | undefined;
    await store.transaction(async (t) => {
      kept = t;
    });
    await expect(kept!.getOrder('ord_1')).rejects.toBeInstanceOf(StoreError);
  });

  it('close waits for the open transaction, then refuses further calls', async () => {
    const g = gate();
    const tx = store.transaction(async (t) => {
      await g.opened;
      await t.insertOrder(order('ord_7'));
    });
    await settle();
    const closing = store.close();
    g.open();
    await tx;
    await closing;
    await expect(store.getOrder('ord_7')).rejects.toThrow(/closed/);
    store = await openRelayStore(join(dir, 'relay.sqlite'));
    expect((await store.getOrder('ord_7'))?.state).toBe('pending');
  });
});

// A notification's row is committed without its own fsync; the route answers 200 only after
// durable(), which a synced transaction that inserted a row satisfies (its fsync flushed the log
// with the row in it), or, failing one, durable()'s own fsync of the log.
describe('sqlite store: durable()', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'qrk-durable-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  const notification = { receivedAt: 1_000, form: 'ipn' as const, topic: 'merchant_order', resourceId: '1', query: {}, body: null, headers: {}, signatureOk: null, processedAt: null, outcome: null, source: '127.0.0.1' };

  /** whether `p` has resolved once the queued callbacks ran */
  async function resolved(p: Promise<void>): Promise<boolean> {
    let done = false;
    void p.then(() => (done = true));
    await settle();
    return done;
  }

  it('waits for the next synced transaction that keeps an inserted row, never for one that wrote nothing or rolled its insert back', async () => {
    const { openSqliteStore } = await import('../src/relay/store/sqlite/index.js');
    // an hour: only a transaction can make it resolve within the test
    const s = openSqliteStore(join(dir, 'relay.sqlite'), { durableWithinMs: 3_600_000 });
    try {
      await s.addKiosk({ id: 'k1', posExternalId: 'POS1' });
      expect(await resolved(s.durable())).toBe(true); // nothing unsynced
      await s.insertNotification(notification);
      await s.insertNotification(notification); // last_insert_rowid() 2
      const d = s.durable();
      await s.transaction(async (tx) => void (await tx.getOrder('nope'))); // wrote nothing
      expect(await resolved(d)).toBe(false);
      await s.transaction(async (tx) => {
        // an insert rolled back with its savepoint: it moves last_insert_rowid (to 1), writes nothing
        await tx.transaction(async (inner) => {
          await inner.insertOrder(order('gone'));
          throw new Error('roll back');
        }).catch(() => {});
      });
      expect(await getOrderState(s, 'gone')).toBeUndefined();
      expect(await resolved(d)).toBe(false);
      await s.transaction(async (tx) => void (await tx.insertNotification(notification))); // row 3
      expect(await resolved(d)).toBe(true);
      expect(await resolved(s.durable())).toBe(true); // and nothing is left unsynced
    } finally {
      await s.close();
    }
  });

  it('fsyncs the log itself when no transaction comes, one fsync for every waiter; close() answers the waiters too', async () => {
    const { openSqliteStore } = await import('../src/relay/store/sqlite/index.js');
    const path = join(dir, 'relay.sqlite');
    const s = openSqliteStore(path, { durableWithinMs: 1 });
    await s.insertNotification(notification);
    await s.insertNotification({ ...notification, resourceId: '2' });
    await Promise.all([s.durable(), s.durable()]);
    await s.markNotification(1, 'released', 2_000); // unsynced too
    const held = s.durable();
    await s.close();
    await held;
    const again = openSqliteStore(path);
    try {
      expect((await again.listNotifications()).map((n) => [n.resourceId, n.outcome])).toEqual([
        ['1', 'released'],
        ['2', null],
      ]);
    } finally {
      await again.close();
    }
  });
});

async function getOrderState(s: RelayStore, id: string): Promise<string | undefined> {
  return (await s.getOrder(id))?.state;
}
