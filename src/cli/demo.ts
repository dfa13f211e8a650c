import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startAgent, type Agent } from '../agent/agent.js';
import type { StateChange } from '../agent/session.js';
import { assertCurrency, formatMoney } from '../core/money.js';
import { LogDisplay, TerminalDisplay } from '../devices/display.js';
import { SimDispenser, type SimFault } from '../devices/dispenser.js';
import type { RunningRelay } from '../relay/server.js';
import type { Logger } from '../runtime/log.js';
import type { Sandbox } from '../sandbox/index.js';
import { startLocalStack } from './local-stack.js';
import { defaultModelFor, describeModes, modelLabel, parseModelChoice } from '../relay/models/modes.js';
import type { PaymentModelName } from '../protocol/messages.js';

// `qrkiosk demo` (= `npm start`): the Mercado Pago emulator, the relay and one kiosk agent with
// simulated hardware, wired together on loopback exactly as they would be in the field: the
// relay polls nothing of the agent's internals, the sandbox reaches the relay only over HTTP, the
// agent reaches the relay only over its WebSocket.

const ACCESS_TOKEN = 'TEST-demo-access-token';
const COLLECTOR_ID = 123456789;
const WEBHOOK_SECRET = 'demo-webhook-secret';
const KIOSK_ID = 'kiosk-01';
const POS_EXTERNAL_ID = 'KIOSK01';

const CATALOG = [
  { sku: 'COLA-350', name: 'Cola 350 ml', price: '1500.00', currency: 'ARS' },
  { sku: 'AGUA-500', name: 'Agua 500 ml', price: '900.00', currency: 'ARS' },
  { sku: 'ALFAJOR', name: 'Alfajor triple', price: '1200.00', currency: 'ARS' },
  { sku: 'PAPAS-45', name: 'Papas fritas 45 g', price: '1750.50', currency: 'ARS' },
];

interface DemoParts {
  sandbox: Sandbox;
  relay: RunningRelay;
  agent: Agent;
  dispenser: SimDispenser;
  posQr: string;
  dir: string;
  close(): Promise<void>;
}

async function startParts(opts: { interactive: boolean; logger: Logger; resultScreenMs: number; model: { model: PaymentModelName; mode: string | null } }): Promise<DemoParts> {
  const { logger } = opts;
  const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-demo-'));
  const stack = await startLocalStack({
    dir,
    accessToken: ACCESS_TOKEN,
    collectorId: COLLECTOR_ID,
    currency: 'ARS',
    webhookSecret: WEBHOOK_SECRET,
    catalog: CATALOG,
    orders: { maxPaymentSeconds: 120, contingencyAfterSeconds: 10 },
    kiosk: { id: KIOSK_ID, posExternalId: POS_EXTERNAL_ID, generation: 'v2', storeExternalId: 'DEMOSTORE1', model: opts.model.model, modelMode: opts.model.mode },
    pollIntervalMs: 150,
    sandboxLogger: logger.child({ part: 'sandbox' }),
    relayLogger: logger.child({ part: 'relay' }),
  });
  const { sandbox, relay, posQr } = stack;

  const dispenser = new SimDispenser({
    pulseMs: 200,
    dropWindowMs: 1200,
    maxPulses: 2,
    fault: 'none',
    dropDelayMs: 150,
    slowDropMs: 2000,
    logger: logger.child({ part: 'dispenser' }),
  });
  const agent = await startAgent(
    {
      kioskId: KIOSK_ID,
      relay: { url: relay.wsUrl, token: stack.token, backoff: { baseMs: 200, capMs: 5000 } },
      journal: { path: join(dir, 'agent.sqlite') },
      control: { socket: join(dir, 'agent.sock') },
      payment: { deadlineSeconds: 90 },
      locale: 'es',
      slots: [
        { slot: 1, sku: 'COLA-350', stock: 8 },
        { slot: 2, sku: 'AGUA-500', stock: 8 },
        { slot: 3, sku: 'ALFAJOR', stock: 5 },
        { slot: 4, sku: 'PAPAS-45', stock: 0 },
      ],
      hardware: {
        buttons: { driver: 'none' },
        dispenser: { driver: 'sim' },
        display: { driver: 'none' },
      },
    },
    {
      logger: logger.child({ part: 'agent' }),
      dispenser,
      display: opts.interactive
        ? new TerminalDisplay(process.stdout, { locale: 'es' })
        : new LogDisplay(logger.child({ part: 'display' })),
      timings: { resultScreenMs: opts.resultScreenMs },
    },
  );

  return {
    sandbox,
    relay,
    agent,
    dispenser,
    posQr,
    dir,
    async close() {
      await agent.close();
      await stack.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

function waitForState(agent: Agent, orderId: string, states: string[], timeoutMs = 20_000): Promise<StateChange> {
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => {
      agent.off('state', on);
      reject(new Error(`order ${orderId} did not reach ${states.join('/')} within ${timeoutMs} ms`));
    }, timeoutMs);
    const on = (c: StateChange) => {
      if (c.orderId === orderId && states.includes(c.to)) {
        clearTimeout(timer);
        agent.off('state', on);
        resolve(c);
      }
    };
    agent.on('state', on);
  });
}

