import { spawn } from 'node:child_process';
import { resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KioskSystem } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// The technician commands of a visit, run as the real CLI against a real agent process talking to
// a real relay: service mode lets the open vend finish and sells nothing new; `resolve` settles a
// vend nobody saw end, once, at the relay too; stock corrections.

const BIN = resolve(import.meta.dirname, '..', 'bin', 'qrkiosk.js');
let sys: KioskSystem | undefined;

afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

function cli(...args: string[]): Promise<{ code: number | null; out: string; err: string }> {
  return new Promise((done) => {
    const child = spawn(process.execPath, [BIN, ...args, '--socket', sys!.socket], { env: { ...process.env, SUDO_USER: 'ana' } });
    let out = '';
    let err = '';
    child.stdout.on('data', (d: Buffer) => (out += d.toString()));
    child.stderr.on('data', (d: Buffer) => (err += d.toString()));
    child.once('close', (code) => done({ code, out, err }));
  });
}

describe('service mode', () => {
  it('blocks new selections and lets the open vend finish', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');

    const on = await cli('service', 'on');
    expect(on.err).toBe('');
    expect(on.out).toMatch(new RegExp(`service mode on \\(ana\\).*order ${orderId} still finishes`));
    expect(await sys.select(2)).toMatchObject({ ok: false, reason: 'out_of_service' });

    // the customer who was already paying gets the product
    const scan = await sys.customerScans();
    await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    await sys.waitAgentState(orderId!, 'dispensed');
    await sys.waitRelayState(orderId!, 'vended');
    expect(sys.pulses()).toHaveLength(1);

    // and the next one sees "out of service", also after a restart (the technician is still there)
    expect(await sys.select(1)).toMatchObject({ ok: false, reason: 'out_of_service' });
    await sys.stopAgent();
    await sys.startAgent();
    const st = await waitFor('the out-of-service screen', async () => {
      const s = await sys!.status();
      return s.screen === 'out_of_service' ? s : undefined;
    });
    expect(st.service).toMatchObject({ by: 'ana' });
    expect(await sys.select(1)).toMatchObject({ ok: false, reason: 'out_of_service' });

    const off = await cli('service', 'off');
    expect(off.out).toMatch(/service mode off: selling again/);
    expect(await sys.select(1)).toMatchObject({ ok: true });
  });
});

describe('qrkiosk resolve', () => {
  it('records who and when, and reaches the relay once (a re-sent frame changes nothing)', async () => {
    sys = await KioskSystem.start({ uncertainVendPolicy: 'review' });
    // the agent dies right after journaling `dispensing`: nobody knows whether the product fell
    await sys.startAgent({ QRKIOSK_CRASH_AFTER: 'dispensing' });
    const { orderId } = await sys.select(1);
    await sys.waitRelayState(orderId!, 'pending');
    const scan = await sys.customerScans();
    await sys.sandbox.pay({ checkoutId: scan.checkoutId });
    expect((await sys.agentEnded()).signal).toBe('SIGKILL');
    await sys.startAgent({});
    await sys.waitAgentState(orderId!, 'vend_unknown');
    await waitFor('the relay to keep the order for review', async () => ((await sys!.relay.store.getOrder(orderId!))?.needsReview ? true : undefined));
    expect((await sys.relay.store.getOrder(orderId!))?.state).toBe('paid');

    const r = await cli('resolve', orderId!, 'refund');
    expect(r.err).toBe('');
    expect(r.out).toMatch(new RegExp(`order ${orderId}: recorded as refund by ana at `));
    const entry = (await sys.journal()).find((o) => o.id === orderId)!;
    expect(entry).toMatchObject({ resolution: 'refund', resolvedBy: 'ana' });
    expect(entry.steps.filter((st) => /^resolved by ana: not dispensed, refund/.test(st.detail ?? ''))).toHaveLength(1);

    // the relay moves the order by its checked transition and refunds the customer
    await sys.waitRelayState(orderId!, 'refunded');
    expect(await sys.sandbox.refunds()).toHaveLength(1);
    const technicianEvents = async () => (await sys!.relay.store.orderEvents(orderId!)).filter((e) => /technician ana/.test(e.detail ?? ''));
    expect(await technicianEvents()).toHaveLength(1);

    // a second verdict is refused at the kiosk
    const again = await cli('resolve', orderId!, 'dispensed');
    expect(again.code).toBe(1);
    expect(again.err).toMatch(/already resolved as refund by ana/);

    // the agent restarts and says hello again: its outbox is empty and the relay's inbox would drop a
    // re-delivery of the frame anyway; the relay's history keeps one verdict
    await sys.stopAgent();
    await sys.startAgent({});
    expect((await sys.status()).outboxPending).toBe(0);
    expect(await technicianEvents()).toHaveLength(1);
    expect(await sys.sandbox.refunds()).toHaveLength(1);
  });
});

describe('qrkiosk stock', () => {
  it('shows, sets and refills the counts', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const set = await cli('stock', 'set', '2', '3');
    expect(set.err).toBe('');
    expect(set.out).toMatch(/^2\s+AGUA\s+3\s+10$/m);
    const shown = await cli('stock', 'show', '--json');
    expect(JSON.parse(shown.out)).toEqual({ slots: [{ slot: 1, sku: 'COLA', count: 10, full: 10 }, { slot: 2, sku: 'AGUA', count: 3, full: 10 }] });
    expect((await cli('stock', 'refill')).out).toMatch(/^2\s+AGUA\s+10\s+10$/m);
    const bad = await cli('stock', 'set', '9', '1');
    expect(bad.code).toBe(1);
    expect(bad.err).toMatch(/slot 9 is not in the config/);
  });
});
