import { EventEmitter } from 'node:events';
import { mkdirSync, rmSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { listSysfsChips, type SysfsChip } from './sysfs.js';
import type { OnoffDirection, OnoffEdge, OnoffFactory, OnoffGpio, OnoffOptions } from './onoff-backend.js';
import type { Level } from './types.js';

// The simulated twin of onoff on a given chip layout, for tests and for running the GPIO drivers on
// a laptop. It behaves like onoff on a real kernel where that matters to us:
//   - exporting a number no chip owns fails with EINVAL, as the kernel answers a write to
//     /sys/class/gpio/export (so code that passes a raw BCM number on a base-512 kernel fails
//     here exactly as it fails on the Pi);
//   - 'high'/'low' set the direction and the level in one step; reconfigureDirection: false keeps
//     an already exported output as it is;
//   - writing the value of an input fails with EPERM;
//   - watch() callbacks arrive LATE, 5-20 ms after the edge as on a loaded Pi (epoll wakes the
//     event loop when it gets round to it), and carry the value read at delivery time; edges that
//     happen while a wake-up is pending are one wake-up (the kernel's sysfs_notify sets one flag),
//     so a 2 ms pulse is one callback reading the level it started from;
//   - edge 'none' never calls back.
// Tests drive inputs with drive() and read what outputs did from `writes`. With `mirror` (the root
// of a fake /sys/class/gpio tree) the twin also keeps gpioN/{direction,value,active_low,edge} files
// there as the kernel presents them, so another process (`qrkiosk safe-outputs`) sees what this one
// left on the pins, even after it was SIGKILLed.

export interface TwinWrite {
  at: number;
  gpio: number;
  value: Level;
}

interface Pin {
  /** an interrupt is waiting for the event loop */
  pending: boolean;
  /** called once the pending interrupt has reached the watchers (see delivered()) */
  onDelivered: Array<() => void>;
  exported: boolean;
  direction: 'in' | 'out';
  edge: OnoffEdge;
  /** level an external circuit drives on an input */
  external: Level;
  /** level this side drives on an output */
  driven: Level;
  activeLow: boolean;
  watchers: Set<(err: Error | null | undefined, value: Level) => void>;
}

function sysErr(code: 'EINVAL' | 'EPERM' | 'EBUSY', gpio: number): NodeJS.ErrnoException {
  const text = { EINVAL: 'invalid argument', EPERM: 'operation not permitted', EBUSY: 'resource busy or locked' }[code];
  const e = new Error(`${code}: ${text}, write`) as NodeJS.ErrnoException;
  e.code = code;
  e.syscall = 'write';
  e.errno = { EINVAL: -22, EPERM: -1, EBUSY: -16 }[code];
  e.path = `/sys/class/gpio/gpio${gpio}`;
  return e;
}

export interface TwinOptions {
  /**
   * ms from an edge to its watch() callback, called per interrupt. Default: 5-20 ms, stepping
   * through the range (deterministic, so a test failure repeats).
   */
  latencyMs?: () => number;
  /** root of a fake sysfs GPIO tree to keep gpioN files in (see above) */
  mirror?: string;
}

export class OnoffTwin extends EventEmitter {
  private readonly pins = new Map<number, Pin>();
  readonly writes: TwinWrite[] = [];
  /** numbers exported over the twin's life, in order */
  readonly exports: number[] = [];
  private wakeups = 0;
  latencyMs: () => number;
  private readonly mirror: string | undefined;

  constructor(
    readonly chips: SysfsChip[],
    opts: TwinOptions = {},
  ) {
    super();
    this.latencyMs = opts.latencyMs ?? (() => 5 + ((this.wakeups++ * 7) % 16));
    this.mirror = opts.mirror;
  }

  /** the pin's files in the mirrored tree, as the kernel would show them now */
  private sync(gpio: number, p: Pin): void {
    if (!this.mirror) return;
    const dir = join(this.mirror, `gpio${gpio}`);
    if (!p.exported) {
      rmSync(dir, { recursive: true, force: true });
      return;
    }
    mkdirSync(dir, { recursive: true });
    writeFileSync(join(dir, 'direction'), `${p.direction}\n`);
    writeFileSync(join(dir, 'value'), `${this.read(p)}\n`);
    writeFileSync(join(dir, 'active_low'), `${p.activeLow ? 1 : 0}\n`);
    writeFileSync(join(dir, 'edge'), `${p.edge}\n`);
  }

  /** A twin for the chips of a (fake) sysfs tree. */
  static fromSysfs(root: string, opts: TwinOptions = {}): OnoffTwin {
    // the chips are read from the tree; opts.mirror may name the same root
    return new OnoffTwin(listSysfsChips(root), opts);
  }

  private owned(gpio: number): boolean {
    return this.chips.some((c) => gpio >= c.base && gpio < c.base + c.ngpio);
  }

  private pin(gpio: number): Pin {
    let p = this.pins.get(gpio);
    if (!p) {
      p = { pending: false, onDelivered: [], exported: false, direction: 'in', edge: 'none', external: 0, driven: 0, activeLow: false, watchers: new Set() };
      this.pins.set(gpio, p);
    }
    return p;
  }

  private raw(p: Pin): Level {
    return p.direction === 'out' ? p.driven : p.external;
  }

  private read(p: Pin): Level {
    const v = this.raw(p);
    return (p.activeLow ? 1 - v : v) as Level;
  }

  readonly factory: OnoffFactory = (gpio: number, direction: OnoffDirection, edge: OnoffEdge = 'none', options: OnoffOptions = {}): OnoffGpio => {
    if (!this.owned(gpio)) throw sysErr('EINVAL', gpio);
    const p = this.pin(gpio);
    const reconfigure = options.reconfigureDirection ?? true;
    if (!p.exported) {
      p.exported = true;
      this.exports.push(gpio);
    }
    p.activeLow = options.activeLow ?? false;
    const wantOut = direction !== 'in';
    const configured = wantOut ? p.direction === 'out' : p.direction === 'in';
    if (reconfigure || !configured) {
      p.direction = wantOut ? 'out' : 'in';
      if (wantOut) {
        const v: Level = direction === 'high' ? 1 : 0;
        this.setDriven(gpio, p, (p.activeLow ? 1 - v : v) as Level);
      }
    }
    p.edge = edge;
    this.sync(gpio, p);
    const twin = this;
    let unexported = false;
    const alive = () => {
      if (unexported || !p.exported) throw sysErr('EINVAL', gpio);
    };
    return {
      readSync(): Level {
        alive();
        return twin.read(p);
      },
      writeSync(value: Level): void {
        alive();
        if (p.direction !== 'out') throw sysErr('EPERM', gpio);
        twin.setDriven(gpio, p, (p.activeLow ? 1 - value : value) as Level);
      },
      watch(cb) {
        alive();
        p.watchers.add(cb);
      },
      unwatchAll() {
        p.watchers.clear();
      },
      unexport() {
        unexported = true;
        p.exported = false;
        p.watchers.clear();
        p.direction = 'in';
        twin.sync(gpio, p);
      },
    };
  };

  private setDriven(gpio: number, p: Pin, v: Level): void {
    const before = p.driven;
    p.driven = v;
    this.sync(gpio, p);
    this.writes.push({ at: Date.now(), gpio, value: v });
    this.emit('write', gpio, v, before);
  }

  /** An external circuit drives an input (a button, a sensor). */
  drive(gpio: number, level: Level): void {
    const p = this.pin(gpio);
    if (p.external === level) return;
    p.external = level;
    if (p.direction !== 'in' || !p.exported) return;
    this.sync(gpio, p);
    const rising = level === 1;
    const fires = p.edge === 'both' || (p.edge === 'rising' && rising) || (p.edge === 'falling' && !rising);
    if (!fires || p.watchers.size === 0 || p.pending) return;
    // epoll wakes the process later; onoff then reads the value file, whatever it is by then
    p.pending = true;
    setTimeout(() => {
      p.pending = false;
      const told = p.onDelivered.splice(0);
      if (p.exported) {
        const value = this.read(p);
        for (const w of [...p.watchers]) w(null, value);
      }
      for (const t of told) t();
    }, this.latencyMs());
  }

  /**
   * Resolves once the watchers have been woken for every edge driven on this pin so far: the
   * event a test awaits to know the process has seen the level it drove (late wake-ups included).
   */
  delivered(gpio: number): Promise<void> {
    const p = this.pin(gpio);
    if (!p.pending) return Promise.resolve();
    return new Promise((resolve) => p.onDelivered.push(resolve));
  }

  /** Physical level of a pin as the circuit sees it. */
  level(gpio: number): Level {
    const p = this.pins.get(gpio);
    return p ? this.raw(p) : 0;
  }

  isExported(gpio: number): boolean {
    return this.pins.get(gpio)?.exported ?? false;
  }

  direction(gpio: number): 'in' | 'out' {
    return this.pins.get(gpio)?.direction ?? 'in';
  }

  /** Writes to one output, in order. */
  writesTo(gpio: number): TwinWrite[] {
    return this.writes.filter((w) => w.gpio === gpio);
  }
}
