import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { PulseDispenser, type DropSensor, type Motor } from '../src/devices/dispenser.js';
import { FaultLog } from '../src/devices/faults.js';
import { GpioDispenser, GpioDropSensor, type GpioDispenserConfig } from '../src/devices/gpio-dispenser.js';
import { OnoffBackend } from '../src/devices/gpio/onoff-backend.js';
import { OnoffTwin } from '../src/devices/gpio/onoff-twin.js';
import { tempDir } from './agent-helpers.js';
import { PI_TREES, writeSysfsTree } from './helpers/sysfs-trees.js';

// GpioDispenser (PulseDispenser over GPIO relays and an IR beam) on the onoff twin of a Pi 5 with
// kernel 6.6 (header base 571), with a simulated spiral machine wired to the twin's pins: when a
// motor relay closes, the product falls through the beam on the pulse the test chooses.

const BASE = 571;
const CFG: GpioDispenserConfig = {
  pulseMs: 200,
  maxPulseMs: 1000,
  dropWindowMs: 800,
  maxPulses: 3,
  motors: { activeLow: true, pins: { 1: 5, 2: 6 } },
  sensor: { pin: 16, activeLow: false, pull: 'up', clearMs: 3000 },
};
const SENSOR = BASE + 16;

let cleanup: () => void;
let twin: OnoffTwin;
let backend: OnoffBackend;
let faults: FaultLog;
let pulses: Array<{ gpio: number; at: number }>;

/**
 * The machine: an active-low relay closes (pin goes 0) and the motor turns; on pulse number
 * `dropOn` the product crosses the beam `fallMs` later for `crossMs` (receiver output high while
 * interrupted).
 */
function machine(opts: { dropOn?: number; fallMs?: number; crossMs?: number; feedbackPin?: number; turns?: boolean }): void {
  let n = 0;
  twin.on('write', (gpio: number, value: number, before: number) => {
    if (gpio === SENSOR || !(value === 0 && before === 1)) return;
    if (![BASE + 5, BASE + 6].includes(gpio)) return;
    n++;
    pulses.push({ gpio, at: Date.now() });
    if (opts.feedbackPin !== undefined && opts.turns !== false) {
      // the cam switch opens and closes once while the spiral turns
      setTimeout(() => twin.drive(BASE + opts.feedbackPin!, 1), 50);
      setTimeout(() => twin.drive(BASE + opts.feedbackPin!, 0), 150);
    }
    if (n === opts.dropOn) {
      setTimeout(() => twin.drive(SENSOR, 1), opts.fallMs ?? 350);
      setTimeout(() => twin.drive(SENSOR, 0), (opts.fallMs ?? 350) + (opts.crossMs ?? 4));
    }
  });
}

async function open(cfg: Partial<GpioDispenserConfig> = {}): Promise<GpioDispenser> {
  return GpioDispenser.open(backend, { ...CFG, ...cfg }, { faults });
}

async function vend(d: GpioDispenser, slot = 1) {
  const p = d.vend(slot);
  // each pulse: the motor turns pulseMs, then the drop window runs
  await vi.advanceTimersByTimeAsync(CFG.maxPulses * (CFG.pulseMs + CFG.dropWindowMs) + 100);
  return p;
}

beforeEach(() => {
  vi.useFakeTimers();
  const d = tempDir('qrk-disp-');
  cleanup = d.cleanup;
  const root = writeSysfsTree(d.dir, PI_TREES['Pi 5 (6.6)']!.chips);
  twin = OnoffTwin.fromSysfs(root);
  backend = OnoffBackend.open({ sysfsRoot: root, factory: twin.factory, exitHook: false });
  faults = new FaultLog();
  pulses = [];
  twin.drive(SENSOR, 0); // beam clear
});

afterEach(async () => {
  await backend.close();
  vi.useRealTimers();
  cleanup();
});

