import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { pino } from 'pino';
import { controlRequest } from '../../src/agent/control.js';
import type { JournalEntry } from '../../src/agent/journal.js';
import type { AgentStatus } from '../../src/agent/agent.js';
import { readPulseLog, type SimFault } from '../../src/devices/dispenser.js';
import { startLocalStack } from '../../src/cli/local-stack.js';
import type { RelayConfig } from '../../src/relay/config.js';
import { startRelay, type RunningRelay } from '../../src/relay/server.js';
import type { Sandbox } from '../../src/sandbox/index.js';
import { TcpProxy } from './tcp-proxy.js';
import type { PaymentModelName } from '../../src/protocol/messages.js';
import { modelVariants } from '../../src/relay/models/modes.js';
import type { ScanResult } from '../../src/sandbox/types.js';
import { waitFor } from './wait.js';
import { createTestDatabase, type TestDatabase } from './pg.js';
import type { StoreKind } from './relay-stores.js';

// The whole product on loopback, as in the field: the Mercado Pago emulator and the relay run in
// this process (real HTTP/WebSocket servers, real SQLite files), the agent runs as a separate
// node process started by the real CLI, so it can be SIGKILLed and restarted on the same journal.

const ROOT = resolve(import.meta.dirname, '..', '..');
export const ACCESS_TOKEN = 'TEST-e2e-token';
export const COLLECTOR_ID = 987654321;
export const WEBHOOK_SECRET = 'e2e-webhook-secret';
export const PRICES = { COLA: 150000, AGUA: 90000 } as const;

/** A kiosk's payment model as the tests name it: "unattended", "orders/dynamic", "attended/mpmobile"... */
export type ModelVariant = string;

/** Every model and mode the spine runs in (issue: every model end to end). */
export const MODEL_VARIANTS: readonly { label: string; model: PaymentModelName; mode: string | null; generation?: 'v1' | 'v2' }[] = modelVariants().flatMap((v) =>
  // the unattended model's two answer generations are two ways of selling
  v.model === 'unattended' ? (['v1', 'v2'] as const).map((generation) => ({ ...v, label: `unattended ${generation}`, generation })) : [v],
);

/**
 * Whether Mercado Pago can be told to stop taking payments for an order of this model. It cannot
 * for a dynamic QR made with POST …/qrs (no delete: it expires at the order's deadline) nor for an
 * offline QR (Mercado Pago never heard of it): a payment on either after a cancel is refunded.
 */
export function withdrawable(v: { model: PaymentModelName; mode: string | null }): boolean {
  return !(v.model === 'dynamic' && (v.mode === 'online' || v.mode === 'offline'));
}

export interface SystemOptions {
  generation?: 'v1' | 'v2';
  /** the kiosk's payment model (default unattended) and mode */
  model?: PaymentModelName;
  modelMode?: string | null;
  fault?: SimFault;
  deadlineSeconds?: number;
  maxPaymentSeconds?: number;
  /**
   * the relay's store: a SQLite file (default) or a fresh PostgreSQL database of its own, dropped
   * at close (QRKIOSK_TEST_STORE=postgres makes that the default)
   */
  store?: StoreKind;
  /** put a cuttable TCP proxy between agent and relay */
  proxy?: boolean;
  /** env for the agent process (QRKIOSK_CRASH_AFTER ...) */
  agentEnv?: Record<string, string>;
  contingencyAfterSeconds?: number;
  /** the relay's orders.uncertainVendPolicy (default refund) */
  uncertainVendPolicy?: 'refund' | 'review';
  /** more relay.yaml sections (notify, alerts, ...) */
  relayExtra?: Parameters<typeof startLocalStack>[0]['relayExtra'];
  /** the agent's hardware section as YAML lines (indented two spaces), instead of the simulated one */
  hardwareYaml?: string;
  /** relay.commandKey of agent.yaml: default the relay's own key (as provisioned); null leaves it out */
  commandKey?: string | null;
}

export interface RelayLogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export class KioskSystem {
  agent: ChildProcess | undefined;
  agentOutput = '';
  private agentExit: Promise<{ code: number | null; signal: NodeJS.Signals | null }> | undefined;

  private constructor(
    readonly dir: string,
    readonly sandbox: Sandbox,
    public relay: RunningRelay,
    readonly posQr: string,
    readonly token: string,
    readonly proxy: TcpProxy | undefined,
    readonly opts: SystemOptions,
    private readonly relayConfig: RelayConfig,
    readonly relayLog: RelayLogLine[],
    private readonly database: TestDatabase | undefined,
  ) {}

