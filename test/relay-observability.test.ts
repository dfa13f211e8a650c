import { spawn } from 'node:child_process';
import { createServer } from 'node:http';
import type { AddressInfo } from 'node:net';
import { once } from 'node:events';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { mpEndpointTemplate } from '../src/mercadopago/endpoints.js';
import { MercadoPagoClient } from '../src/mercadopago/client.js';
import { parseRelayConfig, type RelayConfigInput } from '../src/relay/config.js';
import { RelayOps } from '../src/relay/observability/ops.js';
import { provisionKiosk } from '../src/relay/provision.js';
import { openRelayStore } from '../src/relay/store/index.js';
import { startRelay, type RunningRelay } from '../src/relay/server.js';
import { freeLoopbackPort } from '../src/runtime/net.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';
import { parsePrometheusText, sampleValue } from './helpers/prom-text.js';
import { waitFor } from './helpers/wait.js';
import { TestKiosk, type Frame } from './relay-helpers.js';

// /metrics, /healthz and /readyz against a real relay on loopback talking to the Mercado Pago
// emulator over HTTP, with a kiosk on a real WebSocket (relay/observability/, docs/deploy.md).

const ACCESS_TOKEN = 'TEST-obs-token';
const COLLECTOR_ID = 55501;
const METRICS_TOKEN = 'metrics-token-0123456789abcdef';
const silent = pino({ level: 'silent' });

interface Stack {
  dir: string;
  sandbox: Sandbox;
  sandboxPort: number;
  relay: RunningRelay;
  token: string;
  posQr: string;
  close(): Promise<void>;
}

