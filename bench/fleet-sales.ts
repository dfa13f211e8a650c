// A fleet selling: N simulated kiosks, each selling once every --interval-ms, through
//  - two relay PROCESSES on one PostgreSQL database (a fresh random database on the tests' server,
//    127.0.0.1:5432, trust auth: test/helpers/pg.ts), half the kiosks connected to each, every
//    notification sent to a random instance, every POS poll to the instance the kiosk is NOT on;
//  - one relay process on a SQLite file, the same kiosks and load.
// Real parts throughout: the relays are `qrkiosk relay --config` (bin/qrkiosk.js), Mercado Pago is
// the emulator (src/sandbox) over HTTP in its own process, the kiosks are real WebSockets speaking
// the kiosk protocol from --swarms load-generator processes (bench/lib/sales-swarm.ts, where one
// sale is described). The figure: notification sent -> order.paid received by the kiosk (the
// moment a kiosk pulses its motor), p50/p99/max over the sales whose notification left in the
// measured window, beside sales completed, failures, and the CPU each process used.
//
//   npx tsx bench/fleet-sales.ts --kiosks 1000 --seconds 60
//   BENCH_PROFILE=/tmp/prof npx tsx bench/fleet-sales.ts ...   (relays and emulator with --cpu-prof)

import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync, openSync, closeSync } from 'node:fs';
import { cpus, loadavg, tmpdir } from 'node:os';
import { join } from 'node:path';
import { createInterface } from 'node:readline';
import { fileURLToPath } from 'node:url';
import { parseArgs } from 'node:util';
import { MercadoPagoClient } from '../src/mercadopago/client.js';
import { parseRelayConfig } from '../src/relay/config.js';
import { provisionKiosk } from '../src/relay/provision.js';
import { openRelayStore } from '../src/relay/store/index.js';
import { freeLoopbackPort } from '../src/runtime/net.js';
import { createTestDatabase, pgProblem } from '../test/helpers/pg.js';
import { cpuMs, startChild, type Child } from './lib/proc.js';
import { percentile } from './lib/stats.js';

const ROOT = fileURLToPath(new URL('..', import.meta.url));
const TOKEN = 'TEST-fleet-bench';
const COLLECTOR = 77701234;
const SECRET = 'fleet-bench-secret';

export type FleetSetup = 'pg2' | 'sqlite1';

export interface FleetSalesOptions {
  kiosks: number;
  /** each kiosk sells once per interval */
  intervalMs: number;
  warmupSeconds: number;
  seconds: number;
  swarms: number;
}

export interface Latency {
  count: number;
  p50: number;
  p99: number;
  max: number;
}

export interface FleetSalesFigure {
  setup: string;
  instances: number;
  store: 'postgresql' | 'sqlite';
  kiosks: number;
  /** sales per second the kiosks ask for (kiosks / interval) */
  offeredPerSecond: number;
  /** completed sales (vend.result acked) per second of the measured window */
  completedPerSecond: number;
  salesCompleted: number;
  failures: Record<string, number>;
  failed: number;
  /** sales that started later than their slot: the previous one took longer than the interval */
  late: number;
  /** notification sent -> order.paid received at the kiosk, ms */
  notificationToPaid: Latency;
  /** notification sent -> its 200 from the relay, ms */
  notificationAnswer: Latency;
  /** order.ready sent -> vend.result acked (a whole sale), ms */
  wholeSale: Latency;
  /** CPU per wall second (1000 = one core) during the measured window, per process */
  cpuMsPerSecond: Record<string, number>;
  /**
   * ms per wall second each process's event loop waited in the run queue for a core (it was
   * runnable, something else ran): on a shared machine, what every store round trip pays again
   */
  runQueueWaitMsPerSecond: Record<string, number>;
  /** the same per time the main thread got a core: what one wake-up (a store answer, a frame) waits */
  waitPerWakeupMs: Record<string, number>;
  /** share of the machine's CPU busy (all processes, neighbours included) during the window */
  machineBusy: number;
  /** share of the window during which some runnable task waited for a core (PSI "some") */
  cpuPressure: number;
  /** the load generators' own event-loop delay (what they add to the figure) */
  loadGenLoopDelayP99Ms: number;
  loadGenLoopDelayMaxMs: number;
  load: { before: number; after: number };
  /** load generators that died during the run: their kiosks' sales are not in the figures */
  loadGeneratorsDied?: string[];
}