  static async start(opts: SystemOptions = {}): Promise<KioskSystem> {
    const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-e2e-'));
    const relayLog: RelayLogLine[] = [];
    const kind: StoreKind = opts.store ?? (process.env.QRKIOSK_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite');
    const database = kind === 'postgres' ? await createTestDatabase() : undefined;
    const stack = await startLocalStack({
      dir,
      ...(database ? { storeUrl: database.url } : {}),
      accessToken: ACCESS_TOKEN,
      collectorId: COLLECTOR_ID,
      currency: 'ARS',
      webhookSecret: WEBHOOK_SECRET,
      catalog: [
        { sku: 'COLA', name: 'Cola 350 ml', price: '1500.00', currency: 'ARS' },
        { sku: 'AGUA', name: 'Agua 500 ml', price: '900.00', currency: 'ARS' },
      ],
      orders: {
        maxPaymentSeconds: opts.maxPaymentSeconds ?? 120,
        contingencyAfterSeconds: opts.contingencyAfterSeconds ?? 600,
        ...(opts.uncertainVendPolicy ? { uncertainVendPolicy: opts.uncertainVendPolicy } : {}),
      },
      kiosk: {
        id: 'kiosk-e2e',
        posExternalId: 'KIOSKE2E',
        generation: opts.generation ?? 'v2',
        storeExternalId: 'E2ESTORE',
        ...(opts.model ? { model: opts.model } : {}),
        ...(opts.modelMode !== undefined ? { modelMode: opts.modelMode } : {}),
      },
      pollIntervalMs: 50,
      pollGiveUpMs: 3000,
      ...(opts.relayExtra ? { relayExtra: opts.relayExtra } : {}),
      sandboxLogger: pino({ level: 'silent' }),
      relayLogger: captureLogger(relayLog),
    }).catch(async (err: unknown) => {
      await database?.drop(); // the relay did not start: its database is not needed
      throw err;
    });
    const { sandbox, relay, relayConfig } = stack;
    const port = relayConfig.listen.port;
    const proxy = opts.proxy ? await TcpProxy.start({ host: '127.0.0.1', port }) : undefined;
    const sys = new KioskSystem(dir, sandbox, relay, stack.posQr, stack.token, proxy, opts, relayConfig, relayLog, database);
    sys.writeAgentConfig();
    return sys;
  }

  get socket(): string {
    return join(this.dir, 'agent.sock');
  }

  get pulseLogPath(): string {
    return join(this.dir, 'pulses.jsonl');
  }

  writeAgentConfig(): void {
    const relayPort = this.proxy ? this.proxy.port : new URL(this.relay.url).port;
    const yaml = `# written by the e2e harness
kioskId: kiosk-e2e
relay:
  url: ws://127.0.0.1:${relayPort}/v1/kiosk
  token: ${this.token}
${this.opts.commandKey === null ? '' : `  commandKey: ${this.opts.commandKey ?? this.relay.console.signer.publicKeyText}\n`}  backoff: { baseMs: 50, capMs: 400 }
  pingIntervalSeconds: 5
journal:
  path: ${join(this.dir, 'agent.sqlite')}
control:
  socket: ${this.socket}
payment:
  deadlineSeconds: ${this.opts.deadlineSeconds ?? 60}
locale: es
slots:
  - { slot: 1, sku: COLA, stock: 10 }
  - { slot: 2, sku: AGUA, stock: 10 }
hardware:
${
  this.opts.hardwareYaml ??
  `  buttons: { driver: none }
  display: { driver: log }
  dispenser:
    driver: sim
    pulseMs: 60
    dropWindowMs: 400
    maxPulses: 2
    sim: { fault: ${this.opts.fault ?? 'none'}, dropDelayMs: 30, pulseLog: ${this.pulseLogPath} }`
}
`;
    writeFileSync(join(this.dir, 'agent.yaml'), yaml);
  }

  /** Starts the agent process through the real CLI and waits until it holds the relay's welcome. */
  async startAgent(env: Record<string, string> = this.opts.agentEnv ?? {}): Promise<void> {
    this.agentOutput = '';
    const child = spawn(process.execPath, [join(ROOT, 'bin', 'qrkiosk.js'), 'agent', '--config', join(this.dir, 'agent.yaml')], {
      cwd: ROOT,
      env: { ...process.env, QRKIOSK_LOG_LEVEL: 'debug', ...env },
      stdio: ['ignore', 'pipe', 'pipe'],
    });
    child.stdout!.on('data', (d: Buffer) => (this.agentOutput += d.toString()));
    child.stderr!.on('data', (d: Buffer) => (this.agentOutput += d.toString()));
    this.agent = child;
    this.agentExit = new Promise((resolve) => child.once('exit', (code, signal) => resolve({ code, signal })));
    await waitFor(
      'the agent to connect to the relay',
      async () => {
        if (child.exitCode !== null || child.signalCode !== null) throw new Error(`agent exited: ${this.agentOutput.slice(-2000)}`);
        if (!existsSync(this.socket)) return false;
        const s = await this.status().catch(() => undefined);
        return s?.relay.online && s.relay.lastWelcomeAt ? s : false;
      },
      20_000,
    );
  }

  /** Resolves when the agent process has ended (e.g. SIGKILLed itself at a crash point). */
  async agentEnded(): Promise<{ code: number | null; signal: NodeJS.Signals | null }> {
    return this.agentExit!;
  }

  async killAgent(): Promise<void> {
    if (this.agent && this.agent.exitCode === null && this.agent.signalCode === null) {
      this.agent.kill('SIGKILL');
      await this.agentExit;
    }
  }

  async stopAgent(): Promise<void> {
    if (this.agent && this.agent.exitCode === null && this.agent.signalCode === null) {
      this.agent.kill('SIGTERM');
      await this.agentExit;
    }
  }

  status(): Promise<AgentStatus> {
    return controlRequest(this.socket, 'status') as Promise<AgentStatus>;
  }

  async select(slot: number): Promise<{ ok: boolean; orderId?: string; reason?: string }> {
    return (await controlRequest(this.socket, 'select', { slot })) as { ok: boolean; orderId?: string; reason?: string };
  }

  async agentCancel(): Promise<unknown> {
    return controlRequest(this.socket, 'cancel');
  }

  async journal(limit = 20): Promise<JournalEntry[]> {
    return (await controlRequest(this.socket, 'journal', { limit })) as JournalEntry[];
  }

  /** The agent's journal row for an order, read through the control socket. */
  async agentOrder(orderId: string): Promise<JournalEntry | undefined> {
    return (await this.journal(50)).find((o) => o.id === orderId);
  }

  async waitAgentState(orderId: string, state: string | string[], timeoutMs = 15_000): Promise<JournalEntry> {
    const states = Array.isArray(state) ? state : [state];
    return waitFor(`agent order ${orderId} in ${states.join('/')}`, async () => {
      const o = await this.agentOrder(orderId);
      return o && states.includes(o.state) ? o : undefined;
    }, timeoutMs);
  }

  async waitRelayState(orderId: string, state: string, timeoutMs = 15_000) {
    return waitFor(`relay order ${orderId} in ${state}`, async () => {
      const o = await this.relay.store.getOrder(orderId);
      return o?.state === state ? o : undefined;
    }, timeoutMs);
  }

  /** Lines the simulated motor wrote: one per pulse, across agent restarts. */
  pulses(): Array<{ slot: number; pulse: number; pid: number }> {
    return existsSync(this.pulseLogPath) ? readPulseLog(readFileSync(this.pulseLogPath, 'utf8')) : [];
  }

  relayLogMatching(re: RegExp): RelayLogLine[] {
    return this.relayLog.filter((l) => re.test(l.msg) || re.test(JSON.stringify(l)));
  }

  /**
   * The customer scans what the kiosk shows for its open order: the order's own QR when the model
   * gives one, else the POS sticker. Waits until the order is payable at Mercado Pago first, as a
   * customer waits for the QR to appear. Answers the sandbox's `ready` scan.
   */
  async customerScans(orderId?: string) {
    const id = orderId ?? (await this.status()).order?.orderId;
    if (!id) throw new Error('no open order on the kiosk to scan');
    const qr = await this.shownQr(id);
    const scan = await this.sandbox.scan({ qr });
    if (scan.status !== 'ready') throw new Error(`scan was ${scan.status}: ${JSON.stringify(scan)}`);
    return scan;
  }

  /** The QR the kiosk shows for the order, once the order is payable at Mercado Pago. */
  async shownQr(orderId: string): Promise<string> {
    await waitFor(`order ${orderId} payable at Mercado Pago`, async () => {
      const o = await this.relay.store.getOrder(orderId);
      return o && (o.offerState === 'offered' || o.offerState === 'local');
    });
    const own = (await this.relay.store.getOrder(orderId))!.qr;
    if (!own) return this.posQr;
    // what the agent shows: the relay sent it in order.accepted
    const shown = await waitFor(`the kiosk showing order ${orderId}'s QR`, async () => (await this.agentOrder(orderId))?.qr ?? undefined);
    return shown;
  }

  /** Scans the same QR again: after a cancel, nothing may be payable on it. */
  async scanAgain(orderId: string): Promise<ScanResult> {
    const o = (await this.relay.store.getOrder(orderId))!;
    return this.sandbox.scan({ qr: o.qr ?? this.posQr, maxPolls: 2 });
  }

  /** Whether Mercado Pago (the emulator) still holds something payable for our order. */
  async payableAtMercadoPago(orderId: string): Promise<string[]> {
    const open: string[] = [];
    for (const o of await this.sandbox.orders()) if (o.external_reference === orderId && o.status === 'created') open.push(`Orders API order ${o.id}`);
    for (const o of await this.sandbox.instoreOrders()) if (o.externalReference === orderId && o.state === 'open') open.push(`instore order ${o.id}`);
    return open;
  }

  /** Closes the relay and starts it again on the same database file (a relay restart). */
  async restartRelay(): Promise<void> {
    await this.relay.close();
    this.relay = await startRelay(this.relayConfig, { logger: captureLogger(this.relayLog) });
  }

  async close(): Promise<void> {
    await this.killAgent();
    await this.proxy?.close();
    await this.relay.close();
    await this.sandbox.close();
    await this.database?.drop();
    rmSync(this.dir, { recursive: true, force: true });
  }
}

function captureLogger(into: RelayLogLine[]) {
  return pino(
    { level: 'debug' },
    {
      write(line: string) {
        into.push(JSON.parse(line) as RelayLogLine);
      },
    },
  );
}

