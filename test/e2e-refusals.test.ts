import { afterEach, describe, expect, it } from 'vitest';
import WebSocket from 'ws';
import { frame } from '../src/protocol/codec.js';
import { KioskSystem, PRICES } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// Everything an attacker, a lying kiosk or a short payment could try: refused, logged clearly,
// nothing dispensed.

let sys: KioskSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

const WARN = 40;

describe('refused with a clear log line, nothing dispensed', () => {
  it('a forged webhook signature', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();
    const paid = await sys.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook', signature: 'forged' } });
    const deliveries = await paid.deliveries;
    expect(deliveries.map((d) => d.httpStatus)).toEqual([401]);
    const lines = sys.relayLogMatching(/signature/i).filter((l) => l.level >= WARN);
    expect(lines.length).toBeGreaterThan(0);
    await sys.relay.whenIdle();
    expect((await sys.relay.store.getOrder(orderId!))?.state).toBe('pending');
    expect((await sys.agentOrder(orderId!))?.state).toBe('awaiting_payment');
    expect(sys.pulses()).toHaveLength(0);
  });

  it('a wrong POS key', async () => {
    sys = await KioskSystem.start({ generation: 'v1' });
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const res = await fetch(`${sys.relay.url}/mp/pos/KIOSKE2E?key=not-the-key`);
    expect(res.status).toBe(400);
    expect(((await res.json()) as { error: { type: string } }).error.type).toBe('invalid');
    expect(sys.relayLogMatching(/key/i).filter((l) => l.level >= WARN).length).toBeGreaterThan(0);
    const unknownPos = await fetch(`${sys.relay.url}/mp/pos/NOSUCHPOS?key=x`);
    expect(unknownPos.status).toBe(400);
    expect((await sys.relay.store.getOrder(orderId!))?.state).toBe('pending');
  });

  it('an unknown kiosk token', async () => {
    sys = await KioskSystem.start();
    const wsUrl = sys.relay.wsUrl;
    const status = await new Promise<number>((resolve, reject) => {
      const ws = new WebSocket(wsUrl, { headers: { Authorization: 'Bearer qk_forged-token-value' } });
      ws.on('unexpected-response', (_req, res) => resolve(res.statusCode ?? 0));
      ws.on('open', () => reject(new Error('the relay accepted an unknown token')));
      ws.on('error', () => undefined);
    });
    expect(status).toBe(401);
    const line = sys.relayLog.find((l) => l.level >= WARN && /token/i.test(l.msg));
    expect(line).toBeDefined();
    expect(JSON.stringify(line)).not.toContain('qk_forged-token-value'); // never log secrets
  });

  it('a kiosk claiming a lower price', async () => {
    sys = await KioskSystem.start();
    // a kiosk with a valid token but a tampered price list, speaking the protocol directly
    const ws = new WebSocket(sys.relay.wsUrl, { headers: { Authorization: `Bearer ${sys.token}` } });
    const frames: Array<Record<string, unknown>> = [];
    ws.on('message', (d) => frames.push(JSON.parse(String(d)) as Record<string, unknown>));
    await new Promise((r) => ws.once('open', r));
    ws.send(JSON.stringify(frame({ type: 'hello', kioskId: 'kiosk-e2e', agentVersion: 'evil', openOrders: [] })));
    await waitFor('welcome', () => frames.find((f) => f.type === 'welcome'));
    const orderId = 'ord_lyingkiosk01';
    ws.send(
      JSON.stringify(
        frame({ type: 'order.ready', orderId, slot: 1, sku: 'COLA', quantity: 1, amount: 1000, currency: 'ARS', deadline: Date.now() + 60_000 }),
      ),
    );
    const rejected = await waitFor('order.rejected', () => frames.find((f) => f.type === 'order.rejected'));
    expect(rejected).toMatchObject({ orderId, reason: 'price_mismatch' });
    expect((await sys.relay.store.getOrder(orderId))?.state).toBe('rejected');
    expect(sys.relayLog.find((l) => l.level >= WARN && /claimed/.test(l.msg))?.msg).toMatch(/claimed 10\.00 ARS for COLA, catalog says 1500\.00 ARS/);
    // never offered to Mercado Pago
    const scan = await sys.sandbox.scan({ qr: sys.posQr, maxPolls: 2 });
    expect(scan.status).toBe('not_ready');
    ws.close();
  });

  it('a paid amount below the total: not released, and refunded once the order is cancelled', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();
    const paid = await sys.sandbox.pay({ checkoutId: scan.checkoutId, amountMinor: PRICES.COLA - 50000 });
    await paid.deliveries;
    await sys.relay.whenIdle();
    expect(paid.merchantOrderStatus).toBe('opened');
    expect((await sys.relay.store.getOrder(orderId!))?.state).toBe('pending');
    expect(sys.relayLog.find((l) => l.level >= WARN && /underpaid/i.test(l.msg))).toBeDefined();
    expect((await sys.agentOrder(orderId!))?.state).toBe('awaiting_payment');

    // the customer gives up; the money taken must go back
    await sys.agentCancel();
    await sys.waitRelayState(orderId!, 'refunded');
    const refunds = await sys.sandbox.refunds();
    expect(refunds).toHaveLength(1);
    expect(refunds[0]).toMatchObject({ paymentId: paid.paymentId, amountMinor: PRICES.COLA - 50000 });
    expect(sys.pulses()).toHaveLength(0);
  });
});
