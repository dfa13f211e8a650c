// Time from a Mercado Pago notification reaching the relay to the (simulated) motor pulse, over
// N sales. Everything runs in this one process so a single monotonic clock times both ends:
// t0 is taken just before the notification's HTTP request is written to the relay's socket,
// t1 in the dispenser's pulse callback. In between: the relay stores the notification (in the
// WAL, not fsync'd on its own), re-reads the merchant order from the emulator over HTTP, verifies
// it, commits `paid` + outbox (fsync'd, which flushes the notification's row too), sends order.paid
// over the WebSocket and marks the notification processed (not fsync'd); the agent journals `paid`
// (deferred) and `dispensing` (fsync'd) and pulses: 2 fsyncs on the path. The 200 to the
// notification goes once its row is on disk (the `paid` commit here). Sharing one event loop makes
// the figures pessimistic.

import { mkdtempSync, rmSync } from 'node:fs';
import { Agent, request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { startAgent } from '../src/agent/agent.js';
import type { StateChange } from '../src/agent/session.js';
import { NullDisplay } from '../src/devices/display.js';
import { SimDispenser } from '../src/devices/dispenser.js';
import { startLocalStack } from '../src/cli/local-stack.js';
import { webhookSignature } from '../src/sandbox/index.js';

const TOKEN = 'TEST-bench';
const COLLECTOR = 111222333;
const SECRET = 'bench-secret';

export interface LatencyResult {
  vends: number;
  medianMs: number;
  p99Ms: number;
  minMs: number;
  maxMs: number;
}

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}


// node:http on a kept-alive socket, as the floor's GET: t0 is then the request being written, not
// the sender's own work (undici's fetch spent ~0.4 ms of the figure building and dispatching it).
const sender = new Agent({ keepAlive: true, maxSockets: 1 });

function post(url: string, body: string, headers: Record<string, string>): Promise<{ status: number; text: string }> {
  return new Promise((resolve, reject) => {
    const req = request(url, { method: 'POST', agent: sender, headers: { ...headers, 'content-length': Buffer.byteLength(body) } }, (res) => {
      let text = '';
      res.setEncoding('utf8');
      res.on('data', (c: string) => (text += c));
      res.on('end', () => resolve({ status: res.statusCode ?? 0, text }));
    });
    req.on('error', reject);
    req.end(body);
  });
}

