import { spawn, type ChildProcess } from 'node:child_process';
import { closeSync, constants, openSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { PassThrough, type Readable } from 'node:stream';
import type { Logger } from '../runtime/log.js';
import { ButtonChannel, DeviceButtons } from './button-logic.js';
import type { FaultSink } from './faults.js';
import { FORWARDED_EVENT_SIZE, GRAB_READER_PY } from './evdev-grab.js';
import type { DeviceReport, InputEvent } from './report.js';
import { KEY_CODES, keyCode, keyName } from './evdev-keys.js';

export { KEY_CODES, keyCode, keyName };

// Numeric keypads (and anything else the kernel treats as a keyboard) read from evdev:
// /dev/input/eventN, or better its stable /dev/input/by-id/...-event-kbd link. node-hid cannot
// read keyboards (the kernel's keyboard driver owns them), evdev can, with group `input`.
//
// Each read returns whole `struct input_event` records: a timeval, u16 type, u16 code, s32 value.
// The timeval is two C longs, so a record is 24 bytes for a 64-bit reader and 16 bytes for a
// 32-bit one. The size follows the process that calls read(), not the kernel and not Node: the
// kernel writes the compat layout for a 32-bit process on a 64-bit kernel — and a 32-bit userland
// built with 64-bit time_t still reads 16-byte records, because the struct uses
// __kernel_ulong_t there. `uname -m` (the kernel) or Node's own arch would both be wrong when the
// reader is another program; so the reader (src/devices/evdev-grab.ts) reads with its own word
// size and forwards one fixed layout. Little-endian on every Pi and PC.
//
// The reader also grabs the device (EVIOCGRAB): without it every key also types into the console
// on tty1 (and a login prompt there). `qrkiosk hardware` says whether the grab is held.
//
// Two ways to select: `direct` (each mapped key is a slot, KP1 -> slot 1) and `code` (type the
// slot number, then Enter: for machines with more than 9 slots).

export const EV_SYN = 0;
export const EV_KEY = 1;

export interface InputEventRecord {
  sec: number;
  usec: number;
  type: number;
  code: number;
  value: number;
}

/** the digit a key types, for code entry */
const DIGIT_KEYS = new Map<number, number>([
  ...Array.from({ length: 10 }, (_, d) => [KEY_CODES[`KP${d}`]!, d] as [number, number]),
  ...Array.from({ length: 10 }, (_, d) => [KEY_CODES[String(d)]!, d] as [number, number]),
]);

/**
 * The record size a process of this arch reads (24 for 64-bit, 16 for 32-bit). Only for streams
 * that hand over raw device records (tests, replays); the real reader tells its own size.
 */
export function nativeEventSize(arch: string = process.arch): 16 | 24 {
  return arch === 'arm' || arch === 'ia32' || arch === 'mips' || arch === 'mipsel' || arch === 'ppc' ? 16 : 24;
}

/**
 * Splits a byte stream into input_event records. Reads may end mid-record (a pipe, a test feeding
 * odd chunks): the remainder waits for the next chunk.
 */
export class EventParser {
  private rest = Buffer.alloc(0);

  constructor(readonly size: 16 | 24) {}

  push(chunk: Buffer): InputEventRecord[] {
    const buf = this.rest.length ? Buffer.concat([this.rest, chunk]) : chunk;
    const out: InputEventRecord[] = [];
    let off = 0;
    for (; off + this.size <= buf.length; off += this.size) {
      if (this.size === 24) {
        out.push({
          sec: Number(buf.readBigInt64LE(off)),
          usec: Number(buf.readBigInt64LE(off + 8)),
          type: buf.readUInt16LE(off + 16),
          code: buf.readUInt16LE(off + 18),
          value: buf.readInt32LE(off + 20),
        });
      } else {
        out.push({
          sec: buf.readUInt32LE(off),
          usec: buf.readUInt32LE(off + 4),
          type: buf.readUInt16LE(off + 8),
          code: buf.readUInt16LE(off + 10),
          value: buf.readInt32LE(off + 12),
        });
      }
    }
    this.rest = Buffer.from(buf.subarray(off));
    return out;
  }

  reset(): void {
    this.rest = Buffer.alloc(0);
  }
}

/** Encodes records (fixtures, tests). */
export function encodeEvents(events: InputEventRecord[], size: 16 | 24): Buffer {
  const buf = Buffer.alloc(events.length * size);
  events.forEach((e, i) => {
    const o = i * size;
    if (size === 24) {
      buf.writeBigInt64LE(BigInt(e.sec), o);
      buf.writeBigInt64LE(BigInt(e.usec), o + 8);
      buf.writeUInt16LE(e.type, o + 16);
      buf.writeUInt16LE(e.code, o + 18);
      buf.writeInt32LE(e.value, o + 20);
    } else {
      buf.writeUInt32LE(e.sec, o);
      buf.writeUInt32LE(e.usec, o + 4);
      buf.writeUInt16LE(e.type, o + 8);
      buf.writeUInt16LE(e.code, o + 10);
      buf.writeInt32LE(e.value, o + 12);
    }
  });
  return buf;
}

/** How the device is read, as the reader reported it when it was ready. */
export interface ReaderInfo {
  /** the device's record size as read (16 or 24) */
  size: number;
  grabbed: boolean;
  /** why not grabbed: "ENOTTY Inappropriate ioctl for device" */
  reason?: string;
}

export interface OpenEventOptions {
  /** the device's record size: 'auto' = as the kernel gives it to the reader */
  eventSize?: 'auto' | 16 | 24;
  /** EVIOCGRAB the device so its keys reach nobody else (default true) */
  grab?: boolean;
  /** the python interpreter (default python3 on PATH) */
  python?: string;
}

/** A stream of input_event records; recordSize tells the parser their size. */
export type EventStream = Readable & { recordSize?: 16 | 24 };

/**
 * Opens an event device: the agent opens it (errors keep their errno), a python3 reader
 * (src/devices/evdev-grab.ts) takes the open file as its stdin, grabs it and forwards the records,
 * 24 bytes each, on a pipe the event loop watches. Not fs.createReadStream: a read() on a
 * character device blocks a libuv thread-pool thread until the next key press and cannot be
 * cancelled, so the agent would not exit until someone touched the keypad. Destroying the stream
 * kills the reader, which ends the grab. Emits 'open' with ReaderInfo once the reader is ready.
 */
export function openEventDevice(path: string, opts: OpenEventOptions = {}): EventStream {
  let child: ChildProcess | undefined;
  // destroy() (not a 'close' listener, which a caller may remove) is what ends the reader
  const out: PassThrough & { recordSize?: 16 | 24 } = new PassThrough({
    destroy(err, cb) {
      child?.kill('SIGKILL');
      cb(err);
    },
  });
  out.recordSize = FORWARDED_EVENT_SIZE;
  let fd: number;
  try {
    fd = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  } catch (err) {
    setImmediate(() => out.destroy(err as Error));
    return out;
  }
  try {
    child = spawn(opts.python ?? 'python3', ['-c', GRAB_READER_PY, String(opts.eventSize ?? 'auto'), opts.grab === false ? 'nograb' : 'grab'], {
      stdio: [fd, 'pipe', 'pipe'],
    });
  } finally {
    // the reader has its own copy: when it ends, the device (and its grab) is let go
    closeSync(fd);
  }
  const proc = child;
  let failure: Error | undefined;
  createInterface({ input: proc.stderr! }).on('line', (line) => {
    const ready = /^ready (\d+) (grabbed|not-grabbed)(?: (\S+) (.*))?$/.exec(line);
    if (ready) {
      const info: ReaderInfo = { size: Number(ready[1]), grabbed: ready[2] === 'grabbed', ...(ready[2] !== 'grabbed' ? { reason: `${ready[3]} ${ready[4]}` } : {}) };
      out.emit('open', info);
      return;
    }
    const error = /^error (\S+) (.*)$/.exec(line);
    if (error) failure = Object.assign(new Error(`${path}: ${error[2]}`), { code: error[1] });
    else if (line.trim()) failure ??= new Error(`keypad reader: ${line.trim()}`);
  });
  proc.stdout!.pipe(out, { end: false });
  proc.once('error', (err) => {
    const e = err as NodeJS.ErrnoException;
    out.destroy(
      e.code === 'ENOENT'
        ? Object.assign(new Error(`${opts.python ?? 'python3'} is not installed: the keypad is read and grabbed through it (apt install python3)`), { code: 'ENOPYTHON' })
        : err,
    );
  });
  proc.once('close', (code, signal) => {
    if (out.destroyed) return;
    if (code === 0 || signal) out.end();
    else out.destroy(failure ?? new Error(`keypad reader for ${path} exited with code ${code}`));
  });
  return out;
}

export interface EvdevButtonsConfig {
  device: string;
  entry: 'direct' | 'code';
  /** direct: key -> slot */
  keys: Record<string, number>;
  cancelKeys: string[];
  /** code: keys that submit the typed number */
  enterKeys: string[];
  /** code: typed digits are forgotten after this long without a key */
  codeTimeoutMs: number;
  eventSize: 'auto' | 16 | 24;
  holdToCancelMs: number;
  stuckMs: number;
  reconnectMs: number;
}

type KeyRole = { kind: 'slot'; slot: number } | { kind: 'cancel' } | { kind: 'digit'; digit: number } | { kind: 'enter' } | { kind: 'backspace' };

export class EvdevButtons extends DeviceButtons {
  private parser: EventParser;
  private reader: ReaderInfo | undefined;
  private readonly keys = new Map<number, { role: KeyRole; channel: ButtonChannel }>();
  private stream: Readable | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = true;
  private code = '';
  private codeTimer: NodeJS.Timeout | undefined;
  private connected = false;
  private events_ = 0;

  constructor(
    private readonly cfg: EvdevButtonsConfig,
    private readonly open: (path: string, opts: OpenEventOptions) => EventStream = openEventDevice,
    private readonly faults?: FaultSink,
    logger?: Logger,
  ) {
    super('evdev', logger);
    this.parser = new EventParser(cfg.eventSize === 'auto' ? nativeEventSize() : cfg.eventSize);
    const add = (key: string | number, role: KeyRole) => {
      const code = keyCode(key);
      if (code === undefined) throw new Error(`unknown key "${key}"`);
      if (this.keys.has(code)) return;
      const fn =
        role.kind === 'slot' ? `slot ${role.slot}` : role.kind === 'digit' ? `digit ${role.digit}` : role.kind;
      const actions =
        role.kind === 'slot'
          ? this.slotActions(role.slot)
          : role.kind === 'cancel'
            ? this.cancelActions()
            : { press: () => this.codeKey(role), input: (e: InputEvent) => this.emitInput(e) };
      this.keys.set(code, {
        role,
        channel: new ButtonChannel(
          {
            name: `${keyName(code)} (${fn})`,
            function: fn,
            debounceMs: 0,
            holdMs: role.kind === 'slot' ? cfg.holdToCancelMs : 0,
            stuckMs: cfg.stuckMs,
          },
          actions,
          faults,
        ),
      });
    };
    for (const k of cfg.cancelKeys) add(k, { kind: 'cancel' });
    if (cfg.entry === 'direct') {
      for (const [k, slot] of Object.entries(cfg.keys)) add(k, { kind: 'slot', slot });
    } else {
      for (const k of cfg.enterKeys) add(k, { kind: 'enter' });
      add('BACKSPACE', { kind: 'backspace' });
      for (const [code, digit] of DIGIT_KEYS) add(code, { kind: 'digit', digit });
    }
  }

  private get deviceName(): string {
    return `keypad ${this.cfg.device}`;
  }

  /** code entry: digits, backspace, enter */
  private codeKey(role: KeyRole): void {
    if (this.codeTimer) clearTimeout(this.codeTimer);
    this.codeTimer = undefined;
    if (role.kind === 'digit') {
      // three digits are plenty for any vending machine; a fourth starts over
      this.code = this.code.length >= 3 ? String(role.digit) : this.code + String(role.digit);
    } else if (role.kind === 'backspace') {
      this.code = this.code.slice(0, -1);
    } else if (role.kind === 'enter') {
      const slot = Number(this.code);
      this.code = '';
      if (slot > 0) this.emitPress(slot);
      return;
    }
    if (this.code) {
      this.codeTimer = setTimeout(() => {
        this.codeTimer = undefined;
        this.code = '';
      }, this.cfg.codeTimeoutMs);
    }
  }

  /** what has been typed so far (code entry) */
  get typed(): string {
    return this.code;
  }

  start(): void {
    if (!this.stopped) return;
    this.stopped = false;
    this.connect();
  }

  private connect(): void {
    if (this.stopped) return;
    let stream: EventStream;
    try {
      stream = this.open(this.cfg.device, { eventSize: this.cfg.eventSize, grab: true });
    } catch (err) {
      this.lost(err as Error);
      return;
    }
    this.stream = stream;
    // the real reader forwards its own fixed layout; a raw stream has the configured size
    this.parser = new EventParser(stream.recordSize ?? this.parser.size);
    this.reader = undefined;
    stream.on('open', (info?: ReaderInfo) => {
      this.connected = true;
      if (info) {
        this.reader = info;
        if (!info.grabbed) {
          this.logger?.warn({ device: this.cfg.device, reason: info.reason }, `${this.deviceName}: not grabbed (${info.reason}): its keys also reach the console`);
        }
      }
      this.faults?.clear(this.deviceName, 'disconnected', 'connected');
    });
    stream.on('data', (chunk: Buffer | string) => {
      // a stream that delivered data is open even if it never said so (tests, pipes)
      if (!this.connected) {
        this.connected = true;
        this.faults?.clear(this.deviceName, 'disconnected', 'connected');
      }
      this.feed(typeof chunk === 'string' ? Buffer.from(chunk) : chunk);
    });
    stream.on('error', (err) => this.lost(err));
    stream.on('end', () => this.lost(new Error('device closed (unplugged?)')));
  }

  /** Raw bytes as read from the device. */
  feed(chunk: Buffer): void {
    for (const ev of this.parser.push(chunk)) {
      this.events_++;
      if (ev.type !== EV_KEY) continue;
      // value 2 is the keyboard's autorepeat: the key is still down, not pressed again
      if (ev.value === 2) continue;
      this.keys.get(ev.code)?.channel.feed(ev.value === 1);
    }
  }

  private lost(err: Error): void {
    const s = this.stream;
    this.stream = undefined;
    this.connected = false;
    if (s) {
      s.removeAllListeners();
      s.on('error', () => {});
      s.destroy();
    }
    for (const k of this.keys.values()) k.channel.init(false);
    this.code = '';
    if (this.stopped) return;
    const e = err as NodeJS.ErrnoException;
    const hint =
      e.code === 'EACCES'
        ? ' (permission: the agent user must be in group input, see hardware/udev/99-qrkiosk.rules)'
        : e.code === 'ENOENT'
          ? ' (not plugged in, or the path changed: use /dev/input/by-id/...)'
          : e.code === 'EBUSY'
            ? ' (another program has grabbed the keypad: an old reader or an X/Wayland session)'
            : '';
    this.faults?.condition(this.deviceName, 'disconnected', `${err.message}${hint}; retrying every ${this.cfg.reconnectMs} ms`);
    this.timer = setTimeout(() => {
      this.timer = undefined;
      this.connect();
    }, this.cfg.reconnectMs);
  }

  describe(): DeviceReport {
    return {
      role: 'buttons',
      driver: 'evdev',
      status: this.connected ? 'ok' : 'disconnected',
      detail: `${this.cfg.device}, ${this.reader ? `${this.reader.size}-byte events, ${this.reader.grabbed ? 'grabbed (keys reach only the agent)' : `NOT grabbed (${this.reader.reason}): keys also reach the console`}` : `${this.parser.size}-byte events`}, ${this.cfg.entry === 'code' ? 'type the slot number then Enter' : 'one key per slot'}, ${this.events_} event(s) read`,
      lines: [...this.keys.entries()]
        .filter(([, k]) => k.role.kind === 'slot' || k.role.kind === 'cancel' || k.role.kind === 'enter')
        .map(([code, k]) => ({
          function: k.channel.opts.function,
          name: keyName(code),
          where: this.cfg.device,
          state: k.channel.isStuck ? 'STUCK' : k.channel.pressed ? 'pressed' : 'released',
        })),
    };
  }

  override close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    if (this.codeTimer) clearTimeout(this.codeTimer);
    this.timer = undefined;
    const s = this.stream;
    this.stream = undefined;
    if (s) {
      s.removeAllListeners();
      s.on('error', () => {});
      s.destroy();
    }
    for (const k of this.keys.values()) k.channel.dispose();
    super.close();
  }
}
