// Two relay PROCESSES on one real PostgreSQL database, as behind a load balancer: the kiosk's
// WebSocket on instance A, Mercado Pago's POS poll and notification on instance B. The vend must
// complete once; with A SIGKILLed mid-vend, the kiosk reconnects to B (the balancer's failover)
// and the vend completes once or is refunded once. Real agent process, real sandbox emulator.

import { afterEach, describe, expect, it } from 'vitest';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { controlRequest } from '../src/agent/control.js';
import type { JournalEntry } from '../src/agent/journal.js';
import { readPulseLog } from '../src/devices/dispenser.js';
import { MercadoPagoClient } from '../src/mercadopago/client.js';
import { parseRelayConfig } from '../src/relay/config.js';
import { provisionKiosk } from '../src/relay/provision.js';
import { openPostgresStore } from '../src/relay/store/postgres/index.js';
import type { RelayStore } from '../src/relay/store/api.js';
import { freeLoopbackPort } from '../src/runtime/net.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';
import { createTestDatabase, skipWithoutPostgres, type TestDatabase } from './helpers/pg.js';
import { waitFor } from './helpers/wait.js';

const ROOT = resolve(import.meta.dirname, '..');
const skipPg = await skipWithoutPostgres();
const ACCESS_TOKEN = 'TEST-fleet-token';
const COLLECTOR_ID = 55501234;
const WEBHOOK_SECRET = 'fleet-webhook-secret';

/** The load balancer in front of the kiosks' WebSockets: a TCP forwarder whose target can move. */
class Balancer {
  private readonly sockets = new Set<net.Socket>();
  private constructor(
    private readonly server: net.Server,
    public target: number,
  ) {}
  static async start(target: number): Promise<Balancer> {
    let b!: Balancer;
    const server = net.createServer((client) => {
      const upstream = net.connect(b.target, '127.0.0.1');
      b.sockets.add(client).add(upstream);
      const end = () => {
        client.destroy();
        upstream.destroy();
        b.sockets.delete(client);
        b.sockets.delete(upstream);
      };
      client.on('error', end).on('close', end);
      upstream.on('error', end).on('close', end);
      client.pipe(upstream).pipe(client);
    });
    b = new Balancer(server, target);
    await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
    return b;
  }
  get port(): number {
    return (this.server.address() as net.AddressInfo).port;
  }
  async close(): Promise<void> {
    for (const s of this.sockets) s.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
  }
}

interface Relay {
  name: string;
  port: number;
  child: ChildProcess;
  output: string;
  exit: Promise<unknown>;
}

class Fleet2 {
  relays: Relay[] = [];
  agent: ChildProcess | undefined;
  agentOut = '';
  agentExit: Promise<unknown> | undefined;
  constructor(
    readonly dir: string,
    readonly db: TestDatabase,
    readonly sandbox: Sandbox,
    readonly store: RelayStore,
    readonly publicUrl: string,
    readonly token: string,
    readonly balancer: Balancer,
  ) {}

  static async start(): Promise<Fleet2> {
    const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-fleet-'));
    const db = await createTestDatabase();
    const sandbox = await startSandbox({ accessToken: ACCESS_TOKEN, collectorId: COLLECTOR_ID, currency: 'ARS', webhookSecret: WEBHOOK_SECRET, pollIntervalMs: 50, pollGiveUpMs: 5000, logger: pino({ level: 'silent' }) });
    const [portA, portB] = [await freeLoopbackPort(), await freeLoopbackPort()];
    // Mercado Pago reaches the fleet at B; the kiosk's balancer points at A
    const publicUrl = `http://127.0.0.1:${portB}`;
    await sandbox.configure({ ordersWebhookUrl: `${publicUrl}/mp/notifications`, panelNotificationUrl: `${publicUrl}/mp/notifications` });
    const yaml = (port: number) => `listen: { host: 127.0.0.1, port: ${port} }
publicUrl: ${publicUrl}
store: { url: "${db.url}" }
mercadopago: { baseUrl: "${sandbox.url}", accessToken: ${ACCESS_TOKEN}, collectorId: ${COLLECTOR_ID}, webhookSecret: ${WEBHOOK_SECRET} }
catalog:
  - { sku: COLA, name: Cola 350 ml, price: "1500.00", currency: ARS }
orders: { maxPaymentSeconds: 120, contingencyAfterSeconds: 600 }
hub: { pingIntervalSeconds: 2 }
commands: { keyFile: ${join(dir, 'command-key.pem')} }
observability: { drainSeconds: 0 }
`;
    writeFileSync(join(dir, 'a.yaml'), yaml(portA));
    writeFileSync(join(dir, 'b.yaml'), yaml(portB));
    // `qrkiosk relay kiosk add` + `provision`, on the shared database
    const store = await openPostgresStore(db.url);
    const config = parseRelayConfig({
      listen: { host: '127.0.0.1', port: portB },
      publicUrl,
      store: { url: db.url },
      mercadopago: { baseUrl: sandbox.url, accessToken: ACCESS_TOKEN, collectorId: COLLECTOR_ID, webhookSecret: WEBHOOK_SECRET },
      catalog: [{ sku: 'COLA', name: 'Cola 350 ml', price: '1500.00', currency: 'ARS' }],
    });
    const added = await store.addKiosk({ id: 'kiosk-f', posExternalId: 'KIOSKF', generation: 'v2', model: 'unattended', modelMode: null });
    await provisionKiosk(new MercadoPagoClient({ baseUrl: sandbox.url, accessToken: ACCESS_TOKEN }), config, store, added.kiosk, { storeExternalId: 'FSTORE', storeName: 'fleet store' });
    const balancer = await Balancer.start(portA);
    const f = new Fleet2(dir, db, sandbox, store, publicUrl, added.token, balancer);
    f.relays.push(await f.startRelay('A', portA), await f.startRelay('B', portB));
    return f;
  }

