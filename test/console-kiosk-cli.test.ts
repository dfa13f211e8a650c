import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { commandKeyPath } from '../src/relay/command-key.js';
import type { RelayConfig } from '../src/relay/config.js';
import type { CommandRecord } from '../src/relay/fleet-recorder.js';
import { KioskSystem, PRICES } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// `qrkiosk relay kiosk service|stock|test-vend|price` from a separate process (the real CLI, as an
// operator runs it on SSH): the command is signed and recorded in the relay's store by the CLI,
// the running relay picks it up on its tick and delivers it, and the connected kiosk applies it.

const BIN = resolve(import.meta.dirname, '..', 'bin', 'qrkiosk.js');
const KIOSK = 'kiosk-e2e';
let sys: KioskSystem | undefined;

afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

/** The relay's YAML for the CLI: the same store and command key as the running relay. */
function relayYaml(s: KioskSystem): string {
  const cfg = (s as unknown as { relayConfig: RelayConfig }).relayConfig;
  const file = join(s.dir, 'relay-cli.yaml');
  const doc = {
    publicUrl: cfg.publicUrl,
    store: cfg.store,
    commands: { keyFile: commandKeyPath(cfg), ttlSeconds: 600 },
    mercadopago: { collectorId: cfg.mercadopago.collectorId, accessToken: 'APP_USR-cli' },
    catalog: cfg.catalog,
  };
  writeFileSync(file, JSON.stringify(doc, null, 2));
  return file;
}

function cli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, 'relay', ...args]);
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('close', (code) => done({ code, out, err }));
  });
}

function commandIdOf(out: string): string {
  const m = /command (cmd_\S+) to kiosk/.exec(out);
  if (!m) throw new Error(`no command id in ${out}`);
  return m[1]!;
}

function applied(id: string): Promise<CommandRecord> {
  return waitFor(`command ${id} applied`, async () => {
    const c = await sys!.relay.console.recorder.getCommand(id);
    return c?.state === 'applied' ? c : undefined;
  });
}

describe('kiosk commands from the CLI', { timeout: 120_000 }, () => {
  it('service out/in, a test vend and a price change issued by `qrkiosk relay kiosk …` reach the connected kiosk through the running relay', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const config = relayYaml(sys);

    const noReason = await cli('kiosk', 'service', KIOSK, 'out', '--config', config);
    expect(noReason.code).toBe(2);
    expect(noReason.err).toMatch(/--reason TEXT is required/);
    const unknown = await cli('kiosk', 'test-vend', 'nope', '1', '--config', config);
    expect(unknown.code).toBe(2);
    expect(unknown.err).toMatch(/no kiosk "nope"/);

    const off = await cli('kiosk', 'service', KIOSK, 'out', '--reason', 'cleaning', '--by', 'ana', '--config', config);
    expect(off.code, off.err).toBe(0);
    const offCmd = await applied(commandIdOf(off.out));
    expect(offCmd.history.map((h) => h.to)).toEqual(['issued', 'delivered', 'applied']);
    await waitFor('the out-of-service screen', async () => ((await sys!.status()).screen === 'out_of_service' ? true : undefined));
    expect(await sys.select(1)).toMatchObject({ ok: false, reason: 'out_of_service' });

    const vend = await cli('kiosk', 'test-vend', KIOSK, '2', '--config', config);
    expect(vend.code, vend.err).toBe(0);
    expect((await applied(commandIdOf(vend.out))).result).toMatchObject({ slot: 2, result: 'dispensed' });

    const on = await cli('kiosk', 'service', KIOSK, 'in', '--reason', 'clean', '--config', config);
    await applied(commandIdOf(on.out));
    expect(await sys.select(1)).toMatchObject({ ok: true });

    const badPrice = await cli('kiosk', 'price', KIOSK, 'COLA', '17.505', '--config', config);
    expect(badPrice.code).toBe(2);
    expect(badPrice.err).toMatch(/17\.505/);
    const price = await cli('kiosk', 'price', KIOSK, 'COLA', '1750', '--config', config);
    expect(price.code, price.err).toBe(0);
    expect((await applied(commandIdOf(price.out))).result).toMatchObject({ sku: 'COLA', price: 175_000, before: PRICES.COLA });
    expect((await sys.status()).stock.find((x) => x.slot === 1)?.price).toBe(175_000);

    const listed = await cli('kiosk', 'commands', KIOSK, '--config', config, '--json');
    expect((JSON.parse(listed.out) as CommandRecord[]).map((c) => c.kind)).toEqual(['price.set', 'service', 'test.vend', 'service']);
  });
});

describe('kiosk tokens from the CLI', { timeout: 120_000 }, () => {
  it('`qrkiosk relay kiosk revoke` disconnects the connected kiosk at once and its old token is refused after', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const hub = sys.relay.hub;
    await waitFor('the kiosk online', async () => (hub.isOnline(KIOSK) ? true : undefined));
    const config = relayYaml(sys);
    const refusedBefore = sys.relayLogMatching(/unknown token/).length;
    const revoked = await cli('kiosk', 'revoke', KIOSK, '--config', config);
    expect(revoked.code, revoked.err).toBe(0);
    expect(revoked.out).not.toMatch(/qk_/); // no working token is shown
    await waitFor('the kiosk disconnected', async () => (hub.isOnline(KIOSK) ? undefined : true));
    expect(sys.relayLogMatching(/token was rotated or revoked: disconnected/)).toHaveLength(1);
    // the agent tries again with its old token and is refused
    await waitFor('the old token refused', async () => (sys!.relayLogMatching(/unknown token/).length > refusedBefore ? true : undefined));
    expect(hub.isOnline(KIOSK)).toBe(false);
  });
});
