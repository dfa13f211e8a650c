import Database from 'better-sqlite3';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { Journal } from '../src/agent/journal.js';
import { IllegalTransition } from '../src/core/state-machine.js';
import { frame } from '../src/protocol/codec.js';
import { tempDir } from './agent-helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function open(): { j: Journal; path: string } {
  const { dir, cleanup } = tempDir('qrk-j-');
  cleanups.push(cleanup);
  const path = join(dir, 'agent.sqlite');
  const j = new Journal(path);
  cleanups.push(() => j.close());
  return { j, path };
}

const order = { id: 'ord_test0001', slot: 1, sku: 'COLA', amount: 150000, currency: 'ARS', deadline: Date.now() + 60_000 };
const result = (r: 'dispensed' | 'vend_failed') => frame({ type: 'vend.result' as const, orderId: order.id, result: r, pulses: 1 });

describe('journal', () => {
  it('a vend step writes state, step and outbox together', () => {
    const { j } = open();
    j.syncStock([{ slot: 1, stock: 3 }]);
    j.createOrder(order, [frame({ type: 'order.ready' as const, ...{ orderId: order.id, slot: 1, sku: 'COLA', quantity: 1, amount: 150000, currency: 'ARS', deadline: order.deadline } })]);
    j.transition(order.id, 'paid', { patch: { paymentId: 'pay_1' } });
    j.transition(order.id, 'start_dispense');
    const f = result('dispensed');
    const r = j.transition(order.id, 'drop_seen', { outbox: [f], patch: { result: 'dispensed', pulses: 1 }, stockDelta: { slot: 1, delta: -1 } });
    expect(r).toMatchObject({ from: 'dispensing', to: 'dispensed' });
    expect(j.getOrder(order.id)).toMatchObject({ state: 'dispensed', paymentId: 'pay_1', result: 'dispensed', pulses: 1 });
    expect(j.steps(order.id).map((s) => s.state)).toEqual(['awaiting_payment', 'paid', 'dispensing', 'dispensed']);
    expect(j.outbox().map((o) => o.type)).toEqual(['order.ready', 'vend.result']);
    expect(JSON.parse(j.outbox()[1]!.payload)).toEqual(f);
    expect(j.stock().get(1)).toBe(2);
    expect(j.ack(f.id)).toBe(true);
    expect(j.ack(f.id)).toBe(false);
    expect(j.outbox()).toHaveLength(1);
  });

  it('an illegal transition changes nothing (no state, no step, no outbox row)', () => {
    const { j } = open();
    j.createOrder(order);
    expect(() => j.transition(order.id, 'start_dispense', { outbox: [result('dispensed')] })).toThrow(IllegalTransition);
    expect(j.getOrder(order.id)?.state).toBe('awaiting_payment');
    expect(j.steps(order.id)).toHaveLength(1);
    expect(j.outbox()).toHaveLength(0);
  });

  it('steps are append-only', () => {
    const { j } = open();
    j.createOrder(order);
    expect(() => j.db.prepare(`UPDATE steps SET state = 'dispensed'`).run()).toThrow(/append-only/);
    expect(() => j.db.prepare(`DELETE FROM steps`).run()).toThrow(/append-only/);
  });

  it('afterCommit runs after the outermost commit, and not at all on rollback', () => {
    const { j } = open();
    j.createOrder(order);
    const seen: string[] = [];
    j.tx(() => {
      j.transition(order.id, 'paid');
      j.afterCommit(() => seen.push(`after: ${j.getOrder(order.id)?.state}`));
      seen.push('inside');
    });
    expect(seen).toEqual(['inside', 'after: paid']);
    expect(() =>
      j.tx(() => {
        j.afterCommit(() => seen.push('never'));
        j.transition(order.id, 'start_dispense');
        throw new Error('abort');
      }),
    ).toThrow('abort');
    expect(seen).toEqual(['inside', 'after: paid']);
    expect(j.getOrder(order.id)?.state).toBe('paid');
  });

  it('inbox remembers applied frame ids across reopen; stock keeps sales unless the config changed', () => {
    const { j, path } = open();
    j.syncStock([{ slot: 1, stock: 5 }, { slot: 2, stock: 1 }]);
    j.markInbox('m_1', 'order.paid');
    expect(() => j.markInbox('m_1', 'order.paid')).toThrow();
    j.createOrder(order);
    j.transition(order.id, 'paid');
    j.transition(order.id, 'start_dispense');
    j.transition(order.id, 'drop_seen', { stockDelta: { slot: 1, delta: -1 } });
    j.close();
    const j2 = new Journal(path);
    cleanups.push(() => j2.close());
    expect(j2.inboxHas('m_1')).toBe(true);
    j2.syncStock([{ slot: 1, stock: 5 }, { slot: 2, stock: 4 }]);
    // slot 1: same configured value -> the sale stands; slot 2: refilled -> reset
    expect([...j2.stock()]).toEqual([
      [1, 4],
      [2, 4],
    ]);
    expect(j2.openOrders()).toHaveLength(0);
    expect(j2.recent(5)[0]).toMatchObject({ id: order.id, state: 'dispensed' });
    expect(j2.recent(5)[0]!.steps).toHaveLength(4);
  });

  it('a deferred commit is on the log at once and flushed by the next synced commit that writes', () => {
    const { j, path } = open();
    j.createOrder(order, [result('dispensed')]);
    const sync = () => j.db.pragma('synchronous', { simple: true });
    expect(sync()).toBe(2); // FULL
    // an ack's delete is deferred: another connection (a restarted process) sees it at once
    expect(j.ack(JSON.parse(j.outbox()[0]!.payload).id)).toBe(true);
    expect(sync()).toBe(2);
    const other = new Database(path, { readonly: true });
    try {
      expect(other.prepare('SELECT COUNT(*) AS n FROM outbox').get()).toEqual({ n: 0 });
    } finally {
      other.close();
    }
    // a synced transaction that changed no row writes nothing, so it flushes nothing
    j.tx(() => j.getOrder(order.id));
    j.flush();
    expect(j.getSetting('flushed_at')).toBeDefined();
    // a synced commit that writes flushes what came before it: flush() has nothing to do
    j.setSetting('flushed_at', 'x');
    j.tx(() => j.transition(order.id, 'paid'), { flush: 'deferred' });
    j.transition(order.id, 'start_dispense');
    j.flush();
    expect(j.getSetting('flushed_at')).toBe('x');
    // nested: the outer transaction decides; a deferred one that throws leaves FULL behind
    expect(() => j.tx(() => j.transition(order.id, 'paid'), { flush: 'deferred' })).toThrow(IllegalTransition);
    expect(sync()).toBe(2);
    j.tx(() => j.tx(() => j.note(order.id, 'nested'), { flush: 'deferred' }));
    j.flush();
    expect(j.getSetting('flushed_at')).toBe('x');
  });
});
