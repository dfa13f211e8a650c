import { execSync } from 'node:child_process';
import { afterEach, describe, expect, it } from 'vitest';
import { FaultLog, type Fault } from '../../src/devices/faults.js';
import { HidButtons } from '../../src/devices/hid-buttons.js';
import { waitFor } from '../helpers/wait.js';
import { ENCODER_DESCRIPTOR, VirtualEncoder } from './helpers/uhid.js';

// HidButtons, unchanged, through the real node-hid (hidraw) on a virtual USB encoder made with
// /dev/uhid from a real report descriptor. The encoder reports only on change, like the boards:
// the first report the driver reads after opening is already a press.

const VID = 0x0079;
const PID = 0x0006;

let encoder: VirtualEncoder | undefined;
let buttons: HidButtons | undefined;

afterEach(() => {
  buttons?.close();
  encoder?.destroy();
});

function collect(b: HidButtons) {
  const presses: number[] = [];
  let waiter: ((slot: number) => void) | undefined;
  b.onPress((slot) => {
    presses.push(slot);
    waiter?.(slot);
  });
  return { presses, next: () => new Promise<number>((r) => (waiter = r)) };
}

function faultSeen(faults: FaultLog, match: (f: Fault) => boolean): Promise<Fault> {
  return new Promise((resolve) => {
    const off = faults.onFault((f) => {
      if (match(f)) {
        off();
        resolve(f);
      }
    });
  });
}

describe('HID arcade encoder through /dev/uhid', () => {
  it('maps buttons to slots, the first press after opening included; unplug is reported and replugging resumes', async () => {
    encoder = new VirtualEncoder({ name: 'DragonRise Inc. Generic USB Joystick', vendorId: VID, productId: PID, descriptor: ENCODER_DESCRIPTOR });
    encoder.create();
    const faults = new FaultLog();
    buttons = new HidButtons(
      { device: { vendorId: VID, productId: PID }, buttons: { 1: { byte: 2, mask: 0x01 }, 2: { byte: 2, mask: 0x02 } }, holdToCancelMs: 0, stuckMs: 0, reconnectMs: 200 },
      undefined,
      faults,
    );
    const { presses, next } = collect(buttons);
    buttons.start();
    await waitFor('the driver to open the encoder', () => buttons!.describe().status === 'ok', 30_000).catch((err: Error) => {
      throw new Error(`${err.message}; faults: ${JSON.stringify(faults.recent())}; ${execSync('ls -l /dev/hidraw* /sys/bus/hid/devices/*/driver 2>&1; true', { encoding: 'utf8' })}`);
    });
    expect(buttons.describe().detail).toMatch(/\/dev\/hidraw\d+ 0079:0006/);

    // nothing was sent since plugging in: this first report is the first press
    let p = next();
    encoder.set(1, true);
    expect(await p).toBe(1);
    encoder.set(1, false);
    p = next();
    encoder.set(2, true);
    expect(await p).toBe(2);
    encoder.set(2, false);

    // unplugged: reported
    const lost = faultSeen(faults, (f) => f.kind === 'disconnected');
    encoder.destroy();
    expect((await lost).message).toMatch(/read error|not found|cannot open/);

    // plugged back: reconnects, and again the very first press counts
    encoder.create();
    await waitFor('the driver to reopen the encoder', () => buttons!.describe().status === 'ok', 30_000);
    expect(faults.active().filter((f) => f.kind === 'disconnected')).toEqual([]);
    p = next();
    encoder.set(2, true);
    expect(await p).toBe(2);
    encoder.set(2, false);
    expect(presses).toEqual([1, 2, 2]);
  });
});
