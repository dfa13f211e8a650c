import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parseRelayConfig } from '../src/relay/config.js';
import { startRelay, type RunningRelay } from '../src/relay/server.js';
import { createTestDatabase, type TestDatabase } from './helpers/pg.js';
import { captureLogger, CATALOG, COLLECTOR_ID, FakeMp, PUBLIC_URL, TestKiosk } from './relay-helpers.js';
import { waitFor } from './helpers/wait.js';

// Two relay instances on one PostgreSQL database (behind a load balancer): a kiosk connected to
// instance A shows online in instance B's console and API too (relay/fleet-status.ts takes the
// same gate as the rest of the relay: connected here, or present at another live instance).

const cleanups: Array<() => Promise<unknown> | unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

describe('online across relay instances', { timeout: 60_000 }, () => {
  it('a kiosk on instance A is online in instance B fleet view, and offline there once it leaves A', async () => {
    const db: TestDatabase = await createTestDatabase();
    cleanups.push(() => db.drop());
    const dir = mkdtempSync(join(tmpdir(), 'qrk-two-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const config = parseRelayConfig(
      {
        listen: { host: '127.0.0.1', port: 0 },
        publicUrl: PUBLIC_URL,
        store: { url: db.url },
        commands: { keyFile: join(dir, 'command-key.pem') },
        mercadopago: { accessToken: 'TEST-token', collectorId: COLLECTOR_ID },
        catalog: CATALOG,
      },
      {},
    );
    const mp = new FakeMp();
    const start = async () => {
      const r: RunningRelay = await startRelay(config, { mp, logger: captureLogger().logger });
      cleanups.push(() => r.close());
      return r;
    };
    const a = await start();
    const b = await start();
    const { token } = await a.store.addKiosk({ id: 'k1', posExternalId: 'POS1', generation: 'v2', posQr: '00020101021143...' });
    const onB = async () => (await b.console.fleet.kiosk('k1'))?.online;
    expect(await onB()).not.toBe(true);
    const kiosk = await TestKiosk.connect(a, token);
    await waitFor('k1 online in instance B', async () => (await onB()) === true);
    expect(b.hub.isOnline('k1')).toBe(false); // not through B's own link
    await kiosk.close();
    await waitFor('k1 offline in instance B', async () => (await onB()) === false);
  });
});
