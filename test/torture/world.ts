import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { controlRequest } from '../../src/agent/control.js';
import { readPulseLog, type SimFault } from '../../src/devices/dispenser.js';
import { MercadoPagoClient } from '../../src/mercadopago/client.js';
import type { MpPayment } from '../../src/mercadopago/types.js';
import { parseRelayConfig } from '../../src/relay/config.js';
import { modelVariants } from '../../src/relay/models/modes.js';
import { provisionKiosk } from '../../src/relay/provision.js';
import { openRelayStore } from '../../src/relay/store/index.js';
import type { PaymentModelName } from '../../src/protocol/messages.js';
import { freeLoopbackPort } from '../../src/runtime/net.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
import { SandboxError } from '../../src/sandbox/api-error.js';
import type { RefundRecord, ScanResult } from '../../src/sandbox/types.js';
import { FaultProxy, type NetFault } from './fault-proxy.js';
import type { Prng } from './prng.js';

// The world a torture run happens in: the Mercado Pago emulator in this process (its ledger is
// the ground truth for money), the relay and the agent as real child processes started through
// the real CLI (so either can be SIGKILLed at any instant and restarted on the same files), and,
// for the network suite, a fault proxy on each of the three links.

const ROOT = resolve(import.meta.dirname, '..', '..');
const CLI = join(ROOT, 'bin', 'qrkiosk.js');
export const ACCESS_TOKEN = 'TEST-torture-token';
export const COLLECTOR_ID = 555444333;
export const WEBHOOK_SECRET = 'torture-webhook-secret';
export const KIOSK_ID = 'kiosk-t';
export const CATALOG = [
  { sku: 'COLA', name: 'Cola 350 ml', price: '1500.00', currency: 'ARS' },
  { sku: 'AGUA', name: 'Agua 500 ml', price: '900.00', currency: 'ARS' },
] as const;
export const PRICE_MINOR: Record<string, number> = { COLA: 150000, AGUA: 90000 };

/**
 * How the customer pays: every model and mode the relay supports, written as `--model` takes them
 * ("unattended", "attended/v2", "dynamic/offline", "orders/static" ...; docs/payment-models.md).
 * Provisioning (the relay's own `provisionKiosk`) and the customer's scan are what differ; the
 * sale, the faults and the invariants are the same for all.
 */
export type PaymentModel = string;
const VARIANTS = modelVariants();
export const PAYMENT_MODELS: readonly PaymentModel[] = VARIANTS.map((v) => v.label);

/**
 * What the customer scans in each model: the order's own QR on the kiosk's screen, the POS
 * sticker (the POS url answers, or the order was put on the POS), or either (hybrid: the seed
 * picks one per sale).
 */
export type ScanChannel = 'own' | 'pos' | 'either';
export function scanChannel(model: PaymentModelName, mode: string | null): ScanChannel {
  if (mode === 'hybrid') return 'either';
  if ((model === 'dynamic' && (mode === 'online' || mode === 'offline')) || (model === 'orders' && mode === 'dynamic')) return 'own';
  return 'pos';
}

/** The customer's scan as the cycle sees it: a checkout to pay, or why there is none. */
export type CustomerScan =
  | { status: 'ready'; checkoutId: string; totalMinor: number; externalReference: string; channel: 'own' | 'pos' }
  | { status: 'none'; why: string };

export interface NetFaultOptions {
  faultRate: number;
  maxDelayMs: number;
  weights?: Partial<Record<NetFault, number>>;
}

export interface WorldOptions {
  prng: Prng;
  model?: PaymentModel;
  generation?: 'v1' | 'v2';
  /** fault proxies on agent<->relay, relay->Mercado Pago and Mercado Pago->relay */
  net?: NetFaultOptions;
  /** the agent's payment deadline */
  deadlineSeconds?: number;
  contingencyAfterSeconds?: number;
  dispenserFault?: SimFault;
  stock?: number;
}

export interface Exit {
  code: number | null;
  signal: NodeJS.Signals | null;
}

