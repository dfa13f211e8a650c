import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { testMain } from '../src/cli/hardware-commands.js';
import type { Io } from '../src/cli/control-client.js';
import { controlRequest } from '../src/agent/control.js';
import { FakeRelay, TOKEN, tempDir } from './agent-helpers.js';
import { FakeGpioChip } from './helpers/fake-gpiochip.js';
import { PI_TREES, writeSysfsTree } from './helpers/sysfs-trees.js';
import { waitFor } from './helpers/wait.js';

// A crash mid-pulse must not leave a motor running. The agent is SIGKILLed while a motor relay is
// on (no exit handler runs), then `qrkiosk safe-outputs` — what systemd runs after every end of the
// agent (ExecStopPost=) and at boot — runs as its own process with the same config and must leave
// every motor output at its safe level. Both backends: onoff on a fake sysfs tree (the twin keeps
// the gpioN files as the kernel shows them), and the libgpiod stand-in tools on a fake chip that,
// like a Raspberry Pi kernel, keeps a released line at its last level.

const ROOT = resolve(import.meta.dirname, '..');
const CLI = join(ROOT, 'bin', 'qrkiosk.js');
const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});
const quiet: Io = { out: () => {}, err: () => {} };

interface Run {
  code: number | null;
  signal: NodeJS.Signals | null;
  out: string;
}

function run(args: string[], env: NodeJS.ProcessEnv = process.env): Promise<Run> {
  return new Promise((res) => {
    const p = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env: { ...env, QRKIOSK_RUN_SOURCES: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
    let out = '';
    p.stdout.on('data', (d: Buffer) => (out += d.toString()));
    p.stderr.on('data', (d: Buffer) => (out += d.toString()));
    p.once('close', (code, signal) => res({ code, signal, out }));
  });
}

function start(cmd: string[], env: NodeJS.ProcessEnv): { proc: ChildProcess; output: () => string; exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }> } {
  let output = '';
  const proc = spawn(process.execPath, cmd, { cwd: ROOT, env: { ...env, QRKIOSK_RUN_SOURCES: '1' }, stdio: ['ignore', 'pipe', 'pipe'] });
  proc.stdout!.on('data', (d: Buffer) => (output += d.toString()));
  proc.stderr!.on('data', (d: Buffer) => (output += d.toString()));
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((r) => proc.once('exit', (code, signal) => r({ code, signal })));
  cleanups.push(async () => {
    if (proc.exitCode === null && proc.signalCode === null) {
      proc.kill('SIGKILL');
      await exited;
    }
  });
  return { proc, output: () => output, exited };
}

/** every process below pid (detached process groups included), from /proc */
function descendants(pid: number): number[] {
  const parent = new Map<number, number>();
  for (const d of readdirSync('/proc')) {
    if (!/^\d+$/.test(d)) continue;
    try {
      const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
      parent.set(Number(d), Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]));
    } catch {
      /* gone */
    }
  }
  const out: number[] = [];
  const walk = (p: number) => {
    for (const [child, pp] of parent) {
      if (pp === p) {
        out.push(child);
        walk(child);
      }
    }
  };
  walk(pid);
  return out;
}

async function waitForAgent(sock: string, agent: { proc: ChildProcess; output: () => string }): Promise<void> {
  await waitFor(
    'the agent to answer on its control socket',
    async () => {
      if (agent.proc.exitCode !== null || agent.proc.signalCode !== null) throw new Error(`agent exited: ${agent.output().slice(-3000)}`);
      return existsSync(sock) && (await controlRequest(sock, 'status').then(() => true, () => false));
    },
    30_000,
  );
}

