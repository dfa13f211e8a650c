import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { EvdevButtons, KEY_CODES } from '../../src/devices/evdev-buttons.js';
import { waitFor } from '../helpers/wait.js';
import { ConsoleWatch, VirtualKeypad } from './helpers/keypad.js';

// EvdevButtons, unchanged, reading a virtual USB keypad made through /dev/uinput. The kernel's
// keyboard handler also feeds every keyboard's keys to the console (tty1): on a kiosk that is a
// login prompt. The reader must take the keys for itself (EVIOCGRAB) so none reach it. The console
// is watched raw (every key at once) through the VT the kernel keeps even with no screen: the
// control test shows a keypad nobody grabs does type into it, so the grab test can fail.

const KP1 = KEY_CODES.KP1!;
const KP2 = KEY_CODES.KP2!;
const KEY9 = KEY_CODES['9']!;

let keypad: VirtualKeypad;
let other: VirtualKeypad;
let tty: ConsoleWatch;

function reader(): EvdevButtons {
  return new EvdevButtons({
    device: keypad.device,
    entry: 'direct',
    keys: { KP1: 1, KP2: 2 },
    cancelKeys: [],
    enterKeys: [],
    codeTimeoutMs: 3000,
    eventSize: 'auto',
    holdToCancelMs: 0,
    stuckMs: 0,
    reconnectMs: 200,
  });
}

beforeAll(async () => {
  keypad = await VirtualKeypad.create([KP1, KP2]);
  // a second keyboard nobody reads: its key marks "everything typed before has been delivered"
  other = await VirtualKeypad.create([KEY9]);
  tty = await ConsoleWatch.open('/dev/tty1');
});

afterAll(async () => {
  tty?.close();
  await keypad?.destroy();
  await other?.destroy();
});

describe('evdev keypad through /dev/uinput', () => {
  it('the reader gets the keys typed on the keypad as slots', async () => {
    const buttons = reader();
    const presses: number[] = [];
    let waiter: ((slot: number) => void) | undefined;
    buttons.onPress((slot) => {
      presses.push(slot);
      waiter?.(slot);
    });
    buttons.start();
    try {
      await waitFor('the keypad reader to open the device', () => buttons.describe().status === 'ok', 30_000);
      let p = new Promise<number>((r) => (waiter = r));
      await keypad.tap(KP1);
      expect(await p).toBe(1);
      p = new Promise<number>((r) => (waiter = r));
      await keypad.tap(KP2);
      expect(await p).toBe(2);
      expect(presses).toEqual([1, 2]);
    } finally {
      buttons.close();
    }
  });

  it('the console sees a keypad nobody grabs (the check below can fail)', async () => {
    tty.reset();
    await keypad.tap(KP1);
    await other.tap(KEY9);
    const typed = await tty.until('9');
    expect(typed.length).toBeGreaterThan(1); // KP1's bytes, then the 9
  });

  it('the reader gets the keys as slots and none of them reach the console', async () => {
    const buttons = reader();
    const presses: number[] = [];
    let waiter: ((slot: number) => void) | undefined;
    buttons.onPress((slot) => {
      presses.push(slot);
      waiter?.(slot);
    });
    buttons.start();
    try {
      await waitFor('the keypad reader to open the device', () => buttons.describe().status === 'ok', 30_000);
      tty.reset();
      let p = new Promise<number>((r) => (waiter = r));
      await keypad.tap(KP1);
      expect(await p).toBe(1);
      p = new Promise<number>((r) => (waiter = r));
      await keypad.tap(KP2);
      expect(await p).toBe(2);
      await other.tap(KEY9);
      // the console got the other keyboard's 9 and nothing from the keypad
      expect(await tty.until('9')).toBe('9');
      expect(presses).toEqual([1, 2]);
    } finally {
      buttons.close();
    }
  });
});
