import { spawnSync } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { LibgpiodBackend, commands, type LineLocation, type LibgpiodVersion } from './libgpiod-backend.js';
import { DEFAULT_SYSFS_ROOT, resolveHeaderChip, sysfsNumber, type ResolvedChip } from './sysfs.js';
import type { Level } from './types.js';
import type { BackendChoice } from './select.js';

// Drives every configured output to its safe level from OUTSIDE the agent: `qrkiosk safe-outputs`,
// run by systemd after the agent ends however it ends (ExecStopPost=) and once at boot before the
// agent starts (qrkiosk-safe-outputs.service), and by a technician by hand.
//
// Why the agent's own exit handlers are not enough: on SIGKILL, an out-of-memory kill or a
// watchdog abort no handler runs; systemd then kills the unit's remaining processes, including a
// libgpiod pulse chain in the middle of its pulse; and a Raspberry Pi kernel keeps a line driven at
// its last level after its holder is gone (unless dtparam=strict_gpiod). The motor would run until
// someone noticed.
//
// For each output, in this order:
//   1. the pin is exported through sysfs (an onoff agent left it so): write the safe level to its
//      value file (or "high"/"low" to direction, which sets direction and level in one write);
//   2. else with the libgpiod tools (backend auto or libgpiod): `gpioset` the safe level once and
//      exit; the line keeps the level after release on Raspberry Pi kernels;
//   3. else through sysfs (backend auto or onoff): export it, wait for the kernel/udev to create
//      gpioN, write "high"/"low" to direction.
// Nothing here loads onoff or keeps a process: it must work in a few hundred ms with whatever is
// on the machine.

export interface SafeOutputSpec {
  bcm: number;
  safeLevel: Level;
  role: string;
}

export interface SafeOutputResult extends SafeOutputSpec {
  ok: boolean;
  /** what was done: "sysfs gpio517 value=1", "gpioset gpiochip0 5=1" */
  how: string;
  error?: string;
}

export interface SafeOutputsOptions {
  backend: BackendChoice;
  outputs: SafeOutputSpec[];
  sysfsRoot?: string;
  chipLabel?: string;
  lineNames?: Record<number, string>;
  /** environment of the libgpiod tools (tests: stand-ins first on PATH) */
  env?: NodeJS.ProcessEnv;
  /** how long to wait for gpioN to appear (and become writable) after an export */
  exportWaitMs?: number;
}

function sleepSync(ms: number): void {
  Atomics.wait(new Int32Array(new SharedArrayBuffer(4)), 0, 0, ms);
}

function sysfsSafe(chip: ResolvedChip, o: SafeOutputSpec, exportWaitMs: number): SafeOutputResult {
  const n = sysfsNumber(chip, o.bcm);
  const dir = join(chip.root, `gpio${n}`);
  const word = o.safeLevel === 1 ? 'high' : 'low';
  try {
    if (!existsSync(dir)) {
      writeFileSync(join(chip.root, 'export'), String(n));
      // the kernel creates gpioN at once; udev then hands its files to the group (99-qrkiosk.rules)
      const until = Date.now() + exportWaitMs;
      for (;;) {
        try {
          writeFileSync(join(dir, 'direction'), word);
          return { ...o, ok: true, how: `sysfs gpio${n} exported, direction=${word}` };
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if ((code !== 'ENOENT' && code !== 'EACCES') || Date.now() > until) throw err;
          sleepSync(10);
        }
      }
    }
    let direction = '';
    try {
      direction = readFileSync(join(dir, 'direction'), 'utf8').trim();
    } catch {
      /* unreadable: set the direction, which also sets the level */
    }
    if (direction === 'out') {
      // the value file holds the LOGICAL level: undo an active_low someone set
      let activeLow = false;
      try {
        activeLow = readFileSync(join(dir, 'active_low'), 'utf8').trim() === '1';
      } catch {
        /* no such attribute: physical */
      }
      const v = activeLow ? 1 - o.safeLevel : o.safeLevel;
      writeFileSync(join(dir, 'value'), String(v));
      return { ...o, ok: true, how: `sysfs gpio${n} value=${v}${activeLow ? ' (active_low)' : ''}` };
    }
    // "high"/"low" are physical levels whatever active_low says, and make the pin an output
    writeFileSync(join(dir, 'direction'), word);
    return { ...o, ok: true, how: `sysfs gpio${n} direction=${word}` };
  } catch (err) {
    const e = err as NodeJS.ErrnoException;
    const why =
      e.code === 'EACCES' || e.code === 'EPERM'
        ? `permission denied on ${e.path ?? dir}: install hardware/udev/99-qrkiosk.rules (the service user needs group qrkiosk on the GPIO files), or run as root`
        : e.code === 'EBUSY'
          ? `gpio${n} is busy: a libgpiod tool or a kernel driver holds the line`
          : e.message;
    return { ...o, ok: false, how: `sysfs gpio${n}`, error: why };
  }
}

