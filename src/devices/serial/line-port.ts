import { EventEmitter } from 'node:events';
import { stat } from 'node:fs/promises';
import { createRequire } from 'node:module';
import type { SerialPort as SerialPortClass } from 'serialport';
import type { Logger } from '../../runtime/log.js';

// A text-line link over a serial port that survives unplugs. Both of our serial devices (the
// button panel / dispenser controller and the Qibixx MDB interface) speak ASCII lines, and both
// are USB adapters a technician can pull out: the port is reopened with capped exponential
// backoff, by path each time, because /dev/ttyUSB0 may come back as ttyUSB1 while the
// /dev/serial/by-id/... link keeps pointing at the right device.

/** The part of serialport's SerialPortStream we use; tests pass SerialPortMock (binding-mock). */
export interface RawPort extends EventEmitter {
  open(callback: (err: Error | null) => void): void;
  write(data: Buffer, callback?: (err: Error | null | undefined) => void): boolean;
  /** serialport's own signature: a disconnect error is passed on to the 'close' event */
  close(callback?: (err: Error | null) => void, disconnectError?: Error | null): void;
  readonly isOpen: boolean;
}

/** Either end of a line link: what the simulated twins need from it. */
export interface LineEnd {
  write(line: string): boolean;
  on(event: 'line', listener: (line: string) => void): unknown;
}

export type OpenPort = (path: string, baudRate: number) => RawPort;

/** The real thing: bindings-cpp (prebuilt for the Pi and x86). Locks the port so two agents cannot share it. */
// serialport (and its native binding) is loaded on the first open: an agent whose config has no
// serial device never pays its memory (bench/README.md, agent idle RSS).
let SerialPort: typeof SerialPortClass | undefined;
export const openSerialPort: OpenPort = (path, baudRate) => {
  SerialPort ??= (createRequire(import.meta.url)('serialport') as { SerialPort: typeof SerialPortClass }).SerialPort;
  return new SerialPort({ path, baudRate, autoOpen: false, lock: true });
};

export interface LinePortOptions {
  /** what the logs call this link ("serial panel", "mdb") */
  name: string;
  path: string;
  baudRate: number;
  /** appended to every line written; Qibixx and our panel both take "\n" */
  eol?: string;
  /** a line longer than this is noise (no newline for too long): it is dropped */
  maxLineBytes?: number;
  reconnect?: { baseMs: number; capMs: number };
  /**
   * How often to check that the path still leads to the device that was opened (0 = never). A
   * pty whose peer died, and on some kernels a USB adapter, can leave a quiet port open without
   * a read error; the /dev/serial/by-id link vanishing (or pointing at another device) says it.
   */
  watchPathMs?: number;
  openPort?: OpenPort;
  logger?: Logger;
}

export type LinePortState = 'stopped' | 'opening' | 'open' | 'waiting' | 'closed';

export type DiscardReason = 'too_long' | 'truncated';

export interface LinePortStats {
  opens: number;
  disconnects: number;
  failedOpens: number;
  lastError: string | null;
}

/**
 * Events: 'open' (), 'down' (reason: string), 'line' (text: string, no terminator, latin1 so every
 * byte survives for the protocol to judge), 'discard' (reason, text), 'bytes' (count received).
 */
export class LinePort extends EventEmitter {
  private port: RawPort | undefined;
  private buf = '';
  /** dropping an over-long line until its newline */
  private skipping = false;
  private attempt = 0;
  private timer: NodeJS.Timeout | undefined;
  private watchTimer: NodeJS.Timeout | undefined;
  private _state: LinePortState = 'stopped';
  private readonly eol: string;
  private readonly maxLine: number;
  private readonly backoff: { baseMs: number; capMs: number };
  private readonly openPort: OpenPort;
  private readonly log: Logger | undefined;
  readonly stats: LinePortStats = { opens: 0, disconnects: 0, failedOpens: 0, lastError: null };

  constructor(private readonly opts: LinePortOptions) {
    super();
    this.eol = opts.eol ?? '\n';
    this.maxLine = opts.maxLineBytes ?? 256;
    this.backoff = opts.reconnect ?? { baseMs: 250, capMs: 5000 };
    this.openPort = opts.openPort ?? openSerialPort;
    this.log = opts.logger?.child({ part: opts.name, path: opts.path });
  }

