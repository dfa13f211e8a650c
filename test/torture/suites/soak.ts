import Database from 'better-sqlite3';
import { spawn } from 'node:child_process';
import { mkdtempSync, readFileSync, rmSync, statSync, existsSync, writeFileSync, createWriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { startAgent, type Agent } from '../../../src/agent/agent.js';
import type { StateChange } from '../../../src/agent/session.js';
import { NullDisplay } from '../../../src/devices/display.js';
import { SimDispenser, readPulseLog } from '../../../src/devices/dispenser.js';
import { MercadoPagoClient } from '../../../src/mercadopago/client.js';
import { openRelayStore, posUrl } from '../../../src/relay/store/index.js';
import { freeLoopbackPort } from '../../../src/runtime/net.js';
import { startSandbox } from '../../../src/sandbox/index.js';
import { percentile } from '../cycle.js';
import { checkInvariants } from '../invariants.js';
import { Prng } from '../prng.js';
import { latencyFigures, type SuiteReport } from '../report.js';
import { ACCESS_TOKEN, CATALOG, COLLECTOR_ID, WEBHOOK_SECRET, type AgentOrderRow, type PaymentModel, type RelayOrderRow } from '../world.js';

// Soak suite: one relay process and N simulated kiosks (real agents in this process, with the
// simulated motor) selling without pause through the Mercado Pago emulator. It samples the
// relay process's resident memory as the vends go by and reports whether it stays flat after
// warm-up (within 5%), and how many bytes the relay's database grows per vend. The invariants
// are checked over the whole run at the end.

const ROOT = resolve(import.meta.dirname, '..', '..', '..');

export interface SoakOptions {
  vends: number;
  seed: number;
  kiosks?: number;
  model?: PaymentModel;
  log?: (line: string) => void;
  keepDir?: boolean;
  /**
   * stop selling after this many minutes and report what was reached (the report says how many
   * vends were done of how many asked): a long soak on a shared machine still gives its figures
   */
  minutes?: number;
}

/**
 * The soak sells at hundreds of times a real kiosk's pace, and every request comes from one
 * address (127.0.0.1): the Mercado Pago emulator's POS polls and notifications, the kiosks. The
 * relay's per-source caps (limits.pos, limits.notifications; docs/reliability.md) would refuse
 * that on purpose, and the contingency search would then find the payments late. The soak is
 * about memory and database growth over many vends, so it raises those caps; the caps themselves
 * are proven by test/relay-limits.test.ts and test/relay-abuse.test.ts.
 */
export const SOAK_LIMITS = {
  notifications: { perSecond: 10_000, burst: 10_000, storedPerSourcePerHour: 10_000_000, mpCallsPerSecond: 1000 },
  pos: { perSecond: 10_000, burst: 10_000 },
};

function rssKb(pid: number): number {
  const m = /VmRSS:\s+(\d+)/.exec(readFileSync(`/proc/${pid}/status`, 'utf8'));
  return m ? Number(m[1]) : 0;
}

function fileSize(path: string): number {
  return existsSync(path) ? statSync(path).size : 0;
}

export async function soakSuite(o: SoakOptions): Promise<SuiteReport> {
  const started = Date.now();
  const prng = new Prng(o.seed).fork('soak');
  const log = o.log ?? (() => undefined);
  const kiosks = o.kiosks ?? 20;
  const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-soak-'));
  const silent = pino({ level: 'silent' });
  const sandbox = await startSandbox({ accessToken: ACCESS_TOKEN, collectorId: COLLECTOR_ID, currency: 'ARS', webhookSecret: WEBHOOK_SECRET, pollIntervalMs: 20, pollGiveUpMs: 10_000, logger: silent });
  const port = await freeLoopbackPort();
  const publicUrl = `http://127.0.0.1:${port}`;
  const storePath = join(dir, 'relay.sqlite');
  writeFileSync(
    join(dir, 'relay.yaml'),
    JSON.stringify({
      listen: { host: '127.0.0.1', port },
      publicUrl,
      store: { path: storePath },
      mercadopago: { baseUrl: sandbox.url, accessToken: ACCESS_TOKEN, collectorId: COLLECTOR_ID, webhookSecret: WEBHOOK_SECRET },
      catalog: CATALOG,
      orders: { contingencyAfterSeconds: 30, contingencyIntervalSeconds: 10 },
      limits: SOAK_LIMITS,
    }),
  );
  const mp = new MercadoPagoClient({ baseUrl: sandbox.url, accessToken: ACCESS_TOKEN });
  await mp.createStore(COLLECTOR_ID, { name: 'soak', external_id: 'SOAKSTORE' });
  const store = await openRelayStore(storePath);
  const fleet: Array<{ id: string; token: string; qr: string }> = [];
  try {
    for (let i = 1; i <= kiosks; i++) {
      const added = await store.addKiosk({ id: `soak-${i}`, posExternalId: `SOAK${i}` });
      const pos = await mp.createPos({ name: `soak-${i}`, fixed_amount: true, external_store_id: 'SOAKSTORE', external_id: `SOAK${i}`, url: posUrl(publicUrl, added.kiosk) });
      await store.setKioskPosQr(`soak-${i}`, pos.qr_code!);
      fleet.push({ id: `soak-${i}`, token: added.token, qr: pos.qr_code! });
    }
  } finally {
    await store.close();
  }

  const relayLog = createWriteStream(join(dir, 'relay.log'));
  const relay = spawn(process.execPath, [join(ROOT, 'bin', 'qrkiosk.js'), 'relay', '--config', join(dir, 'relay.yaml')], {
    cwd: ROOT,
    env: { ...process.env, QRKIOSK_RUN_SOURCES: '1', QRKIOSK_LOG_LEVEL: 'warn' },
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  relay.stdout.pipe(relayLog);
  relay.stderr.pipe(relayLog);
  const violations: string[] = [];
  const agents: Agent[] = [];
  const samples: Array<{ vends: number; rssKb: number }> = [];
  const latencies: number[] = [];
  try {
    for (let i = 0; ; i++) {
      if (relay.exitCode !== null) throw new Error(`relay exited at start: see ${dir}/relay.log`);
      const ok = await fetch(`${publicUrl}/healthz`).then((r) => r.ok).catch(() => false);
      if (ok) break;
      if (i > 1200) throw new Error('relay did not start in 30 s');
      await new Promise((r) => setTimeout(r, 25));
    }
    const per = Math.ceil(o.vends / kiosks);
    for (const k of fleet) {
      agents.push(
        await startAgent(
          {
            kioskId: k.id,
            relay: { url: `ws://127.0.0.1:${port}/v1/kiosk`, token: k.token, backoff: { baseMs: 50, capMs: 1000 } },
            journal: { path: join(dir, `${k.id}.sqlite`) },
            control: { socket: join(dir, `${k.id}.sock`) },
            slots: [
              { slot: 1, sku: 'COLA', stock: per + 10 },
              { slot: 2, sku: 'AGUA', stock: per + 10 },
            ],
            hardware: { buttons: { driver: 'none' }, display: { driver: 'none' }, dispenser: { driver: 'sim' } },
          },
          {
            logger: silent,
            display: new NullDisplay(),
            dispenser: new SimDispenser({ pulseMs: 1, dropWindowMs: 200, maxPulses: 1, fault: 'none', dropDelayMs: 1, slowDropMs: 100, pulseLog: join(dir, `${k.id}.pulses`) }),
            timings: { resultScreenMs: 0 },
            control: false,
          },
        ),
      );
    }
    for (const a of agents) while (!a.status().relay.lastWelcomeAt) await new Promise((r) => setTimeout(r, 20));

    let done = 0;
    const sampleEvery = Math.max(1, Math.floor(o.vends / 100));
    const stopAt = o.minutes ? Date.now() + o.minutes * 60_000 : Infinity;
    const sell = async (idx: number): Promise<void> => {
      const agent = agents[idx]!;
      const k = fleet[idx]!;
      const kprng = prng.fork(k.id);
      while (done < o.vends && Date.now() < stopAt) {
        while (agent.status().state !== 'idle') await new Promise((r) => setTimeout(r, 2));
        const sel = agent.select(kprng.int(1, 2));
        if (!sel.ok) {
          await new Promise((r) => setTimeout(r, 20));
          continue;
        }
        const finished = new Promise<string>((res) => {
          const on = (c: StateChange) => {
            if (c.orderId === sel.orderId && ['dispensed', 'vend_failed', 'vend_unknown', 'cancelled', 'rejected', 'not_dispensed'].includes(c.to)) {
              agent.off('state', on);
              res(c.to);
            }
          };
          agent.on('state', on);
        });
        const scan = await sandbox.scan({ qr: k.qr });
        if (scan.status !== 'ready') {
          violations.push(`${k.id}: scan ${scan.status} for ${sel.orderId}`);
          agent.cancel?.();
          await finished;
          continue;
        }
        const t0 = Date.now();
        await sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: kprng.pick(['ipn', 'webhook'] as const) } });
        const end = await finished;
        if (end === 'dispensed') latencies.push(Date.now() - t0);
        else violations.push(`${k.id}: ${sel.orderId} ended ${end}`);
        done++;
        if (done % sampleEvery === 0) {
          samples.push({ vends: done, rssKb: rssKb(relay.pid!) });
          if (done % (sampleEvery * (o.vends >= 10_000 ? 1 : 10)) === 0) log(`${done} vends, relay RSS ${samples[samples.length - 1]!.rssKb} kB, db ${fileSize(storePath) + fileSize(`${storePath}-wal`)} B, p99 ${percentile(latencies.slice(-1000), 99)} ms`);
        }
      }
    };
    await Promise.all(agents.map((_, i) => sell(i)));
    await new Promise((r) => setTimeout(r, 500));

    // memory: mean RSS after warm-up (samples 20-30% in) against the last 10%
    const mean = (xs: Array<{ rssKb: number }>) => xs.reduce((s, x) => s + x.rssKb, 0) / Math.max(1, xs.length);
    const n = samples.length;
    const warm = mean(samples.slice(Math.floor(n * 0.2), Math.max(Math.floor(n * 0.2) + 1, Math.floor(n * 0.3))));
    const last = mean(samples.slice(Math.floor(n * 0.9)));
    const growth = warm ? (last - warm) / warm : 0;
    if (done >= 10_000 && growth > 0.05) violations.push(`relay memory grew ${(growth * 100).toFixed(1)}% after warm-up (${warm.toFixed(0)} kB -> ${last.toFixed(0)} kB)`);
    const dbBytes = fileSize(storePath) + fileSize(`${storePath}-wal`);

    // invariants over the whole run
    const agentOrders: AgentOrderRow[] = [];
    let agentOutbox = 0;
    for (const k of fleet) {
      const db = new Database(join(dir, `${k.id}.sqlite`), { readonly: true });
      agentOrders.push(...(db.prepare('SELECT id, slot, sku, amount, state, payment_id, result FROM orders').all() as AgentOrderRow[]));
      agentOutbox += (db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n;
      db.close();
    }
    const rdb = new Database(storePath, { readonly: true });
    const relayOrders = rdb.prepare('SELECT id, state, amount, payment_ids, vend_result, needs_review FROM orders').all() as RelayOrderRow[];
    const relayBacklog = {
      outbox: (rdb.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n,
      refunds: (rdb.prepare(`SELECT COUNT(*) AS n FROM refunds WHERE status = 'requested'`).get() as { n: number }).n,
      notifications: (rdb.prepare('SELECT COUNT(*) AS n FROM notifications WHERE processed_at IS NULL').get() as { n: number }).n,
    };
    const tables = Object.fromEntries(
      (rdb.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as Array<{ name: string }>).map((t) => [t.name, (rdb.prepare(`SELECT COUNT(*) AS n FROM "${t.name}"`).get() as { n: number }).n]),
    );
    rdb.close();
    const pulses = fleet.flatMap((k) => (existsSync(join(dir, `${k.id}.pulses`)) ? readPulseLog(readFileSync(join(dir, `${k.id}.pulses`), 'utf8')) : []));
    const verdict = checkInvariants({ agentOrders, pulses, agentOutbox, relayOrders, relayBacklog, payments: await sandbox.payments(), refunds: await sandbox.refunds() });
    violations.push(...verdict.violations.slice(0, 100));
    return {
      suite: 'soak',
      seed: o.seed,
      model: o.model ?? 'unattended',
      cycles: o.vends,
      faults: {},
      violations,
      payToDispenseMs: latencyFigures(latencies),
      durationMs: Date.now() - started,
      extra: {
        kiosks,
        vendsDone: done,
        ...(done < o.vends ? { stoppedBy: `the ${o.minutes}-minute budget, at ${done} of ${o.vends} vends` } : {}),
        relayRssKb: { afterWarmup: Math.round(warm), end: Math.round(last), growthPercent: Number((growth * 100).toFixed(2)), samples: samples.length },
        relayDbBytes: dbBytes,
        dbBytesPerVend: Math.round(dbBytes / Math.max(1, done)),
        relayRows: tables,
        counts: verdict.counts,
        vendsPerSecond: Number((done / ((Date.now() - started) / 1000)).toFixed(1)),
      },
    };
  } finally {
    for (const a of agents) await a.close();
    relay.kill('SIGTERM');
    await new Promise((r) => (relay.exitCode !== null ? r(undefined) : relay.once('exit', r)));
    await sandbox.close();
    relayLog.end();
    if (!o.keepDir && violations.length === 0) rmSync(dir, { recursive: true, force: true });
  }
}