interface Proc {
  child: ChildProcess;
  exited: Promise<Exit>;
}

export type AgentOrderRow = { id: string; slot: number; sku: string; amount: number; state: string; payment_id: string | null; result: string | null; qr?: string | null };
export type RelayOrderRow = { id: string; state: string; amount: number; payment_ids: string; vend_result: string | null; needs_review: string | null };

export class World {
  relayProc: Proc | undefined;
  agentProc: Proc | undefined;
  /** agent and relay restarts after a crash */
  restarts = { agent: 0, relay: 0 };
  private readonly relayLog: WriteStream;
  private readonly agentLog: WriteStream;

  private constructor(
    readonly o: WorldOptions & { model: PaymentModel },
    readonly dir: string,
    readonly sandbox: Sandbox,
    readonly relayPort: number,
    readonly proxies: { agentLink?: FaultProxy; mpApi?: FaultProxy; mpToRelay?: FaultProxy },
    readonly posQr: string,
    readonly token: string,
    readonly channel: ScanChannel,
  ) {
    this.relayLog = createWriteStream(join(dir, 'relay.log'), { flags: 'a' });
    this.agentLog = createWriteStream(join(dir, 'agent.log'), { flags: 'a' });
  }

  static async start(opts: WorldOptions): Promise<World> {
    const model = opts.model ?? 'unattended';
    const variant = VARIANTS.find((v) => v.label === model);
    if (!variant) throw new Error(`payment model "${model}" is not supported by the torture harness; known: ${PAYMENT_MODELS.join(', ')}`);
    const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-torture-'));
    const sandbox = await startSandbox({
      accessToken: ACCESS_TOKEN,
      collectorId: COLLECTOR_ID,
      currency: 'ARS',
      webhookSecret: WEBHOOK_SECRET,
      pollIntervalMs: 50,
      pollGiveUpMs: 4000,
      httpTimeoutMs: 3000,
      logger: pino({ level: 'silent' }),
    });
    const relayPort = await freeLoopbackPort();
    const proxies: World['proxies'] = {};
    if (opts.net) {
      const mk = (name: string, port: number) =>
        FaultProxy.start({ name, target: { host: '127.0.0.1', port }, prng: opts.prng, ...opts.net! });
      proxies.agentLink = await mk('agent-relay', relayPort);
      proxies.mpApi = await mk('relay-mp', Number(new URL(sandbox.url).port));
      proxies.mpToRelay = await mk('mp-relay', relayPort);
    }
    const publicUrl = `http://127.0.0.1:${proxies.mpToRelay?.port ?? relayPort}`;
    const storePath = join(dir, 'relay.sqlite');
    const config = {
      listen: { host: '127.0.0.1', port: relayPort },
      publicUrl,
      store: { path: storePath },
      mercadopago: {
        baseUrl: proxies.mpApi ? `http://127.0.0.1:${proxies.mpApi.port}` : sandbox.url,
        accessToken: ACCESS_TOKEN,
        collectorId: COLLECTOR_ID,
        webhookSecret: WEBHOOK_SECRET,
      },
      catalog: CATALOG,
      orders: {
        maxPaymentSeconds: 120,
        contingencyAfterSeconds: opts.contingencyAfterSeconds ?? 3,
        contingencyIntervalSeconds: 1,
        latePaymentWatchMinutes: 30,
      },
      hub: { pingIntervalSeconds: 2 },
    };
    writeFileSync(join(dir, 'relay.yaml'), JSON.stringify(config, null, 2)); // JSON is YAML

    // Mercado Pago sends Orders API webhooks, and notifications of a QR that names no url (an
    // offline QR), to the url set in the seller's panel: this relay's, through the proxy if any
    await sandbox.configure({ ordersWebhookUrl: `${publicUrl}/mp/notifications`, panelNotificationUrl: `${publicUrl}/mp/notifications` });

    // `qrkiosk relay kiosk add --model …` + `qrkiosk relay provision`, before the relay process
    // starts: the relay's own provisioning, so each model gets the store and POS it needs
    const store = await openRelayStore(storePath);
    let token: string;
    let posQr: string;
    try {
      const added = await store.addKiosk({ id: KIOSK_ID, posExternalId: 'KIOSKT1', generation: opts.generation ?? 'v2', model: variant.model, modelMode: variant.mode });
      token = added.token;
      const mp = new MercadoPagoClient({ baseUrl: sandbox.url, accessToken: ACCESS_TOKEN });
      await provisionKiosk(mp, parseRelayConfig({ ...config, catalog: CATALOG.map((c) => ({ ...c })) }, {}), store, added.kiosk, { storeExternalId: 'TORTURESTORE', storeName: 'torture store' });
      posQr = (await store.getKiosk(KIOSK_ID))!.posQr!;
    } finally {
      await store.close();
    }
    const w = new World({ ...opts, model }, dir, sandbox, relayPort, proxies, posQr, token, scanChannel(variant.model, variant.mode));
    w.writeAgentConfig();
    return w;
  }