function latency(xs: number[]): Latency {
  const s = [...xs].sort((a, b) => a - b);
  return { count: s.length, p50: s.length ? percentile(s, 50) : NaN, p99: s.length ? percentile(s, 99) : NaN, max: s.length ? s[s.length - 1]! : NaN };
}

/** ms the process's main thread (its event loop) has spent waiting in the run queue for a core, from /proc/<pid>/schedstat */
function runQueueWaitMs(pid: number): number {
  return schedstat(pid)[1];
}

/** [ms on a core, ms waiting in the run queue, times it got a core] of the process's main thread */
function schedstat(pid: number): [number, number, number] {
  if (!alive(pid)) return [NaN, NaN, NaN];
  const [run, wait, slices] = readFileSync(`/proc/${pid}/schedstat`, 'utf8').trim().split(' ').map(Number);
  return [run! / 1e6, wait! / 1e6, slices!];
}

/** a load generator exits once its window is over, possibly before the window's last reading */
function alive(pid: number): boolean {
  return existsSync(`/proc/${pid}/stat`);
}

const cpuMsIfAlive = (pid: number) => (alive(pid) ? cpuMs(pid) : NaN);

/** µs during which at least one runnable task waited for a core, machine-wide (PSI, /proc/pressure/cpu) */
function cpuPressureUs(): number {
  const m = /some .*total=(\d+)/.exec(readFileSync('/proc/pressure/cpu', 'utf8'));
  return m ? Number(m[1]) : NaN;
}

/** busy and total jiffies of the whole machine, from /proc/stat */
function machineTicks(): { busy: number; total: number } {
  const f = readFileSync('/proc/stat', 'utf8').split('\n')[0]!.trim().split(/\s+/).slice(1).map(Number);
  const idle = f[3]! + (f[4] ?? 0);
  const total = f.reduce((a, b) => a + b, 0);
  return { busy: total - idle, total };
}

interface Relay {
  name: string;
  port: number;
  proc: ChildProcess;
  exit: Promise<unknown>;
}

async function waitReady(r: Relay, logFile: string): Promise<void> {
  const until = Date.now() + 120_000;
  for (;;) {
    if (r.proc.exitCode !== null) throw new Error(`relay ${r.name} exited (${r.proc.exitCode}): ${readFileSync(logFile, 'utf8').slice(-2000)}`);
    const res = await fetch(`http://127.0.0.1:${r.port}/readyz`).catch(() => undefined);
    if (res?.status === 200) return;
    if (Date.now() > until) throw new Error(`relay ${r.name} not ready after 120 s: ${readFileSync(logFile, 'utf8').slice(-2000)}`);
    await new Promise((res2) => setTimeout(res2, 200));
  }
}

function relayYaml(o: { port: number; publicUrl: string; store: string; sandboxUrl: string; keyFile: string }): string {
  return `listen: { host: 127.0.0.1, port: ${o.port} }
publicUrl: ${o.publicUrl}
store: ${o.store}
mercadopago: { baseUrl: "${o.sandboxUrl}", accessToken: ${TOKEN}, collectorId: ${COLLECTOR}, webhookSecret: ${SECRET} }
catalog:
  - { sku: COLA, name: Cola 350 ml, price: "1500.00", currency: ARS }
orders: { maxPaymentSeconds: 120, contingencyAfterSeconds: 600 }
commands: { keyFile: ${o.keyFile} }
observability: { drainSeconds: 0 }
# every kiosk, every notification and every POS poll comes from loopback: the per-source limits
# (sized for the internet) would measure themselves instead of the path
limits:
  maxConnections: 100000
  connectionsPerSource: 100000
  notifications: { perSecond: 100000, burst: 100000, storedPerSourcePerHour: 100000000, mpCallsPerSecond: 100000 }
  pos: { perSecond: 100000, burst: 100000 }
`;
}

