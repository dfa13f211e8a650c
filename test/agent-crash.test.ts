import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join, resolve } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { controlRequest } from '../src/agent/control.js';
import { readPulseLog } from '../src/devices/dispenser.js';
import { FakeRelay, TOKEN, tempDir } from './agent-helpers.js';
import { waitFor } from './helpers/wait.js';

// Real processes, real SIGKILL. The agent kills itself at a chosen point through the
// QRKIOSK_CRASH_AFTER test hook; then a fresh process starts on the same journal and must neither
// lose the sale nor pulse the motor twice. The pulse log (written by the simulated motor with
// appendFileSync) is the ground truth for "did the motor move".

const ROOT = resolve(import.meta.dirname, '..');
const ENTRY = join(ROOT, 'src/cli/agent-entry.ts');

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

interface Running {
  child: ChildProcess;
  stderr: () => string;
  exited: Promise<{ code: number | null; signal: NodeJS.Signals | null }>;
}

function spawnAgent(configPath: string, crashAfter?: string): Running {
  const env: NodeJS.ProcessEnv = { ...process.env, QRKIOSK_LOG_LEVEL: 'debug' };
  delete env.QRKIOSK_CRASH_AFTER;
  if (crashAfter) env.QRKIOSK_CRASH_AFTER = crashAfter;
  const child = spawn(process.execPath, ['--import', 'tsx', ENTRY, '--config', configPath], {
    cwd: ROOT,
    env,
    stdio: ['ignore', 'pipe', 'pipe'],
  });
  let err = '';
  child.stderr!.on('data', (d: Buffer) => (err += d.toString()));
  child.stdout!.resume();
  const exited = new Promise<{ code: number | null; signal: NodeJS.Signals | null }>((res) => child.once('exit', (code, signal) => res({ code, signal })));
  cleanups.push(async () => {
    if (child.exitCode === null && child.signalCode === null) {
      child.kill('SIGKILL');
      await exited;
    }
  });
  return { child, stderr: () => err, exited };
}

async function scenario(crashAfter: string) {
  const relay = await FakeRelay.start();
  cleanups.push(() => relay.close());
  const { dir, cleanup } = tempDir('qrk-crash-');
  cleanups.push(cleanup);
  const sock = join(dir, 'agent.sock');
  const pulseLog = join(dir, 'pulses.jsonl');
  const journal = join(dir, 'agent.sqlite');
  const configPath = join(dir, 'agent.yaml');
  writeFileSync(
    configPath,
    `kioskId: kiosk-test
relay:
  url: ${relay.url}
  token: ${TOKEN}
  backoff: { baseMs: 20, capMs: 200 }
journal: { path: ${journal} }
control: { socket: ${sock} }
payment: { deadlineSeconds: 90 }
slots:
  - { slot: 1, sku: COLA, stock: 5 }
hardware:
  buttons: { driver: none }
  display: { driver: log }
  dispenser:
    driver: sim
    pulseMs: 20
    dropWindowMs: 150
    maxPulses: 2
    sim: { fault: none, dropDelayMs: 10, pulseLog: ${pulseLog} }
`,
  );
  const pulses = () => (existsSync(pulseLog) ? readPulseLog(readFileSync(pulseLog, 'utf8')).length : 0);
  const orderSteps = (orderId: string) => {
    const db = new Database(journal, { readonly: true });
    try {
      const o = db.prepare(`SELECT state, result FROM orders WHERE id = ?`).get(orderId) as { state: string; result: string | null };
      const steps = (db.prepare(`SELECT state FROM steps WHERE order_id = ? ORDER BY seq`).all(orderId) as Array<{ state: string }>).map((s) => s.state);
      return { ...o, steps };
    } finally {
      db.close();
    }
  };

  // --- first run: sell, get paid, die at the chosen point
  const first = spawnAgent(configPath, crashAfter);
  await relay.waitHello(1, 20_000);
  // the agent process is another process: poll its status until the welcome has been applied
  await waitFor('agent online', async () => ((await controlRequest(sock, 'status')) as { relay: { online: boolean } }).relay.online, 20_000);
  const sel = (await controlRequest(sock, 'select', { slot: 1 })) as { ok: boolean; orderId: string };
  expect(sel.ok).toBe(true);
  await relay.waitType('order.ready', (m) => m.orderId === sel.orderId);
  const paidFrame = relay.send({ type: 'order.paid', orderId: sel.orderId, paymentId: 'pay_crash', amount: 150000, currency: 'ARS' });
  const death = await first.exited;
  expect(death, first.stderr()).toEqual({ code: null, signal: 'SIGKILL' });

  return { relay, sock, pulses, orderSteps, configPath, orderId: sel.orderId, paidFrame };
}

