import { once } from 'node:events';
import net from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRelayConfig } from '../src/relay/config.js';
import { openRelayStore } from '../src/relay/store/index.js';
import { WebSocket } from 'ws';
import { COLLECTOR_ID, FakeMp, kioskWithOrder, notifyIpn, posUrlOf, PUBLIC_URL, startHarness, TestKiosk, type Harness } from './relay-helpers.js';

// Issue 8's problems on the relay's public routes, one test each (each failed before the fix),
// and the limits that fixed them (docs/reliability.md#limits-and-their-defaults).

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

const mpReads = (mp: FakeMp) => mp.calls.filter((c) => c.method !== 'refundPayment');

async function post(url: string, body?: string, headers: Record<string, string> = {}): Promise<number> {
  const res = await fetch(url, { method: 'POST', ...(body !== undefined ? { body, headers: { 'content-type': 'application/json', ...headers } } : {}) });
  await res.text();
  return res.status;
}

async function upgradeStatus(url: string, headers: Record<string, string>): Promise<number> {
  const ws = new WebSocket(url, { headers });
  ws.on('error', () => {});
  const [, res] = (await once(ws, 'unexpected-response')) as [unknown, { statusCode: number; resume(): void }];
  res.resume();
  return res.statusCode;
}

/** A raw HTTP connection from a given loopback source address. */
function connectFrom(port: number, localAddress = '127.0.0.1'): Promise<net.Socket> {
  return new Promise((resolve, reject) => {
    const s = net.connect({ host: '127.0.0.1', port, localAddress });
    s.once('connect', () => resolve(s));
    s.once('error', reject);
  });
}

describe('limits: configuration', () => {
  it('every limit has a safe default, and a wrong key is named', () => {
    const base = { publicUrl: PUBLIC_URL, store: { path: '/tmp/x.sqlite' }, mercadopago: { collectorId: COLLECTOR_ID }, catalog: [{ sku: 'A', name: 'A', price: 1, currency: 'ARS' }] };
    const c = parseRelayConfig(base, {});
    expect(c.limits).toMatchObject({
      trustProxy: 0, // no proxy (false in the file)
      connectionsPerSource: 128,
      headersTimeoutSeconds: 10,
      requestTimeoutSeconds: 15,
      bodyBytes: { notifications: 16384, pos: 4096 },
      notifications: { perSecond: 10, burst: 60, storedPerSourcePerHour: 5000, retentionDays: 30, notFoundMemorySeconds: 600, maxTries: 5 },
      pos: { perSecond: 50, burst: 200 },
      contingency: { callsPerSecond: 2 },
    });
    const partial = parseRelayConfig({ ...base, limits: { notifications: { retentionDays: 7 } } }, {});
    expect(partial.limits.notifications).toMatchObject({ retentionDays: 7, maxTries: 5 });
    expect(() => parseRelayConfig({ ...base, limits: { notifications: { retentionDayz: 7 } } } as never, {})).toThrow(/limits\.notifications/);
    expect(() => parseRelayConfig({ ...base, limits: { requestTimeoutSeconds: 5, headersTimeoutSeconds: 10 } }, {})).toThrow(/limits\.headersTimeoutSeconds.*requestTimeoutSeconds/);
  });
});

