import { EventEmitter } from 'node:events';
import type { Logger } from '../runtime/log.js';

// Hardware faults a technician must hear about: a button stuck pressed, a drop sensor blocked, a
// gpiomon child that died and was restarted, a USB keypad unplugged. A condition (stuck, blocked,
// unplugged) is reported once when it starts and once when it clears — never again while it lasts,
// so a stuck button does not flood the log every few milliseconds. A one-off event (a restarted
// process) is reported every time it happens. The recent list feeds `qrkiosk hardware` and the
// live `qrkiosk test buttons` view.

export interface Fault {
  at: number;
  /** which part: "button slot 3 (GPIO22)", "drop sensor (GPIO16)", "gpiomon GPIO17" */
  device: string;
  /** short machine-readable kind: stuck, blocked, process_died, disconnected ... */
  kind: string;
  message: string;
  /** true while a condition lasts; false for one-off events and once cleared */
  active: boolean;
  clearedAt?: number;
}

export interface FaultSink {
  /** a condition started (reported once until cleared) */
  condition(device: string, kind: string, message: string): void;
  /** the condition is over */
  clear(device: string, kind: string, message?: string): void;
  /** a one-off event */
  event(device: string, kind: string, message: string): void;
}

export class FaultLog extends EventEmitter implements FaultSink {
  private readonly list: Fault[] = [];
  private readonly open = new Map<string, Fault>();

  constructor(
    private readonly logger?: Logger,
    private readonly keep = 100,
  ) {
    super();
  }

  private push(f: Fault): void {
    this.list.push(f);
    if (this.list.length > this.keep) this.list.splice(0, this.list.length - this.keep);
    this.emit('fault', f);
  }

  condition(device: string, kind: string, message: string): void {
    const key = `${device}\u0000${kind}`;
    if (this.open.has(key)) return;
    const f: Fault = { at: Date.now(), device, kind, message, active: true };
    this.open.set(key, f);
    this.logger?.error({ device, kind }, `hardware fault: ${device}: ${message}`);
    this.push(f);
  }

  clear(device: string, kind: string, message?: string): void {
    const key = `${device}\u0000${kind}`;
    const f = this.open.get(key);
    if (!f) return;
    this.open.delete(key);
    f.active = false;
    f.clearedAt = Date.now();
    this.logger?.info({ device, kind }, `hardware fault cleared: ${device}: ${message ?? kind}`);
    this.emit('cleared', f, message);
  }

  event(device: string, kind: string, message: string): void {
    this.logger?.warn({ device, kind }, `hardware event: ${device}: ${message}`);
    this.push({ at: Date.now(), device, kind, message, active: false });
  }

  /** newest last */
  recent(limit = 20): Fault[] {
    return this.list.slice(-limit).map((f) => ({ ...f }));
  }

  active(): Fault[] {
    return [...this.open.values()].map((f) => ({ ...f }));
  }

  onFault(listener: (f: Fault) => void): () => void {
    this.on('fault', listener);
    return () => this.off('fault', listener);
  }
}
