import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MdbCashless, MDB_DEFAULTS, type MdbOptions } from '../src/devices/mdb/cashless.js';
import { checkMachinePrice } from '../src/devices/mdb/price.js';
import { parseBoardLine } from '../src/devices/mdb/qibixx.js';
import { QibixxTwin } from '../src/devices/mdb/twin.js';
import { captureLogger, nextEvent } from './agent-helpers.js';
import { MockWire, resetMockPorts } from './helpers/mock-wire.js';

// The MDB cashless-slave driver against a simulated Qibixx board + vending machine on a
// binding-mock port.

const cleanups: Array<() => unknown> = [];
beforeEach(() => resetMockPorts());
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

async function setup(over: Partial<MdbOptions> = {}) {
  const wire = new MockWire('/dev/ttyACM0');
  const cap = captureLogger();
  const mdb = new MdbCashless({ ...MDB_DEFAULTS, path: wire.path, openPort: wire.openPort, reconnect: { baseMs: 5, capMs: 20 }, logger: cap.logger, ...over });
  const twin = new QibixxTwin(wire);
  cleanups.push(() => mdb.close());
  let n = 0;
  const orders: string[] = [];
  const cancels: number[] = [];
  // accept every selection, like a session with the price already checked
  mdb.buttons.onPress(() => {
    const id = `ord_t${++n}`;
    orders.push(id);
    return { ok: true, orderId: id };
  });
  mdb.buttons.onCancel(() => cancels.push(Date.now()));
  const enabled = nextEvent<{ kind: string; state?: string }>(mdb as never, 'board', (m) => m.kind === 'status' && m.state === 'ENABLED');
  mdb.start();
  await enabled;
  return { wire, mdb, twin, cap, orders, cancels };
}

/** the driver took a board line in */
function taken(mdb: MdbCashless, pred: (m: { kind: string; state?: string; item?: number }) => boolean) {
  return nextEvent<{ kind: string; state?: string; item?: number }>(mdb as never, 'board', pred);
}

describe('Qibixx board lines', () => {
  it('parses the cashless-slave reports and refuses garbled or truncated ones', () => {
    expect(parseBoardLine('c,STATUS,VEND,1.00,5')).toEqual({ kind: 'vend_request', price: '1.00', item: 5 });
    expect(parseBoardLine('c,STATUS,VEND,99.20,18\r')).toEqual({ kind: 'vend_request', price: '99.20', item: 18 });
    expect(parseBoardLine('c,VEND,SUCCESS')).toEqual({ kind: 'vend_success' });
    expect(parseBoardLine('c,ERR,VEND 3')).toEqual({ kind: 'vend_failure', code: '3' });
    expect(parseBoardLine('c,STATUS,IDLE,5.00')).toEqual({ kind: 'status', state: 'IDLE', funds: '5.00' });
    expect(parseBoardLine('c,ERR,"cashless is off"')).toEqual({ kind: 'error', text: '"cashless is off"' });
    expect(parseBoardLine('v,4.0.1.5,MDB-USB')).toMatchObject({ kind: 'other' });
    for (const bad of ['c,STATUS,VEND,1.00', 'c,STATUS,VEND,1.0a,5', 'c,STATUS,VE', 'c,ERR,VEND', 'c,VEND,SUCC', 'c,STATUS,VEND,1.00,5\u00ff', 'garbage', 'c,STATUS,VEND,1.00,99999']) {
      expect(parseBoardLine(bad).kind, bad).toBe('garbled');
    }
  });
});

describe('machine price check', () => {
  const cola = { price: 150000, currency: 'ARS' };
  it('accepts an equal price and refuses any difference unless a bound is trusted', () => {
    expect(checkMachinePrice('1500.00', undefined, cola)).toEqual({ ok: true, machine: 150000, difference: 0 });
    expect(checkMachinePrice('1500', undefined, cola)).toMatchObject({ ok: true, difference: 0 });
    expect(checkMachinePrice('1499.99', undefined, cola)).toMatchObject({ ok: false, detail: expect.stringMatching(/not trusted/) });
    expect(checkMachinePrice('1400.00', '50.00', cola)).toMatchObject({ ok: false, detail: expect.stringMatching(/more than the trusted \$ 50,00/) });
    expect(checkMachinePrice('1450.00', '50.00', cola)).toEqual({ ok: true, machine: 145000, difference: -5000 });
    expect(checkMachinePrice('1550.00', '50', cola)).toEqual({ ok: true, machine: 155000, difference: 5000 });
    expect(checkMachinePrice('15.001', '50', cola)).toMatchObject({ ok: false, detail: expect.stringMatching(/not a ARS amount/) });
    expect(checkMachinePrice('1500.00', 'lots', cola)).toMatchObject({ ok: false, detail: expect.stringMatching(/trustMachinePriceWithin/) });
  });
});

