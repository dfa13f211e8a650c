import QRCode from 'qrcode';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { PassThrough } from 'node:stream';
import { afterEach, describe, expect, it } from 'vitest';
import { KeyboardButtons, SimButtons } from '../src/devices/buttons.js';
import { LogDisplay, NullDisplay, TerminalDisplay, renderQr } from '../src/devices/display.js';
import { PulseDispenser, SimDispenser, readPulseLog, type DropSensor, type Motor, type SimFault } from '../src/devices/dispenser.js';
import { POS_QR, captureLogger, tempDir } from './agent-helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

function sim(fault: SimFault, over: Partial<ConstructorParameters<typeof SimDispenser>[0]> = {}) {
  const d = new SimDispenser({ pulseMs: 10, dropWindowMs: 60, maxPulses: 2, fault, dropDelayMs: 5, slowDropMs: 40, ...over });
  cleanups.push(() => d.close());
  return d;
}

describe('SimDispenser', () => {
  it('none: the drop is seen after the first pulse', async () => {
    const { dir, cleanup } = tempDir('qrk-dev-');
    cleanups.push(cleanup);
    const log = join(dir, 'p', 'pulses.jsonl');
    const d = sim('none', { pulseLog: log });
    expect(await d.vend(4)).toEqual({ result: 'dispensed', pulses: 1 });
    const lines = readPulseLog(readFileSync(log, 'utf8'));
    expect(lines).toHaveLength(1);
    expect(lines[0]).toMatchObject({ slot: 4, pulse: 1, pid: process.pid });
  });

  it('no_drop: vend_failed after maxPulses pulses', async () => {
    const d = sim('no_drop', { maxPulses: 3 });
    expect(await d.vend(1)).toMatchObject({ result: 'vend_failed', pulses: 3 });
    expect(d.pulses).toBe(3);
  });

  it('jam: jammed after one pulse, never pulsed again', async () => {
    const d = sim('jam');
    expect(await d.vend(1)).toMatchObject({ result: 'jammed', pulses: 1 });
    expect(d.pulses).toBe(1);
  });

  it('slow_drop: seen when it falls inside the window, missed when it falls after', async () => {
    expect(await sim('slow_drop', { slowDropMs: 40, dropWindowMs: 60 }).vend(1)).toEqual({ result: 'dispensed', pulses: 1 });
    // the window starts when the 10 ms pulse ends: each pulse's product falls 150 ms after the
    // window (10 + 40 ms) would have closed
    const late = sim('slow_drop', { slowDropMs: 200, dropWindowMs: 40 });
    expect(await late.vend(1)).toMatchObject({ result: 'vend_failed', pulses: 2 });
  });

  it('the window starts when the pulse ends: a product falling 50 ms after a 300 ms pulse counts (window 200 ms)', async () => {
    // Counted from arming, the window closed 100 ms before the motor stopped. The soak (seed
    // 20261225, 83,684 vends on a loaded machine) saw 3 vends fail that way: the process stalled
    // about 200 ms between arming the sensor and starting the motor (the pulse log shows the motor
    // starting ~210 ms after `dispensing`), the window ran out before the product fell.
    const d = sim('slow_drop', { pulseMs: 300, dropWindowMs: 200, slowDropMs: 350, maxPulses: 1 });
    expect(await d.vend(1)).toEqual({ result: 'dispensed', pulses: 1 });
  });

  it('refuses a second vend while one is running (one motor at a time)', async () => {
    const d = sim('none');
    const first = d.vend(1);
    await expect(d.vend(2)).rejects.toThrow(/already vending/);
    await first;
  });
});

describe('PulseDispenser (the policy real drivers plug into)', () => {
  it('arms the sensor before the motor moves and stops the motor on a stall', async () => {
    const calls: string[] = [];
    const motor: Motor = {
      pulse: async (slot) => {
        calls.push(`pulse ${slot}`);
        return 'stalled';
      },
      stop: () => calls.push('stop'),
    };
    const sensor: DropSensor = {
      watch: () => {
        calls.push('watch');
        return { seen: Promise.resolve(false), cancel: () => calls.push('cancel'), pulseEnded: () => calls.push('pulse ended') };
      },
    };
    const d = new PulseDispenser(motor, sensor, { pulseMs: 1, dropWindowMs: 1, maxPulses: 2 });
    expect(await d.vend(7)).toMatchObject({ result: 'jammed', pulses: 1 });
    expect(calls).toEqual(['watch', 'pulse 7', 'pulse ended', 'cancel', 'stop']);
  });
});