describe('limits: notifications', () => {
  it('a flood of unsigned notifications with unique ids is rate limited per source: bounded rows and Mercado Pago calls', async () => {
    h = await startHarness({ limits: { notifications: { perSecond: 0.001, burst: 40 } } });
    const statuses = await Promise.all(Array.from({ length: 300 }, (_, i) => notifyIpn(h!, 'merchant_order', 9_000_000 + i)));
    await h.relay.whenIdle();
    expect(statuses.filter((s) => s === 200)).toHaveLength(40);
    expect(statuses.filter((s) => s === 429)).toHaveLength(260);
    expect(await h.relay.store.listNotifications()).toHaveLength(40);
    expect(mpReads(h.mp).length).toBeLessThanOrEqual(40);
  });

  it('"not found" is remembered: the same unknown id notified again costs no further call', async () => {
    h = await startHarness();
    expect(await notifyIpn(h, 'merchant_order', 555_000_111)).toBe(200);
    await h.relay.whenIdle();
    for (let i = 0; i < 20; i++) expect(await notifyIpn(h, 'merchant_order', 555_000_111)).toBe(200);
    expect(await notifyIpn(h, 'payment', 555_000_222)).toBe(200);
    await h.relay.whenIdle();
    for (let i = 0; i < 5; i++) expect(await notifyIpn(h, 'payment', 555_000_222)).toBe(200);
    await h.relay.whenIdle();
    expect(mpReads(h.mp).map((c) => `${c.method} ${String(c.args[0])}`)).toEqual(['getMerchantOrder 555000111', 'getPayment 555000222']);
    const outcomes = (await h.relay.store.listNotifications()).map((n) => n.outcome);
    expect(outcomes.filter((o) => o === 'not_found (remembered)')).toHaveLength(25);
  });

  it('ids that are not Mercado Pago ids are refused before any call, and not stored', async () => {
    h = await startHarness();
    const bad = ['..', 'abc', '-5', '0', '12ab', '1'.repeat(15_000), '%2e%2e', '1%2F2'];
    for (const id of bad) {
      expect(await post(`${h.relay.url}/mp/notifications?topic=merchant_order&id=${id.length > 100 ? id : id}`)).toBe(400);
      expect(await post(`${h.relay.url}/mp/notifications?topic=payment&id=${id}`)).toBe(400);
      expect(await post(`${h.relay.url}/mp/notifications?data.id=${id}&type=payment`, JSON.stringify({ type: 'payment', data: { id } }))).toBe(400);
    }
    await h.relay.whenIdle();
    expect(h.mp.calls).toEqual([]);
    expect(await h.relay.store.listNotifications()).toEqual([]);
    // and the 15,000-digit id never reaches a log line whole
    expect(h.log.raw.join('').length).toBeLessThan(20_000);
  });

  it('a stored row with a bad id (from an older relay) is refused at resume, without a call', async () => {
    h = await startHarness();
    await h.relay.close();
    const s = await openRelayStore(h.dbPath);
    for (const id of ['..', '1'.repeat(15_000)]) {
      await s.insertNotification({ receivedAt: h.clock.t, form: 'ipn', topic: 'merchant_order', resourceId: id, query: {}, body: null, headers: {}, signatureOk: null, processedAt: null, outcome: null });
    }
    await s.close();
    await h.restart();
    await h.relay.whenIdle();
    expect(h.mp.calls).toEqual([]);
    const rows = await h.relay.store.listNotifications();
    expect(rows.every((n) => n.processedAt !== null && n.outcome?.startsWith('refused: resource id'))).toBe(true);
    await h.restart();
    expect(await h.relay.store.unprocessedNotifications()).toEqual([]);
  });

  it('a poison row is given up after limits.notifications.maxTries and flagged, and never runs again', async () => {
    h = await startHarness({ limits: { notifications: { maxTries: 3 } } });
    await h.relay.close();
    const s = await openRelayStore(h.dbPath);
    const id = await s.insertNotification({ receivedAt: h.clock.t, form: 'ipn', topic: 'merchant_order', resourceId: '777', query: {}, body: null, headers: {}, signatureOk: null, processedAt: null, outcome: null });
    // it failed three times before (each run ended in an error or a crash)
    for (let i = 0; i < 3; i++) await s.noteNotificationFailure(id, 'error: Mercado Pago answered 500');
    await s.close();
    await h.restart();
    await h.relay.whenIdle();
    expect(h.mp.calls).toEqual([]);
    const row = (await h.relay.store.listNotifications())[0]!;
    expect(row).toMatchObject({ attempts: 3, outcome: 'given up after 3 failed tries' });
    expect(row.givenUpAt).not.toBeNull();
    const health = (await (await fetch(`${h.relay.url}/healthz`)).json()) as { notificationsGivenUp: number };
    expect(health.notificationsGivenUp).toBe(1);
    await h.restart();
    await h.relay.whenIdle();
    expect(h.mp.calls).toEqual([]);
  });

  it('Mercado Pago refusing a read for good (400) gives the row up at once: one call, flagged', async () => {
    h = await startHarness();
    const err = Object.assign(new Error('Mercado Pago GET /merchant_orders/123 answered 400 (invalid_format)'), { name: 'MpBadRequestError', status: 400 });
    h.mp.getMerchantOrder = async (id) => {
      h!.mp.calls.push({ method: 'getMerchantOrder', args: [id] });
      throw err;
    };
    expect(await notifyIpn(h, 'merchant_order', 123)).toBe(200);
    await h.relay.whenIdle();
    expect(h.mp.calls).toHaveLength(1);
    const row = (await h.relay.store.listNotifications())[0]!;
    expect(row.outcome).toMatch(/^given up \(Mercado Pago refuses this request for good\)/);
    expect(row.givenUpAt).not.toBeNull();
    await h.restart();
    await h.relay.whenIdle();
    expect(h.mp.calls).toHaveLength(1);
  });

  it('60 KB bodies are refused (413) and never stored', async () => {
    h = await startHarness();
    const big = JSON.stringify({ type: 'payment', data: { id: '123' }, pad: 'x'.repeat(60 * 1024) });
    for (let i = 0; i < 5; i++) expect(await post(`${h.relay.url}/mp/notifications?data.id=123&type=payment`, big)).toBe(413);
    expect(await post(posUrlOf(h), 'y'.repeat(8 * 1024))).toBe(413);
    expect(await h.relay.store.listNotifications()).toEqual([]);
  });

  it('stored notifications are capped per source per hour', async () => {
    h = await startHarness({ limits: { notifications: { storedPerSourcePerHour: 10 } } });
    const statuses: number[] = [];
    for (let i = 0; i < 15; i++) statuses.push(await notifyIpn(h, 'merchant_order', 100 + i));
    expect(statuses.filter((s) => s === 200)).toHaveLength(10);
    expect(statuses.slice(10)).toEqual([429, 429, 429, 429, 429]);
    // an hour later the source may store again
    h.clock.t += 3_600_001;
    expect(await notifyIpn(h, 'merchant_order', 999)).toBe(200);
    await h.relay.whenIdle();
  });

  it('inbox retention: applied kiosk frames older than inbox.retentionDays are pruned (issue 8)', async () => {
    h = await startHarness({ limits: { inbox: { retentionDays: 7 } } });
    const day = 86_400_000;
    await h.relay.store.recordInbox('k1', 'msg-8-days', 'order.ready', h.clock.t - 8 * day);
    await h.relay.store.recordInbox('k1', 'msg-6-days', 'order.ready', h.clock.t - 6 * day);
    expect(await h.relay.runRetention()).toEqual({ notifications: 0, inbox: 1 });
    expect(await h.relay.store.inInbox('k1', 'msg-8-days')).toBe(false);
    expect(await h.relay.store.inInbox('k1', 'msg-6-days')).toBe(true);
    h.clock.t += 2 * day;
    expect((await h.relay.runRetention()).inbox).toBe(1);
    expect(await h.relay.store.inInbox('k1', 'msg-6-days')).toBe(false);
  });

  it('retention: processed rows older than retentionDays are pruned, unprocessed ones kept', async () => {
    h = await startHarness({ limits: { notifications: { retentionDays: 7 } } });
    await h.relay.close();
    const s = await openRelayStore(h.dbPath);
    const row = (at: number, processedAt: number | null) =>
      s.insertNotification({ receivedAt: at, form: 'ipn', topic: 'chargebacks', resourceId: '1', query: {}, body: null, headers: {}, signatureOk: null, processedAt, outcome: processedAt ? 'ignored' : null });
    const day = 86_400_000;
    await row(h.clock.t - 30 * day, h.clock.t - 30 * day);
    await row(h.clock.t - 8 * day, h.clock.t - 8 * day);
    await row(h.clock.t - 1 * day, h.clock.t - 1 * day);
    await s.close();
    await h.restart(); // a pass runs at start-up
    expect(await h.relay.store.listNotifications()).toHaveLength(1);
    h.clock.t += 7 * day;
    expect(await h.relay.runRetention()).toEqual({ notifications: 1, inbox: 0 });
    expect(await h.relay.store.listNotifications()).toEqual([]);
  });
});

