import { execFile, spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { createInterface } from 'node:readline';
import type { Logger } from '../../runtime/log.js';
import type { FaultSink } from '../faults.js';
import { InputLevel, pinReports } from './backend-parts.js';
import {
  GpioError,
  defaultLineName,
  type GpioBackend,
  type GpioInput,
  type GpioOutput,
  type GpioProcessInfo,
  type GpioReport,
  type InputSpec,
  type Level,
  type OutputSpec,
  type Pull,
} from './types.js';

// The character-device backend, through the command line tools of Debian's `gpiod` package
// (libgpiod 1.6 on bookworm, 2.x on trixie): no native addon to build, and it works on kernels
// without sysfs GPIO. Lines are found by NAME (GPIO17), never by chip number, because chip numbers
// moved on the Pi 5 (gpiochip4 -> gpiochip0 -> ...).
//
// Inputs: one long-lived `gpiomon` per line, its stdout parsed line by line (v1: `event:  RISING
// EDGE offset: 17 timestamp: [...]`, v2: `<secs>.<ns>\trising\tgpiochip0 17 "GPIO17"`). The
// initial level comes from `gpioget` just before gpiomon requests the line (both cannot hold it).
// v1 gpiomon block-buffers stdout on a pipe unless given -b: without it, edges would arrive in
// 4 KiB lumps.
//
// Outputs: the kernel keeps a line's value only while a process holds it, so each output has a
// holder process (`gpioset` that waits for a signal) at the safe level. A pulse replaces the holder
// with a small shell chain: a self-timed gpioset drives the active level for the pulse width, then
// the chain prints a marker and execs a new safe-level holder. The pulse ends on time if the agent
// alone dies mid-pulse — but NOT if the chain dies with it: systemd kills every process of the
// unit when the agent ends (KillMode=mixed, an out-of-memory kill of the cgroup, a watchdog
// abort), and a Raspberry Pi kernel keeps a released line at its last level, the motor's "on".
// That case is covered outside the agent: `qrkiosk safe-outputs` (src/devices/gpio/safe-outputs.ts)
// runs from ExecStopPost= after every end of the unit and at boot.
//
// Every child gets its own process group (detached): Ctrl-C on a terminal must not kill the holders
// before the agent has driven its outputs safe, and a pulse chain is stopped as a whole.
// A child that dies unexpectedly is reported as a fault and restarted with a growing delay.

export interface LibgpiodVersion {
  major: number;
  minor: number;
  text: string;
}

export interface LineLocation {
  chip: string;
  offset: number;
  name: string;
}

/** Parses `gpioset (libgpiod) v1.6.3` (any of the tools). */
export function parseToolVersion(out: string): LibgpiodVersion | undefined {
  const m = /\(libgpiod\)\s+v(\d+)\.(\d+)(?:\.(\d+))?/.exec(out);
  if (!m) return undefined;
  return { major: Number(m[1]), minor: Number(m[2]), text: `${m[1]}.${m[2]}${m[3] !== undefined ? `.${m[3]}` : ''}` };
}

/** `gpiofind GPIO17` (v1) and `gpioinfo GPIO17` (v2) both start their answer with "<chip> <offset>". */
export function parseLineLocation(out: string, name: string): LineLocation | undefined {
  const m = /^(\S+)\s+(\d+)\b/.exec(out.trim());
  if (!m) return undefined;
  return { chip: m[1]!, offset: Number(m[2]), name };
}

export interface MonitorEvent {
  edge: 'rising' | 'falling';
  /** line offset when the format carries it */
  offset?: number;
  /** kernel timestamp, ns */
  timestampNs?: bigint;
}

const V1_EVENT = /^event:\s+(RISING|FALLING) EDGE offset: (\d+) timestamp: \[\s*(\d+)\.(\d+)\]/;
// v2 human-readable: "<sec>.<nsec>\t<rising|falling>\t<line id>", where the line id is
// `"GPIO17"`, `gpiochip0 17 "GPIO17"` (chip given) or `gpiochip0 17` (unnamed line)
const V2_EVENT = /^(\d+)\.(\d{9})\t(rising|falling)\t(.*)$/;

/** One stdout line of gpiomon, either version's default format. */
export function parseMonitorLine(line: string): MonitorEvent | undefined {
  let m = V1_EVENT.exec(line);
  if (m) {
    return {
      edge: m[1] === 'RISING' ? 'rising' : 'falling',
      offset: Number(m[2]),
      timestampNs: BigInt(m[3]!) * 1_000_000_000n + BigInt(m[4]!.padEnd(9, '0').slice(0, 9)),
    };
  }
  m = V2_EVENT.exec(line);
  if (m) {
    const id = /^(\S+) (\d+)(?: |$)/.exec(m[4]!);
    return {
      edge: m[3] === 'rising' ? 'rising' : 'falling',
      ...(id ? { offset: Number(id[2]) } : {}),
      timestampNs: BigInt(m[1]!) * 1_000_000_000n + BigInt(m[2]!),
    };
  }
  return undefined;
}

/** gpioget output: v1 "1", v2 `"17"=active` (or "1" with --numeric). */
export function parseGetOutput(out: string): Level | undefined {
  const t = out.trim().split(/\s+/)[0] ?? '';
  if (t === '1' || t === '0') return Number(t) as Level;
  const m = /=(active|inactive)$/.exec(t);
  if (m) return m[1] === 'active' ? 1 : 0;
  return undefined;
}

function biasArgs(v: LibgpiodVersion, pull: Pull): string[] {
  if (pull === 'as-is') return [];
  const name = pull === 'up' ? 'pull-up' : pull === 'down' ? 'pull-down' : v.major >= 2 ? 'disabled' : 'disable';
  return v.major >= 2 ? ['-b', name] : ['-B', name];
}

/** POSIX shell single quoting. */
function shq(s: string): string {
  return `'${s.replace(/'/g, `'\\''`)}'`;
}

export const PULSE_DONE = 'qrkiosk-pulse-done';
export const PULSE_FAILED = 'qrkiosk-pulse-failed';

/** The exact tool invocations, per major version (exported for the tests' eyes and the docs). */
export const commands = {
  find(v: LibgpiodVersion, name: string): [string, string[]] {
    return v.major >= 2 ? ['gpioinfo', [name]] : ['gpiofind', [name]];
  },
  get(v: LibgpiodVersion, l: LineLocation, pull: Pull): [string, string[]] {
    return v.major >= 2 ? ['gpioget', [...biasArgs(v, pull), '-c', l.chip, String(l.offset)]] : ['gpioget', [...biasArgs(v, pull), l.chip, String(l.offset)]];
  },
  monitor(v: LibgpiodVersion, l: LineLocation, pull: Pull): [string, string[]] {
    return v.major >= 2
      ? ['gpiomon', [...biasArgs(v, pull), '-c', l.chip, String(l.offset)]]
      : ['gpiomon', ['-b', ...biasArgs(v, pull), l.chip, String(l.offset)]];
  },
  /** holds the line at value until SIGTERM */
  hold(v: LibgpiodVersion, l: LineLocation, value: Level): [string, string[]] {
    return v.major >= 2 ? ['gpioset', ['-c', l.chip, `${l.offset}=${value}`]] : ['gpioset', ['-m', 'signal', l.chip, `${l.offset}=${value}`]];
  },
  /** drives value for ms, then exits on its own (v2 toggles back to the other level first) */
  timed(v: LibgpiodVersion, l: LineLocation, value: Level, ms: number): [string, string[]] {
    if (v.major >= 2) return ['gpioset', ['-c', l.chip, '-t', `${ms}ms,0`, `${l.offset}=${value}`]];
    // v1 takes seconds and microseconds separately; usleep() is only specified below 1 s
    return ['gpioset', ['-m', 'time', '-s', String(Math.floor(ms / 1000)), '-u', String((ms % 1000) * 1000), l.chip, `${l.offset}=${value}`]];
  },
  /** sets value and exits at once (shutdown) */
  once(v: LibgpiodVersion, l: LineLocation, value: Level): [string, string[]] {
    return v.major >= 2 ? ['gpioset', ['-c', l.chip, '-t', '0', `${l.offset}=${value}`]] : ['gpioset', ['-m', 'exit', l.chip, `${l.offset}=${value}`]];
  },
  /**
   * Start-up: set the safe level once (exits 0 only once the kernel drove it), print the marker,
   * then become the holder. The marker therefore means "the output is at its safe level".
   */
  holdChain(v: LibgpiodVersion, l: LineLocation, safe: Level): string {
    const sh = (c: [string, string[]]) => [c[0], ...c[1]].map(shq).join(' ');
    return `${sh(commands.once(v, l, safe))} && echo ${PULSE_DONE} || { echo ${PULSE_FAILED} $?; exit 1; }; exec ${sh(commands.hold(v, l, safe))}`;
  },
  /**
   * The shell chain of a pulse: active for ms, back to safe, print the marker, then become the
   * safe-level holder. v2's timed gpioset toggles back itself; v1's exits leaving the line at the
   * active level, so a one-shot set to safe follows before the marker — the marker always means
   * "the output is safe again".
   */
  pulseChain(v: LibgpiodVersion, l: LineLocation, active: Level, safe: Level, ms: number): string {
    const sh = (c: [string, string[]]) => [c[0], ...c[1]].map(shq).join(' ');
    const pulse = v.major >= 2 ? sh(commands.timed(v, l, active, ms)) : `${sh(commands.timed(v, l, active, ms))} && ${sh(commands.once(v, l, safe))}`;
    return `${pulse} && echo ${PULSE_DONE} || echo ${PULSE_FAILED} $?; exec ${sh(commands.hold(v, l, safe))}`;
  },
};

function run(cmd: string, args: string[], env?: NodeJS.ProcessEnv, timeoutMs = 5000): Promise<{ stdout: string; stderr: string }> {
  return new Promise((resolve, reject) => {
    execFile(cmd, args, { timeout: timeoutMs, encoding: 'utf8', ...(env ? { env } : {}) }, (err, stdout, stderr) => {
      if (err) {
        const e = err as NodeJS.ErrnoException & { stderr?: string };
        e.stderr = stderr;
        reject(e);
      } else resolve({ stdout, stderr });
    });
  });
}

function toolError(cmd: string, args: string[], err: unknown): string {
  const e = err as NodeJS.ErrnoException & { stderr?: string; code?: string | number };
  if (e.code === 'ENOENT') return `${cmd} is not installed (apt install gpiod)`;
  const stderr = (e.stderr ?? '').trim().split('\n').filter(Boolean).at(-1);
  return `\`${cmd} ${args.join(' ')}\` failed${typeof e.code === 'number' ? ` (exit ${e.code})` : ''}${stderr ? `: ${stderr}` : ''}`;
}

/** A supervised child: lines of stdout to a callback, the tail of stderr kept for reports. */
class Child {
  readonly proc: ChildProcess;
  readonly exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
  stderrTail = '';
  stopping = false;
  private exitedFlag = false;

  constructor(
    readonly command: string,
    args: string[],
    onLine: (line: string) => void,
    env?: NodeJS.ProcessEnv,
  ) {
    this.proc = spawn(command, args, { stdio: ['ignore', 'pipe', 'pipe'], detached: true, ...(env ? { env } : {}) });
    this.exited = new Promise((resolve) => {
      this.proc.once('error', () => {
        // spawn failure (ENOENT...): 'close' still follows on Node 20 for pipes; guard anyway
        if (!this.exitedFlag) {
          this.exitedFlag = true;
          resolve({ code: 127, signal: null });
        }
      });
      this.proc.once('close', (code, signal) => {
        if (!this.exitedFlag) {
          this.exitedFlag = true;
          resolve({ code, signal });
        }
      });
    });
    createInterface({ input: this.proc.stdout! }).on('line', onLine);
    this.proc.stderr!.setEncoding('utf8');
    this.proc.stderr!.on('data', (d: string) => {
      this.stderrTail = (this.stderrTail + d).slice(-400);
    });
  }

  get alive(): boolean {
    return !this.exitedFlag;
  }

  lastError(): string {
    return this.stderrTail.trim().split('\n').filter(Boolean).at(-1) ?? '';
  }

  /** signal the whole process group (a pulse chain is sh + gpioset) */
  signal(sig: NodeJS.Signals): void {
    if (!this.alive || this.proc.pid === undefined) return;
    try {
      process.kill(-this.proc.pid, sig);
    } catch {
      try {
        this.proc.kill(sig);
      } catch {
        /* gone */
      }
    }
  }

  /** SIGTERM (the tools exit cleanly and release their lines), SIGKILL if that takes too long */
  async stop(graceMs = 2000): Promise<void> {
    this.stopping = true;
    if (!this.alive) return;
    this.signal('SIGTERM');
    const timer = setTimeout(() => this.signal('SIGKILL'), graceMs);
    await this.exited;
    clearTimeout(timer);
  }
}

function describeExit(r: { code: number | null; signal: NodeJS.Signals | null }, child: Child): string {
  const how = r.signal ? `killed by ${r.signal}` : `exit code ${r.code}`;
  const err = child.lastError();
  return `${how}${err ? `: ${err}` : ''}`;
}

interface Restarter {
  restarts: number;
  consecutive: number;
  startedAt: number;
  timer: NodeJS.Timeout | undefined;
}

/** a child that ran this long before dying was healthy: start over at the short delay */
const HEALTHY_MS = 10_000;

function nextDelay(r: Restarter): number {
  if (Date.now() - r.startedAt > HEALTHY_MS) r.consecutive = 0;
  r.consecutive++;
  return Math.min(5000, 100 * 2 ** (r.consecutive - 1));
}

/**
 * Reports a child's death: each of the first three in a row as an event (a technician sees every
 * one), then once as a lasting condition while it keeps dying (a missing chip would otherwise log
 * every 5 s for ever), cleared once a restarted child stays up.
 */
function reportDeath(b: LibgpiodBackend, r: Restarter, device: string, what: string, delay: number): void {
  if (r.consecutive <= 3) b.faults?.event(device, 'process_died', `${what}; restarting in ${delay} ms`);
  else b.faults?.condition(device, 'keeps_dying', `${what}; still retrying every ${delay} ms`);
}

/** clears the keeps_dying condition once the child has stayed up */
function watchHealthy(b: LibgpiodBackend, r: Restarter, device: string, child: Child): void {
  const t = setTimeout(() => {
    if (child.alive) b.faults?.clear(device, 'keeps_dying', 'running again');
  }, HEALTHY_MS + 100);
  t.unref();
  void child.exited.then(() => clearTimeout(t));
}

export interface LibgpiodBackendOptions {
  version: LibgpiodVersion;
  /** BCM -> where the line is (from probe) */
  lines: Map<number, LineLocation>;
  logger?: Logger;
  faults?: FaultSink;
  reason?: string;
  exitHook?: boolean;
  /** environment of the tools (PATH): tests put stand-ins first */
  env?: NodeJS.ProcessEnv;
}

class LgInput extends InputLevel implements GpioInput {
  readonly where: string;
  child: Child | undefined;
  private readonly r: Restarter = { restarts: 0, consecutive: 0, startedAt: 0, timer: undefined };
  private closed = false;

  constructor(
    readonly bcm: number,
    readonly role: string,
    readonly pull: Pull,
    private readonly loc: LineLocation,
    private readonly b: LibgpiodBackend,
  ) {
    super(0);
    this.where = `${loc.chip} ${loc.offset}`;
  }

  get device(): string {
    return `gpiomon ${this.loc.name} (${this.role})`;
  }

  async start(): Promise<void> {
    this.set(await this.b.readLine(this.loc, this.pull));
    this.spawn();
  }

  private spawn(): void {
    const [cmd, args] = commands.monitor(this.b.version, this.loc, this.pull);
    const child = new Child(
      cmd,
      args,
      (line) => {
        const ev = parseMonitorLine(line);
        if (!ev || (ev.offset !== undefined && ev.offset !== this.loc.offset)) return;
        this.edge(ev.edge === 'rising' ? 1 : 0);
      },
      this.b.env,
    );
    this.child = child;
    this.r.startedAt = Date.now();
    if (this.r.consecutive > 3) watchHealthy(this.b, this.r, this.device, child);
    void child.exited.then((res) => {
      if (child.stopping || this.closed) return;
      const delay = nextDelay(this.r);
      reportDeath(this.b, this.r, this.device, `gpiomon ${describeExit(res, child)}`, delay);
      this.r.timer = setTimeout(() => void this.restart(), delay);
    });
  }

  private async restart(): Promise<void> {
    this.r.timer = undefined;
    if (this.closed) return;
    this.r.restarts++;
    try {
      // an edge may have happened while nobody watched: read the level before watching again
      this.set(await this.b.readLine(this.loc, this.pull));
    } catch (err) {
      this.b.logger?.warn({ bcm: this.bcm, err: (err as Error).message }, 'gpioget before gpiomon restart failed');
    }
    if (this.closed) return;
    this.spawn();
    this.b.logger?.info({ bcm: this.bcm, restarts: this.r.restarts, pid: this.child?.proc.pid }, `${this.device} restarted`);
  }

  info(): GpioProcessInfo {
    return { pid: this.child?.alive ? this.child.proc.pid : undefined, command: 'gpiomon', role: this.role, restarts: this.r.restarts };
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.r.timer) clearTimeout(this.r.timer);
    this.dropListeners();
    await this.child?.stop();
  }

  killSync(): void {
    this.closed = true;
    this.child?.signal('SIGKILL');
  }
}

