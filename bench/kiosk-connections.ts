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
// Every stage ends within a bound, with the figures or with an error saying what was seen: each
// kiosk's attempt is bounded (BENCH_KIOSK_CONNECT_TIMEOUT seconds, 30; one retry), a swarm silent
// for 15 s, a connect count that stops moving, a child that exits, or a server not ready in
// BENCH_SERVER_READY_SECONDS (300) fails the stage at once
// (the message gives the counts and the TCP states towards the server's port).
//
//   npx tsx bench/kiosk-connections.ts --kiosks 50000 --clients 4 --window 40
//   (--kiosks defaults to BENCH_KIOSKS_HELD, else 2000)

import { execFileSync, spawn, type ChildProcess } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { cpuMs, rssMb } from './lib/proc.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
/** each kiosk's attempt (connect, upgrade, hello -> welcome) settles within this (kiosk-swarm --connect-timeout) */
const CONNECT_TIMEOUT_SECONDS = Number(process.env.BENCH_KIOSK_CONNECT_TIMEOUT ?? 30);
/** a server prints its ready line within this (the relay provisions every kiosk before it listens) */
const SERVER_READY_SECONDS = Number(process.env.BENCH_SERVER_READY_SECONDS ?? 300);
/** a swarm prints a line every second: this long without one, it is stopped or blocked */
const SWARM_SILENT_SECONDS = 15;
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
  /** failed connect attempts by reason, retried ones included */
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
  /** failed attempts made again (kiosk-swarm --attempts) */
  retried: number;
  /** attempts in flight (each settles within CONNECT_TIMEOUT_SECONDS) */
  pending: number;
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

/** Rejects as soon as the process exits: raced against every wait of a stage, so a child that dies is named at once. */
function exited(proc: ChildProcess, what: string): Promise<never> {
  return new Promise((_, reject) => {
    const say = () => reject(new Error(`${what} (pid ${proc.pid}) exited (code ${proc.exitCode}, signal ${proc.signalCode})`));
    if (proc.exitCode !== null || proc.signalCode !== null) say();
    else proc.once('exit', say);
  });
}

