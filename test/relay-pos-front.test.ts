import { once } from 'node:events';
import * as net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { sameKey } from '../src/relay/routes/unattended.js';
import { posUrlOf, startHarness, TestKiosk, type Harness } from './relay-helpers.js';

// The POS url's plain GET is answered ahead of fastify (relay/server.ts front handler,
// routes/unattended.ts servePoll); every other form of the same poll goes through fastify's
// routes. Both must give the same answer, with the same limits: these tests ask the same
// question both ways and compare the bytes, and check which path answered (PosPoll.served).

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

interface Raw {
  status: number;
  type: string | null;
  orderVersion: string | null;
  retryAfter: string | null;
  body: string;
}

async function raw(url: string, init?: RequestInit): Promise<Raw> {
  const r = await fetch(url, init);
  return { status: r.status, type: r.headers.get('content-type'), orderVersion: r.headers.get('order-version'), retryAfter: r.headers.get('retry-after'), body: await r.text() };
}

/** the same poll as a plain GET (front handler) and in three forms fastify answers */
async function bothWays(h: Harness, key: string, pos = 'POS1') {
  const served = { ...h.relay.posPoll.served };
  const front = await raw(posUrlOf(h, key, pos));
  expect(h.relay.posPoll.served.front).toBe(served.front + 1);
  const encodedKey = key ? `%${key.charCodeAt(0).toString(16).padStart(2, '0')}${encodeURIComponent(key.slice(1))}` : '';
  const viaFastify = [
    await raw(posUrlOf(h, key, pos), { method: 'POST' }),
    await raw(`${h.relay.url}/mp/pos/${pos}?key=${encodedKey}`), // percent-encoded: fastify decodes it
    await raw(`${h.relay.url}/mp/pos/${pos}?other=1&key=${encodeURIComponent(key)}&x=%20`),
  ];
  expect(h.relay.posPoll.served.fastify).toBe(served.fastify + 3);
  expect(h.relay.posPoll.served.front).toBe(served.front + 1);
  return { front, viaFastify };
}