class LgOutput implements GpioOutput {
  readonly where: string;
  private holder: Child | undefined;
  private current: Level;
  private busy: Promise<void> = Promise.resolve();
  private readonly r: Restarter = { restarts: 0, consecutive: 0, startedAt: 0, timer: undefined };
  private closed = false;
  /** a pulse chain is running: its exit is ours to handle, not the restarter's */
  private inPulse = false;

  constructor(
    readonly bcm: number,
    readonly role: string,
    readonly safeLevel: Level,
    private readonly maxPulseMs: number,
    private readonly loc: LineLocation,
    private readonly b: LibgpiodBackend,
  ) {
    this.where = `${loc.chip} ${loc.offset}`;
    this.current = safeLevel;
  }

  get device(): string {
    return `gpioset ${this.loc.name} (${this.role})`;
  }

  get active(): Level {
    return this.safeLevel === 1 ? 0 : 1;
  }

  /**
   * Drives the line to its safe level and starts the holder. Resolves only once the line IS at the
   * safe level: a one-shot gpioset sets it (its success proves the kernel drove the value), the
   * chain prints a marker, then execs the holder that keeps it there. Spawning the holder alone
   * and waiting a while proved nothing on a busy machine: output() resolved while the motor line
   * was still at whatever level it had.
   */
  async start(): Promise<void> {
    let marker: (ok: boolean) => void = () => {};
    const outcome = new Promise<boolean>((resolve) => (marker = resolve));
    const chain = this.startHolder('sh', ['-c', commands.holdChain(this.b.version, this.loc, this.safeLevel)], (line) => {
      if (line === PULSE_DONE) marker(true);
      else if (line.startsWith(PULSE_FAILED)) marker(false);
    });
    const ok = await Promise.race([outcome, chain.exited.then(() => false)]);
    if (!ok) {
      // this output never started: no restarts of its holder
      this.closed = true;
      await chain.stop(500);
      if (this.r.timer) clearTimeout(this.r.timer);
      const res = describeExit(await chain.exited, chain);
      throw new GpioError(`cannot set ${this.loc.name} (${this.role}) to its safe level ${this.safeLevel}: ${chain.lastError() || res}`);
    }
  }