/** Reads the half-block picture back into light/dark modules. */
function decodeBlocks(lines: string[]): boolean[][] {
  const rows: boolean[][] = [];
  for (const line of lines) {
    const top: boolean[] = [];
    const bottom: boolean[] = [];
    for (const ch of line) {
      top.push(ch === '█' || ch === '▀');
      bottom.push(ch === '█' || ch === '▄');
    }
    rows.push(top, bottom);
  }
  return rows;
}

describe('displays', () => {
  it('renderQr draws exactly the QR modules, light as ink, with a 2-module quiet zone', () => {
    const lines = renderQr(POS_QR);
    const m = QRCode.create(POS_QR, { errorCorrectionLevel: 'M' }).modules;
    const total = m.size + 4;
    expect(lines).toHaveLength(Math.ceil(total / 2));
    for (const l of lines) {
      expect([...l]).toHaveLength(total);
      expect(l).toMatch(/^[█▀▄ ]+$/);
    }
    const light = decodeBlocks(lines);
    for (let r = 0; r < total; r++) {
      for (let c = 0; c < total; c++) {
        const inCode = r >= 2 && r < m.size + 2 && c >= 2 && c < m.size + 2;
        const expected = inCode ? m.get(r - 2, c - 2) === 0 : true;
        expect(light[r]![c], `module ${r},${c}`).toBe(expected);
      }
    }
    // ansi mode forces white-on-black so light terminals show the same picture
    expect(renderQr('x', { ansi: true })[0]).toMatch(/^\x1b\[97;40m.*\x1b\[0m$/);
  });

  it('TerminalDisplay shows product, price, QR and countdown; remembers the last screen', () => {
    const out = new PassThrough();
    let text = '';
    out.on('data', (c: Buffer) => (text += c.toString()));
    const d = new TerminalDisplay(out, { locale: 'es-AR', ansi: false });
    d.show({ screen: 'pay', product: 'Cola 350ml', amountText: '$ 1.500,00', qr: POS_QR, secondsLeft: 42, orderId: 'ord_abcdef' });
    expect(text).toContain('Cola 350ml  $ 1.500,00');
    expect(text).toContain('42 s para pagar');
    expect(text).toContain(renderQr(POS_QR)[3]);
    expect(d.last()).toMatchObject({ screen: 'pay', secondsLeft: 42 });
    // not a TTY: a countdown tick alone does not reprint the screen
    const len = text.length;
    d.show({ screen: 'pay', product: 'Cola 350ml', amountText: '$ 1.500,00', qr: POS_QR, secondsLeft: 41, orderId: 'ord_abcdef' });
    expect(text.length).toBe(len);
    expect(d.last()?.secondsLeft).toBe(41);
    d.show({ screen: 'thank_you', orderId: 'ord_abcdef' });
    expect(text).toContain('¡Gracias!');
  });

  it('LogDisplay logs each screen change once', () => {
    const cap = captureLogger();
    const d = new LogDisplay(cap.logger);
    d.show({ screen: 'idle' });
    d.show({ screen: 'pay', orderId: 'ord_abcdef', secondsLeft: 10, qr: 'x' });
    d.show({ screen: 'pay', orderId: 'ord_abcdef', secondsLeft: 9, qr: 'x' });
    expect(cap.lines.filter((l) => l.level === 30).map((l) => l.msg)).toEqual(['screen idle', 'screen pay']);
    expect(d.last()?.secondsLeft).toBe(9);
    const n = new NullDisplay();
    n.show({ screen: 'expired' });
    expect(n.last()?.screen).toBe('expired');
  });
});

describe('buttons', () => {
  it('SimButtons emits presses and cancels', () => {
    const b = new SimButtons();
    const got: Array<number | string> = [];
    const off = b.onPress((s) => got.push(s));
    b.onCancel(() => got.push('cancel'));
    b.press(2);
    b.pressCancel();
    off();
    b.press(3);
    expect(got).toEqual([2, 'cancel']);
  });

  it('KeyboardButtons maps keys 1-9 to slots and C/0 to cancel, only on a TTY', () => {
    const input = Object.assign(new PassThrough(), { isTTY: true, raw: false, setRawMode(v: boolean) {
      this.raw = v;
      return this;
    } });
    const b = new KeyboardButtons(input);
    const got: Array<number | string> = [];
    b.onPress((s) => got.push(s));
    b.onCancel(() => got.push('cancel'));
    b.start();
    expect(input.raw).toBe(true);
    input.write('1');
    input.write('9x');
    input.write('c0');
    b.handle('5');
    b.close();
    expect(input.raw).toBe(false);
    expect(got).toEqual([1, 9, 'cancel', 'cancel', 5]);

    const cap = captureLogger();
    const pipe = new KeyboardButtons(Object.assign(new PassThrough(), { isTTY: false }), cap.logger);
    pipe.start();
    expect(cap.lines.some((l) => String(l.msg).includes('stdin is not a terminal'))).toBe(true);
  });
});
