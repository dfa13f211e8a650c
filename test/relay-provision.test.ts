import { afterEach, describe, expect, it } from 'vitest';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { relayMain } from '../src/cli/relay-commands.js';
import { parseMercadoPagoQr } from '../src/emv/index.js';
import { openRelayStore } from '../src/relay/store/index.js';
import { startSandbox, type Sandbox } from '../src/sandbox/index.js';

// `qrkiosk relay provision` against the Mercado Pago emulator: the POS gets this relay's url,
// the kiosk gets the sticker's QR, and running it again changes nothing but a moved url.

let sandbox: Sandbox | undefined;
let dir: string | undefined;
afterEach(async () => {
  await sandbox?.close();
  if (dir) rmSync(dir, { recursive: true, force: true });
  sandbox = undefined;
  dir = undefined;
});

async function run(argv: string[]) {
  const out: string[] = [];
  const err: string[] = [];
  const code = await relayMain(argv, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out: out.join('\n'), err: err.join('\n') };
}

function writeConfig(path: string, publicUrl: string, sandboxUrl: string) {
  writeFileSync(
    path,
    `publicUrl: ${publicUrl}
store: { path: ${join(dir!, 'relay.sqlite')} }
mercadopago: { baseUrl: ${sandboxUrl}, accessToken: TEST-prov, collectorId: 555 }
catalog:
  - { sku: COLA, name: Cola, price: "1500.00", currency: ARS }
`,
  );
}

describe('qrkiosk relay provision', () => {
  it('creates store and POS with the POS url, stores the QR, and is idempotent', async () => {
    dir = mkdtempSync(join(tmpdir(), 'qrkiosk-prov-'));
    sandbox = await startSandbox({ accessToken: 'TEST-prov', collectorId: 555, logger: pino({ level: 'silent' }) });
    const cfg = join(dir, 'relay.yaml');
    writeConfig(cfg, 'https://relay.example.com', sandbox.url);

    expect((await run(['kiosk', 'add', 'k1', '--pos', 'KIOSK1', '--model', 'unattended', '--config', cfg])).code).toBe(0);
    const missingStore = await run(['provision', 'k1', '--config', cfg]);
    expect(missingStore.code).toBe(2);
    expect(missingStore.err).toMatch(/--store <storeExternalId> is required/);

    const first = await run(['provision', 'k1', '--config', cfg, '--store', 'STORE1', '--store-name', 'Shop']);
    expect(first.code).toBe(0);
    const pos = await sandbox.pointsOfSale();
    expect(pos).toHaveLength(1);
    expect(pos[0]!.url).toMatch(/^https:\/\/relay\.example\.com\/mp\/pos\/KIOSK1\?key=/);
    expect(pos[0]!.fixed_amount).toBe(true);
    const store = await openRelayStore(join(dir, 'relay.sqlite'));
    const qr = (await store.getKiosk('k1'))!.posQr!;
    await store.close();
    expect(parseMercadoPagoQr(qr).collectorId).toBe('555');

    const again = await run(['provision', 'k1', '--config', cfg]);
    expect(again.code).toBe(0);
    expect(again.out).not.toMatch(/\b(created|changed|stored)\b/);
    expect(again.out).toMatch(/POS KIOSK1 +found/);
    expect(await sandbox.pointsOfSale()).toHaveLength(1);

    writeConfig(cfg, 'https://relay2.example.com', sandbox.url);
    const moved = await run(['provision', 'k1', '--config', cfg]);
    expect(moved.out).toMatch(/POS KIOSK1 +changed +url now https:\/\/relay2\.example\.com/);
    expect((await sandbox.pointsOfSale())[0]!.url).toMatch(/^https:\/\/relay2\.example\.com\//);
  });

  it('an Orders API kiosk gets a POS without url; a second run changes nothing; a bad store id is refused before any call', async () => {
    dir = mkdtempSync(join(tmpdir(), 'qrkiosk-prov-'));
    sandbox = await startSandbox({ accessToken: 'TEST-prov', collectorId: 555, logger: pino({ level: 'silent' }) });
    const cfg = join(dir, 'relay.yaml');
    writeConfig(cfg, 'https://relay.example.com', sandbox.url);
    expect((await run(['kiosk', 'add', 'k1', '--pos', 'KIOSK1', '--model', 'orders/dynamic', '--config', cfg])).code).toBe(0);

    const badStore = await run(['provision', 'k1', '--config', cfg, '--store', 'STORE-1']);
    expect(badStore.code).toBe(2);
    expect(badStore.err).toMatch(/store external id "STORE-1" must be letters and digits only/);
    expect(await sandbox.stores()).toHaveLength(0);

    const first = await run(['provision', 'k1', '--config', cfg, '--store', 'STORE1']);
    expect(first.code).toBe(0);
    expect(first.out).toMatch(/store STORE1 +created/);
    expect(first.out).toMatch(/POS KIOSK1 +created .*no url/);
    const pos = await sandbox.pointsOfSale();
    expect(pos).toHaveLength(1);
    expect(pos[0]!.url ?? null).toBeNull();
    const store = await openRelayStore(join(dir, 'relay.sqlite'));
    expect(await store.getKiosk('k1')).toMatchObject({ storeExternalId: 'STORE1' });
    const revision = await store.kioskRevision();
    await store.close();

    const again = await run(['provision', 'k1', '--config', cfg]);
    expect(again.code).toBe(0);
    expect(again.out).not.toMatch(/\b(created|changed|stored)\b/);
    const after = await openRelayStore(join(dir, 'relay.sqlite'));
    expect(await after.kioskRevision()).toBe(revision);
    await after.close();
    expect(await sandbox.pointsOfSale()).toHaveLength(1);
    expect(await sandbox.stores()).toHaveLength(1);
  });

  it('names the missing kiosk', async () => {
    dir = mkdtempSync(join(tmpdir(), 'qrkiosk-prov-'));
    const cfg = join(dir, 'relay.yaml');
    writeConfig(cfg, 'https://relay.example.com', 'http://127.0.0.1:9');
    const r = await run(['provision', 'nope', '--config', cfg, '--store', 'S1']);
    expect(r.code).toBe(2);
    expect(r.err).toMatch(/no kiosk "nope": add it first/);
  });
});
