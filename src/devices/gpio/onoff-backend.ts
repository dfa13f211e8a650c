import { createRequire } from 'node:module';
import type { Logger } from '../../runtime/log.js';
import { InputLevel, pinReports } from './backend-parts.js';
import { DEFAULT_SYSFS_ROOT, resolveHeaderChip, sysfsNumber, type ResolvedChip } from './sysfs.js';
import {
  GpioError,
  type GpioBackend,
  type GpioInput,
  type GpioOutput,
  type GpioReport,
  type InputSpec,
  type Level,
  type OutputSpec,
  type Pull,
} from './types.js';

// The sysfs backend, through the `onoff` package (epoll on the value file: an edge wakes us in
// well under a millisecond, no child processes). onoff hard-codes /sys/class/gpio and takes
// absolute sysfs numbers, so the chip base is resolved here (sysfs.ts) and onoff only ever sees
// base + BCM. The Gpio constructor is injected so tests run against OnoffTwin, a model of onoff on
// a fake chip layout that fails the way the kernel does (EINVAL for a number no chip owns).

/** The part of onoff's Gpio this backend uses. */
export interface OnoffGpio {
  readSync(): Level;
  writeSync(value: Level): void;
  watch(callback: (err: Error | null | undefined, value: Level) => void): void;
  unwatchAll(): void;
  unexport(): void;
}

export type OnoffDirection = 'in' | 'out' | 'high' | 'low';
export type OnoffEdge = 'none' | 'rising' | 'falling' | 'both';
export interface OnoffOptions {
  debounceTimeout?: number;
  activeLow?: boolean;
  reconfigureDirection?: boolean;
}
export type OnoffFactory = (gpio: number, direction: OnoffDirection, edge?: OnoffEdge, options?: OnoffOptions) => OnoffGpio;

/** The real onoff, loaded only when this backend is used (it dlopens the epoll addon). */
export function loadOnoff(): OnoffFactory {
  const require = createRequire(import.meta.url);
  const { Gpio } = require('onoff') as { Gpio: new (gpio: number, direction: OnoffDirection, edge?: OnoffEdge, options?: OnoffOptions) => OnoffGpio };
  return (gpio, direction, edge, options) => new Gpio(gpio, direction, edge, options);
}

export interface OnoffBackendOptions {
  sysfsRoot?: string;
  /** force the header chip label (non-Pi boards) */
  chipLabel?: string;
  factory?: OnoffFactory;
  logger?: Logger;
  /** why this backend was picked, for the report */
  reason?: string;
  /**
   * drive outputs safe from process 'exit' (default true; tests that build many backends may turn
   * it off). No handler runs on SIGKILL, an out-of-memory kill or a watchdog abort: the sysfs value
   * stays where it was, which is why systemd runs `qrkiosk safe-outputs` after the agent ends.
   */
  exitHook?: boolean;
}

const PULL_CONFIG: Record<Exclude<Pull, 'as-is'>, string> = { up: 'pu', down: 'pd', none: 'pn' };

class OnoffInput extends InputLevel implements GpioInput {
  constructor(
    readonly bcm: number,
    readonly role: string,
    readonly where: string,
    readonly pull: Pull,
    private readonly gpio: OnoffGpio,
    logger: Logger | undefined,
  ) {
    super(gpio.readSync());
    let warned = false;
    gpio.watch((err, value) => {
      if (err) {
        if (!warned) logger?.error({ err: err.message, bcm }, `GPIO${bcm}: watch error`);
        warned = true;
        return;
      }
      // onoff reads the value file after each interrupt, by which time a short pulse may be over:
      // an interrupt that reads the level we already had was two edges (see InputLevel)
      this.interrupted(value);
    });
  }

  release(): void {
    this.dropListeners();
    try {
      this.gpio.unwatchAll();
      this.gpio.unexport();
    } catch {
      /* already gone */
    }
  }
}

class OnoffOutput implements GpioOutput {
  private current: Level;
  private pulsing: { timer: NodeJS.Timeout; done: () => void } | undefined;

  constructor(
    readonly bcm: number,
    readonly role: string,
    readonly where: string,
    readonly safeLevel: Level,
    private readonly maxPulseMs: number,
    private readonly gpio: OnoffGpio,
    private readonly logger: Logger | undefined,
  ) {
    // already exported as an output by an earlier run (reconfigureDirection: false kept it as it
    // was): drive the safe level explicitly, never trust what is on the pin
    gpio.writeSync(safeLevel);
    this.current = safeLevel;
  }

  level(): Level {
    return this.current;
  }

  pulse(ms: number): Promise<void> {
    if (this.pulsing) return Promise.reject(new GpioError(`GPIO${this.bcm} (${this.role}) is already pulsing`));
    let width = Math.max(0, Math.round(ms));
    if (width > this.maxPulseMs) {
      this.logger?.warn({ bcm: this.bcm, asked: width, max: this.maxPulseMs }, `GPIO${this.bcm}: pulse clamped to the hard maximum`);
      width = this.maxPulseMs;
    }
    return new Promise<void>((resolve) => {
      const active: Level = this.safeLevel === 1 ? 0 : 1;
      this.gpio.writeSync(active);
      this.current = active;
      const done = () => {
        clearTimeout(timer);
        this.pulsing = undefined;
        this.writeSafe();
        resolve();
      };
      const timer = setTimeout(done, width);
      this.pulsing = { timer, done };
    });
  }