describe('crash consistency (child processes, SIGKILL)', () => {
  it('crash right after `dispensing` commits: restart reports vend_unknown, motor never moves', async () => {
    const s = await scenario('dispensing');
    // the hook fires after the commit and before the first pulse
    expect(s.pulses()).toBe(0);
    expect(s.orderSteps(s.orderId)).toMatchObject({ state: 'dispensing' });
    // the killed agent left its socket file behind: the next start must replace it
    expect(existsSync(s.sock)).toBe(true);

    const second = spawnAgent(s.configPath);
    const result = await s.relay.waitFrame((f) => f.conn === 2 && f.msg.type === 'vend.result', 'vend.result after restart', 20_000);
    expect(result.msg).toMatchObject({ orderId: s.orderId, result: 'vend_unknown' });
    expect(s.pulses()).toBe(0);
    expect(s.orderSteps(s.orderId)).toEqual({ state: 'vend_unknown', result: 'vend_unknown', steps: ['awaiting_payment', 'paid', 'dispensing', 'vend_unknown'] });
    // graceful stop on SIGTERM
    second.child.kill('SIGTERM');
    expect(await second.exited).toEqual({ code: 0, signal: null });
  }, 60_000);

  it('crash after the first pulse: restart reports vend_unknown and the pulse count stays 1', async () => {
    const s = await scenario('pulse');
    expect(s.pulses()).toBe(1);
    const second = spawnAgent(s.configPath);
    const result = await s.relay.waitFrame((f) => f.conn === 2 && f.msg.type === 'vend.result', 'vend.result after restart', 20_000);
    expect(result.msg).toMatchObject({ orderId: s.orderId, result: 'vend_unknown' });
    // the relay re-sends order.paid if our ack never left: it must be acked, not re-dispensed
    if (s.relay.unacked.has(s.paidFrame.id as string)) {
      await s.relay.waitFrame((f) => f.conn === 2 && f.msg.type === 'ack' && f.msg.ackId === s.paidFrame.id, 'ack of the re-sent paid', 20_000);
    }
    const status = (await controlRequest(s.sock, 'status')) as { state: string; outboxPending: number };
    expect(status.state).toBe('idle');
    expect(s.pulses()).toBe(1);
    expect(s.orderSteps(s.orderId).state).toBe('vend_unknown');
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
  }, 60_000);

  it('crash right after `paid` commits (before the ack): restart dispenses exactly once', async () => {
    const s = await scenario('paid');
    expect(s.pulses()).toBe(0);
    expect(s.orderSteps(s.orderId).state).toBe('paid');
    // the relay never got our ack: it will re-send order.paid after the next hello
    expect(s.relay.unacked.has(s.paidFrame.id as string)).toBe(true);

    const second = spawnAgent(s.configPath);
    const result = await s.relay.waitFrame((f) => f.conn === 2 && f.msg.type === 'vend.result', 'vend.result after restart', 20_000);
    expect(result.msg).toMatchObject({ orderId: s.orderId, result: 'dispensed', pulses: 1 });
    await s.relay.waitFrame((f) => f.conn === 2 && f.msg.type === 'ack' && f.msg.ackId === s.paidFrame.id, 'ack of the re-sent paid', 20_000);
    expect(s.pulses()).toBe(1);
    expect(s.relay.of('vend.result')).toHaveLength(1);
    expect(s.orderSteps(s.orderId)).toEqual({ state: 'dispensed', result: 'dispensed', steps: ['awaiting_payment', 'paid', 'dispensing', 'dispensed'] });
    second.child.kill('SIGTERM');
    expect((await second.exited).code).toBe(0);
    expect(s.pulses()).toBe(1);
  }, 60_000);
});