describe('safe outputs after a SIGKILL mid-pulse', { timeout: 90_000 }, () => {
  it('onoff on a fake sysfs tree: the relay left ON by the killed agent is OFF after `qrkiosk safe-outputs`', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const { dir, cleanup } = tempDir('qrk-safe-');
    cleanups.push(cleanup);
    const tree = PI_TREES['Pi 4 (6.6)']!;
    const sysfs = writeSysfsTree(dir, tree.chips);
    const base = tree.chips[0]!.base;
    const sock = join(dir, 'agent.sock');
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      `kioskId: kiosk-safe
relay: { url: '${relay.url}', token: ${TOKEN} }
journal: { path: agent.sqlite }
control: { socket: agent.sock }
slots:
  - { slot: 1, sku: COLA, stock: 3 }
  - { slot: 2, sku: CHIPS, stock: 3 }
hardware:
  gpio: { backend: onoff, sysfsRoot: '${sysfs}' }
  buttons: { driver: none }
  dispenser:
    driver: gpio
    pulseMs: 1500
    maxPulseMs: 2000
    dropWindowMs: 1600
    maxPulses: 1
    motors: { activeLow: true, pins: { 1: 5, 2: 6 } }
    sensor: { pin: 16 }
  display: { driver: log }
`,
    );
    // the agent SIGKILLs itself right after the motor of slot 1 was switched on (crash-hook.ts)
    const agent = start(['--import', 'tsx', join(ROOT, 'test/fixtures/agent-on-fake-sysfs.ts'), '--config', config], { ...process.env, QRKIOSK_CRASH_AFTER: 'pulse' });
    await waitForAgent(sock, agent);
    const value = (bcm: number) => readFileSync(join(sysfs, `gpio${base + bcm}`, 'value'), 'utf8').trim();
    expect([value(5), value(6)]).toEqual(['1', '1']); // active-low relays held off
    const dispense = testMain(['dispense', '1', '--socket', sock], quiet);
    expect(await agent.exited).toEqual({ code: null, signal: 'SIGKILL' });
    expect(await dispense).not.toBe(0); // the agent went away mid-answer
    // what the crash left: slot 1's relay ON, and nothing in the agent will ever turn it off
    expect(value(5)).toBe('0');
    expect(readFileSync(join(sysfs, `gpio${base + 5}`, 'direction'), 'utf8').trim()).toBe('out');

    const r = await run(['safe-outputs', '--config', config]);
    expect(r.out).toContain(`GPIO5 (slot 1 motor): safe, level 1 (sysfs gpio${base + 5} value=1)`);
    expect(r.out).toContain(`GPIO6 (slot 2 motor): safe, level 1 (sysfs gpio${base + 6} value=1)`);
    expect(r.code).toBe(0);
    expect([value(5), value(6)]).toEqual(['1', '1']);
  });

  for (const version of ['1.6.3', '2.1.3']) {
    it(`libgpiod v${version} stand-ins: the unit's processes killed mid-pulse leave the line ON; \`qrkiosk safe-outputs\` turns it OFF`, async () => {
      const chip = await FakeGpioChip.start({ version });
      cleanups.push(() => chip.close());
      const relay = await FakeRelay.start();
      cleanups.push(() => relay.close());
      const { dir, cleanup } = tempDir('qrk-safe-');
      cleanups.push(cleanup);
      chip.drive(16, 0); // beam clear
      const sock = join(dir, 'agent.sock');
      const config = join(dir, 'agent.yaml');
      writeFileSync(
        config,
        `kioskId: kiosk-safe
relay: { url: '${relay.url}', token: ${TOKEN} }
journal: { path: agent.sqlite }
control: { socket: agent.sock }
slots:
  - { slot: 1, sku: COLA, stock: 3 }
  - { slot: 2, sku: CHIPS, stock: 3 }
hardware:
  profile: gpio-spiral-4
  gpio: { sysfsRoot: '${join(dir, 'no-sysfs')}' }
  dispenser: { pulseMs: 1500, dropWindowMs: 1600, maxPulses: 1 }
  display: { driver: log }
`,
      );
      const agent = start([CLI, 'agent', '--config', config], chip.env());
      await waitForAgent(sock, agent);
      for (const m of [5, 6, 13, 26]) expect(chip.level(m)).toBe(1);
      // by hand while the agent runs: refused (it holds the outputs and may be pulsing for a customer)
      const refused = await run(['safe-outputs', '--config', config], chip.env());
      expect(refused.out).toMatch(/an agent is running \(it answers on .*agent\.sock\).*Stop it first/);
      expect(refused.code).toBe(1);
      expect(chip.busy).toEqual([]);
      const dispense = testMain(['dispense', '1', '--socket', sock], quiet);
      await chip.until('slot 1 relay on', () => chip.level(5) === 0);
      // systemd's end of the unit: every process of its cgroup SIGKILLed, the detached pulse
      // chain included (out-of-memory kill, watchdog abort, KillMode=mixed after a crash)
      const all = [agent.proc.pid!, ...descendants(agent.proc.pid!)];
      expect(all.length).toBeGreaterThan(5); // the agent, gpiomon and gpioset holders, the pulse chain
      for (const pid of all) {
        try {
          process.kill(pid, 'SIGKILL');
        } catch {
          /* already gone */
        }
      }
      expect(await agent.exited).toEqual({ code: null, signal: 'SIGKILL' });
      expect(await dispense).not.toBe(0);
      await chip.until('every line released', () => [5, 6, 13, 26, 16].every((l) => chip.holder(l) === undefined));
      expect(chip.level(5)).toBe(0); // the kernel keeps the released line driven: the motor runs

      const r = await run(['safe-outputs', '--config', config], chip.env());
      expect(r.out).toMatch(/GPIO5 \(slot 1 motor\): safe, level 1 \(gpioset .*gpiochip0 .*5=1\)/);
      expect(r.code).toBe(0);
      for (const m of [5, 6, 13, 26]) {
        expect(chip.level(m)).toBe(1);
        expect(chip.holder(m)).toBeUndefined();
      }
      expect(chip.busy).toEqual([]);
    });
  }

  it('usage: --config is required', async () => {
    const r = await run(['safe-outputs']);
    expect(r.code).toBe(2);
    expect(r.out).toMatch(/--config FILE is required/);
  });

  it('a config with a mistake outside `hardware` still has its motors stopped', async () => {
    const chip = await FakeGpioChip.start({ version: '1.6.3' });
    cleanups.push(() => chip.close());
    const { dir, cleanup } = tempDir('qrk-safe-');
    cleanups.push(cleanup);
    const config = join(dir, 'agent.yaml');
    writeFileSync(
      config,
      `kioskId: kiosk safe with spaces
relay: { url: 'ftp://nowhere', token: ${TOKEN} }
slots:
  - { slot: 1, sku: COLA, stock: 3 }
control: { socket: agent.sock }
hardware:
  profile: gpio-spiral-4
  gpio: { sysfsRoot: '${join(dir, 'no-sysfs')}' }
`,
    );
    const r = await run(['safe-outputs', '--config', config], chip.env());
    expect(r.out).toMatch(/the config has other problems \(the agent will not start\)/);
    expect(r.out).toMatch(/key "kioskId"/);
    expect(r.code).toBe(0);
    for (const m of [5, 6, 13, 26]) expect(chip.level(m)).toBe(1);
    expect(chip.outputsOf(5).map((c) => c.value)).toEqual([1]);
  });
});
