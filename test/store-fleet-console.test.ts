// Schema 7 on both stores (SQLite file, real PostgreSQL): kiosk presence for several relay
// instances, alerts that fire once per condition and clear once, and outbound deliveries through
// their checked lifecycle, driven by the real alert manager and delivery worker against a real
// webhook receiver on loopback.

import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import pg from 'pg';
import { IllegalTransition } from '../src/core/state-machine.js';
import type { RelayStore } from '../src/relay/store/api.js';
import { AlertManager } from '../src/relay/console/alerts.js';
import { DEFAULT_ALERT_RULES, type AlertFacts, type KioskFacts } from '../src/relay/console/alert-rules.js';
import { openChannel, type Channel } from '../src/relay/console/channels.js';
import { DeliveryWorker, deliveriesFor } from '../src/relay/console/deliveries.js';
import { verifyWebhook } from '../src/relay/console/webhook-signature.js';
import { FleetPresence } from '../src/relay/fleet/presence.js';
import { PgSignals } from '../src/relay/fleet/signals.js';
import { silentLogger } from '../src/runtime/log.js';
import { skipWithoutPostgres } from './helpers/pg.js';
import { openTestStore, STORE_KINDS, type StoreKind, type TestStore } from './helpers/relay-stores.js';
import { waitFor } from './helpers/wait.js';

const skipPg = await skipWithoutPostgres();
const T0 = 1_764_000_000_000;

