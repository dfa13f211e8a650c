import { spawn, type ChildProcess } from 'node:child_process';
import { readFileSync } from 'node:fs';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';

// Child processes for the benchmarks. Servers and load generators each get their own process:
// a load generator sharing the server's event loop would measure itself.

const ROOT = fileURLToPath(new URL('../..', import.meta.url));
const TSX = ['--import', 'tsx'];

export interface Child {
  proc: ChildProcess;
  /** the first JSON line the child printed on stdout */
  info: Record<string, unknown>;
  stop(): Promise<void>;
}

/** Starts `node [--import tsx] script args` and waits for its first stdout line (JSON). */
export async function startChild(script: string, args: string[] = [], opts: { tsx?: boolean; nodeArgs?: string[]; env?: NodeJS.ProcessEnv } = {}): Promise<Child> {
  const argv = [...(opts.tsx === false ? [] : TSX), ...(opts.nodeArgs ?? []), script, ...args];
  const proc = spawn(process.execPath, argv, { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'], env: { ...process.env, ...opts.env } });
  const info = await new Promise<Record<string, unknown>>((resolve, reject) => {
    const rl = createInterface({ input: proc.stdout! });
    rl.once('line', (l) => {
      try {
        resolve(JSON.parse(l) as Record<string, unknown>);
      } catch {
        reject(new Error(`${script} printed ${JSON.stringify(l)} instead of its JSON info line`));
      }
    });
    proc.once('exit', (code) => reject(new Error(`${script} exited (${code}) before it was ready`)));
  });
  return {
    proc,
    info,
    stop: () =>
      new Promise<void>((resolve) => {
        if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
        proc.once('exit', () => resolve());
        proc.kill('SIGKILL');
      }),
  };
}

/** Resident set size of a process in MB, from /proc (Linux). */
export function rssMb(pid: number): number {
  const m = /VmRSS:\s+(\d+) kB/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  if (!m) throw new Error(`no VmRSS for pid ${pid}`);
  return Number(m[1]) / 1024;
}

export interface Load {
  reqPerSec: number;
  latencyP50Ms: number;
  latencyP99Ms: number;
  non2xx: number;
  errors: number;
  total: number;
}

/** autocannon in its own process against url; resolves to its averages. */
export async function autocannon(url: string, o: { connections: number; seconds: number; method?: string; body?: string; headers?: Record<string, string> }): Promise<Load> {
  const args = [`${ROOT}node_modules/autocannon/autocannon.js`, '-j', '-c', String(o.connections), '-d', String(o.seconds)];
  if (o.method) args.push('-m', o.method);
  if (o.body !== undefined) args.push('-b', o.body);
  for (const [k, v] of Object.entries(o.headers ?? {})) args.push('-H', `${k}=${v}`);
  args.push(url);
  const proc = spawn(process.execPath, args, { stdio: ['ignore', 'pipe', 'pipe'] });
  let out = '';
  let err = '';
  proc.stdout.on('data', (d: Buffer) => (out += d.toString()));
  proc.stderr.on('data', (d: Buffer) => (err += d.toString()));
  const code = await new Promise<number | null>((r) => proc.once('exit', r));
  if (code !== 0) throw new Error(`autocannon exited ${code}: ${err.slice(-500)}`);
  const r = JSON.parse(out) as {
    requests: { average: number; total: number };
    latency: { p50: number; p99: number };
    non2xx: number;
    errors: number;
    '2xx': number;
  };
  return { reqPerSec: r.requests.average, latencyP50Ms: r.latency.p50, latencyP99Ms: r.latency.p99, non2xx: r.non2xx, errors: r.errors, total: r.requests.total };
}

/** CPU time (user + system) a process has used so far, in ms, from /proc/<pid>/stat (Linux). */
export function cpuMs(pid: number): number {
  const stat = readFileSync(`/proc/${pid}/stat`, 'utf8');
  const f = stat.slice(stat.lastIndexOf(')') + 2).split(' ');
  // fields 14 and 15 (utime, stime) are the 12th and 13th after the command name; 100 ticks/s
  return ((Number(f[11]) + Number(f[12])) * 1000) / 100;
}

/** A load run and the server's CPU time per answered request (robust to a busy machine). */
export async function loadWithCpu(pid: number, run: () => Promise<Load>): Promise<Load & { cpuUsPerReq: number }> {
  const c0 = cpuMs(pid);
  const l = await run();
  return { ...l, cpuUsPerReq: ((cpuMs(pid) - c0) * 1000) / Math.max(1, l.total) };
}
