import { afterEach, describe, expect, it } from 'vitest';
import { MdbCashless, MDB_DEFAULTS, mdbSetconf } from '../src/devices/mdb/cashless.js';
import { QibixxTwin } from '../src/devices/mdb/twin.js';
import { LinePort } from '../src/devices/serial/line-port.js';
import { captureLogger, nextEvent, tempDir } from './agent-helpers.js';
import { PtyPair, skipPty } from './helpers/pty-pair.js';

// The MDB driver on the real serialport binding, the simulated Qibixx board on the other end of
// a socat pty pair. Killing socat is pulling the MDB-USB cable.

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type BoardMsg = { kind: string; state?: string };

async function setup() {
  const { dir, cleanup } = tempDir('qrk-mdbpty-');
  cleanups.push(cleanup);
  const pair = new PtyPair(dir);
  cleanups.push(() => pair.kill());
  await pair.start();
  const cap = captureLogger();
  const mdb = new MdbCashless({ ...MDB_DEFAULTS, path: pair.a, reconnect: { baseMs: 10, capMs: 50 }, logger: cap.logger });
  const boardPort = new LinePort({ name: 'qibixx', path: pair.b, baudRate: 115200, reconnect: { baseMs: 10, capMs: 50 } });
  const twin = new QibixxTwin(boardPort);
  cleanups.push(() => mdb.close(), () => boardPort.close());
  // every line the agent writes, as it writes it (what reaches the board depends on timing)
  const written: string[] = [];
  const write = mdb.link.write.bind(mdb.link);
  mdb.link.write = (line: string) => {
    written.push(line);
    return write(line);
  };
  const cancels: number[] = [];
  let n = 0;
  let lastOrder = '';
  mdb.buttons.onPress(() => ({ ok: true, orderId: (lastOrder = `ord_pty${++n}`) }));
  mdb.buttons.onCancel(() => cancels.push(n));
  boardPort.start();
  await boardPort.whenOpen();
  const enabled = nextEvent<BoardMsg>(mdb as never, 'board', (m) => m.state === 'ENABLED');
  mdb.start();
  await enabled;
  return { pair, mdb, twin, boardPort, written, cancels, cap, order: () => lastOrder };
}

describe.skipIf(skipPty)('MDB cashless driver over a socat pty pair', () => {
  it('runs a whole cashless session over a real serial port', async () => {
    const { mdb, twin, written } = await setup();
    expect(written.slice(0, 2)).toEqual(['C,0', 'C,1']);
    expect(twin.commands.slice(0, 2)).toEqual(['C,0', 'C,1']);
    const req = nextEvent<BoardMsg>(mdb as never, 'board', (m) => m.kind === 'vend_request');
    twin.select(5, '1500.00');
    await req;
    expect(await mdb.dispenser.vend(5)).toEqual({ result: 'dispensed', pulses: 1 });
    expect(twin.approvals).toEqual(['1500.00']);
    expect(twin.dispensed).toHaveLength(1);
    expect(twin.violations).toEqual([]);
  });

  it('an unplug while the machine waits for payment: the order is cancelled, nothing is approved, the board is re-enabled', async () => {
    const { pair, mdb, twin, boardPort, written, cancels } = await setup();
    const req = nextEvent<BoardMsg>(mdb as never, 'board', (m) => m.kind === 'vend_request');
    twin.select(2, '1.00');
    await req;
    const before = written.length;
    await pair.kill();
    // the board must have the re-enable before the next customer, like a real board after a replug
    const reenabled = nextEvent<string>(twin as never, 'command', (c) => c === 'C,1');
    const back = Promise.all([nextEvent(mdb.link as never, 'open'), nextEvent(boardPort as never, 'open')]);
    await pair.start();
    await back;
    await reenabled;
    expect(cancels).toHaveLength(1);
    expect(written.slice(before)).toEqual(['C,STOP', 'C,0', 'C,1']);
    // the order the session was paying for can no longer be approved
    expect(await mdb.dispenser.vend(2)).toMatchObject({ result: 'vend_failed', pulses: 0 });
    expect(twin.approvals).toEqual([]);
    // and the next customer is served normally
    const again = nextEvent<BoardMsg>(mdb as never, 'board', (m) => m.kind === 'vend_request');
    twin.select(2, '1.00');
    await again;
    expect(await mdb.dispenser.vend(2)).toEqual({ result: 'dispensed', pulses: 1 });
    expect(twin.dispensed).toHaveLength(1);
  });

  it('an unplug after approval: the machine result after the reconnect still counts, once', async () => {
    const { pair, mdb, twin, boardPort, written } = await setup();
    twin.outcome = 'silent';
    const req = nextEvent<BoardMsg>(mdb as never, 'board', (m) => m.kind === 'vend_request');
    twin.select(7, '2.50');
    await req;
    const approved = nextEvent<string>(twin as never, 'command', (c) => c.startsWith('C,VEND,'));
    const vend = mdb.dispenser.vend(7);
    await approved;
    const down = nextEvent(mdb.link as never, 'down');
    await pair.kill();
    await down;
    const before = written.length;
    const back = Promise.all([nextEvent(mdb.link as never, 'open'), nextEvent(boardPort as never, 'open')]);
    await pair.start();
    await back;
    expect(written.slice(before)).toEqual([]); // no reset while the result is outstanding
    twin.say('c,VEND,SUCCESS');
    expect(await vend).toEqual({ result: 'dispensed', pulses: 1 });
    expect(written.slice(before)).toEqual(['C,0', 'C,1']);
    expect(twin.approvals).toEqual(['2.50']);
  });
});