/** TCP sockets towards `port` by state (both ends on loopback), for a stall's message. */
function socketStates(port: number): string {
  try {
    const out = execFileSync('ss', ['-Htan', `( dport = :${port} or sport = :${port} )`], { encoding: 'utf8', timeout: 5000 });
    const by: Record<string, number> = {};
    for (const l of out.split('\n')) {
      const st = l.split(/\s+/)[0];
      if (st) by[st] = (by[st] ?? 0) + 1;
    }
    return Object.entries(by).map(([k, v]) => `${k} ${v}`).join(', ') || 'none';
  } catch (err) {
    return `(ss failed: ${(err as Error).message.slice(0, 80)})`;
  }
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

function errorsOf(stats: SwarmStats[]): Record<string, number> {
  const errors: Record<string, number> = {};
  for (const s of stats) for (const [k, v] of Object.entries(s?.errors ?? {})) errors[k] = (errors[k] ?? 0) + v;
  return errors;
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
  // every wait below races the server's exit and the swarms' exits: a child that dies fails the
  // stage with its name instead of leaving the parent waiting for a line that never comes
  const died: Promise<never>[] = [exited(proc, `${server} server`)];
  const guard = <T>(p: Promise<T>): Promise<T> => Promise.race([p, ...died]);
  for (const d of died) d.catch(() => undefined);
  try {
    let readyTimer: NodeJS.Timeout | undefined;
    const notReady = new Promise<never>((_, reject) => {
      readyTimer = setTimeout(() => reject(new Error(`${server} server (pid ${proc.pid}) printed no ready line in ${SERVER_READY_SECONDS} s (BENCH_SERVER_READY_SECONDS)`)), SERVER_READY_SECONDS * 1000);
    });
    const info = await guard(Promise.race([firstJson(proc, server), notReady])).finally(() => clearTimeout(readyTimer));
    const wsUrl = (info.wsUrl as string | undefined) ?? `ws://127.0.0.1:${info.port}/v1/kiosk`;
    // the pid of node itself: sh exec'd it
    const pid = proc.pid!;
    const rssBeforeMb = await guard(settledRss(pid));
    const per = Math.ceil(o.kiosks / o.clients);
    const stats: SwarmStats[] = [];
    const lastLine: number[] = [];
    const started = Date.now();
    const swarmsDone = Promise.all(
      Array.from({ length: o.clients }, (_, i) => {
        const from = i * per;
        const to = Math.min(o.kiosks, from + per);
        const args = ['--import', 'tsx', 'bench/lib/kiosk-swarm.ts', '--url', wsUrl, '--tokens', tokens, '--from', String(from), '--to', String(to), '--source', `127.0.0.${2 + i}`, '--ping-seconds', String(AGENT_PING_SECONDS), '--connect-timeout', String(CONNECT_TIMEOUT_SECONDS)];
        const s = spawnNode(args);
        swarms.push(s);
        const gone = exited(s, `kiosk swarm ${i}`);
        gone.catch(() => undefined);
        died.push(gone);
        lastLine[i] = Date.now();
        return new Promise<void>((resolve) => {
          lines(s, (l) => {
            const st = JSON.parse(l) as SwarmStats;
            stats[i] = st;
            lastLine[i] = Date.now();
            if (st.done) resolve();
          });
        });
      }),
    );
    // The connect stage is bounded: every attempt settles within CONNECT_TIMEOUT_SECONDS and
    // moves one count (connected, retried or failed), so their sum must move at least that often;
    // a swarm that stops printing, or a sum that stops moving, fails the stage with what was seen.
    const sum = (k: 'connected' | 'failed' | 'retried' | 'closed' | 'pending' | 'pongs' | 'relayPings') => stats.reduce((n, s) => n + (s?.[k] ?? 0), 0);
    let settled = -1;
    let movedAt = Date.now();
    let progress: NodeJS.Timeout | undefined;
    const stalled = new Promise<never>((_, reject) => {
      progress = setInterval(() => {
        const c = sum('connected');
        const f = sum('failed');
        const r = sum('retried');
        process.stderr.write(`\r${server}: ${c} connected, ${f} failed (${r} retried), ${sum('pending')} in flight of ${o.kiosks}   `);
        const t = Date.now();
        if (c + f + r !== settled) {
          settled = c + f + r;
          movedAt = t;
        }
        const silent = lastLine.findIndex((at) => t - at > SWARM_SILENT_SECONDS * 1000);
        const state = () => `${c} connected, ${f} failed (${r} attempts retried), errors ${JSON.stringify(errorsOf(stats))}, ${sum('pending')} in flight of ${o.kiosks}; sockets to the server's port: ${socketStates(Number(new URL(wsUrl).port))}`;
        if (silent >= 0) reject(new Error(`${server}: kiosk swarm ${silent} (pid ${swarms[silent]?.pid}) printed nothing for ${SWARM_SILENT_SECONDS} s (stopped or blocked): ${state()}`));
        else if (t - movedAt > (CONNECT_TIMEOUT_SECONDS + 30) * 1000) reject(new Error(`${server}: no kiosk connected or failed for ${CONNECT_TIMEOUT_SECONDS + 30} s although each attempt is bounded by ${CONNECT_TIMEOUT_SECONDS} s: ${state()}`));
      }, 2000);
    });
    stalled.catch(() => undefined);
    try {
      await guard(Promise.race([swarmsDone, stalled]));
    } finally {
      clearInterval(progress);
      process.stderr.write('\n');
    }
    const connectSeconds = (Date.now() - started) / 1000;
    const rssAfterMb = await guard(settledRss(pid));
    // heartbeat window: nothing but pings and pongs
    const closed0 = sum('closed');
    const beats0 = sum('pongs') + sum('relayPings');
    const cpu0 = cpuMs(pid);
    const t0 = Date.now();
    await guard(sleep(o.windowSeconds * 1000));
    const cpu1 = cpuMs(pid);
    const windowSeconds = (Date.now() - t0) / 1000;
    await guard(sleep(1100)); // one more stats line from every swarm
    const errors = errorsOf(stats);
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
    options: { kiosks: { type: 'string', default: process.env.BENCH_KIOSKS_HELD ?? '2000' }, clients: { type: 'string' }, window: { type: 'string' } },
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
