import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { dexMain } from '../src/cli/mdb-dex-commands.js';
import { relayMain } from '../src/cli/relay-commands.js';
import { openDexSerial } from '../src/devices/dex/reader.js';
import { DexMachineTwin } from '../src/devices/dex/twin.js';
import { compareAudit } from '../src/relay/dex-audits.js';
import { buildEvaDts, SNACK, type MachineShape } from './helpers/eva-dts.js';
import { PtyPair, skipPty } from './helpers/pty-pair.js';
import { KioskSystem, PRICES } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// The machine's own audit, end to end: the agent process reads it over the DEX port (a socat pty,
// the machine's jack simulated on the other end) on `qrkiosk dex read`, sends it as dex.audit, the
// relay stores it once and shows it beside qrkiosk's own sales for the same period; CSV export.

let sys: KioskSystem | undefined;
const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  await sys?.close();
  sys = undefined;
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** The snack machine with qrkiosk as cashless device 1, its meters after `extra` more sales. */
function machineAfter(qrSales: number, otherCashless: number): MachineShape {
  const n = qrSales + otherCashless;
  return {
    ...SNACK,
    serial: 'AMS0123456',
    cashless1: [5920000 + n * PRICES.COLA, 60 + n, 592000 + n * PRICES.COLA, 6 + n],
    products: SNACK.products.map((p, i) => (i === 0 ? { ...p, price: PRICES.COLA, count: p.count + n, value: p.value + n * PRICES.COLA } : p)),
    events: [{ code: 'EGS', sinceReset: 3 + n, sinceInit: 41 + n }],
  };
}

async function sell(s: KioskSystem): Promise<void> {
  const { orderId } = await s.select(1);
  await s.waitRelayState(orderId!, 'pending');
  const scan = await s.customerScans();
  await s.sandbox.pay({ checkoutId: scan.checkoutId });
  await s.waitRelayState(orderId!, 'vended');
}

async function cli(fn: (argv: string[], io: { out(l: string): void; err(l: string): void }) => Promise<number>, argv: string[]) {
  const out: string[] = [];
  const code = await fn(argv, { out: (l) => out.push(l), err: (l) => out.push(l) });
  return { code, out: out.join('\n') };
}

