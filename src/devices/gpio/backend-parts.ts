import type { GpioInput, GpioOutput, GpioReport, Level, Pull } from './types.js';

// What the two backends (onoff-backend.ts, libgpiod-backend.ts) do the same way, so they stay
// identical in behaviour: an input's last level and the listeners told of its changes, and the
// pin list of `qrkiosk hardware`.

/** The last level an input saw; listeners hear only changes. */
export abstract class InputLevel {
  private current: Level;
  private readonly listeners = new Set<(level: Level) => void>();

  protected constructor(initial: Level) {
    this.current = initial;
  }

  level(): Level {
    return this.current;
  }

  onChange(listener: (level: Level) => void): () => void {
    this.listeners.add(listener);
    return () => this.listeners.delete(listener);
  }

  /** a level the backend read or was told: the same level again is no change */
  protected set(level: Level): void {
    if (level === this.current) return;
    this.current = level;
    for (const l of [...this.listeners]) l(level);
  }

  protected dropListeners(): void {
    this.listeners.clear();
  }
}

/** The pins of a backend's report: inputs (with their pull), then outputs. */
export function pinReports(inputs: ReadonlyArray<GpioInput & { readonly pull: Pull }>, outputs: readonly GpioOutput[]): GpioReport['pins'] {
  return [
    ...inputs.map((i) => ({ bcm: i.bcm, role: i.role, where: i.where, mode: 'in' as const, level: i.level(), pull: i.pull })),
    ...outputs.map((o) => ({ bcm: o.bcm, role: o.role, where: o.where, mode: 'out' as const, level: o.level() })),
  ];
}
