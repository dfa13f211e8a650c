import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { GpioButtons } from '../../src/devices/gpio-buttons.js';
import { GpioDispenser } from '../../src/devices/gpio-dispenser.js';
import { OnoffBackend } from '../../src/devices/gpio/onoff-backend.js';
import { bouncing, OutsideWorld, SimBoard } from './helpers/gpio-sim.js';

// The onoff (sysfs + epoll) backend, unchanged, on real kernel GPIO chips labelled like each
// board's. The kernel picks the bases; the backend must find the header chip by its label.

describe.each(['Pi 3', 'Pi 4', 'Pi 5'])('onoff on a %s chip set', (model) => {
  let board: SimBoard;
  let backend: OnoffBackend;
  const world = new OutsideWorld(() => board);

  beforeAll(() => {
    board = SimBoard.create(model);
    // sysfs cannot set pulls: on a Pi config.txt does (gpio=17,27=ip,pu); here the world pulls up
    board.pull(17, 'pull-up');
    board.pull(27, 'pull-up');
    backend = OnoffBackend.open({ exitHook: false });
  });

  afterAll(async () => {
    await backend?.close();
    board?.destroy();
    await world.close();
  });

  it('finds the header chip by label, not by position', () => {
    expect(backend.chip.label).toBe(board.header.label);
    expect(backend.chip.base).toBe(board.header.base);
    expect(backend.chip.ngpio).toBe(board.header.lines);
    // another controller registered first: "the first chip" would have been wrong
    expect(board.chips[0]!.label).not.toBe(board.header.label);
  });

  it('a press with a bouncing contact is one selection', async () => {
    const buttons = await GpioButtons.open(backend, {
      pins: { 1: 17, 2: 27 },
      activeLow: true,
      pull: 'up',
      debounceMs: 50,
      holdToCancelMs: 0,
      stuckMs: 0,
    });
    const presses: number[] = [];
    let pressed: (slot: number) => void = () => {};
    buttons.onPress((slot) => {
      presses.push(slot);
      pressed(slot);
    });
    buttons.start();
    const next = () => new Promise<number>((r) => (pressed = r));
    try {
      let p = next();
      await world.run(bouncing(17, 'pull-down'));
      const pressGap = world.lastEdgeGapMs;
      expect(await p).toBe(1);
      await world.run(bouncing(17, 'pull-up'));
      const releaseGap = world.lastEdgeGapMs;
      // a second, clean press on another button: any extra selection from slot 1's bounces
      // would have been committed (same debounce) before this one
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
    } finally {
      buttons.close();
    }
  });

  it('drives a motor output safe at open and pulses it for its configured width, clamped to the maximum', async () => {
    const out = await backend.output({ bcm: 5, safeLevel: 1, maxPulseMs: 400, role: 'slot 1 motor' });
    expect(board.value(5)).toBe(1);
    let seen = await world.pulse(5, 1);
    await out.pulse(150);
    const w1 = await seen.width;
    // sampled by a worker thread that shares the one emulated CPU: the start may be seen late, so
    // half the width is the firm lower bound; the clamp below is the sharp check
    expect(w1).toBeGreaterThanOrEqual(75);
    expect(w1).toBeLessThan(400);
    seen = await world.pulse(5, 1);
    await out.pulse(5000);
    const w2 = await seen.width;
    expect(w2).toBeGreaterThanOrEqual(200);
    expect(w2).toBeLessThan(1500);
    expect(board.value(5)).toBe(1);
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
        motors: { activeLow: true, pins: { 1: 6 } },
        sensor: { pin: 16, activeLow: false, pull: 'none', clearMs: 0 },
      },
      { onPulse: (_slot, n) => pulses.push(n) },
    );
    try {
      // the machine: 50 ms after the relay closes, the product breaks the beam for 2 ms
      const machine = await world.pulse(6, 1, [{ waitMs: 50 }, { bcm: 16, pull: 'pull-up' }, { waitMs: 2 }, { bcm: 16, pull: 'pull-down' }]);
      const outcome = await dispenser.vend(1);
      await machine.width;
      expect(outcome).toMatchObject({ result: 'dispensed', pulses: 1 });
      expect(pulses).toEqual([1]);
      expect(board.value(6)).toBe(1);
    } finally {
      dispenser.close();
    }
  });
});