describe('POS url: the front handler and the fastify routes answer alike', () => {
  for (const generation of ['v1', 'v2'] as const) {
    it(`${generation}: no order, an order, a wrong key, an unknown POS: the same status, headers and body both ways`, async () => {
      h = await startHarness({ generation });
      const k = await TestKiosk.connect(h.relay, h.token);
      const cases: Raw[] = [];
      const check = async (key: string, pos?: string) => {
        const { front, viaFastify } = await bothWays(h!, key, pos);
        for (const other of viaFastify) expect(other).toEqual(front);
        cases.push(front);
      };
      await check(h.posKey); // no order
      await k.ready('ord_front0001', { now: h.clock.t, deadline: h.clock.t + 60_000 });
      await check(h.posKey); // the order
      await check('not-the-key');
      await check(h.posKey, 'NOPE1');
      await k.close();

      const [none, order, wrong, unknown] = cases as [Raw, Raw, Raw, Raw];
      expect(none).toMatchObject(generation === 'v2' ? { status: 202, orderVersion: null } : { status: 400, orderVersion: null });
      expect(JSON.parse(none.body)).toEqual(generation === 'v2' ? { status: { status_detail: 'Waiting_for_order' } } : { error: { type: 'unavailable' } });
      expect(order).toMatchObject({ status: 200, type: 'application/json; charset=utf-8', orderVersion: generation === 'v2' ? '2' : null });
      expect(JSON.parse(order.body)).toMatchObject({ external_reference: 'ord_front0001' });
      expect(wrong).toEqual(unknown);
      expect(wrong.status).toBe(400);
    });
  }

  it('the liveness gate holds on the front path: an order is not served once its kiosk is offline', async () => {
    h = await startHarness();
    const k = await TestKiosk.connect(h.relay, h.token);
    await k.ready('ord_front0002', { now: h.clock.t, deadline: h.clock.t + 60_000 });
    expect((await raw(posUrlOf(h))).status).toBe(200);
    const offline = new Promise((resolve) => h!.relay.hub.once('offline', resolve));
    await k.close();
    await offline;
    const front = await raw(posUrlOf(h));
    expect(front.status).toBe(202);
    expect(JSON.parse(front.body)).toEqual({ status: { status_detail: 'Waiting_for_order' } });
  });

  it('the per-source rate limit counts both paths in one bucket and answers 429 alike', async () => {
    h = await startHarness({ limits: { pos: { perSecond: 0.001, burst: 4 } } });
    const a = [await raw(posUrlOf(h, 'x')), await raw(posUrlOf(h, 'x'), { method: 'POST' }), await raw(posUrlOf(h, 'x')), await raw(posUrlOf(h, 'x'), { method: 'POST' })];
    expect(a.map((r) => r.status)).toEqual([400, 400, 400, 400]);
    const front = await raw(posUrlOf(h, 'x'));
    const viaFastify = await raw(posUrlOf(h, 'x'), { method: 'POST' });
    expect(front.status).toBe(429);
    expect(front).toEqual(viaFastify);
    expect(Number(front.retryAfter)).toBeGreaterThan(0);
  });

  it('behind a proxy (trustProxy: 1) the front path keys the limit on the address the proxy appended, as fastify does', async () => {
    h = await startHarness({ limits: { trustProxy: true, pos: { perSecond: 0.001, burst: 2 } } });
    const from = (xff: string, method = 'GET') => raw(posUrlOf(h!, 'x'), { method, headers: { 'x-forwarded-for': xff } }).then((r) => r.status);
    // the client writes its own entries on the left; the proxy appends what it saw
    expect([await from('1.1.1.1, 198.51.100.7'), await from('2.2.2.2, 198.51.100.7', 'POST'), await from('3.3.3.3, 198.51.100.7')]).toEqual([400, 400, 429]);
    expect([await from('198.51.100.8'), await from('9.9.9.9,198.51.100.8', 'POST'), await from(' 198.51.100.8 ')]).toEqual([400, 400, 429]);
  });

  it('a chunked GET (any case of the header name) is left to fastify; an empty content-length is not', async () => {
    h = await startHarness();
    const ask = async (head: string, body = '') => {
      const s = net.connect({ host: '127.0.0.1', port: h!.relay.port });
      await once(s, 'connect');
      s.write(`GET /mp/pos/POS1?key=${h!.posKey} HTTP/1.1\r\nhost: x\r\n${head}\r\n\r\n${body}`);
      let answer = '';
      await new Promise<void>((resolve) => s.on('data', (d: Buffer) => (answer += d.toString()).includes('\r\n\r\n') && resolve()));
      s.destroy();
      return answer;
    };
    const before = { ...h.relay.posPoll.served };
    expect(await ask('Transfer-Encoding: chunked', '5\r\nhello\r\n0\r\n\r\n')).toMatch(/^HTTP\/1\.1 202/);
    expect(h.relay.posPoll.served).toEqual({ front: before.front, fastify: before.fastify + 1 });
    expect(await ask('Content-Length: 0')).toMatch(/^HTTP\/1\.1 202/);
    expect(h.relay.posPoll.served).toEqual({ front: before.front + 1, fastify: before.fastify + 1 });
  });

  it('the key comparison is equality, whatever the given key\'s length', () => {
    const k = 'PZUOrvltpxCQsfxEF3Qwx8AnYpccSwfn';
    expect(sameKey(k, k)).toBe(true);
    expect(sameKey(`${k}`.slice(0), k)).toBe(true);
    for (const other of [`X${k.slice(1)}`, `${k.slice(0, -1)}X`, k.slice(0, -1), `${k}a`, `${k}\0`, '', 'é'.repeat(32)]) expect(sameKey(other, k)).toBe(false);
  });

  it('a GET with a body is left to fastify; a store failure on the front path answers 500 and is logged', async () => {
    h = await startHarness();
    const fastifyBefore = h.relay.posPoll.served.fastify;
    const s = net.connect({ host: '127.0.0.1', port: h.relay.port });
    await once(s, 'connect');
    s.write(`GET /mp/pos/POS1?key=${h.posKey} HTTP/1.1\r\nhost: x\r\ncontent-type: text/plain\r\ncontent-length: 5000\r\n\r\n${'x'.repeat(5000)}`);
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString()));
    await new Promise<void>((resolve) => s.on('data', () => answer.includes('\r\n\r\n') && resolve()));
    s.destroy();
    // fastify reads no body for a GET (the route's body limit is for POST), as before the front path
    expect(answer).toMatch(/^HTTP\/1\.1 202/);
    expect(h.relay.posPoll.served.fastify).toBe(fastifyBefore + 1);
    const served = h.relay.posPoll.served.front;
    h.relay.store.getKioskByPos = async () => {
      throw new Error('disk on fire');
    };
    h.relay.store.writeCount = () => -1; // the cached entry is stale: the store is read
    const failed = await raw(posUrlOf(h));
    expect(h.relay.posPoll.served.front).toBe(served + 1);
    expect(failed.status).toBe(500);
    expect(JSON.parse(failed.body)).toEqual({ error: { type: 'internal', message: 'internal error' } });
    expect(h.log.lines.some((l) => l.level === 50 && /HTTP GET \/mp\/pos\/POS1\?key=.* failed: disk on fire/.test(String(l.msg)))).toBe(true);
  });
});