  private startHolder(cmd: string, args: string[], onLine: (line: string) => void = () => {}): Child {
    const child = new Child(cmd, args, onLine, this.b.env);
    this.holder = child;
    this.r.startedAt = Date.now();
    if (this.r.consecutive > 3) watchHealthy(this.b, this.r, this.device, child);
    void child.exited.then((res) => {
      if (child.stopping || this.closed || this.inPulse || this.holder !== child) return;
      // a holder died: the line is no longer held at the safe level
      const delay = nextDelay(this.r);
      reportDeath(this.b, this.r, this.device, `gpioset holder ${describeExit(res, child)}`, delay);
      this.r.timer = setTimeout(() => {
        this.r.timer = undefined;
        if (this.closed || this.holder !== child) return;
        this.r.restarts++;
        this.startHolder(...commands.hold(this.b.version, this.loc, this.safeLevel));
      }, delay);
    });
    return child;
  }

  level(): Level {
    return this.current;
  }

  pulse(ms: number): Promise<void> {
    const run = this.busy.then(() => this.doPulse(ms));
    this.busy = run.catch(() => {});
    return run;
  }

  private async doPulse(ms: number): Promise<void> {
    if (this.closed) throw new GpioError(`${this.loc.name} is closed`);
    let width = Math.max(1, Math.round(ms));
    if (width > this.maxPulseMs) {
      this.b.logger?.warn({ bcm: this.bcm, asked: width, max: this.maxPulseMs }, `${this.loc.name}: pulse clamped to the hard maximum`);
      width = this.maxPulseMs;
    }
    if (this.r.timer) {
      clearTimeout(this.r.timer);
      this.r.timer = undefined;
    }
    this.inPulse = true;
    try {
      await this.holder?.stop();
      const script = commands.pulseChain(this.b.version, this.loc, this.active, this.safeLevel, width);
      let marker: (ok: boolean) => void = () => {};
      const outcome = new Promise<boolean>((resolve) => (marker = resolve));
      const chain = this.startHolder('sh', ['-c', script], (line) => {
        if (line === PULSE_DONE) marker(true);
        else if (line.startsWith(PULSE_FAILED)) marker(false);
      });
      this.current = this.active;
      // the tool times the pulse; this timer only catches a chain that hangs
      const guard = setTimeout(() => marker(false), width + 3000);
      const ok = await Promise.race([outcome, chain.exited.then(() => false)]);
      clearTimeout(guard);
      this.current = this.safeLevel;
      if (!ok) {
        const why = chain.lastError() || 'the pulse did not complete';
        await chain.stop(500);
        await this.b.setOnce(this.loc, this.safeLevel).catch(() => {});
        this.startHolder(...commands.hold(this.b.version, this.loc, this.safeLevel));
        this.b.faults?.event(this.device, 'pulse_failed', `pulse of ${width} ms failed: ${why}`);
        throw new GpioError(`pulse on ${this.loc.name} (${this.role}) failed: ${why}`);
      }
    } finally {
      this.inPulse = false;
    }
    // the chain now execs the safe-level holder; if that dies later, startHolder's watcher
    // restarts it like any other holder
  }