describe('GPIO dispenser: the right result every time', () => {
  for (const dropOn of [1, 2, 3]) {
    it(`drop seen on pulse ${dropOn}: dispensed after ${dropOn} pulse(s), no pulse more`, async () => {
      machine({ dropOn });
      const d = await open();
      expect(await vend(d)).toEqual({ result: 'dispensed', pulses: dropOn });
      expect(pulses).toHaveLength(dropOn);
      // every pulse was exactly pulseMs long, and the relay ended open (pin high)
      const w = twin.writesTo(BASE + 5);
      expect(w.at(-1)!.value).toBe(1);
      for (let i = 0; i < dropOn; i++) {
        const on = w.filter((x) => x.value === 0)[i]!;
        const off = w.find((x) => x.at > on.at && x.value === 1)!;
        expect(off.at - on.at).toBe(200);
      }
      expect(faults.recent()).toEqual([]);
    });
  }

  it('a product that crosses the beam in 2 ms, while the motor still turns, is seen', async () => {
    machine({ dropOn: 1, fallMs: 120, crossMs: 2 });
    const d = await open();
    expect(await vend(d)).toEqual({ result: 'dispensed', pulses: 1 });
  });

  it('a 2 ms beam break delivered 20 ms late (a loaded Pi) is one drop and one pulse', async () => {
    // onoff only reads the line when epoll wakes the event loop: by then the beam is clear again
    // and the value reads what it read before the product fell
    twin.latencyMs = () => 20;
    machine({ dropOn: 1, fallMs: 120, crossMs: 2 });
    const d = await open();
    expect(await vend(d)).toEqual({ result: 'dispensed', pulses: 1 });
    expect(pulses).toHaveLength(1);
    expect(twin.level(SENSOR)).toBe(0);
  });

  it('a 2 ms break just after the window closed is not this pulse\'s drop', async () => {
    twin.latencyMs = () => 20;
    // falls 10 ms after the window of the last pulse closed (pulse 200 ms + window 800 ms): the
    // delivery is late, the edge was too
    machine({ dropOn: 1, fallMs: 1010, crossMs: 2 });
    const d = await open({ maxPulses: 1 });
    expect(await vend(d)).toEqual({ result: 'vend_failed', pulses: 1, detail: 'no drop seen after 1 pulse(s)' });
  });

  it('a motor that starts late (a slow gpioset spawn on a loaded Pi): the window waits for the pulse, the drop counts, no second pulse', async () => {
    const input = await backend.input({ bcm: 16, pull: 'up', role: 'drop sensor' });
    const sensor = new GpioDropSensor(input, false, 3000);
    let started = 0;
    const lateMotor: Motor = {
      pulse: async (_slot, ms) => {
        await new Promise((r) => setTimeout(r, 700)); // the backend gets the motor going 700 ms late
        started++;
        setTimeout(() => twin.drive(SENSOR, 1), 20);
        setTimeout(() => twin.drive(SENSOR, 0), 24);
        await new Promise((r) => setTimeout(r, ms));
        return 'ok';
      },
      stop: () => {},
    };
    const d = new PulseDispenser(lateMotor, sensor, { pulseMs: 100, dropWindowMs: 600, maxPulses: 2 });
    const p = d.vend(1);
    await vi.advanceTimersByTimeAsync(3000);
    expect(await p).toEqual({ result: 'dispensed', pulses: 1 });
    expect(started).toBe(1);
    sensor.close();
  });

  it('never seen: vend_failed after maxPulses, each pulse given', async () => {
    machine({});
    const d = await open();
    expect(await vend(d)).toEqual({ result: 'vend_failed', pulses: 3, detail: 'no drop seen after 3 pulse(s)' });
    expect(pulses).toHaveLength(3);
    expect(twin.level(BASE + 5)).toBe(1);
  });

  it('the drop window starts when the pulse ends: a long pulse does not eat it, no second pulse', async () => {
    // a 600 ms pulse and an 800 ms window: the product falls 400 ms after the motor stopped.
    // Measured from arming (before the pulse) the window closed 200 ms after the motor stopped,
    // the product was missed and a second pulse dropped a second product for one payment.
    machine({ dropOn: 1, fallMs: 1000 });
    const d = await open({ pulseMs: 600 });
    const p = d.vend(1);
    await vi.advanceTimersByTimeAsync(3 * (600 + 800) + 100);
    expect(await p).toEqual({ result: 'dispensed', pulses: 1 });
    expect(pulses).toHaveLength(1);
  });

  it('the window after a long pulse is the whole dropWindowMs: a fall 780 ms after a 600 ms pulse counts', async () => {
    machine({ dropOn: 1, fallMs: 600 + 780 });
    const d = await open({ pulseMs: 600, maxPulses: 1 });
    const p = d.vend(1);
    await vi.advanceTimersByTimeAsync(600 + 800 + 100);
    expect(await p).toEqual({ result: 'dispensed', pulses: 1 });
  });

  it('a drop after its window closed counts for the next pulse: dropWindowMs must cover the slowest fall', async () => {
    // pulse 200 ms + window 800 ms: it falls 100 ms after the window closed, during pulse 2
    machine({ dropOn: 1, fallMs: 1100 });
    const d = await open();
    // the second pulse was already given when the first product fell (WIRING.md: tune the window)
    expect(await vend(d)).toMatchObject({ result: 'dispensed', pulses: 2 });
    expect(pulses).toHaveLength(2);
  });

  it('sensor stuck on (beam blocked before the vend): vend_failed, motor never energised, one fault', async () => {
    machine({ dropOn: 1 });
    twin.drive(SENSOR, 1);
    const d = await open();
    expect(faults.active()).toEqual([expect.objectContaining({ device: 'drop sensor (GPIO16)', kind: 'blocked' })]);
    const r = await vend(d);
    expect(r).toEqual({ result: 'vend_failed', pulses: 0, detail: expect.stringMatching(/drop sensor blocked before the first pulse/) });
    expect(pulses).toEqual([]);
    expect(twin.writesTo(BASE + 5).every((w) => w.value === 1)).toBe(true);
    // a second attempt: same answer, still one report
    expect(await vend(d)).toMatchObject({ result: 'vend_failed', pulses: 0 });
    expect(faults.recent(100)).toHaveLength(1);
    expect(d.describe()).toMatchObject({ status: 'fault', lines: expect.arrayContaining([expect.objectContaining({ function: 'drop sensor', state: 'beam interrupted' })]) });
    // cleaned: the fault clears and vending works again
    twin.drive(SENSOR, 0);
    await vi.advanceTimersByTimeAsync(20); // the twin delivers interrupts 5-20 ms late
    expect(faults.active()).toEqual([]);
    expect(await vend(d)).toEqual({ result: 'dispensed', pulses: 1 });
  });

  it('a product stuck in the beam after a drop is reported', async () => {
    machine({ dropOn: 1, crossMs: 60_000 });
    const d = await open();
    expect(await vend(d)).toEqual({ result: 'dispensed', pulses: 1 });
    await vi.advanceTimersByTimeAsync(3000);
    expect(faults.active()).toEqual([expect.objectContaining({ kind: 'blocked', message: expect.stringMatching(/still interrupted 3000 ms after a drop/) })]);
  });

  it('motor feedback: a cam switch that never moves is a jam (one pulse, never again); one that moves is fine', async () => {
    const cfg = { feedback: { pins: { 1: 12, 2: 13 }, activeLow: true, pull: 'up' as const } };
    machine({ feedbackPin: 12, turns: false });
    const jammed = await open(cfg);
    expect(await vend(jammed)).toMatchObject({ result: 'jammed', pulses: 1 });
    expect(pulses).toHaveLength(1);
    await backend.close();
    // a fresh machine whose motor turns
    const d2 = tempDir('qrk-disp2-');
    const root = writeSysfsTree(d2.dir, PI_TREES['Pi 5 (6.6)']!.chips);
    twin = OnoffTwin.fromSysfs(root);
    backend = OnoffBackend.open({ sysfsRoot: root, factory: twin.factory, exitHook: false });
    twin.drive(SENSOR, 0);
    pulses = [];
    machine({ feedbackPin: 12, dropOn: 1 });
    const ok = await open(cfg);
    expect(await vend(ok)).toEqual({ result: 'dispensed', pulses: 1 });
    d2.cleanup();
  });

  it('a slot without a motor pin is an error naming the key', async () => {
    const d = await open();
    await expect(d.vend(9)).rejects.toThrow(/slot 9 has no motor output: add it to hardware\.dispenser\.motors\.pins/);
    expect(twin.level(BASE + 5)).toBe(1);
  });

  it('outputs start safe; safe() stops a pulse at once', async () => {
    machine({});
    const d = await open();
    expect(twin.level(BASE + 5)).toBe(1);
    expect(twin.level(BASE + 6)).toBe(1);
    void d.vend(2);
    await vi.advanceTimersByTimeAsync(50);
    expect(twin.level(BASE + 6)).toBe(0);
    d.safe();
    expect(twin.level(BASE + 6)).toBe(1);
    await vi.advanceTimersByTimeAsync(5000);
  });
});

