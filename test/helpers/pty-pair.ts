import { spawn, spawnSync, type ChildProcess } from 'node:child_process';
import { existsSync } from 'node:fs';
import { join } from 'node:path';
import { skipWithout } from './ci.js';

// Two linked pseudo-terminals made by socat: the agent opens one end with the real serialport
// binding, a simulated device opens the other. Killing socat is the unplug: the agent's port
// gets the same disconnect a pulled USB adapter gives, and the links vanish until socat runs
// again. socat is a Debian package (apt-get install socat); without it these tests are skipped
// on a laptop and FAIL in CI, where skipping would hide that they never ran.


export function haveSocat(): boolean {
  return spawnSync('socat', ['-V'], { stdio: 'ignore' }).status === 0;
}

/** describe.skipIf(skipPty) — never skips in CI. */
export const skipPty = skipWithout(haveSocat(), 'socat', 'socat');

export class PtyPair {
  readonly a: string;
  readonly b: string;
  private proc: ChildProcess | undefined;
  starts = 0;

  constructor(dir: string) {
    this.a = join(dir, 'a');
    this.b = join(dir, 'b');
  }

  get running(): boolean {
    return this.proc !== undefined;
  }

  /** Resolves once socat says both ptys are up and linked. */
  start(): Promise<void> {
    if (this.proc) return Promise.resolve();
    if (!haveSocat()) return Promise.reject(new Error('socat is not installed: apt-get install socat (the pty serial tests need it)'));
    const proc = spawn('socat', ['-d', '-d', `pty,raw,echo=0,link=${this.a}`, `pty,raw,echo=0,link=${this.b}`], { stdio: ['ignore', 'ignore', 'pipe'] });
    this.proc = proc;
    this.starts++;
    return new Promise((resolve, reject) => {
      let err = '';
      const onData = (c: Buffer) => {
        err += c.toString();
        // socat logs this after both ptys exist and their links are made
        if (err.includes('starting data transfer loop')) {
          proc.stderr!.off('data', onData);
          proc.stderr!.resume();
          if (!existsSync(this.a) || !existsSync(this.b)) reject(new Error(`socat started but the links are missing: ${err}`));
          else resolve();
        }
      };
      proc.stderr!.on('data', onData);
      proc.once('exit', (code) => {
        if (this.proc === proc) this.proc = undefined;
        reject(new Error(`socat exited (${code}) before linking the ptys: ${err}`));
      });
      proc.once('error', (e) => reject(e));
    });
  }

  /** Pulls the cable: socat dies, both ptys and links go away. */
  kill(): Promise<void> {
    const proc = this.proc;
    if (!proc) return Promise.resolve();
    this.proc = undefined;
    return new Promise((resolve) => {
      proc.once('exit', () => resolve());
      proc.kill('SIGTERM');
    });
  }
}