async function runSetup(setup: FleetSetup, o: FleetSalesOptions): Promise<FleetSalesFigure> {
  const instances = setup === 'pg2' ? 2 : 1;
  const dir = mkdtempSync(join(tmpdir(), 'qrk-bench-fleet-sales-'));
  const profileDir = process.env.BENCH_PROFILE;
  const profArgs = (name: string) => (profileDir ? ['--cpu-prof', '--cpu-prof-dir', profileDir, '--cpu-prof-name', `${setup}-${name}.cpuprofile`] : []);
  if (profileDir) mkdirSync(profileDir, { recursive: true });
  const db = setup === 'pg2' ? await createTestDatabase() : undefined;
  const children: Child[] = [];
  const relays: Relay[] = [];
  const swarms: ChildProcess[] = [];
  try {
    const sandbox = await startChild('bench/servers/sandbox.ts', ['--token', TOKEN, '--collector', String(COLLECTOR), '--secret', SECRET], { nodeArgs: profArgs('sandbox') });
    children.push(sandbox);
    const sandboxUrl = sandbox.info.url as string;
    const ports = await Promise.all(Array.from({ length: instances }, () => freeLoopbackPort()));
    const storeYaml = db ? `{ url: "${db.url}" }` : `{ path: ${join(dir, 'relay.sqlite')} }`;
    const publicUrl = `http://127.0.0.1:${ports[instances - 1]}`;

    // `qrkiosk relay kiosk add` + `provision` for every kiosk, before any relay runs
    const store = await openRelayStore(db ? db.url : join(dir, 'relay.sqlite'));
    const lines: string[] = [];
    try {
      const added = await store.transaction(async (tx) => {
        const out = [];
        for (let i = 0; i < o.kiosks; i++) out.push(await tx.addKiosk({ id: `k${i}`, posExternalId: `FLEET${i}`, generation: 'v2', model: 'unattended', modelMode: null }));
        return out;
      });
      const mp = new MercadoPagoClient({ baseUrl: sandboxUrl, accessToken: TOKEN });
      let next = 0;
      await Promise.all(
        Array.from({ length: 20 }, async () => {
          while (next < added.length) {
            const i = next++;
            const a = added[i]!;
            // the kiosk's socket on instance i % instances; Mercado Pago polls its POS url on the other one
            const wsOn = i % instances;
            const posOn = (i + 1) % instances;
            const config = parseRelayConfig({
              listen: { host: '127.0.0.1', port: ports[posOn] },
              publicUrl: `http://127.0.0.1:${ports[posOn]}`,
              store: db ? { url: db.url } : { path: join(dir, 'relay.sqlite') },
              mercadopago: { baseUrl: sandboxUrl, accessToken: TOKEN, collectorId: COLLECTOR, webhookSecret: SECRET },
              catalog: [{ sku: 'COLA', name: 'Cola 350 ml', price: '1500.00', currency: 'ARS' }],
            });
            await provisionKiosk(mp, config, store, a.kiosk, { storeExternalId: `FSTORE${Math.floor(i / 100)}` });
            lines[i] = `${a.kiosk.id} ${a.token} ${wsOn}`;
          }
        }),
      );
    } finally {
      await store.close();
    }
    const kiosksFile = join(dir, 'kiosks.txt');
    writeFileSync(kiosksFile, `${lines.join('\n')}\n`);

    const keyFile = join(dir, 'command-key.pem');
    for (let i = 0; i < instances; i++) {
      const name = String.fromCharCode(65 + i);
      const cfg = join(dir, `${name}.yaml`);
      writeFileSync(cfg, relayYaml({ port: ports[i]!, publicUrl, store: storeYaml, sandboxUrl, keyFile }));
      const logFile = join(dir, `${name}.log`);
      const fd = openSync(logFile, 'a');
      const proc = spawn(process.execPath, [...profArgs(`relay${name}`), join(ROOT, 'bin', 'qrkiosk.js'), 'relay', '--config', cfg], {
        cwd: ROOT,
        env: { ...process.env, QRKIOSK_RUN_SOURCES: '1', QRKIOSK_LOG_LEVEL: process.env.BENCH_FLEET_LOG_LEVEL ?? 'info' },
        stdio: ['ignore', fd, fd],
      });
      closeSync(fd);
      const r: Relay = { name, port: ports[i]!, proc, exit: new Promise((res) => proc.once('exit', res)) };
      relays.push(r);
      // one after the other: the first creates the shared command key file
      await waitReady(r, logFile);
    }

    // the load generators
    const per = Math.ceil(o.kiosks / o.swarms);
    const wsUrls = ports.map((p) => `ws://127.0.0.1:${p}/v1/kiosk`).join(',');
    const notifyUrls = ports.map((p) => `http://127.0.0.1:${p}`).join(',');
    const summaries: Record<string, unknown>[] = [];
    const died: string[] = [];
    const connected: Promise<void>[] = [];
    const finished: Promise<void>[] = [];
    for (let s = 0; s < o.swarms; s++) {
      const from = s * per;
      const to = Math.min(o.kiosks, from + per);
      if (from >= to) break;
      const proc = spawn(
        process.execPath,
        ['--import', 'tsx', 'bench/lib/sales-swarm.ts', '--kiosks', kiosksFile, '--from', String(from), '--to', String(to), '--ws', wsUrls, '--notify', notifyUrls, '--sandbox', sandboxUrl, '--secret', SECRET, '--interval-ms', String(o.intervalMs), '--warmup-seconds', String(o.warmupSeconds), '--seconds', String(o.seconds)],
        { cwd: ROOT, stdio: ['pipe', 'pipe', 'inherit'] },
      );
      swarms.push(proc);
      const rl = createInterface({ input: proc.stdout! });
      let settled = false;
      // A load generator that dies (its own bug, or a signal from outside) is reported, and its
      // kiosks' sales are missing from the figures; the other generators go on.
      const ready = new Promise<void>((resolve, reject) => {
        rl.once('line', () => resolve());
        proc.once('exit', (code, signal) => reject(new Error(`load generator ${s + 1} exited (${code ?? signal}) before its kiosks connected`)));
      });
      ready.catch(() => undefined); // awaited below, with the others
      connected.push(ready);
      finished.push(
        new Promise<void>((resolve) => {
          rl.on('line', (l) => {
            const j = JSON.parse(l) as Record<string, unknown>;
            if (j.done && !settled) {
              settled = true;
              summaries.push(j);
              resolve();
            }
          });
          proc.once('exit', (code, signal) => {
            if (settled) return;
            settled = true;
            died.push(`load generator ${s + 1} (kiosks ${from}..${to - 1}) exited (${code ?? signal}) before its summary`);
            resolve();
          });
        }),
      );
    }
    await Promise.all(connected);

    const pids: Record<string, number> = { sandbox: sandbox.proc.pid! };
    for (const r of relays) pids[`relay ${r.name}`] = r.proc.pid!;
    swarms.forEach((p, i) => (pids[`load generator ${i + 1}`] = p.pid!));
    const loadBefore = loadavg()[0]!;
    for (const p of swarms) p.stdin!.write('go\n');
    // CPU over the measured window only
    await new Promise((r) => setTimeout(r, o.warmupSeconds * 1000));
    const cpu0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, cpuMsIfAlive(pid)]));
    const wait0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, runQueueWaitMs(pid)]));
    const slices0 = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, schedstat(pid)[2]]));
    const m0 = machineTicks();
    const psi0 = cpuPressureUs();
    const t0 = Date.now();
    await new Promise((r) => setTimeout(r, o.seconds * 1000));
    const wall = (Date.now() - t0) / 1000;
    const cpuMsPerSecond = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, Math.round((cpuMsIfAlive(pid) - cpu0[k]!) / wall)]));
    const runQueueWaitMsPerSecond = Object.fromEntries(Object.entries(pids).map(([k, pid]) => [k, Math.round((runQueueWaitMs(pid) - wait0[k]!) / wall)]));
    const waitPerWakeupMs = Object.fromEntries(
      Object.entries(pids).map(([k, pid]) => {
        const [, wait, slices] = schedstat(pid);
        return [k, Math.round(((wait - wait0[k]!) / Math.max(1, slices - slices0[k]!)) * 100) / 100];
      }),
    );
    const m1 = machineTicks();
    const cpuPressure = (cpuPressureUs() - psi0) / (wall * 1e6);
    for (const p of swarms) p.stdin!.end(); // each exits once it has printed its summary
    await Promise.all(finished);
    const loadAfter = loadavg()[0]!;

    const all = (k: string) => summaries.flatMap((s) => s[k] as number[]);
    const failures: Record<string, number> = {};
    for (const s of summaries) for (const [k, v] of Object.entries(s.failures as Record<string, number>)) failures[k] = (failures[k] ?? 0) + v;
    const wholeSale = latency(all('saleMs'));
    return {
      setup: setup === 'pg2' ? 'two relay processes, one PostgreSQL' : 'one relay process, SQLite',
      instances,
      store: db ? 'postgresql' : 'sqlite',
      kiosks: o.kiosks,
      offeredPerSecond: (o.kiosks * 1000) / o.intervalMs,
      completedPerSecond: wholeSale.count / o.seconds,
      salesCompleted: summaries.reduce((n, s) => n + (s.sales as number), 0),
      failures,
      failed: Object.values(failures).reduce((a, b) => a + b, 0),
      late: summaries.reduce((n, s) => n + (s.late as number), 0),
      notificationToPaid: latency(all('measured')),
      notificationAnswer: latency(all('notifyAnswerMs')),
      wholeSale,
      cpuMsPerSecond,
      runQueueWaitMsPerSecond,
      waitPerWakeupMs,
      cpuPressure,
      machineBusy: (m1.busy - m0.busy) / Math.max(1, m1.total - m0.total),
      loadGenLoopDelayP99Ms: Math.max(0, ...summaries.map((s) => s.loopDelayP99Ms as number)),
      loadGenLoopDelayMaxMs: Math.max(0, ...summaries.map((s) => s.loopDelayMaxMs as number)),
      load: { before: loadBefore, after: loadAfter },
      ...(died.length ? { loadGeneratorsDied: died } : {}),
    };
  } finally {
    for (const p of swarms) if (p.exitCode === null) p.kill('SIGKILL');
    // SIGTERM: the relays close (and write their --cpu-prof profiles)
    for (const r of relays) {
      if (r.proc.exitCode === null && r.proc.signalCode === null) {
        r.proc.kill('SIGTERM');
        await Promise.race([r.exit, new Promise((res) => setTimeout(res, 20_000))]);
        if (r.proc.exitCode === null && r.proc.signalCode === null) r.proc.kill('SIGKILL');
      }
    }
    for (const c of children) {
      c.proc.kill('SIGTERM');
      await Promise.race([new Promise((res) => c.proc.once('exit', res)), new Promise((res) => setTimeout(res, 10_000))]);
      await c.stop();
    }
    await db?.drop();
    if (!process.env.BENCH_FLEET_KEEP) rmSync(dir, { recursive: true, force: true });
    else console.error(`kept ${dir}`);
  }
}

