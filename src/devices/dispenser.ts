import { appendFileSync, mkdirSync } from 'node:fs';
import { dirname } from 'node:path';
import type { Logger } from '../runtime/log.js';

// Dispensing = pulse the slot's motor, watch the drop sensor (an IR curtain across the chute) from
// just before the pulse until a window after the pulse ENDS, pulse again if nothing fell, up to
// maxPulses. The window is counted from the end of the pulse, not from arming: a pulse that ran
// long (a long pulseMs, a motor the backend started late) must not eat the time a product needs to
// fall, or a product still falling is missed and the retry drops a second one for one payment. A stalled
// motor is a jam: stop at once, never pulse a jammed spiral again. The motor and the sensor are
// separate interfaces so a GPIO relay board and a GPIO sensor input slot in without touching the
// retry policy.

export type DispenseResult = 'dispensed' | 'vend_failed' | 'jammed';

export interface VendOutcome {
  result: DispenseResult;
  /** motor pulses actually started; the relay and the technician want this */
  pulses: number;
  detail?: string;
}

/** The paid order a vend is for: machines that take payment themselves (MDB card-first) need the amount. */
export interface VendOrder {
  orderId: string;
  /** minor units */
  amount: number;
  currency: string;
}

export interface Dispenser {
  vend(slot: number, order?: VendOrder): Promise<VendOutcome>;
  /** drive every output to its safe state (motors off) — shutdown and fault paths */
  safe(): void;
  close(): void;
}

export interface Motor {
  /** runs the slot's motor for ms; 'stalled' when the motor could not turn (jam) */
  pulse(slot: number, ms: number): Promise<'ok' | 'stalled'>;
  /** all motors off now */
  stop(): void;
}

export interface DropWatch {
  /** true when a product crossed the sensor within the window */
  seen: Promise<boolean>;
  cancel(): void;
  /**
   * The beam was already interrupted when the watch was armed (sensors that can tell: an IR beam
   * on GPIO). Before the first pulse that is a sensor fault; before a retry it is the product
   * from the previous pulse still falling or resting in the beam.
   */
  blockedAtStart?: boolean;
  /**
   * The motor's pulse is over: the window starts now. Until then the watch stays open however
   * long the motor turns (the motor's own hard maximum ends a pulse; a backend may also start
   * the motor late: the libgpiod backend spawns a gpioset, hundreds of ms on a loaded Pi).
   */
  pulseEnded(): void;
}

export interface DropSensor {
  /**
   * Starts watching now (a light product can cross while the motor still turns); the watch ends
   * windowMs after pulseEnded(), or at the first drop, or at cancel().
   */
  watch(windowMs: number): DropWatch;
}

export interface PulseOptions {
  pulseMs: number;
  dropWindowMs: number;
  maxPulses: number;
  /** called after each pulse has started the motor (pulse number from 1); crash tests hook here */
  onPulse?: (slot: number, pulse: number) => void;
  logger?: Logger;
}

export class DispenserBusy extends Error {
  override name = 'DispenserBusy';
}

export class PulseDispenser implements Dispenser {
  private busy = false;

  constructor(
    private readonly motor: Motor,
    private readonly sensor: DropSensor,
    private readonly opts: PulseOptions,
  ) {}

  async vend(slot: number): Promise<VendOutcome> {
    // One motor at a time: two spirals turning at once could drop two products for one payment.
    if (this.busy) throw new DispenserBusy('dispenser is already vending');
    this.busy = true;
    try {
      for (let pulse = 1; pulse <= this.opts.maxPulses; pulse++) {
        // Arm first: a light product can cross the sensor while the motor is still turning.
        const watch = this.sensor.watch(this.opts.dropWindowMs);
        if (watch.blockedAtStart) {
          watch.cancel();
          if (pulse === 1) {
            this.opts.logger?.error({ slot }, 'drop sensor blocked before the first pulse: not dispensing');
            return { result: 'vend_failed', pulses: 0, detail: 'drop sensor blocked before the first pulse (sensor fault or product stuck in the chute): motor not started' };
          }
          // it fell at the very end of the last window: pulsing again could drop a second product
          this.opts.logger?.warn({ slot, pulse }, 'product in the drop sensor beam before the retry: counted as dispensed');
          return { result: 'dispensed', pulses: pulse - 1, detail: 'product seen in the beam after the window closed' };
        }
        let motor: 'ok' | 'stalled';
        try {
          const running = this.motor.pulse(slot, this.opts.pulseMs);
          this.opts.onPulse?.(slot, pulse);
          motor = await running;
          watch.pulseEnded();
        } catch (err) {
          watch.cancel();
          this.motor.stop();
          throw err;
        }
        if (motor === 'stalled') {
          watch.cancel();
          this.motor.stop();
          this.opts.logger?.warn({ slot, pulse }, 'motor stalled: jammed, not pulsing again');
          return { result: 'jammed', pulses: pulse, detail: `motor stalled on pulse ${pulse}` };
        }
        if (await watch.seen) return { result: 'dispensed', pulses: pulse };
        this.opts.logger?.warn({ slot, pulse, windowMs: this.opts.dropWindowMs }, 'no drop seen after pulse');
      }
      return {
        result: 'vend_failed',
        pulses: this.opts.maxPulses,
        detail: `no drop seen after ${this.opts.maxPulses} pulse(s)`,
      };
    } finally {
      this.busy = false;
    }
  }

