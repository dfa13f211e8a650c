import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { FaultLog } from '../src/devices/faults.js';
import { GpioButtons, type GpioButtonsConfig } from '../src/devices/gpio-buttons.js';
import { OnoffBackend } from '../src/devices/gpio/onoff-backend.js';
import { OnoffTwin } from '../src/devices/gpio/onoff-twin.js';
import type { InputEvent } from '../src/devices/report.js';
import { tempDir } from './agent-helpers.js';
import { PI_TREES, writeSysfsTree } from './helpers/sysfs-trees.js';

// Buttons on GPIO through the onoff backend and its twin (Pi 4, kernel 6.6: GPIO17 = sysfs 529),
// with fake timers so every millisecond of a bouncing contact is under the test's control.

const BASE = 512;
const CFG: GpioButtonsConfig = {
  pins: { 1: 17, 2: 27 },
  cancel: 26,
  activeLow: true,
  pull: 'up',
  debounceMs: 30,
  holdToCancelMs: 0,
  stuckMs: 10_000,
};

let cleanup: () => void;
let twin: OnoffTwin;
let backend: OnoffBackend;
let faults: FaultLog;
let events: string[];
let inputs: InputEvent[];

async function open(cfg: Partial<GpioButtonsConfig> = {}, idle: 0 | 1 = 1): Promise<GpioButtons> {
  const c = { ...CFG, ...cfg };
  for (const bcm of [...Object.values(c.pins), ...(c.cancel !== undefined ? [c.cancel] : [])]) twin.drive(BASE + bcm, idle);
  const b = await GpioButtons.open(backend, c, faults);
  b.onPress((slot) => events.push(`press ${slot}`));
  b.onCancel(() => events.push('cancel'));
  b.onInput((e) => inputs.push(e));
  b.start();
  return b;
}

/** edges at the given ms offsets, starting with `first` and alternating */
async function edges(bcm: number, times: number[], first: 0 | 1): Promise<void> {
  let level = first;
  let t = 0;
  for (const at of times) {
    await vi.advanceTimersByTimeAsync(at - t);
    t = at;
    twin.drive(BASE + bcm, level);
    level = level === 1 ? 0 : 1;
  }
  await vi.advanceTimersByTimeAsync(0);
}

beforeEach(() => {
  vi.useFakeTimers();
  const d = tempDir('qrk-btn-');
  cleanup = d.cleanup;
  const root = writeSysfsTree(d.dir, PI_TREES['Pi 4 (6.6)']!.chips);
  // interrupts delivered at once, so every millisecond of a bounce reaches the debouncer as the
  // test writes it (late, coalesced delivery is the drop sensor's test: dispenser-gpio.test.ts)
  twin = OnoffTwin.fromSysfs(root, { latencyMs: () => 0 });
  backend = OnoffBackend.open({ sysfsRoot: root, factory: twin.factory, exitHook: false });
  faults = new FaultLog();
  events = [];
  inputs = [];
});

afterEach(async () => {
  await backend.close();
  vi.useRealTimers();
  cleanup();
});

describe('GPIO buttons: debounce by level', () => {
  it('a bouncing press (a burst of edges) is exactly one selection, and the bounces are counted', async () => {
    const b = await open();
    // press: the contact chatters for 7 ms, then stays closed (low)
    await edges(17, [0, 1, 2, 3, 4, 6, 7], 0);
    expect(events).toEqual([]);
    await vi.advanceTimersByTimeAsync(29);
    expect(events).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(events).toEqual(['press 1']);
    expect(inputs).toEqual([expect.objectContaining({ input: 'slot 1 (GPIO17)', function: 'slot 1', state: 'down', bounces: 6 })]);
    // release bounces too: still one press in total, and one "up"
    await edges(17, [100, 101, 103], 1);
    await vi.advanceTimersByTimeAsync(50);
    expect(events).toEqual(['press 1']);
    expect(inputs.map((i) => i.state)).toEqual(['down', 'up']);
    expect(b.describe().lines).toContainEqual({ function: 'slot 1', name: 'GPIO17', where: 'sysfs gpio529', state: 'released' });
  });

  it('a spike shorter than the debounce time selects nothing', async () => {
    await open();
    await edges(27, [0, 5], 0); // 5 ms low (a motor switching on couples into the wire)
    await vi.advanceTimersByTimeAsync(500);
    expect(events).toEqual([]);
    expect(inputs).toEqual([]);
  });

  it('two buttons, the cancel button, and active-high wiring', async () => {
    await open();
    await edges(17, [0], 0);
    await vi.advanceTimersByTimeAsync(30);
    await edges(17, [0], 1);
    await edges(27, [50], 0);
    await vi.advanceTimersByTimeAsync(30);
    await edges(26, [0], 0);
    await vi.advanceTimersByTimeAsync(30);
    expect(events).toEqual(['press 1', 'press 2', 'cancel']);
  });

  it('active high: pressed reads 1', async () => {
    await open({ activeLow: false, pull: 'down', cancel: undefined }, 0);
    await edges(17, [0], 1);
    await vi.advanceTimersByTimeAsync(30);
    expect(events).toEqual(['press 1']);
  });
});

