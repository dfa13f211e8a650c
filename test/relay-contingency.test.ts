import { afterEach, describe, expect, it, vi } from 'vitest';
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

  // The listing under a backlog: every cancelled order of the watch window was once loaded and
  // sorted whole in every pass. Now the pending orders are read by themselves, and the closed
  // ones are walked newest first with a keyset cursor, at most 100 store pages a pass.
  it('a paid order behind 20,000 cancelled ones is found first; the backlog is walked a page at a time, all of it within a few passes', async () => {
    h = await startHarness({ limits: { contingency: { callsPerSecond: 1000 } }, orders: NO_TIMER });
    h.mp.clock = () => h!.clock.t;
    const store = h.relay.store;
    const BACKLOG = 20_000;
    const t0 = h.clock.t;
    // one transaction through the store's own API: 20,000 orders made and cancelled in the last
    // 20 minutes (the late-payment watch is 30), one every 60 ms
    await store.transaction(async (tx) => {
      for (let i = 0; i < BACKLOG; i++) {
        const at = t0 - 20 * 60_000 + i * 60;
        const id = `ord_back${String(i).padStart(6, '0')}`;
        await tx.insertOrder({ id, kioskId: 'k1', slot: 1, sku: 'COLA', title: 'Cola 500ml', quantity: 1, unitPrice: 150000, amount: 150000, currency: 'ARS', claimedAmount: 150000, claimedCurrency: 'ARS', state: 'pending', deadline: at + 60_000, createdAt: at });
        await tx.transitionOrder(id, 'cancel', at + 30);
      }
    });
    expect(await store.countOrders('cancelled')).toBe(BACKLOG);
    // two late payments: on the newest cancel and on the oldest, at the far end of the walk
    h.clock.t = t0 - 50; // MP's record is dated while the order was offered (made at t0 - 60)
    h.mp.pay('ord_back019999', 1500);
    h.clock.t = t0 - 20 * 60_000 + 10;
    h.mp.pay('ord_back000000', 1500);
    h.clock.t = t0;
    const k = await TestKiosk.connect(h.relay, h.token);
    // the real customer: a pending order, paid, its notification lost
    expect((await k.ready('ord_realpay2', { now: h.clock.t })).type).toBe('order.accepted');
    h.mp.pay('ord_realpay2', 1500);
    h.clock.t += 21_000;

    const original = store.closedContingencyCandidates.bind(store);
    let rowsRead = 0;
    let largestPage = 0;
    const pages = vi.spyOn(store, 'closedContingencyCandidates').mockImplementation(async (...a) => {
      const page = await original(...a);
      rowsRead += page.length;
      largestPage = Math.max(largestPage, page.length);
      return page;
    });
    await h.relay.runContingency();
    await k.waitFrame((f) => f.type === 'order.paid' && f.orderId === 'ord_realpay2');
    // the customer's order is the very first call (at the default 2 calls a second, within 0.5 s
    // of the pass: far inside its 60 s deadline), before any call for the backlog
    expect(searches(h)[0]!.args[0]).toEqual({ external_reference: 'ord_realpay2' });
    // the newest cancel's late payment is found in the same pass
    await k.waitFrame((f) => f.type === 'order.refunded' && f.orderId === 'ord_back019999');
    // bounded: at most 100 pages of 50 read a pass, and at most 1 + 10 calls (one exact lookup,
    // maxPagesPerPass searches for the closed orders)
    expect(largestPage).toBeLessThanOrEqual(50);
    expect(pages.mock.calls.length).toBeLessThanOrEqual(100);
    expect(rowsRead).toBeLessThanOrEqual(5_000);
    expect(searches(h).length).toBeLessThanOrEqual(11);
    // every cursor after the first is the last order of the page before (a keyset, not an offset)
    for (const [, below] of pages.mock.calls.slice(1)) expect(below).toEqual(expect.objectContaining({ updatedAt: expect.any(Number), id: expect.any(String) }));

    // the oldest cancel is reached as the sweep goes on, a bounded slice per pass
    let passes = 1;
    while ((await store.getOrder('ord_back000000'))!.state === 'cancelled') {
      expect(passes).toBeLessThan(6); // 20,000 closed orders, 5,000 read a pass
      rowsRead = 0;
      pages.mockClear();
      h.clock.t += 1_000; // inside the first backoff: what was looked at is not looked at again
      await h.relay.runContingency();
      passes++;
      expect(rowsRead).toBeLessThanOrEqual(5_000);
    }
    await k.waitFrame((f) => f.type === 'order.refunded' && f.orderId === 'ord_back000000');
    expect(passes).toBeGreaterThan(1); // it was the walk, not one pass, that reached it
    await k.close();
  });

  it('with one call a pass, the walk goes on where the last pass stopped: the oldest of 600 cancels is reached, one page a pass', async () => {
    h = await startHarness({ limits: { contingency: { callsPerSecond: 1000, maxPagesPerPass: 1, pageSize: 50 } }, orders: NO_TIMER });
    h.mp.clock = () => h!.clock.t;
    const t0 = h.clock.t;
    await h.relay.store.transaction(async (tx) => {
      for (let i = 0; i < 600; i++) {
        const at = t0 - 10 * 60_000 + i * 1000;
        const id = `ord_slow${String(i).padStart(4, '0')}`;
        await tx.insertOrder({ id, kioskId: 'k1', slot: 1, sku: 'COLA', title: 'Cola 500ml', quantity: 1, unitPrice: 150000, amount: 150000, currency: 'ARS', claimedAmount: 150000, claimedCurrency: 'ARS', state: 'pending', deadline: at + 60_000, createdAt: at });
        await tx.transitionOrder(id, 'cancel', at + 30);
      }
    });
    h.clock.t = t0 - 10 * 60_000 + 10;
    h.mp.pay('ord_slow0000', 1500);
    h.clock.t = t0 + 1_000;
    let passes = 0;
    while ((await h.relay.store.getOrder('ord_slow0000'))!.state === 'cancelled') {
      expect(passes).toBeLessThan(13); // 600 orders, 50 a pass
      const calls = searches(h).length;
      await h.relay.runContingency();
      passes++;
      expect(searches(h).length - calls).toBe(1);
      h.clock.t += 1_000; // inside the first backoff: what was looked at is not looked at again
    }
    expect(passes).toBe(12);
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

  // Found by the 100,000-vend soak: at 20 sales a second, the window around a few cancelled
  // orders held 12,000 merchant orders, more than a pass may read; the search never finished.
  it('a busy store: a window too big for one pass, a few cancels in it: looked up one call each, the late payment found', async () => {
    h = await startHarness({ limits: { contingency: { callsPerSecond: 1000 } }, orders: NO_TIMER });
    h.mp.clock = () => h!.clock.t;
    const k = await TestKiosk.connect(h.relay, h.token);
    // other customers' sales at Mercado Pago, in the same minutes: 20 pages of 50
    for (let i = 0; i < 1000; i++) h.mp.pay(`ord_other${i}`, 900);
    await selectCancel(h, k, 5);
    h.mp.pay('ord_mash00003', 1500); // paid after the cancel, its notification lost
    h.clock.t += 21_000;
    await h.relay.runContingency();
    await k.waitFrame((f) => f.type === 'order.refunded' && f.orderId === 'ord_mash00003');
    // one page of the batch showed the window's size, then one exact lookup per cancel
    const calls = searches(h).map((c) => c.args[0] as { external_reference?: string });
    expect(calls).toHaveLength(6);
    expect(calls[0]!.external_reference).toBeUndefined();
    expect(calls.slice(1).map((c) => c.external_reference).sort()).toEqual(['ord_mash00000', 'ord_mash00001', 'ord_mash00002', 'ord_mash00003', 'ord_mash00004']);
    await k.close();
  });

  it('a busy store with more cancels than calls: the newest looked up one call each, a late payment on the newest found in the first pass', async () => {
    // network torture, dynamic/offline, seed 20261415: 66 due cancels spanning 38 minutes of a
    // busy store made one batch whose window needed more pages than a pass has; every pass read
    // the same 10 pages and covered nobody, and a late payment waited 252 s until the oldest
    // cancels aged out of the watch
    h = await startHarness({ limits: { contingency: { callsPerSecond: 1000 } }, orders: NO_TIMER });
    h.mp.clock = () => h!.clock.t;
    const k = await TestKiosk.connect(h.relay, h.token);
    for (let i = 0; i < 1000; i++) h.mp.pay(`ord_other${i}`, 900);
    await selectCancel(h, k, 30);
    h.mp.pay('ord_mash00029', 1500); // paid after the cancel, its notification lost
    h.clock.t += 21_000;
    await h.relay.runContingency();
    await k.waitFrame((f) => f.type === 'order.refunded' && f.orderId === 'ord_mash00029');
    // one page showed the window's size; the rest of the pass's calls went to single lookups
    const calls = searches(h).map((c) => c.args[0] as { external_reference?: string });
    expect(calls).toHaveLength(10);
    expect(calls[0]!.external_reference).toBeUndefined();
    expect(calls.slice(1).map((c) => c.external_reference)).toContain('ord_mash00029');
    // the others are not forgotten: the following passes look the rest up
    for (let pass = 0; pass < 4; pass++) {
      h.clock.t += 5_000;
      await h.relay.runContingency();
    }
    const looked = new Set(searches(h).map((c) => (c.args[0] as { external_reference?: string }).external_reference).filter(Boolean));
    for (let i = 0; i < 30; i++) expect(looked).toContain(`ord_mash${String(i).padStart(5, '0')}`);
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
