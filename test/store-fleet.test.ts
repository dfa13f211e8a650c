// The fleet recorder's guarantees in the relay store (relay/fleet-recorder.ts, migration 8), the
// same test bodies against BOTH stores (SQLite file, real PostgreSQL database): a refill is kept
// once per refillId (also across two instances), a command moves only by core/kiosk-command.ts
// and each move writes its history row in the same transaction (a rolled-back transaction leaves
// neither), and what one instance records another reads (the CLI inserts, the relay delivers).

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { IllegalTransition } from '../src/core/state-machine.js';
import type { CommandRecord, RefillRecord } from '../src/relay/fleet-recorder.js';
import type { RelayStore } from '../src/relay/store/api.js';
import { StoreError } from '../src/relay/store/types.js';
import { skipWithoutPostgres } from './helpers/pg.js';
import { openTestStore, STORE_KINDS, type StoreKind, type TestStore } from './helpers/relay-stores.js';

const skipPg = await skipWithoutPostgres();
const T0 = 1_764_000_000_000;

function command(id: string, over: Partial<CommandRecord> = {}): CommandRecord {
  return {
    id,
    kioskId: 'k1',
    kind: 'price.set',
    action: { kind: 'price.set', sku: 'cola', price: 180_000, currency: 'ARS' },
    issuedBy: 'cli:ana',
    reason: 'new list',
    issuedAt: T0,
    expiresAt: T0 + 600_000,
    state: 'issued',
    frame: '{"v":1,"id":"f1","type":"command","payload":"{}"}',
    deliveredAt: null,
    kioskAt: null,
    answeredAt: null,
    refusal: null,
    result: null,
    message: null,
    history: [{ at: T0, from: null, to: 'issued', event: 'issue', detail: null }],
    ...over,
  };
}

function refill(refillId: string, at = T0): RefillRecord {
  return { refillId, kioskId: 'k1', at, by: 'tech', slots: [{ slot: 1, sku: 'cola', before: 2, after: 10 }], receivedAt: at + 5 };
}

