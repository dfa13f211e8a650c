import { EventEmitter } from 'node:events';
import type { Logger } from '../../runtime/log.js';
import type { Buttons } from '../buttons.js';
import type { Dispenser } from '../dispenser.js';
import type { FaultSink } from '../faults.js';
import type { DeviceReport } from '../report.js';
import { LinePort, ThrottledWarn, printable, type OpenPort } from './line-port.js';

// What our devices on one serial line link have in common, whatever they speak over it (the
// serial button panel, the Qibixx MDB interface): the LinePort that survives unplugs and the
// "disconnected" fault it raises, the count of garbled lines, and the two faces (buttons and
// dispenser) the agent builds and closes separately, the port living until both are closed.

export interface LineDeviceOptions {
  path: string;
  baudRate: number;
  reconnect?: { baseMs: number; capMs: number };
  openPort?: OpenPort;
  logger?: Logger;
  /** unplugged (and the subclass's own) conditions, for `qrkiosk hardware` */
  faults?: FaultSink;
}

export interface LineDeviceNames {
  /** the link's name, in its logs and in the garbled-line warning ("serial panel", "mdb") */
  link: string;
  /** the logger's `part` ("serial-panel", "mdb") */
  logPart: string;
  /** the device faults are raised for ("serial panel /dev/ttyUSB0") */
  device: string;
  /** what a technician should check when the port is lost ("check the USB cable") */
  unplugHint: string;
}

export type LineDeviceFace<T> = T & { describe(): DeviceReport };

/**
 * Events: 'rejected' (line, reason) for a line the device could not use, plus the subclass's own.
 * Nothing is read before start(); a subclass handles the link in onLine / onOpen (and onDown).
 */
export abstract class LineDevice extends EventEmitter {
  readonly link: LinePort;
  /** set once both faces are closed: resolves when the port is closed */
  closing: Promise<void> | undefined;
  protected readonly log: Logger | undefined;
  protected readonly device: string;
  protected rejectedCount = 0;
  protected lastRejected: string | null = null;
  private readonly names: LineDeviceNames;
  private readonly rejected: ThrottledWarn;
  private started = false;
  private closedFaces = 0;

  protected constructor(opts: LineDeviceOptions, names: LineDeviceNames) {
    super();
    this.names = names;
    this.device = names.device;
    this.log = opts.logger?.child({ part: names.logPart });
    this.rejected = new ThrottledWarn((o, m) => this.log?.warn(o, m));
    this.link = new LinePort({
      name: names.link,
      path: opts.path,
      baudRate: opts.baudRate,
      maxLineBytes: 128,
      ...(opts.reconnect ? { reconnect: opts.reconnect } : {}),
      ...(opts.openPort ? { openPort: opts.openPort } : {}),
      ...(opts.logger ? { logger: opts.logger } : {}),
    });
    this.link.on('line', (l: string) => this.onLine(l));
    this.link.on('discard', (reason: string, text: string) => this.reject(text, reason === 'truncated' ? 'truncated by a disconnect' : 'line too long'));
    this.link.on('open', () => {
      opts.faults?.clear(this.device, 'disconnected', 'port open again');
      this.onOpen();
    });
    this.link.on('down', (reason: string) => {
      opts.faults?.condition(this.device, 'disconnected', `${opts.path} lost (${reason}): ${names.unplugHint}; reconnecting`);
      this.onDown();
    });
  }

  start(): void {
    if (this.started) return;
    this.started = true;
    this.link.start();
    this.onStart();
  }

  /** `qrkiosk hardware`: one device, shown for the role asking */
  abstract describe(role: 'buttons' | 'dispenser'): DeviceReport;

  abstract close(): Promise<void>;

  /** a whole line from the device */
  protected abstract onLine(line: string): void;

  /** the port is open (again) */
  protected abstract onOpen(): void;

  /** the port was lost; it is being reopened */
  protected onDown(): void {}

  /** start() ran for the first time, the port is opening */
  protected onStart(): void {}

  /** the link counters every health report carries */
  protected linkCounts(): { opens: number; disconnects: number; rejectedLines: number; lastRejected: string | null } {
    return {
      opens: this.link.stats.opens,
      disconnects: this.link.stats.disconnects,
      rejectedLines: this.rejectedCount,
      lastRejected: this.lastRejected,
    };
  }

  protected reject(line: string, reason: string): void {
    this.rejectedCount++;
    this.lastRejected = `${reason}: ${printable(line, 60)}`;
    this.rejected.warn({ line: printable(line), reason }, `${this.names.link}: ignored a garbled line (${reason})`);
    this.emit('rejected', line, reason);
  }

  // ---- faces --------------------------------------------------------------------------------------

  private faceClosed(): void {
    // the agent closes the buttons early and the dispenser last; the link lives until both are done
    if (++this.closedFaces >= 2) this.closing ??= this.close();
  }

  /** The buttons face around the device's own listeners; `release` drops them when it closes. */
  protected buttonsFace(listeners: Omit<Buttons, 'start' | 'close'>, release: () => void): LineDeviceFace<Buttons> {
    return {
      describe: () => this.describe('buttons'),
      ...listeners,
      start: () => this.start(),
      close: () => {
        release();
        this.faceClosed();
      },
    };
  }

  /** The dispenser face: the device owns its motors and stops them itself, nothing to drive from here. */
  protected dispenserFace(vend: Dispenser['vend']): LineDeviceFace<Dispenser> {
    let closed = false;
    return {
      describe: () => this.describe('dispenser'),
      vend,
      safe: () => {},
      close: () => {
        if (closed) return;
        closed = true;
        this.faceClosed();
      },
    };
  }
}