  get state(): LinePortState {
    return this._state;
  }

  get path(): string {
    return this.opts.path;
  }

  get isOpen(): boolean {
    return this._state === 'open';
  }

  start(): void {
    if (this._state !== 'stopped') return;
    this.tryOpen();
  }

  /** Resolves when the port is open (now or later). */
  whenOpen(): Promise<void> {
    if (this.isOpen) return Promise.resolve();
    return new Promise((resolve) => this.once('open', () => resolve()));
  }

  /**
   * Writes one line. Returns false, and writes nothing, when the port is not open: the caller
   * decides whether the line matters enough to send again after the next 'open'.
   */
  write(line: string): boolean {
    const port = this.port;
    if (!port || this._state !== 'open') return false;
    port.write(Buffer.from(line + this.eol, 'latin1'), (err) => {
      // a write that fails means the device went away; the read side reports the disconnect
      if (err) this.log?.warn({ err: err.message, line }, `${this.opts.name}: write failed`);
    });
    this.log?.debug({ line }, `${this.opts.name} <- agent`);
    return true;
  }

  async close(): Promise<void> {
    if (this._state === 'closed') return;
    this._state = 'closed';
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.stopWatch();
    const port = this.port;
    this.port = undefined;
    if (port?.isOpen) await new Promise<void>((resolve) => port.close(() => resolve()));
    this.buf = '';
  }

  private tryOpen(): void {
    if (this._state === 'closed') return;
    this._state = 'opening';
    let port: RawPort;
    try {
      port = this.openPort(this.opts.path, this.opts.baudRate);
    } catch (err) {
      this.openFailed(err as Error);
      return;
    }
    // an 'error' without a listener would crash the agent; errors are reported via open/close
    port.on('error', (err: Error) => this.log?.warn({ err: err.message }, `${this.opts.name}: port error`));
    port.open((err) => {
      if (err) {
        port.removeAllListeners();
        this.openFailed(err);
        return;
      }
      if (this._state === 'closed') {
        port.close();
        return;
      }
      this.port = port;
      this.buf = '';
      this.skipping = false;
      this.attempt = 0;
      this._state = 'open';
      this.stats.opens++;
      port.on('data', (chunk: Buffer) => this.onData(chunk));
      port.once('close', (e: (Error & { disconnected?: boolean }) | null) => this.onClose(port, e));
      this.log?.info(`${this.opts.name}: ${this.opts.path} open`);
      this.emit('open');
      void this.watch(port);
    });
  }

  /** Remembers which device the path led to, then checks it keeps leading there. */
  private async watch(port: RawPort): Promise<void> {
    const every = this.opts.watchPathMs ?? 1000;
    if (every <= 0) return;
    let device: number;
    try {
      device = (await stat(this.opts.path)).rdev;
    } catch {
      return; // not a file system path (test bindings): nothing to watch
    }
    if (this.port !== port) return;
    this.stopWatch();
    this.watchTimer = setInterval(() => {
      stat(this.opts.path).then(
        (st) => {
          if (st.rdev !== device) this.gone(port, `${this.opts.path} now leads to another device`);
        },
        () => this.gone(port, `${this.opts.path} disappeared`),
      );
    }, every);
    this.watchTimer.unref?.();
  }

  private stopWatch(): void {
    if (this.watchTimer) clearInterval(this.watchTimer);
    this.watchTimer = undefined;
  }

  private gone(port: RawPort, why: string): void {
    if (this.port !== port || !port.isOpen) return;
    this.stopWatch();
    port.close(undefined, Object.assign(new Error(why), { disconnected: true }));
  }

  private openFailed(err: Error & { code?: string }): void {
    this.stats.failedOpens++;
    const msg = err.message;
    // the same failure every few seconds for an hour is one log line, not a thousand
    if (msg !== this.stats.lastError) {
      this.log?.warn({ err: msg }, `${this.opts.name}: cannot open ${this.opts.path}: ${openHint(msg)}; retrying`);
    }
    this.stats.lastError = msg;
    this.scheduleReopen();
  }

