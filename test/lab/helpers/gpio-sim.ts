import { existsSync, mkdirSync, readFileSync, readdirSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Worker } from 'node:worker_threads';
import { execFileSync } from 'node:child_process';

// Raspberry Pi GPIO chips made real by the kernel's gpio-sim (configured through configfs): the
// drivers meet a /sys/class/gpio/gpiochip<base> with a kernel-chosen base and a /dev/gpiochipN
// with named lines, exactly what they meet on a Pi. The "outside world" is the simulator's side
// of each line: a button press or a beam interruption is a pull written to sim_gpioN/pull, and
// what the driver drives on an output is read back from sim_gpioN/value.
//
// The chip sets follow the boards (and hardware/README.md's table): the header chip's label and
// line count, with the other GPIO controllers of the board registered BEFORE it, so that "the
// first chip" is the wrong guess (on a Pi 5 it is a SoC bank, not the 40-pin header).

const CONFIGFS = '/sys/kernel/config/gpio-sim';

export interface SimChipSpec {
  label: string;
  lines: number;
  /** name lines GPIO0.. as the Raspberry Pi device trees do (header chips only) */
  named: boolean;
}

export const BOARDS: Record<string, SimChipSpec[]> = {
  'Pi 3': [
    { label: 'raspberrypi-exp-gpio', lines: 8, named: false },
    { label: 'pinctrl-bcm2835', lines: 54, named: true },
  ],
  'Pi 4': [
    { label: 'raspberrypi-exp-gpio', lines: 8, named: false },
    { label: 'pinctrl-bcm2711', lines: 58, named: true },
  ],
  'Pi 5': [
    { label: 'gpio-brcmstb@107d508500', lines: 32, named: false },
    { label: 'gpio-brcmstb@107d508520', lines: 4, named: false },
    { label: 'gpio-brcmstb@107d517c00', lines: 17, named: false },
    { label: 'gpio-brcmstb@107d517c20', lines: 6, named: false },
    { label: 'pinctrl-rp1', lines: 54, named: true },
  ],
};

export type SimPull = 'pull-up' | 'pull-down';

export interface SimChip {
  label: string;
  lines: number;
  /** /dev/gpiochipN name */
  chipName: string;
  /** sysfs base the kernel chose */
  base: number;
  simDir: string;
}

function write(path: string, value: string): void {
  writeFileSync(path, value);
}

function sysfsBaseOf(label: string): number {
  for (const d of readdirSync('/sys/class/gpio')) {
    if (!d.startsWith('gpiochip')) continue;
    if (readFileSync(`/sys/class/gpio/${d}/label`, 'utf8').trim() === label) return Number(readFileSync(`/sys/class/gpio/${d}/base`, 'utf8'));
  }
  throw new Error(`no /sys/class/gpio chip labelled ${label}`);
}

/** One board's chips, live in the kernel, one gpio-sim device per chip in registration order. */
export class SimBoard {
  readonly chips: SimChip[] = [];
  private readonly made: string[] = [];

  private constructor(readonly model: string) {}

  static create(model: string): SimBoard {
    const specs = BOARDS[model];
    if (!specs) throw new Error(`unknown board ${model}`);
    if (!existsSync(CONFIGFS)) throw new Error(`${CONFIGFS} missing: gpio-sim not loaded or configfs not mounted (run inside the lab)`);
    const board = new SimBoard(model);
    specs.forEach((spec, i) => {
      const dev = join(CONFIGFS, `lab-${model.replace(/\W/g, '').toLowerCase()}-${i}`);
      mkdirSync(dev);
      board.made.push(dev);
      const bank = join(dev, 'bank0');
      mkdirSync(bank);
      write(join(bank, 'label'), spec.label);
      write(join(bank, 'num_lines'), String(spec.lines));
      if (spec.named) {
        for (let l = 0; l < spec.lines; l++) {
          mkdirSync(join(bank, `line${l}`));
          write(join(bank, `line${l}`, 'name'), `GPIO${l}`);
        }
      }
      write(join(dev, 'live'), '1');
      const devName = readFileSync(join(dev, 'dev_name'), 'utf8').trim();
      const chipName = readFileSync(join(bank, 'chip_name'), 'utf8').trim();
      board.chips.push({ label: spec.label, lines: spec.lines, chipName, base: sysfsBaseOf(spec.label), simDir: `/sys/devices/platform/${devName}/${chipName}` });
    });
    return board;
  }

