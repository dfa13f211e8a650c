import { existsSync, readFileSync, writeFileSync } from 'node:fs';

// The kernel's own record of the levels GPIO lines were driven to: the gpio_value tracepoint
// (include/trace/events/gpio.h) fires in gpiolib for every output level set, whoever sets it (a
// gpioset request, a sysfs write). It stands in for what gpio-sim cannot show: on a Raspberry Pi a
// line whose holder exits keeps the LAST level it was driven to, while gpio-sim returns it to its
// pull. The last `set` recorded for a line is therefore the level a Pi's pin would be left at.

const TRACING = '/sys/kernel/tracing';

export interface GpioSet {
  /** global GPIO number (chip base + offset) */
  gpio: number;
  value: 0 | 1;
  /** kernel trace clock, ms */
  atMs: number;
}

export class GpioTrace {
  private constructor() {}

  /** starts recording gpio_value events from now on (an empty buffer) */
  static start(): GpioTrace {
    if (!existsSync(`${TRACING}/events/gpio/gpio_value/enable`)) {
      throw new Error(`${TRACING}/events/gpio missing: tracefs not mounted or the kernel lacks GPIO tracepoints (run inside the lab)`);
    }
    writeFileSync(`${TRACING}/events/gpio/gpio_value/enable`, '1');
    writeFileSync(`${TRACING}/trace`, ''); // clears the buffer
    writeFileSync(`${TRACING}/tracing_on`, '1');
    return new GpioTrace();
  }

  /** every level set so far, oldest first (reading does not consume) */
  sets(): GpioSet[] {
    const out: GpioSet[] = [];
    for (const line of readFileSync(`${TRACING}/trace`, 'utf8').split('\n')) {
      const m = /\s(\d+\.\d+): gpio_value: (\d+) set (\d+)/.exec(line);
      if (m) out.push({ gpio: Number(m[2]), value: m[3] === '0' ? 0 : 1, atMs: Number(m[1]) * 1000 });
    }
    return out;
  }

  /** the levels line `gpio` was set to, in order */
  setsOf(gpio: number): Array<0 | 1> {
    return this.sets()
      .filter((s) => s.gpio === gpio)
      .map((s) => s.value);
  }

  /**
   * The first time line `gpio` was driven to `active` and then away from it: the pulse's width in
   * kernel time (ms), exact whatever the load (undefined while it has not ended).
   */
  pulseWidthMs(gpio: number, active: 0 | 1): number | undefined {
    const sets = this.sets().filter((s) => s.gpio === gpio);
    const on = sets.findIndex((s) => s.value === active);
    if (on < 0) return undefined;
    const off = sets.slice(on + 1).find((s) => s.value !== active);
    return off ? off.atMs - sets[on]!.atMs : undefined;
  }

  /** the level a Raspberry Pi would keep on the line once nobody holds it */
  lastSet(gpio: number): 0 | 1 | undefined {
    return this.setsOf(gpio).at(-1);
  }

  stop(): void {
    writeFileSync(`${TRACING}/events/gpio/gpio_value/enable`, '0');
  }
}
