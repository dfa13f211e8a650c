// How many kiosks one relay process holds: real WebSockets with real kiosk tokens (checked at
// the upgrade against the store), hello/welcome, then the protocol's heartbeats (the agent's JSON
// ping every 15 s, the relay's JSON + WebSocket ping every 20 s: src/agent/relay-link.ts,
// src/relay/hub.ts). Beside it, the floor: a bare `ws` server holding the same sockets with the
// same heartbeat work (bench/servers/bare-ws-kiosks.ts).
//
// Figures per server: kiosks reached (welcomed and still open after the heartbeat window), resident
// memory per connection (RSS after a full GC, minus RSS before the kiosks), CPU per second while
// the kiosks only heartbeat (from /proc/<pid>/stat over --window seconds, at least two relay
// heartbeat periods), and connect time.
//
// The simulated kiosks run in --clients processes, each from its own loopback source address
// (127.0.0.2, 127.0.0.3, ...): one source address has ~28,000 ephemeral ports towards one server
// port (net.ipv4.ip_local_port_range), so 50,000 kiosks need at least two. Every process needs one
// file descriptor per socket: the soft limit is raised to the hard limit (`ulimit -n` in the
// shell that spawns it, where allowed); a server holds at most its limit of sockets, and the
// figures say when that limit, not the server, was the ceiling.
//
//   npx tsx bench/kiosk-connections.ts --kiosks 50000 --clients 4 --window 40

import { spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuMs, rssMb } from './lib/proc.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const RELAY_PING_SECONDS = 20; // the relay's default hub.pingIntervalSeconds
const AGENT_PING_SECONDS = 15; // the agent's default relay.pingIntervalSeconds

export interface HeldFigure {
  server: 'relay' | 'bare ws';
  asked: number;
  /** welcomed, and still open at the end of the heartbeat window */
  held: number;
  failed: number;
  /** closed during the heartbeat window (should be 0) */
  dropped: number;
  errors: Record<string, number>;
  /** the server process's open-file soft limit (one per socket) */
  fdLimit: number;
  connectSeconds: number;
  rssBeforeMb: number;
  rssAfterMb: number;
  kbPerConnection: number;
  windowSeconds: number;
  /** server CPU while the kiosks only heartbeat, ms per wall second (1000 = one core) */
  cpuMsPerSecond: number;
  /** the same per 1,000 kiosks held */
  cpuMsPerSecondPer1000: number;
  /** heartbeats answered during the window, both directions (relay pings the kiosks answered, kiosk pings the server answered) */
  heartbeats: number;
}

interface SwarmStats {
  connected: number;
  failed: number;
  closed: number;
  pongs: number;
  relayPings: number;
  done: boolean;
  errors: Record<string, number>;
}

