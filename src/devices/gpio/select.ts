import type { Logger } from '../../runtime/log.js';
import type { FaultSink } from '../faults.js';
import { LibgpiodBackend } from './libgpiod-backend.js';
import { OnoffBackend, type OnoffFactory } from './onoff-backend.js';
import { DEFAULT_SYSFS_ROOT, resolveHeaderChip, sysfsExportWritable } from './sysfs.js';
import { GpioError, type GpioBackend } from './types.js';

// `gpio.backend: auto` tries libgpiod first, then onoff. libgpiod first because it is the
// kernel's supported interface (sysfs GPIO is deprecated and already gone from some kernels) and
// because it can set the pull-up a button needs, which sysfs cannot. onoff is the fallback for an
// image without the gpiod package. The choice and the reason are logged at start and shown by
// `qrkiosk hardware`.

export type BackendChoice = 'auto' | 'onoff' | 'libgpiod';

export interface SelectOptions {
  backend: BackendChoice;
  /** every BCM pin the hardware uses, so libgpiod can locate them all before anything starts */
  pins: number[];
  sysfsRoot?: string;
  chipLabel?: string;
  lineNames?: Record<number, string>;
  logger?: Logger;
  faults?: FaultSink;
  /** tests: the onoff Gpio constructor (OnoffTwin) */
  onoffFactory?: OnoffFactory;
  /** environment of the libgpiod tools (tests: stand-ins first on PATH) */
  env?: NodeJS.ProcessEnv;
}

export async function selectGpioBackend(opts: SelectOptions): Promise<GpioBackend> {
  const tried: string[] = [];
  const root = opts.sysfsRoot ?? DEFAULT_SYSFS_ROOT;

  if (opts.backend === 'libgpiod' || opts.backend === 'auto') {
    const probe = await LibgpiodBackend.probe(opts.pins, opts.lineNames, opts.env);
    if (probe.ok) {
      const reason = opts.backend === 'auto' ? 'auto: libgpiod tools found and every line located by name' : 'configured (gpio.backend: libgpiod)';
      const b = new LibgpiodBackend({
        version: probe.version,
        lines: probe.lines,
        reason,
        ...(opts.logger ? { logger: opts.logger } : {}),
        ...(opts.faults ? { faults: opts.faults } : {}),
        ...(opts.env ? { env: opts.env } : {}),
      });
      opts.logger?.info({ backend: 'libgpiod', version: probe.version.text, reason }, `gpio backend: libgpiod v${probe.version.text} (${reason})`);
      return b;
    }
    tried.push(`libgpiod: ${probe.reason}`);
  }

  if (opts.backend === 'onoff' || opts.backend === 'auto') {
    try {
      const chip = resolveHeaderChip(root, opts.chipLabel);
      // a test twin needs no writable export file; the real onoff does
      const w = opts.onoffFactory ? ({ ok: true } as const) : sysfsExportWritable(root);
      if (!w.ok) throw new GpioError(w.reason);
      const reason =
        opts.backend === 'auto' ? `auto: ${tried[0] ?? 'libgpiod not usable'}; sysfs works` : 'configured (gpio.backend: onoff)';
      const b = OnoffBackend.open({
        sysfsRoot: root,
        reason,
        ...(opts.chipLabel ? { chipLabel: opts.chipLabel } : {}),
        ...(opts.onoffFactory ? { factory: opts.onoffFactory } : {}),
        ...(opts.logger ? { logger: opts.logger } : {}),
      });
      opts.logger?.info(
        { backend: 'onoff', chip: chip.label, base: chip.base, reason },
        `gpio backend: onoff (sysfs ${chip.dir} "${chip.label}" base ${chip.base}; ${reason})`,
      );
      for (const w of b.describe().warnings) opts.logger?.warn(w);
      return b;
    } catch (err) {
      tried.push(`onoff: ${(err as Error).message}`);
    }
  }

  throw new GpioError(
    `key "hardware.gpio.backend" (${opts.backend}): no GPIO backend works on this machine:\n  - ${tried.join('\n  - ')}\n` +
      'Fix: install the gpiod package (apt install gpiod) and install hardware/udev/99-qrkiosk.rules (group qrkiosk gets /dev/gpiochip*), or run on a kernel with sysfs GPIO.',
  );
}
