import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KioskSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import { Unit } from './helpers/cgroup.js';
import { lineConsumer, SimBoard } from './helpers/gpio-sim.js';
import { GpioTrace } from './helpers/gpio-trace.js';

// A crash mid-pulse on real kernel GPIO, and `qrkiosk safe-outputs` (systemd's ExecStopPost=
// step) afterwards, with each GPIO backend.
//
// onoff: the agent as shipped SIGKILLs itself right after switching slot 1's motor relay on
// (QRKIOSK_CRASH_AFTER=pulse). The kernel keeps an exported sysfs output driven after its process
// died, exactly as on a Pi: the relay stays ON until safe-outputs drives it off.
//
// libgpiod: the agent runs in its own cgroup, the way systemd runs the unit, and the whole unit
// (agent, pulse chain, holders) is SIGKILLed through cgroup.kill while the motor is on: a watchdog
// abort or an out-of-memory kill. The pulse chain dies with it, so nothing finishes the pulse. A
// Raspberry Pi keeps a released line at the last level it was driven to; gpio-sim returns it to its
// pull instead, so the level a Pi would show is read from the kernel's gpio_value tracepoint (every
// level gpiolib drove, whoever drove it): ON after the kill, OFF after safe-outputs.

const ROOT = resolve(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'qrkiosk.js');
let sys: KioskSystem | undefined;
let board: SimBoard | undefined;
let unit: Unit | undefined;
let trace: GpioTrace | undefined;
afterEach(async () => {
  await unit?.remove();
  unit = undefined;
  trace?.stop();
  trace = undefined;
  await sys?.close();
  sys = undefined;
  board?.destroy();
  board = undefined;
});

function run(args: string[], env: NodeJS.ProcessEnv = {}): Promise<{ code: number | null; out: string }> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...process.env, QRKIOSK_RUN_SOURCES: '1', ...env }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.once('close', (code) => res({ code, out }));
  });
}

/** slot 1's motor on BCM 5, slot 2's on BCM 6, active-low relays (safe level 1) */
function writeConfig(s: KioskSystem, backend: 'onoff' | 'libgpiod', pulseMs: number): string {
  const config = join(s.dir, 'agent.yaml');
  writeFileSync(
    config,
    `kioskId: kiosk-e2e
relay: { url: 'ws://127.0.0.1:${new URL(s.relay.url).port}/v1/kiosk', token: ${s.token} }
journal: { path: ${join(s.dir, 'agent.sqlite')} }
control: { socket: ${s.socket} }
slots:
  - { slot: 1, sku: COLA, stock: 3 }
  - { slot: 2, sku: AGUA, stock: 3 }
hardware:
  gpio: { backend: ${backend} }
  buttons: { driver: none }
  display: { driver: log }
  dispenser:
    driver: gpio
    pulseMs: ${pulseMs}
    maxPulseMs: ${pulseMs}
    dropWindowMs: ${pulseMs + 500}
    maxPulses: 1
    motors: { activeLow: true, pins: { 1: 5, 2: 6 } }
    sensor: { pin: 16, activeLow: false, pull: down, clearMs: 0 }
`,
  );
  return config;
}

async function agentUp(s: KioskSystem, agent: { exitCode: number | null; signalCode: NodeJS.Signals | null }): Promise<void> {
  await waitFor(
    'the agent to start on the lab chips',
    async () => {
      if (agent.exitCode !== null || agent.signalCode !== null) throw new Error('agent exited');
      return (await s.status().catch(() => undefined)) !== undefined;
    },
    // the agent's first start in a fresh VM transforms every source file on one emulated CPU
    360_000,
    200,
  );
}

