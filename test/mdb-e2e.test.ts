import { readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent/agent.js';
import { controlRequest } from '../src/agent/control.js';
import { testPrinterMain } from '../src/cli/printer-commands.js';
import { testMdbPriceMain } from '../src/cli/mdb-dex-commands.js';
import { QibixxTwin } from '../src/devices/mdb/twin.js';
import { LinePort } from '../src/devices/serial/line-port.js';
import { silentLogger, type Logger } from '../src/runtime/log.js';
import { FakeRelay, agentConfig, captureLogger, nextEvent, tempDir } from './agent-helpers.js';
import { MockWire, resetMockPorts } from './helpers/mock-wire.js';
import { waitFor } from './helpers/wait.js';
import { PtyPair, skipPty } from './helpers/pty-pair.js';

// The whole kiosk with an MDB vending machine: a real agent (config -> hardware -> session ->
// journal -> relay link) against the test relay, the machine played by a simulated Qibixx board
// on a binding-mock port (and, below, on a socat pty). The customer chooses on the machine; the
// agent approves only once the relay says paid.

const cleanups: Array<() => unknown> = [];
beforeEach(() => resetMockPorts());
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function online(agent: Agent): Promise<void> {
  if (agent.status().relay.online) return;
  await nextEvent<string>(agent as never, 'link', (s) => s === 'online');
}

interface Setup {
  relay: FakeRelay;
  agent: Agent;
  twin: QibixxTwin;
  receipts: string;
  dir: string;
}

async function setup(
  opts: { mdb?: Record<string, unknown>; payment?: Record<string, unknown>; control?: boolean; logger?: Logger; twin?: (t: QibixxTwin) => void } = {},
): Promise<Setup> {
  const relay = await FakeRelay.start();
  cleanups.push(() => relay.close());
  const { dir, cleanup } = tempDir('qrk-mdbe2e-');
  cleanups.push(cleanup);
  const receipts = join(dir, 'lp0');
  writeFileSync(receipts, ''); // the stand-in for /dev/usb/lp0 exists, like a plugged printer
  const wire = new MockWire('/dev/serial/by-id/usb-Qibixx_MDB-HAT_0-if00');
  const twin = new QibixxTwin(wire);
  opts.twin?.(twin);
  const config = agentConfig(dir, relay.url, {
    ...(opts.payment ? { payment: opts.payment } : {}),
    hardware: {
      buttons: { driver: 'mdb' },
      dispenser: { driver: 'mdb' },
      mdb: { path: wire.path, ...opts.mdb },
      printer: { path: receipts, transport: 'file', header: ['Kiosco Test'] },
      display: { driver: 'none' },
    },
  });
  const enabled = nextEvent<string>(twin as never, 'command', (c) => c === 'C,1');
  const agent = await startAgent(config, {
    logger: opts.logger ?? silentLogger(),
    control: opts.control ?? false,
    timings: { resultScreenMs: 60, offlineGraceMs: 60, tickMs: 1000 },
    hardware: { serialPort: wire.openPort },
  });
  cleanups.push(() => agent.close());
  await online(agent);
  await enabled;
  return { relay, agent, twin, receipts, dir };
}

function paid(relay: FakeRelay, orderId: string, amount = 150000) {
  return relay.send({ type: 'order.paid', orderId, paymentId: 'pay_1001', amount, currency: 'ARS' });
}

describe('agent + MDB machine (binding-mock) + relay', () => {
  it('machine selection -> order at the catalog price -> paid -> approved once -> dispensed -> receipt', async () => {
    const { relay, agent, twin, receipts } = await setup();
    twin.select(1, '1500.00');
    const ready = await relay.waitType('order.ready');
    expect(ready.msg).toMatchObject({ slot: 1, sku: 'COLA', amount: 150000, currency: 'ARS' });
    const orderId = ready.msg.orderId as string;
    // nothing approved before the money
    expect(twin.approvals).toEqual([]);
    paid(relay, orderId);
    const result = await relay.waitType('vend.result', (m) => m.orderId === orderId);
    expect(result.msg).toMatchObject({ result: 'dispensed', pulses: 1 });
    expect(twin.approvals).toEqual(['1500.00']);
    expect(twin.dispensed).toEqual([{ item: 1, price: '1500.00' }]);
    // the same payment delivered again (new frame id): no second approval
    paid(relay, orderId);
    await relay.waitFrame((f) => f.msg.type === 'ack' && relay.frames.filter((x) => x.msg.type === 'ack').length >= 2, 'the second paid acked');
    expect(twin.approvals).toHaveLength(1);
    expect(agent.journal(5).find((e) => e.id === orderId)).toMatchObject({ state: 'dispensed', result: 'dispensed', paymentId: 'pay_1001' });
    await (agent as unknown as { printer: { idle(): Promise<void> } }).printer.idle();
    const printed = readFileSync(receipts);
    expect(printed.includes(Buffer.from('pay_1001'))).toBe(true);
    expect(printed.includes(Buffer.from('Cola 350ml'))).toBe(true);
    // QR store of the order reference: length = id bytes + 3
    const id = Buffer.from(orderId, 'utf8');
    expect(printed.includes(Buffer.concat([Buffer.from([0x1d, 0x28, 0x6b, id.length + 3, 0x00, 0x31, 0x50, 0x30]), id]))).toBe(true);
  });

  it('a machine price different from the catalog is denied at once; no order reaches the relay', async () => {
    const cap = captureLogger();
    const { relay, agent, twin } = await setup({ logger: cap.logger });
    const denied = nextEvent<string>(twin as never, 'command', (c) => c === 'C,STOP');
    twin.select(1, '1400.00');
    await denied;
    expect(twin.denials).toEqual([1]);
    // refused by the session's price check, with both prices in the reason
    expect(cap.lines.find((l) => l.msg === 'selection refused')).toMatchObject({
      slot: 1,
      reason: 'price_mismatch',
      detail: 'machine asks $ 1.400,00, catalog says $ 1.500,00: machine prices are not trusted (hardware.mdb.trustMachinePriceWithin)',
    });
    expect(relay.of('order.ready')).toEqual([]);
    expect(agent.status().state).toBe('idle');
  });

  it('a price within the trusted bound is sold at the catalog price and approved at the machine price', async () => {
    const { relay, twin } = await setup({ mdb: { trustMachinePriceWithin: '100.00' } });
    twin.select(1, '1400.00');
    const ready = await relay.waitType('order.ready');
    expect(ready.msg).toMatchObject({ amount: 150000 }); // the customer pays the catalog price
    paid(relay, ready.msg.orderId as string);
    await relay.waitType('vend.result', (m) => m.result === 'dispensed');
    expect(twin.approvals).toEqual(['1400.00']);
    // beyond the bound: refused
    const denied = nextEvent<string>(twin as never, 'command', (c) => c === 'C,STOP');
    twin.select(1, '1300.00');
    await denied;
    expect(relay.of('order.ready')).toHaveLength(1);
  });

  it('the machine failing to vend is vend_failed to the relay (refund path), and no receipt', async () => {
    const { relay, twin, receipts } = await setup();
    twin.outcome = 'fail';
    twin.select(1, '1500.00');
    const ready = await relay.waitType('order.ready');
    paid(relay, ready.msg.orderId as string);
    const r = await relay.waitType('vend.result');
    expect(r.msg).toMatchObject({ orderId: ready.msg.orderId, result: 'vend_failed', pulses: 1, detail: 'machine reported vend failure (c,ERR,VEND 3)' });
    expect(twin.dispensed).toEqual([]);
    expect(readFileSync(receipts).length).toBe(0);
  });

  it('payment deadline passes: the order is cancelled at the relay and the machine denied (C,STOP)', async () => {
    const { relay, twin } = await setup({ payment: { deadlineSeconds: 0.3 } });
    const denied = nextEvent<string>(twin as never, 'command', (c) => c === 'C,STOP');
    twin.select(1, '1500.00');
    const ready = await relay.waitType('order.ready');
    const cancel = await relay.waitType('order.cancel');
    expect(cancel.msg).toMatchObject({ orderId: ready.msg.orderId, reason: 'timeout' });
    await denied;
    expect(twin.denials).toEqual([1]);
    // a payment arriving now is not dispensed: the relay must refund it
    paid(relay, ready.msg.orderId as string);
    const r = await relay.waitType('vend.result');
    expect(r.msg).toMatchObject({ result: 'not_dispensed' });
    expect(twin.approvals).toEqual([]);
  });

  it('the customer cancels on the machine: the order is cancelled at the relay', async () => {
    const { relay, twin } = await setup();
    twin.select(1, '1500.00');
    const ready = await relay.waitType('order.ready');
    twin.machineCancel();
    const cancel = await relay.waitType('order.cancel');
    expect(cancel.msg).toMatchObject({ orderId: ready.msg.orderId, reason: 'customer' });
    expect(twin.denials).toEqual([]); // the machine already dropped it: nothing to deny
  });

  it('qrkiosk test printer prints a sample receipt through the control socket; hardware lists the devices', async () => {
    const { agent, receipts } = await setup({ control: true });
    const socket = agent.config.control.socket;
    const out: string[] = [];
    const code = await testPrinterMain(['--socket', socket], { out: (t) => out.push(t), err: (t) => out.push(t) });
    expect(code).toBe(0);
    expect(out.join('\n')).toMatch(/test receipt sent to device file .*lp0/);
    const printed = readFileSync(receipts);
    expect(printed.includes(Buffer.from('PRUEBA DE IMPRESORA'))).toBe(true);
    expect(printed.subarray(0, 5).toString('hex')).toBe('1b401b7413');
    const hw = (await controlRequest(socket, 'hardware')) as { devices: Array<{ role: string; driver: string; status: string }> };
    expect(hw.devices.map((d) => [d.role, d.driver, d.status])).toEqual([
      ['buttons', 'mdb', 'ok'],
      ['dispenser', 'mdb', 'ok'],
      ['printer', 'escpos', 'ok'],
    ]);
  });
});

describe('qrkiosk test mdb-price: the machine price against the catalog', () => {
  /** Runs the CLI; once the agent shows the price check waiting, the technician chooses on the machine. */
  async function probe(socket: string, choose: () => void): Promise<{ code: number; out: string }> {
    const out: string[] = [];
    const run = testMdbPriceMain(['1', '--socket', socket, '--timeout', '30'], { out: (t) => out.push(t), err: (t) => out.push(t) });
    await waitFor('the price check to wait for the machine', async () => {
      const hw = (await controlRequest(socket, 'hardware')) as { devices: Array<{ detail: string }> };
      return hw.devices.some((d) => d.detail.includes('price check of slot 1'));
    });
    choose();
    const code = await run;
    return { code, out: out.join('\n') };
  }

  const detailOf = async (socket: string) =>
    ((await controlRequest(socket, 'hardware')) as { devices: Array<{ role: string; detail: string; status: string }> }).devices.find((d) => d.role === 'dispenser')!;

  it('a machine configured with the wrong decimal places is caught at setup and by the price check, and nothing is sold', async () => {
    // the machine keeps its prices with 1 decimal place: its dearest, the cola at 1500.0, is 15000 units
    const { agent, twin, relay } = await setup({
      control: true,
      mdb: { setup: { currencyCode: '0x1032', decimalPlaces: 2 } },
      twin: (t) => {
        t.vmc = { level: 3, max: 15000, min: 500 };
      },
    });
    const socket = agent.config.control.socket;
    // at setup, before anyone buys: the machine's max price read on the bus is 10x below the catalog's
    await waitFor('the setup read to flag the machine prices', async () => (await detailOf(socket)).detail.includes('highest price is $ 150,00'));
    const hw = await detailOf(socket);
    expect(hw.status).toBe('fault');
    expect(hw.detail).toContain('slot 1: the machine said at setup its highest price is $ 150,00, below the catalog\'s $ 1.500,00: 10x');
    expect(hw.detail).toContain('reader announced level 3, currency 0x1032 (ARS), scale factor 1, 2 decimal places');
    const denied = nextEvent<string>(twin as never, 'command', (c) => c === 'C,STOP');
    const r = await probe(socket, () => twin.select(1, '150.00'));
    await denied;
    expect(r.code).toBe(1);
    expect(r.out).toContain('slot 1: the machine asks 150.00 for item 1: WRONG (decimal_places)');
    expect(r.out).toContain('10x too low');
    expect(r.out).toContain('the reader announced scale factor 1 and 2 decimal places at setup (read on the MDB bus)');
    expect(r.out).toContain('reader scale read on the MDB bus at setup: scale factor 1, 2 decimal places');
    expect(r.out).toContain('also: the machine said at setup its highest price is $ 150,00');
    expect(twin.denials).toEqual([1]);
    expect(twin.approvals).toEqual([]);
    expect(relay.of('order.ready')).toEqual([]);
    // the right price passes, and still sells nothing
    const ok = await probe(socket, () => twin.select(1, '1500.00'));
    expect(ok.code).toBe(0);
    expect(ok.out).toContain('OK, machine price $ 1.500,00 matches the catalog');
    expect(twin.approvals).toEqual([]);
    expect(relay.of('order.ready')).toEqual([]);
  });

  it('a board that announces other decimal places than the config: the price check refuses, saying what was read', async () => {
    const { agent, twin } = await setup({
      control: true,
      mdb: { setup: { currencyCode: '0x1032', decimalPlaces: 2 } },
      twin: (t) => {
        t.ignore.add('mdb-decimal-places');
        t.readerDefaults.decimalPlaces = 1;
      },
    });
    const socket = agent.config.control.socket;
    await waitFor('the setup read to flag the reader', async () => (await detailOf(socket)).detail.includes('the reader announced 1 decimal places'));
    expect((await detailOf(socket)).status).toBe('fault');
    const out: string[] = [];
    const code = await testMdbPriceMain(['1', '--socket', socket, '--timeout', '5'], { out: (t) => out.push(t), err: (t) => out.push(t) });
    expect(code).toBe(1);
    expect(out.join('\n')).toContain(
      'slot 1: setup_mismatch: not checking prices against a setup the config does not describe: at setup the reader announced 1 decimal places (hardware.mdb.setup.decimalPlaces is 2)',
    );
    expect(twin.approvals).toEqual([]);
  });
});

describe.skipIf(skipPty)('agent + MDB machine over a socat pty pair + relay', () => {
  it('sells through the real serial binding, configured only by the agent config', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const { dir, cleanup } = tempDir('qrk-mdbe2e-');
    cleanups.push(cleanup);
    const pair = new PtyPair(dir);
    cleanups.push(() => pair.kill());
    await pair.start();
    const board = new LinePort({ name: 'qibixx', path: pair.b, baudRate: 115200 });
    cleanups.push(() => board.close());
    const twin = new QibixxTwin(board);
    board.start();
    await board.whenOpen();
    const enabled = nextEvent<string>(twin as never, 'command', (c) => c === 'C,1');
    const agent = await startAgent(
      agentConfig(dir, relay.url, {
        hardware: { buttons: { driver: 'mdb' }, dispenser: { driver: 'mdb' }, mdb: { path: pair.a }, display: { driver: 'none' } },
      }),
      { logger: silentLogger(), control: false, timings: { resultScreenMs: 60, offlineGraceMs: 60, tickMs: 1000 } },
    );
    cleanups.push(() => agent.close());
    await online(agent);
    await enabled;
    twin.select(1, '1500.00');
    const ready = await relay.waitType('order.ready');
    paid(relay, ready.msg.orderId as string);
    const r = await relay.waitType('vend.result');
    expect(r.msg).toMatchObject({ result: 'dispensed' });
    expect(twin.approvals).toEqual(['1500.00']);
    expect(twin.dispensed).toHaveLength(1);
  });
});