  safe(): void {
    this.motor.stop();
  }

  close(): void {
    this.motor.stop();
  }
}

// ---- simulation ---------------------------------------------------------------------------------

export type SimFault = 'none' | 'jam' | 'no_drop' | 'slow_drop';

export interface SimOptions {
  pulseMs: number;
  dropWindowMs: number;
  maxPulses: number;
  fault: SimFault;
  /** ms after a pulse starts when the product falls (fault none) */
  dropDelayMs: number;
  /** ms after a pulse starts when the product falls (fault slow_drop) */
  slowDropMs: number;
  /** a file the motor appends one JSON line to per pulse: survives restarts, for tests/technicians */
  pulseLog?: string;
  onPulse?: (slot: number, pulse: number) => void;
  logger?: Logger;
}

/** The simulated chute: a drop "happens" at a time the motor decides, the sensor sees it. */
class SimSensor implements DropSensor {
  private readonly waiters = new Set<() => void>();

  watch(windowMs: number): DropWatch {
    let done!: (v: boolean) => void;
    const seen = new Promise<boolean>((resolve) => (done = resolve));
    const onDrop = () => finish(true);
    let timer: NodeJS.Timeout | undefined;
    const finish = (v: boolean) => {
      clearTimeout(timer);
      this.waiters.delete(onDrop);
      done(v);
    };
    this.waiters.add(onDrop);
    const pulseEnded = () => {
      if (this.waiters.has(onDrop)) timer = setTimeout(() => finish(false), windowMs);
    };
    return { seen, cancel: () => finish(false), pulseEnded };
  }

  drop(): void {
    for (const w of [...this.waiters]) w();
  }
}

class SimMotor implements Motor {
  private readonly timers = new Set<NodeJS.Timeout>();
  count = 0;

  constructor(
    private readonly sensor: SimSensor,
    private readonly opts: SimOptions,
  ) {
    if (opts.pulseLog) mkdirSync(dirname(opts.pulseLog), { recursive: true });
  }

  pulse(slot: number, ms: number): Promise<'ok' | 'stalled'> {
    this.count++;
    if (this.opts.pulseLog) {
      // appendFileSync: the line is in the kernel before the "motor" turns, so even a SIGKILL a
      // microsecond later leaves the evidence a crash test counts.
      appendFileSync(this.opts.pulseLog, JSON.stringify({ at: Date.now(), pid: process.pid, slot, pulse: this.count, ms }) + '\n');
    }
    const fault = this.opts.fault;
    const dropAt = fault === 'none' ? this.opts.dropDelayMs : fault === 'slow_drop' ? this.opts.slowDropMs : undefined;
    if (dropAt !== undefined) this.later(dropAt, () => this.sensor.drop());
    return new Promise((resolve) => this.later(ms, () => resolve(fault === 'jam' ? 'stalled' : 'ok')));
  }

  private later(ms: number, fn: () => void): void {
    const t = setTimeout(() => {
      this.timers.delete(t);
      fn();
    }, ms);
    this.timers.add(t);
  }

  stop(): void {
    // A real driver sets every relay output low here. The sim has nothing energised between
    // pulses; pending drop events stay scheduled because a product already falling still falls.
  }

  dispose(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }
}

/** Simulated motor + drop sensor behind the real retry policy. */
export class SimDispenser implements Dispenser {
  private readonly motor: SimMotor;
  private readonly inner: PulseDispenser;
  private readonly opts: SimOptions;

  constructor(opts: SimOptions) {
    // own copy: setFault() changes this kiosk's simulation, not the caller's config object
    this.opts = { ...opts };
    opts = this.opts;
    const sensor = new SimSensor();
    this.motor = new SimMotor(sensor, opts);
    this.inner = new PulseDispenser(this.motor, sensor, opts);
  }

  /** pulses started by this instance (the pulseLog counts across restarts) */
  get pulses(): number {
    return this.motor.count;
  }

  setFault(fault: SimFault): void {
    this.opts.fault = fault;
  }

  vend(slot: number): Promise<VendOutcome> {
    return this.inner.vend(slot);
  }

  safe(): void {
    this.inner.safe();
  }

  close(): void {
    this.inner.close();
    this.motor.dispose();
  }
}

/** Lines of a pulse log (tests, `journal` troubleshooting). */
export function readPulseLog(text: string): Array<{ at: number; pid: number; slot: number; pulse: number }> {
  return text
    .split('\n')
    .filter((l) => l.trim() !== '')
    .map((l) => JSON.parse(l) as { at: number; pid: number; slot: number; pulse: number });
}