describe('GPIO buttons: stuck and hold', () => {
  it('a button stuck pressed makes one selection and one fault report, never repeated; release clears it', async () => {
    await open();
    await edges(17, [0], 0); // GPIO17 goes low and stays there
    await vi.advanceTimersByTimeAsync(30);
    expect(events).toEqual(['press 1']);
    await vi.advanceTimersByTimeAsync(10_000);
    expect(faults.active()).toEqual([
      expect.objectContaining({ device: 'slot 1 (GPIO17)', kind: 'stuck', active: true, message: expect.stringMatching(/pressed for 10 s: stuck switch/) }),
    ]);
    // an hour later: still one selection, still one report
    await vi.advanceTimersByTimeAsync(3_600_000);
    expect(events).toEqual(['press 1']);
    expect(faults.recent(100)).toHaveLength(1);
    await edges(17, [0], 1);
    await vi.advanceTimersByTimeAsync(30);
    expect(faults.active()).toEqual([]);
    expect(faults.recent()[0]).toMatchObject({ active: false, clearedAt: expect.any(Number) });
    // working again
    await edges(17, [0], 0);
    await vi.advanceTimersByTimeAsync(30);
    expect(events).toEqual(['press 1', 'press 1']);
  });

  it('a button already pressed at start selects nothing, and is reported when it stays pressed', async () => {
    twin.drive(BASE + 17, 0);
    const b = await GpioButtons.open(backend, { ...CFG, cancel: undefined, pins: { 1: 17 } }, faults);
    b.onPress((s) => events.push(`press ${s}`));
    b.start();
    await vi.advanceTimersByTimeAsync(9_999);
    expect(events).toEqual([]);
    expect(faults.active()).toEqual([]);
    await vi.advanceTimersByTimeAsync(1);
    expect(faults.active()).toHaveLength(1);
    expect(b.describe().lines![0]!.state).toBe('STUCK');
  });

  it('hold to cancel: held for holdToCancelMs cancels, once per press', async () => {
    await open({ holdToCancelMs: 2000, cancel: undefined });
    await edges(27, [0], 0);
    await vi.advanceTimersByTimeAsync(30);
    expect(events).toEqual(['press 2']);
    await vi.advanceTimersByTimeAsync(1999);
    expect(events).toEqual(['press 2']);
    await vi.advanceTimersByTimeAsync(1);
    expect(events).toEqual(['press 2', 'cancel']);
    await vi.advanceTimersByTimeAsync(5000);
    expect(events).toEqual(['press 2', 'cancel']);
    // a short press does not cancel
    await edges(27, [0], 1);
    await vi.advanceTimersByTimeAsync(30);
    await edges(27, [0, 500], 0);
    await vi.advanceTimersByTimeAsync(3000);
    expect(events).toEqual(['press 2', 'cancel', 'press 2']);
  });

  it('a listener that throws does not stop the buttons', async () => {
    const b = await open();
    b.onPress(() => {
      throw new Error('boom');
    });
    await edges(17, [0], 0);
    await vi.advanceTimersByTimeAsync(30);
    await edges(17, [0], 1);
    await vi.advanceTimersByTimeAsync(30);
    await edges(27, [0], 0);
    await vi.advanceTimersByTimeAsync(30);
    expect(events).toEqual(['press 1', 'press 2']);
  });
});
