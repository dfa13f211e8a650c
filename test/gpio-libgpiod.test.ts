import { execFile } from 'node:child_process';
import { afterEach, beforeEach, describe, expect, it } from 'vitest';
import { FaultLog, type Fault } from '../src/devices/faults.js';
import {
  LibgpiodBackend,
  commands,
  parseGetOutput,
  parseLineLocation,
  parseMonitorLine,
  parseToolVersion,
} from '../src/devices/gpio/libgpiod-backend.js';
import type { GpioInput, Level } from '../src/devices/gpio/types.js';
import { FakeGpioChip, pi4Chip } from './helpers/fake-gpiochip.js';
import { IN_CI } from './helpers/ci.js';

// The libgpiod backend against stand-in gpiomon/gpioset/gpioget/gpiofind/gpioinfo programs
// (test/fixtures/bin) that speak the real tools' options and output formats, in the v1 (Debian 12)
// and v2 (Debian 13) flavours, over a fake chip that enforces line ownership like the kernel.

function alive(pid: number | undefined): boolean {
  if (pid === undefined) return false;
  try {
    process.kill(pid, 0);
    return true;
  } catch {
    return false;
  }
}

function nextLevel(input: GpioInput, want: Level): Promise<Level> {
  if (input.level() === want) return Promise.resolve(want);
  return new Promise((resolve) => {
    const off = input.onChange((l) => {
      if (l !== want) return;
      off();
      resolve(l);
    });
  });
}

function nextFault(log: FaultLog, pred: (f: Fault) => boolean): Promise<Fault> {
  return new Promise((resolve) => {
    const off = log.onFault((f) => {
      if (!pred(f)) return;
      off();
      resolve(f);
    });
  });
}

describe('libgpiod tool output parsers', () => {
  it('reads both versions of gpiomon, gpioget, gpiofind/gpioinfo and --version', () => {
    expect(parseMonitorLine('event:  RISING EDGE offset: 17 timestamp: [1700000000.123456789]')).toEqual({
      edge: 'rising',
      offset: 17,
      timestampNs: 1700000000123456789n,
    });
    // v1 pads the seconds to 8 characters
    expect(parseMonitorLine('event: FALLING EDGE offset: 4 timestamp: [     123.000000042]')).toMatchObject({ edge: 'falling', offset: 4, timestampNs: 123000000042n });
    expect(parseMonitorLine('3003.352344214\tfalling\tgpiochip0 17 "GPIO17"')).toMatchObject({ edge: 'falling', offset: 17 });
    expect(parseMonitorLine('3003.352344214\trising\t"GPIO17"')).toEqual({ edge: 'rising', timestampNs: 3003352344214n });
    expect(parseMonitorLine('3003.352344214\trising\tgpiochip0 9')).toMatchObject({ edge: 'rising', offset: 9 });
    expect(parseMonitorLine("Monitoring line 'GPIO17'...")).toBeUndefined();
    expect(parseGetOutput('1\n')).toBe(1);
    expect(parseGetOutput('"17"=inactive\n')).toBe(0);
    expect(parseGetOutput('"GPIO17"=active "GPIO27"=inactive\n')).toBe(1);
    expect(parseLineLocation('gpiochip0 17\n', 'GPIO17')).toEqual({ chip: 'gpiochip0', offset: 17, name: 'GPIO17' });
    expect(parseLineLocation('gpiochip0 17\t"GPIO17"        \tinput\n', 'GPIO17')).toEqual({ chip: 'gpiochip0', offset: 17, name: 'GPIO17' });
    expect(parseToolVersion('gpioset (libgpiod) v1.6.3\nCopyright')).toEqual({ major: 1, minor: 6, text: '1.6.3' });
    expect(parseToolVersion('gpiomon (libgpiod) v2.1\n')).toEqual({ major: 2, minor: 1, text: '2.1' });
  });

  it('asks v1 gpiomon for line-buffered output (a pipe is block-buffered otherwise)', () => {
    const loc = { chip: 'gpiochip0', offset: 17, name: 'GPIO17' };
    expect(commands.monitor({ major: 1, minor: 6, text: '1.6.3' }, loc, 'up')).toEqual(['gpiomon', ['-b', '-B', 'pull-up', 'gpiochip0', '17']]);
    expect(commands.monitor({ major: 2, minor: 1, text: '2.1.3' }, loc, 'up')).toEqual(['gpiomon', ['-b', 'pull-up', '-c', 'gpiochip0', '17']]);
    // v1's usleep() is only specified below one second: seconds and microseconds go separately
    expect(commands.timed({ major: 1, minor: 6, text: '1.6.3' }, loc, 1, 1250)[1]).toEqual(['-m', 'time', '-s', '1', '-u', '250000', 'gpiochip0', '17=1']);
  });
});

