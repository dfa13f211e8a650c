import { accessSync, constants, readFileSync, readdirSync } from 'node:fs';
import { join } from 'node:path';
import { GpioError } from './types.js';

// sysfs GPIO numbers are "chip base + line offset". Raspberry Pi kernels used to pin the header
// chip's base at 0, so BCM 17 was gpio17. Since Pi 5 (and for every model from the 6.6 kernels)
// the base is dynamic: 512 on a Pi 4 with 6.6, 571 on a Pi 5 — and a Pi 5 has five GPIO chips, the
// header one (RP1) listed last. "Take the first gpiochip" therefore picks a SoC-internal chip on a
// Pi 5 and drives the wrong pins. We find the header chip by its label instead, read its base and
// size, and add the BCM number. The root is a parameter so tests run on fake trees.

/** Header chip labels, most specific first: Pi 5 (RP1), Pi 4/400/CM4, Pi 0-3. */
export const PI_HEADER_LABELS = ['pinctrl-rp1', 'pinctrl-bcm2711', 'pinctrl-bcm2835'] as const;

export const DEFAULT_SYSFS_ROOT = '/sys/class/gpio';

export interface SysfsChip {
  /** directory name, e.g. gpiochip571 */
  dir: string;
  label: string;
  base: number;
  ngpio: number;
}

export interface ResolvedChip extends SysfsChip {
  root: string;
}

function readAttr(root: string, dir: string, attr: string): string | undefined {
  try {
    return readFileSync(join(root, dir, attr), 'utf8').trim();
  } catch {
    return undefined;
  }
}

/** Every gpiochip* under root with readable label/base/ngpio (unreadable ones are skipped). */
export function listSysfsChips(root = DEFAULT_SYSFS_ROOT): SysfsChip[] {
  let names: string[];
  try {
    names = readdirSync(root);
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    throw new GpioError(
      code === 'ENOENT'
        ? `${root} does not exist: this kernel has no sysfs GPIO (CONFIG_GPIO_SYSFS off or removed). Use gpio.backend: libgpiod (apt install gpiod)`
        : `cannot list ${root}: ${(err as Error).message}`,
    );
  }
  const chips: SysfsChip[] = [];
  for (const dir of names) {
    if (!/^gpiochip\d+$/.test(dir)) continue;
    const label = readAttr(root, dir, 'label');
    const base = Number(readAttr(root, dir, 'base'));
    const ngpio = Number(readAttr(root, dir, 'ngpio'));
    if (label === undefined || !Number.isInteger(base) || !Number.isInteger(ngpio)) continue;
    chips.push({ dir, label, base, ngpio });
  }
  return chips;
}

/**
 * The chip that drives the 40-pin header. `label` forces one label (a Compute Module carrier or
 * another board); otherwise the first of PI_HEADER_LABELS present wins.
 */
export function resolveHeaderChip(root = DEFAULT_SYSFS_ROOT, label?: string): ResolvedChip {
  const chips = listSysfsChips(root);
  const wanted = label ? [label] : [...PI_HEADER_LABELS];
  for (const l of wanted) {
    const hit = chips.find((c) => c.label === l);
    if (hit) return { ...hit, root };
  }
  const seen = chips.length ? chips.map((c) => `${c.dir} "${c.label}" (base ${c.base}, ${c.ngpio} lines)`).join(', ') : 'no gpiochip entries';
  throw new GpioError(
    `no Raspberry Pi header GPIO chip under ${root} (looked for label ${wanted.map((l) => `"${l}"`).join(' or ')}; found ${seen}). ` +
      (label
        ? 'Fix hardware.gpio.chipLabel or remove it to use the Raspberry Pi default.'
        : 'On a board that is not a Raspberry Pi set hardware.gpio.chipLabel to the label of the chip that drives your pins.'),
  );
}

/** sysfs number of a BCM pin on the resolved chip. */
export function sysfsNumber(chip: ResolvedChip, bcm: number): number {
  if (!Number.isInteger(bcm) || bcm < 0 || bcm >= chip.ngpio) {
    throw new GpioError(`GPIO${bcm} is not a line of ${chip.dir} "${chip.label}" (it has ${chip.ngpio} lines, 0-${chip.ngpio - 1})`);
  }
  return chip.base + bcm;
}

/** Can this process export pins (is `<root>/export` writable)? */
export function sysfsExportWritable(root = DEFAULT_SYSFS_ROOT): { ok: true } | { ok: false; reason: string } {
  try {
    accessSync(join(root, 'export'), constants.W_OK);
    return { ok: true };
  } catch (err) {
    const code = (err as NodeJS.ErrnoException).code;
    if (code === 'ENOENT') return { ok: false, reason: `${join(root, 'export')} does not exist (no sysfs GPIO in this kernel)` };
    if (code === 'EACCES' || code === 'EPERM') {
      return { ok: false, reason: `${join(root, 'export')} is not writable by this user: install hardware/udev/99-qrkiosk.rules (it gives group qrkiosk the GPIO files) or add the user to group gpio where it exists` };
    }
    return { ok: false, reason: `${join(root, 'export')}: ${(err as Error).message}` };
  }
}