describe.each(STORE_KINDS)('schema 7 on %s', (kind: StoreKind) => {
  const skip = kind === 'postgres' && skipPg;
  let t: TestStore;
  let s: RelayStore;
  const closers: Array<() => Promise<void> | void> = [];

  beforeEach(async () => {
    if (skip) return;
    t = await openTestStore(kind);
    s = t.store;
  });
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
    if (!skip) await t.cleanup();
  });

  it.skipIf(skip)('presence: a newer connection elsewhere wins; the old instance cannot release it; stale rows age out', async () => {
    await s.claimPresence('k1', 'relay-a', T0);
    await s.claimPresence('k2', 'relay-a', T0);
    await s.claimPresence('k1', 'relay-b', T0 + 10);
    expect(await s.presenceOf('k1')).toEqual({ kioskId: 'k1', instanceId: 'relay-b', connectedAt: T0 + 10, seenAt: T0 + 10 });
    expect(await s.releasePresence('k1', 'relay-a')).toBe(false);
    expect((await s.presenceOf('k1'))?.instanceId).toBe('relay-b');
    expect(await s.touchPresence('relay-a', T0 + 5000)).toBe(1);
    expect((await s.presentSince(T0 + 1000)).map((r) => r.kioskId)).toEqual(['k2']);
    expect(await s.releasePresence('k1', 'relay-b')).toBe(true);
    expect(await s.presenceOf('k1')).toBeUndefined();
  });

  it.skipIf(skip)('the presence cache: a kiosk held by a live instance is present, by a dead one not; a move away drops our link', async () => {
    let clock = T0;
    const moved: string[] = [];
    const a = new FleetPresence({ store: s, instanceId: 'relay-a', logger: silentLogger(), heartbeatMs: 1000, staleAfterMs: 3000, now: () => clock, onMovedAway: (k, to) => moved.push(`${k}->${to}`) });
    await a.connected('k1');
    expect(a.isPresent('k1')).toBe(true);
    // another instance takes k1 (the kiosk reconnected there), and holds k9 too
    await s.claimPresence('k1', 'relay-b', clock + 1);
    await s.claimPresence('k9', 'relay-b', clock + 1);
    await a.refresh('k1');
    expect(moved).toEqual(['k1->relay-b']);
    await a.beat();
    expect(a.holderOf('k9')).toBe('relay-b');
    // relay-b dies: no heartbeat for longer than staleAfterMs
    clock += 5000;
    await a.beat();
    expect(a.isPresent('k9')).toBe(false);
  });

  it.skipIf(skip)('kiosks with outbox rows', async () => {
    await s.addKiosk({ id: 'k1', posExternalId: 'P1', generation: 'v2' }, T0);
    await s.addKiosk({ id: 'k2', posExternalId: 'P2', generation: 'v2' }, T0);
    await s.enqueueOutbox('k2', { id: 'm1', type: 'order.paid' }, T0);
    await s.enqueueOutbox('k2', { id: 'm2', type: 'order.paid' }, T0);
    expect(await s.kiosksWithOutbox()).toEqual(['k2']);
  });

  it.skipIf(skip)('alerts fire once per key, clear once, and write their deliveries in the same transaction', async () => {
    const d1 = { id: 'd1', channel: 'ops', event: 'alert.fired', payload: '{}', subject: 'alert:a1' };
    const a = { id: 'a1', key: 'kiosk_offline:k1', kind: 'kiosk_offline' as const, kioskId: 'k1', summary: 'k1 offline', facts: { n: 1 }, firedAt: T0 };
    expect(await s.fireAlert(a, [d1])).toEqual({ ...a, clearedAt: null });
    // the same condition again (another instance, a restart): nothing new, not even a delivery
    expect(await s.fireAlert({ ...a, id: 'a2' }, [{ ...d1, id: 'd2' }])).toBeUndefined();
    expect((await s.deliveries({ limit: 10 })).map((d) => d.id)).toEqual(['d1']);
    expect(await s.clearAlert('a1', T0 + 60_000, [{ ...d1, id: 'd3', event: 'alert.cleared' }])).toBe(true);
    expect(await s.clearAlert('a1', T0 + 61_000, [{ ...d1, id: 'd4', event: 'alert.cleared' }])).toBe(false);
    expect((await s.deliveries({ limit: 10 })).map((d) => d.id).sort()).toEqual(['d1', 'd3']);
    // after clearing, the same key may fire again as a new alert
    expect(await s.fireAlert({ ...a, id: 'a5', firedAt: T0 + 120_000 }, [])).toMatchObject({ id: 'a5' });
    expect((await s.alerts({ limit: 10 })).map((x) => [x.id, x.clearedAt])).toEqual([
      ['a5', null],
      ['a1', T0 + 60_000],
    ]);
    expect((await s.alerts({ limit: 10, open: true })).map((x) => x.id)).toEqual(['a5']);
    expect((await s.openAlerts()).map((x) => x.id)).toEqual(['a5']);
  });

  it.skipIf(skip)('a delivery moves only as its table allows', async () => {
    await s.insertDeliveries([{ id: 'd1', channel: 'ops', event: 'order.paid', payload: '{}', subject: 'order:o1' }], T0);
    expect(await s.nextDeliveryAt()).toBe(T0);
    expect((await s.dueDeliveries(T0 - 1, 10)).length).toBe(0);
    await s.moveDelivery('d1', 'failed', T0 + 1, { attempts: 1, error: 'HTTP 503', nextAt: T0 + 5000 });
    expect(await s.nextDeliveryAt()).toBe(T0 + 5000);
    const done = await s.moveDelivery('d1', 'delivered', T0 + 6000, { attempts: 2, error: null });
    expect(done).toMatchObject({ state: 'delivered', attempts: 2, lastError: null, deliveredAt: T0 + 6000 });
    await expect(s.moveDelivery('d1', 'failed', T0 + 7000, {})).rejects.toBeInstanceOf(IllegalTransition);
    expect(await s.nextDeliveryAt()).toBeUndefined();
  });

  it.skipIf(skip)('offline kiosk: the manager fires one alert, the worker delivers one signed webhook; back online: one cleared', async () => {
    const got: Array<{ event: string; body: string; sig: string }> = [];
    let status = 503; // the receiver is down at first: the worker retries
    const server: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        if (status === 200) got.push({ event: String(req.headers['x-qrkiosk-event']), body, sig: String(req.headers['x-qrkiosk-signature']) });
        res.writeHead(status).end();
      });
    });
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => server.close(() => r())));
    const channels: Channel[] = [openChannel({ name: 'ops', events: ['alert.*'], webhook: { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/`, secret: 'hook-secret' } })];
    let kiosk: KioskFacts = { kioskId: 'k1', online: false, lastSeenAt: Date.now() - 20 * 60_000, inService: true, faults: [], recentVends: [], salesTimes: [] };
    const facts = async (): Promise<AlertFacts> => ({ kiosks: [kiosk], failingRefunds: [] });
    const worker = new DeliveryWorker({ store: s, channels, logger: silentLogger(), baseBackoffMs: 20, maxBackoffMs: 50 });
    closers.push(() => worker.close());
    const manager = new AlertManager({ store: s, channels, rules: DEFAULT_ALERT_RULES, facts, logger: silentLogger(), onDeliveries: () => worker.kick() });
    expect(await manager.check()).toEqual({ fired: 1, cleared: 0 });
    expect(await manager.check()).toEqual({ fired: 0, cleared: 0 });
    await waitFor('a failed first attempt', async () => ((await s.deliveries({ limit: 5 }))[0]?.attempts ?? 0) >= 1);
    status = 200;
    await waitFor('the fired alert delivered', () => got.length === 1);
    kiosk = { ...kiosk, online: true, lastSeenAt: Date.now() };
    expect(await manager.check()).toEqual({ fired: 0, cleared: 1 });
    await waitFor('the cleared alert delivered', () => got.length === 2);
    expect(got.map((g) => g.event)).toEqual(['alert.fired', 'alert.cleared']);
    for (const g of got) expect(verifyWebhook('hook-secret', g.body, g.sig, Math.floor(Date.now() / 1000)).ok).toBe(true);
    // the receiver has the body before the worker has its answer and marks the row: wait for the mark
    await waitFor('both deliveries marked delivered', async () => (await s.deliveries({ limit: 10 })).every((r) => r.state === 'delivered'));
    const rows = await s.deliveries({ limit: 10 });
    expect(rows).toHaveLength(2);
    expect(rows.find((r) => r.event === 'alert.fired')!.attempts).toBeGreaterThanOrEqual(2);
  });

});

describe.skipIf(skipPg)('PostgreSQL signals from the store', () => {
  const closers: Array<() => Promise<void> | void> = [];
  let t: TestStore;
  let s: RelayStore;
  beforeEach(async () => {
    t = await openTestStore('postgres');
    s = t.store;
  });
  afterEach(async () => {
    while (closers.length) await closers.pop()!();
    await t.cleanup();
  });

  it('an outbox row signals the kiosk on commit, and not for a rolled-back transaction', async () => {
    const signals = await PgSignals.start({ url: t.where, logger: silentLogger() });
    closers.push(() => signals.close());
    const heard: string[] = [];
    signals.on('signal', (x) => heard.push(`${x.kind}:${x.kioskId}`));
    await s.addKiosk({ id: 'k1', posExternalId: 'P1', generation: 'v2' }, T0);
    await s.addKiosk({ id: 'k2', posExternalId: 'P2', generation: 'v2' }, T0);
    await expect(
      s.transaction(async (tx) => {
        await tx.enqueueOutbox('k1', { id: 'm1', type: 'order.paid' }, T0);
        throw new Error('rolled back');
      }),
    ).rejects.toThrow('rolled back');
    await s.transaction(async (tx) => tx.enqueueOutbox('k2', { id: 'm2', type: 'order.paid' }, T0));
    await waitFor('the committed row signalled', () => heard.includes('outbox:k2'));
    expect(heard).toEqual(['outbox:k2']);
    // the signal went to this database's listeners only
    const c = new pg.Client({ connectionString: t.where });
    await c.connect();
    await c.end();
  });
});

describe('deliveriesFor', () => {
  it('one row per channel that wants the event, with the document', () => {
    const chans = [
      openChannel({ name: 'a', events: ['alert.*'], webhook: { url: 'http://127.0.0.1:1/', secret: 's' } }),
      openChannel({ name: 'b', events: ['order.*'], webhook: { url: 'http://127.0.0.1:1/', secret: 's' } }),
    ];
    const rows = deliveriesFor(chans, 'alert.fired', 'alert:x', { summary: 'hi' }, T0);
    expect(rows.map((r) => r.channel)).toEqual(['a']);
    expect(JSON.parse(rows[0]!.payload)).toEqual({ id: rows[0]!.id, type: 'alert.fired', createdAt: new Date(T0).toISOString(), data: { summary: 'hi' } });
  });
});
