import type { Logger } from '../runtime/log.js';
import { PulseDispenser, type Dispenser, type DropSensor, type DropWatch, type Motor, type VendOutcome } from './dispenser.js';
import type { FaultSink } from './faults.js';
import type { GpioBackend, GpioInput, GpioOutput, Level, Pull } from './gpio/types.js';
import type { DeviceReport, Describable } from './report.js';

// The spiral machine on GPIO: one relay output per slot drives that slot's motor for a pulse, an
// IR beam across the delivery chute (a light curtain or a single emitter/receiver pair) says
// whether something fell. The retry policy is PulseDispenser's, shared with every other
// dispenser; this file only knows pins.
//
// Drop sensor: a product crossing the beam is a short interruption — often a few milliseconds —
// so the sensor is NOT debounced and is watched by EDGE: any edge into "interrupted" inside the
// window counts, even when the line reads "clear" again by the time the backend looks. A beam
// that is interrupted before the first pulse means the sensor cannot tell us anything (dirty or
// misaligned optics, a product lodged in the chute, a cut wire reading as interrupted): the motor
// is not started and the vend fails (the relay refunds), with one fault report until the beam
// clears. A beam still interrupted clearMs after a drop is reported too (product stuck in the
// chute: the next customer's vend would fail).
//
// Motor feedback (optional): many spiral motors have a cam switch that opens and closes as the
// motor turns. If one is wired, a pulse during which it never changed means the motor did not
// turn: the slot is jammed and is not pulsed again.

export interface GpioDispenserConfig {
  pulseMs: number;
  maxPulseMs: number;
  dropWindowMs: number;
  maxPulses: number;
  motors: { activeLow: boolean; pins: Record<number, number> };
  sensor: { pin: number; activeLow: boolean; pull: Pull; clearMs: number };
  feedback?: { activeLow: boolean; pull: Pull; pins: Record<number, number> };
}

export class GpioDropSensor implements DropSensor {
  private clearTimer: NodeJS.Timeout | undefined;
  private readonly unsubscribe: () => void;
  readonly device: string;

  constructor(
    private readonly input: GpioInput,
    private readonly activeLow: boolean,
    private readonly clearMs: number,
    private readonly faults?: FaultSink,
  ) {
    this.device = `drop sensor (GPIO${input.bcm})`;
    this.unsubscribe = input.onChange(() => {
      if (!this.broken()) {
        if (this.clearTimer) clearTimeout(this.clearTimer);
        this.clearTimer = undefined;
        this.faults?.clear(this.device, 'blocked', 'beam clear again');
      }
    });
    if (this.broken()) this.blocked('interrupted at start: clean or align the sensor, or clear the chute');
  }

  /** the beam is interrupted now */
  broken(): boolean {
    return this.isBroken(this.input.level());
  }

  private isBroken(level: Level): boolean {
    return this.activeLow ? level === 0 : level === 1;
  }

  blocked(message: string): void {
    this.faults?.condition(this.device, 'blocked', message);
  }

  watch(windowMs: number): DropWatch {
    const blockedAtStart = this.broken();
    // before a retry this is the last product resting in the beam: it must clear soon
    if (blockedAtStart) this.armClearCheck();
    let done!: (v: boolean) => void;
    const seen = new Promise<boolean>((resolve) => (done = resolve));
    let finished = false;
    // no timer while the motor turns: the window starts when the pulse ends (DropWatch.pulseEnded)
    let timer: NodeJS.Timeout | undefined;
    const finish = (v: boolean) => {
      if (finished) return;
      finished = true;
      clearTimeout(timer);
      off();
      if (v) this.armClearCheck();
      done(v);
    };
    // Edges, not levels: the backend may only look at the line 20 ms after a 2 ms break, when the
    // beam is clear again. Any edge into "interrupted" inside the window is the product.
    const off = this.input.onEdge((level) => {
      if (this.isBroken(level)) finish(true);
    });
    const pulseEnded = () => {
      if (!finished && timer === undefined) timer = setTimeout(() => finish(false), windowMs);
    };
    return { seen, cancel: () => finish(false), blockedAtStart, pulseEnded };
  }

  private armClearCheck(): void {
    if (this.clearMs <= 0) return;
    if (this.clearTimer) clearTimeout(this.clearTimer);
    this.clearTimer = setTimeout(() => {
      this.clearTimer = undefined;
      if (this.broken()) this.blocked(`beam still interrupted ${this.clearMs} ms after a drop: product stuck in the chute?`);
    }, this.clearMs);
  }

  close(): void {
    if (this.clearTimer) clearTimeout(this.clearTimer);
    this.unsubscribe();
  }
}

export class GpioMotor implements Motor {
  constructor(
    private readonly outputs: Map<number, GpioOutput>,
    private readonly feedback: Map<number, GpioInput>,
    private readonly logger?: Logger,
  ) {}