describe.each(STORE_KINDS)('fleet recorder in the relay store: %s', (kind: StoreKind) => {
  const skip = kind === 'postgres' && skipPg;
  let t: TestStore;
  let s: RelayStore;

  beforeEach(async () => {
    if (skip) return;
    t = await openTestStore(kind);
    s = t.store;
  });
  afterEach(async () => {
    if (!skip) await t.cleanup();
  });

  it.skipIf(skip)('recordRefill keeps a refill once per refillId, also when a second instance receives the re-sent frame', async () => {
    expect(await s.recordRefill(refill('rfl_aaaaaa'))).toBe(true);
    expect(await s.recordRefill(refill('rfl_aaaaaa', T0 + 99))).toBe(false);
    const other = await t.reopen();
    const both = await Promise.all([other.recordRefill(refill('rfl_bbbbbb', T0 + 10)), s.recordRefill(refill('rfl_bbbbbb', T0 + 10))]);
    expect(both.filter(Boolean)).toHaveLength(1);
    const kept = await s.refills('k1');
    expect(kept.map((r) => r.refillId)).toEqual(['rfl_bbbbbb', 'rfl_aaaaaa']); // newest first
    expect(kept[1]).toEqual(refill('rfl_aaaaaa')); // the first one, unchanged by the re-send
    expect(await s.refills('k2')).toEqual([]);
  });

  it.skipIf(skip)('transitionCommand follows the table and writes one history row per move; an illegal move changes nothing', async () => {
    await s.insertCommand(command('cmd_1'));
    await expect(s.insertCommand(command('cmd_1'))).rejects.toThrow(StoreError);
    const delivered = await s.transitionCommand('cmd_1', 'ack', T0 + 1, { deliveredAt: T0 + 1 });
    expect(delivered).toMatchObject({ state: 'delivered', deliveredAt: T0 + 1 });
    const applied = await s.transitionCommand('cmd_1', 'applied', T0 + 2, { kioskAt: T0 + 2, answeredAt: T0 + 3, result: { applied: true } as never }, 'kiosk says so');
    expect(applied.state).toBe('applied');
    expect(applied.result).toEqual({ applied: true });
    await expect(s.transitionCommand('cmd_1', 'ack', T0 + 4)).rejects.toThrow(IllegalTransition);
    await s.noteCommand('cmd_1', T0 + 5, 'late second answer');
    const got = (await s.getCommand('cmd_1'))!;
    expect(got.state).toBe('applied');
    expect(got.history).toEqual([
      { at: T0, from: null, to: 'issued', event: 'issue', detail: null },
      { at: T0 + 1, from: 'issued', to: 'delivered', event: 'ack', detail: null },
      { at: T0 + 2, from: 'delivered', to: 'applied', event: 'applied', detail: 'kiosk says so' },
      { at: T0 + 5, from: 'applied', to: 'applied', event: 'note', detail: 'late second answer' },
    ]);
    await expect(s.transitionCommand('nope', 'ack', T0)).rejects.toThrow(StoreError);
  });

  it.skipIf(skip)('a move and its history row commit together: a rolled-back transaction leaves neither', async () => {
    await s.insertCommand(command('cmd_2'));
    await expect(
      s.transaction(async (tx) => {
        await tx.transitionCommand('cmd_2', 'ack', T0 + 1, { deliveredAt: T0 + 1 });
        throw new Error('crash after the move');
      }),
    ).rejects.toThrow('crash after the move');
    const got = (await s.getCommand('cmd_2'))!;
    expect(got.state).toBe('issued');
    expect(got.deliveredAt).toBeNull();
    expect(got.history).toHaveLength(1);
  });

  it.skipIf(skip)('two instances answering the same command at once: one move wins, the other is refused', async () => {
    await s.insertCommand(command('cmd_3'));
    const other = await t.reopen();
    const results = await Promise.allSettled([s.transitionCommand('cmd_3', 'ack', T0 + 1), other.transitionCommand('cmd_3', 'ack', T0 + 1)]);
    expect(results.filter((r) => r.status === 'fulfilled')).toHaveLength(1);
    const refused = results.find((r) => r.status === 'rejected') as PromiseRejectedResult;
    expect(refused.reason).toBeInstanceOf(IllegalTransition);
    expect((await s.getCommand('cmd_3'))!.history.filter((h) => h.event === 'ack')).toHaveLength(1);
  });

  it.skipIf(skip)('commands listed per kiosk (newest first) and by state (oldest first), seen by another instance', async () => {
    const other = await t.reopen();
    await other.insertCommand(command('cmd_a', { issuedAt: T0 }));
    await other.insertCommand(command('cmd_b', { issuedAt: T0 + 1, kind: 'test.vend', action: { kind: 'test.vend', slot: 2 } }));
    await other.insertCommand(command('cmd_c', { kioskId: 'k2' }));
    await s.transitionCommand('cmd_a', 'expired', T0 + 2);
    expect((await s.commandsOf('k1')).map((c) => c.id)).toEqual(['cmd_b', 'cmd_a']);
    expect((await s.commandsIn(['issued', 'delivered'])).map((c) => c.id)).toEqual(['cmd_b', 'cmd_c']);
    expect((await s.commandsIn([])).length).toBe(0);
    expect((await s.getCommand('cmd_b'))!.action).toEqual({ kind: 'test.vend', slot: 2 });
  });

  it.skipIf(skip)('status snapshots, presence, refusals (bounded) and per-kiosk prices are kept and replaced', async () => {
    await s.saveStatus({ kioskId: 'k1', status: { at: T0, screen: 'idle' } as never, receivedAt: T0 });
    await s.saveStatus({ kioskId: 'k1', status: { at: T0 + 1, screen: 'pay' } as never, receivedAt: T0 + 1 });
    expect(await s.statuses()).toEqual([{ kioskId: 'k1', status: { at: T0 + 1, screen: 'pay' }, receivedAt: T0 + 1 }]);
    await s.setPresence({ kioskId: 'k1', online: true, since: T0 });
    await s.setPresence({ kioskId: 'k1', online: false, since: T0 + 9 });
    expect(await s.presences()).toEqual([{ kioskId: 'k1', online: false, since: T0 + 9 }]);
    await s.recordRefusal({ kioskId: 'k1', frameId: 'f1', commandId: null, reason: 'bad_signature' as never, message: 'forged', ours: false, receivedAt: T0 });
    await s.recordRefusal({ kioskId: 'k1', frameId: 'f2', commandId: 'cmd_x', reason: 'replayed' as never, message: 'again', ours: true, receivedAt: T0 + 1 });
    expect((await s.refusals('k1')).map((r) => [r.frameId, r.ours])).toEqual([
      ['f2', true],
      ['f1', false],
    ]);
    await s.setKioskPrices('k1', { catalog: null, prices: { cola: { price: 180_000, currency: 'ARS' } }, commandId: 'cmd_a' });
    await s.setKioskPrices('k1', { catalog: null, prices: { cola: { price: 190_000, currency: 'ARS' } }, commandId: 'cmd_b' });
    expect([...(await s.kioskPrices())]).toEqual([['k1', { catalog: null, prices: { cola: { price: 190_000, currency: 'ARS' } }, commandId: 'cmd_b' }]]);
  });

  it.skipIf(skip)('API keys: a name once, found by secret hash, revoked by id or name once; par levels set, replaced, removed', async () => {
    await s.insertApiKey({ id: 'key_1', name: 'erp', scopes: ['orders', 'sales'], secretHash: 'h1', createdAt: T0 });
    await expect(s.insertApiKey({ id: 'key_2', name: 'erp', scopes: [], secretHash: 'h2', createdAt: T0 })).rejects.toThrow(/named "erp" exists/);
    expect(await s.apiKeyByHash('h1')).toEqual({ id: 'key_1', name: 'erp', scopes: ['orders', 'sales'], secretHash: 'h1', createdAt: T0, revokedAt: null });
    expect(await s.apiKeyByHash('nope')).toBeUndefined();
    expect(await s.revokeApiKey('erp', T0 + 5)).toBe(true);
    expect(await s.revokeApiKey('key_1', T0 + 6)).toBe(false);
    expect((await s.listApiKeys())[0]!.revokedAt).toBe(T0 + 5);
    await s.setParLevel('k1', 2, 10);
    await s.setParLevel('k1', 1, 8);
    await s.setParLevel('k1', 2, 12);
    await s.setParLevel('k2', 1, 5);
    await s.setParLevel('k2', 1, 0);
    expect(await s.parLevels()).toEqual([
      { kioskId: 'k1', slot: 1, par: 8 },
      { kioskId: 'k1', slot: 2, par: 12 },
    ]);
  });

  it.skipIf(skip)('sales per UTC day, kiosk and product: vended orders by the day they were paid', async () => {
    await s.addKiosk({ id: 'k1', posExternalId: 'POS1', storeExternalId: 'STORE1', model: 'unattended' }, T0 - 1000);
    const DAY = 86_400_000;
    const day0 = Math.floor(T0 / DAY) * DAY;
    const sell = async (id: string, paidAt: number, vend: 'vend_ok' | 'vend_failed', sku = 'cola', quantity = 1) => {
      await s.insertOrder({ id, kioskId: 'k1', slot: 1, sku, title: sku, quantity, unitPrice: 100, amount: 100 * quantity, currency: 'ARS', claimedAmount: 100 * quantity, claimedCurrency: 'ARS', state: 'pending', deadline: paidAt + 60_000, createdAt: paidAt - 10 });
      await s.transitionOrder(id, 'payment_verified', paidAt, null, { paidAt });
      await s.transitionOrder(id, vend, paidAt + 5, null, { vendResult: vend === 'vend_ok' ? 'dispensed' : 'failed' });
    };
    await sell('o1', day0 + 10, 'vend_ok');
    await sell('o2', day0 + DAY - 1, 'vend_ok', 'cola', 2);
    await sell('o3', day0 + DAY, 'vend_ok', 'agua');
    await sell('o4', day0 + 20, 'vend_failed');
    const days = Math.floor(T0 / DAY);
    expect(await s.salesByDay(day0, day0 + 2 * DAY)).toEqual([
      { day: days, kioskId: 'k1', sku: 'cola', currency: 'ARS', units: 3, amount: 300 },
      { day: days + 1, kioskId: 'k1', sku: 'agua', currency: 'ARS', units: 1, amount: 100 },
    ]);
    expect(await s.salesByDay(day0, day0 + DAY, 'k2')).toEqual([]);
  });
});