export async function benchVendLatency(vends = 200): Promise<LatencyResult> {
  const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-bench-'));
  const silent = pino({ level: 'silent' });
  const stack = await startLocalStack({
    dir,
    accessToken: TOKEN,
    collectorId: COLLECTOR,
    webhookSecret: SECRET,
    catalog: [{ sku: 'COLA', name: 'Cola', price: '1500.00', currency: 'ARS' }],
    orders: { contingencyAfterSeconds: 3600 },
    // vends back to back exceed the default 10 Mercado Pago reads a second for notifications: the
    // pacing would be measured instead of the path (a fleet's reads are spread over time)
    // Likewise the per-source gate (10 a second, burst 60): past ~90 vends on a quiet machine a
    // notification was refused 429 and the bench waited for a pulse that could not come.
    limits: { notifications: { mpCallsPerSecond: 10_000, perSecond: 10_000, burst: 10_000 } },
    kiosk: { id: 'bench', posExternalId: 'BENCH1', storeExternalId: 'BENCHSTORE', model: 'unattended' },
    pollIntervalMs: 20,
    sandboxLogger: silent,
    relayLogger: silent,
  });
  const { sandbox, relay } = stack;
  const pos = { qr_code: stack.posQr };

  let pulseAt = 0;
  let onPulse: (() => void) | undefined;
  const dispenser = new SimDispenser({
    pulseMs: 2,
    dropWindowMs: 200,
    maxPulses: 1,
    fault: 'none',
    dropDelayMs: 1,
    slowDropMs: 100,
    onPulse: () => {
      pulseAt = performance.now();
      onPulse?.();
    },
  });
  const agent = await startAgent(
    {
      kioskId: 'bench',
      relay: { url: relay.wsUrl, token: stack.token },
      journal: { path: join(dir, 'agent.sqlite') },
      control: { socket: join(dir, 'agent.sock') },
      slots: [{ slot: 1, sku: 'COLA', stock: vends + 10 }],
      hardware: { buttons: { driver: 'none' }, display: { driver: 'none' }, dispenser: { driver: 'sim' } },
    },
    { logger: silent, dispenser, display: new NullDisplay(), timings: { resultScreenMs: 0 }, control: false },
  );
  await new Promise<void>((resolve) => {
    const check = () => (agent.status().relay.lastWelcomeAt ? resolve() : setTimeout(check, 10));
    check();
  });

  const samples: number[] = [];
  try {
    for (let i = 0; i < vends; i++) {
      while (agent.status().state !== 'idle') await new Promise((r) => setTimeout(r, 1));
      const sel = agent.select(1);
      if (!sel.ok) throw new Error(`select refused: ${sel.reason}`);
      while ((await relay.store.getOrder(sel.orderId))?.state !== 'pending') await new Promise((r) => setTimeout(r, 1));
      const scan = await sandbox.scan({ qr: pos.qr_code! });
      if (scan.status !== 'ready') throw new Error(`scan ${scan.status}`);
      await sandbox.pay({ checkoutId: scan.checkoutId, notify: false });

      const done = new Promise<void>((resolve) => {
        const on = (c: StateChange) => {
          if (c.orderId === sel.orderId && c.to === 'dispensed') {
            agent.off('state', on);
            resolve();
          }
        };
        agent.on('state', on);
      });
      const pulsed = new Promise<void>((resolve) => (onPulse = resolve));
      const dataId = String(scan.merchantOrderId);
      const requestId = `bench-${i}`;
      const ts = Math.floor(Date.now() / 1000);
      const url = `${relay.url}/mp/notifications?data.id=${dataId}&type=topic_merchant_order_wh`;
      const body = JSON.stringify({ id: i, live_mode: false, type: 'topic_merchant_order_wh', action: 'update', data: { id: dataId } });
      const t0 = performance.now();
      const res = post(url, body, {
        'content-type': 'application/json',
        'x-request-id': requestId,
        'x-signature': `ts=${ts},v1=${webhookSignature(SECRET, dataId, requestId, ts)}`,
      });
      // a refused notification never pulses: fail instead of waiting for ever
      const answered = res.then(async (r) => {
        if (r.status !== 200) throw new Error(`notification ${i} answered ${r.status}: ${r.text}`);
        return pulsed;
      });
      await Promise.race([pulsed, answered]);
      samples.push(pulseAt - t0);
      await answered;
      await done;
    }
  } finally {
    sender.destroy();
    await agent.close();
    await stack.close();
    rmSync(dir, { recursive: true, force: true });
  }
  const sorted = [...samples].sort((a, b) => a - b);
  return {
    vends,
    medianMs: percentile(sorted, 50),
    p99Ms: percentile(sorted, 99),
    minMs: sorted[0]!,
    maxMs: sorted[sorted.length - 1]!,
  };
}

// Alone: `npx tsx bench/vend-latency.ts [vends]` prints the figure beside its floor, measured in
// the same run as in run.ts (4 synced inserts + HTTP GET + WebSocket hop), and the load average.
if (import.meta.url === `file://${process.argv[1]}`) {
  const { syncedInserts, httpGetRoundTrip, wsHop } = await import('./floors.js');
  const { loadavg } = await import('node:os');
  const before = loadavg()[0]!;
  const synced = syncedInserts(100);
  const get = await httpGetRoundTrip(100);
  const hop = await wsHop(100);
  const floor = 4 * synced.each.median + get.median + hop.median;
  const r = await benchVendLatency(Number(process.argv[2] ?? 100));
  const f = (x: number) => x.toFixed(2);
  console.log(`notification -> pulse (${r.vends} vends): median ${f(r.medianMs)} ms, p99 ${f(r.p99Ms)} ms, min ${f(r.minMs)} ms`);
  console.log(`floor: 4 x synced insert ${f(synced.each.median)} + GET ${f(get.median)} + WS hop ${f(hop.median)} = ${f(floor)} ms`);
  console.log(`ratio ${f(r.medianMs / floor)}x; load average ${before.toFixed(2)} before, ${loadavg()[0]!.toFixed(2)} after`);
}