  /** the chip that drives the 40-pin header */
  get header(): SimChip {
    return this.chips.at(-1)!;
  }

  /** the outside world pulls the header line (a button to GND pressed = pull-down) */
  pull(bcm: number, pull: SimPull): void {
    write(join(this.header.simDir, `sim_gpio${bcm}`, 'pull'), pull);
  }

  /** the level on the header line as the outside world sees it (what an output drives) */
  value(bcm: number): 0 | 1 {
    return readFileSync(join(this.header.simDir, `sim_gpio${bcm}`, 'value'), 'utf8').trim() === '1' ? 1 : 0;
  }

  /** Unexports what the drivers left exported (outputs stay exported by design) and removes the chips. */
  destroy(): void {
    for (const chip of this.chips) {
      for (let l = 0; l < chip.lines; l++) {
        if (existsSync(`/sys/class/gpio/gpio${chip.base + l}`)) {
          try {
            write('/sys/class/gpio/unexport', String(chip.base + l));
          } catch {
            /* the kernel frees them with the chip anyway */
          }
        }
      }
    }
    for (const dev of this.made.reverse()) {
      write(join(dev, 'live'), '0');
      for (const bank of readdirSync(dev).filter((d) => d.startsWith('bank'))) {
        for (const line of readdirSync(join(dev, bank)).filter((d) => d.startsWith('line'))) rmdirSync(join(dev, bank, line));
        rmdirSync(join(dev, bank));
      }
      rmdirSync(dev);
    }
  }
}

/** Busy-waits ms on this thread: a pulse of a known minimum width, whatever the event loop does. */
export function spin(ms: number): void {
  const end = process.hrtime.bigint() + BigInt(Math.round(ms * 1e6));
  while (process.hrtime.bigint() < end) {
    /* the line stays at its level for at least ms */
  }
}

export type WorldStep =
  | { bcm: number; pull: SimPull }
  | { waitMs: number }
  /** wait until the header line reads value (an output the driver drives); its time is recorded */
  | { until: number; value: 0 | 1; timeoutMs?: number };

/**
 * The outside world, acting on its own clock in a worker thread: a bouncing contact, a product
 * breaking the beam 2 ms, a machine that reacts when a motor relay closes. Pulls and gaps run
 * there (Atomics.wait for the gaps, the sim's value file sampled every 0.2 ms for `until`), so
 * the edges happen at real intervals whatever the driver's event loop is doing. The worker starts
 * once per test file (a start costs a second or more on the emulated CPU). One worker does one
 * thing at a time: a test that needs a machine and a customer acting at once makes two.
 */
export class OutsideWorld {
  private readonly worker: Worker;
  private seq = 0;
  /**
   * Of the last finished run: the longest the line may have stayed between two consecutive pulls
   * (ms). A "bouncing contact" is only one press if this stayed under the driver's debounce: a
   * failed count says which side was late, the world or the driver.
   */
  lastEdgeGapMs = 0;

  constructor(private readonly board: () => SimBoard) {
    const code = `
      const { parentPort } = require('node:worker_threads');
      const { readFileSync, writeFileSync } = require('node:fs');
      const cell = new Int32Array(new SharedArrayBuffer(4));
      const nap = () => Atomics.wait(cell, 0, 0, 0.2);
      parentPort.on('message', ({ id, steps }) => {
        const marks = [];
        // upper bound of the time between two consecutive pulls: from before one write to after
        // the next (a worker preempted under load stretches a 1 ms bounce into a real press)
        let edgeGapMs = 0, lastBefore;
        parentPort.postMessage({ id, started: true });
        try {
          for (const s of steps) {
            if ('waitMs' in s) {
              const end = process.hrtime.bigint() + BigInt(Math.round(s.waitMs * 1e6));
              while (process.hrtime.bigint() < end) nap();
            } else if ('until' in s) {
              const end = process.hrtime.bigint() + BigInt((s.timeoutMs ?? 60000) * 1e6);
              while (readFileSync(s.path, 'utf8').trim() !== String(s.value)) {
                if (process.hrtime.bigint() > end) throw new Error('line ' + s.path + ' never read ' + s.value);
                nap();
              }
              marks.push(Number(process.hrtime.bigint()) / 1e6);
            } else {
              const before = Number(process.hrtime.bigint()) / 1e6;
              writeFileSync(s.path, s.pull);
              const after = Number(process.hrtime.bigint()) / 1e6;
              if (lastBefore !== undefined) edgeGapMs = Math.max(edgeGapMs, after - lastBefore);
              lastBefore = before;
            }
          }
          parentPort.postMessage({ id, marks, edgeGapMs });
        } catch (err) {
          parentPort.postMessage({ id, error: String(err && err.message || err) });
        }
      });`;
    this.worker = new Worker(code, { eval: true });
    this.worker.unref();
  }