  async safe(): Promise<void> {
    // a pulse in progress ends by itself within its width (the tool times it); stopping the
    // chain early would leave a v1 line released at the active level
    await this.busy;
  }

  info(): GpioProcessInfo {
    return { pid: this.holder?.alive ? this.holder.proc.pid : undefined, command: 'gpioset', role: this.role, restarts: this.r.restarts };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    await this.busy;
    this.closed = true;
    if (this.r.timer) clearTimeout(this.r.timer);
    await this.holder?.stop();
    // released lines keep their last value on Raspberry Pi kernels; make that value the safe one
    await this.b.setOnce(this.loc, this.safeLevel).catch((err: unknown) => {
      this.b.logger?.error({ bcm: this.bcm, err: (err as Error).message }, `could not set ${this.loc.name} to its safe level at close`);
    });
  }

  /** process 'exit': no event loop left, so kill and set synchronously */
  killAndSafeSync(): void {
    this.closed = true;
    this.holder?.signal('SIGKILL');
    const [cmd, args] = commands.once(this.b.version, this.loc, this.safeLevel);
    for (let i = 0; i < 3; i++) {
      // the killed holder may not have released the line yet (EBUSY): try again briefly
      if (spawnSync(cmd, args, { stdio: 'ignore', timeout: 2000, ...(this.b.env ? { env: this.b.env } : {}) }).status === 0) return;
      spawnSync('sleep', ['0.05']);
    }
  }
}

