import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { auditFrameBody } from '../src/agent/dex-auditor.js';
import { parseEvaDts } from '../src/devices/dex/eva-dts.js';
import { frame } from '../src/protocol/codec.js';
import { AgentMessage, isReliable, type DexAuditFrame } from '../src/protocol/messages.js';
import { toMinor } from '../src/relay/dex-audits.js';
import { openRelayStore } from '../src/relay/store/index.js';
import { tempDir } from './agent-helpers.js';
import { buildEvaDts, CANS, SNACK } from './helpers/eva-dts.js';

// dex.audit on the wire and in the relay store: a valid reliable frame whatever the machine's
// size, stored once however often it is re-sent, amounts converted exactly or not at all.

const cleanups: Array<() => unknown> = [];
afterEach(() => {
  for (const c of cleanups.splice(0).reverse()) c();
});

function auditFrame(text: string, auditId = 'dex_test000001'): DexAuditFrame {
  const body = auditFrameBody(parseEvaDts(text), { auditId, readAt: 1_796_000_000_000, protocol: 'dex', cashlessDevice: 2 });
  return AgentMessage.parse(frame(body)) as DexAuditFrame;
}

describe('dex.audit frame', () => {
  it('is reliable and valid for the machine shapes', () => {
    expect(isReliable('dex.audit')).toBe(true);
    const f = auditFrame(buildEvaDts(SNACK));
    expect(f).toMatchObject({ type: 'dex.audit', cashlessDevice: 2, machine: { serial: 'AMS0123456' }, currency: 'ARS', truncated: false });
    expect(f.products[0]).toEqual({ selection: '11', price: 150000, productId: 'SKU-COLA', countSinceInit: 120, valueSinceInit: 18000000, countSinceReset: 12, valueSinceReset: 1800000 });
    expect(JSON.stringify(frame({ ...f })).length).toBeLessThan(64 * 1024);
  });

  it('a machine with more selections than one frame holds is sent capped and flagged', () => {
    const big = { ...CANS, products: Array.from({ length: 400 }, (_, i) => ({ selection: `${i + 1}`, price: 1200, count: i, value: 1200 * i, countReset: 0, valueReset: 0 })) };
    const f = auditFrame(buildEvaDts(big));
    expect(f.products).toHaveLength(300);
    expect(f.truncated).toBe(true);
    expect(JSON.stringify(f).length).toBeLessThan(64 * 1024);
  });

  it('the relay stores an audit once, however often it arrives', async () => {
    const { dir, cleanup } = tempDir('qrk-dexstore-');
    cleanups.push(cleanup);
    const store = await openRelayStore(join(dir, 'relay.sqlite'));
    cleanups.push(() => store.close());
    await store.addKiosk({ id: 'k1', posExternalId: 'POS1' });
    const f = auditFrame(buildEvaDts(SNACK));
    expect(await store.insertDexAudit('k1', f, 1)).toBe(true);
    expect(await store.insertDexAudit('k1', { ...f, id: 'another-frame-id' }, 2)).toBe(false);
    expect(await store.dexAudits({ limit: 10 })).toHaveLength(1);
    expect((await store.getDexAudit(f.auditId))?.body.products).toHaveLength(3);
    expect(await store.previousDexAudit('k1', 'AMS0123456', f.readAt)).toBeUndefined();
  });

  it('machine units convert to minor units exactly, or not at all', () => {
    expect(toMinor(150000, 2, 'ARS')).toBe(150000);
    expect(toMinor(1500, 0, 'ARS')).toBe(150000);
    expect(toMinor(15000, 1, 'ARS')).toBe(150000);
    expect(toMinor(1500000, 3, 'ARS')).toBe(150000);
    expect(toMinor(1500001, 3, 'ARS')).toBeNull();
    expect(toMinor(1200, 0, 'CLP')).toBe(1200);
    expect(toMinor(12, null, 'XXX')).toBe(12); // nothing says how to convert: as the machine wrote it
    expect(toMinor(12, 2, 'XXX')).toBeNull();
  });
});