describe('PulseDispenser with a sensor that can tell the beam was already blocked', () => {
  function sensor(blocked: boolean[]): DropSensor {
    let i = 0;
    return {
      watch: (ms) => {
        const b = blocked[i++] ?? false;
        return { seen: new Promise((r) => setTimeout(() => r(false), ms)), cancel: () => {}, blockedAtStart: b, pulseEnded: () => {} };
      },
    };
  }
  const motor = (): Motor & { n: number } => {
    const m = { n: 0, pulse: async () => (m.n++, 'ok' as const), stop: () => {} };
    return m;
  };

  it('blocked before the first pulse: vend_failed with 0 pulses, motor untouched', async () => {
    const m = motor();
    const d = new PulseDispenser(m, sensor([true]), { pulseMs: 10, dropWindowMs: 20, maxPulses: 2 });
    expect(await d.vend(1)).toMatchObject({ result: 'vend_failed', pulses: 0 });
    expect(m.n).toBe(0);
  });

  it('blocked before a retry: the last pulse dropped it late — dispensed, no second product', async () => {
    const m = motor();
    const d = new PulseDispenser(m, sensor([false, true]), { pulseMs: 10, dropWindowMs: 20, maxPulses: 3 });
    const p = d.vend(1);
    await vi.advanceTimersByTimeAsync(100);
    expect(await p).toEqual({ result: 'dispensed', pulses: 1, detail: 'product seen in the beam after the window closed' });
    expect(m.n).toBe(1);
  });
});
