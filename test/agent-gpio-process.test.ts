import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../src/agent/control.js';
import type { HardwareReport } from '../src/agent/hardware.js';
import { testMain } from '../src/cli/hardware-commands.js';
import { FakeRelay, TOKEN, tempDir } from './agent-helpers.js';
import { FakeGpioChip } from './helpers/fake-gpiochip.js';
import { waitFor } from './helpers/wait.js';

// The whole agent as systemd runs it — `qrkiosk agent --config`, a separate process — on the
// gpio-spiral-4 profile with `gpio.backend: auto`, meeting the libgpiod stand-ins first on its
// PATH. Proves the start (auto picks libgpiod, every motor held off), a real technician dispense,
// and that SIGTERM leaves every motor output off and no gpiomon/gpioset behind.

const ROOT = resolve(import.meta.dirname, '..');
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

for (const version of ['1.6.3', '2.1.3']) {
  describe(`agent process on libgpiod v${version} stand-ins`, { timeout: 60_000 }, () => {
    it('auto picks libgpiod, holds the motors off, dispenses for the technician, and SIGTERM leaves everything off', async () => {
      const chip = await FakeGpioChip.start({ version });
      cleanups.push(() => chip.close());
      const relay = await FakeRelay.start();
      cleanups.push(() => relay.close());
      const { dir, cleanup } = tempDir('qrk-agp-');
      cleanups.push(cleanup);
      // idle machine: buttons released (the pull-up the agent asks for), beam clear
      chip.drive(16, 0);
      // slot 1 drops its product through the beam while its relay is on. The drop window is wide
      // (4 s): it runs from arming, and on a loaded machine the stand-in tools (node processes)
      // take their time to start the pulse and to report the edge; 600 ms failed under load.
      chip.on('output', (c: { offset: number; value: number }) => {
        if (c.offset === 5 && c.value === 0) {
          setTimeout(() => chip.drive(16, 1), 20);
          setTimeout(() => chip.drive(16, 0), 30);
        }
      });
      const sock = join(dir, 'agent.sock');
      writeFileSync(
        join(dir, 'agent.yaml'),
        `kioskId: kiosk-gpio
relay: { url: '${relay.url}', token: ${TOKEN}, backoff: { baseMs: 50, capMs: 400 } }
journal: { path: agent.sqlite }
control: { socket: agent.sock }
slots:
  - { slot: 1, sku: COLA, stock: 3 }
  - { slot: 2, sku: CHIPS, stock: 3 }
hardware:
  profile: gpio-spiral-4
  dispenser: { pulseMs: 100, dropWindowMs: 4000 }
  display: { driver: log }
`,
      );
      let output = '';
      const agent: ChildProcess = spawn(process.execPath, [join(ROOT, 'bin', 'qrkiosk.js'), 'agent', '--config', join(dir, 'agent.yaml')], {
        cwd: ROOT,
        env: { ...chip.env(), QRKIOSK_LOG_LEVEL: 'debug' },
        stdio: ['ignore', 'pipe', 'pipe'],
      });
      agent.stdout!.on('data', (d: Buffer) => (output += d.toString()));
      agent.stderr!.on('data', (d: Buffer) => (output += d.toString()));
      const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => agent.once('exit', (code, signal) => r({ code, signal })));
      cleanups.push(async () => {
        if (agent.exitCode === null && agent.signalCode === null) {
          agent.kill('SIGKILL');
          await exited;
        }
      });

      const report = await waitFor(
        'the agent to answer on its control socket',
        async () => {
          if (agent.exitCode !== null) throw new Error(`agent exited: ${output.slice(-3000)}`);
          if (!existsSync(sock)) return false;
          return (await controlRequest(sock, 'hardware').catch(() => undefined)) as HardwareReport | undefined;
        },
        30_000,
      );
      expect(report.gpio).toMatchObject({ backend: 'libgpiod', detail: `libgpiod tools v${version}, lines by name on gpiochip0`, reason: expect.stringMatching(/^auto: /) });
      expect(output).toMatch(new RegExp(`gpio backend: libgpiod v${version.replace(/\./g, '\\.')}`));
      // every motor relay (active low) held high by a gpioset; every button monitored with its pull-up
      for (const motor of [5, 6, 13, 26]) {
        // at its safe level once the agent answers (output() promises it); the holder process
        // that keeps it there is awaited: it may still be starting on a busy machine
        expect(chip.level(motor)).toBe(1);
        await chip.until(`the holder of GPIO${motor}`, () => chip.holder(motor)?.mode === 'out' || undefined);
      }
      for (const button of [17, 27, 22, 23, 24]) {
        await chip.monitored(button);
        expect(chip.bias(button)).toBe('pull-up');
      }
      const pids = report.gpio!.processes!.map((p) => p.pid);
      expect(pids).toHaveLength(10); // 5 buttons + drop sensor + 4 motors
      expect(pids.every(alive)).toBe(true);

      const out: string[] = [];
      expect(await testMain(['dispense', '1', '--socket', sock], { out: (t) => out.push(t), err: (t) => out.push(t) })).toBe(0);
      expect(out.join('\n')).toMatch(/^slot 1: dispensed after 1 pulse/);
      expect(chip.outputsOf(5).map((c) => c.value)).toEqual([1, 0, 1]);
      expect(chip.busy).toEqual([]);
      // slot 2 is empty: it must pulse and see nothing. The agent hears the product leave the beam
      // through gpiomon, late on a busy machine: wait until it reports the beam clear, or the
      // dispense would rightly refuse to start on a blocked sensor (also exit 1, proving nothing).
      await waitFor(
        'the agent to see the drop sensor clear again',
        async () => {
          const r = (await controlRequest(sock, 'hardware')) as HardwareReport;
          const sensor = r.devices.flatMap((d) => d.lines ?? []).find((l) => l.function === 'drop sensor');
          return sensor?.state === 'beam clear' || undefined;
        },
        30_000,
      );
      const failed: string[] = [];
      expect(await testMain(['dispense', '2', '--socket', sock], { out: (t) => failed.push(t), err: (t) => failed.push(t) })).toBe(1);
      expect(failed.join('\n')).toMatch(/^slot 2: VEND_FAILED after \d+ pulses?: no drop seen/);
      expect(chip.outputsOf(6).filter((c) => c.value === 0).length).toBeGreaterThan(0);

      agent.kill('SIGTERM');
      expect(await exited).toEqual({ code: 0, signal: null });
      expect(output).toContain('agent stopped');
      for (const motor of [5, 6, 13, 26]) {
        expect(chip.level(motor)).toBe(1);
        expect(chip.holder(motor)).toBeUndefined();
      }
      for (const button of [17, 27, 22, 23, 24, 16]) expect(chip.holder(button)).toBeUndefined();
      expect(pids.some(alive)).toBe(false);
    });
  });
}