for (const version of ['1.6.3', '2.1.3']) {
  describe(`libgpiod backend, stand-in tools v${version}`, { timeout: 30_000 }, () => {
    let chip: FakeGpioChip;
    let backend: LibgpiodBackend | undefined;
    let faults: FaultLog;

    beforeEach(async () => {
      chip = await FakeGpioChip.start({ version });
      faults = new FaultLog();
    });

    afterEach(async () => {
      await backend?.close();
      backend = undefined;
      await chip.close();
    });

    async function open(bcms: number[]): Promise<LibgpiodBackend> {
      const p = await LibgpiodBackend.probe(bcms, {}, chip.env());
      if (!p.ok) throw new Error(p.reason);
      backend = new LibgpiodBackend({ version: p.version, lines: p.lines, faults, env: chip.env(), exitHook: false });
      return backend;
    }

    it('probe: tool version and every line found by name', async () => {
      const p = await LibgpiodBackend.probe([17, 5], {}, chip.env());
      expect(p).toMatchObject({ ok: true, version: { text: version } });
      if (!p.ok) return;
      expect(p.lines.get(17)).toEqual({ chip: 'gpiochip0', offset: 17, name: 'GPIO17' });
      expect(p.lines.get(5)).toEqual({ chip: 'gpiochip0', offset: 5, name: 'GPIO5' });
    });

    it('probe: a line with another name is explained, and found with lineNames', async () => {
      await chip.close();
      const spec = pi4Chip();
      spec.names[4] = 'GPIO_GCLK';
      chip = await FakeGpioChip.start({ version, chips: [spec] });
      const p = await LibgpiodBackend.probe([4], {}, chip.env());
      expect(p.ok).toBe(false);
      if (!p.ok) expect(p.reason).toMatch(/no GPIO line named "GPIO4".*lineNames/);
      const q = await LibgpiodBackend.probe([4], { 4: 'GPIO_GCLK' }, chip.env());
      expect(q).toMatchObject({ ok: true });
    });

    it('probe: tools not installed', async () => {
      const p = await LibgpiodBackend.probe([17], {}, { ...chip.env(), PATH: '/nonexistent' });
      expect(p).toEqual({ ok: false, reason: 'gpioset is not installed (apt install gpiod)' });
    });

    it('input: pull-up applied, initial level read, then every edge as it happens', async () => {
      const b = await open([17]);
      const input = await b.input({ bcm: 17, pull: 'up', role: 'slot 1 button' });
      expect(chip.bias(17)).toBe('pull-up');
      expect(input.level()).toBe(1);
      expect(input.where).toBe('gpiochip0 17');
      await chip.monitored(17);
      const seen: Level[] = [];
      input.onChange((l) => seen.push(l));
      chip.drive(17, 0);
      await nextLevel(input, 0);
      chip.drive(17, 1);
      await nextLevel(input, 1);
      expect(seen).toEqual([0, 1]);
    });

    it('a gpiomon that dies is restarted and reported, and a press made meanwhile is not lost', async () => {
      const b = await open([17]);
      const input = await b.input({ bcm: 17, pull: 'up', role: 'slot 1 button' });
      await chip.monitored(17);
      const pid = b.describe().processes![0]!.pid!;
      expect(alive(pid)).toBe(true);
      const reported = nextFault(faults, (f) => f.kind === 'process_died');
      process.kill(pid, 'SIGKILL');
      const f = await reported;
      expect(f.device).toBe('gpiomon GPIO17 (slot 1 button)');
      expect(f.message).toMatch(/killed by SIGKILL; restarting in \d+ ms/);
      // pressed while nobody watched: the restart reads the level before monitoring again
      await chip.until('the dead gpiomon released the line', () => chip.holder(17) === undefined || undefined);
      chip.drive(17, 0);
      await nextLevel(input, 0);
      await chip.monitored(17);
      const info = b.describe().processes![0]!;
      expect(info.restarts).toBe(1);
      expect(info.pid).not.toBe(pid);
      chip.drive(17, 1);
      await nextLevel(input, 1);
    });

    it('a gpiomon that keeps dying is reported three times, then once as a lasting condition', async () => {
      const b = await open([17]);
      await b.input({ bcm: 17, pull: 'up', role: 'slot 1 button' });
      await chip.monitored(17);
      const first = b.describe().processes![0]!.pid!;
      // a kernel driver takes the line the moment gpiomon lets go of it
      const condition = new Promise<Fault>((resolve) => {
        const off = faults.onFault((f) => {
          if (f.kind !== 'keeps_dying') return;
          off();
          resolve(f);
        });
      });
      process.kill(first, 'SIGKILL');
      await chip.until('the line free', () => chip.holder(17) === undefined || undefined);
      chip.reserve(17);
      const f = await condition;
      expect(f).toMatchObject({ device: 'gpiomon GPIO17 (slot 1 button)', active: true, message: expect.stringMatching(/Device or resource busy; still retrying every \d+ ms/) });
      expect(faults.recent(100).filter((x) => x.kind === 'process_died')).toHaveLength(3);
      expect(chip.busy.length).toBeGreaterThanOrEqual(3);
      chip.unreserve(17);
      // the line is free again: monitoring resumes by itself
      await chip.monitored(17);
    });

    it('output: held at the safe level from the start; a pulse is the active level for its width, then safe, held again', async () => {
      const b = await open([5]);
      const out = await b.output({ bcm: 5, safeLevel: 1, maxPulseMs: 2000, role: 'slot 1 motor' });
      // the promise: when output() resolves the motor line IS at its safe level (the holder that
      // keeps it there may still be starting: that is a process detail, awaited, not assumed)
      expect(chip.level(5)).toBe(1);
      expect(chip.outputsOf(5).map((c) => c.value)).toEqual([1]);
      await chip.until('the safe-level holder', () => chip.holder(5)?.mode === 'out' || undefined);
      await out.pulse(150);
      const changes = chip.outputsOf(5);
      expect(changes.map((c) => c.value)).toEqual([1, 0, 1]);
      const width = changes[2]!.at - changes[1]!.at;
      expect(width).toBeGreaterThanOrEqual(145);
      expect(width).toBeLessThan(150 + 3000); // an upper bound only: a loaded machine ends it late
      await chip.until('a safe-level holder again', () => chip.holder(5)?.mode === 'out' || undefined);
      expect(chip.level(5)).toBe(1);
      // never two processes on one line: the kernel would have refused with EBUSY
      expect(chip.busy).toEqual([]);
      // and a second pulse works the same
      await out.pulse(50);
      expect(chip.outputsOf(5).map((c) => c.value)).toEqual([1, 0, 1, 0, 1]);
      expect(chip.busy).toEqual([]);
    });

    it('output: the hard maximum wins over a longer pulse request', async () => {
      const b = await open([6]);
      const out = await b.output({ bcm: 6, safeLevel: 0, maxPulseMs: 100, role: 'slot 2 motor' });
      expect(chip.outputsOf(6).map((c) => c.value)).toEqual([0]);
      await out.pulse(5000);
      const changes = chip.outputsOf(6);
      expect(changes.map((c) => c.value)).toEqual([0, 1, 0]);
      expect(changes[2]!.at - changes[1]!.at).toBeLessThan(100 + 3000); // far below the 5,000 ms asked: the cap won
    });

    it('a holder that dies is restarted at the safe level and reported', async () => {
      const b = await open([13]);
      await b.output({ bcm: 13, safeLevel: 1, maxPulseMs: 500, role: 'slot 3 motor' });
      const pid = b.describe().processes![0]!.pid!;
      const reported = nextFault(faults, (f) => f.kind === 'process_died');
      process.kill(pid, 'SIGKILL');
      expect((await reported).device).toBe('gpioset GPIO13 (slot 3 motor)');
      await chip.until('the holder restarted', () => (b.describe().processes![0]!.restarts === 1 && chip.holder(13)?.mode === 'out') || undefined);
      expect(chip.level(13)).toBe(1);
    });

    it('close: every output at its safe level, no process left behind', async () => {
      const b = await open([17, 5]);
      await b.input({ bcm: 17, pull: 'up', role: 'slot 1 button' });
      const out = await b.output({ bcm: 5, safeLevel: 1, maxPulseMs: 500, role: 'slot 1 motor' });
      await out.pulse(20);
      await chip.monitored(17);
      const pids = b.describe().processes!.map((p) => p.pid);
      expect(pids.every(alive)).toBe(true);
      await b.close();
      backend = undefined;
      expect(pids.some(alive)).toBe(false);
      expect(chip.holder(17)).toBeUndefined();
      expect(chip.holder(5)).toBeUndefined();
      expect(chip.level(5)).toBe(1);
      expect(chip.outputsOf(5).at(-1)!.value).toBe(1);
    });
  });
}

