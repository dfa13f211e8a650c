import { afterEach, describe, expect, it } from 'vitest';
import { KioskSystem, PRICES } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

/** the states an order went through (a step may also note an event without changing state) */
function path(steps: Array<{ state: string }>): string[] {
  return steps.map((s) => s.state).filter((st, i, all) => i === 0 || all[i - 1] !== st);
}

// The spine, end to end: agent process <-> relay <-> Mercado Pago emulator, all on loopback.

let sys: KioskSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

describe.each(['v1', 'v2'] as const)('unattended sale, %s POS answers', (generation) => {
  it('select -> QR -> customer pays -> relay releases -> dispensed -> drop seen', async () => {
    sys = await KioskSystem.start({ generation });
    await sys.startAgent();

    const sel = await sys.select(1);
    expect(sel.ok).toBe(true);
    const orderId = sel.orderId!;
    const status = await sys.status();
    expect(status.screen).toBe('pay');
    expect(status.order?.amount).toBe(PRICES.COLA);

    await sys.waitRelayState(orderId, 'pending');
    const scan = await sys.customerScans();
    expect(scan.generation).toBe(generation);
    expect(scan.totalMinor).toBe(PRICES.COLA);
    expect(scan.externalReference).toBe(orderId);

    const paid = await sys.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
    expect(paid.merchantOrderStatus).toBe('closed');

    const done = await sys.waitAgentState(orderId, 'dispensed');
    expect(done.paymentId).toBe(String(paid.paymentId));
    await sys.waitRelayState(orderId, 'vended');
    expect(sys.pulses()).toHaveLength(1);
    expect(await sys.sandbox.refunds()).toHaveLength(0);
    const after = await sys.status();
    expect(after.stock.find((s) => s.slot === 1)?.count).toBe(9);
    // the step order the journal promises: dispensing is written before the result
    expect(path(done.steps)).toEqual(['awaiting_payment', 'paid', 'dispensing', 'dispensed']);
  });
});

describe('notifications', () => {
  it('the same notification 5 times and one for an unknown order: one dispense, no error', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const { orderId } = await sys.select(2);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();

    const paid = await sys.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'both', copies: 5, parallel: true } });
    const deliveries = await paid.deliveries;
    expect(deliveries.length).toBeGreaterThanOrEqual(10);
    expect(deliveries.every((d) => d.httpStatus === 200 || d.httpStatus === 201)).toBe(true);

    // A merchant order Mercado Pago knows nothing of, and one that is not ours at all.
    const unknown = await sys.sandbox.notifyRaw({
      url: `${sys.relay.url}/mp/notifications`,
      query: { topic: 'merchant_order', id: '77777777777' },
    });
    expect(unknown.httpStatus).toBe(200);

    await sys.waitAgentState(orderId!, 'dispensed');
    await sys.waitRelayState(orderId!, 'vended');
    await sys.relay.whenIdle();
    expect(sys.pulses()).toHaveLength(1);
    expect(sys.relay.store.getOrder(orderId!)?.paymentIds).toEqual([String(paid.paymentId)]);
    expect(sys.relayLog.filter((l) => l.level >= 50)).toEqual([]);
    expect(await sys.sandbox.refunds()).toHaveLength(0);
  });
});

describe('failed vends and late payments are refunded', () => {
  it('drop sensor sees nothing -> vend failed -> exactly one refund at Mercado Pago', async () => {
    sys = await KioskSystem.start({ fault: 'no_drop' });
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();
    const paid = await sys.sandbox.pay({ checkoutId: scan.checkoutId });

    const failed = await sys.waitAgentState(orderId!, 'vend_failed');
    expect(failed.result).toBe('vend_failed');
    expect(sys.pulses()).toHaveLength(2); // maxPulses: 2, then it gives up
    await sys.waitRelayState(orderId!, 'refunded');
    const refunds = await sys.sandbox.refunds();
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({ paymentId: paid.paymentId, amountMinor: PRICES.COLA });
    expect((await sys.status()).stock.find((s) => s.slot === 1)?.count).toBe(10);
  });

  it('no payment before the deadline -> cancelled, POS not ready, a later payment refunded, nothing dispensed', async () => {
    sys = await KioskSystem.start({ deadlineSeconds: 2 });
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans(); // the customer opened the order in the app ...

    await sys.waitAgentState(orderId!, 'cancelled', 10_000); // ... but the kiosk's deadline passed
    await sys.waitRelayState(orderId!, 'cancelled');
    const again = await sys.sandbox.scan({ qr: sys.posQr, maxPolls: 2 });
    expect(again.status).toBe('not_ready');
    expect(again.status !== 'ready' && again.last.httpStatus).toBe(202); // v2: Waiting_for_order

    const late = await sys.sandbox.pay({ checkoutId: scan.checkoutId }); // ... and paid anyway
    await sys.waitRelayState(orderId!, 'refunded');
    const refunds = await sys.sandbox.refunds();
    expect(refunds.map((r) => r.paymentId)).toEqual([late.paymentId]);
    expect(sys.pulses()).toHaveLength(0);
    expect((await sys.agentOrder(orderId!))?.state).toBe('cancelled');
  });
});

