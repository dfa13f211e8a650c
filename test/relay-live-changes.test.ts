import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { pino } from 'pino';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent/agent.js';
import { startLocalStack, type LocalStack } from '../src/cli/local-stack.js';
import { NullDisplay, type Screen } from '../src/devices/display.js';
import { buildMercadoPagoQr } from '../src/emv/index.js';
import { watchConfigCatalog } from '../src/relay/config-watch.js';
import { parseRelayConfig } from '../src/relay/config.js';
import { openRelayStore } from '../src/relay/store/index.js';
import { checkProvisionInput, ProvisionError } from '../src/relay/provision.js';
import { waitFor } from './helpers/wait.js';

// Changes an operator makes while everything runs: a price in the catalog, a new QR or model for a
// kiosk (from another process, the CLI). The kiosk on the other end of the WebSocket must show
// them from the next selection on, with no restart of either side.

const silent = pino({ level: 'silent' });
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function running(): Promise<{ stack: LocalStack; agent: Agent; display: NullDisplay; dir: string }> {
  const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-live-'));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  const stack = await startLocalStack({
    dir,
    accessToken: 'TEST-live',
    collectorId: 4242,
    catalog: [{ sku: 'COLA', name: 'Cola', price: '1500.00', currency: 'ARS' }],
    kiosk: { id: 'k1', posExternalId: 'K1', storeExternalId: 'S1', model: 'unattended' },
    sandboxLogger: silent,
    relayLogger: silent,
  });
  cleanups.push(() => stack.close());
  const display = new NullDisplay();
  const agent = await startAgent(
    {
      kioskId: 'k1',
      relay: { url: stack.relay.wsUrl, token: stack.token, backoff: { baseMs: 50, capMs: 200 } },
      journal: { path: join(dir, 'agent.sqlite') },
      payment: { deadlineSeconds: 60 },
      slots: [{ slot: 1, sku: 'COLA', stock: 5 }],
      hardware: { buttons: { driver: 'none' }, dispenser: { driver: 'sim' }, display: { driver: 'none' } },
    },
    { logger: silent, display },
  );
  cleanups.push(() => agent.close());
  await waitFor('agent welcomed', () => agent.status().relay.lastWelcomeAt);
  return { stack, agent, display, dir };
}

describe('live changes reach connected kiosks', () => {
  it('a catalog price change is sent to the kiosk and prices the next order', async () => {
    const { stack, agent } = await running();
    const before = agent.status().relay.lastWelcomeAt!;
    const told = await stack.relay.setCatalog([{ sku: 'COLA', name: 'Cola', price: '1750.00', currency: 'ARS' }]);
    expect(told).toBe(1);
    await waitFor('a fresh welcome', () => (agent.status().relay.lastWelcomeAt ?? 0) > before);
    const sel = agent.select(1);
    expect(sel.ok && sel.amount).toBe(175000);
    await waitFor('relay order pending', async () => (sel.ok ? (await stack.relay.store.getOrder(sel.orderId))?.state === 'pending' : false));
    expect(sel.ok && (await stack.relay.store.getOrder(sel.orderId))?.amount).toBe(175000);
  });

  it('a new POS QR stored by another process (provision, set-qr) is shown at once', async () => {
    const { stack, agent, display } = await running();
    const newQr = buildMercadoPagoQr({ collectorId: 4242, currency: 'ARS', merchantName: 'New sticker', merchantCity: 'CABA', terminalLabel: 'K1' });
    const before = agent.status().relay.lastWelcomeAt!;
    const other = await openRelayStore(stack.relayConfig.store); // what the CLI does
    await other.setKioskPosQr('k1', newQr);
    await other.close();
    await waitFor('a fresh welcome with the new QR', () => (agent.status().relay.lastWelcomeAt ?? 0) > before);
    const shown = new Promise<Screen>((resolve) => agent.once('screen', resolve));
    expect(agent.select(1).ok).toBe(true);
    expect((await shown).qr ?? display.last()?.qr).toBe(newQr);
  });
});

describe('relay.yaml is watched for catalog changes', () => {
  it('applies a valid price change, ignores a broken file with an error naming the line', async () => {
    const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-watch-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const path = join(dir, 'relay.yaml');
    const yaml = (price: string) =>
      `publicUrl: https://relay.example.com\nstore: { path: ${join(dir, 'r.sqlite')} }\nmercadopago: { collectorId: 1 }\ncatalog:\n  - { sku: COLA, name: Cola, price: "${price}", currency: ARS }\n`;
    writeFileSync(path, yaml('1500.00'));
    const config = parseRelayConfig({
      publicUrl: 'https://relay.example.com',
      store: { path: join(dir, 'r.sqlite') },
      mercadopago: { collectorId: 1 },
      catalog: [{ sku: 'COLA', name: 'Cola', price: '1500.00', currency: 'ARS' }],
    });
    const applied: unknown[] = [];
    const errors: string[] = [];
    const logger = pino({ level: 'warn' }, { write: (l: string) => errors.push(JSON.parse(l).msg as string) });
    const watch = watchConfigCatalog(path, config, (c) => applied.push(c), logger, 20);
    cleanups.push(() => watch.close());

    // a longer price: the file's size changes, so the poll sees it even within one clock tick
    writeFileSync(path, yaml('16000.00'));
    await waitFor('the new catalog applied', () => applied.length === 1);
    expect(applied[0]).toEqual([{ sku: 'COLA', name: 'Cola', price: '16000.00', currency: 'ARS' }]);

    writeFileSync(path, yaml('16.005'));
    expect(watch.reload()).toBe(false);
    expect(applied).toHaveLength(1);
    expect(errors.some((e) => /cannot be used, keeping the catalog in force/.test(e) && /relay\.yaml:5: key "catalog\.0\.price"/.test(e))).toBe(true);
  });
});

describe('provision checks before any call', () => {
  it('refuses a POS or store id Mercado Pago would refuse', () => {
    const kiosk = { id: 'k', posExternalId: 'POS-1', storeExternalId: null, paymentModel: 'orders', modelMode: 'dynamic', posKey: 'x', generation: 'v2', posQr: null, createdAt: 0 } as const;
    expect(() => checkProvisionInput(kiosk, {})).toThrow(ProvisionError);
    expect(() => checkProvisionInput(kiosk, {})).toThrow(/letters and digits only/);
    expect(() => checkProvisionInput({ ...kiosk, posExternalId: 'POS1' }, { storeExternalId: 'my store' })).toThrow(/store external id "my store"/);
    expect(() => checkProvisionInput({ ...kiosk, posExternalId: 'POS1' }, { storeExternalId: 'STORE1' })).not.toThrow();
  });
});
