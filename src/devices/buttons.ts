import { EventEmitter } from 'node:events';
import type { Logger } from '../runtime/log.js';

// The product buttons (and the customer's cancel button). GPIO drivers will implement the same
// small interface; the session only ever sees "slot N was pressed" / "cancel was pressed".

/**
 * What a selection source knows besides the slot. A vending machine on MDB chooses on its own
 * keypad and asks a price: the session checks that price against the catalog.
 */
export interface SelectionDetail {
  /** which driver saw the press, for logs ("serial-panel", "mdb", ...) */
  source: string;
  /** the machine's own item number (MDB) */
  item?: number;
  /** the price the machine asks, as the decimal text it sent ("1500.00") */
  machinePrice?: string;
  /** how far (decimal, catalog currency) that price may differ from the catalog; absent = must match */
  trustMachinePriceWithin?: string;
}

/** What the selection came to (the session's SelectResult fits): MDB denies a refused request. */
export interface SelectionAnswer {
  ok: boolean;
  orderId?: string;
  reason?: string;
  message?: string;
}

export function isSelectionAnswer(v: unknown): v is SelectionAnswer {
  return typeof v === 'object' && v !== null && typeof (v as { ok?: unknown }).ok === 'boolean';
}

/** An order's state change, as much of it as a device needs (MDB: cancel/expiry -> deny). */
export interface OrderChange {
  orderId: string;
  to: string;
}

export interface Buttons {
  /**
   * returns an unsubscribe function. The listener may return what became of the selection (a
   * SelectionAnswer), so a source that must answer someone (the MDB machine waiting for
   * approval) knows; sources that do not care ignore the return value.
   */
  onPress(listener: (slot: number, detail?: SelectionDetail) => unknown): () => void;
  onCancel(listener: () => void): () => void;
  /** optional: every order state change, for sources that hold the machine's request open */
  orderChanged?(change: OrderChange): void;
  start(): void;
  close(): void;
}

abstract class EmitterButtons implements Buttons {
  protected readonly events = new EventEmitter();

  onPress(listener: (slot: number, detail?: SelectionDetail) => unknown): () => void {
    this.events.on('press', listener);
    return () => this.events.off('press', listener);
  }

  onCancel(listener: () => void): () => void {
    this.events.on('cancel', listener);
    return () => this.events.off('cancel', listener);
  }

  start(): void {}
  close(): void {
    this.events.removeAllListeners();
  }
}

/** Buttons pressed by code: tests, the demo, the control socket. */
export class SimButtons extends EmitterButtons {
  press(slot: number): void {
    this.events.emit('press', slot);
  }
  pressCancel(): void {
    this.events.emit('cancel');
  }
}

/** No physical buttons: selection only through the control socket. */
export class NoButtons extends EmitterButtons {}

type KeyInput = NodeJS.ReadableStream & { isTTY?: boolean; setRawMode?: (raw: boolean) => unknown };

/**
 * Keys 1-9 select slots 1-9, C or 0 cancels, on a terminal in raw mode (a USB keypad on the Pi
 * types digits like a keyboard). Raw mode swallows Ctrl-C, so it is turned back into SIGINT to
 * keep the graceful shutdown path.
 */
export class KeyboardButtons extends EmitterButtons {
  private readonly onData = (chunk: Buffer | string) => this.handle(typeof chunk === 'string' ? chunk : chunk.toString('utf8'));
  private active = false;

  constructor(
    private readonly input: KeyInput = process.stdin,
    private readonly logger?: Logger,
  ) {
    super();
  }

  override start(): void {
    if (!this.input.isTTY || !this.input.setRawMode) {
      this.logger?.warn('keyboard buttons: stdin is not a terminal, keys are ignored (use `qrkiosk select <slot>` or buttons.driver: none)');
      return;
    }
    this.input.setRawMode(true);
    this.input.on('data', this.onData);
    this.input.resume();
    this.active = true;
  }

  handle(keys: string): void {
    for (const k of keys) {
      if (k === '\u0003') {
        process.kill(process.pid, 'SIGINT');
      } else if (k >= '1' && k <= '9') {
        this.events.emit('press', Number(k));
      } else if (k === 'c' || k === 'C' || k === '0') {
        this.events.emit('cancel');
      }
    }
  }

  override close(): void {
    if (this.active) {
      this.input.off('data', this.onData);
      this.input.setRawMode?.(false);
      this.input.pause();
      this.active = false;
    }
    super.close();
  }
}
