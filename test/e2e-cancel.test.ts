import { afterEach, describe, expect, it } from 'vitest';
import type { SandboxEndpoint } from '../src/sandbox/types.js';
import { KioskSystem, MODEL_VARIANTS, PRICES, withdrawable, type SystemOptions } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// Cancel at every point of every model: before Mercado Pago answered the call that makes the order
// payable, and after the customer scanned it. Nothing may stay payable at Mercado Pago, and a
// payment that lands anyway is refunded exactly once. And a create whose answer was lost, then
// retried, never makes a second order.

let sys: KioskSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

/** The call that makes an order payable, per model (none for unattended and offline dynamic). */
function createEndpoint(model: string, mode: string | null): SandboxEndpoint | undefined {
  if (model === 'orders') return 'createOrder';
  if (model === 'attended') return mode === 'mpmobile' ? 'postMobileOrder' : 'putPosOrder';
  if (model === 'dynamic' && mode !== 'offline') return 'createDynamicQr';
  return undefined;
}

describe.each(MODEL_VARIANTS)('$label', (variant) => {
  const start = (opts: SystemOptions = {}) =>
    KioskSystem.start({ model: variant.model, modelMode: variant.mode, ...(variant.generation ? { generation: variant.generation } : {}), ...opts });

  it('cancelled after the customer scanned: nothing payable, a payment that lands anyway is refunded once', async () => {
    sys = await start();
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    const scan = await sys.customerScans(orderId);
    await sys.agentCancel();
    await sys.waitRelayState(orderId!, 'cancelled');
    if (withdrawable(variant)) {
      await waitFor('nothing payable at Mercado Pago', async () => (await sys!.payableAtMercadoPago(orderId!)).length === 0);
      expect((await sys.scanAgain(orderId!)).status).not.toBe('ready');
    }
    const late = await sys.sandbox.pay({ checkoutId: scan.checkoutId, landAfterCancel: true });
    await sys.waitRelayState(orderId!, 'refunded');
    await sys.relay.whenIdle();
    const refunds = (await sys.sandbox.refunds()).filter((r) => r.externalReference === orderId);
    expect(refunds.map((r) => r.paymentId)).toEqual([late.paymentId]);
    expect(refunds[0]!.replays).toBe(0);
    expect(sys.pulses()).toHaveLength(0);
  });

});

const CALLING = MODEL_VARIANTS.filter((v) => createEndpoint(v.model, v.mode) !== undefined);

describe.each(CALLING)('$label, a model that calls Mercado Pago first', (variant) => {
  const start = (opts: SystemOptions = {}) => KioskSystem.start({ model: variant.model, modelMode: variant.mode, ...opts });
  const endpoint = createEndpoint(variant.model, variant.mode)!;

  it('cancelled while the call that makes it payable has no answer yet: withdrawn once it is known', async () => {
    sys = await start();
    await sys.startAgent();
    // Mercado Pago takes the order but every answer is lost, for the client's first tries.
    await sys.sandbox.setFault({ endpoint, status: 504, afterEffect: true, times: 4 });
    const { orderId } = await sys.select(1);
    await waitFor('the create failing', async () => (await sys!.relay.store.getOrder(orderId!))?.offerError ?? undefined);
    await sys.agentCancel();
    await sys.waitRelayState(orderId!, 'cancelled');
    await sys.sandbox.clearFaults();
    await waitFor('the withdrawal done', async () => {
      const o = await sys!.relay.store.getOrder(orderId!);
      return o?.offerState === 'withdrawn';
    }, 30_000);
    if (withdrawable(variant)) expect(await sys.payableAtMercadoPago(orderId!)).toEqual([]);
    // the kiosk never showed a QR for it
    expect((await sys.agentOrder(orderId!))?.qr ?? null).toBeNull();
    expect(sys.pulses()).toHaveLength(0);
  });

  it('a create retried after its answer was lost makes no second order', async () => {
    sys = await start();
    await sys.startAgent();
    await sys.sandbox.setFault({ endpoint, status: 504, afterEffect: true, times: 1 });
    const { orderId } = await sys.select(1);
    const scan = await sys.customerScans(orderId);
    expect(scan.totalMinor).toBe(PRICES.COLA);
    const made =
      variant.model === 'orders'
        ? (await sys.sandbox.orders()).filter((o) => o.external_reference === orderId)
        : (await sys.sandbox.instoreOrders()).filter((o) => o.externalReference === orderId && o.state !== 'replaced');
    expect(made).toHaveLength(1);
    await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    await sys.waitAgentState(orderId!, 'dispensed');
    expect(sys.pulses()).toHaveLength(1);
  });
});
