import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { FaultLog } from '../../src/devices/faults.js';
import { GpioButtons, type GpioButtonsConfig } from '../../src/devices/gpio-buttons.js';
import { GpioDispenser } from '../../src/devices/gpio-dispenser.js';
import type { GpioOutput } from '../../src/devices/gpio/types.js';
import { LibgpiodBackend } from '../../src/devices/gpio/libgpiod-backend.js';
import { selectGpioBackend } from '../../src/devices/gpio/select.js';
import { waitFor } from '../helpers/wait.js';
import { bouncing, lineConsumer, OutsideWorld, SimBoard } from './helpers/gpio-sim.js';

// The libgpiod backend, unchanged, driving Debian's gpiod tools (gpiofind, gpioget, gpiomon,
// gpioset) against real /dev/gpiochipN devices whose lines are named like a Raspberry Pi's.
//
// A line nobody holds reads its pull in gpio-sim, while a Raspberry Pi keeps driving the last
// value after the tool exits. The motor lines are therefore pulled up by the world, as an
// active-low relay board's inputs are (their opto LED to VCC): "released" reads "off", and what
// the lab measures as a pulse is the time a gpioset actively drives the relay on. The first test
// uses a pull-down to prove the holder itself drives the safe level.

const PINS = { buttons: [17, 27], motor: 5, motor2: 6, sensor: 16 };
const BUTTONS: GpioButtonsConfig = { pins: { 1: 17, 2: 27 }, activeLow: true, pull: 'up', debounceMs: 50, holdToCancelMs: 0, stuckMs: 0 };

