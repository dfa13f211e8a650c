import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MdbCashless, MDB_DEFAULTS, mdbSetconf, type MdbOptions } from '../src/devices/mdb/cashless.js';
import { parseSniffLine, readerMismatches, SetupExchange, unitsToMinor, type BusSetup } from '../src/devices/mdb/bus-setup.js';
import { parseBoardLine } from '../src/devices/mdb/qibixx.js';
import { diagnosePriceRange } from '../src/devices/mdb/scale.js';
import { QibixxTwin } from '../src/devices/mdb/twin.js';
import { FaultLog } from '../src/devices/faults.js';
import { captureLogger, nextEvent } from './agent-helpers.js';
import { MockWire, resetMockPorts } from './helpers/mock-wire.js';

// The machine's setup read off the MDB bus: the Qibixx sniffer's lines decoded, the reader's
// announced scale factor / decimal places checked against the config, the VMC's max/min prices
// against the catalog, and a board that announces something else than the config caught.

const cleanups: Array<() => unknown> = [];
beforeEach(() => resetMockPorts());
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ARS_SETUP = { currencyCode: '0x1032', scaleFactor: 1, decimalPlaces: 2 };

describe('sniffer lines and the setup exchange', () => {
  it('decodes VMC blocks, peripheral answers, ACKs and bus errors; refuses what is not a block', () => {
    expect(parseSniffLine('x,00,0020033420,11,0002000000')).toEqual({ from: 'vmc', error: 0, command: 0x11, data: Buffer.from('0002000000', 'hex') });
    expect(parseSniffLine('x,00,0020031200,10,')).toEqual({ from: 'vmc', error: 0, command: 0x10, data: Buffer.alloc(0) });
    expect(parseSniffLine('x,00,0020032392,ACK')).toEqual({ from: 'vmc', error: 0, command: null, data: null });
    expect(parseSniffLine('x,80,0020033536,0103175601021e08')).toMatchObject({ from: 'peripheral', command: null, data: Buffer.from('0103175601021e08', 'hex') });
    expect(parseSniffLine('x,81,0020033536,01031756')).toMatchObject({ from: 'peripheral', error: 1 });
    for (const bad of ['x,ACK', 'x,00,12a,11,00', 'x,80,0001,0g', 'x,00,0001,11,000', 'x,80,0001,11,00']) expect(parseSniffLine(bad), bad).toBeNull();
    // as board lines: a block, the answer to X,1, and a cut one
    expect(parseBoardLine('x,00,0020033420,11,0002000000').kind).toBe('sniff');
    expect(parseBoardLine('x,ACK').kind).toBe('other');
    expect(parseBoardLine('x,00,0020033420,11,00020').kind).toBe('garbled');
  });

  it('collects the reader config data of its own address only, answered directly or after a poll', () => {
    const ex = new SetupExchange(0x60);
    const feed = (l: string) => ex.take(parseSniffLine(l)!);
    feed('x,00,0000000001,61,0003000000');
    feed('x,80,0000000002,ACK');
    // the first cashless device answers its own SETUP: not ours
    feed('x,00,0000000003,11,0003000000');
    feed('x,80,0000000004,0103103201001e00');
    expect(ex.setup.reader).toBeNull();
    feed('x,00,0000000005,62,');
    expect(feed('x,80,0000000006,0103103201021e08')).toBe(false); // no max/min yet
    expect(ex.setup.reader).toEqual({ featureLevel: 3, currencyCode: '0x1032', scaleFactor: 1, decimalPlaces: 2, maxResponseSeconds: 30, options: 8 });
    expect(ex.setup.vmc).toEqual({ featureLevel: 3, displayColumns: 0, displayRows: 0, displayInfo: 0 });
    // the 32-bit form (level 3): max 2000.00, min 1.00, currency again
    expect(feed('x,00,0000000007,61,0100030d4000000064' + '1032')).toBe(true);
    expect(ex.setup.prices).toEqual({ max: 200000, min: 100, currencyCode: '0x1032' });
  });

  it('scaled units to money, and what differs from the config', () => {
    expect(unitsToMinor(1500, { scaleFactor: 1, decimalPlaces: 0 }, 'ARS')).toBe(150000);
    expect(unitsToMinor(150, { scaleFactor: 10, decimalPlaces: 0 }, 'CLP')).toBe(1500);
    expect(unitsToMinor(15000, { scaleFactor: 1, decimalPlaces: 1 }, 'ARS')).toBe(150000);
    const reader = { featureLevel: 3, currencyCode: '0x1756', scaleFactor: 1, decimalPlaces: 2, maxResponseSeconds: 30, options: 8 };
    expect(readerMismatches(reader, ARS_SETUP)).toEqual(['currency 0x1756 (hardware.mdb.setup.currencyCode is 0x1032)']);
    expect(readerMismatches({ ...reader, currencyCode: '0x1032', decimalPlaces: 1 }, ARS_SETUP)).toEqual(['1 decimal places (hardware.mdb.setup.decimalPlaces is 2)']);
    expect(readerMismatches({ ...reader, currencyCode: '0x1032' }, ARS_SETUP)).toEqual([]);
  });

  it('a machine whose decimal point disagrees with the reader shows in its max/min prices; a 16-bit bus cannot carry every price', () => {
    const reader = { scaleFactor: 1, decimalPlaces: 2 };
    const cola = { price: 150000, currency: 'ARS' }; // $ 1.500,00
    // the machine's dearest selection is this one, 1500.0 at its 1 decimal place: 15000 units, read as 150.00
    const tenfold = diagnosePriceRange(cola, reader, { max: 15000, min: 1000 }, false);
    expect(tenfold).toHaveLength(1);
    expect(tenfold[0]).toContain('highest price is $ 150,00, below the catalog\'s $ 1.500,00: 10x');
    expect(tenfold[0]).toContain('differ by 1');
    // the same machine with the same decimal point as the reader: fits
    expect(diagnosePriceRange(cola, reader, { max: 200000, min: 10000 }, false)).toEqual([]);
    expect(diagnosePriceRange(cola, reader, { max: null, min: null }, false)).toEqual([]);
    // the lowest price above the catalog's
    expect(diagnosePriceRange({ price: 5000, currency: 'ARS' }, { scaleFactor: 1, decimalPlaces: 0 }, { max: null, min: 500 }, false)[0]).toContain('lowest price is $ 500,00, above the catalog\'s $ 50,00: 10x');
    // 1500.00 at 2 decimal places is 150000 units: more than a level 1/2 bus carries
    expect(diagnosePriceRange(cola, reader, null, true)[0]).toContain('150000 units at scale factor 1 and 2 decimal places, more than the 65535');
    expect(diagnosePriceRange(cola, { scaleFactor: 1, decimalPlaces: 0 }, null, true)).toEqual([]);
    // 1500.50 cannot be said in whole pesos
    expect(diagnosePriceRange({ price: 150050, currency: 'ARS' }, { scaleFactor: 1, decimalPlaces: 0 }, null, false)[0]).toContain('cannot be written in the reader\'s units');
  });
});