  get relayDbPath(): string {
    return join(this.dir, 'relay.sqlite');
  }
  get agentDbPath(): string {
    return join(this.dir, 'agent.sqlite');
  }
  get socket(): string {
    return join(this.dir, 'agent.sock');
  }
  get pulseLogPath(): string {
    return join(this.dir, 'pulses.jsonl');
  }

  private writeAgentConfig(): void {
    const port = this.proxies.agentLink?.port ?? this.relayPort;
    writeFileSync(
      join(this.dir, 'agent.yaml'),
      `kioskId: ${KIOSK_ID}
relay:
  url: ws://127.0.0.1:${port}/v1/kiosk
  token: ${this.token}
  backoff: { baseMs: 50, capMs: 500 }
  pingIntervalSeconds: 1
journal: { path: ${this.agentDbPath} }
control: { socket: ${this.socket} }
payment: { deadlineSeconds: ${this.o.deadlineSeconds ?? 60} }
locale: es
slots:
  - { slot: 1, sku: COLA, stock: ${this.o.stock ?? 100000} }
  - { slot: 2, sku: AGUA, stock: ${this.o.stock ?? 100000} }
hardware:
  buttons: { driver: none }
  display: { driver: none }
  dispenser:
    driver: sim
    pulseMs: 20
    dropWindowMs: 300
    maxPulses: 2
    sim: { fault: ${this.o.dispenserFault ?? 'none'}, dropDelayMs: 10, pulseLog: ${this.pulseLogPath} }
`,
    );
  }

  /**
   * Arms (or with no point, disarms) a crash point in the running or next relay/agent process:
   * it SIGKILLs itself when it reaches it (src/runtime/crash-hook.ts). `label` makes the same
   * point armed again count from zero.
   */
  armCrash(part: 'relay' | 'agent', point: string | undefined, label = ''): void {
    writeFileSync(join(this.dir, `${part}.crash`), point ? `${point} ${label}\n` : '');
  }

  private spawnCli(args: string[], log: WriteStream, crashAfter: string | undefined): Proc {
    const env: NodeJS.ProcessEnv = { ...process.env, QRKIOSK_RUN_SOURCES: '1', QRKIOSK_LOG_LEVEL: 'info' };
    delete env.QRKIOSK_CRASH_AFTER;
    env.QRKIOSK_CRASH_FILE = join(this.dir, `${args[0]}.crash`);
    if (crashAfter) env.QRKIOSK_CRASH_AFTER = crashAfter;
    const child = spawn(process.execPath, [CLI, ...args], { cwd: ROOT, env, stdio: ['ignore', 'pipe', 'pipe'] });
    log.write(`--- start ${args[0]} pid ${child.pid}${crashAfter ? ` crash after ${crashAfter}` : ''}\n`);
    child.stdout!.pipe(log, { end: false });
    child.stderr!.pipe(log, { end: false });
    const exited = new Promise<Exit>((res) => child.once('exit', (code, signal) => res({ code, signal })));
    return { child, exited };
  }

  relayAlive(): boolean {
    return alive(this.relayProc);
  }
  agentAlive(): boolean {
    return alive(this.agentProc);
  }