function waitForOnline(agent: Agent, timeoutMs = 10_000): Promise<void> {
  if (agent.status().relay.online && agent.status().relay.lastWelcomeAt) return Promise.resolve();
  return new Promise((resolve, reject) => {
    const timer = setTimeout(() => reject(new Error('the agent did not connect to the relay')), timeoutMs);
    const check = () => {
      const s = agent.status();
      if (s.relay.online && s.relay.lastWelcomeAt) {
        clearTimeout(timer);
        agent.off('link', check);
        resolve();
      }
    };
    agent.on('link', check);
    check();
  });
}

function step(msg: string): void {
  const t = new Date().toISOString().slice(11, 23);
  console.log(`${t}  ${msg}`);
}

/** One sale seen from outside: press, scan, pay, and what the kiosk and Mercado Pago did. */
async function sellOnce(parts: DemoParts, slot: number, fault: SimFault): Promise<string> {
  const { agent, sandbox } = parts;
  parts.dispenser.setFault(fault);
  const sel = agent.select(slot);
  if (!sel.ok) {
    step(`button ${slot}: refused (${sel.reason}${'message' in sel && sel.message ? `: ${sel.message}` : ''})`);
    return 'refused';
  }
  const orderId = sel.orderId;
  step(`button ${slot} pressed -> order ${orderId}, screen shows ${sel.product} ${formatMoney(sel.amount, assertCurrency(sel.currency))} and the QR`);
  const scan = await sandbox.scan({ qr: await shownQr(parts, orderId) });
  if (scan.status !== 'ready') {
    step(`customer scanned: Mercado Pago says "${scan.status}"`);
    return scan.status;
  }
  const how =
    scan.model === 'orders'
      ? `Orders API order ${scan.orderId} (${scan.mode} QR)`
      : scan.model === 'unattended'
        ? `the relay answered the POS poll (${scan.generation}) after ${scan.polls} poll(s), merchant order ${scan.merchantOrderId}`
        : `${scan.model} QR, merchant order ${scan.merchantOrderId}`;
  step(`customer scanned: ${how}: ${formatMoney(scan.totalMinor, scan.currency)}`);
  const paid = await sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
  step(`customer paid: payment ${paid.paymentId} ${paid.status}, ${paid.model === 'orders' ? `order ${paid.orderStatus}` : `merchant order ${paid.merchantOrderStatus}`}; notification sent`);
  const end = await waitForState(agent, orderId, ['dispensed', 'vend_failed', 'vend_unknown', 'not_dispensed']);
  if (end.to === 'dispensed') {
    step(`relay verified the payment -> kiosk pulsed the motor -> drop sensor saw the product: DISPENSED`);
  } else {
    step(`kiosk: ${end.to.toUpperCase()} (simulated fault "${fault}") -> the relay refunds`);
    const refund = await waitUntil(async () => (await sandbox.refunds()).find((r) => r.paymentId === paid.paymentId));
    step(`Mercado Pago refunded payment ${refund.paymentId}: ${formatMoney(refund.amountMinor, refund.currency)} (idempotency key ${refund.idempotencyKey})`);
  }
  return end.to;
}

/**
 * What the kiosk's screen shows for the order once it is payable: the order's own QR (dynamic
 * models, sent by the relay in order.accepted) or the POS sticker.
 */
async function shownQr(parts: DemoParts, orderId: string): Promise<string> {
  return waitUntil(async () => {
    const o = await parts.relay.store.getOrder(orderId);
    if (!o || (o.offerState !== 'offered' && o.offerState !== 'local')) return undefined;
    return o.qr ?? parts.posQr;
  });
}

async function waitUntil<T>(check: () => Promise<T | undefined>, timeoutMs = 20_000): Promise<T> {
  const until = Date.now() + timeoutMs;
  for (;;) {
    const v = await check();
    if (v !== undefined) return v;
    if (Date.now() > until) throw new Error('timed out');
    await new Promise((r) => setTimeout(r, 50));
  }
}