export class LibgpiodBackend implements GpioBackend {
  readonly kind = 'libgpiod' as const;
  readonly version: LibgpiodVersion;
  readonly logger: Logger | undefined;
  readonly faults: FaultSink | undefined;
  readonly env: NodeJS.ProcessEnv | undefined;
  private readonly inputs: LgInput[] = [];
  private readonly outputs: LgOutput[] = [];
  private readonly exitHook = () => {
    for (const i of this.inputs) i.killSync();
    for (const o of this.outputs) o.killAndSafeSync();
  };
  private closed = false;

  constructor(private readonly opts: LibgpiodBackendOptions) {
    this.version = opts.version;
    this.logger = opts.logger;
    this.faults = opts.faults;
    this.env = opts.env;
    if (opts.exitHook !== false) process.on('exit', this.exitHook);
  }

  /**
   * Are the tools installed, which version, and where is every line? Resolves with a reason when
   * the backend cannot work here (auto selection moves on).
   */
  static async probe(bcms: number[], lineNames: Record<number, string> = {}, env?: NodeJS.ProcessEnv): Promise<
    { ok: true; version: LibgpiodVersion; lines: Map<number, LineLocation> } | { ok: false; reason: string }
  > {
    let version: LibgpiodVersion | undefined;
    try {
      const { stdout } = await run('gpioset', ['--version'], env);
      version = parseToolVersion(stdout);
    } catch (err) {
      return { ok: false, reason: toolError('gpioset', ['--version'], err) };
    }
    if (!version) return { ok: false, reason: 'gpioset --version did not print a libgpiod version' };
    const lines = new Map<number, LineLocation>();
    for (const bcm of bcms) {
      const name = lineNames[bcm] ?? defaultLineName(bcm);
      const [cmd, args] = commands.find(version, name);
      let loc: LineLocation | undefined;
      try {
        loc = parseLineLocation((await run(cmd, args, env)).stdout, name);
      } catch (err) {
        const e = err as { code?: unknown };
        if (e.code === 1) {
          return {
            ok: false,
            reason: `no GPIO line named "${name}" (\`${cmd} ${args.join(' ')}\` found nothing: no /dev/gpiochip* for this user, or the line has another name — see gpioinfo and set hardware.gpio.lineNames)`,
          };
        }
        return { ok: false, reason: toolError(cmd, args, err) };
      }
      if (!loc) return { ok: false, reason: `could not read where line "${name}" is from \`${cmd} ${args.join(' ')}\`` };
      lines.set(bcm, loc);
    }
    return { ok: true, version, lines };
  }

