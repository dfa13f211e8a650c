import { afterEach, describe, expect, it } from 'vitest';
import { DexMachineTwin, type DexTwinOptions } from '../src/devices/dex/twin.js';
import { openDexSerial, readAudit, type DexProtocol } from '../src/devices/dex/reader.js';
import { DexParseError } from '../src/devices/dex/eva-dts.js';
import { tempDir } from './agent-helpers.js';
import { buildEvaDts, CANS, COFFEE, SNACK } from './helpers/eva-dts.js';
import { PtyPair, skipPty } from './helpers/pty-pair.js';

// The audit reader on the real serialport binding, the simulated machine's DEX jack on the other
// end of a socat pty pair: DEX/UCS and DDCMP, blocks with bad CRCs, a transfer cut halfway.

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function machine(opts: DexTwinOptions) {
  const { dir, cleanup } = tempDir('qrk-dexpty-');
  cleanups.push(cleanup);
  const pair = new PtyPair(dir);
  cleanups.push(() => pair.kill());
  await pair.start();
  const port = await openDexSerial(pair.b, 9600);
  const twin = new DexMachineTwin(port, opts);
  cleanups.push(() => new Promise<void>((r) => port.close(() => r())), () => twin.stop());
  return { pair, twin };
}

const read = (path: string, protocol: DexProtocol, answerMs = 1000) => readAudit({ path, protocol, answerMs });

describe.skipIf(skipPty)('DEX audit read over a socat pty pair', () => {
  it('DEX/UCS: handshakes, several blocks, parsed to the machine figures', async () => {
    const { pair, twin } = await machine({ protocol: 'dex', audit: buildEvaDts(SNACK), blockSize: 64 });
    const r = await read(pair.a, 'dex');
    expect(r.protocol).toBe('dex');
    expect(r.raw.toString('latin1')).toBe(buildEvaDts(SNACK));
    expect(r.blocks).toBeGreaterThan(5);
    expect(r.retries).toBe(0);
    expect(r.audit.machine.serial).toBe('AMS0123456');
    expect(r.audit.products[1]!.paid?.countSinceReset).toBe(8);
    expect(twin.reads).toBe(1);
  });

  it('DDCMP: who-are-you, read-data, audit messages, finis', async () => {
    const { pair, twin } = await machine({ protocol: 'ddcmp', audit: buildEvaDts(COFFEE), blockSize: 100 });
    const r = await read(pair.a, 'ddcmp');
    expect(r.protocol).toBe('ddcmp');
    expect(r.raw.toString('latin1')).toBe(buildEvaDts(COFFEE));
    expect(r.audit.cashless.device2?.countSinceReset).toBe(20);
    expect(twin.reads).toBe(1);
  });

  it('a block with a bad CRC is refused and sent again, on both protocols', async () => {
    const dex = await machine({ protocol: 'dex', audit: buildEvaDts(CANS), blockSize: 50, corruptOnce: [0, 3] });
    const r1 = await read(dex.pair.a, 'dex');
    expect(r1.retries).toBe(2);
    expect(dex.twin.naks).toBe(2);
    expect(r1.audit.products).toHaveLength(10);
    const dd = await machine({ protocol: 'ddcmp', audit: buildEvaDts(CANS), blockSize: 50, corruptOnce: [2] });
    const r2 = await read(dd.pair.a, 'ddcmp');
    expect(r2.retries).toBe(1);
    expect(r2.audit.products).toHaveLength(10);
  });

  it('auto: a DDCMP machine and a DEX-only machine are both read', async () => {
    const dd = await machine({ protocol: 'ddcmp', audit: buildEvaDts(SNACK) });
    expect((await read(dd.pair.a, 'auto')).protocol).toBe('ddcmp');
    const dex = await machine({ protocol: 'dex', audit: buildEvaDts(SNACK) });
    const r = await read(dex.pair.a, 'auto', 1000);
    expect(r.protocol).toBe('dex');
    expect(r.audit.machine.serial).toBe('AMS0123456');
  });

  it('a transfer that stops halfway is an error, never half an audit', async () => {
    const { pair } = await machine({ protocol: 'dex', audit: buildEvaDts(SNACK), blockSize: 64, stopAfterBlocks: 3 });
    await expect(read(pair.a, 'dex', 300)).rejects.toThrow(/no answer from the machine .* data block 4/);
    const dd = await machine({ protocol: 'ddcmp', audit: buildEvaDts(SNACK), blockSize: 64, stopAfterBlocks: 2 });
    await expect(read(dd.pair.a, 'ddcmp', 300)).rejects.toThrow(/audit block 3/);
  });

  it('a machine that sends a whole but truncated file: the parser names the record', async () => {
    const cut = buildEvaDts(SNACK).split('\r\n').slice(0, 12).join('\r\n') + '\r\n';
    const { pair } = await machine({ protocol: 'dex', audit: cut });
    const err = await read(pair.a, 'dex').catch((e: unknown) => e);
    expect(err).toBeInstanceOf(DexParseError);
    expect((err as DexParseError).message).toMatch(/line 12 \(PA1\).*without SE/);
  });

  it('a machine that refuses the read says so', async () => {
    const { pair } = await machine({ protocol: 'dex', audit: buildEvaDts(SNACK), responseCode: '01' });
    await expect(read(pair.a, 'dex')).rejects.toThrow(/response code "01"/);
  });
});
