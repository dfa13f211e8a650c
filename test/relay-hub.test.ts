import { once } from 'node:events';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { WebSocket } from 'ws';
import { getJson, startHarness, TestKiosk, type Harness } from './relay-helpers.js';

let h: Harness;
beforeEach(async () => {
  h = await startHarness();
});
afterEach(async () => {
  await h.cleanup();
});

async function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(url, { headers });
  ws.on('error', () => {});
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number; resume(): void }];
  res.resume();
  return res.statusCode;
}

describe('relay hub: authentication', () => {
  it('refuses an unknown token with 401 and logs the remote address and a hash prefix, never the token', async () => {
    const token = 'qk_this-is-not-a-real-token-AAAAAAAAAAAAAAAAAAAAA';
    expect(await upgradeStatus(h.relay.wsUrl, { authorization: `Bearer ${token}` })).toBe(401);
    const line = h.log.lines.find((l) => /refused: unknown token/.test(l.msg));
    expect(line).toBeDefined();
    expect(line!.msg).toContain('127.0.0.1');
    expect(line!.tokenHash).toMatch(/^[0-9a-f]{8}$/);
    expect(h.log.raw.join('')).not.toContain(token);
    expect(h.relay.hub.isOnline('k1')).toBe(false);
  });

  it('refuses a missing token with 401', async () => {
    expect(await upgradeStatus(h.relay.wsUrl, {})).toBe(401);
    expect(h.log.warns().some((m) => /no bearer token/.test(m))).toBe(true);
  });

  it('refuses another path with 404', async () => {
    expect(await upgradeStatus(h.relay.wsUrl.replace('/v1/kiosk', '/v2/other'), { authorization: `Bearer ${h.token}` })).toBe(404);
  });

  it('stops accepting the old token after rotation', async () => {
    const fresh = await h.relay.store.rotateKioskToken('k1');
    expect(await upgradeStatus(h.relay.wsUrl, { authorization: `Bearer ${h.token}` })).toBe(401);
    const k = await TestKiosk.connect(h.relay, fresh);
    expect(h.relay.hub.isOnline('k1')).toBe(true);
    await k.close();
  });
});

