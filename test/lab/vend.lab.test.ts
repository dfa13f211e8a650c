import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KioskSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import { bouncing, OutsideWorld, SimBoard } from './helpers/gpio-sim.js';
import { GpioTrace } from './helpers/gpio-trace.js';

// One whole sale inside the lab: the agent as shipped (bin/qrkiosk.js agent) on a Pi 4 chip set,
// the relay and the Mercado Pago emulator on the VM's loopback. A button pulled on the simulated
// chip -> order -> the customer pays -> the relay releases the vend -> the motor relay line is
// driven on -> the product breaks the beam (2 ms) -> the agent reports it dispensed.

const ROOT = resolve(import.meta.dirname, '..', '..');
let sys: KioskSystem | undefined;
let board: SimBoard | undefined;
let world: OutsideWorld | undefined;
let machineWorld: OutsideWorld | undefined;
afterEach(async () => {
  await machineWorld?.close();
  machineWorld = undefined;
  await sys?.close();
  sys = undefined;
  board?.destroy();
  board = undefined;
  await world?.close();
  world = undefined;
});

describe.each(['onoff', 'libgpiod'] as const)('a whole vend on a Pi 4 chip set, gpio backend %s', (backend) => {
  it('button -> order -> paid -> motor pulsed -> drop seen -> dispensed', { timeout: 900_000 }, async () => {
    board = SimBoard.create('Pi 4');
    const b = board;
    world = new OutsideWorld(() => b); // the customer
    machineWorld = new OutsideWorld(() => b); // the machine, watching the motor on its own thread
    b.pull(17, 'pull-up'); // slot 1 button released (config.txt / the agent's pull-up)
    b.pull(27, 'pull-up');
    b.pull(5, 'pull-up'); // active-low relay board inputs
    b.pull(6, 'pull-up');
    sys = await KioskSystem.start({ generation: 'v2' });
    const s = sys;
    const yaml = `kioskId: kiosk-e2e
relay:
  url: ws://127.0.0.1:${new URL(s.relay.url).port}/v1/kiosk
  token: ${s.token}
  backoff: { baseMs: 50, capMs: 400 }
journal: { path: ${join(s.dir, 'agent.sqlite')} }
control: { socket: ${s.socket} }
payment: { deadlineSeconds: 240 }
locale: es
slots:
  - { slot: 1, sku: COLA, stock: 10 }
  - { slot: 2, sku: AGUA, stock: 10 }
hardware:
  gpio: { backend: ${backend} }
  buttons: { driver: gpio, pins: { 1: 17, 2: 27 }, activeLow: true, pull: up, debounceMs: 30 }
  display: { driver: log }
  dispenser:
    driver: gpio
    pulseMs: 500
    maxPulseMs: 1000
    dropWindowMs: 8000
    maxPulses: 1
    motors: { activeLow: true, pins: { 1: 5, 2: 6 } }
    sensor: { pin: 16, activeLow: false, pull: down, clearMs: 0 }
`;
    writeFileSync(join(s.dir, 'agent.yaml'), yaml);
    let output = '';
    const agent = spawn(process.execPath, [join(ROOT, 'bin', 'qrkiosk.js'), 'agent', '--config', join(s.dir, 'agent.yaml')], {
      cwd: ROOT,
      env: { ...process.env, QRKIOSK_RUN_SOURCES: '1' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent.stdout.on('data', (d: Buffer) => (output += d.toString()));
    agent.stderr.on('data', (d: Buffer) => (output += d.toString()));
    s.agent = agent; // closed (SIGKILL) with the system
    try {
      await waitFor(
        'the agent to start on the lab chips and connect to the relay',
        async () => {
          if (agent.exitCode !== null) throw new Error(`agent exited: ${output.slice(-3000)}`);
          const st = await s.status().catch(() => undefined);
          return st?.relay.online && st.relay.lastWelcomeAt ? st : false;
        },
        420_000, // the first agent start in a fresh VM transforms every source file on one emulated CPU
        200,
      );

      // the machine: the product falls through the beam 100 ms after slot 1's relay closes
      const machine = await machineWorld.pulse(5, 1, [{ waitMs: 100 }, { bcm: 16, pull: 'pull-up' }, { waitMs: 2 }, { bcm: 16, pull: 'pull-down' }], 600_000);

      // the kernel's record of the motor line: the pulse width in kernel time, not as sampled
      const trace = GpioTrace.start();
      // the customer presses slot 1's button (a bouncing contact), and lets go
      await world.run(bouncing(17, 'pull-down'));
      const order = await waitFor('an order for slot 1', async () => (await s.journal(5)).find((o) => o.state === 'awaiting_payment'), 60_000, 200);
      await world.run(bouncing(17, 'pull-up'));

      await s.waitRelayState(order.id, 'pending', 60_000);
      const scan = await s.customerScans();
      await s.sandbox.pay({ checkoutId: scan.checkoutId });

      const done = await s.waitAgentState(order.id, ['dispensed', 'vend_failed'], 120_000);
      const width = await machine.width;
      expect(done.state).toBe('dispensed');
      // sampled by the machine's thread, which shares the CPU: it may see the start late, so
      // only half is a firm bound; the kernel's trace gives the width the relay was really on
      expect(width).toBeGreaterThanOrEqual(250);
      const driven = trace.pulseWidthMs(b.header.base + 5, 0);
      trace.stop();
      expect(driven).toBeGreaterThanOrEqual(500);
      expect(driven).toBeLessThan(5000);
      expect(b.value(5)).toBe(1);
      await s.waitRelayState(order.id, 'vended', 60_000);
      expect(await s.sandbox.refunds()).toHaveLength(0);
      expect(await s.journal(5)).toHaveLength(1); // one press, one order, with its bounces
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- agent output ---\n${output.slice(-4000)}`);
    }
  });
});
