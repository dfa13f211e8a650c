import Database from 'better-sqlite3';
import { spawn, type ChildProcess } from 'node:child_process';
import { createWriteStream, existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync, type WriteStream } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { controlRequest } from '../../src/agent/control.js';
import { readPulseLog, type SimFault } from '../../src/devices/dispenser.js';
import { MercadoPagoClient } from '../../src/mercadopago/client.js';
import { openRelayStore, posUrl } from '../../src/relay/store/index.js';
import { freeLoopbackPort } from '../../src/runtime/net.js';
import { startSandbox, type Sandbox } from '../../src/sandbox/index.js';
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
 * How the customer pays. Only `unattended` (the POS's static QR, Mercado Pago polls the POS url)
 * exists in the relay today; the lead adds the others (issue 7). A suite takes the model as a
 * parameter and the customer's scan is the only step that differs.
 */
export type PaymentModel = 'unattended';
export const PAYMENT_MODELS: readonly PaymentModel[] = ['unattended'];

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

export type AgentOrderRow = { id: string; slot: number; sku: string; amount: number; state: string; payment_id: string | null; result: string | null };
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
  ) {
    this.relayLog = createWriteStream(join(dir, 'relay.log'), { flags: 'a' });
    this.agentLog = createWriteStream(join(dir, 'agent.log'), { flags: 'a' });
  }

  static async start(opts: WorldOptions): Promise<World> {
    const model = opts.model ?? 'unattended';
    if (!PAYMENT_MODELS.includes(model)) throw new Error(`payment model "${model}" is not supported by the torture harness; known: ${PAYMENT_MODELS.join(', ')}`);
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

    // `qrkiosk relay kiosk add` + `qrkiosk relay provision`, before the relay process starts
    const store = await openRelayStore(storePath);
    let token: string;
    let posQr: string;
    try {
      const added = await store.addKiosk({ id: KIOSK_ID, posExternalId: 'KIOSKT1', generation: opts.generation ?? 'v2' });
      token = added.token;
      const mp = new MercadoPagoClient({ baseUrl: sandbox.url, accessToken: ACCESS_TOKEN });
      await mp.createStore(COLLECTOR_ID, { name: 'torture store', external_id: 'TORTURESTORE' });
      const pos = await mp.createPos({ name: KIOSK_ID, fixed_amount: true, external_store_id: 'TORTURESTORE', external_id: 'KIOSKT1', url: posUrl(publicUrl, added.kiosk) });
      posQr = pos.qr_code!;
      await store.setKioskPosQr(KIOSK_ID, posQr);
    } finally {
      await store.close();
    }
    const w = new World({ ...opts, model }, dir, sandbox, relayPort, proxies, posQr, token);
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

  /** The customer scans what the kiosk shows, as the payment model wants it. */
  async scan(giveUpMs = 4000) {
    switch (this.o.model) {
      case 'unattended':
        return this.sandbox.scan({ qr: this.posQr, giveUpMs });
    }
  }

  pulses(): Array<{ slot: number; pulse: number; pid: number }> {
    return existsSync(this.pulseLogPath) ? readPulseLog(readFileSync(this.pulseLogPath, 'utf8')) : [];
  }

  // Read-only looks at the two databases, as an auditor would: through SQL on the files, not
  // through the code under test (which could share the bug being looked for).
  agentOrders(): AgentOrderRow[] {
    return readDb(this.agentDbPath, (db) => db.prepare('SELECT id, slot, sku, amount, state, payment_id, result FROM orders ORDER BY created_at').all() as AgentOrderRow[], []);
  }
  agentOutbox(): number {
    return readDb(this.agentDbPath, (db) => (db.prepare('SELECT COUNT(*) AS n FROM outbox').get() as { n: number }).n, 0);
  }
  relayOrder(id: string): RelayOrderRow | undefined {
    return readDb(this.relayDbPath, (db) => db.prepare('SELECT id, state, amount, payment_ids, vend_result, needs_review FROM orders WHERE id = ?').get(id) as RelayOrderRow | undefined, undefined);
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

function alive(p: Proc | undefined): boolean {
  return !!p && p.child.exitCode === null && p.child.signalCode === null;
}

async function kill(p: Proc | undefined, signal: NodeJS.Signals): Promise<void> {
  if (p && alive(p)) {
    p.child.kill(signal);
    await p.exited;
  }
}

async function untilUp(p: Proc, probe: () => Promise<boolean>, timeoutMs = 30_000): Promise<'up' | 'died'> {
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