  /** Starts the relay process; resolves when it answers /healthz, or 'died' if it died first (a crash point at start-up). */
  async startRelay(crashAfter?: string): Promise<'up' | 'died'> {
    if (this.relayAlive()) throw new Error('the relay is already running');
    const p = this.spawnCli(['relay', '--config', join(this.dir, 'relay.yaml')], this.relayLog, crashAfter);
    this.relayProc = p;
    return untilUp(p, async () => {
      const r = await fetch(`http://127.0.0.1:${this.relayPort}/healthz`, { signal: AbortSignal.timeout(1000) });
      return r.ok;
    });
  }

  /** Starts the agent process; resolves when its control socket answers, or 'died'. */
  async startAgent(crashAfter?: string): Promise<'up' | 'died'> {
    if (this.agentAlive()) throw new Error('the agent is already running');
    const p = this.spawnCli(['agent', '--config', join(this.dir, 'agent.yaml')], this.agentLog, crashAfter);
    this.agentProc = p;
    return untilUp(p, async () => {
      if (!existsSync(this.socket)) return false;
      await controlRequest(this.socket, 'status');
      return true;
    });
  }

  async killRelay(): Promise<void> {
    await kill(this.relayProc, 'SIGKILL');
  }
  async killAgent(): Promise<void> {
    await kill(this.agentProc, 'SIGKILL');
  }

  /** The agent online with the relay's welcome (so a button press is accepted). */
  async agentOnline(): Promise<boolean> {
    if (!this.agentAlive()) return false;
    try {
      const s = (await controlRequest(this.socket, 'status')) as { relay: { online: boolean; lastWelcomeAt?: number | null }; state: string };
      return s.relay.online && !!s.relay.lastWelcomeAt && s.state === 'idle';
    } catch {
      return false;
    }
  }

  /** the order the kiosk is waiting to be paid for, if any (e.g. resumed after a restart) */
  async openOrder(): Promise<string | undefined> {
    if (!this.agentAlive()) return undefined;
    try {
      const s = (await controlRequest(this.socket, 'status')) as { relay: { online: boolean }; order?: { orderId: string; state: string } | null };
      return s.relay.online && s.order?.state === 'awaiting_payment' ? s.order.orderId : undefined;
    } catch {
      return undefined;
    }
  }

  async select(slot: number): Promise<{ ok: boolean; orderId?: string; reason?: string }> {
    return (await controlRequest(this.socket, 'select', { slot })) as { ok: boolean; orderId?: string; reason?: string };
  }

  async cancel(): Promise<void> {
    await controlRequest(this.socket, 'cancel').catch(() => undefined);
  }

  /**
   * The customer scans what the kiosk shows, as the payment model wants it, and gets a checkout
   * for this order or nothing (then walks away). Unattended: the POS sticker, Mercado Pago's app
   * polls the POS url until it has the order or gives up. Other models: the customer waits until
   * the order is payable at Mercado Pago (the relay's offer is made: `offered`, or `local` for
   * an offline QR) and, for a QR of its own, on the kiosk's screen; then scans it (or, hybrid, the
   * sticker; the seed picks). A scan that finds another order (a stale one left on the POS) or
   * nothing is tried again until `giveUpMs`. `wait` runs between tries (the suite's keep-up).
   */
  async scan(orderId: string, o: { prng: Prng; wait?: () => Promise<void>; giveUpMs?: number }): Promise<CustomerScan> {
    const channel = this.channel === 'either' ? o.prng.pick(['own', 'pos'] as const) : this.channel;
    if (this.o.model === 'unattended') {
      const r = await this.sandbox.scan({ qr: this.posQr, giveUpMs: o.giveUpMs ?? 4000 });
      return r.status === 'ready' ? { status: 'ready', checkoutId: r.checkoutId, totalMinor: r.totalMinor, externalReference: r.externalReference, channel } : { status: 'none', why: r.status };
    }
    const end = Date.now() + (o.giveUpMs ?? 15_000);
    let why = 'the order never became payable';
    for (;;) {
      await o.wait?.();
      const offer = this.relayOfferState(orderId);
      const shown = this.agentOrders().find((x) => x.id === orderId)?.qr ?? null;
      if (offer === 'offered' || offer === 'local') {
        const qr = channel === 'pos' ? this.posQr : shown;
        if (qr) {
          const r: ScanResult | { status: 'refused'; reason: string } = await this.sandbox.scan({ qr, maxPolls: 1 }).catch((err: unknown) => {
            if (err instanceof SandboxError) return { status: 'refused' as const, reason: `${err.code}: ${err.message}` };
            throw err;
          });
          if (r.status === 'ready' && r.externalReference === orderId) {
            return { status: 'ready', checkoutId: r.checkoutId, totalMinor: r.totalMinor, externalReference: orderId, channel };
          }
          why = r.status === 'ready' ? `the ${channel} QR showed another order (${r.externalReference})` : `the ${channel} QR: ${scanWhy(r)}`;
        } else why = 'the kiosk does not show the order\'s QR';
      } else if (offer && offer !== 'due') return { status: 'none', why: `the order is ${offer} at Mercado Pago` };
      if (Date.now() > end) return { status: 'none', why };
      await new Promise((r) => setTimeout(r, 50));
    }
  }

