// The POS url's answer logic alone (PosPoll.answer on a warm entry, kiosk connected): CPU time per
// poll over 200,000 calls, 5 rounds, no HTTP. What the relay adds to a bare node:http answer, apart
// from the process itself. `npx tsx bench/poll-answer.ts`; "store reads" counts cache misses.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { parseRelayConfig } from '../src/relay/config.js';
import { startRelay } from '../src/relay/server.js';
import { openRelayStore } from '../src/relay/store/index.js';
import { connectKiosk } from './relay-http.js';
const dir = mkdtempSync(join(tmpdir(), "qrk-bench-poll-answer-"));
const path = join(dir, 'relay.sqlite');
const store = await openRelayStore(path);
const k = await store.addKiosk({ id: 'k0', posExternalId: 'POS0', generation: 'v2' });
await store.close();
const config = parseRelayConfig({ listen: { host: '127.0.0.1', port: 0 }, publicUrl: 'http://127.0.0.1:1', store: { path }, mercadopago: { baseUrl: 'http://127.0.0.1:9', accessToken: 'TEST-x', collectorId: 1 }, catalog: [{ sku: 'COLA', name: 'Cola', price: '1500.00', currency: 'ARS' }] });
const relay = await startRelay(config, { logger: pino({ level: 'silent' }), mp: {} as never });
const ws = await connectKiosk(relay.wsUrl, 'k0', k.token);
await relay.posPoll.answer('POS0', k.posKey, '127.0.0.1');
for (let round = 0; round < 5; round++) {
  const n = 200_000;
  const c0 = process.cpuUsage();
  let misses = 0;
  for (let i = 0; i < n; i++) {
    const a = relay.posPoll.answer('POS0', k.posKey, '127.0.0.1');
    if (a instanceof Promise) { misses++; await a; }
  }
  const c = process.cpuUsage(c0);
  console.log('answer() per poll', ((c.user + c.system) / n).toFixed(2), 'us', 'store reads', misses);
}
ws.close();
await relay.close();
rmSync(dir, { recursive: true, force: true });