  private writeSafe(): void {
    this.gpio.writeSync(this.safeLevel);
    this.current = this.safeLevel;
  }

  async safe(): Promise<void> {
    this.safeSync();
  }

  /** synchronous: usable from process 'exit' */
  safeSync(): void {
    if (this.pulsing) this.pulsing.done();
    else this.writeSafe();
  }
}

export class OnoffBackend implements GpioBackend {
  readonly kind = 'onoff' as const;
  private readonly inputs: OnoffInput[] = [];
  private readonly outputs: OnoffOutput[] = [];
  private readonly exitHook = () => this.safeAllSync();
  private closed = false;

  private constructor(
    readonly chip: ResolvedChip,
    private readonly factory: OnoffFactory,
    private readonly opts: OnoffBackendOptions,
  ) {
    if (opts.exitHook !== false) process.on('exit', this.exitHook);
  }

  /** Resolves the header chip (throws GpioError naming what was found) and loads onoff. */
  static open(opts: OnoffBackendOptions = {}): OnoffBackend {
    const chip = resolveHeaderChip(opts.sysfsRoot ?? DEFAULT_SYSFS_ROOT, opts.chipLabel);
    const factory = opts.factory ?? loadOnoff();
    return new OnoffBackend(chip, factory, opts);
  }

  private number(bcm: number): number {
    return sysfsNumber(this.chip, bcm);
  }

  private create(n: number, bcm: number, direction: OnoffDirection, edge: OnoffEdge, options?: OnoffOptions): OnoffGpio {
    try {
      return this.factory(n, direction, edge, options);
    } catch (err) {
      const code = (err as NodeJS.ErrnoException).code;
      const fix =
        code === 'EINVAL'
          ? `the kernel refused gpio${n}: no chip owns that number (chip ${this.chip.dir} "${this.chip.label}" has base ${this.chip.base})`
          : code === 'EACCES' || code === 'EPERM'
            ? 'permission denied: the agent user must be in group qrkiosk with hardware/udev/99-qrkiosk.rules installed (or in group gpio where it exists)'
            : code === 'EBUSY'
              ? 'the pin is used by a kernel driver or another program (an overlay in config.txt, a 1-wire or SPI function)'
              : (err as Error).message;
      throw new GpioError(`cannot open GPIO${bcm} as sysfs gpio${n}: ${fix}`);
    }
  }

  async input(spec: InputSpec): Promise<GpioInput> {
    if (this.closed) throw new GpioError('gpio backend is closed');
    const n = this.number(spec.bcm);
    const gpio = this.create(n, spec.bcm, 'in', 'both');
    const input = new OnoffInput(spec.bcm, spec.role, `sysfs gpio${n}`, spec.pull, gpio, this.opts.logger);
    this.inputs.push(input);
    return input;
  }

  async output(spec: OutputSpec): Promise<GpioOutput> {
    if (this.closed) throw new GpioError('gpio backend is closed');
    const n = this.number(spec.bcm);
    // 'high'/'low' set direction and level in one write, so a fresh pin never glitches to the
    // wrong level; reconfigureDirection: false leaves a pin exported by an earlier run as it is
    // (no 0 pulse on an active-low relay board) and OnoffOutput then writes the safe level.
    const gpio = this.create(n, spec.bcm, spec.safeLevel === 1 ? 'high' : 'low', 'none', { reconfigureDirection: false });
    const out = new OnoffOutput(spec.bcm, spec.role, `sysfs gpio${n}`, spec.safeLevel, spec.maxPulseMs, gpio, this.opts.logger);
    this.outputs.push(out);
    return out;
  }

  /** Every output to its safe level, synchronously (the process 'exit' path). */
  safeAllSync(): void {
    for (const o of this.outputs) {
      try {
        o.safeSync();
      } catch {
        /* keep going: the other outputs matter too */
      }
    }
  }

  describe(): GpioReport {
    const warnings: string[] = [];
    const byPull = new Map<string, number[]>();
    for (const i of this.inputs) {
      if (i.pull === 'as-is') continue;
      const code = PULL_CONFIG[i.pull];
      byPull.set(code, [...(byPull.get(code) ?? []), i.bcm]);
    }
    for (const [code, pins] of byPull) {
      warnings.push(
        `sysfs cannot set pull resistors: make sure /boot/firmware/config.txt has "gpio=${[...pins].sort((a, b) => a - b).join(',')}=ip,${code}" (or use gpio.backend: libgpiod)`,
      );
    }
    return {
      backend: 'onoff',
      detail: `sysfs ${this.chip.root}, chip ${this.chip.dir} "${this.chip.label}" base ${this.chip.base}, ${this.chip.ngpio} lines`,
      ...(this.opts.reason ? { reason: this.opts.reason } : {}),
      warnings,
      pins: pinReports(this.inputs, this.outputs),
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    // Outputs stay exported and driven at the safe level: unexporting would turn them into
    // floating inputs, and a floating relay input is not reliably "off".
    this.safeAllSync();
    for (const i of this.inputs) i.release();
    process.off('exit', this.exitHook);
  }
}