async function startStack(observability: RelayConfigInput['observability'] = {}): Promise<Stack> {
  const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-obs-'));
  const sandbox = await startSandbox({ accessToken: ACCESS_TOKEN, collectorId: COLLECTOR_ID, currency: 'ARS', pollIntervalMs: 50, pollGiveUpMs: 5000, logger: silent });
  const port = await freeLoopbackPort();
  const config = parseRelayConfig({
    listen: { host: '127.0.0.1', port },
    publicUrl: `http://127.0.0.1:${port}`,
    store: { path: join(dir, 'relay.sqlite') },
    mercadopago: { baseUrl: sandbox.url, accessToken: ACCESS_TOKEN, collectorId: COLLECTOR_ID },
    catalog: [{ sku: 'COLA', name: 'Cola 350 ml', price: '1500.00', currency: 'ARS' }],
    orders: { contingencyAfterSeconds: 600 },
    observability: { instance: 'relay-a', metricsToken: METRICS_TOKEN, ...observability },
  });
  const relay = await startRelay(config, { logger: silent }).catch(async (err: unknown) => {
    await sandbox.close();
    rmSync(dir, { recursive: true, force: true });
    throw err;
  });
  await sandbox.configure({ panelNotificationUrl: `http://127.0.0.1:${port}/mp/notifications` });
  const added = await relay.store.addKiosk({ id: 'k1', posExternalId: 'OBSPOS1', generation: 'v2' });
  await provisionKiosk(new MercadoPagoClient({ baseUrl: sandbox.url, accessToken: ACCESS_TOKEN }), config, relay.store, added.kiosk, { storeExternalId: 'OBSSTORE', storeName: 'obs store' });
  const s: Stack = {
    dir,
    sandbox,
    sandboxPort: Number(new URL(sandbox.url).port),
    relay,
    token: added.token,
    posQr: (await relay.store.getKiosk('k1'))!.posQr!,
    async close() {
      await s.relay.close();
      await s.sandbox.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return s;
}

let stack: Stack | undefined;
let kiosk: TestKiosk | undefined;
afterEach(async () => {
  await kiosk?.close();
  kiosk = undefined;
  await stack?.close();
  stack = undefined;
});

async function scrape(url: string, token: string | undefined = METRICS_TOKEN) {
  const res = await fetch(`${url}/metrics`, token ? { headers: { authorization: `Bearer ${token}` } } : {});
  const text = await res.text();
  if (res.status !== 200) throw new Error(`/metrics answered ${res.status}: ${text}`);
  expect(res.headers.get('content-type')).toMatch(/^text\/plain; version=0\.0\.4/);
  return parsePrometheusText(text);
}

/** One sale through the emulator: order.ready, the customer scans and pays, order.paid reaches the kiosk. */
async function sell(s: Stack, k: TestKiosk, orderId: string): Promise<Frame> {
  const answer = await k.ready(orderId, { amount: 150000 }).catch((err: Error) => {
    throw new Error(`${err.message}: ${JSON.stringify(k.frames)}`);
  });
  expect(answer.type).toBe('order.accepted');
  const scan = await s.sandbox.scan({ qr: s.posQr });
  expect(scan.status).toBe('ready');
  if (scan.status !== 'ready') throw new Error('not ready');
  const paid = k.waitFrame((f) => f.type === 'order.paid' && f.orderId === orderId, 15_000);
  await s.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
  return paid;
}

describe('mpEndpointTemplate', () => {
  it('names every endpoint the client calls by its template, never by its ids', () => {
    expect(mpEndpointTemplate('get', '/merchant_orders/123456')).toBe('GET /merchant_orders/:id');
    expect(mpEndpointTemplate('GET', '/merchant_orders/search?external_reference=o1')).toBe('GET /merchant_orders/search');
    expect(mpEndpointTemplate('POST', '/v1/payments/99/refunds')).toBe('POST /v1/payments/:id/refunds');
    expect(mpEndpointTemplate('GET', '/v1/payments/99')).toBe('GET /v1/payments/:id');
    expect(mpEndpointTemplate('PUT', '/instore/qr/seller/collectors/1/stores/S1/pos/P1/orders')).toBe(
      'PUT /instore/qr/seller/collectors/:userId/stores/:externalStoreId/pos/:externalPosId/orders',
    );
    expect(mpEndpointTemplate('POST', '/v1/orders/ORD01ABC/cancel')).toBe('POST /v1/orders/:id/cancel');
    expect(mpEndpointTemplate('GET', '/pos')).toBe('GET /pos');
    expect(mpEndpointTemplate('GET', '/something/else/123')).toBe('GET other');
  });
});

describe('relay /metrics', () => {
  it('parses as Prometheus text; a vend and a refund move the counters; Mercado Pago calls are labelled by template', async () => {
    stack = await startStack();
    const s = stack;
    kiosk = await TestKiosk.connect(s.relay, s.token);

    const before = await scrape(s.relay.url);
    expect(sampleValue(before, 'qrkiosk_kiosks_connected', { relay_instance: 'relay-a' })).toBe(1);
    expect(sampleValue(before, 'qrkiosk_payment_to_vend_seconds_count', { result: 'vended' })).toBeUndefined();
    expect(sampleValue(before, 'qrkiosk_refunds_total', { outcome: 'refunded' })).toBe(0);
    expect(sampleValue(before, 'qrkiosk_orders', { state: 'vended' })).toBe(0);

    // a sale that vends
    await sell(s, kiosk, 'ord_obsvend1');
    kiosk.send({ type: 'vend.result', orderId: 'ord_obsvend1', result: 'dispensed', pulses: 1 });
    await waitFor('ord_obsvend1 vended', async () => (await s.relay.store.getOrder('ord_obsvend1'))?.state === 'vended');
    // a sale whose vend fails: refunded through the emulator
    await sell(s, kiosk, 'ord_obsfail2');
    kiosk.send({ type: 'vend.result', orderId: 'ord_obsfail2', result: 'vend_failed', pulses: 2 });
    await waitFor('ord_obsfail2 refunded', async () => (await s.relay.store.getOrder('ord_obsfail2'))?.state === 'refunded');
    await kiosk.waitFrame((f) => f.type === 'order.refunded' && f.orderId === 'ord_obsfail2');
    await s.relay.whenIdle();
    // the kiosk acks on receipt and the relay reads a socket in order: after this every ack is applied
    await kiosk.roundTrip();

    const after = await scrape(s.relay.url);
    expect(sampleValue(after, 'qrkiosk_payment_to_vend_seconds_count', { result: 'vended' })).toBe(1);
    expect(sampleValue(after, 'qrkiosk_payment_to_vend_seconds_count', { result: 'vend_failed' })).toBe(1);
    expect(sampleValue(after, 'qrkiosk_refunds_total', { outcome: 'refunded' })).toBe(1);
    expect(sampleValue(after, 'qrkiosk_orders', { state: 'vended' })).toBe(1);
    expect(sampleValue(after, 'qrkiosk_orders', { state: 'refunded' })).toBe(1);
    expect(sampleValue(after, 'qrkiosk_notification_lag_seconds_count')).toBeGreaterThanOrEqual(2);
    expect(sampleValue(after, 'qrkiosk_outbox_depth')).toBe(0);

    // Mercado Pago latency: by template, every series of this instance, no raw id anywhere
    const mp = after.get('qrkiosk_mercadopago_request_seconds')!;
    const endpoints = new Set(mp.samples.map((x) => x.labels.endpoint));
    expect(endpoints).toContain('GET /merchant_orders/:id');
    expect(endpoints).toContain('POST /v1/payments/:id/refunds');
    for (const e of endpoints) expect(e).not.toMatch(/\/\d+(\/|$)/);
    expect(mp.samples.every((x) => x.labels.relay_instance === 'relay-a')).toBe(true);
    expect(sampleValue(after, 'qrkiosk_mercadopago_request_seconds_count', { endpoint: 'GET /merchant_orders/:id', status: '2xx' })).toBeGreaterThanOrEqual(2);
    expect(sampleValue(after, 'qrkiosk_dependency_up', { dependency: 'mercadopago' })).toBe(1);
    expect(sampleValue(after, 'qrkiosk_dependency_up', { dependency: 'store' })).toBe(1);
  }, 60_000);

  it('asks for the token on the public listener; the admin listener serves without one', async () => {
    stack = await startStack({ adminListen: { host: '127.0.0.1', port: 0 } });
    expect((await fetch(`${stack.relay.url}/metrics`)).status).toBe(401);
    expect((await fetch(`${stack.relay.url}/metrics`, { headers: { authorization: 'Bearer wrong-token-0123456789' } })).status).toBe(401);
    const admin = stack.relay.ops.adminUrl!;
    expect(admin).toMatch(/^http:\/\/127\.0\.0\.1:\d+$/);
    const families = await scrape(admin, undefined);
    expect(sampleValue(families, 'qrkiosk_kiosks_connected')).toBe(0);
    expect((await fetch(`${admin}/readyz`)).status).toBe(200);
    expect((await fetch(`${admin}/nothing`)).status).toBe(404);
  }, 30_000);

  it('an admin port already taken stops the start with an error naming the key', async () => {
    const taken = createServer();
    await new Promise<void>((ok) => taken.listen(0, '127.0.0.1', ok));
    const port = (taken.address() as AddressInfo).port;
    try {
      await expect(startStack({ adminListen: { host: '127.0.0.1', port } })).rejects.toThrow(`observability.adminListen 127.0.0.1:${port}: the port is taken`);
    } finally {
      await new Promise((ok) => taken.close(ok));
    }
  }, 30_000);

  it('two relays in one process each report only their own', async () => {
    stack = await startStack({ instance: 'relay-one' });
    const other = await startStack({ instance: 'relay-two' });
    try {
      kiosk = await TestKiosk.connect(stack.relay, stack.token);
      const one = await scrape(stack.relay.url);
      const two = await scrape(other.relay.url);
      expect(sampleValue(one, 'qrkiosk_kiosks_connected', { relay_instance: 'relay-one' })).toBe(1);
      expect(sampleValue(two, 'qrkiosk_kiosks_connected', { relay_instance: 'relay-two' })).toBe(0);
      expect(sampleValue(two, 'qrkiosk_kiosks_connected', { relay_instance: 'relay-one' })).toBeUndefined();
    } finally {
      await other.close();
    }
  }, 30_000);

  it('without a token and without an admin listener it is not served, and says how to turn it on', async () => {
    stack = await startStack({ metricsToken: undefined });
    const res = await fetch(`${stack.relay.url}/metrics`);
    expect(res.status).toBe(404);
    expect(await res.text()).toMatch(/observability\.metricsToken/);
  }, 30_000);
});

describe('relay /healthz and /readyz', () => {
  it('healthz turns 503 when Mercado Pago stays unreachable past the limit, and recovers when it answers', async () => {
    stack = await startStack({ health: { mercadopagoDownSeconds: 1 } });
    const s = stack;
    const first = await fetch(`${s.relay.url}/healthz`);
    expect(first.status).toBe(200);
    const ok = (await first.json()) as { mercadopago: { ok: boolean; lastSuccessAgeSeconds: number | null }; store: { ok: boolean; lastSuccessAgeSeconds: number } };
    expect(ok.mercadopago.ok).toBe(true);
    expect(ok.mercadopago.lastSuccessAgeSeconds).toBeNull(); // the relay has not called Mercado Pago yet
    expect(ok.store).toMatchObject({ ok: true });

    await s.sandbox.close();
    // a notification makes the relay read the merchant order: no answer now
    const note = await fetch(`${s.relay.url}/mp/notifications?topic=merchant_order&id=4242001`, { method: 'POST' });
    expect(note.status).toBe(200);
    const down = await waitFor('healthz 503', async () => {
      const r = await fetch(`${s.relay.url}/healthz`);
      return r.status === 503 ? ((await r.json()) as { ok: boolean; problems: string[]; mercadopago: { ok: boolean; downForSeconds: number; error: string } }) : undefined;
    }, 60_000);
    expect(down.ok).toBe(false);
    expect(down.problems.join()).toMatch(/Mercado Pago failing for \d+s/);
    expect(down.mercadopago.ok).toBe(false);
    expect(down.mercadopago.downForSeconds).toBeGreaterThan(1);
    expect(down.mercadopago.error).toMatch(/GET \/merchant_orders\/4242001: (network|timeout)/);
    // still ready: every instance shares Mercado Pago, moving kiosks would not help
    expect((await fetch(`${s.relay.url}/readyz`)).status).toBe(200);
    const metrics = await scrape(s.relay.url);
    expect(sampleValue(metrics, 'qrkiosk_dependency_up', { dependency: 'mercadopago' })).toBe(0);
    expect(sampleValue(metrics, 'qrkiosk_mercadopago_errors_total', { endpoint: 'GET /merchant_orders/:id', kind: 'network' })).toBeGreaterThanOrEqual(1);

    // Mercado Pago back on the same address: the next real call succeeds (a 404 is an answer)
    s.sandbox = await startSandbox({ accessToken: ACCESS_TOKEN, collectorId: COLLECTOR_ID, currency: 'ARS', port: s.sandboxPort, logger: silent });
    await fetch(`${s.relay.url}/mp/notifications?topic=merchant_order&id=4242002`, { method: 'POST' });
    await waitFor('healthz 200 again', async () => (await fetch(`${s.relay.url}/healthz`)).status === 200, 60_000);
    const back = (await (await fetch(`${s.relay.url}/healthz`)).json()) as { mercadopago: { ok: boolean; lastSuccessAgeSeconds: number } };
    expect(back.mercadopago.ok).toBe(true);
  }, 120_000);

  it('readyz: 200 when serving, 503 while draining, 503 when the store cannot answer', async () => {
    stack = await startStack({ drainSeconds: 600, health: { storeDownSeconds: 0.001 } });
    const s = stack;
    expect(await (await fetch(`${s.relay.url}/readyz`)).json()).toEqual({ ready: true, instance: 'relay-a' });
    void s.relay.ops.drain();
    const draining = await fetch(`${s.relay.url}/readyz`);
    expect(draining.status).toBe(503);
    expect(await draining.json()).toEqual({ ready: false, instance: 'relay-a', reason: 'draining' });
    // draining is not unhealthy: the process serves until it stops
    expect((await fetch(`${s.relay.url}/healthz`)).status).toBe(200);
  }, 30_000);

  it('readyz and healthz 503 when the store fails its ping', async () => {
    stack = await startStack({ health: { storeDownSeconds: 0.001 } });
    const s = stack;
    await s.relay.store.close(); // the database handle is gone: every query throws
    // a ping result is reused for up to a second: wait for the next one
    const ready = await waitFor('readyz 503', async () => {
      const r = await fetch(`${s.relay.url}/readyz`);
      return r.status === 503 ? ((await r.json()) as { reason: string }) : undefined;
    });
    expect(ready.reason).toMatch(/^store unreachable: .*closed/);
    const health = await waitFor('healthz 503', async () => {
      const r = await fetch(`${s.relay.url}/healthz`);
      return r.status === 503 ? ((await r.json()) as { problems: string[]; store: { ok: boolean } }) : undefined;
    });
    expect(health.store.ok).toBe(false);
    expect(health.problems.join()).toMatch(/store unreachable/);
  }, 30_000);
});

describe('RelayOps readiness', () => {
  it('is not ready before start (the listener is up before the loops resume), ready after, not after close', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-obs-ops-'));
    const store = await openRelayStore(join(dir, 'relay.sqlite'));
    const config = parseRelayConfig(
      {
        publicUrl: 'https://relay.example.com',
        store: { path: join(dir, 'relay.sqlite') },
        mercadopago: { accessToken: 'TEST-x', collectorId: 1 },
        catalog: [{ sku: 'COLA', name: 'Cola', price: '1500.00', currency: 'ARS' }],
        observability: { instance: 'relay-s' },
      },
      {},
    );
    const ops = new RelayOps({ config: config.observability, logger: silent, store: () => store, kiosksConnected: () => 0 });
    try {
      expect(await ops.readyz()).toMatchObject({ status: 503, body: JSON.stringify({ ready: false, instance: 'relay-s', reason: 'starting' }) });
      await ops.start();
      expect((await ops.readyz()).status).toBe(200);
      await ops.close();
      expect(JSON.parse((await ops.readyz()).body)).toMatchObject({ ready: false, reason: 'closed' });
    } finally {
      await ops.close();
      await store.close();
      rmSync(dir, { recursive: true, force: true });
    }
  });
});

describe('qrkiosk relay: SIGTERM drains first', () => {
  it('after SIGTERM /readyz answers 503 while /healthz still answers', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-obs-cli-'));
    const configPath = join(dir, 'relay.yaml');
    writeFileSync(
      configPath,
      `listen: {host: 127.0.0.1, port: 0}
publicUrl: https://relay.example.com
store: {path: ${join(dir, 'relay.sqlite')}}
mercadopago: {accessToken: TEST-not-used, collectorId: 1}
catalog: [{sku: COLA, name: Cola, price: "1500.00", currency: ARS}]
observability: {drainSeconds: 600}
`,
    );
    const script = join(dir, 'run.mts');
    writeFileSync(script, `import { relayMain } from ${JSON.stringify(resolve('src/cli/relay-commands.ts'))};\nprocess.exitCode = await relayMain(process.argv.slice(2));\n`);
    const child = spawn(process.execPath, ['--import', 'tsx', script, '--config', configPath], {
      env: { ...process.env, QRKIOSK_LOG_LEVEL: 'warn' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    try {
      let stderr = '';
      const url = await new Promise<string>((ok, fail) => {
        child.stderr.on('data', (d: Buffer) => {
          stderr += String(d);
          const m = /relay listening on (http:\/\/\S+);/.exec(stderr);
          if (m) ok(m[1]!);
        });
        child.once('exit', (code) => fail(new Error(`relay exited early (${code}): ${stderr}`)));
      });
      expect((await fetch(`${url}/readyz`)).status).toBe(200);
      child.kill('SIGTERM');
      await waitFor('the relay saw SIGTERM', () => /SIGTERM: stopping the relay/.test(stderr));
      const r = await waitFor('readyz 503', async () => {
        const res = await fetch(`${url}/readyz`);
        return res.status === 503 ? ((await res.json()) as { reason: string }) : undefined;
      });
      expect(r.reason).toBe('draining');
      expect((await fetch(`${url}/healthz`)).status).toBe(200);
    } finally {
      const exited = once(child, 'exit');
      child.kill('SIGKILL');
      await exited;
      rmSync(dir, { recursive: true, force: true });
    }
  }, 30_000);
});
