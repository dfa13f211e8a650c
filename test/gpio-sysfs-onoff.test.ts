import { afterEach, beforeEach, describe, expect, it, vi } from 'vitest';
import { OnoffBackend } from '../src/devices/gpio/onoff-backend.js';
import { OnoffTwin } from '../src/devices/gpio/onoff-twin.js';
import { listSysfsChips, resolveHeaderChip, sysfsNumber } from '../src/devices/gpio/sysfs.js';
import { GpioError, type Level } from '../src/devices/gpio/types.js';
import { tempDir } from './agent-helpers.js';
import { PI_TREES, writeSysfsTree } from './helpers/sysfs-trees.js';

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0).reverse()) await c();
});

function tree(chips: (typeof PI_TREES)[string]['chips']): string {
  const { dir, cleanup } = tempDir('qrk-sysfs-');
  cleanups.push(cleanup);
  return writeSysfsTree(dir, chips);
}

describe('sysfs chip base resolution by label', () => {
  for (const [model, t] of Object.entries(PI_TREES)) {
    it(`${model}: BCM 17 is sysfs gpio${t.bcm17} (${t.note})`, () => {
      const root = tree(t.chips);
      const chip = resolveHeaderChip(root);
      expect(sysfsNumber(chip, 17)).toBe(t.bcm17);
      expect(chip.label).toMatch(/^pinctrl-(rp1|bcm2711|bcm2835)$/);
    });
  }

  it('the "first gpiochip" shortcut would drive the wrong pin on a Pi 5; the label does not', () => {
    const root = tree(PI_TREES['Pi 5 (6.6)']!.chips);
    const first = listSysfsChips(root).sort((a, b) => a.dir.localeCompare(b.dir))[0]!;
    expect(first.base + 17).toBe(529); // a pin of a SoC-internal bank
    expect(sysfsNumber(resolveHeaderChip(root), 17)).toBe(588);
  });

  it('a tree with no Raspberry Pi header chip is a clear error naming what was found and the fix', () => {
    const root = tree([{ dir: 'gpiochip512', label: 'INT34C6:00', base: 512, ngpio: 360 }]);
    expect(() => resolveHeaderChip(root)).toThrow(GpioError);
    expect(() => resolveHeaderChip(root)).toThrow(
      /no Raspberry Pi header GPIO chip under .*"pinctrl-rp1" or "pinctrl-bcm2711" or "pinctrl-bcm2835".*gpiochip512 "INT34C6:00" \(base 512, 360 lines\).*hardware\.gpio\.chipLabel/,
    );
    // and chipLabel picks another board's chip
    expect(sysfsNumber(resolveHeaderChip(root, 'INT34C6:00'), 17)).toBe(529);
  });

  it('no sysfs GPIO at all, an empty tree, a BCM number the chip does not have', () => {
    const { dir, cleanup } = tempDir('qrk-nosys-');
    cleanups.push(cleanup);
    expect(() => resolveHeaderChip(`${dir}/missing`)).toThrow(/does not exist: this kernel has no sysfs GPIO.*gpio\.backend: libgpiod/);
    expect(() => resolveHeaderChip(tree([]))).toThrow(/found no gpiochip entries/);
    const chip = resolveHeaderChip(tree(PI_TREES['Pi 3 (6.1)']!.chips));
    expect(() => sysfsNumber(chip, 54)).toThrow(/GPIO54 is not a line of gpiochip0 "pinctrl-bcm2835" \(it has 54 lines, 0-53\)/);
  });
});

describe('OnoffTwin: fails like onoff on a real kernel', () => {
  it('a raw BCM number on a kernel with base 512 is refused with EINVAL, like the kernel refuses the export', () => {
    const twin = OnoffTwin.fromSysfs(tree(PI_TREES['Pi 4 (6.6)']!.chips));
    expect(() => twin.factory(17, 'in', 'both')).toThrow(/EINVAL: invalid argument, write/);
    expect(() => twin.factory(529, 'in', 'both')).not.toThrow();
    const out = twin.factory(530, 'high');
    expect(twin.level(530)).toBe(1);
    const inp = twin.factory(531, 'in');
    expect(() => inp.writeSync(1)).toThrow(/EPERM/);
    out.writeSync(0);
    expect(twin.level(530)).toBe(0);
  });
});

