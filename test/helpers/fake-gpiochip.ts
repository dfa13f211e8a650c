import { EventEmitter } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import net from 'node:net';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';

// The "kernel" behind the libgpiod stand-ins in test/fixtures/bin: GPIO chips with named lines,
// served on a unix socket. It keeps what the agent's correctness depends on:
//   - a line has one owner at a time; requesting a held line fails with EBUSY;
//   - an output keeps its value while its owner lives; once released it keeps the last value
//     (Raspberry Pi kernels persist GPIO outputs) until someone requests it again;
//   - an input's level is what the outside drives, else what its bias pulls it to;
//   - every level change of a monitored line becomes an edge event, in order, with a timestamp.
// Tests drive inputs (a button, a sensor), read every output change with its time, and see which
// processes hold which lines.

export type Level = 0 | 1;
type Bias = 'as-is' | 'pull-up' | 'pull-down' | 'disabled';

export interface ChipSpec {
  name: string;
  label: string;
  lines: number;
  names: Record<number, string>;
}

interface Line {
  owner: Conn | undefined;
  mode: 'in' | 'out' | 'edge' | undefined;
  direction: 'in' | 'out';
  bias: Bias;
  external: Level | undefined;
  out: Level;
  last: Level;
}

interface Conn {
  id: number;
  sock: net.Socket;
  held: Array<{ chip: string; offset: number }>;
  mode?: 'in' | 'out' | 'edge';
}

export interface OutputChange {
  at: number;
  chip: string;
  offset: number;
  value: Level;
}

/** owner of a line reserved by "the kernel" (reserve()) */
const KERNEL: Conn = { id: 0, sock: undefined as unknown as net.Socket, held: [] };

export const FIXTURE_BIN = resolve(import.meta.dirname, '..', 'fixtures', 'bin');

/** Raspberry Pi 4 header chip: lines GPIO0..GPIO57 as named in the RPi device tree (6.6). */
export function pi4Chip(name = 'gpiochip0'): ChipSpec {
  const names: Record<number, string> = { 0: 'ID_SDA', 1: 'ID_SCL' };
  for (let i = 2; i <= 27; i++) names[i] = `GPIO${i}`;
  return { name, label: 'pinctrl-bcm2711', lines: 58, names };
}

export class FakeGpioChip extends EventEmitter {
  readonly dir: string;
  readonly socketPath: string;
  private readonly server: net.Server;
  private readonly chips = new Map<string, ChipSpec>();
  private readonly lines = new Map<string, Line>();
  private readonly conns = new Set<Conn>();
  private nextId = 1;
  readonly outputs: OutputChange[] = [];
  /** requests refused with EBUSY (a design error in the agent shows here) */
  readonly busy: Array<{ chip: string; offset: number; mode: string }> = [];

  private constructor(
    chips: ChipSpec[],
    readonly version: string,
  ) {
    super();
    this.dir = mkdtempSync(join(tmpdir(), 'qrk-chip-'));
    this.socketPath = join(this.dir, 'chip.sock');
    for (const c of chips) this.chips.set(c.name, c);
    this.server = net.createServer((sock) => this.onConnection(sock));
  }

  static async start(opts: { chips?: ChipSpec[]; version: string }): Promise<FakeGpioChip> {
    const chip = new FakeGpioChip(opts.chips ?? [pi4Chip()], opts.version);
    await new Promise<void>((r) => chip.server.listen(chip.socketPath, r));
    return chip;
  }

  /** Environment for processes that should meet this chip through the stand-in tools. */
  env(base: NodeJS.ProcessEnv = process.env): NodeJS.ProcessEnv {
    return {
      ...base,
      PATH: `${FIXTURE_BIN}:${base.PATH ?? '/usr/bin:/bin'}`,
      FAKE_GPIOD_SOCKET: this.socketPath,
      FAKE_LIBGPIOD_VERSION: this.version,
      FAKE_GPIOD_NODE: process.execPath,
    };
  }