  /**
   * Starts the steps in the worker; resolves once the worker is at them (so what the test does
   * next is seen), with `done`: the times (ms, monotonic) at which each `until` was met.
   */
  arm(steps: WorldStep[]): Promise<{ done: Promise<number[]> }> {
    const dir = this.board().header.simDir;
    const resolved = steps.map((s) =>
      'waitMs' in s ? s : 'until' in s ? { ...s, path: join(dir, `sim_gpio${s.until}`, 'value') } : { path: join(dir, `sim_gpio${s.bcm}`, 'pull'), pull: s.pull },
    );
    const id = ++this.seq;
    return new Promise((started) => {
      let finish!: (marks: number[]) => void;
      let fail!: (err: Error) => void;
      const done = new Promise<number[]>((res, rej) => ((finish = res), (fail = rej)));
      done.catch(() => {}); // the caller awaits it; never an unhandled rejection
      const onMessage = (m: { id: number; started?: boolean; marks?: number[]; edgeGapMs?: number; error?: string }) => {
        if (m.id !== id) return;
        if (m.started) return started({ done });
        this.worker.off('message', onMessage);
        if (m.error) fail(new Error(m.error));
        else {
          this.lastEdgeGapMs = m.edgeGapMs ?? 0;
          finish(m.marks ?? []);
        }
      };
      this.worker.on('message', onMessage);
      this.worker.postMessage({ id, steps: resolved });
    });
  }

  /** runs the steps to the end */
  async run(steps: WorldStep[]): Promise<number[]> {
    return (await this.arm(steps)).done;
  }

  /** arms a measurement of the next pulse of `bcm` away from `idle`; `width` is its width in ms */
  async pulse(bcm: number, idle: 0 | 1, after: WorldStep[] = [], timeoutMs = 60_000): Promise<{ width: Promise<number> }> {
    const active = idle === 1 ? 0 : 1;
    const { done } = await this.arm([{ until: bcm, value: active, timeoutMs }, ...after, { until: bcm, value: idle, timeoutMs }]);
    return { width: done.then((marks) => marks[marks.length - 1]! - marks[0]!) };
  }

  async close(): Promise<void> {
    await this.worker.terminate();
  }
}

/** A contact that bounces `bounces` times (1 ms apart) before settling at `to`. */
export function bouncing(bcm: number, to: SimPull, bounces = 4): WorldStep[] {
  const other: SimPull = to === 'pull-up' ? 'pull-down' : 'pull-up';
  const steps: WorldStep[] = [];
  for (let i = 0; i < bounces; i++) steps.push({ bcm, pull: to }, { waitMs: 1 }, { bcm, pull: other }, { waitMs: 1 });
  steps.push({ bcm, pull: to });
  return steps;
}

/**
 * Who holds a header line, as `gpioinfo` shows it ("gpiomon", "gpioset", "sysfs"), or undefined
 * when nobody does. A tool that was just spawned holds its line a moment later: tests wait for
 * this before the world acts, as a technician waits for the agent to be up.
 */
export function lineConsumer(board: SimBoard, bcm: number): string | undefined {
  const out = execFileSync('gpioinfo', [board.header.chipName], { encoding: 'utf8' });
  const line = out.split('\n').find((l) => new RegExp(`^\\s*line\\s+${bcm}:`).test(l));
  if (!line || !/\[used/.test(line)) return undefined;
  return /^\s*line\s+\d+:\s+(?:"[^"]*"|unnamed)\s+"([^"]*)"/.exec(line)?.[1];
}