/** Runs every setup asked for; a setup on PostgreSQL without a server answering is skipped (null). */
export async function benchFleetSales(o: FleetSalesOptions, setups: FleetSetup[] = ['pg2', 'sqlite1']): Promise<FleetSalesFigure[]> {
  const out: FleetSalesFigure[] = [];
  for (const s of setups) {
    if (s === 'pg2') {
      const problem = await pgProblem();
      if (problem) {
        console.error(`fleet-sales: PostgreSQL at 127.0.0.1:5432 does not answer (${problem}): the two-relay setup is skipped`);
        continue;
      }
    }
    out.push(await runSetup(s, o));
  }
  return out;
}

const ms = (x: number) => (Number.isFinite(x) ? x.toFixed(1) : '-');

export function describeFleet(f: FleetSalesFigure): string {
  const l = f.notificationToPaid;
  const died = f.loadGeneratorsDied ? `; ${f.loadGeneratorsDied.join('; ')}` : '';
  return `p50 ${ms(l.p50)} ms, p99 ${ms(l.p99)} ms, max ${ms(l.max)} ms over ${l.count} sales; ${f.completedPerSecond.toFixed(0)} of ${f.offeredPerSecond.toFixed(0)} sales/s completed, ${f.failed} failed${died}`;
}

if (import.meta.url === `file://${process.argv[1]}`) {
  const { values } = parseArgs({
    options: {
      kiosks: { type: 'string', default: '1000' },
      'interval-ms': { type: 'string', default: '1000' },
      warmup: { type: 'string', default: '10' },
      seconds: { type: 'string', default: '60' },
      swarms: { type: 'string', default: '2' },
      setups: { type: 'string', default: 'pg2,sqlite1' },
    },
  });
  console.error(`${cpus().length} cores, load average ${loadavg()[0]!.toFixed(1)} at start`);
  const r = await benchFleetSales(
    { kiosks: Number(values.kiosks), intervalMs: Number(values['interval-ms']), warmupSeconds: Number(values.warmup), seconds: Number(values.seconds), swarms: Number(values.swarms) },
    values.setups.split(',') as FleetSetup[],
  );
  console.log(JSON.stringify(r, null, 1));
  for (const f of r) console.log(`${f.setup}: ${describeFleet(f)}`);
}
