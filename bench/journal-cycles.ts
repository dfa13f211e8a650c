// Vend cycles per second through the agent's journal (src/agent/journal.ts) alone: the synced
// transactions one sale commits, back to back, beside the same number of bare synced inserts.
// One cycle, as the session commits it:
//   createOrder + order.ready in the outbox | inbox mark + paid (deferred flush) | start_dispense
//   (before the motor, flushes `paid`) | drop_seen + stock - 1 + vend.result in the outbox
//   | ack order.ready (deferred) | ack vend.result (deferred)
// = 6 commits of which 3 are flushed (fsync of the WAL), so the floor is (bare synced inserts per
// second) / 3: the deferred commits count as their CPU only.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { Journal } from '../src/agent/journal.js';
import { frame } from '../src/protocol/codec.js';
import { syncedInserts } from './floors.js';

/** commits a cycle flushes to disk (journal.ts: `paid` and acks are deferred) */
export const COMMITS_PER_CYCLE = 3;

export function journalCycles(cycles: number): { cyclesPerSecond: number; floorCyclesPerSecond: number; commitsPerCycle: number } {
  const dir = mkdtempSync(join(tmpdir(), 'qrk-bench-journal-'));
  try {
    const j = new Journal(join(dir, 'agent.sqlite'));
    j.syncStock([{ slot: 1, stock: cycles + 10 }]);
    const one = (i: number) => {
      const id = `ord_bench${String(i).padStart(8, '0')}`;
      const ready = frame({ type: 'order.ready' as const, orderId: id, slot: 1, sku: 'COLA', quantity: 1, amount: 150000, currency: 'ARS', deadline: Date.now() + 90_000 });
      j.createOrder({ id, slot: 1, sku: 'COLA', amount: 150000, currency: 'ARS', deadline: Date.now() + 90_000 }, [ready]);
      j.tx(
        () => {
          j.markInbox(`paid-${i}`, 'order.paid');
          j.transition(id, 'paid', { detail: 'payment 1', patch: { paymentId: String(1000 + i) } });
        },
        { flush: 'deferred' },
      );
      j.transition(id, 'start_dispense', { detail: 'slot 1' });
      const result = frame({ type: 'vend.result' as const, orderId: id, result: 'dispensed' as const, pulses: 1 });
      j.transition(id, 'drop_seen', { detail: 'dispensed after 1 pulse(s)', patch: { result: 'dispensed', pulses: 1 }, outbox: [result], stockDelta: { slot: 1, delta: -1 } });
      j.ack(ready.id);
      j.ack(result.id);
    };
    for (let i = 0; i < 5; i++) one(-1 - i);
    const t0 = performance.now();
    for (let i = 0; i < cycles; i++) one(i);
    const cyclesPerSecond = (cycles * 1000) / (performance.now() - t0);
    j.close();
    const floor = syncedInserts(cycles * COMMITS_PER_CYCLE);
    return { cyclesPerSecond, floorCyclesPerSecond: floor.perSecond / COMMITS_PER_CYCLE, commitsPerCycle: COMMITS_PER_CYCLE };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

if (import.meta.url === `file://${process.argv[1]}`) console.log(journalCycles(Number(process.env.BENCH_CYCLES ?? 50)));