/** `sh -c 'ulimit -n <hard>; exec node ...'`: the soft open-file limit raised as far as allowed */
function spawnNode(args: string[]): ChildProcess {
  const quoted = [process.execPath, ...args].map((a) => `'${a.replace(/'/g, `'\\''`)}'`).join(' ');
  return spawn('sh', ['-c', `ulimit -n "$(ulimit -Hn)" 2>/dev/null; exec ${quoted}`], { cwd: ROOT, stdio: ['ignore', 'pipe', 'inherit'] });
}

function lines(proc: ChildProcess, onLine: (l: string) => void): void {
  createInterface({ input: proc.stdout! }).on('line', onLine);
}

function firstJson(proc: ChildProcess, what: string): Promise<Record<string, unknown>> {
  return new Promise((resolve, reject) => {
    createInterface({ input: proc.stdout! }).once('line', (l) => {
      try {
        resolve(JSON.parse(l) as Record<string, unknown>);
      } catch {
        reject(new Error(`${what} printed ${JSON.stringify(l)}`));
      }
    });
    proc.once('exit', (code) => reject(new Error(`${what} exited (${code}) before it was ready`)));
  });
}

function kill(proc: ChildProcess): Promise<void> {
  return new Promise((resolve) => {
    if (proc.exitCode !== null || proc.signalCode !== null) return resolve();
    proc.once('exit', () => resolve());
    proc.kill('SIGKILL');
  });
}

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** RSS after asking the process for a full GC and letting it settle. */
async function settledRss(pid: number): Promise<number> {
  process.kill(pid, 'SIGUSR2');
  await sleep(1500);
  return rssMb(pid);
}

function fdLimitOf(pid: number): number {
  const m = /Max open files\s+(\d+)/.exec(readFileSync(`/proc/${pid}/limits`, 'utf8'));
  return m ? Number(m[1]) : NaN;
}

async function holdKiosks(server: 'relay' | 'bare ws', o: { kiosks: number; clients: number; windowSeconds: number; dir: string }): Promise<HeldFigure> {
  const tokens = join(o.dir, 'tokens.txt');
  const proc =
    server === 'relay'
      ? spawnNode(['--import', 'tsx', '--expose-gc', 'bench/servers/relay-fleet.ts', '--kiosks', String(o.kiosks), '--tokens', tokens, '--ping-seconds', String(RELAY_PING_SECONDS)])
      : spawnNode(['--import', 'tsx', '--expose-gc', 'bench/servers/bare-ws-kiosks.ts', '--ping-seconds', String(RELAY_PING_SECONDS)]);
  const swarms: ChildProcess[] = [];
  try {
    const info = await firstJson(proc, server);
    const wsUrl = (info.wsUrl as string | undefined) ?? `ws://127.0.0.1:${info.port}/v1/kiosk`;
    // the pid of node itself: sh exec'd it
    const pid = proc.pid!;
    const rssBeforeMb = await settledRss(pid);
    const per = Math.ceil(o.kiosks / o.clients);
    const stats: SwarmStats[] = [];
    const started = Date.now();
    const allDone = Promise.all(
      Array.from({ length: o.clients }, (_, i) => {
        const from = i * per;
        const to = Math.min(o.kiosks, from + per);
        const args = ['--import', 'tsx', 'bench/lib/kiosk-swarm.ts', '--url', wsUrl, '--tokens', tokens, '--from', String(from), '--to', String(to), '--source', `127.0.0.${2 + i}`, '--ping-seconds', String(AGENT_PING_SECONDS)];
        const s = spawnNode(args);
        swarms.push(s);
        return new Promise<void>((resolve, reject) => {
          lines(s, (l) => {
            const st = JSON.parse(l) as SwarmStats;
            stats[i] = st;
            if (st.done) resolve();
          });
          s.once('exit', (code) => reject(new Error(`kiosk swarm ${i} exited (${code})`)));
        });
      }),
    );
    const progress = setInterval(() => {
      const c = stats.reduce((n, s) => n + (s?.connected ?? 0), 0);
      const f = stats.reduce((n, s) => n + (s?.failed ?? 0), 0);
      process.stderr.write(`\r${server}: ${c} connected, ${f} failed of ${o.kiosks}   `);
    }, 2000);
    try {
      await allDone;
    } finally {
      clearInterval(progress);
      process.stderr.write('\n');
    }
    const connectSeconds = (Date.now() - started) / 1000;
    const sum = (k: 'connected' | 'failed' | 'closed' | 'pongs' | 'relayPings') => stats.reduce((n, s) => n + s[k], 0);
    const rssAfterMb = await settledRss(pid);
    // heartbeat window: nothing but pings and pongs
    const closed0 = sum('closed');
    const beats0 = sum('pongs') + sum('relayPings');
    const cpu0 = cpuMs(pid);
    const t0 = Date.now();
    await sleep(o.windowSeconds * 1000);
    const cpu1 = cpuMs(pid);
    const windowSeconds = (Date.now() - t0) / 1000;
    await sleep(1100); // one more stats line from every swarm
    const errors: Record<string, number> = {};
    for (const s of stats) for (const [k, v] of Object.entries(s.errors)) errors[k] = (errors[k] ?? 0) + v;
    const dropped = sum('closed') - closed0;
    const held = sum('connected') - sum('closed');
    const cpuMsPerSecond = (cpu1 - cpu0) / windowSeconds;
    return {
      server,
      asked: o.kiosks,
      held,
      failed: sum('failed'),
      dropped,
      errors,
      fdLimit: fdLimitOf(pid),
      connectSeconds,
      rssBeforeMb,
      rssAfterMb,
      kbPerConnection: held > 0 ? ((rssAfterMb - rssBeforeMb) * 1024) / held : NaN,
      windowSeconds,
      cpuMsPerSecond,
      cpuMsPerSecondPer1000: held > 0 ? (cpuMsPerSecond * 1000) / held : NaN,
      heartbeats: sum('pongs') + sum('relayPings') - beats0,
    };
  } finally {
    await Promise.all(swarms.map(kill));
    await kill(proc);
  }
}

export async function benchKioskConnections(o: { kiosks: number; clients?: number; windowSeconds?: number }): Promise<{ relay: HeldFigure; floor: HeldFigure }> {
  // one source address per ~20,000 kiosks at least (ephemeral ports and each client's fd limit)
  const clients = o.clients ?? Math.max(1, Math.ceil(o.kiosks / 15_000));
  const windowSeconds = o.windowSeconds ?? 2 * RELAY_PING_SECONDS;
  const dir = mkdtempSync(join(tmpdir(), 'qrk-bench-kiosks-'));
  try {
    const relay = await holdKiosks('relay', { kiosks: o.kiosks, clients, windowSeconds, dir });
    const floor = await holdKiosks('bare ws', { kiosks: o.kiosks, clients, windowSeconds, dir });
    return { relay, floor };
  } finally {
    rmSync(dir, { recursive: true, force: true });
  }
}

export function describeHeld(f: HeldFigure): string {
  const ceiling = f.held < f.asked && f.held >= f.fdLimit - 100 ? ` (open-file limit ${f.fdLimit} of this process was the ceiling)` : '';
  return `${f.held} of ${f.asked} held${ceiling}, ${f.kbPerConnection.toFixed(1)} KB RSS each, heartbeats ${f.cpuMsPerSecond.toFixed(1)} ms CPU/s (${f.cpuMsPerSecondPer1000.toFixed(2)} ms/s per 1,000), connected in ${f.connectSeconds.toFixed(0)} s`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: { kiosks: { type: 'string', default: '2000' }, clients: { type: 'string' }, window: { type: 'string' } },
  });
  const r = await benchKioskConnections({
    kiosks: Number(values.kiosks),
    ...(values.clients ? { clients: Number(values.clients) } : {}),
    ...(values.window ? { windowSeconds: Number(values.window) } : {}),
  });
  console.log(JSON.stringify(r, null, 1));
  console.log(`relay:   ${describeHeld(r.relay)}`);
  console.log(`bare ws: ${describeHeld(r.floor)}`);
}