  private chipName(id: string): string | undefined {
    const n = id.replace(/^\/dev\//, '');
    if (this.chips.has(n)) return n;
    if (/^\d+$/.test(n) && this.chips.has(`gpiochip${n}`)) return `gpiochip${n}`;
    return undefined;
  }

  private line(chip: string, offset: number): Line {
    const key = `${chip}:${offset}`;
    let l = this.lines.get(key);
    if (!l) {
      l = { owner: undefined, mode: undefined, direction: 'in', bias: 'as-is', external: undefined, out: 0, last: 0 };
      this.lines.set(key, l);
    }
    return l;
  }

  private levelOf(l: Line): Level {
    if (l.direction === 'out') return l.out;
    if (l.external !== undefined) return l.external;
    if (l.bias === 'pull-up') return 1;
    if (l.bias === 'pull-down') return 0;
    return l.last;
  }

  /** recompute a line's level and tell its monitor about an edge */
  private update(chip: string, offset: number): void {
    const l = this.line(chip, offset);
    const level = this.levelOf(l);
    if (level === l.last) return;
    l.last = level;
    if (l.owner && l.mode === 'edge') {
      const name = this.chips.get(chip)!.names[offset];
      l.owner.sock.write(
        JSON.stringify({ event: level ? 'rising' : 'falling', chip, offset, name, ns: String(process.hrtime.bigint()) }) + '\n',
      );
    }
    this.emit('level', chip, offset, level);
  }

  private onConnection(sock: net.Socket): void {
    const conn: Conn = { id: this.nextId++, sock, held: [] };
    this.conns.add(conn);
    sock.setEncoding('utf8');
    let buf = '';
    sock.on('data', (d: string) => {
      buf += d;
      let nl: number;
      while ((nl = buf.indexOf('\n')) >= 0) {
        const msg = JSON.parse(buf.slice(0, nl)) as Record<string, unknown>;
        buf = buf.slice(nl + 1);
        sock.write(JSON.stringify(this.handle(conn, msg)) + '\n');
      }
    });
    sock.on('error', () => {});
    // the process died without releasing (SIGKILL): the kernel releases on close
    sock.on('close', () => {
      this.release(conn);
      this.conns.delete(conn);
    });
  }

  private handle(conn: Conn, msg: Record<string, unknown>): Record<string, unknown> {
    switch (msg.op) {
      case 'chips':
        return { ok: true, chips: [...this.chips.values()] };
      case 'find': {
        const name = String(msg.name);
        for (const c of this.chips.values()) {
          if (msg.chip && this.chipName(String(msg.chip)) !== c.name) continue;
          for (const [o, n] of Object.entries(c.names)) if (n === name) return { ok: true, chip: c.name, offset: Number(o) };
        }
        return { ok: false };
      }
      case 'request': {
        const chip = this.chipName(String(msg.chip));
        if (!chip) return { ok: false, errno: 'ENOENT' };
        const offsets = msg.offsets as number[];
        const spec = this.chips.get(chip)!;
        if (offsets.some((o) => !Number.isInteger(o) || o < 0 || o >= spec.lines)) return { ok: false, errno: 'EINVAL' };
        const mode = msg.mode as 'in' | 'out' | 'edge';
        for (const o of offsets) {
          if (this.line(chip, o).owner) {
            this.busy.push({ chip, offset: o, mode });
            return { ok: false, errno: 'EBUSY' };
          }
        }
        const values: Level[] = [];
        for (const o of offsets) {
          const l = this.line(chip, o);
          l.owner = conn;
          l.mode = mode;
          if (msg.bias !== 'as-is') l.bias = msg.bias as Bias;
          conn.held.push({ chip, offset: o });
          if (mode === 'out') {
            l.direction = 'out';
            const v = (msg.values as Record<string, Level>)[String(o)] ?? 0;
            this.setOut(chip, o, v);
          } else {
            l.direction = 'in';
          }
          this.update(chip, o);
          values.push(this.levelOf(l));
        }
        this.emit('request', { chip, offsets, mode, conn: conn.id });
        return { ok: true, values };
      }
      case 'set': {
        for (const [o, v] of Object.entries(msg.values as Record<string, Level>)) {
          const h = conn.held.find((x) => x.offset === Number(o));
          if (!h) return { ok: false, errno: 'EPERM' };
          this.setOut(h.chip, h.offset, v);
          this.update(h.chip, h.offset);
        }
        return { ok: true };
      }
      case 'release':
        this.release(conn);
        return { ok: true };
      default:
        return { ok: false, errno: 'EINVAL' };
    }
  }

  private setOut(chip: string, offset: number, v: Level): void {
    const l = this.line(chip, offset);
    if (l.out === v && this.outputs.some((c) => c.chip === chip && c.offset === offset)) return;
    l.out = v;
    const change = { at: Date.now(), chip, offset, value: v };
    this.outputs.push(change);
    this.emit('output', change);
  }

  private release(conn: Conn): void {
    for (const h of conn.held) {
      const l = this.line(h.chip, h.offset);
      if (l.owner !== conn) continue;
      // Raspberry Pi kernels keep a released output at its last value
      l.owner = undefined;
      l.mode = undefined;
      this.emit('release', { chip: h.chip, offset: h.offset, conn: conn.id });
    }
    conn.held = [];
  }

  // ---- the test's side ----------------------------------------------------------------------------

  /** An outside circuit drives an input line (undefined: lets go, the bias decides). */
  drive(offset: number, level: Level | undefined, chip = 'gpiochip0'): void {
    this.line(chip, offset).external = level;
    this.update(chip, offset);
  }

  /**
   * The line is taken by something outside the tools (a kernel driver, an overlay): every request
   * fails with EBUSY until released.
   */
  reserve(offset: number, chip = 'gpiochip0'): void {
    const l = this.line(chip, offset);
    if (l.owner) throw new Error(`line ${offset} is held by a tool`);
    l.owner = KERNEL;
  }

  unreserve(offset: number, chip = 'gpiochip0'): void {
    const l = this.line(chip, offset);
    if (l.owner === KERNEL) l.owner = undefined;
    this.emit('release', { chip, offset, conn: 0 });
  }

  level(offset: number, chip = 'gpiochip0'): Level {
    return this.levelOf(this.line(chip, offset));
  }

  /** who holds a line and how ('edge' = gpiomon, 'out' = gpioset) */
  holder(offset: number, chip = 'gpiochip0'): { mode: string } | undefined {
    const l = this.line(chip, offset);
    return l.owner ? { mode: l.mode ?? '?' } : undefined;
  }

  bias(offset: number, chip = 'gpiochip0'): Bias {
    return this.line(chip, offset).bias;
  }

  outputsOf(offset: number, chip = 'gpiochip0'): OutputChange[] {
    return this.outputs.filter((c) => c.chip === chip && c.offset === offset);
  }

  /** resolves when pred holds (checked now and after every chip event) */
  until<T>(what: string, pred: () => T | undefined | false, timeoutMs = 10_000): Promise<T> {
    const now = pred();
    if (now) return Promise.resolve(now);
    return new Promise((resolvePromise, reject) => {
      const check = () => {
        const v = pred();
        if (!v) return;
        cleanup();
        resolvePromise(v);
      };
      const timer = setTimeout(() => {
        cleanup();
        reject(new Error(`fake gpiochip: timed out after ${timeoutMs} ms waiting for ${what}`));
      }, timeoutMs);
      const cleanup = () => {
        clearTimeout(timer);
        for (const e of ['request', 'release', 'output', 'level']) this.off(e, check);
      };
      for (const e of ['request', 'release', 'output', 'level']) this.on(e, check);
    });
  }

  /** resolves once a process monitors the line (gpiomon has requested it) */
  monitored(offset: number, chip = 'gpiochip0'): Promise<true> {
    return this.until(`gpiomon on ${chip} ${offset}`, () => this.holder(offset, chip)?.mode === 'edge' || undefined);
  }

  async close(): Promise<void> {
    for (const c of this.conns) c.sock.destroy();
    await new Promise<void>((r) => this.server.close(() => r()));
    rmSync(this.dir, { recursive: true, force: true });
  }
}