describe('relay hub: session', () => {
  it('answers hello with welcome carrying the catalog in minor units, the POS QR and the payment limit', async () => {
    const k = await TestKiosk.connect(h.relay, h.token);
    const welcome = k.of('welcome')[0]!;
    expect(welcome).toMatchObject({
      v: 1,
      type: 'welcome',
      kioskId: 'k1',
      paymentModel: 'unattended',
      posQr: '00020101021143...',
      maxPaymentSeconds: 120,
      catalog: [
        { sku: 'COLA', name: 'Cola 500ml', price: 150000, currency: 'ARS' },
        { sku: 'WATER', name: 'Agua 500ml', price: 90000, currency: 'ARS' },
      ],
    });
    expect(welcome.serverTime).toBe(h.clock.t);
    expect(h.relay.hub.isOnline('k1')).toBe(true);
    const health = await getJson(`${h.relay.url}/healthz`);
    expect(health).toMatchObject({ status: 200, body: { ok: true, kiosksOnline: 1, pendingOrders: 0 } });
    await k.close();
  });

  it('closes a hello that names another kiosk', async () => {
    const k = await TestKiosk.connect(h.relay, h.token, { hello: false });
    const closed = once(k.ws, 'close');
    k.send({ type: 'hello', kioskId: 'k2', agentVersion: 't', openOrders: [] });
    const [code] = (await closed) as [number];
    expect(code).toBe(1008);
    expect(k.of('error')[0]).toMatchObject({ code: 'unauthorized' });
  });

  it('answers malformed, unknown and invalid frames with an error frame and keeps the connection', async () => {
    const k = await TestKiosk.connect(h.relay, h.token);
    const e1 = k.nextFrame((f) => f.type === 'error');
    k.sendRaw('{this is not json');
    expect(await e1).toMatchObject({ type: 'error', code: 'malformed' });

    const e2 = k.nextFrame((f) => f.type === 'error' && f.refId === 'x2');
    k.sendRaw(JSON.stringify({ v: 1, id: 'x2', type: 'order.teleport' }));
    expect(await e2).toMatchObject({ code: 'unknown_type' });

    const e3 = k.nextFrame((f) => f.type === 'error' && f.refId === 'x3');
    k.sendRaw(JSON.stringify({ v: 1, id: 'x3', type: 'order.ready', orderId: 'bad id', sku: 'COLA' }));
    expect(await e3).toMatchObject({ code: 'invalid' });

    const e4 = k.nextFrame((f) => f.type === 'error' && f.refId === 'x4');
    k.sendRaw(JSON.stringify({ v: 7, id: 'x4', type: 'ping', at: 1 }));
    expect(await e4).toMatchObject({ code: 'unsupported_version' });

    const e5 = k.nextFrame((f) => f.type === 'error');
    k.ws.send(Buffer.from([1, 2, 3]), { binary: true });
    expect(await e5).toMatchObject({ code: 'malformed' });

    // still alive and useful
    await k.roundTrip();
    expect(h.relay.hub.isOnline('k1')).toBe(true);
    expect(h.log.warns().filter((m) => /bad frame/.test(m)).length).toBeGreaterThanOrEqual(5);
    await k.close();
  });

  it('lets a newer connection of the same kiosk replace the older one', async () => {
    const a = await TestKiosk.connect(h.relay, h.token);
    const aClosed = once(a.ws, 'close');
    const b = await TestKiosk.connect(h.relay, h.token);
    const [code] = (await aClosed) as [number];
    expect(code).toBe(4000);
    expect(h.relay.hub.isOnline('k1')).toBe(true);
    // The new link works: an order placed on it is answered on it.
    expect((await b.ready('ord_replace01', { now: h.clock.t })).type).toBe('order.accepted');
    await b.close();
  });

  it('applies a reliable frame once: the same message id twice gives two acks and one order', async () => {
    const k = await TestKiosk.connect(h.relay, h.token);
    const frame = {
      id: 'm_same_id_1',
      type: 'order.ready',
      orderId: 'ord_once0001',
      slot: 1,
      sku: 'COLA',
      quantity: 1,
      amount: 150000,
      currency: 'ARS',
      deadline: h.clock.t + 60_000,
    };
    k.send(frame);
    k.send(frame);
    await k.waitFrame((f) => f.type === 'order.accepted');
    await k.roundTrip();
    expect(k.frames.filter((f) => f.type === 'ack' && f.ackId === 'm_same_id_1')).toHaveLength(2);
    expect(k.of('order.accepted', 'ord_once0001')).toHaveLength(1);
    expect(await h.relay.store.orderEvents('ord_once0001')).toHaveLength(1);
    await k.close();
  });

  it('re-sends the unacked outbox after a reconnect, in order, and forgets it once acked', async () => {
    const k = await TestKiosk.connect(h.relay, h.token, { autoAck: false });
    const accepted = await k.ready('ord_outbox01', { now: h.clock.t });
    expect(accepted.type).toBe('order.accepted');
    expect(await h.relay.store.outboxOf('k1')).toHaveLength(1);
    const offline = once(h.relay.hub, 'offline');
    await k.close();
    await offline;

    // Reconnect (the agent lists the order as still open): the same frame, same id, again.
    const k2 = await TestKiosk.connect(h.relay, h.token, { openOrders: [{ orderId: 'ord_outbox01', state: 'awaiting_payment' }] });
    const again = await k2.waitFrame((f) => f.type === 'order.accepted');
    expect(again.id).toBe(accepted.id);
    await k2.roundTrip();
    expect(await h.relay.store.outboxOf('k1')).toHaveLength(0); // k2 auto-acked it
    expect((await h.relay.store.getOrder('ord_outbox01'))!.state).toBe('pending');
    await k2.close();

    const k3 = await TestKiosk.connect(h.relay, h.token, { openOrders: [{ orderId: 'ord_outbox01', state: 'awaiting_payment' }] });
    await k3.roundTrip();
    expect(k3.of('order.accepted')).toHaveLength(0);
    await k3.close();
  });

  it('cancels a pending order the agent no longer lists after a reconnect', async () => {
    const k = await TestKiosk.connect(h.relay, h.token);
    await k.ready('ord_forgot01', { now: h.clock.t });
    const offline = once(h.relay.hub, 'offline');
    await k.close();
    await offline;
    const k2 = await TestKiosk.connect(h.relay, h.token, { openOrders: [] });
    expect((await h.relay.store.getOrder('ord_forgot01'))!.state).toBe('cancelled');
    await k2.close();
  });

  it('answers ping with pong echoing the timestamp', async () => {
    const k = await TestKiosk.connect(h.relay, h.token);
    const pong = k.nextFrame((f) => f.type === 'pong');
    k.send({ type: 'ping', at: 4242 });
    expect(await pong).toMatchObject({ type: 'pong', at: 4242 });
    await k.close();
  });
});

describe('relay hub: liveness', () => {
  it('pings and drops a link that stays silent for two intervals', async () => {
    const h2 = await startHarness();
    await h2.relay.close();
    // A fast heartbeat for this test only.
    const { startRelay } = await import('../src/relay/server.js');
    const relay = await startRelay({ ...h2.config, hub: { pingIntervalSeconds: 1 } }, { mp: h2.mp, logger: h2.log.logger, now: () => h2.clock.t });
    h2.relay = relay;
    const k = await TestKiosk.connect(relay, h2.token);
    const ping = await k.nextFrame((f) => f.type === 'ping');
    expect(ping.type).toBe('ping');
    // Stop answering at the TCP level too: pause the socket so neither frames nor pongs flow.
    (k.ws as unknown as { _socket: { pause(): void } })._socket.pause();
    const offline = once(relay.hub, 'offline');
    await offline;
    expect(relay.hub.isOnline('k1')).toBe(false);
    expect(h2.log.warns().some((m) => /silent for/.test(m))).toBe(true);
    k.ws.terminate();
    await h2.cleanup();
  }, 10_000);
});
