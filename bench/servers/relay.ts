// The relay in its own process for the HTTP benchmarks (poll route, notification route, memory
// per kiosk). Mercado Pago is a stub that answers instantly ("not our merchant order"), so the
// notification figure is the relay's own cost. Prints {"port":N,"posPath":...,"tokens":[...]}
// when listening. SIGTERM closes the relay and exits, so `--cpu-prof` writes its profile.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import type { MercadoPagoApi, MpMerchantOrder } from '../../src/mercadopago/types.js';
import { parseRelayConfig } from '../../src/relay/config.js';
import { startRelay } from '../../src/relay/server.js';
import { openRelayStore, posPath } from '../../src/relay/store/index.js';
import { freeLoopbackPort } from '../../src/runtime/net.js';

const { values } = parseArgs({ options: { kiosks: { type: 'string', default: '1' }, generation: { type: 'string', default: 'v2' } } });
const dir = mkdtempSync(join(tmpdir(), 'qrk-bench-relay-'));
const path = join(dir, 'relay.sqlite');
const store = await openRelayStore(path);
const tokens: string[] = [];
let first = '';
for (let i = 0; i < Number(values.kiosks); i++) {
  const k = await store.addKiosk({ id: `k${i}`, posExternalId: `POS${i}`, generation: values.generation as 'v1' | 'v2' });
  tokens.push(k.token);
  if (i === 0) first = posPath(k.kiosk.posExternalId, k.kiosk.posKey);
}
await store.close();

const notOurs = (id: number | string): MpMerchantOrder =>
  ({ id: Number(id), status: 'opened', external_reference: null, items: [], total_amount: 0, paid_amount: 0, refunded_amount: 0, payments: [] }) as MpMerchantOrder;
const mp = {
  getMerchantOrder: async (id: number | string) => notOurs(id),
  searchMerchantOrders: async () => ({ elements: [], paging: { total: 0, limit: 30, offset: 0 } }),
} as unknown as MercadoPagoApi;

const port = await freeLoopbackPort();
const config = parseRelayConfig({
  listen: { host: '127.0.0.1', port },
  publicUrl: `http://127.0.0.1:${port}`,
  store: { path },
  mercadopago: { baseUrl: 'http://127.0.0.1:9', accessToken: 'TEST-bench', collectorId: 111222333 },
  catalog: [{ sku: 'COLA', name: 'Cola', price: '1500.00', currency: 'ARS' }],
  // The load comes from one address here, where Mercado Pago's polls and notifications come from
  // many: the per-source rate limits would answer 429 and measure the limiter, not the route.
  limits: {
    pos: { perSecond: 1_000_000, burst: 1_000_000 },
    notifications: { perSecond: 1_000_000, burst: 1_000_000, storedPerSourcePerHour: 100_000_000 },
    connectionsPerSource: 100_000,
  },
});
const relay = await startRelay(config, { logger: pino({ level: 'silent' }), mp });
console.log(JSON.stringify({ port, posPath: first, wsUrl: relay.wsUrl, tokens }));

process.once('SIGTERM', () => {
  void relay.close().then(() => {
    rmSync(dir, { recursive: true, force: true });
    process.exit(0);
  });
});

// the memory figure asks for a full collection before it reads RSS (started with --expose-gc)
process.on('SIGUSR2', () => (globalThis as { gc?: () => void }).gc?.());