describe('safe state after SIGKILL mid-pulse (Pi 4 chip set)', () => {
  it('onoff: the relay the killed agent left ON is OFF after `qrkiosk safe-outputs`', { timeout: 600_000 }, async () => {
    board = SimBoard.create('Pi 4');
    const b = board;
    sys = await KioskSystem.start({ generation: 'v2' });
    const s = sys;
    const config = writeConfig(s, 'onoff', 3000);
    let output = '';
    const agent = spawn(process.execPath, [CLI, 'agent', '--config', config], {
      cwd: ROOT,
      env: { ...process.env, QRKIOSK_RUN_SOURCES: '1', QRKIOSK_CRASH_AFTER: 'pulse' },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    agent.stdout.on('data', (d: Buffer) => (output += d.toString()));
    agent.stderr.on('data', (d: Buffer) => (output += d.toString()));
    const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => agent.once('exit', (code, signal) => r({ code, signal })));
    s.agent = agent;
    try {
      await agentUp(s, agent);
      expect([b.value(5), b.value(6)]).toEqual([1, 1]); // relays held off
      const dispense = run(['test', 'dispense', '1', '--socket', s.socket]);
      expect(await exited).toEqual({ code: null, signal: 'SIGKILL' });
      await dispense;
      // what the crash left: the kernel still drives slot 1's relay ON, nobody will turn it off
      expect(b.value(5)).toBe(0);

      const r = await run(['safe-outputs', '--config', config]);
      expect(r.code, r.out).toBe(0);
      expect([b.value(5), b.value(6)]).toEqual([1, 1]);
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- agent output ---\n${output.slice(-3000)}`);
    }
  });

  it('libgpiod: the whole unit SIGKILLed mid-pulse leaves the relay ON on a Pi; `qrkiosk safe-outputs` drives it OFF', { timeout: 600_000 }, async () => {
    board = SimBoard.create('Pi 4');
    const b = board;
    const motor = b.header.base + 5;
    // the relay board's pull-up (opto LED to VCC): the line reads 0 only while someone drives it ON
    b.pull(5, 'pull-up');
    b.pull(6, 'pull-up');
    sys = await KioskSystem.start({ generation: 'v2' });
    const s = sys;
    // the longest pulse the config allows: the kill lands inside it however slowly the emulated CPU runs
    const config = writeConfig(s, 'libgpiod', 10_000);
    unit = Unit.create('qrkiosk-agent');
    const u = unit;
    let output = '';
    const agent = u.spawn([process.execPath, CLI, 'agent', '--config', config], { cwd: ROOT, env: { ...process.env, QRKIOSK_RUN_SOURCES: '1' } });
    agent.stdout.on('data', (d: Buffer) => (output += d.toString()));
    agent.stderr.on('data', (d: Buffer) => (output += d.toString()));
    s.agent = agent;
    try {
      await agentUp(s, agent);
      await waitFor('the gpioset holders on both motor lines', () => lineConsumer(b, 5) === 'gpioset' && lineConsumer(b, 6) === 'gpioset', 60_000);
      expect([b.value(5), b.value(6)]).toEqual([1, 1]); // relays held off
      trace = GpioTrace.start();
      const t = trace;
      const dispense = run(['test', 'dispense', '1', '--socket', s.socket]);
      // the CLI itself starts slowly on one emulated CPU; it answers only after the pulse, so an
      // answer before the motor turned is a failure to report at once
      await Promise.race([
        waitFor('the pulse to drive slot 1 relay ON', () => b.value(5) === 0, 360_000),
        dispense.then((r) => {
          if (b.value(5) !== 0) throw new Error(`qrkiosk test dispense ended before the motor turned: exit ${r.code}: ${r.out}`);
        }),
      ]);
      expect(u.pids().length).toBeGreaterThan(2); // the agent and its tool processes
      u.kill();
      await waitFor('every process of the unit to be gone', () => !u.populated(), 30_000);
      await dispense;
      // the kill left the line released with ON as the last level driven: a Pi keeps the motor running
      expect(lineConsumer(b, 5)).toBeUndefined();
      expect(t.lastSet(motor)).toBe(0);
      const before = t.setsOf(motor).length;

      const r = await run(['safe-outputs', '--config', config]);
      expect(r.code, r.out).toBe(0);
      expect(r.out).toMatch(/gpioset/);
      // safe-outputs drove OFF (1), and only OFF, on the motor line, and released it: on a Pi it stays OFF
      expect(t.setsOf(motor).slice(before)).toEqual([1]);
      expect(t.lastSet(motor)).toBe(1);
      expect(t.lastSet(b.header.base + 6)).toBe(1);
      expect(lineConsumer(b, 5)).toBeUndefined();
    } catch (err) {
      throw new Error(`${(err as Error).message}\n--- agent output ---\n${output.slice(-3000)}`);
    }
  });
});
