import { readFileSync } from 'node:fs';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { MdbCashless, MDB_DEFAULTS, mdbSetconf, type MdbOptions } from '../src/devices/mdb/cashless.js';
import { parseAmount } from '../src/core/money.js';
import { checkMachinePrice } from '../src/devices/mdb/price.js';
import { describeBusSetup } from '../src/devices/mdb/bus-setup.js';
import type { VendOutcome } from '../src/devices/dispenser.js';
import { captureLogger, tempDir } from './agent-helpers.js';
import { LinePort } from '../src/devices/serial/line-port.js';
import { PtyPair, skipPty } from './helpers/pty-pair.js';
import { MockWire, resetMockPorts } from './helpers/mock-wire.js';

// The Qibixx documentation's cashless-slave sessions (test/fixtures/qibixx-cashless-sessions.txt)
// replayed in order against the MDB driver on a binding-mock port: every line the board sends is
// fed in, and every line the agent writes must be exactly the next expected one.

const cleanups: Array<() => unknown> = [];
beforeEach(() => resetMockPorts());
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

type Step = { kind: '<' | '>' | '!' | '=' | '~' | '?'; text: string; line: number };

function loadSessions(file: string): Step[] {
  const text = readFileSync(new URL(`./fixtures/${file}`, import.meta.url), 'utf8');
  const steps: Step[] = [];
  text.split('\n').forEach((raw, i) => {
    const m = /^([<>!=~?]) (.+)$/.exec(raw.trimEnd());
    if (m) steps.push({ kind: m[1] as Step['kind'], text: m[2]!, line: i + 1 });
  });
  return steps;
}

const STYLES: Array<{ name: string; file: string; opts: Partial<MdbOptions>; min: number; last: { item: number; price: string; result: string } }> = [
  { name: 'selection first (always idle)', file: 'qibixx-cashless-sessions.txt', opts: { readSetup: true }, min: 40, last: { item: 18, price: '99.20', result: 'dispensed' } },
  {
    name: 'card first, as the second cashless device',
    file: 'qibixx-card-first-sessions.txt',
    opts: {
      style: 'card-first',
      selectTimeoutMs: 2000,
      setconf: mdbSetconf({ address: 2, style: 'card-first', currencyCode: '0x1032', scaleFactor: 1, decimalPlaces: 2 }),
      readSetup: true,
      expectReader: { currencyCode: '0x1032', scaleFactor: 1, decimalPlaces: 2 },
    },
    min: 60,
    last: { item: 18, price: '99.20', result: 'dispensed' },
  },
];

/** The board's end of the link: what the replay writes as the board and reads from the agent. */
interface BoardEnd {
  readonly fromAgent: string[];
  write(line: string): boolean;
  nextLine(pred: (l: string) => boolean, timeoutMs: number, from: number): Promise<string>;
  waitOpen(): Promise<void>;
}

/** The far end of a socat pty pair, on the real serialport binding. */
class PtyBoard implements BoardEnd {
  readonly fromAgent: string[] = [];
  private readonly waiters = new Set<() => void>();
  constructor(readonly port: LinePort) {
    port.on('line', (l: string) => {
      this.fromAgent.push(l);
      for (const w of [...this.waiters]) w();
    });
  }
  write(line: string): boolean {
    return this.port.write(line);
  }
  waitOpen(): Promise<void> {
    return this.port.whenOpen();
  }
  nextLine(pred: (l: string) => boolean, timeoutMs: number, from: number): Promise<string> {
    return new Promise((resolve, reject) => {
      const check = () => {
        const hit = this.fromAgent.slice(from).find(pred);
        if (hit === undefined) return false;
        clearTimeout(timer);
        this.waiters.delete(check);
        resolve(hit);
        return true;
      };
      const timer = setTimeout(() => {
        this.waiters.delete(check);
        reject(new Error(`the agent wrote no matching line within ${timeoutMs} ms; got: ${this.fromAgent.slice(-10).join(' | ')}`));
      }, timeoutMs);
      if (!check()) this.waiters.add(check);
    });
  }
}

async function transport(kind: 'binding-mock' | 'socat pty'): Promise<{ wire: BoardEnd; conn: Pick<MdbOptions, 'path' | 'openPort'> }> {
  if (kind === 'binding-mock') {
    const wire = new MockWire('/dev/ttyMDB');
    return { wire, conn: { path: wire.path, openPort: wire.openPort } };
  }
  const { dir, cleanup } = tempDir('qrk-mdbreplay-');
  cleanups.push(cleanup);
  const pair = new PtyPair(dir);
  cleanups.push(() => pair.kill());
  await pair.start();
  const board = new LinePort({ name: 'qibixx', path: pair.b, baudRate: 115200 });
  cleanups.push(() => board.close());
  board.start();
  await board.whenOpen();
  return { wire: new PtyBoard(board), conn: { path: pair.a } };
}

