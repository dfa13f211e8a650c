import { EventEmitter } from 'node:events';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent/agent.js';
import { technicianMain, type Io } from '../src/cli/agent-commands.js';
import { hardwareMain, testMain } from '../src/cli/hardware-commands.js';
import { OnoffTwin } from '../src/devices/gpio/onoff-twin.js';
import { silentLogger } from '../src/runtime/log.js';
import { FakeRelay, agentConfig, nextEvent, tempDir } from './agent-helpers.js';
import { PI_TREES, writeSysfsTree } from './helpers/sysfs-trees.js';

// The technician commands end to end: the real CLI functions talk to a running agent over its
// control socket; the agent runs the gpio-spiral-4 profile on the onoff backend, whose twin is
// wired to a simulated machine (Pi 4, kernel 6.6: sysfs number = 512 + BCM).

const BASE = 512;
const PIN = { button1: BASE + 17, button2: BASE + 27, cancel: BASE + 24, motor: { 1: BASE + 5, 2: BASE + 6, 3: BASE + 13 }, sensor: BASE + 16 };

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

function io(): Io & { stdout: string; stderr: string; lines: EventEmitter; waitLine: (pred: (l: string) => boolean) => Promise<string> } {
  const lines = new EventEmitter();
  const all: string[] = [];
  const o = {
    stdout: '',
    stderr: '',
    lines,
    out: (t: string) => {
      o.stdout += t + '\n';
      for (const l of t.split('\n')) {
        all.push(l);
        lines.emit('line', l);
      }
    },
    err: (t: string) => {
      o.stderr += t + '\n';
    },
    waitLine: (pred: (l: string) => boolean) => {
      const hit = all.find(pred);
      if (hit) return Promise.resolve(hit);
      return nextEvent<string>(lines as never, 'line', pred);
    },
  };
  return o;
}

async function setup(): Promise<{ agent: Agent; relay: FakeRelay; sock: string; twin: OnoffTwin; beamClear: () => Promise<void> }> {
  const relay = await FakeRelay.start();
  cleanups.push(() => relay.close());
  const { dir, cleanup } = tempDir('qrk-tech-');
  cleanups.push(cleanup);
  const sysfsRoot = writeSysfsTree(dir, PI_TREES['Pi 4 (6.6)']!.chips);
  const twin = OnoffTwin.fromSysfs(sysfsRoot);
  // idle: buttons released (pulled up), beam clear (receiver low)
  for (const p of [PIN.button1, PIN.button2, PIN.cancel, BASE + 22, BASE + 23]) twin.drive(p, 1);
  twin.drive(PIN.sensor, 0);
  // the machine: slots 1 and 2 drop their product through the beam while the 20 ms pulse runs;
  // slot 3 is empty. The vend answers when it sees the beam broken, which on a busy machine can be
  // before the product has left the beam: `beamClear` resolves once it has and the agent has been
  // told (the twin's late wake-up delivered), so a test that dispenses again waits for that event
  // instead of assuming the timers already fired.
  let cleared: Promise<void> = Promise.resolve();
  twin.on('write', (gpio: number, value: number, before: number) => {
    if (value !== 0 || before !== 1) return;
    if (gpio === PIN.motor[1] || gpio === PIN.motor[2]) {
      setTimeout(() => twin.drive(PIN.sensor, 1), 8);
      cleared = new Promise((resolve) =>
        setTimeout(() => {
          twin.drive(PIN.sensor, 0);
          void twin.delivered(PIN.sensor).then(resolve);
        }, 12),
      );
    }
  });
  const cfg = agentConfig(dir, relay.url, {
    hardware: {
      profile: 'gpio-spiral-4',
      gpio: { backend: 'onoff', sysfsRoot },
      dispenser: { pulseMs: 20, dropWindowMs: 150 },
      display: { driver: 'none' },
    },
  });
  const agent = await startAgent(cfg, { logger: silentLogger(), hardware: { onoffFactory: twin.factory }, timings: { resultScreenMs: 50, offlineGraceMs: 50 } });
  cleanups.push(() => agent.close());
  if (!agent.status().relay.online) await nextEvent<string>(agent as never, 'link', (s) => s === 'online');
  return { agent, relay, sock: (cfg as { control: { socket: string } }).control.socket, twin, beamClear: () => cleared };
}