describe.skipIf(skipPty)('DEX audit: agent reads, relay keeps and compares', () => {
  it('qrkiosk dex read -> dex.audit -> stored once -> shown beside qrkiosk sales -> CSV', async () => {
    sys = await KioskSystem.start();
    const pair = new PtyPair(sys.dir);
    cleanups.push(() => pair.kill());
    await pair.start();
    const port = await openDexSerial(pair.b, 9600);
    const twin = new DexMachineTwin(port, { protocol: 'ddcmp', audit: buildEvaDts(machineAfter(0, 0)), blockSize: 120 });
    cleanups.push(() => new Promise<void>((r) => port.close(() => r())), () => twin.stop());
    // the sim dispenser sells; the DEX port is the pty
    (sys.opts as { hardwareYaml?: string }).hardwareYaml = `  buttons: { driver: none }
  display: { driver: log }
  dispenser:
    driver: sim
    pulseMs: 60
    dropWindowMs: 400
    maxPulses: 2
    sim: { fault: none, dropDelayMs: 30, pulseLog: ${sys.pulseLogPath} }
  dex: { path: ${pair.a}, protocol: auto, everyMinutes: 0, answerMs: 1000 }`;
    sys.writeAgentConfig();
    await sys.startAgent();
    const socket = sys.socket;

    const first = await cli(dexMain, ['read', '--socket', socket]);
    expect(first.code, first.out).toBe(0);
    expect(first.out).toMatch(/machine AMS0123456: audit read over DDCMP .* 3 selections, 1 events; queued for the relay as dex_/);
    await waitFor('the first audit at the relay', async () => (await sys!.relay.store.dexAudits({ limit: 10 })).length === 1);

    // qrkiosk sells 2; the machine counts 3 on qrkiosk's cashless device (one vend qrkiosk never charged)
    await sell(sys);
    await sell(sys);
    twin.setAudit(buildEvaDts(machineAfter(2, 1)));
    const second = await cli(dexMain, ['read', '--socket', socket, '--json']);
    expect(second.code, second.out).toBe(0);
    const summary = JSON.parse(second.out) as { auditId: string; protocol: string };
    expect(summary.protocol).toBe('ddcmp');
    const stored = await waitFor('the second audit at the relay', () => sys!.relay.store.getDexAudit(summary.auditId));
    expect(stored).toMatchObject({ kioskId: 'kiosk-e2e', machineSerial: 'AMS0123456', body: { cashlessDevice: null, decimals: 2, currency: 'ARS' } });
    expect(await sys.relay.store.dexAudits({ limit: 10 })).toHaveLength(2);

    const cmp = await compareAudit(sys.relay.store, stored);
    expect(cmp.machine.cashlessCount).toBe(3);
    expect(cmp.machine.cashlessValue).toBe(3 * PRICES.COLA);
    expect(cmp.qrkiosk).toMatchObject({ count: 2, amount: 2 * PRICES.COLA, bySlot: [{ slot: 1, count: 2, amount: 2 * PRICES.COLA }] });
    expect(cmp.difference).toEqual({ count: 1, amount: PRICES.COLA });
    expect(cmp.machine.products[0]).toEqual({ selection: '11', count: 3 });
    expect(cmp.machine.events).toEqual([{ code: 'EGS', name: 'door open', count: 3 }]);

    // the operator's view and export, through the relay CLI
    const cfg = join(sys.dir, 'relay.yaml');
    writeFileSync(
      cfg,
      `publicUrl: http://127.0.0.1:1\nstore: { path: ${join(sys.dir, 'relay.sqlite')} }\nmercadopago: { collectorId: 1 }\ncatalog:\n  - { sku: COLA, name: Cola, price: "1500.00", currency: ARS }\n`,
    );
    const show = await cli((a, io) => relayMain(a, io), ['dex', 'show', summary.auditId, '--config', cfg]);
    expect(show.code, show.out).toBe(0);
    expect(show.out).toContain("machine, qrkiosk's cashless device: 3 vends, $ 4.500,00");
    expect(show.out).toContain('qrkiosk, dispensed:                 2 vends, $ 3.000,00');
    expect(show.out).toContain('difference: +1 vends, $ 1.500,00 (machine minus qrkiosk) <-- check');
    const list = await cli((a, io) => relayMain(a, io), ['dex', 'list', '--config', cfg, '--kiosk', 'kiosk-e2e']);
    expect(list.out.split('\n')).toHaveLength(2);
    const out = join(sys.dir, 'audits.csv');
    const exp = await cli((a, io) => relayMain(a, io), ['dex', 'export', '--config', cfg, '--out', out]);
    expect(exp.out).toBe(`2 audits written to ${out}`);
    const csv = (await import('node:fs')).readFileSync(out, 'utf8').trimEnd().split('\r\n');
    expect(csv[0]).toBe('audit_id,kiosk_id,machine_serial,read_at,record,key,name,price,count_since_init,value_since_init,count_since_reset,value_since_reset,decimals,currency');
    // per audit: paid, cash, cashless1, 3 products, 1 event
    expect(csv).toHaveLength(1 + 2 * 7);
    expect(csv.filter((l) => l.includes(',product,11,SKU-COLA,150000,'))).toHaveLength(2);
    expect((await cli((a, io) => relayMain(a, io), ['dex', 'show', 'dex_nosuchaudit', '--config', cfg])).out).toMatch(/no audit dex_nosuchaudit/);
    expect((await cli((a, io) => relayMain(a, io), ['dex', 'list', '--config', cfg, '--from', 'yesterday'])).out).toMatch(/--from "yesterday" is not a date/);
  });
});