  async pulse(slot: number, ms: number): Promise<'ok' | 'stalled'> {
    const out = this.outputs.get(slot);
    if (!out) throw new Error(`slot ${slot} has no motor output: add it to hardware.dispenser.motors.pins`);
    const fb = this.feedback.get(slot);
    let changes = 0;
    const off = fb?.onChange(() => changes++);
    try {
      await out.pulse(ms);
    } finally {
      off?.();
    }
    if (fb && changes === 0) {
      this.logger?.warn({ slot, bcm: fb.bcm }, `slot ${slot}: motor feedback switch did not move during the pulse`);
      return 'stalled';
    }
    return 'ok';
  }

  stop(): void {
    for (const out of this.outputs.values()) {
      void out.safe().catch((err: unknown) => this.logger?.error({ err, bcm: out.bcm }, 'could not drive a motor output safe'));
    }
  }
}

export class GpioDispenser implements Dispenser, Describable {
  private readonly inner: PulseDispenser;

  private constructor(
    private readonly cfg: GpioDispenserConfig,
    private readonly outputs: Map<number, GpioOutput>,
    private readonly sensorInput: GpioInput,
    readonly sensor: GpioDropSensor,
    private readonly feedback: Map<number, GpioInput>,
    private readonly motor: GpioMotor,
    logger: Logger | undefined,
    onPulse: ((slot: number, pulse: number) => void) | undefined,
  ) {
    this.inner = new PulseDispenser(motor, sensor, {
      pulseMs: cfg.pulseMs,
      dropWindowMs: cfg.dropWindowMs,
      maxPulses: cfg.maxPulses,
      ...(logger ? { logger } : {}),
      ...(onPulse ? { onPulse } : {}),
    });
  }

  /** Opens every output at its safe level first, then the inputs. */
  static async open(
    backend: GpioBackend,
    cfg: GpioDispenserConfig,
    opts: { faults?: FaultSink; logger?: Logger; onPulse?: (slot: number, pulse: number) => void } = {},
  ): Promise<GpioDispenser> {
    const outputs = new Map<number, GpioOutput>();
    const safeLevel: Level = cfg.motors.activeLow ? 1 : 0;
    for (const [slot, bcm] of Object.entries(cfg.motors.pins)) {
      outputs.set(Number(slot), await backend.output({ bcm, safeLevel, maxPulseMs: cfg.maxPulseMs, role: `slot ${slot} motor` }));
    }
    const sensorInput = await backend.input({ bcm: cfg.sensor.pin, pull: cfg.sensor.pull, role: 'drop sensor' });
    const feedback = new Map<number, GpioInput>();
    for (const [slot, bcm] of Object.entries(cfg.feedback?.pins ?? {})) {
      feedback.set(Number(slot), await backend.input({ bcm, pull: cfg.feedback!.pull, role: `slot ${slot} motor feedback` }));
    }
    const sensor = new GpioDropSensor(sensorInput, cfg.sensor.activeLow, cfg.sensor.clearMs, opts.faults);
    const motor = new GpioMotor(outputs, feedback, opts.logger);
    return new GpioDispenser(cfg, outputs, sensorInput, sensor, feedback, motor, opts.logger, opts.onPulse);
  }

  vend(slot: number): Promise<VendOutcome> {
    // PulseDispenser refuses to start the motor on a blocked beam; the technician hears why here
    if (this.sensor.broken()) this.sensor.blocked('beam interrupted before the first pulse: sensor dirty/misaligned or a product stuck in the chute');
    return this.inner.vend(slot);
  }

  safe(): void {
    this.motor.stop();
  }

  close(): void {
    this.motor.stop();
    this.sensor.close();
  }

  describe(): DeviceReport {
    const c = this.cfg;
    return {
      role: 'dispenser',
      driver: 'gpio',
      status: this.sensor.broken() ? 'fault' : 'ok',
      detail: `pulse ${c.pulseMs} ms (hard max ${c.maxPulseMs} ms), drop window ${c.dropWindowMs} ms, up to ${c.maxPulses} pulse(s); relays ${c.motors.activeLow ? 'active low' : 'active high'}`,
      lines: [
        ...[...this.outputs.entries()].map(([slot, o]) => ({
          function: `motor slot ${slot}`,
          name: `GPIO${o.bcm}`,
          where: o.where,
          state: o.level() === o.safeLevel ? 'off' : 'ON',
        })),
        {
          function: 'drop sensor',
          name: `GPIO${this.sensorInput.bcm}`,
          where: this.sensorInput.where,
          state: this.sensor.broken() ? 'beam interrupted' : 'beam clear',
        },
        ...[...this.feedback.entries()].map(([slot, i]) => ({
          function: `feedback slot ${slot}`,
          name: `GPIO${i.bcm}`,
          where: i.where,
          state: `level ${i.level()}`,
        })),
      ],
    };
  }
}
