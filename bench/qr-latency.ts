// Time from a button press to the payment QR on the kiosk's screen, per payment model. The models
// that call Mercado Pago before the QR exists (attended, dynamic online/hybrid, Orders API) add a
// round trip to the emulator and a WebSocket hop back to the kiosk; unattended and offline dynamic
// show a QR the kiosk already has (or the relay composes at once). Emulator, relay and agent share
// this process and one monotonic clock: t0 just before select(), t1 at the first `screen` event
// of the pay screen carrying a QR.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { performance } from 'node:perf_hooks';
import { pino } from 'pino';
import { startAgent } from '../src/agent/agent.js';
import { startLocalStack } from '../src/cli/local-stack.js';
import { NullDisplay, type Screen } from '../src/devices/display.js';
import { modelVariants } from '../src/relay/models/modes.js';

export interface QrLatency {
  model: string;
  runs: number;
  medianMs: number;
  p99Ms: number;
}

export const BENCH_MODELS = modelVariants();

function percentile(sorted: number[], p: number): number {
  const i = Math.min(sorted.length - 1, Math.ceil((p / 100) * sorted.length) - 1);
  return sorted[Math.max(0, i)]!;
}

export async function benchQrLatency(runs = 50): Promise<QrLatency[]> {
  const out: QrLatency[] = [];
  for (const m of BENCH_MODELS) {
    const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-bench-qr-'));
    const silent = pino({ level: 'silent' });
    const stack = await startLocalStack({
      dir,
      accessToken: 'TEST-bench-qr',
      collectorId: 31337,
      catalog: [{ sku: 'COLA', name: 'Cola', price: '1500.00', currency: 'ARS' }],
      kiosk: { id: 'kb', posExternalId: 'KB1', storeExternalId: 'SB1', model: m.model, modelMode: m.mode },
      sandboxLogger: silent,
      relayLogger: silent,
    });
    const agent = await startAgent(
      {
        kioskId: 'kb',
        relay: { url: stack.relay.wsUrl, token: stack.token, backoff: { baseMs: 50, capMs: 200 } },
        journal: { path: join(dir, 'agent.sqlite') },
        // its own socket: the default /run/qrkiosk/agent.sock may belong to another agent on the machine
        control: { socket: join(dir, 'agent.sock') },
        payment: { deadlineSeconds: 60 },
        slots: [{ slot: 1, sku: 'COLA', stock: 1_000_000 }],
        hardware: { buttons: { driver: 'none' }, dispenser: { driver: 'sim' }, display: { driver: 'none' } },
      },
      { logger: silent, display: new NullDisplay(), timings: { resultScreenMs: 1 }, control: false },
    );
    try {
      while (!agent.status().relay.lastWelcomeAt) await new Promise((r) => setTimeout(r, 10));
      const times: number[] = [];
      for (let i = 0; i < runs + 3; i++) {
        const shown = new Promise<number>((resolve) => {
          const on = (s: Screen) => {
            if (s.screen === 'pay' && s.qr) {
              agent.off('screen', on);
              resolve(performance.now());
            }
          };
          agent.on('screen', on);
        });
        const t0 = performance.now();
        const sel = agent.select(1);
        if (!sel.ok) throw new Error(`select refused: ${sel.reason}`);
        const t1 = await shown;
        if (i >= 3) times.push(t1 - t0); // the first few warm up the JIT and the connections
        agent.cancel('customer');
        // the relay withdraws the order (a call for most models) before the next one is payable
        await waitIdle(stack, sel.orderId);
      }
      times.sort((a, b) => a - b);
      out.push({ model: m.label, runs, medianMs: percentile(times, 50), p99Ms: percentile(times, 99) });
    } finally {
      await agent.close();
      await stack.close();
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return out;
}

async function waitIdle(stack: Awaited<ReturnType<typeof startLocalStack>>, orderId: string): Promise<void> {
  for (;;) {
    const o = await stack.relay.store.getOrder(orderId);
    if (o && o.state !== 'pending' && o.offerState !== 'due' && o.offerState !== 'withdraw_due') return;
    await new Promise((r) => setTimeout(r, 2));
  }
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const f = (n: number) => n.toFixed(2);
  for (const r of await benchQrLatency(Number(process.env.BENCH_QR_RUNS ?? 50))) {
    console.log(`button -> QR on screen, ${r.model.padEnd(18)} median ${f(r.medianMs)} ms   p99 ${f(r.p99Ms)} ms (${r.runs} runs)`);
  }
}