describe('crashes', () => {
  it('SIGKILL right after `dispensing` is journaled: no second pulse, reported uncertain, refunded', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent({ QRKIOSK_CRASH_AFTER: 'dispensing' });
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();
    await sys.sandbox.pay({ checkoutId: scan.checkoutId });

    expect((await sys.agentEnded()).signal).toBe('SIGKILL');
    const pulsesAtCrash = sys.pulses().length;
    expect(pulsesAtCrash).toBe(0); // it died between the journal commit and the motor

    await sys.startAgent({});
    const o = await sys.waitAgentState(orderId!, 'vend_unknown');
    expect(path(o.steps)).toEqual(['awaiting_payment', 'paid', 'dispensing', 'vend_unknown']);
    await sys.waitRelayState(orderId!, 'refunded');
    expect(sys.pulses()).toHaveLength(pulsesAtCrash);
    expect(await sys.sandbox.refunds()).toHaveLength(1);
  });

  it('SIGKILL just after the motor pulsed: still never pulsed again after restart', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent({ QRKIOSK_CRASH_AFTER: 'pulse' });
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();
    await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    expect((await sys.agentEnded()).signal).toBe('SIGKILL');
    expect(sys.pulses()).toHaveLength(1);

    await sys.startAgent({});
    await sys.waitAgentState(orderId!, 'vend_unknown');
    await sys.waitRelayState(orderId!, 'refunded');
    expect(sys.pulses()).toHaveLength(1);
  });

  it('SIGKILL right after `paid` is journaled: dispenses exactly once after restart', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent({ QRKIOSK_CRASH_AFTER: 'paid' });
    const { orderId } = await sys.select(2);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();
    await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    expect((await sys.agentEnded()).signal).toBe('SIGKILL');
    expect(sys.pulses()).toHaveLength(0);

    await sys.startAgent({});
    await sys.waitAgentState(orderId!, 'dispensed');
    await sys.waitRelayState(orderId!, 'vended');
    expect(sys.pulses()).toHaveLength(1);
    expect(await sys.sandbox.refunds()).toHaveLength(0);
  });
});

describe('the link to the relay', () => {
  it('cut while order.paid is in flight: delivered once after reconnect', async () => {
    sys = await KioskSystem.start({ proxy: true });
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();

    const cut = sys.proxy!.armCut({ downstreamContains: '"order.paid"' });
    await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    await cut;
    expect(sys.proxy!.cuts).toBe(1);

    await sys.waitAgentState(orderId!, 'dispensed');
    await sys.waitRelayState(orderId!, 'vended');
    expect(sys.proxy!.connections).toBeGreaterThanOrEqual(2);
    expect(sys.pulses()).toHaveLength(1);
    await waitFor('relay outbox drained', () => sys!.relay.store.outboxOf('kiosk-e2e').length === 0);
  });

  it('cut after order.paid arrived but before its ack: the re-sent copy is not applied again', async () => {
    sys = await KioskSystem.start({ proxy: true });
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();

    const cut = sys.proxy!.armCut({ downstreamContains: '"order.paid"', forwardThenCutOnReply: true });
    await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    await cut;
    await sys.waitAgentState(orderId!, 'dispensed');
    await sys.waitRelayState(orderId!, 'vended');
    await waitFor('relay outbox drained', () => sys!.relay.store.outboxOf('kiosk-e2e').length === 0);
    expect(sys.pulses()).toHaveLength(1);
  });
});