  private loc(bcm: number): LineLocation {
    const l = this.opts.lines.get(bcm);
    if (!l) throw new GpioError(`GPIO${bcm} was not located when the backend started (probe it with the other pins)`);
    return l;
  }

  async readLine(loc: LineLocation, pull: Pull): Promise<Level> {
    const [cmd, args] = commands.get(this.version, loc, pull);
    let out: string;
    try {
      out = (await run(cmd, args, this.env)).stdout;
    } catch (err) {
      throw new GpioError(`cannot read ${loc.name}: ${toolError(cmd, args, err)}`);
    }
    const v = parseGetOutput(out);
    if (v === undefined) throw new GpioError(`cannot read ${loc.name}: unexpected gpioget output ${JSON.stringify(out.trim())}`);
    return v;
  }

  async setOnce(loc: LineLocation, value: Level): Promise<void> {
    const [cmd, args] = commands.once(this.version, loc, value);
    try {
      await run(cmd, args, this.env);
    } catch (err) {
      throw new GpioError(toolError(cmd, args, err));
    }
  }

  async input(spec: InputSpec): Promise<GpioInput> {
    if (this.closed) throw new GpioError('gpio backend is closed');
    const input = new LgInput(spec.bcm, spec.role, spec.pull, this.loc(spec.bcm), this);
    this.inputs.push(input);
    await input.start();
    return input;
  }

  async output(spec: OutputSpec): Promise<GpioOutput> {
    if (this.closed) throw new GpioError('gpio backend is closed');
    const out = new LgOutput(spec.bcm, spec.role, spec.safeLevel, spec.maxPulseMs, this.loc(spec.bcm), this);
    this.outputs.push(out);
    await out.start();
    return out;
  }

  describe(): GpioReport {
    const chips = [...new Set([...this.opts.lines.values()].map((l) => l.chip))];
    return {
      backend: 'libgpiod',
      detail: `libgpiod tools v${this.version.text}, lines by name on ${chips.join(', ') || 'no chip yet'}`,
      ...(this.opts.reason ? { reason: this.opts.reason } : {}),
      warnings: [],
      pins: pinReports(this.inputs, this.outputs),
      processes: [...this.inputs.map((i) => i.info()), ...this.outputs.map((o) => o.info())],
    };
  }

  async close(): Promise<void> {
    if (this.closed) return;
    this.closed = true;
    await Promise.all(this.inputs.map((i) => i.close()));
    await Promise.all(this.outputs.map((o) => o.close()));
    process.off('exit', this.exitHook);
  }
}