function gpiosetSafe(version: LibgpiodVersion, loc: LineLocation, o: SafeOutputSpec, env: NodeJS.ProcessEnv | undefined): SafeOutputResult {
  const [cmd, args] = commands.once(version, loc, o.safeLevel);
  let last = '';
  // a holder systemd has just killed may not have closed its line yet (EBUSY): try a few times
  for (let i = 0; i < 10; i++) {
    const r = spawnSync(cmd, args, { encoding: 'utf8', timeout: 5000, ...(env ? { env } : {}) });
    if (r.status === 0) return { ...o, ok: true, how: `${cmd} ${args.join(' ')}` };
    last = (r.error?.message ?? r.stderr ?? '').trim().split('\n').filter(Boolean).at(-1) ?? `exit ${r.status}`;
    if (!/busy/i.test(last)) break;
    sleepSync(100);
  }
  const hint = /busy/i.test(last) ? ' (another process holds the line: is the agent running? stop it first)' : '';
  return { ...o, ok: false, how: `${cmd} ${args.join(' ')}`, error: `${last}${hint}` };
}

export interface SafeOutputsReport {
  results: SafeOutputResult[];
  /** why a backend could not be used, for the technician */
  notes: string[];
}

export async function driveOutputsSafe(opts: SafeOutputsOptions): Promise<SafeOutputsReport> {
  const root = opts.sysfsRoot ?? DEFAULT_SYSFS_ROOT;
  const notes: string[] = [];
  const useSysfs = opts.backend !== 'libgpiod';
  const useTools = opts.backend !== 'onoff';
  let chip: ResolvedChip | undefined;
  if (useSysfs) {
    try {
      chip = resolveHeaderChip(root, opts.chipLabel);
    } catch (err) {
      notes.push(`sysfs: ${(err as Error).message}`);
    }
  }
  const results: SafeOutputResult[] = [];
  const rest: SafeOutputSpec[] = [];
  // 1. pins an onoff agent left exported
  for (const o of opts.outputs) {
    if (chip && existsSync(join(chip.root, `gpio${chip.base + o.bcm}`))) results.push(sysfsSafe(chip, o, opts.exportWaitMs ?? 2000));
    else rest.push(o);
  }
  if (rest.length === 0) return { results, notes };
  // 2. the libgpiod tools
  if (useTools) {
    const probe = await LibgpiodBackend.probe(
      rest.map((o) => o.bcm),
      opts.lineNames,
      opts.env,
    );
    if (probe.ok) {
      for (const o of rest) results.push(gpiosetSafe(probe.version, probe.lines.get(o.bcm)!, o, opts.env));
      return { results: order(results, opts.outputs), notes };
    }
    notes.push(`libgpiod: ${probe.reason}`);
  }
  // 3. sysfs export
  for (const o of rest) {
    if (chip) results.push(sysfsSafe(chip, o, opts.exportWaitMs ?? 2000));
    else results.push({ ...o, ok: false, how: 'none', error: `no way to reach GPIO${o.bcm}: ${notes.join('; ')}` });
  }
  return { results: order(results, opts.outputs), notes };
}

function order(results: SafeOutputResult[], specs: SafeOutputSpec[]): SafeOutputResult[] {
  return specs.map((s) => results.find((r) => r.bcm === s.bcm)!);
}