describe.each(['Pi 3', 'Pi 4', 'Pi 5'])('libgpiod on a %s chip set', (model) => {
  let board: SimBoard;
  let backend: LibgpiodBackend;
  let faults: FaultLog;
  let world: OutsideWorld;
  let motor: GpioOutput;

  beforeAll(async () => {
    board = SimBoard.create(model);
    world = new OutsideWorld(() => board);
    faults = new FaultLog();
    const b = await selectGpioBackend({ backend: 'libgpiod', pins: [...PINS.buttons, PINS.motor, PINS.motor2, PINS.sensor], faults });
    expect(b).toBeInstanceOf(LibgpiodBackend);
    backend = b as LibgpiodBackend;
  });

  afterAll(async () => {
    await backend?.close();
    board?.destroy();
    await world?.close();
  });

  it('finds every line by name on the header chip', async () => {
    board.pull(PINS.motor, 'pull-down');
    motor = await backend.output({ bcm: PINS.motor, safeLevel: 1, maxPulseMs: 400, role: 'slot 1 motor' });
    expect(motor.where).toBe(`${board.header.chipName} ${PINS.motor}`);
    // output() resolves once the holder stayed up 150 ms; it holds the line a moment later
    await waitFor('the gpioset holder to drive the safe level', () => board.value(PINS.motor) === 1, 30_000);
    board.pull(PINS.motor, 'pull-up');
    board.pull(PINS.motor2, 'pull-up');
    // another controller registered first: gpiochip0 is not the header
    expect(board.chips[0]!.chipName).not.toBe(board.header.chipName);
  });

  it('a press with a bouncing contact is one selection (the pull-up set by the tool)', async () => {
    const buttons = await GpioButtons.open(backend, BUTTONS);
    // gpiomon asked for the pull-up: the released button reads 1 without anyone else pulling
    expect(board.value(17)).toBe(1);
    const presses: number[] = [];
    let pressed: (slot: number) => void = () => {};
    buttons.onPress((slot) => {
      presses.push(slot);
      pressed(slot);
    });
    buttons.start();
    const next = () => new Promise<number>((r) => (pressed = r));
    // open() returns once gpiomon is spawned; an edge before it holds the line is nobody's
    const watching = () => waitFor('gpiomon to hold the button lines', () => lineConsumer(board, 17) === 'gpiomon' && lineConsumer(board, 27) === 'gpiomon', 30_000);
    try {
      await watching();
      let p = next();
      await world.run(bouncing(17, 'pull-down'));
      const pressGap = world.lastEdgeGapMs;
      expect(await p).toBe(1);
      await world.run(bouncing(17, 'pull-up'));
      const releaseGap = world.lastEdgeGapMs;
      p = next();
      await world.run([{ bcm: 27, pull: 'pull-down' }]);
      expect(await p).toBe(2);
      await world.run([{ bcm: 27, pull: 'pull-up' }]);
      // the bounces were 1 ms apart as written; under load the world's thread can be late, and a
      // gap as long as the debounce (50 ms) is a real second press, which the driver must count:
      // then the bounce this test is about did not happen, and only the order of presses is checked
      const why = `longest gap between the world's bounces: ${pressGap.toFixed(1)} ms pressing, ${releaseGap.toFixed(1)} ms releasing`;
      if (Math.max(pressGap, releaseGap) < 50) expect(presses, why).toEqual([1, 2]);
      else expect(presses.filter((x, i) => i === 0 || x !== presses[i - 1]), why).toEqual([1, 2]);

      // the tool killed mid-run: reported, restarted, and the button works again
      const before = backend.describe().processes!.find((p) => p.role === 'slot 1 button')!;
      expect(before.pid).toBeGreaterThan(0);
      process.kill(before.pid!, 'SIGKILL');
      const after = await waitFor('a new gpiomon for slot 1', () => {
        const now = backend.describe().processes!.find((p) => p.role === 'slot 1 button')!;
        return now.restarts === 1 && now.pid !== undefined && now.pid !== before.pid ? now : undefined;
      });
      expect(after.restarts).toBe(1);
      expect(faults.recent().some((f) => f.kind === 'process_died' && f.device.includes('GPIO17'))).toBe(true);
      await watching();
      p = next();
      await world.run(bouncing(17, 'pull-down'));
      expect(await p).toBe(1);
      await world.run([{ bcm: 17, pull: 'pull-up' }]);
    } finally {
      buttons.close();
    }
  });

  it('pulses a motor for its configured width (timed by gpioset), clamped to the maximum', async () => {
    let seen = await world.pulse(PINS.motor, 1);
    await motor.pulse(150);
    const w1 = await seen.width;
    // sampled from a worker thread that competes with the tools for the one CPU: the start can be
    // seen late, so only half the width is a firm lower bound here
    expect(w1).toBeGreaterThanOrEqual(75);
    expect(w1).toBeLessThan(400);
    seen = await world.pulse(PINS.motor, 1);
    await motor.pulse(5000);
    const w2 = await seen.width;
    expect(w2).toBeGreaterThanOrEqual(200);
    expect(w2).toBeLessThan(1500);
    expect(board.value(PINS.motor)).toBe(1);
  });

  it('a holder gpioset killed is restarted and drives the safe level again', async () => {
    board.pull(PINS.motor, 'pull-down'); // no relay board pull: only the holder keeps it off
    const before = backend.describe().processes!.find((p) => p.role === 'slot 1 motor')!;
    process.kill(before.pid!, 'SIGKILL');
    await waitFor('a new gpioset holder for the motor', () => {
      const now = backend.describe().processes!.find((p) => p.role === 'slot 1 motor')!;
      return now.restarts === 1 && now.pid !== undefined && now.pid !== before.pid;
    });
    await waitFor('the restarted holder to drive the safe level', () => board.value(PINS.motor) === 1, 30_000);
    board.pull(PINS.motor, 'pull-up');
    const seen = await world.pulse(PINS.motor, 1);
    await motor.pulse(100);
    expect(await seen.width).toBeGreaterThanOrEqual(50);
  });

  it('sees a 2 ms drop-sensor pulse during a motor pulse: one pulse, dispensed', async () => {
    const pulses: number[] = [];
    const dispenser = await GpioDispenser.open(
      backend,
      {
        pulseMs: 300,
        maxPulseMs: 1000,
        dropWindowMs: 3000,
        maxPulses: 1,
        motors: { activeLow: true, pins: { 2: PINS.motor2 } },
        sensor: { pin: PINS.sensor, activeLow: false, pull: 'down', clearMs: 0 },
      },
      { onPulse: (_slot, n) => pulses.push(n) },
    );
    try {
      const machine = await world.pulse(PINS.motor2, 1, [{ waitMs: 50 }, { bcm: PINS.sensor, pull: 'pull-up' }, { waitMs: 2 }, { bcm: PINS.sensor, pull: 'pull-down' }]);
      const outcome = await dispenser.vend(2);
      await machine.width;
      expect(outcome).toMatchObject({ result: 'dispensed', pulses: 1 });
      expect(pulses).toEqual([1]);
      expect(board.value(PINS.motor2)).toBe(1);
    } finally {
      dispenser.close();
    }
  });
});
