import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import Database from 'better-sqlite3';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { ConfigError } from '../src/runtime/config-file.js';
import { parseRelayConfigText, requireAccessToken } from '../src/relay/config.js';
import { hashToken, openRelayStore, posUrl, StoreError } from '../src/relay/store/index.js';

const YAML = `
publicUrl: https://relay.example.com/
store:
  path: /tmp/relay.sqlite
mercadopago:
  collectorId: 123
catalog:
  - sku: COLA
    name: Cola
    price: "1500.00"
    currency: ARS
`;

describe('relay config', () => {
  it('fills defaults and takes the access token from the environment', () => {
    const c = parseRelayConfigText(YAML, 'relay.yaml', { QRKIOSK_MP_ACCESS_TOKEN: 'APP_USR-env' });
    expect(c.listen).toEqual({ host: '0.0.0.0', port: 8080 });
    expect(c.publicUrl).toBe('https://relay.example.com');
    expect(c.mercadopago).toMatchObject({ baseUrl: 'https://api.mercadopago.com', accessToken: 'APP_USR-env', collectorId: 123, signatureToleranceSeconds: 600 });
    expect(c.orders).toEqual({
      maxPaymentSeconds: 120,
      contingencyAfterSeconds: 20,
      contingencyIntervalSeconds: 10,
      latePaymentWatchMinutes: 30,
      uncertainVendPolicy: 'refund',
      vendResultTimeoutSeconds: 300,
    });
    expect(c.hub).toEqual({ pingIntervalSeconds: 20 });
    expect(requireAccessToken(c)).toBe('APP_USR-env');
  });

  it('names the missing access token clearly', () => {
    const c = parseRelayConfigText(YAML, 'relay.yaml', {});
    expect(() => requireAccessToken(c)).toThrow(/mercadopago\.accessToken.*QRKIOSK_MP_ACCESS_TOKEN/);
  });

  it('names key and line of a bad price, currency or policy', () => {
    const bad = YAML.replace('"1500.00"', '"15.005"').replace('collectorId: 123', 'collectorId: 123\norders:\n  uncertainVendPolicy: maybe');
    let err: unknown;
    try {
      parseRelayConfigText(bad, 'relay.yaml', {});
    } catch (e) {
      err = e;
    }
    expect(err).toBeInstanceOf(ConfigError);
    const msg = (err as Error).message;
    expect(msg).toMatch(/relay\.yaml:8: key "orders\.uncertainVendPolicy"/);
    expect(msg).toMatch(/relay\.yaml:12: key "catalog\.0\.price": .*more decimals than ARS/);
    expect(() => parseRelayConfigText(YAML.replace('currency: ARS', 'currency: USD'), 'r.yaml', {})).toThrow(/r\.yaml:11: key "catalog\.0\.currency": unknown currency "USD"/);
    expect(() => parseRelayConfigText(YAML.replace('https://relay.example.com/', 'not a url'), 'r.yaml', {})).toThrow(/key "publicUrl"/);
  });
});

describe('relay store: kiosk provisioning', () => {
  let dir: string;
  beforeEach(() => {
    dir = mkdtempSync(join(tmpdir(), 'qrkiosk-store-'));
  });
  afterEach(() => rmSync(dir, { recursive: true, force: true }));

  it('issues a token once, stores only its hash, and gives the POS path', async () => {
    const store = await openRelayStore(join(dir, 'r.sqlite'));
    const added = await store.addKiosk({ id: 'k1', posExternalId: 'POS1' });
    expect(added.token).toMatch(/^qk_[A-Za-z0-9_-]{43}$/);
    expect(added.posKey).toMatch(/^[A-Za-z0-9_-]{32}$/);
    expect(added.posPath).toBe(`/mp/pos/POS1?key=${added.posKey}`);
    expect(added.kiosk).toMatchObject({ id: 'k1', generation: 'v2', paymentModel: 'unattended', posQr: null });
    // what is on disk, read as a thief with the file would
    const file = new Database(join(dir, 'r.sqlite'), { readonly: true });
    const row = file.prepare('SELECT * FROM kiosks').get() as Record<string, unknown>;
    file.close();
    expect(row.token_hash).toBe(hashToken(added.token));
    expect(JSON.stringify(row)).not.toContain(added.token);
    expect((await store.getKioskByTokenHash(hashToken(added.token)))!.id).toBe('k1');

    const url = posUrl('https://relay.example.com', added.kiosk);
    expect(url).toBe(`https://relay.example.com/mp/pos/POS1?key=${added.posKey}`);
    expect(url.length).toBeLessThan(300);
    expect(() => posUrl(`https://${'a'.repeat(260)}.example.com`, added.kiosk)).toThrow(/fewer than 300/);

    await store.setKioskPosQr('k1', '000201...');
    const fresh = await store.rotateKioskToken('k1');
    expect(await store.getKioskByTokenHash(hashToken(added.token))).toBeUndefined();
    expect((await store.getKioskByTokenHash(hashToken(fresh)))!.posQr).toBe('000201...');
    expect((await store.listKiosks()).map((k) => k.id)).toEqual(['k1']);
    await store.close();

    // reopening re-runs no migration and keeps the data
    const again = await openRelayStore(join(dir, 'r.sqlite'));
    expect(await again.listKiosks()).toHaveLength(1);
    await again.close();
  });

  it('refuses bad or duplicate ids', async () => {
    const store = await openRelayStore(join(dir, 'r.sqlite'));
    await store.addKiosk({ id: 'k1', posExternalId: 'POS1', generation: 'v1' });
    await expect(store.addKiosk({ id: 'k1', posExternalId: 'POS2' })).rejects.toThrow(/already exists/);
    await expect(store.addKiosk({ id: 'k2', posExternalId: 'POS1' })).rejects.toThrow(/already belongs/);
    await expect(store.addKiosk({ id: 'k3', posExternalId: 'POS-3' })).rejects.toThrow(StoreError);
    await expect(store.addKiosk({ id: 'k4', posExternalId: 'P'.repeat(40) })).rejects.toThrow(/fewer than 40/);
    await expect(store.setKioskPosQr('nope', 'x')).rejects.toThrow(/no kiosk/);
    await store.close();
  });
});