  /**
   * Pays a scanned checkout. Mercado Pago's app refuses to pay an order that was withdrawn after
   * the scan (deleted, cancelled, paid through the other channel): that is answered as `refused`,
   * the customer was not charged. `race` makes the payment land anyway, as when the withdrawal and
   * the payment cross (a payment after the kiosk gave up, a second phone paying at once).
   */
  async pay(o: { checkoutId: string; outcome?: 'approved' | 'rejected'; amountMinor?: number; notify: Parameters<Sandbox['pay']>[0]['notify']; race?: boolean }): Promise<'paid' | 'refused'> {
    try {
      await this.sandbox.pay({
        checkoutId: o.checkoutId,
        ...(o.outcome ? { outcome: o.outcome } : {}),
        ...(o.amountMinor !== undefined ? { amountMinor: o.amountMinor } : {}),
        ...(o.notify !== undefined ? { notify: o.notify } : {}),
        ...(o.race ? { landAfterCancel: true } : {}),
      });
      return 'paid';
    } catch (err) {
      if (err instanceof SandboxError && err.code === 'order_not_payable') return 'refused';
      throw err;
    }
  }

  /**
   * The emulator's ledger, the ground truth of money: every payment (merchant-order payments and
   * the Orders API's transactions, the latter in the same shape: approved when money was taken,
   * refunded once given back) and every refund.
   */
  async ledger(): Promise<{ payments: MpPayment[]; refunds: RefundRecord[] }> {
    const payments = await this.sandbox.payments();
    for (const order of await this.sandbox.orders()) {
      for (const t of order.transactions?.payments ?? []) {
        const paid = Math.round(Number(t.paid_amount ?? '0') * 100);
        const status = t.status === 'refunded' ? 'refunded' : paid > 0 ? 'approved' : t.status === 'failed' ? 'rejected' : 'pending';
        payments.push({ id: t.id, status, external_reference: order.external_reference, transaction_amount: paid / 100, currency_id: order.currency } as unknown as MpPayment);
      }
    }
    return { payments, refunds: await this.sandbox.refunds() };
  }

  pulses(): Array<{ slot: number; pulse: number; pid: number }> {
    return existsSync(this.pulseLogPath) ? readPulseLog(readFileSync(this.pulseLogPath, 'utf8')) : [];
  }

