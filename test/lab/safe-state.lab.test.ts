import { spawn } from 'node:child_process';
import { writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { KioskSystem } from '../helpers/system.js';
import { waitFor } from '../helpers/wait.js';
import { SimBoard } from './helpers/gpio-sim.js';

// A crash mid-pulse on real kernel GPIO: the agent as shipped, onoff backend, SIGKILLs itself
// right after switching slot 1's motor relay on (QRKIOSK_CRASH_AFTER=pulse). The kernel keeps an
// exported sysfs output driven after its process died, exactly as on a Pi: the relay stays ON
// until `qrkiosk safe-outputs` (systemd's ExecStopPost= step) drives it off.
//
// Not here: the same for the libgpiod backend. gpio-sim returns a line nobody holds to its pull,
// while a Pi keeps the last driven value, so the lab cannot show what a killed holder leaves.

const ROOT = resolve(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'qrkiosk.js');
let sys: KioskSystem | undefined;
let board: SimBoard | undefined;
afterEach(async () => {
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

describe('safe state after SIGKILL mid-pulse (onoff, Pi 4 chip set)', () => {
  it('the relay the killed agent left ON is OFF after `qrkiosk safe-outputs`', { timeout: 300_000 }, async () => {
    board = SimBoard.create('Pi 4');
    const b = board;
    sys = await KioskSystem.start({ generation: 'v2' });
    const s = sys;
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
  gpio: { backend: onoff }
  buttons: { driver: none }
  display: { driver: log }
  dispenser:
    driver: gpio
    pulseMs: 3000
    maxPulseMs: 5000
    dropWindowMs: 3500
    maxPulses: 1
    motors: { activeLow: true, pins: { 1: 5, 2: 6 } }
    sensor: { pin: 16, activeLow: false, pull: down, clearMs: 0 }
`,
    );
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
      await waitFor(
        'the agent to start on the lab chips',
        async () => {
          if (agent.exitCode !== null || agent.signalCode !== null) throw new Error('agent exited');
          return (await s.status().catch(() => undefined)) !== undefined;
        },
        180_000,
        200,
      );
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
});
