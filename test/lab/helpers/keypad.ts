import { spawn, type ChildProcessByStdio, type ChildProcessWithoutNullStreams } from 'node:child_process';
import type { Readable } from 'node:stream';
import { fileURLToPath } from 'node:url';
import { createInterface, type Interface } from 'node:readline';

// Drives helpers/uinput-keypad.py (a virtual keypad through /dev/uinput) and watches the console
// (tty1, where a keyboard's keys go when nobody grabs the device).

const SCRIPT = fileURLToPath(new URL('./uinput-keypad.py', import.meta.url));

export class VirtualKeypad {
  private lines: AsyncIterator<string>;
  private readonly rl: Interface;

  private constructor(
    private readonly child: ChildProcessWithoutNullStreams,
    readonly device: string,
    rl: Interface,
    lines: AsyncIterator<string>,
  ) {
    this.rl = rl;
    this.lines = lines;
  }

  static async create(codes: number[]): Promise<VirtualKeypad> {
    const child = spawn('python3', [SCRIPT, ...codes.map(String)], { stdio: ['pipe', 'pipe', 'pipe'] });
    let stderr = '';
    child.stderr.on('data', (d: Buffer) => (stderr += d.toString()));
    const rl = createInterface({ input: child.stdout });
    const lines = rl[Symbol.asyncIterator]();
    const first = await lines.next();
    const m = /^ready (\S+)$/.exec(first.done ? '' : first.value);
    if (!m) throw new Error(`uinput keypad did not start: ${first.done ? stderr : first.value}`);
    return new VirtualKeypad(child, m[1]!, rl, lines);
  }

  /** a key pressed and released; resolves once the kernel has the events */
  async tap(code: number): Promise<void> {
    this.child.stdin.write(`tap ${code}\n`);
    const r = await this.lines.next();
    if (r.done || r.value !== 'ok') throw new Error(`keypad: ${r.done ? 'exited' : r.value}`);
  }

  async destroy(): Promise<void> {
    const exited = new Promise((r) => this.child.once('close', r));
    this.child.stdin.end('quit\n');
    await exited;
    this.rl.close();
  }
}

/** Reads what the keyboard types on the console (tty1, raw: every key, no Enter needed). */
export class ConsoleWatch {
  private text = '';
  private readonly waiters: Array<() => void> = [];

  private constructor(private readonly child: ChildProcessByStdio<null, Readable, Readable>) {
    child.stdout.on('data', (d: Buffer) => {
      this.text += d.toString('latin1');
      for (const w of this.waiters.splice(0)) w();
    });
  }

  static async open(tty = '/dev/tty1'): Promise<ConsoleWatch> {
    // Raw and no echo (every key arrives at once, nothing waits for Enter), on the SAME open file
    // that cat then reads: the VT driver resets a console's termios on its last close
    // (TTY_DRIVER_RESET_TERMIOS), so `stty -F tty1 raw; cat tty1` would read a cooked tty1 that
    // holds every key back until a newline.
    const child = spawn('sh', ['-c', `exec <${tty} && stty raw -echo && echo open && exec cat`], { stdio: ['ignore', 'pipe', 'pipe'] });
    await new Promise<void>((resolve, reject) => {
      let err = '';
      child.stderr.on('data', (d: Buffer) => (err += d.toString()));
      child.stdout.once('data', () => resolve());
      child.once('close', () => reject(new Error(`cannot watch ${tty}: ${err}`)));
    });
    const w = new ConsoleWatch(child);
    return w;
  }

  /** everything typed on the console since opened */
  get typed(): string {
    return this.text;
  }

  /** resolves once the console shows `s` (fails after timeoutMs, with what it did show) */
  async until(s: string, timeoutMs = 30_000): Promise<string> {
    const end = Date.now() + timeoutMs;
    while (!this.text.includes(s)) {
      const left = end - Date.now();
      if (left <= 0) throw new Error(`the console never showed ${JSON.stringify(s)} (it showed ${JSON.stringify(this.text)})`);
      await new Promise<void>((r) => {
        const t = setTimeout(r, left);
        this.waiters.push(() => {
          clearTimeout(t);
          r();
        });
      });
    }
    return this.text;
  }

  reset(): void {
    this.text = '';
  }

  close(): void {
    this.child.kill('SIGKILL');
  }
}