  private onClose(port: RawPort, err: (Error & { disconnected?: boolean }) | null): void {
    if (this.port !== port) return;
    this.port = undefined;
    this.stopWatch();
    port.removeAllListeners('data');
    if (this._state === 'closed') return;
    if (this.buf.length > 0 && !this.skipping) {
      // bytes of a line that never got its newline: half a command is no command
      this.emit('discard', 'truncated' satisfies DiscardReason, this.buf);
    }
    this.buf = '';
    this.skipping = false;
    this.stats.disconnects++;
    const reason = err?.message ?? 'closed';
    this.stats.lastError = reason;
    this.log?.warn({ err: reason, disconnected: err?.disconnected === true }, `${this.opts.name}: ${this.opts.path} lost (unplugged?), reconnecting`);
    this._state = 'waiting';
    this.emit('down', reason);
    this.scheduleReopen();
  }

  private scheduleReopen(): void {
    if (this._state === 'closed') return;
    this._state = 'waiting';
    const delay = Math.min(this.backoff.capMs, this.backoff.baseMs * 2 ** Math.min(this.attempt, 20));
    this.attempt++;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.tryOpen();
    }, delay);
  }

  private onData(chunk: Buffer): void {
    this.emit('bytes', chunk.length);
    this.buf += chunk.toString('latin1');
    for (;;) {
      const m = /\r\n|\n|\r/.exec(this.buf);
      if (!m) break;
      const line = this.buf.slice(0, m.index);
      this.buf = this.buf.slice(m.index + m[0].length);
      if (this.skipping) {
        this.skipping = false;
        continue;
      }
      if (line.length > this.maxLine) {
        this.emit('discard', 'too_long' satisfies DiscardReason, line);
        continue;
      }
      if (line.length === 0) continue; // "\r\n" split across chunks, blank lines
      this.log?.debug({ line }, `${this.opts.name} -> agent`);
      this.emit('line', line);
    }
    if (!this.skipping && this.buf.length > this.maxLine) {
      this.emit('discard', 'too_long' satisfies DiscardReason, this.buf);
      this.buf = '';
      this.skipping = true;
    } else if (this.skipping) {
      this.buf = '';
    }
  }
}

/** What a technician should check for the usual open errors. */
export function openHint(message: string): string {
  if (/ENOENT|No such file|not exist/i.test(message)) {
    return 'device not present: check the USB cable and the path (prefer /dev/serial/by-id/...)';
  }
  if (/EACCES|Permission denied/i.test(message)) {
    return "permission denied: add the agent's user to the dialout group or install hardware/udev rules";
  }
  if (/lock/i.test(message)) return 'another program holds the port (another agent? ModemManager? a screen/minicom session?)';
  return message;
}

/**
 * Logs rejected input without letting a noisy line flood the journal: at most `burst` lines
 * per window, then one summary of how many were dropped.
 */
export class ThrottledWarn {
  private windowStart = 0;
  private inWindow = 0;
  private suppressed = 0;

  constructor(
    private readonly log: (obj: Record<string, unknown>, msg: string) => void,
    private readonly burst = 10,
    private readonly windowMs = 10_000,
    private readonly now: () => number = Date.now,
  ) {}

  warn(obj: Record<string, unknown>, msg: string): void {
    const t = this.now();
    if (t - this.windowStart >= this.windowMs) {
      if (this.suppressed > 0) this.log({ suppressed: this.suppressed }, `${this.suppressed} more rejected line(s) not logged`);
      this.windowStart = t;
      this.inWindow = 0;
      this.suppressed = 0;
    }
    if (this.inWindow < this.burst) {
      this.inWindow++;
      this.log(obj, msg);
    } else this.suppressed++;
  }
}

/** A line made safe for a log: control bytes shown as \xNN, length capped. */
export function printable(text: string, max = 120): string {
  // eslint-disable-next-line no-control-regex
  const s = text.replace(/[\x00-\x1f\x7f-\xff]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return s.length > max ? `${s.slice(0, max)}…` : s;
}