  // Read-only looks at the two databases, as an auditor would: through SQL on the files, not
  // through the code under test (which could share the bug being looked for).
  agentOrders(): AgentOrderRow[] {
    return readDb(this.agentDbPath, (db) => db.prepare('SELECT id, slot, sku, amount, state, payment_id, result, qr FROM orders ORDER BY created_at').all() as AgentOrderRow[], []);
  }
  agentOutbox(): number {
    return readDb(this.agentDbPath, (db) => (db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n, 0);
  }
  relayOrder(id: string): RelayOrderRow | undefined {
    return readDb(this.relayDbPath, (db) => db.prepare('SELECT id, state, amount, payment_ids, vend_result, needs_review FROM orders WHERE id = ?').get(id) as RelayOrderRow | undefined, undefined);
  }
  /** where the order stands at Mercado Pago (core/mp-offer.ts) */
  relayOfferState(id: string): string | undefined {
    return readDb(this.relayDbPath, (db) => (db.prepare('SELECT offer_state FROM orders WHERE id = ?').get(id) as { offer_state: string } | undefined)?.offer_state, undefined);
  }
  relayOrders(): RelayOrderRow[] {
    return readDb(this.relayDbPath, (db) => db.prepare('SELECT id, state, amount, payment_ids, vend_result, needs_review FROM orders').all() as RelayOrderRow[], []);
  }
  /** work the relay still has to do: outbox frames, refunds not answered, notifications not processed */
  relayBacklog(): { outbox: number; refunds: number; notifications: number } {
    return readDb(
      this.relayDbPath,
      (db) => ({
        outbox: (db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n,
        refunds: (db.prepare(`SELECT COUNT(*) AS n FROM refunds WHERE status = 'requested'`).get() as { n: number }).n,
        notifications: (db.prepare('SELECT COUNT(*) AS n FROM notifications WHERE processed_at IS NULL').get() as { n: number }).n,
      }),
      { outbox: -1, refunds: -1, notifications: -1 },
    );
  }
  relayRefundRows(): Array<{ order_id: string; payment_id: string; status: string; reason: string }> {
    return readDb(this.relayDbPath, (db) => db.prepare('SELECT order_id, payment_id, status, reason FROM refunds').all() as Array<{ order_id: string; payment_id: string; status: string; reason: string }>, []);
  }

  netFaults(): number {
    return Object.values(this.proxies).reduce((s, p) => s + (p?.faultCount ?? 0), 0);
  }
  healNetwork(): void {
    for (const p of Object.values(this.proxies)) p?.heal();
  }
  harmNetwork(): void {
    for (const p of Object.values(this.proxies)) p?.harm();
  }

  async close(keep = false): Promise<void> {
    await Promise.all([this.killAgent(), this.killRelay()]);
    for (const p of Object.values(this.proxies)) await p?.close();
    await this.sandbox.close();
    this.relayLog.end();
    this.agentLog.end();
    if (!keep) rmSync(this.dir, { recursive: true, force: true });
  }
}

function scanWhy(r: { status: string; reason?: string; error?: string }): string {
  return [r.status, r.reason ?? r.error].filter(Boolean).join(': ');
}

function alive(p: Proc | undefined): boolean {
  return !!p && p.child.exitCode === null && p.child.signalCode === null;
}

async function kill(p: Proc | undefined, signal: NodeJS.Signals): Promise<void> {
  if (p && alive(p)) {
    p.child.kill(signal);
    await p.exited;
  }
}

// 120 s: a long run started with `nice` on a shared machine at load 18 once needed more than 30 s
// to start a process, and the suite died without its report. A process that never comes up still
// ends the run with this error.
async function untilUp(p: Proc, probe: () => Promise<boolean>, timeoutMs = 120_000): Promise<'up' | 'died'> {
  const until = Date.now() + timeoutMs;
  let died = false;
  void p.exited.then(() => (died = true));
  for (;;) {
    if (died) return 'died';
    if (await probe().catch(() => false)) return 'up';
    if (Date.now() > until) throw new Error(`process ${p.child.pid} did not come up within ${timeoutMs} ms`);
    await new Promise((r) => setTimeout(r, 25));
  }
}

function readDb<T>(path: string, fn: (db: Database.Database) => T, missing: T): T {
  if (!existsSync(path)) return missing;
  const db = new Database(path, { readonly: true, fileMustExist: true, timeout: 5000 });
  try {
    return fn(db);
  } finally {
    db.close();
  }
}
