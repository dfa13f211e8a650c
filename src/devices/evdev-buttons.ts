import { spawn } from 'node:child_process';
import { PassThrough, type Readable } from 'node:stream';
import type { Logger } from '../runtime/log.js';
import { ButtonChannel, DeviceButtons } from './button-logic.js';
import type { FaultSink } from './faults.js';
import type { DeviceReport, InputEvent } from './report.js';

// Numeric keypads (and anything else the kernel treats as a keyboard) read from evdev:
// /dev/input/eventN, or better its stable /dev/input/by-id/...-event-kbd link. node-hid cannot
// read keyboards (the kernel's keyboard driver owns them), evdev can, with group `input`.
//
// Each read returns whole `struct input_event` records: a timeval, u16 type, u16 code, s32 value.
// The timeval is two C longs, so a record is 24 bytes for a 64-bit process (arm64 / x86_64 Node)
// and 16 bytes for a 32-bit one (armhf Node). The size follows the process, not the kernel: the
// kernel writes the layout of the process that reads (compat) — and a 32-bit userland built with
// 64-bit time_t still reads 16-byte records, because the struct uses __kernel_ulong_t there.
// Little-endian on every Pi and PC.
//
// Two ways to select: `direct` (each mapped key is a slot, KP1 -> slot 1) and `code` (type the
// slot number, then Enter: for machines with more than 9 slots). Keys also reach the console on
// tty1 (Linux has no way for Node to grab the device without an ioctl): see TROUBLESHOOTING.md.

export const EV_SYN = 0;
export const EV_KEY = 1;

export interface InputEventRecord {
  sec: number;
  usec: number;
  type: number;
  code: number;
  value: number;
}

/** Key codes of linux/input-event-codes.h that keypads send. */
export const KEY_CODES: Record<string, number> = {
  ESC: 1,
  '1': 2,
  '2': 3,
  '3': 4,
  '4': 5,
  '5': 6,
  '6': 7,
  '7': 8,
  '8': 9,
  '9': 10,
  '0': 11,
  MINUS: 12,
  BACKSPACE: 14,
  TAB: 15,
  ENTER: 28,
  KPASTERISK: 55,
  SPACE: 57,
  NUMLOCK: 69,
  KP7: 71,
  KP8: 72,
  KP9: 73,
  KPMINUS: 74,
  KP4: 75,
  KP5: 76,
  KP6: 77,
  KPPLUS: 78,
  KP1: 79,
  KP2: 80,
  KP3: 81,
  KP0: 82,
  KPDOT: 83,
  KPENTER: 96,
  KPSLASH: 98,
  DELETE: 111,
};

const CODE_NAMES = new Map(Object.entries(KEY_CODES).map(([n, c]) => [c, n]));

/** "KP1", "KEY_KP1", "79" -> 79 */
export function keyCode(key: string | number): number | undefined {
  if (typeof key === 'number') return Number.isInteger(key) && key >= 0 && key < 768 ? key : undefined;
  const k = key.trim().toUpperCase().replace(/^KEY_/, '');
  if (/^\d+$/.test(k) && k.length > 1) return Number(k);
  return KEY_CODES[k];
}

export function keyName(code: number): string {
  const n = CODE_NAMES.get(code);
  return n ? `KEY_${n}` : `key ${code}`;
}

/** the digit a key types, for code entry */
const DIGIT_KEYS = new Map<number, number>([
  ...Array.from({ length: 10 }, (_, d) => [KEY_CODES[`KP${d}`]!, d] as [number, number]),
  ...Array.from({ length: 10 }, (_, d) => [KEY_CODES[String(d)]!, d] as [number, number]),
]);

/** 24 for a 64-bit Node process, 16 for a 32-bit one. */
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

/**
 * Opens an event device for reading. Not fs.createReadStream: a read() on a character device
 * blocks a libuv thread-pool thread until the next key press and cannot be cancelled, so the
 * agent would not exit on SIGTERM until someone touched the keypad. A `cat` child does the blocking
 * read instead; its stdout is a pipe the event loop watches, and killing it ends everything.
 * Its error message becomes an error with the usual code (EACCES, ENOENT, ENODEV).
 */
export function openEventDevice(path: string): Readable {
  const child = spawn('cat', [path], { stdio: ['ignore', 'pipe', 'pipe'] });
  let opened: NodeJS.Timeout | undefined;
  // destroy() (not a 'close' listener, which a caller may remove) is what ends the reader
  const out = new PassThrough({
    destroy(err, cb) {
      clearTimeout(opened);
      child.kill('SIGKILL');
      cb(err);
    },
  });
  let stderr = '';
  child.stderr.setEncoding('utf8');
  child.stderr.on('data', (d: string) => (stderr += d));
  child.stdout.pipe(out, { end: false });
  child.once('error', (err) => out.destroy(err));
  child.once('close', (code, signal) => {
    if (out.destroyed) return;
    if (code === 0 || signal) {
      out.end();
      return;
    }
    const msg = stderr.trim().replace(/^cat: /, '') || `cannot read ${path}`;
    const errno = /Permission denied/.test(msg) ? 'EACCES' : /No such file/.test(msg) ? 'ENOENT' : /No such device/.test(msg) ? 'ENODEV' : 'EIO';
    out.destroy(Object.assign(new Error(msg), { code: errno }));
  });
  // cat fails at once on a missing or forbidden device; still running a moment later = open
  opened = setTimeout(() => {
    if (child.exitCode === null && !out.destroyed) out.emit('open');
  }, 200);
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
  private readonly parser: EventParser;
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
    private readonly open: (path: string) => Readable = openEventDevice,
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
    let stream: Readable;
    try {
      stream = this.open(this.cfg.device);
    } catch (err) {
      this.lost(err as Error);
      return;
    }
    this.stream = stream;
    this.parser.reset();
    stream.on('open', () => {
      this.connected = true;
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
      e.code === 'EACCES' ? ' (permission: the agent user must be in group input, see hardware/udev/99-qrkiosk.rules)' : e.code === 'ENOENT' ? ' (not plugged in, or the path changed: use /dev/input/by-id/...)' : '';
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
      detail: `${this.cfg.device}, ${this.parser.size}-byte events, ${this.cfg.entry === 'code' ? 'type the slot number then Enter' : 'one key per slot'}, ${this.events_} event(s) read`,
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
