import { afterEach, describe, expect, it } from 'vitest';
import { startHarness, TestKiosk, type Harness } from './relay-helpers.js';

// The contingency search under a backlog (issue 8): 1,000 select/cancel presses once made it
// search every cancelled order one call each, oldest first, about 100 calls a second, and a real
// paid order behind them was refunded minutes later instead of served.

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

/** the passes are run by hand: the background timer must not add its own calls */
const NO_TIMER = { contingencyIntervalSeconds: 3600 };

const searches = (h: Harness) => h.mp.calls.filter((c) => c.method === 'searchMerchantOrders');

/** `n` orders made and cancelled by the kiosk, pipelined like a customer mashing buttons. */
async function selectCancel(h: Harness, k: TestKiosk, n: number): Promise<void> {
  for (let i = 0; i < n; i++) {
    const orderId = `ord_mash${String(i).padStart(5, '0')}`;
    k.send({ type: 'order.ready', orderId, slot: 1, sku: 'COLA', quantity: 1, amount: 150000, currency: 'ARS', deadline: h.clock.t + 60_000 });
    k.send({ type: 'order.cancel', orderId, reason: 'customer' });
  }
  // frames on one socket are applied in order: once the last one is answered, all were handled
  // (each is a durable SQLite transaction: 2,000 of them take a while on a busy disk)
  const last = `ord_mash${String(n - 1).padStart(5, '0')}`;
  await k.waitFrame((f) => f.type === 'order.accepted' && f.orderId === last, 120_000);
  await k.roundTrip();
}

describe('contingency search that scales', { timeout: 180_000 }, () => {
  // 300 presses rather than the report's 1,000 keep the suite quick; the old poller made one call
  // per cancelled order (301 here), so the bound below tells both apart just as well.
  it('a paid order behind 300 cancelled ones is found in the first pass, with a handful of calls', async () => {
    h = await startHarness({ limits: { contingency: { callsPerSecond: 1000 } }, orders: NO_TIMER });
    h.mp.clock = () => h!.clock.t;
    const k = await TestKiosk.connect(h.relay, h.token);
    await selectCancel(h, k, 300);
    expect(await h.relay.store.countOrders('cancelled')).toBe(300);
    // the real customer: a pending order, paid, its notification lost
    expect((await k.ready('ord_realpay1', { now: h.clock.t })).type).toBe('order.accepted');
    h.mp.pay('ord_realpay1', 1500);
    h.clock.t += 21_000;
    await h.relay.runContingency();
    await k.waitFrame((f) => f.type === 'order.paid' && f.orderId === 'ord_realpay1');
    // one exact lookup for the open order, one batched search (one page) for the cancels
    const first = searches(h);
    expect(first[0]!.args[0]).toEqual({ external_reference: 'ord_realpay1' });
    expect(first.length).toBeLessThanOrEqual(3);
    // the cancels back off: the next pass right after costs nothing
    const before = searches(h).length;
    await h.relay.runContingency();
    expect(searches(h).length).toBe(before);
    // ... and they come back later, still in one batch
    h.clock.t += 60_000;
    await h.relay.runContingency();
    expect(searches(h).length - before).toBeLessThanOrEqual(2);
    await k.close();
  });

  it('a late payment on one of many cancelled orders is found by the batched search and refunded', async () => {
    h = await startHarness({ limits: { contingency: { callsPerSecond: 1000 } }, orders: NO_TIMER });
    h.mp.clock = () => h!.clock.t;
    const k = await TestKiosk.connect(h.relay, h.token);
    await selectCancel(h, k, 50);
    h.mp.pay('ord_mash00017', 1500); // scanned while offered, paid after the cancel
    h.clock.t += 21_000;
    await h.relay.runContingency();
    await k.waitFrame((f) => f.type === 'order.refunded' && f.orderId === 'ord_mash00017');
    expect(searches(h).every((c) => (c.args[0] as { external_reference?: string }).external_reference === undefined)).toBe(true);
    expect(searches(h).length).toBe(1);
    await k.close();
  });

  it('Mercado Pago calls are paced: limits.contingency.callsPerSecond', async () => {
    h = await startHarness({ limits: { contingency: { callsPerSecond: 0.001 } }, orders: NO_TIMER });
    const k = await TestKiosk.connect(h.relay, h.token);
    expect((await k.ready('ord_paced001', { now: h.clock.t })).type).toBe('order.accepted');
    h.clock.t += 21_000;
    // the first call goes at once (a burst of one); a second pass must wait its turn
    await h.relay.runContingency();
    expect(searches(h)).toHaveLength(1);
    h.clock.t += 21_000;
    const second = h.relay.runContingency();
    const settled = await Promise.race([second.then(() => 'ran'), k.roundTrip().then(() => 'waiting')]);
    expect(settled).toBe('waiting');
    expect(searches(h)).toHaveLength(1);
    await k.close();
  });
});
