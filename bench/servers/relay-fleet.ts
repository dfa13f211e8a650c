// The relay in its own process holding many kiosks (bench/kiosk-connections.ts): provisions
// --kiosks kiosks in one transaction (one fsync, not one per kiosk), writes "id token" lines to
// --tokens, then starts the real relay with limits opened up for one benchmark host (every kiosk
// comes from loopback). Mercado Pago is never called: no order is placed. Prints
// {"port":N,"wsUrl":...,"fdLimit":N} when listening. SIGUSR2 runs a full GC (--expose-gc).

import { mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { MercadoPagoApi } from '../../src/mercadopago/types.js';
import { parseRelayConfig } from '../../src/relay/config.js';
import { startRelay } from '../../src/relay/server.js';
import { openRelayStore } from '../../src/relay/store/index.js';
import { freeLoopbackPort } from '../../src/runtime/net.js';

const { values } = parseArgs({
  options: { kiosks: { type: 'string', default: '1000' }, tokens: { type: 'string' }, 'ping-seconds': { type: 'string', default: '20' } },
});
if (!values.tokens) throw new Error('relay-fleet needs --tokens FILE (where the kiosk tokens are written)');
const kiosks = Number(values.kiosks);
const dir = mkdtempSync(join(tmpdir(), 'qrk-bench-fleet-'));
const path = join(dir, 'relay.sqlite');
const store = await openRelayStore(path);
const lines: string[] = [];
await store.transaction(async (tx) => {
  for (let i = 0; i < kiosks; i++) {
    const k = await tx.addKiosk({ id: `k${i}`, posExternalId: `POS${i}`, generation: 'v2' });
    lines.push(`${k.kiosk.id} ${k.token}`);
  }
});
await store.close();
writeFileSync(values.tokens, `${lines.join('\n')}\n`);

const port = await freeLoopbackPort();
const config = parseRelayConfig({
  listen: { host: '127.0.0.1', port },
  publicUrl: `http://127.0.0.1:${port}`,
  store: { path },
  mercadopago: { baseUrl: 'http://127.0.0.1:9', accessToken: 'TEST-bench', collectorId: 111222333 },
  catalog: [{ sku: 'COLA', name: 'Cola', price: '1500.00', currency: 'ARS' }],
  hub: { pingIntervalSeconds: Number(values['ping-seconds']) },
  // every simulated kiosk comes from a handful of loopback addresses
  limits: { maxConnections: 1_000_000, connectionsPerSource: 1_000_000 },
  observability: { drainSeconds: 0 },
});
const mp = {} as MercadoPagoApi; // no order is placed: any call would be a bug of the benchmark
const relay = await startRelay(config, { logger: pino({ level: 'silent' }), mp });
process.once('SIGTERM', () => {
  void relay.close().then(() => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
});
// before the ready line: the first SIGUSR2 follows it at once (its default action is to exit)
process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.());
console.log(JSON.stringify({ port, wsUrl: relay.wsUrl, fdLimit: fdLimit() }));

/** this process's soft limit of open files (each kiosk socket is one) */
export function fdLimit(): number {
  const m = /Max open files\s+(\d+)/.exec(readFileSync('/proc/self/limits', 'utf8'));
  return m ? Number(m[1]) : NaN;
}