const CASES = STYLES.flatMap((s) => (['binding-mock', 'socat pty'] as const).map((t) => ({ ...s, transport: t })));

describe.each(CASES)('Qibixx cashless sessions replayed: $name, over $transport', ({ file, opts, min, last, transport: kind }) => {
  it.skipIf(kind === 'socat pty' && skipPty)('the agent answers each documented session exactly as expected, in order', async () => {
    const steps = loadSessions(file);
    expect(steps.length).toBeGreaterThan(min);
    const { wire, conn } = await transport(kind);
    const cap = captureLogger();
    const mdb = new MdbCashless({ ...MDB_DEFAULTS, ...conn, resultTimeoutMs: 2000, logger: cap.logger, ...opts });
    cleanups.push(() => mdb.close());

    // the session's part, reduced to what the board sees: a catalog and the price check
    const catalog = new Map([
      [5, { price: 100, currency: 'ARS' }],
      [6, { price: 100, currency: 'ARS' }],
      [18, { price: 9920, currency: 'ARS' }],
    ]);
    let orders = 0;
    let open: string | undefined;
    let lastSlot = 0;
    let cancels = 0;
    mdb.buttons.onPress((slot, detail) => {
      lastSlot = slot;
      const p = catalog.get(slot);
      if (!p) return { ok: false, reason: 'unknown_slot' };
      const c = checkMachinePrice(detail!.machinePrice!, detail!.trustMachinePriceWithin, p);
      if (!c.ok) return { ok: false, reason: 'price_mismatch', message: c.detail };
      open = `ord_replay${++orders}`;
      return { ok: true, orderId: open };
    });
    mdb.buttons.onCancel(() => cancels++);

    // every board line the driver has taken in (parsed or rejected)
    let taken = 0;
    const bump = () => {
      taken++;
      mdb.emit('taken');
    };
    mdb.on('board', bump);
    mdb.on('rejected', bump);
    const allTaken = (n: number) =>
      n <= taken ? Promise.resolve() : new Promise<void>((resolve) => {
        const on = () => {
          if (taken < n) return;
          mdb.off('taken', on);
          resolve();
        };
        mdb.on('taken', on);
      });

    mdb.start();
    await wire.waitOpen();
    let fed = 0;
    let cursor = 0;
    let vend: Promise<VendOutcome> | undefined;
    const expectedOut: string[] = [];
    for (const s of steps) {
      const where = `fixture line ${s.line}: ${s.kind} ${s.text}`;
      switch (s.kind) {
        case '<':
          wire.write(s.text);
          fed++;
          break;
        case '>': {
          await allTaken(fed);
          expectedOut.push(s.text);
          const got = await wire.nextLine(() => true, 3000, cursor);
          expect(got, where).toBe(s.text);
          expect(wire.fromAgent[cursor], where).toBe(s.text);
          cursor++;
          break;
        }
        case '!':
          await allTaken(fed);
          if (s.text === 'paid') vend = mdb.dispenser.vend(lastSlot);
          else if (s.text.startsWith('paid ')) {
            // card-first: the kiosk's paid order names the slot and the amount
            const [, slot, amount] = s.text.split(' ');
            vend = mdb.dispenser.vend(Number(slot), { orderId: `ord_paid${++orders}`, amount: parseAmount(amount!, 'ARS'), currency: 'ARS' });
          } else mdb.orderChanged({ orderId: open!, to: 'cancelled' }); // cancel and expiry both end as cancelled
          break;
        case '=': {
          await allTaken(fed);
          expect(vend, where).toBeDefined();
          expect((await vend!).result, where).toBe(s.text);
          vend = undefined;
          break;
        }
        case '~':
          await allTaken(fed);
          expect(cancels, where).toBe(1);
          break;
        case '?': {
          await allTaken(fed);
          const setup = mdb.health().busSetup;
          expect(setup, where).not.toBeNull();
          expect(describeBusSetup(setup!), where).toContain(s.text);
          // what the reader announced agrees with the config
          expect(mdb.health().setupMismatch, where).toEqual([]);
          break;
        }
      }
    }
    await allTaken(fed);
    // nothing more than the expected lines, in that order
    expect(wire.fromAgent).toEqual(expectedOut);
    expect(cap.lines.filter((l) => String(l.msg).includes('garbled'))).toEqual([]);
    expect(mdb.health()).toMatchObject({ phase: 'idle', lastVend: last });
  });
});
