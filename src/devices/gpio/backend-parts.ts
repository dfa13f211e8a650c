import type { GpioInput, GpioOutput, GpioReport, Level, Pull } from './types.js';

// What the two backends (onoff-backend.ts, libgpiod-backend.ts) do the same way, so they stay
// identical in behaviour: an input's last level and the listeners told of its changes, and the
// pin list of `qrkiosk hardware`.

/**
 * The last level an input saw; change listeners hear only changes, edge listeners hear every
 * edge the kernel reported (see GpioInput.onEdge).
 */
export abstract class InputLevel {
  private current: Level;
  private readonly listeners = new Set<(level: Level) => void>();
  private readonly edgeListeners = new Set<(level: Level) => void>();

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

  onEdge(listener: (level: Level) => void): () => void {
    this.edgeListeners.add(listener);
    return () => this.edgeListeners.delete(listener);
  }

  /** a level the backend read without an edge behind it (start, after a restart): no edge */
  protected set(level: Level): void {
    if (level === this.current) return;
    this.current = level;
    for (const l of [...this.listeners]) l(level);
  }

  /** the kernel reported an edge to `level` (gpiomon names each edge) */
  protected edge(level: Level): void {
    for (const l of [...this.edgeListeners]) l(level);
    this.set(level);
  }

  /**
   * The kernel reported an interrupt and the line read `level` afterwards (sysfs + epoll: the
   * read comes later than the edge, and several edges wake the reader once). The same level as
   * before means the line went to the other level and back before we looked: two edges, not none.
   */
  protected interrupted(level: Level): void {
    if (level === this.current) this.edge((1 - level) as Level);
    this.edge(level);
  }

  protected dropListeners(): void {
    this.listeners.clear();
    this.edgeListeners.clear();
  }
}

/** The pins of a backend's report: inputs (with their pull), then outputs. */
export function pinReports(inputs: ReadonlyArray<GpioInput & { readonly pull: Pull }>, outputs: readonly GpioOutput[]): GpioReport['pins'] {
  return [
    ...inputs.map((i) => ({ bcm: i.bcm, role: i.role, where: i.where, mode: 'in' as const, level: i.level(), pull: i.pull })),
    ...outputs.map((o) => ({ bcm: o.bcm, role: o.role, where: o.where, mode: 'out' as const, level: o.level() })),
  ];
}