describe('qrkiosk hardware', () => {
  it('--json: profile, backend and why, every pin with where it was found, and the pull warning', async () => {
    const { sock, twin } = await setup();
    const o = io();
    expect(await hardwareMain(['--socket', sock, '--json'], o)).toBe(0);
    const r = JSON.parse(o.stdout) as Record<string, any>;
    expect(r.profile).toMatchObject({ name: 'gpio-spiral-4', source: expect.stringMatching(/hardware\/profiles\/gpio-spiral-4\.yaml$/) });
    expect(r.gpio).toMatchObject({ backend: 'onoff', detail: expect.stringContaining('chip gpiochip512 "pinctrl-bcm2711" base 512'), reason: 'configured (gpio.backend: onoff)' });
    expect(r.gpio.warnings).toEqual([expect.stringContaining('"gpio=16,17,22,23,24,27=ip,pu"')]);
    const buttons = r.devices.find((d: { role: string }) => d.role === 'buttons');
    expect(buttons.lines).toContainEqual({ function: 'slot 1', name: 'GPIO17', where: 'sysfs gpio529', state: 'released' });
    expect(buttons.lines).toContainEqual({ function: 'cancel', name: 'GPIO24', where: 'sysfs gpio536', state: 'released' });
    const disp = r.devices.find((d: { role: string }) => d.role === 'dispenser');
    expect(disp.detail).toContain('pulse 20 ms (hard max 2000 ms)');
    expect(disp.lines).toContainEqual({ function: 'motor slot 4', name: 'GPIO26', where: 'sysfs gpio538', state: 'off' });
    expect(disp.lines).toContainEqual({ function: 'drop sensor', name: 'GPIO16', where: 'sysfs gpio528', state: 'beam clear' });
    // started safe: the active-low relays are held high
    for (const g of [517, 518, 525, 538]) expect(twin.level(g)).toBe(1);
  });

  it('human output: a readable summary with the pin tables', async () => {
    const { sock } = await setup();
    const o = io();
    expect(await hardwareMain(['--socket', sock], o)).toBe(0);
    expect(o.stdout).toContain('profile   gpio-spiral-4');
    expect(o.stdout).toContain('gpio      onoff: sysfs');
    expect(o.stdout).toMatch(/WARNING: sysfs cannot set pull resistors/);
    expect(o.stdout).toMatch(/FUNCTION\s+NAME\s+WHERE\s+STATE/);
    expect(o.stdout).toMatch(/slot 1\s+GPIO17\s+sysfs gpio529\s+released/);
    expect(o.stdout).toMatch(/motor slot 1\s+GPIO5\s+sysfs gpio517\s+off/);
    expect(o.stdout).toContain('faults    none active');
  });
});