describe('limits: the POS url and the kiosk link', () => {
  it('wrong-key polls and bad-token connections log one line per source per period, with a count', async () => {
    h = await startHarness();
    const bad = `${h.relay.url}/mp/pos/POS1?key=wrong`;
    for (let i = 0; i < 100; i++) expect((await fetch(bad)).status).toBe(400);
    for (let i = 0; i < 20; i++) expect(await upgradeStatus(h.relay.wsUrl, { authorization: `Bearer qk_nope${i}` })).toBe(401);
    const warnsBefore = h.log.warns().length;
    expect(warnsBefore).toBe(1);
    await h.relay.close(); // ends the period: the count comes out
    const summary = h.log.lines.filter((l) => l.level === 40).at(-1)!;
    expect(summary.msg).toMatch(/^119 requests from 127\.0\.0\.1 refused in the last period \(99 wrong POS key, 20 unknown kiosk token\)$/);
    await h.restart();
  });

  it("the POS url never refuses Mercado Pago's polling: 150 polls in a row are all answered", async () => {
    h = await startHarness();
    const k = await kioskWithOrder(h, 'ord_polling1');
    // one customer's app polls one request after the other
    for (let i = 0; i < 150; i++) expect((await fetch(posUrlOf(h))).status).toBe(200);
    await k.close();
  });

  it('the POS url is rate limited per source beyond its burst', async () => {
    h = await startHarness({ limits: { pos: { perSecond: 0.001, burst: 5 } } });
    const statuses = await Promise.all(Array.from({ length: 20 }, () => fetch(`${h!.relay.url}/mp/pos/POS1?key=wrong`).then((r) => r.status)));
    expect(statuses.filter((s) => s === 429)).toHaveLength(15);
  });

  it('a body that never finishes is cut at requestTimeoutSeconds', async () => {
    h = await startHarness({ limits: { requestTimeoutSeconds: 1, headersTimeoutSeconds: 1 } });
    const s = await connectFrom(h.relay.port);
    s.write(`POST /mp/notifications?topic=merchant_order&id=1 HTTP/1.1\r\nhost: x\r\ncontent-type: application/json\r\ncontent-length: 1000\r\n\r\n{`);
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString()));
    await once(s, 'close'); // before the fix: held open for ever
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('headers that never finish are cut at headersTimeoutSeconds', async () => {
    h = await startHarness({ limits: { headersTimeoutSeconds: 1 } });
    const s = await connectFrom(h.relay.port);
    s.write('GET /healthz HTTP/1.1\r\nhost: x\r\n');
    let answer = '';
    s.on('data', (d: Buffer) => (answer += d.toString()));
    await once(s, 'close');
    expect(answer).toMatch(/^HTTP\/1\.1 408/);
  });

  it('connections per source are capped; other sources still get in', async () => {
    h = await startHarness({ limits: { connectionsPerSource: 5 } });
    const held = await Promise.all(Array.from({ length: 5 }, () => connectFrom(h!.relay.port, '127.0.0.2')));
    const extra = await connectFrom(h.relay.port, '127.0.0.2');
    extra.resume();
    await once(extra, 'close');
    // the held ones still work
    held[0]!.write('GET /healthz HTTP/1.1\r\nhost: x\r\n\r\n');
    const [first] = (await once(held[0]!, 'data')) as [Buffer];
    expect(first.toString()).toMatch(/^HTTP\/1\.1 200/);
    // another source is not affected
    expect((await fetch(`${h.relay.url}/healthz`)).status).toBe(200);
    for (const s of held) s.destroy();
  });

  it('a kiosk link is not cut by the idle timeout', async () => {
    h = await startHarness({ limits: { idleTimeoutSeconds: 1 } });
    const k = await TestKiosk.connect(h.relay, h.token);
    // two pings apart by more than the idle timeout would be timing; instead: the socket's own
    // timeout is off once upgraded (ws clears it), which is what keeps the link up
    const sockets = [...(h.relay.hub as unknown as { links: Map<string, { ws: { _socket: net.Socket } }> }).links.values()];
    expect(sockets[0]!.ws._socket.timeout ?? 0).toBe(0);
    await k.roundTrip();
    await k.close();
  });
});