describe.skipIf(skipPty)('MDB reader setup over a socat pty pair', () => {
  it('a board that cannot be the second cashless device says so, and the technician sees it', async () => {
    const { dir, cleanup } = tempDir('qrk-mdbpty-');
    cleanups.push(cleanup);
    const pair = new PtyPair(dir);
    cleanups.push(() => pair.kill());
    await pair.start();
    const boardPort = new LinePort({ name: 'qibixx', path: pair.b, baudRate: 115200 });
    const twin = new QibixxTwin(boardPort);
    twin.refuse.add('mdb-addr');
    boardPort.start();
    await boardPort.whenOpen();
    const faults: string[] = [];
    const mdb = new MdbCashless({
      ...MDB_DEFAULTS,
      path: pair.a,
      style: 'card-first',
      setconf: mdbSetconf({ address: 2, style: 'card-first' }),
      faults: { condition: (_d, kind, m) => void faults.push(`${kind}: ${m}`), clear: () => undefined, event: () => undefined },
    });
    cleanups.push(() => mdb.close(), () => boardPort.close());
    const setup = nextEvent<Array<{ param: string; result: string }>>(mdb as never, 'setup');
    mdb.start();
    const results = await setup;
    expect(results.map((r) => [r.param, r.result])).toEqual([
      ['mdb-addr', 'refused: SETCONF mdb-addr'],
      ['mdb-always-idle', 'ok'],
    ]);
    expect(faults[0]).toMatch(/^setup: C,SETCONF,mdb-addr=0x60: refused: .*cannot be the second cashless device/);
    await nextEvent(twin as never, 'command', (c) => c === 'C,1');
    const d = mdb.describe('dispenser');
    expect(d.status).toBe('fault');
    expect(d.detail).toContain('setup refused: mdb-addr=0x60');
  });
});

describe.skipIf(skipPty)('MDB setup exchange read over a socat pty pair', () => {
  it('the sniffer lines of the setup come through the real serial binding; a machine with the wrong decimal places is caught', async () => {
    const { dir, cleanup } = tempDir('qrk-mdbpty-');
    cleanups.push(cleanup);
    const pair = new PtyPair(dir);
    cleanups.push(() => pair.kill());
    await pair.start();
    const boardPort = new LinePort({ name: 'qibixx', path: pair.b, baudRate: 115200 });
    const twin = new QibixxTwin(boardPort);
    // a level 2 machine keeping its prices with 0 decimal places: its dearest, 15.00, is 15 units
    twin.vmc = { level: 2, max: 15, min: 1 };
    boardPort.start();
    await boardPort.whenOpen();
    const faults: string[] = [];
    const setup = { currencyCode: '0x1032', scaleFactor: 1, decimalPlaces: 2 };
    const mdb = new MdbCashless({
      ...MDB_DEFAULTS,
      path: pair.a,
      setconf: mdbSetconf({ address: 1, ...setup }),
      readSetup: true,
      expectReader: setup,
      faults: { condition: (_d, kind, m) => void faults.push(`${kind}: ${m}`), clear: () => undefined, event: () => undefined },
    });
    cleanups.push(() => mdb.close(), () => boardPort.close());
    mdb.checkCatalog([{ slot: 1, price: 1500, currency: 'ARS' }]); // $ 15,00
    const read = nextEvent<{ reader: { decimalPlaces: number } | null }>(mdb as never, 'setup_read');
    mdb.start();
    expect((await read).reader).toMatchObject({ decimalPlaces: 2 });
    await nextEvent(twin as never, 'command', (c) => c === 'X,0');
    expect(twin.commands.slice(-3)).toEqual(['X,1', 'C,1', 'X,0']);
    expect(mdb.health().setupMismatch).toEqual([]);
    expect(faults).toEqual(['price_range: slot 1: the machine said at setup its highest price is $ 0,15, below the catalog\'s $ 15,00: 100x, the machine\'s decimal point and the reader\'s 2 decimal places differ by 2']);
    expect(mdb.describe('dispenser').detail).toContain('VMC level 2; reader announced level 3, currency 0x1032 (ARS), scale factor 1, 2 decimal places');
  });
});
