import { EventEmitter } from 'node:events';
import type { Logger } from '../runtime/log.js';
import type { Buttons } from './buttons.js';
import type { FaultSink } from './faults.js';
import type { DeviceReport, Describable, InputEvent, InputObservable } from './report.js';

// What every physical button driver (GPIO, USB HID encoder, evdev keypad) does the same way:
//
// - Debounce BY LEVEL: a new level counts only once it has stayed put for debounceMs. A contact
//   bouncing for a few ms on press gives one press; a 2 ms spike from a motor switching on gives
//   none. (onoff's own debounce only delays the callback and then reports whatever the level is,
//   which lets a spike through; gpiomon has no debounce in v1.)
// - Hold to cancel: on a machine without a cancel button, holding a product button for
//   holdToCancelMs cancels the open order. Once per press.
// - Stuck detection: a button pressed for stuckMs is reported once as a fault (a jammed switch,
//   a wire shorted to ground, a wrong pull setting); it made at most one selection, and nothing
//   more happens until it is released. A button already pressed when the agent starts selects
//   nothing (it is either stuck or someone leaning on it).

export type PressListener = Parameters<Buttons['onPress']>[0];

export interface ChannelOptions {
  /** for logs and faults: "slot 3 (GPIO22)" */
  name: string;
  /** what it does, for the live view: "slot 3", "cancel", "digit 4" */
  function: string;
  /** 0: no debounce (USB devices debounce in their firmware) */
  debounceMs: number;
  /** hold this long to fire onHold (hold to cancel); 0: off */
  holdMs: number;
  /** 0: off */
  stuckMs: number;
}

export interface ChannelActions {
  /** the debounced press */
  press(): void;
  /** held for holdMs (once per press) */
  hold?(): void;
  input(e: InputEvent): void;
}

export class ButtonChannel {
  private stable = false;
  private pending = false;
  private bounces = 0;
  private debounceTimer: NodeJS.Timeout | undefined;
  private holdTimer: NodeJS.Timeout | undefined;
  private stuckTimer: NodeJS.Timeout | undefined;
  private stuck = false;
  private disposed = false;

  constructor(
    readonly opts: ChannelOptions,
    private readonly actions: ChannelActions,
    private readonly faults?: FaultSink,
  ) {}

  get pressed(): boolean {
    return this.stable;
  }

  get isStuck(): boolean {
    return this.stuck;
  }

  /**
   * The level found at start (or after a device came back): no selection, but a button held from
   * the start can still be stuck.
   */
  init(active: boolean): void {
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
    this.clearTimers();
    if (!active && this.stuck) {
      this.stuck = false;
      this.faults?.clear(this.opts.name, 'stuck', 'released');
    }
    this.stable = active;
    this.pending = active;
    this.bounces = 0;
    if (active && !this.stuck) this.armStuck();
  }

  /** A raw level as the device reports it (true = pressed). */
  feed(active: boolean): void {
    if (this.disposed) return;
    if (this.opts.debounceMs <= 0) {
      if (active !== this.stable) this.commit(active);
      return;
    }
    if (active === this.pending) return;
    this.pending = active;
    this.bounces++;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
    // back at the stable level before the window ran out: a glitch, nothing happened
    if (active === this.stable) return;
    this.debounceTimer = setTimeout(() => {
      this.debounceTimer = undefined;
      this.commit(this.pending);
    }, this.opts.debounceMs);
  }

  private commit(active: boolean): void {
    if (active === this.stable) return;
    this.stable = active;
    // the committing change itself is not a bounce
    const bounces = Math.max(0, this.bounces - 1);
    this.bounces = 0;
    this.actions.input({ at: Date.now(), input: this.opts.name, function: this.opts.function, state: active ? 'down' : 'up', bounces });
    if (active) {
      this.actions.press();
      const hold = this.actions.hold;
      if (this.opts.holdMs > 0 && hold) {
        this.holdTimer = setTimeout(() => {
          this.holdTimer = undefined;
          hold();
        }, this.opts.holdMs);
      }
      this.armStuck();
    } else {
      this.clearTimers();
      if (this.stuck) {
        this.stuck = false;
        this.faults?.clear(this.opts.name, 'stuck', 'released');
      }
    }
  }

  private armStuck(): void {
    if (this.opts.stuckMs <= 0) return;
    if (this.stuckTimer) clearTimeout(this.stuckTimer);
    this.stuckTimer = setTimeout(() => {
      this.stuckTimer = undefined;
      this.stuck = true;
      this.faults?.condition(
        this.opts.name,
        'stuck',
        `pressed for ${Math.round(this.opts.stuckMs / 100) / 10} s: stuck switch, shorted wire or wrong activeLow/pull setting; ignored until released`,
      );
    }, this.opts.stuckMs);
  }

  private clearTimers(): void {
    if (this.holdTimer) clearTimeout(this.holdTimer);
    if (this.stuckTimer) clearTimeout(this.stuckTimer);
    this.holdTimer = undefined;
    this.stuckTimer = undefined;
  }

  dispose(): void {
    this.disposed = true;
    if (this.debounceTimer) clearTimeout(this.debounceTimer);
    this.debounceTimer = undefined;
    this.clearTimers();
  }
}

/** Base of the physical button drivers: the Buttons events plus the live input view. */
export abstract class DeviceButtons implements Buttons, Describable, InputObservable {
  protected readonly events = new EventEmitter();

  constructor(
    protected readonly source: string,
    protected readonly logger?: Logger,
  ) {
    // the agent, each `qrkiosk test buttons` viewer and tests all subscribe
    this.events.setMaxListeners(50);
  }

  /**
   * Emits from a timer or a device callback: a listener that throws must not crash the agent
   * (an uncaught exception in a timer ends the process with the motor relay in whatever state).
   */
  private safeEmit(event: string, ...args: unknown[]): void {
    try {
      this.events.emit(event, ...args);
    } catch (err) {
      this.logger?.error({ err, event }, `${this.source} buttons: a listener failed`);
    }
  }

  /** Actions of a button that selects `slot` (hold: cancel, when holdMs is set). */
  protected slotActions(slot: number): ChannelActions {
    return {
      press: () => this.emitPress(slot),
      hold: () => this.emitCancel(),
      input: (e) => this.emitInput(e),
    };
  }

  protected cancelActions(): ChannelActions {
    return { press: () => this.emitCancel(), input: (e) => this.emitInput(e) };
  }

  protected emitPress(slot: number): void {
    this.safeEmit('press', slot);
  }

  protected emitCancel(): void {
    this.safeEmit('cancel');
  }

  protected emitInput(e: InputEvent): void {
    this.safeEmit('input', e);
  }

  onPress(listener: PressListener): () => void {
    const l = (slot: number) => listener(slot, { source: this.source });
    this.events.on('press', l);
    return () => this.events.off('press', l);
  }

  onCancel(listener: () => void): () => void {
    this.events.on('cancel', listener);
    return () => this.events.off('cancel', listener);
  }

  onInput(listener: (e: InputEvent) => void): () => void {
    this.events.on('input', listener);
    return () => this.events.off('input', listener);
  }

  abstract start(): void;
  abstract describe(): DeviceReport;

  close(): void {
    this.events.removeAllListeners();
  }
}
