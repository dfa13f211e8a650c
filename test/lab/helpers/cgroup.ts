import { spawn, type ChildProcessByStdio } from 'node:child_process';
import { existsSync, mkdirSync, readFileSync, rmdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import type { Readable } from 'node:stream';
import { waitFor } from '../../helpers/wait.js';

// A systemd unit's process tree, the way systemd handles it: every process the service starts
// (the agent and the gpioset/gpiomon/sh children it detaches into their own process groups) stays
// in the unit's cgroup, and a watchdog abort, an out-of-memory kill or KillMode=control-group
// SIGKILLs them all at once (cgroup.kill, Linux 5.14+).

const ROOT = '/sys/fs/cgroup';

export class Unit {
  private constructor(readonly dir: string) {}

  static create(name: string): Unit {
    if (!existsSync(join(ROOT, 'cgroup.procs'))) throw new Error(`${ROOT} is not a cgroup2 mount (run inside the lab)`);
    const dir = join(ROOT, `${name}-${process.pid}-${Date.now()}`);
    mkdirSync(dir);
    return new Unit(dir);
  }

  /** runs argv inside the unit: the shell moves itself in, then becomes the program (same pid) */
  spawn(argv: string[], opts: { cwd?: string; env?: NodeJS.ProcessEnv }): ChildProcessByStdio<null, Readable, Readable> {
    return spawn('sh', ['-c', 'echo $$ > "$QRKIOSK_LAB_CGROUP/cgroup.procs" && exec "$@"', 'sh', ...argv], {
      ...opts,
      env: { ...(opts.env ?? process.env), QRKIOSK_LAB_CGROUP: this.dir },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
  }

  pids(): number[] {
    return readFileSync(join(this.dir, 'cgroup.procs'), 'utf8').split('\n').filter(Boolean).map(Number);
  }

  /** the kernel's "this cgroup has live processes" flag */
  populated(): boolean {
    return /^populated 1$/m.test(readFileSync(join(this.dir, 'cgroup.events'), 'utf8'));
  }

  /** SIGKILL to every process of the unit, at once */
  kill(): void {
    writeFileSync(join(this.dir, 'cgroup.kill'), '1');
  }

  /** kills what is left and removes the cgroup once the kernel has reaped every process */
  async remove(): Promise<void> {
    if (this.populated()) this.kill();
    await waitFor(`every process of ${this.dir} to be gone`, () => !this.populated(), 30_000);
    rmdirSync(this.dir);
  }
}