  async startRelay(name: string, port: number): Promise<Relay> {
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'qrkiosk.js'), 'relay', '--config', join(this.dir, `${name.toLowerCase()}.yaml`)], {
      cwd: ROOT,
      env: { ...process.env, QRKIOSK_LOG_LEVEL: 'info' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    const r: Relay = { name, port, child, output: '', exit: new Promise((res) => child.once('exit', res)) };
    child.stdout!.on('data', (d: Buffer) => (r.output += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (r.output += d.toString()));
    await waitFor(`relay ${name} ready`, async () => {
      if (child.exitCode !== null) throw new Error(`relay ${name} exited: ${r.output.slice(-2000)}`);
      const res = await fetch(`http://127.0.0.1:${port}/readyz`).catch(() => undefined);
      return res?.status === 200;
    }, 60_000);
    return r;
  }

  relay(name: string): Relay {
    return this.relays.find((r) => r.name === name)!;
  }

  get socket(): string {
    return join(this.dir, 'agent.sock');
  }

  get pulseLog(): string {
    return join(this.dir, 'pulses.jsonl');
  }

  async startAgent(fault: 'none' | 'no_drop' = 'none'): Promise<void> {
    writeFileSync(
      join(this.dir, 'agent.yaml'),
      `kioskId: kiosk-f
relay:
  url: ws://127.0.0.1:${this.balancer.port}/v1/kiosk
  token: ${this.token}
  backoff: { baseMs: 50, capMs: 400 }
  pingIntervalSeconds: 2
journal: { path: ${join(this.dir, 'agent.sqlite')} }
control: { socket: ${this.socket} }
payment: { deadlineSeconds: 90 }
locale: es
slots:
  - { slot: 1, sku: COLA, stock: 500 }
hardware:
  buttons: { driver: none }
  display: { driver: log }
  dispenser:
    driver: sim
    pulseMs: 60
    dropWindowMs: 400
    maxPulses: 2
    sim: { fault: ${fault}, dropDelayMs: 30, pulseLog: ${this.pulseLog} }
`,
    );
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'qrkiosk.js'), 'agent', '--config', join(this.dir, 'agent.yaml')], { cwd: ROOT, env: { ...process.env }, stdio: ['ignore', 'pipe', 'pipe'] });
    child.stdout!.on('data', (d: Buffer) => (this.agentOut += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.agentOut += d.toString()));
    this.agent = child;
    this.agentExit = new Promise((res) => child.once('exit', res));
    await waitFor('the agent connected', async () => {
      if (child.exitCode !== null) throw new Error(`agent exited: ${this.agentOut.slice(-2000)}`);
      if (!existsSync(this.socket)) return false;
      const s = (await controlRequest(this.socket, 'status').catch(() => undefined)) as { relay: { online: boolean; lastWelcomeAt: number | null } } | undefined;
      return s?.relay.online && s.relay.lastWelcomeAt;
    }, 30_000);
  }

  async select(slot: number): Promise<string> {
    const r = (await controlRequest(this.socket, 'select', { slot })) as { ok: boolean; orderId?: string; reason?: string };
    if (!r.ok) throw new Error(`select refused: ${r.reason}`);
    return r.orderId!;
  }

  async agentOrder(id: string): Promise<JournalEntry | undefined> {
    return ((await controlRequest(this.socket, 'journal', { limit: 20 })) as JournalEntry[]).find((o) => o.id === id);
  }

  pulses(): number {
    return existsSync(this.pulseLog) ? readPulseLog(readFileSync(this.pulseLog, 'utf8')).length : 0;
  }

  async close(): Promise<void> {
    if (this.agent && this.agent.exitCode === null) {
      this.agent.kill('SIGKILL');
      await this.agentExit;
    }
    for (const r of this.relays) {
      if (r.child.exitCode === null && r.child.signalCode === null) {
        r.child.kill('SIGTERM');
        await r.exit;
      }
    }
    await this.balancer.close();
    await this.store.close();
    await this.sandbox.close();
    await this.db.drop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

let fleet: Fleet2 | undefined;
afterEach(async () => {
  await fleet?.close();
  fleet = undefined;
});

describe.skipIf(skipPg)('two relay processes on one PostgreSQL database', () => {
  it('kiosk on A, Mercado Pago on B: the vend completes once', async () => {
    fleet = await Fleet2.start();
    await fleet.startAgent();
    const orderId = await fleet.select(1);
    await waitFor('the order pending in the shared store', async () => (await fleet!.store.getOrder(orderId))?.state === 'pending');
    // B answers Mercado Pago's poll: it must know the kiosk is connected (to A)
    const kiosk = (await fleet.store.getKiosk('kiosk-f'))!;
    const scan = await fleet.sandbox.scan({ qr: kiosk.posQr! });
    if (scan.status !== 'ready') throw new Error(`scan was ${scan.status}`);
    expect(scan.externalReference).toBe(orderId);
    const paid = await fleet.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
    await waitFor('dispensed at the kiosk', async () => (await fleet!.agentOrder(orderId))?.state === 'dispensed', 30_000);
    await waitFor('vended in the store', async () => (await fleet!.store.getOrder(orderId))?.state === 'vended', 30_000);
    expect(fleet.pulses()).toBe(1);
    expect((await fleet.agentOrder(orderId))?.paymentId).toBe(String(paid.paymentId));
    expect(await fleet.sandbox.refunds()).toHaveLength(0);
    // the release was made by B (it took the notification) and reached the kiosk through A
    expect(fleet.relay('B').output).toMatch(/notification/i);
    const events = (await fleet.store.orderEvents(orderId)).map((e) => e.event);
    expect(events.filter((e) => e === 'payment_verified')).toHaveLength(1);
  });

  it('A is SIGKILLed mid-vend: the kiosk reconnects to B and the vend completes once, or is refunded once', async () => {
    fleet = await Fleet2.start();
    await fleet.startAgent();
    const orderId = await fleet.select(1);
    await waitFor('the order pending', async () => (await fleet!.store.getOrder(orderId))?.state === 'pending');
    const kiosk = (await fleet.store.getKiosk('kiosk-f'))!;
    const scan = await fleet.sandbox.scan({ qr: kiosk.posQr! });
    if (scan.status !== 'ready') throw new Error(`scan was ${scan.status}`);
    // A dies the moment the payment is made: whether order.paid left A or not is up to chance
    const paying = fleet.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
    fleet.relay('A').child.kill('SIGKILL');
    await fleet.relay('A').exit;
    fleet.balancer.target = fleet.relay('B').port; // the balancer's health check moved the kiosk
    await paying;
    const final = await waitFor(
      'the order settled',
      async () => {
        const o = await fleet!.store.getOrder(orderId);
        return o && (o.state === 'vended' || o.state === 'refunded') ? o : undefined;
      },
      60_000,
    );
    if (final.state === 'vended') {
      expect(fleet.pulses()).toBe(1);
      expect(await fleet.sandbox.refunds()).toHaveLength(0);
    } else {
      expect(await fleet.sandbox.refunds()).toHaveLength(1);
    }
    // either way: never two pulses, never two refunds, and the kiosk is now B's
    expect(fleet.pulses()).toBeLessThanOrEqual(1);
    const presence = await fleet.store.presenceOf('kiosk-f');
    expect(presence?.instanceId).toMatch(/-\d+-[0-9a-f]{6}$/);
    expect(fleet.relay('B').output).toContain('kiosk-f');
  });

  it('the same notification to both instances at the same instant, 100 times: 100 single releases', async () => {
    fleet = await Fleet2.start();
    await fleet.startAgent();
    const kiosk = (await fleet.store.getKiosk('kiosk-f'))!;
    const rounds = 100;
    for (let i = 0; i < rounds; i++) {
      const orderId = await fleet.select(1);
      await waitFor('the order pending', async () => (await fleet!.store.getOrder(orderId))?.state === 'pending');
      const scan = await fleet.sandbox.scan({ qr: kiosk.posQr! });
      if (scan.status !== 'ready') throw new Error(`round ${i}: scan was ${scan.status}`);
      const paid = await fleet.sandbox.pay({ checkoutId: scan.checkoutId, notify: false });
      if (paid.model === 'orders') throw new Error('unattended pays a merchant order');
      // Mercado Pago's IPN, the same one, to A and B at once
      const ipn = (port: number) => fetch(`http://127.0.0.1:${port}/mp/notifications?topic=merchant_order&id=${paid.merchantOrderId}`, { method: 'POST' });
      const answers = await Promise.all([ipn(fleet.relay('A').port), ipn(fleet.relay('B').port)]);
      expect(answers.map((a) => a.status)).toEqual([200, 200]);
      await waitFor(`round ${i}: dispensed`, async () => (await fleet!.agentOrder(orderId))?.state === 'dispensed', 30_000);
      const released = (await fleet.store.orderEvents(orderId)).filter((e) => e.event === 'payment_verified');
      expect(released, `round ${i}: order ${orderId} released ${released.length} times`).toHaveLength(1);
    }
    await waitFor('every order vended', async () => (await fleet!.store.countOrders('vended')) === rounds, 30_000);
    expect(fleet.pulses()).toBe(rounds);
    expect(await fleet.sandbox.refunds()).toHaveLength(0);
  }, 600_000);

  it('background work on two instances: each expired order is expired once', async () => {
    fleet = await Fleet2.start();
    // 60 orders whose payment time ran out, as a kiosk left them; both instances tick every second
    const now = Date.now();
    const ids: string[] = [];
    for (let i = 0; i < 60; i++) {
      const id = `ord_exp_${String(i).padStart(3, '0')}`;
      ids.push(id);
      await fleet.store.insertOrder({ id, kioskId: 'kiosk-f', slot: 1, sku: 'COLA', title: 'Cola 350 ml', quantity: 1, unitPrice: 150000, amount: 150000, currency: 'ARS', claimedAmount: 150000, claimedCurrency: 'ARS', state: 'pending', deadline: now - 1000, createdAt: now - 120_000 });
    }
    await waitFor('every order expired', async () => (await fleet!.store.countOrders('expired')) === ids.length, 60_000);
    for (const id of ids) {
      const expiries = (await fleet.store.orderEvents(id)).filter((e) => e.event === 'expire');
      expect(expiries, `order ${id}`).toHaveLength(1);
    }
    // both instances were up the whole time
    expect(fleet.relays.every((r) => r.child.exitCode === null)).toBe(true);
  }, 120_000);

  it('background work on two instances: each refund is requested once', async () => {
    fleet = await Fleet2.start();
    // the motor turns but nothing falls: every paid vend fails and its payment is refunded
    await fleet.startAgent('no_drop');
    const kiosk = (await fleet.store.getKiosk('kiosk-f'))!;
    const orders: string[] = [];
    for (let i = 0; i < 5; i++) {
      const orderId = await fleet.select(1);
      orders.push(orderId);
      await waitFor('the order pending', async () => (await fleet!.store.getOrder(orderId))?.state === 'pending');
      const scan = await fleet.sandbox.scan({ qr: kiosk.posQr! });
      if (scan.status !== 'ready') throw new Error(`round ${i}: scan was ${scan.status}`);
      await fleet.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
      await waitFor(`round ${i}: refunded`, async () => (await fleet!.store.getOrder(orderId))?.state === 'refunded', 60_000);
    }
    const refunds = await fleet.sandbox.refunds();
    expect(refunds).toHaveLength(orders.length);
    expect(new Set(refunds.map((r) => r.externalReference))).toEqual(new Set(orders));
    // each refund was asked of Mercado Pago by one instance, once
    const logs = fleet.relay('A').output + fleet.relay('B').output;
    for (const id of orders) {
      const asked = logs.split('\n').filter((l) => l.includes(`order ${id}: payment`) && l.includes('refunded (refund'));
      expect(asked, `refund log lines for ${id}`).toHaveLength(1);
    }
  }, 300_000);
});
