import { mkdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { SysfsChip } from '../../src/devices/gpio/sysfs.js';

// Fake /sys/class/gpio trees as Raspberry Pi kernels lay them out: one gpiochip<base> directory per
// GPIO controller with read-only label/base/ngpio files, plus export/unexport. Sources for the
// numbers (hardware/README.md keeps the same table):
//   - kernels up to 6.1 allocated dynamic bases DOWNWARD from 512 and pinned the Pi 0-4 header
//     chip at 0 (the firmware GPIO expander of a Pi 3B+/4 then sits at 504);
//   - Pi 5 launch kernel 6.1: RP1 at 399 and a SoC bank at 453 (gpiochip399/gpiochip453 as listed
//     by a Raspberry Pi kernel developer in raspberrypi/linux#5638); the other three SoC banks'
//     bases are inferred from the downward allocation (they fill 470-511);
//   - 6.6: every base is dynamic and allocated UPWARD from 512: a Pi 4's pinctrl-bcm2711 at 512
//     (GPIO17 = 529), a Pi 5's four brcmstb banks at 512/544/548/565 and RP1 at 571 (GPIO17 = 588);
//   - Pi 5 on 6.12: MODELLED. Since 6.6.45 RP1 is /dev/gpiochip0 through a device-tree alias and
//     the registration order of the chips has been shuffled since; no sysfs listing for 6.12 was
//     available, so this tree assumes RP1 registers first (base 512). It stands for "the order
//     changed again" — the resolver must follow the label, not a position or a number.

export const PI_TREES: Record<string, { chips: SysfsChip[]; bcm17: number; note: string }> = {
  'Pi 3 (6.1)': {
    chips: [
      { dir: 'gpiochip0', label: 'pinctrl-bcm2835', base: 0, ngpio: 54 },
      { dir: 'gpiochip504', label: 'raspberrypi-exp-gpio', base: 504, ngpio: 8 },
    ],
    bcm17: 17,
    note: 'header chip pinned at 0',
  },
  'Pi 4 (6.1)': {
    chips: [
      { dir: 'gpiochip0', label: 'pinctrl-bcm2711', base: 0, ngpio: 58 },
      { dir: 'gpiochip504', label: 'raspberrypi-exp-gpio', base: 504, ngpio: 8 },
    ],
    bcm17: 17,
    note: 'header chip pinned at 0',
  },
  'Pi 4 (6.6)': {
    chips: [
      { dir: 'gpiochip512', label: 'pinctrl-bcm2711', base: 512, ngpio: 58 },
      { dir: 'gpiochip570', label: 'raspberrypi-exp-gpio', base: 570, ngpio: 8 },
    ],
    bcm17: 529,
    note: 'dynamic bases from 512',
  },
  'Pi 5 (6.1)': {
    chips: [
      { dir: 'gpiochip399', label: 'pinctrl-rp1', base: 399, ngpio: 54 },
      { dir: 'gpiochip453', label: 'gpio-brcmstb@107d517c00', base: 453, ngpio: 17 },
      { dir: 'gpiochip470', label: 'gpio-brcmstb@107d517c20', base: 470, ngpio: 6 },
      { dir: 'gpiochip476', label: 'gpio-brcmstb@107d508500', base: 476, ngpio: 32 },
      { dir: 'gpiochip508', label: 'gpio-brcmstb@107d508520', base: 508, ngpio: 4 },
    ],
    bcm17: 416,
    note: 'launch kernel: bases allocated downward',
  },
  'Pi 5 (6.6)': {
    chips: [
      { dir: 'gpiochip512', label: 'gpio-brcmstb@107d508500', base: 512, ngpio: 32 },
      { dir: 'gpiochip544', label: 'gpio-brcmstb@107d508520', base: 544, ngpio: 4 },
      { dir: 'gpiochip548', label: 'gpio-brcmstb@107d517c00', base: 548, ngpio: 17 },
      { dir: 'gpiochip565', label: 'gpio-brcmstb@107d517c20', base: 565, ngpio: 6 },
      { dir: 'gpiochip571', label: 'pinctrl-rp1', base: 571, ngpio: 54 },
    ],
    bcm17: 588,
    note: 'the header chip is the LAST of five',
  },
  'Pi 5 (6.12, modelled)': {
    chips: [
      { dir: 'gpiochip512', label: 'pinctrl-rp1', base: 512, ngpio: 54 },
      { dir: 'gpiochip566', label: 'gpio-brcmstb@107d508500', base: 566, ngpio: 32 },
      { dir: 'gpiochip598', label: 'gpio-brcmstb@107d508520', base: 598, ngpio: 4 },
      { dir: 'gpiochip602', label: 'gpio-brcmstb@107d517c00', base: 602, ngpio: 17 },
      { dir: 'gpiochip619', label: 'gpio-brcmstb@107d517c20', base: 619, ngpio: 6 },
    ],
    bcm17: 529,
    note: 'registration order changed',
  },
};

/** Writes a fake sysfs GPIO tree under dir and returns its root. */
export function writeSysfsTree(dir: string, chips: SysfsChip[]): string {
  const root = join(dir, 'sys', 'class', 'gpio');
  mkdirSync(root, { recursive: true });
  writeFileSync(join(root, 'export'), '');
  writeFileSync(join(root, 'unexport'), '');
  for (const c of chips) {
    const d = join(root, c.dir);
    mkdirSync(d, { recursive: true });
    writeFileSync(join(d, 'label'), `${c.label}\n`);
    writeFileSync(join(d, 'base'), `${c.base}\n`);
    writeFileSync(join(d, 'ngpio'), `${c.ngpio}\n`);
  }
  return root;
}