// The stand-ins must behave like the real tools. Where the real Debian tools are installed (CI
// installs the gpiod package), compare what both say when no GPIO chip exists. In CI a missing
// tool fails the test; on a developer machine it is skipped.
describe('stand-ins vs the real Debian gpiod tools', () => {
  const ci = IN_CI;
  function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv): Promise<{ code: number; stdout: string; stderr: string }> {
    return new Promise((resolve) => {
      execFile(cmd, args, { encoding: 'utf8', timeout: 10_000, ...(env ? { env } : {}) }, (err, stdout, stderr) => {
        const code = err ? (typeof (err as { code?: unknown }).code === 'number' ? ((err as { code: number }).code) : -1) : 0;
        resolve({ code, stdout, stderr });
      });
    });
  }

  it('same version line, options, errors and exit codes as the installed libgpiod v1 tools', async () => {
    const real = await run('gpioset', ['--version']);
    if (real.code === -1) {
      if (ci) throw new Error('the gpiod package is not installed on this CI runner: apt-get install gpiod');
      return;
    }
    const v = parseToolVersion(real.stdout);
    expect(v).toBeDefined();
    if (v!.major !== 1) return; // the stand-ins' v1 behaviour is what Debian 12 ships
    const { FIXTURE_BIN } = await import('./helpers/fake-gpiochip.js');
    // no FAKE_GPIOD_SOCKET: the stand-ins meet "no chip", like the real tools on this machine
    const fakeEnv = { ...process.env, PATH: `${FIXTURE_BIN}:${process.env.PATH}`, FAKE_LIBGPIOD_VERSION: v!.text, FAKE_GPIOD_NODE: process.execPath };
    delete (fakeEnv as Record<string, unknown>).FAKE_GPIOD_SOCKET;
    const fake = (cmd: string, args: string[]) => run(`${FIXTURE_BIN}/${cmd}`, args, fakeEnv);
    for (const [cmd, args] of [
      ['gpiomon', ['-b', '-B', 'pull-up', 'gpiochip0', '17']],
      ['gpioset', ['-m', 'signal', 'gpiochip0', '5=1']],
      ['gpioget', ['-B', 'pull-up', 'gpiochip0', '17']],
      ['gpiofind', ['GPIO17']],
      ['gpioset', ['-c', 'gpiochip0', '5=1']], // a v2 option: v1 refuses it
    ] as Array<[string, string[]]>) {
      const r = await run(cmd, args);
      const f = await fake(cmd, args);
      expect({ cmd, args, code: f.code, stdout: f.stdout, stderr: f.stderr.replace(`${FIXTURE_BIN}/`, '') }).toEqual({ cmd, args, code: r.code, stdout: r.stdout, stderr: r.stderr });
    }
    expect((await fake('gpiomon', ['--version'])).stdout.split('\n')[0]).toBe((await run('gpiomon', ['--version'])).stdout.split('\n')[0]);
    // the options the backend passes exist in the real help texts
    const monHelp = (await run('gpiomon', ['--help'])).stdout;
    expect(monHelp).toContain('-b, --line-buffered');
    expect(monHelp).toContain('-B, --bias');
    const setHelp = (await run('gpioset', ['--help'])).stdout;
    for (const s of ['-m, --mode', 'signal:', 'time:', 'exit:', '-s, --sec', '-u, --usec']) expect(setHelp).toContain(s);
  });
});
