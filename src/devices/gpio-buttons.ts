import { ButtonChannel, DeviceButtons } from './button-logic.js';
import type { FaultSink } from './faults.js';
import type { GpioBackend, GpioInput, Level, Pull } from './gpio/types.js';
import type { DeviceReport } from './report.js';
import type { Logger } from '../runtime/log.js';

// Product buttons (and an optional cancel button) on GPIO inputs. The pins are opened by open()
// at agent start, so a missing line or a busy pin stops the agent with a clear message instead of
// a kiosk whose buttons silently do nothing; start() only begins listening.

export interface GpioButtonsConfig {
  /** slot -> BCM pin */
  pins: Record<number, number>;
  /** BCM pin of the cancel button */
  cancel?: number;
  /** pressed = low (button to GND with a pull-up): the usual wiring */
  activeLow: boolean;
  pull: Pull;
  debounceMs: number;
  holdToCancelMs: number;
  stuckMs: number;
}

interface Wired {
  channel: ButtonChannel;
  input: GpioInput;
  unsubscribe?: () => void;
}

export class GpioButtons extends DeviceButtons {
  private started = false;

  private constructor(
    private readonly cfg: GpioButtonsConfig,
    private readonly wired: Wired[],
    private readonly backendKind: string,
    logger?: Logger,
  ) {
    super('gpio', logger);
  }

  static async open(backend: GpioBackend, cfg: GpioButtonsConfig, faults?: FaultSink, logger?: Logger): Promise<GpioButtons> {
    const targets: Array<[number | 'cancel', number]> = Object.entries(cfg.pins).map(([slot, bcm]) => [Number(slot), bcm]);
    if (cfg.cancel !== undefined) targets.push(['cancel', cfg.cancel]);
    const wired: Wired[] = [];
    const self = new GpioButtons(cfg, wired, backend.kind, logger);
    for (const [target, bcm] of targets) {
      const fn = target === 'cancel' ? 'cancel' : `slot ${target}`;
      const input = await backend.input({ bcm, pull: cfg.pull, role: `${fn} button` });
      const channel = new ButtonChannel(
        {
          name: `${fn} (GPIO${bcm})`,
          function: fn,
          debounceMs: cfg.debounceMs,
          holdMs: target === 'cancel' ? 0 : cfg.holdToCancelMs,
          stuckMs: cfg.stuckMs,
        },
        target === 'cancel' ? self.cancelActions() : self.slotActions(target),
        faults,
      );
      wired.push({ channel, input });
    }
    return self;
  }

  private active(level: Level): boolean {
    return this.cfg.activeLow ? level === 0 : level === 1;
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    for (const w of this.wired) {
      w.channel.init(this.active(w.input.level()));
      w.unsubscribe = w.input.onChange((level) => w.channel.feed(this.active(level)));
    }
  }

  describe(): DeviceReport {
    return {
      role: 'buttons',
      driver: 'gpio',
      status: 'ok',
      detail: `${this.wired.length} input(s) on ${this.backendKind}, ${this.cfg.activeLow ? 'active low' : 'active high'}, pull ${this.cfg.pull}, debounce ${this.cfg.debounceMs} ms${this.cfg.holdToCancelMs ? `, hold ${this.cfg.holdToCancelMs} ms to cancel` : ''}`,
      lines: this.wired.map((w) => ({
        function: w.channel.opts.function,
        name: `GPIO${w.input.bcm}`,
        where: w.input.where,
        state: w.channel.isStuck ? 'STUCK' : w.channel.pressed ? 'pressed' : 'released',
      })),
    };
  }

  override close(): void {
    for (const w of this.wired) {
      w.unsubscribe?.();
      w.channel.dispose();
    }
    super.close();
  }
}