async function driver(over: Partial<MdbOptions>, twinSetup?: (t: QibixxTwin) => void) {
  const wire = new MockWire('/dev/ttyACM0');
  const cap = captureLogger();
  const faults = new FaultLog();
  const twin = new QibixxTwin(wire);
  twinSetup?.(twin);
  const mdb = new MdbCashless({ ...MDB_DEFAULTS, path: wire.path, openPort: wire.openPort, reconnect: { baseMs: 5, capMs: 20 }, logger: cap.logger, faults, readSetup: true, ...over });
  cleanups.push(() => mdb.close());
  mdb.buttons.onPress(() => ({ ok: true, orderId: 'ord_x' }));
  return { wire, twin, mdb, cap, faults };
}

const setupRead = (mdb: MdbCashless) => nextEvent<BusSetup>(mdb as never, 'setup_read');
/** the board has received `n` times this command */
function received(twin: QibixxTwin, command: string, n: number): Promise<void> {
  const count = () => twin.commands.filter((c) => c === command).length;
  if (count() >= n) return Promise.resolve();
  return nextEvent<string>(twin as never, 'command', () => count() >= n).then(() => undefined);
}
/** the setup read, and the sniffer's X,0 (the n-th) at the board */
async function readAndOff(mdb: MdbCashless, twin: QibixxTwin, n = 1, pred: (s: BusSetup) => boolean = () => true): Promise<BusSetup> {
  const s = await nextEvent<BusSetup>(mdb as never, 'setup_read', pred);
  await received(twin, 'X,0', n);
  return s;
}