describe('MDB cashless driver over binding-mock', () => {
  it('enables the board on open, turns a selection into a press with the machine price, approves only when asked', async () => {
    const { mdb, twin, wire } = await setup({ trustMachinePriceWithin: '0.10' });
    expect(wire.fromAgent.slice(0, 2)).toEqual(['C,0', 'C,1']);
    const seen: unknown[] = [];
    mdb.buttons.onPress((slot, detail) => void seen.push({ slot, detail }));
    const req = taken(mdb, (m) => m.kind === 'vend_request');
    twin.select(4, '2.50');
    await req;
    expect(seen).toEqual([{ slot: 4, detail: { source: 'mdb', item: 4, machinePrice: '2.50', trustMachinePriceWithin: '0.10' } }]);
    // selected but not paid: nothing approved
    expect(twin.approvals).toEqual([]);
    expect(await mdb.dispenser.vend(4)).toEqual({ result: 'dispensed', pulses: 1 });
    expect(twin.approvals).toEqual(['2.50']);
    expect(twin.dispensed).toEqual([{ item: 4, price: '2.50' }]);
  });

  it('maps machine items to slots; an item no slot sells is denied', async () => {
    const { mdb, twin, orders } = await setup({ items: new Map([[11, 1], [12, 2]]) });
    const slots: number[] = [];
    mdb.buttons.onPress((s) => void slots.push(s));
    let req = taken(mdb, (m) => m.kind === 'status' && m.state === 'IDLE');
    twin.select(13, '1.00');
    await req;
    expect(twin.denials).toEqual([13]);
    expect(orders).toEqual([]);
    req = taken(mdb, (m) => m.kind === 'vend_request');
    twin.select(12, '1.00');
    await req;
    expect(slots).toEqual([2]);
    expect(await mdb.dispenser.vend(2)).toMatchObject({ result: 'dispensed' });
  });

  it('a refused selection is denied at once (C,STOP) and no approval can follow', async () => {
    const wire = new MockWire('/dev/ttyACM1');
    const mdb = new MdbCashless({ ...MDB_DEFAULTS, path: wire.path, openPort: wire.openPort });
    cleanups.push(() => mdb.close());
    const twin = new QibixxTwin(wire);
    mdb.buttons.onPress(() => ({ ok: false, reason: 'price_mismatch', message: 'machine asks more' }));
    const enabled = taken(mdb, (m) => m.state === 'ENABLED');
    mdb.start();
    await enabled;
    const idle = taken(mdb, (m) => m.state === 'IDLE');
    twin.select(1, '9.99');
    await idle;
    expect(twin.denials).toEqual([1]);
    expect(await mdb.dispenser.vend(1)).toMatchObject({ result: 'vend_failed', pulses: 0, detail: expect.stringMatching(/no open request/) });
    expect(twin.approvals).toEqual([]);
  });

  it('cancel or expiry of the order denies the machine (C,STOP); other state changes do not', async () => {
    const { mdb, twin, orders } = await setup();
    const req = taken(mdb, (m) => m.kind === 'vend_request');
    twin.select(2, '1.00');
    await req;
    mdb.orderChanged({ orderId: 'ord_other', to: 'cancelled' }); // not this request's order
    mdb.orderChanged({ orderId: orders[0]!, to: 'awaiting_payment' });
    expect(twin.denials).toEqual([]);
    const idle = taken(mdb, (m) => m.state === 'IDLE');
    mdb.buttons.orderChanged!({ orderId: orders[0]!, to: 'cancelled' });
    await idle;
    expect(twin.denials).toEqual([2]);
    expect(mdb.health().phase).toBe('idle');
  });

  it('the machine failing to dispense is vend_failed; no result in time is vend_failed and ends the session', async () => {
    const { mdb, twin } = await setup({ resultTimeoutMs: 50 });
    twin.outcome = 'fail';
    let req = taken(mdb, (m) => m.kind === 'vend_request');
    twin.select(3, '1.00');
    await req;
    expect(await mdb.dispenser.vend(3)).toEqual({ result: 'vend_failed', pulses: 1, detail: 'machine reported vend failure (c,ERR,VEND 3)' });
    twin.outcome = 'silent';
    req = taken(mdb, (m) => m.kind === 'vend_request');
    twin.select(3, '1.00');
    await req;
    const stop = nextEvent<string>(twin as never, 'command', (c) => c === 'C,STOP');
    expect(await mdb.dispenser.vend(3)).toMatchObject({ result: 'vend_failed', pulses: 1, detail: expect.stringMatching(/no vend result .* may have dispensed/) });
    await stop;
    expect(twin.dispensed).toEqual([]);
  });

  it('approves once: a second vend while one is out is refused', async () => {
    const { mdb, twin } = await setup();
    twin.outcome = 'silent';
    const req = taken(mdb, (m) => m.kind === 'vend_request');
    twin.select(1, '1.00');
    await req;
    const first = mdb.dispenser.vend(1);
    await expect(mdb.dispenser.vend(1)).rejects.toThrow(/already vending/);
    const done = taken(mdb, (m) => m.kind === 'vend_success');
    // the machine's report for the approved vend, after the second attempt was refused
    twin.say('c,VEND,SUCCESS');
    await done;
    expect(await first).toEqual({ result: 'dispensed', pulses: 1 });
    expect(twin.approvals).toEqual(['1.00']);
  });

  it('the machine withdrawing its request cancels the order without a C,STOP', async () => {
    const { mdb, twin, cancels, wire } = await setup();
    const req = taken(mdb, (m) => m.kind === 'vend_request');
    twin.select(6, '1.00');
    await req;
    const before = wire.fromAgent.length;
    const idle = taken(mdb, (m) => m.state === 'IDLE');
    twin.machineCancel();
    await idle;
    expect(cancels).toHaveLength(1);
    expect(wire.fromAgent.slice(before)).toEqual([]);
  });

  it('logs and ignores garbled and truncated lines; a line cut by an unplug is dropped', async () => {
    const { mdb, twin, wire, cap, orders } = await setup();
    const req = taken(mdb, (m) => m.kind === 'vend_request');
    wire.writeRaw('c,STATUS,VEND,1.00\n'); // truncated: no item
    wire.writeRaw('\x00\x13#garbage\n');
    wire.writeRaw('c,STATUS,VEND,1.00,7\n');
    await req;
    expect(orders).toHaveLength(1);
    expect(cap.lines.filter((l) => String(l.msg).includes('ignored a garbled line')).map((l) => l.reason)).toEqual([
      expect.stringMatching(/wants <price>,<item>/),
      expect.stringMatching(/printable ASCII/),
    ]);
    const arrived = nextEvent(mdb.link as never, 'bytes');
    wire.writeRaw('c,VEND,SUC');
    await arrived;
    await wire.unplug();
    await cap.waitFor((l) => l.reason === 'truncated by a disconnect');
    expect(twin.dispensed).toEqual([]);
  });

  it('an unplug while the machine waits for payment cancels the order, denies, and re-enables the board', async () => {
    const { mdb, twin, wire, cancels } = await setup();
    const req = taken(mdb, (m) => m.kind === 'vend_request');
    twin.select(2, '1.00');
    await req;
    await wire.unplug();
    const reenabled = taken(mdb, (m) => m.state === 'ENABLED');
    await reenabled;
    expect(cancels).toHaveLength(1);
    // after the reconnect: deny what may be left of the request, then enable from scratch
    expect(wire.fromAgent.slice(-3)).toEqual(['C,STOP', 'C,0', 'C,1']);
    expect(await mdb.dispenser.vend(2)).toMatchObject({ result: 'vend_failed', pulses: 0 });
    expect(twin.approvals).toEqual([]);
  });

  it('an unplug after approval: no reset until the result, which still counts once', async () => {
    const { mdb, twin, wire } = await setup();
    twin.outcome = 'silent';
    const req = taken(mdb, (m) => m.kind === 'vend_request');
    twin.select(2, '1.00');
    await req;
    const approved = nextEvent<string>(twin as never, 'command', (c) => c.startsWith('C,VEND,'));
    const vend = mdb.dispenser.vend(2);
    await approved;
    await wire.unplug();
    const before = wire.fromAgent.length;
    await wire.waitOpen();
    const result = taken(mdb, (m) => m.kind === 'vend_success');
    // nothing written on the reconnect: a reset now could lose the machine's result
    expect(wire.fromAgent.slice(before)).toEqual([]);
    twin.say('c,VEND,SUCCESS');
    await result;
    expect(await vend).toEqual({ result: 'dispensed', pulses: 1 });
    // only now is the board re-enabled; the approval was never repeated
    await wire.nextLine((l) => l === 'C,1', 3000, before);
    expect(wire.fromAgent.slice(before)).toEqual(['C,0', 'C,1']);
    expect(twin.approvals).toEqual(['1.00']);
  });
});