describe('limits: the client address behind a proxy', () => {
  const notify = async (id: number, xff: string) => {
    const res = await fetch(`${h!.relay.url}/mp/notifications?topic=merchant_order&id=${id}`, { method: 'POST', headers: { 'x-forwarded-for': xff } });
    await res.text();
    return res.status;
  };

  it('trustProxy: true takes the address the proxy appended (right-most), so a client writing its own X-Forwarded-For cannot dodge the per-source limit', async () => {
    h = await startHarness({ limits: { trustProxy: true, notifications: { perSecond: 0.001, burst: 3 } } });
    const statuses: number[] = [];
    // each request claims another origin on the left; the proxy appends the one it saw
    for (let i = 0; i < 8; i++) statuses.push(await notify(7_000_000 + i, `203.0.113.${i + 1}, 198.51.100.7`));
    await h.relay.whenIdle();
    expect(statuses.filter((s) => s === 200)).toHaveLength(3);
    expect(statuses.filter((s) => s === 429)).toHaveLength(5);
    expect(new Set((await h.relay.store.listNotifications()).map((n) => n.source))).toEqual(new Set(['198.51.100.7']));
  });

  it('trustProxy: 2 (two proxies) takes the second address from the right; two clients are two sources', async () => {
    h = await startHarness({ limits: { trustProxy: 2, notifications: { perSecond: 0.001, burst: 2 } } });
    const a = [await notify(7_100_001, '6.6.6.6, 198.51.100.1, 10.0.0.2'), await notify(7_100_002, '7.7.7.7, 198.51.100.1, 10.0.0.2'), await notify(7_100_003, '198.51.100.1, 10.0.0.2')];
    const b = [await notify(7_100_004, '198.51.100.2, 10.0.0.2'), await notify(7_100_005, '198.51.100.2, 10.0.0.2')];
    await h.relay.whenIdle();
    expect(a).toEqual([200, 200, 429]);
    expect(b).toEqual([200, 200]);
    expect(new Set((await h.relay.store.listNotifications()).map((n) => n.source))).toEqual(new Set(['198.51.100.1', '198.51.100.2']));
  });
});