describe('onoff backend (through the twin)', () => {
  let twin: OnoffTwin;
  let backend: OnoffBackend;

  beforeEach(() => {
    const root = tree(PI_TREES['Pi 5 (6.6)']!.chips);
    twin = OnoffTwin.fromSysfs(root);
    backend = OnoffBackend.open({ sysfsRoot: root, factory: twin.factory, exitHook: false });
    cleanups.push(() => backend.close());
  });

  it('an input is exported at base + BCM and reports level changes (duplicates from epoll dropped)', async () => {
    twin.drive(588, 1);
    const input = await backend.input({ bcm: 17, pull: 'up', role: 'slot 1 button' });
    expect(twin.isExported(588)).toBe(true);
    expect(input.where).toBe('sysfs gpio588');
    expect(input.level()).toBe(1);
    const seen: Level[] = [];
    const got = new Promise<void>((resolve) =>
      input.onChange((l) => {
        seen.push(l);
        if (seen.length === 2) resolve();
      }),
    );
    twin.drive(588, 0);
    // two edges in one tick: epoll delivers twice, onoff reads the same value twice
    twin.drive(588, 1);
    twin.drive(588, 0);
    await new Promise((r) => setImmediate(r));
    twin.drive(588, 1);
    await got;
    expect(seen).toEqual([0, 1]);
  });

  it('an output is set to its safe level at open — also when an earlier run left it exported and ON', async () => {
    // an earlier run died with the active-low relay of GPIO5 energised (output, level 0)
    const earlier = twin.factory(576, 'low', 'none', { reconfigureDirection: false });
    earlier.writeSync(0);
    const out = await backend.output({ bcm: 5, safeLevel: 1, maxPulseMs: 1000, role: 'slot 1 motor' });
    expect(twin.level(576)).toBe(1);
    expect(out.level()).toBe(1);
    // a fresh pin: direction and safe level in one step, no glitch to the other level
    await backend.output({ bcm: 6, safeLevel: 1, maxPulseMs: 1000, role: 'slot 2 motor' });
    expect(twin.writesTo(577).map((w) => w.value)).toEqual([1, 1]);
  });

  it('a pulse lasts its width, never more than the hard maximum', async () => {
    vi.useFakeTimers();
    const out = await backend.output({ bcm: 5, safeLevel: 0, maxPulseMs: 100, role: 'slot 1 motor' });
    const p = out.pulse(40);
    expect(twin.level(576)).toBe(1);
    await vi.advanceTimersByTimeAsync(39);
    expect(twin.level(576)).toBe(1);
    await vi.advanceTimersByTimeAsync(1);
    await p;
    expect(twin.level(576)).toBe(0);
    const long = out.pulse(5000);
    await vi.advanceTimersByTimeAsync(100);
    await long;
    const w = twin.writesTo(576);
    expect(w.map((x) => x.value)).toEqual([0, 0, 1, 0, 1, 0]);
    expect(w[3]!.at - w[2]!.at).toBe(40);
    expect(w[5]!.at - w[4]!.at).toBe(100);
    await expect(Promise.all([out.pulse(10), out.pulse(10)])).rejects.toThrow(/already pulsing/);
    await vi.advanceTimersByTimeAsync(10);
  });

  it('the exit path drives every output safe at once, even mid-pulse; close keeps outputs exported and safe', async () => {
    vi.useFakeTimers();
    const out = await backend.output({ bcm: 5, safeLevel: 1, maxPulseMs: 1000, role: 'slot 1 motor' });
    await backend.input({ bcm: 16, pull: 'up', role: 'drop sensor' });
    void out.pulse(500);
    expect(twin.level(576)).toBe(0);
    backend.safeAllSync(); // what process 'exit' runs
    expect(twin.level(576)).toBe(1);
    await backend.close();
    expect(twin.isExported(576)).toBe(true);
    expect(twin.level(576)).toBe(1);
    expect(twin.isExported(587)).toBe(false);
  });

  it('registers a process exit hook and removes it at close', async () => {
    const root = tree(PI_TREES['Pi 4 (6.6)']!.chips);
    const before = process.listenerCount('exit');
    const b = OnoffBackend.open({ sysfsRoot: root, factory: OnoffTwin.fromSysfs(root).factory });
    expect(process.listenerCount('exit')).toBe(before + 1);
    await b.close();
    expect(process.listenerCount('exit')).toBe(before);
  });

  it('describe: chip, base, pins, and the config.txt line for pulls sysfs cannot set', async () => {
    await backend.input({ bcm: 17, pull: 'up', role: 'slot 1 button' });
    await backend.input({ bcm: 27, pull: 'up', role: 'slot 2 button' });
    await backend.output({ bcm: 5, safeLevel: 1, maxPulseMs: 1000, role: 'slot 1 motor' });
    const d = backend.describe();
    expect(d.detail).toContain('chip gpiochip571 "pinctrl-rp1" base 571');
    expect(d.warnings).toEqual([expect.stringContaining('"gpio=17,27=ip,pu"')]);
    expect(d.pins).toContainEqual({ bcm: 5, role: 'slot 1 motor', where: 'sysfs gpio576', mode: 'out', level: 1 });
  });

  it('a permission or export error names the pin and the fix', async () => {
    const root = tree(PI_TREES['Pi 4 (6.6)']!.chips);
    const eacces = () => {
      throw Object.assign(new Error('EACCES: permission denied, open /sys/class/gpio/export'), { code: 'EACCES' });
    };
    const b = OnoffBackend.open({ sysfsRoot: root, factory: eacces, exitHook: false });
    await expect(b.input({ bcm: 17, pull: 'up', role: 'x' })).rejects.toThrow(/cannot open GPIO17 as sysfs gpio529: permission denied: the agent user must be in group qrkiosk with hardware\/udev\/99-qrkiosk\.rules installed/);
  });
});