describe('qrkiosk test dispense', () => {
  it('pulses the slot for real and prints the result; nothing is sold or journaled', async () => {
    const { sock, twin, agent, beamClear } = await setup();
    let o = io();
    expect(await testMain(['dispense', '2', '--socket', sock], o)).toBe(0);
    expect(o.stdout.trim()).toBe('slot 2: dispensed after 1 pulse. The stock count was not changed.');
    expect(twin.writesTo(PIN.motor[2]).map((w) => w.value)).toEqual([1, 1, 0, 1]);
    expect(agent.journal()).toEqual([]);
    // the product has left the beam: the next test dispense starts on a clear sensor
    await beamClear();
    o = io();
    expect(await testMain(['dispense', '3', '--socket', sock, '--json'], o)).toBe(1);
    expect(JSON.parse(o.stdout)).toEqual({ ok: true, slot: 3, result: 'vend_failed', pulses: 2, detail: 'no drop seen after 2 pulse(s)' });
    o = io();
    expect(await testMain(['dispense', '3', '--socket', sock], o)).toBe(1);
    expect(o.stdout.trim()).toBe('slot 3: VEND_FAILED after 2 pulses: no drop seen after 2 pulse(s)');
  });

  it("is refused while a customer's vend is open, and works again once it is over", async () => {
    const { sock, relay, twin } = await setup();
    let o = io();
    expect(await technicianMain('select', ['1', '--socket', sock, '--json'], o)).toBe(0);
    const sel = JSON.parse(o.stdout) as { orderId: string };
    await relay.waitType('order.ready', (m) => m.orderId === sel.orderId);
    o = io();
    expect(await testMain(['dispense', '1', '--socket', sock], o)).toBe(1);
    expect(o.stdout).toMatch(/^refused \(vend_open\): a customer's order ord_\S+ is awaiting_payment: wait until it is over/);
    expect(twin.writesTo(PIN.motor[1]).some((w) => w.value === 0)).toBe(false);
    expect(await technicianMain('cancel', ['--socket', sock], io())).toBe(0);
    o = io();
    expect(await testMain(['dispense', '1', '--socket', sock], o)).toBe(0);
  });

  it('usage errors exit 2; no agent exits 2 with the usual message', async () => {
    const { dir, cleanup } = tempDir('qrk-none-');
    cleanups.push(cleanup);
    const o = io();
    expect(await testMain(['dispense', 'x', '--socket', `${dir}/s`], o)).toBe(2);
    expect(await testMain(['dispense', '--socket', `${dir}/s`], io())).toBe(2);
    expect(await testMain(['juggle'], io())).toBe(2);
    const n = io();
    expect(await testMain(['dispense', '1', '--socket', `${dir}/s`], n)).toBe(2);
    expect(n.stderr.trim()).toBe(`agent not running? no control socket at ${dir}/s`);
    expect(await hardwareMain(['--socket', `${dir}/s`], io())).toBe(2);
  });
});

describe('qrkiosk test buttons', () => {
  it('streams presses live while sales are paused; Ctrl-C ends it and presses sell again', async () => {
    const { sock, twin, agent, relay } = await setup();
    const o = io();
    const ac = new AbortController();
    const running = testMain(['buttons', '--socket', sock, '--json'], o, { signal: ac.signal });
    const start = JSON.parse(await o.waitLine((l) => l.includes('"type":"start"'))) as { salesPaused: boolean; buttons: { driver: string } };
    expect(start).toMatchObject({ salesPaused: true, buttons: { driver: 'gpio' } });
    twin.drive(PIN.button1, 0);
    const press = JSON.parse(await o.waitLine((l) => l.includes('"type":"press"'))) as { slot: number };
    expect(press.slot).toBe(1);
    expect(JSON.parse(await o.waitLine((l) => l.includes('"type":"input"')))).toMatchObject({ input: 'slot 1 (GPIO17)', state: 'down' });
    twin.drive(PIN.button1, 1);
    await o.waitLine((l) => l.includes('"state":"up"'));
    twin.drive(PIN.cancel, 0);
    await o.waitLine((l) => l.includes('"type":"cancel"'));
    twin.drive(PIN.cancel, 1);
    // shown, not sold
    expect(agent.status().order).toBeNull();
    expect(relay.of('order.ready')).toEqual([]);
    ac.abort();
    expect(await running).toBe(0);
    // the viewer left: the same button sells
    const created = nextEvent<{ to: string }>(agent as never, 'state', (c) => c.to === 'awaiting_payment');
    twin.drive(PIN.button1, 0);
    await created;
    twin.drive(PIN.button1, 1);
  });

  it('human output, and the test ends when the agent stops', async () => {
    const { sock, twin, agent } = await setup();
    const o = io();
    const running = testMain(['buttons', '--socket', sock], o, { signal: new AbortController().signal });
    await o.waitLine((l) => l.startsWith('Watching the buttons of kiosk-test'));
    twin.drive(PIN.button2, 0);
    await o.waitLine((l) => l.endsWith('-> selects slot 2'));
    expect(o.stdout).toMatch(/\d\d:\d\d:\d\d\.\d{3}  slot 2 \(GPIO27\)\s+DOWN/);
    await agent.close();
    expect(await running).toBe(1);
    expect(o.stderr).toContain('the agent ended the test (agent stopping)');
    // agent stopped: every relay output at its safe (off) level
    for (const g of [517, 518, 525, 538]) expect(twin.level(g)).toBe(1);
  });
});
