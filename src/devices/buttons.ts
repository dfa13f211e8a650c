import { EventEmitter } from 'node:events';
import type { Logger } from '../runtime/log.js';

// The product buttons (and the customer's cancel button). GPIO drivers will implement the same
// small interface; the session only ever sees "slot N was pressed" / "cancel was pressed".

export interface Buttons {
  /** returns an unsubscribe function */
  onPress(listener: (slot: number) => void): () => void;
  onCancel(listener: () => void): () => void;
  start(): void;
  close(): void;
}

abstract class EmitterButtons implements Buttons {
  protected readonly events = new EventEmitter();

  onPress(listener: (slot: number) => void): () => void {
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