async function runAuto(parts: DemoParts): Promise<number> {
  const plan: Array<{ slot: number; fault: SimFault; expect: string }> = [
    { slot: 1, fault: 'none', expect: 'dispensed' },
    { slot: 2, fault: 'none', expect: 'dispensed' },
    { slot: 3, fault: 'no_drop', expect: 'vend_failed' },
    { slot: 4, fault: 'none', expect: 'refused' },
    { slot: 1, fault: 'none', expect: 'dispensed' },
  ];
  let failures = 0;
  for (const p of plan) {
    await waitForIdle(parts.agent);
    const got = await sellOnce(parts, p.slot, p.fault);
    if (got !== p.expect) {
      failures++;
      step(`UNEXPECTED: slot ${p.slot} ended ${got}, expected ${p.expect}`);
    }
  }
  const stock = parts.agent.status().stock;
  step(`done: ${plan.length} customers; stock now ${stock.map((s) => `slot ${s.slot} ${s.sku}: ${s.count}`).join(', ')}`);
  return failures === 0 ? 0 : 1;
}

async function waitForIdle(agent: Agent): Promise<void> {
  await waitUntil(async () => (agent.status().state === 'idle' ? true : undefined), 30_000);
}

async function runInteractive(parts: DemoParts): Promise<number> {
  const { agent, sandbox } = parts;
  const help = 'keys: 1-4 press a product button · p customer pays · x payment rejected · c cancel · f next vend fails · q quit';
  let nextFault: SimFault = 'none';
  const say = (m: string) => process.stdout.write(`\n  ${m}\n  ${help}\n`);
  agent.on('screen', () => process.stdout.write(`\n  ${help}\n`));
  say('ready');
  const stdin = process.stdin;
  stdin.setRawMode(true);
  stdin.resume();
  stdin.setEncoding('utf8');
  return new Promise<number>((resolve) => {
    const pay = async (outcome: 'approved' | 'rejected') => {
      try {
        say('customer scans the QR with Mercado Pago...');
        const open = agent.status().order?.orderId;
        const qr = open ? await shownQr(parts, open).catch(() => parts.posQr) : parts.posQr;
        const scan = await sandbox.scan({ qr, giveUpMs: 3000 });
        if (scan.status !== 'ready') return say(`Mercado Pago: nothing to pay (${scan.status}): press a product first`);
        const r = await sandbox.pay({ checkoutId: scan.checkoutId, outcome, notify: { form: 'webhook' } });
        say(`payment ${r.paymentId} ${r.status}`);
      } catch (err) {
        say(`customer could not pay: ${(err as Error).message}`);
      }
    };
    const onKey = (key: string) => {
      if (key === 'q' || key === '\u0003') {
        stdin.off('data', onKey);
        stdin.setRawMode(false);
        stdin.pause();
        resolve(0);
      } else if (/^[1-9]$/.test(key)) {
        parts.dispenser.setFault(nextFault);
        nextFault = 'none';
        const r = agent.select(Number(key));
        if (!r.ok) say(`button ${key}: ${r.reason}${'message' in r && r.message ? ` (${r.message})` : ''}`);
      } else if (key === 'p') void pay('approved');
      else if (key === 'x') void pay('rejected');
      else if (key === 'c') {
        const r = agent.cancel('customer');
        if (!r.ok) say(`nothing to cancel`);
      } else if (key === 'f') {
        nextFault = 'no_drop';
        say('the next vend will not drop (the relay will refund it)');
      }
    };
    stdin.on('data', onKey);
  });
}

export async function demoMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({ args: argv, options: { auto: { type: 'boolean', default: false }, model: { type: 'string' } } });
  let model: { model: PaymentModelName; mode: string | null };
  try {
    model = values.model === undefined ? defaultModelFor('ARS') : parseModelChoice(values.model, 'ARS');
  } catch (err) {
    console.error(`qrkiosk demo: ${(err as Error).message}`);
    console.error(`  models: ${describeModes()}`);
    return 2;
  }
  const interactive = !values.auto && process.stdin.isTTY === true && process.stdout.isTTY === true;
  // Logs go to a file: the terminal is the kiosk's screen.
  const logDir = mkdtempSync(join(tmpdir(), 'qrkiosk-demo-log-'));
  const logFile = join(logDir, 'demo.log');
  const logger = pino({ level: 'info' }, pino.destination({ dest: logFile, sync: true }));
  const parts = await startParts({ interactive, logger, resultScreenMs: interactive ? 4000 : 300, model });
  console.log(`qrkiosk demo — everything on loopback, simulated hardware, payment model ${modelLabel(model.model, model.mode)}`);
  console.log(`  Mercado Pago sandbox  ${parts.sandbox.url}`);
  console.log(`  relay                 ${parts.relay.url}  (kiosks: ${parts.relay.wsUrl})`);
  console.log(`  agent control socket  ${join(parts.dir, 'agent.sock')}  (try: qrkiosk status --socket ${join(parts.dir, 'agent.sock')})`);
  console.log(`  logs                  ${logFile}`);
  let code = 1;
  try {
    await waitForOnline(parts.agent);
    code = interactive ? await runInteractive(parts) : await runAuto(parts);
  } catch (err) {
    console.error(`demo failed: ${(err as Error).message} (see ${logFile})`);
  } finally {
    await parts.close();
  }
  return code;
}