describe('the MDB driver reads the setup on enable', () => {
  const ars = { setconf: mdbSetconf({ address: 1, ...ARS_SETUP }), expectReader: ARS_SETUP, scale: { scaleFactor: 1, decimalPlaces: 2, source: 'config' as const } };

  it('sniffer on before C,1 and off once read; the reader announces what C,SETCONF set; the catalog fits the machine', async () => {
    const { mdb, twin, wire, faults } = await driver(ars, (t) => {
      t.vmc = { level: 3, max: 250000, min: 5000 }; // 2500.00 .. 50.00
    });
    const read = readAndOff(mdb, twin);
    mdb.start();
    const s = await read;
    expect(wire.fromAgent).toEqual([
      'C,0',
      'C,SETCONF,mdb-addr=0x10',
      'C,SETCONF,mdb-currency-code=0x1032',
      'C,SETCONF,mdb-scale-factor=1',
      'C,SETCONF,mdb-decimal-places=2',
      'X,1',
      'C,1',
      'X,0',
    ]);
    expect(s.reader).toMatchObject({ currencyCode: '0x1032', scaleFactor: 1, decimalPlaces: 2 });
    expect(s.prices).toEqual({ max: 250000, min: 5000, currencyCode: '0x1032' }); // beyond 16 bits: the 32-bit form
    expect(mdb.checkCatalog([{ slot: 1, price: 150000, currency: 'ARS' }])).toEqual([]);
    expect(mdb.health()).toMatchObject({ setupMismatch: [], priceRange: [] });
    expect(faults.active()).toEqual([]);
    expect(twin.violations).toEqual([]);
  });

  it('a machine set for one decimal place fewer than the reader: caught at setup from its max price, before anyone buys', async () => {
    const { mdb, twin, faults } = await driver(ars, (t) => {
      t.vmc = { level: 3, max: 15000, min: 500 }; // its 1500.0 (this product, its dearest) and 50.0 at 1 decimal place
    });
    mdb.checkCatalog([{ slot: 1, price: 150000, currency: 'ARS' }]);
    const read = setupRead(mdb);
    mdb.start();
    await read;
    const h = mdb.health();
    expect(h.setupMismatch).toEqual([]); // the reader is right: it is the machine
    expect(h.priceRange).toHaveLength(1);
    expect(h.priceRange[0]).toMatch(/^slot 1: the machine said at setup its highest price is \$ 150,00, below the catalog's \$ 1\.500,00: 10x, .*differ by 1/);
    expect(faults.active().map((f) => f.kind)).toEqual(['price_range']);
    expect(mdb.dispenser.describe()).toMatchObject({ status: 'fault' });
    expect(mdb.dispenser.describe().detail).toContain('setup read on the bus: VMC level 3; reader announced level 3, currency 0x1032 (ARS)');
    // the price check of that slot names the decimal places, using what was read on the bus
    const probe = mdb.probePrice(1, { price: 150000, currency: 'ARS' }, 30_000);
    twin.select(1, '150.00');
    const r = await probe;
    await received(twin, 'C,STOP', 1);
    expect(twin.denials).toEqual([1]); // nothing sold
    expect(twin.approvals).toEqual([]);
    expect(r).toMatchObject({ ok: true, verdict: { ok: false, kind: 'decimal_places' }, setup: { source: 'bus', scaleFactor: 1, decimalPlaces: 2, vmcMax: 15000, vmcMin: 500 } });
    if (!r.ok) throw new Error('unreachable');
    expect(r.verdict.message).toContain('the reader announced scale factor 1 and 2 decimal places at setup (read on the MDB bus)');
    expect(r.setup.problems[0]).toContain('10x');
  });

  it('a board that does not apply the decimal places: the setup is sent again once, then it is a fault and the price check refuses', async () => {
    const { mdb, twin, wire, faults } = await driver(ars, (t) => {
      t.ignore.add('mdb-decimal-places');
      t.readerDefaults.decimalPlaces = 1;
    });
    const first = setupRead(mdb);
    const second = nextEvent<BusSetup>(mdb as never, 'setup_read', () => wire.fromAgent.filter((l) => l === 'C,1').length === 2);
    mdb.start();
    expect((await first).reader?.decimalPlaces).toBe(1);
    await second;
    // once: C,0 ... C,1 twice, not more
    expect(wire.fromAgent.filter((l) => l === 'C,1')).toHaveLength(2);
    expect(mdb.health().setupMismatch).toEqual(['1 decimal places (hardware.mdb.setup.decimalPlaces is 2)']);
    const f = faults.active();
    expect(f.map((x) => x.kind)).toEqual(['setup_read']);
    expect(f[0]!.message).toContain('the reader announced 1 decimal places (hardware.mdb.setup.decimalPlaces is 2) to the machine at setup');
    // the technician's price check refuses to judge prices against a setup the config does not describe
    const r = await mdb.probePrice(1, { price: 150000, currency: 'ARS' }, 30_000);
    expect(r).toMatchObject({ ok: false, reason: 'setup_mismatch' });
    expect(r.ok ? '' : r.message).toContain('at setup the reader announced 1 decimal places (hardware.mdb.setup.decimalPlaces is 2)');
    expect(twin.violations).toEqual([]);
  });

  it('a status the board reports for C,0 during the setup is not taken for the machine resetting the reader', async () => {
    const { mdb, twin, wire } = await driver(ars, (t) => {
      t.reportsDisable = true;
    });
    const read = readAndOff(mdb, twin);
    mdb.start();
    await read;
    expect(wire.fromAgent.filter((l) => l === 'X,1')).toHaveLength(1);
    expect(wire.fromAgent.slice(-3)).toEqual(['X,1', 'C,1', 'X,0']);
  });

  it('a board without a sniffer: the read ends once the board is enabled, and the price check says it used the config', async () => {
    const { mdb, twin, cap, faults } = await driver({ ...ars, setupGraceMs: 50 }, (t) => {
      t.hasSniffer = false;
    });
    const read = setupRead(mdb);
    mdb.start();
    const s = await read;
    expect(s).toEqual({ vmc: null, reader: null, prices: null, busErrors: 0 });
    expect(cap.lines.some((l) => String(l.msg).includes("the reader's setup was not seen on the bus (the board is enabled): trusting hardware.mdb.setup"))).toBe(true);
    expect(faults.active()).toEqual([]);
    const probe = mdb.probePrice(1, { price: 150000, currency: 'ARS' }, 30_000);
    twin.select(1, '1500.00');
    expect(await probe).toMatchObject({ ok: true, verdict: { ok: true }, setup: { source: 'config', scaleFactor: 1, decimalPlaces: 2, vmcMax: null } });
  });

  it('the board forgets its setup and the machine resets the reader: the new setup is read, the setup sent again, and it agrees again', async () => {
    const { mdb, twin, wire, faults } = await driver(ars);
    const first = readAndOff(mdb, twin);
    mdb.start();
    await first;
    const before = wire.fromAgent.length;
    const wrong = setupRead(mdb);
    const right = readAndOff(mdb, twin, 3, (s) => s.reader?.currencyCode === '0x1032');
    twin.forgetSetup();
    twin.vmcReset();
    expect((await wrong).reader).toMatchObject({ currencyCode: '0x1756', decimalPlaces: 2 }); // the board's defaults
    await right;
    expect(wire.fromAgent.slice(before)).toEqual([
      'X,1',
      'X,0',
      'C,0',
      'C,SETCONF,mdb-addr=0x10',
      'C,SETCONF,mdb-currency-code=0x1032',
      'C,SETCONF,mdb-scale-factor=1',
      'C,SETCONF,mdb-decimal-places=2',
      'X,1',
      'C,1',
      'X,0',
    ]);
    expect(mdb.health().setupMismatch).toEqual([]);
    expect(faults.active()).toEqual([]);
    expect(faults.recent().map((x) => x.kind)).toContain('setup_read');
  });
});
