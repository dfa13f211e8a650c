import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { DexAuditor } from '../src/agent/dex-auditor.js';
import { Journal } from '../src/agent/journal.js';
import { FaultLog } from '../src/devices/faults.js';
import { parseEvaDts } from '../src/devices/dex/eva-dts.js';
import type { DexReadOptions, DexReadResult } from '../src/devices/dex/reader.js';
import { silentLogger } from '../src/runtime/log.js';
import { tempDir } from './agent-helpers.js';
import { buildEvaDts, SNACK } from './helpers/eva-dts.js';

// The agent's audit reads: one at a time (a second request joins the running read), a failed read
// is a fault the technician sees until a read succeeds, and a good read lands in the outbox once.

const cleanups: Array<() => unknown> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function setup(read: (o: DexReadOptions) => Promise<DexReadResult>) {
  const { dir, cleanup } = tempDir('qrk-dexaud-');
  cleanups.push(cleanup);
  const journal = new Journal(join(dir, 'agent.sqlite'));
  cleanups.push(() => journal.close());
  const faults = new FaultLog();
  let flushes = 0;
  const auditor = new DexAuditor({
    config: { path: '/dev/ttyDEX', protocol: 'auto', answerMs: 500, passCode: 0, everyMinutes: 0 },
    journal,
    flush: () => flushes++,
    logger: silentLogger(),
    faults,
    cashlessDevice: 2,
    read,
  });
  return { auditor, journal, faults, flushes: () => flushes };
}

const result = (): DexReadResult => {
  const raw = Buffer.from(buildEvaDts(SNACK), 'latin1');
  return { protocol: 'ddcmp', raw, audit: parseEvaDts(raw), blocks: 5, retries: 0, ms: 1234 };
};

describe('DexAuditor', () => {
  it('joins a read in progress, queues one dex.audit, flushes the outbox', async () => {
    let calls = 0;
    let release!: () => void;
    const gate = new Promise<void>((r) => (release = r));
    const { auditor, journal, flushes } = setup(async (o) => {
      calls++;
      expect(o).toMatchObject({ path: '/dev/ttyDEX', protocol: 'auto' });
      await gate;
      return result();
    });
    const a = auditor.read();
    const b = auditor.read();
    release();
    const [ra, rb] = await Promise.all([a, b]);
    expect(calls).toBe(1);
    expect(ra).toBe(rb);
    expect(ra).toMatchObject({ protocol: 'ddcmp', machine: 'AMS0123456', products: 3, events: 2, blocks: 5, truncated: false });
    const out = journal.outbox();
    expect(out.map((f) => f.type)).toEqual(['dex.audit']);
    expect(JSON.parse(out[0]!.payload)).toMatchObject({ auditId: ra.auditId, cashlessDevice: 2, machine: { serial: 'AMS0123456' } });
    expect(flushes()).toBe(1);
  });

  it('a failed read is a fault until a read succeeds; nothing is queued', async () => {
    let fail = true;
    const { auditor, journal, faults } = setup(async () => {
      if (fail) throw new Error('DEX/UCS first handshake: the machine did not answer ENQ 3 times');
      return result();
    });
    expect(auditor.describe()).toMatchObject({ role: 'audit', driver: 'dex', status: 'ok', detail: '/dev/ttyDEX, auto, on qrkiosk dex read only; not read yet' });
    await expect(auditor.read()).rejects.toThrow(/did not answer ENQ/);
    expect(faults.active().map((f) => [f.device, f.kind])).toEqual([['DEX port /dev/ttyDEX', 'read']]);
    expect(auditor.describe()).toMatchObject({ status: 'fault' });
    expect(auditor.describe().detail).toMatch(/FAILED: DEX\/UCS first handshake/);
    expect(journal.outbox()).toEqual([]);
    fail = false;
    await auditor.read();
    expect(faults.active()).toEqual([]);
    expect(auditor.describe()).toMatchObject({ status: 'ok' });
    expect(auditor.describe().detail).toMatch(/last read .* UTC: machine AMS0123456 over ddcmp, 3 selections \(dex_/);
    expect(journal.outbox()).toHaveLength(1);
    await auditor.close();
    await expect(auditor.read()).rejects.toThrow(/stopping/);
  });
});
