// Shared fixtures for the relay tests: a fake Mercado Pago API (in memory, just enough behaviour
// to be adversarial: idempotent refunds, lost responses, 404s), a real `ws` kiosk client, and a
// relay started on a temp SQLite file with a hand-moved clock.

import { EventEmitter, once } from 'node:events';
import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { WebSocket } from 'ws';
import type { MercadoPagoApi, MerchantOrderSearch, MpMerchantOrder, MpPayment, MpRefund } from '../src/mercadopago/types.js';
import { createLogger } from '../src/runtime/log.js';
import { parseRelayConfig, type RelayConfig, type RelayConfigInput } from '../src/relay/config.js';
import { startRelay, type RunningRelay } from '../src/relay/server.js';
import { createTestDatabase } from './helpers/pg.js';
import type { StoreKind } from './helpers/relay-stores.js';
import { isReliable } from '../src/protocol/messages.js';

export const COLLECTOR_ID = 123456789;
export const PUBLIC_URL = 'https://relay.example.com';

class NotFound extends Error {
  override name = 'MpNotFoundError';
  readonly status = 404;
}

export type RefundMode = 'ok' | 'lose-response' | 'fail' | 'hang';

/** Shaped like the client's MpError: an HTTP answer with Mercado Pago's error body. */
export class FakeMpHttpError extends Error {
  override name = 'MpError';
  readonly body: { message: string; error: string; status: number; cause: { code: number | string; description: string }[] };
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
    description: string,
  ) {
    super(`Mercado Pago POST /v1/payments/…/refunds answered ${status} (${code}): ${message}`);
    this.body = { message, error: 'bad_request', status, cause: [{ code, description }] };
  }
}

export class FakeMp extends EventEmitter implements MercadoPagoApi {
  readonly merchantOrders = new Map<string, MpMerchantOrder>();
  readonly payments = new Map<string, MpPayment>();
  readonly refunds: MpRefund[] = [];
  readonly refundByKey = new Map<string, MpRefund>();
  readonly calls: { method: string; args: unknown[] }[] = [];
  refundMode: RefundMode = 'ok';
  /** errors the next refund calls throw, one per call, before anything else (then refundMode applies) */
  readonly refundErrors: Error[] = [];
  /** payments whose refund Mercado Pago always refuses with this error */
  readonly refusedPayments = new Map<string, Error>();
  /** while set, merchant order reads wait for it (to hold a read "in flight") */
  gate: Promise<void> | null = null;
  /** Mercado Pago's clock (date_created of what pay() makes); tests may share the relay's */
  clock: () => number = Date.now;
  private nextId = 1000;

  /**
   * The customer paid (what MP does after serving the POS order): a payment and a merchant order
   * whose external_reference is our order id. Amount is MP's decimal.
   */
  pay(
    orderId: string,
    amount: number,
    opts: { currency?: string; status?: string; moStatus?: MpMerchantOrder['status']; collectorId?: number } = {},
  ): { moId: number; paymentId: number } {
    const currency = opts.currency ?? 'ARS';
    const moId = this.nextId++;
    const paymentId = this.nextId++;
    const status = opts.status ?? 'approved';
    const payment: MpPayment = {
      id: paymentId,
      status,
      external_reference: orderId,
      transaction_amount: amount,
      currency_id: currency,
      order: { id: moId, type: 'mercadopago' },
    };
    this.payments.set(String(paymentId), payment);
    const mo: MpMerchantOrder = {
      id: moId,
      status: opts.moStatus ?? (status === 'approved' ? 'closed' : 'opened'),
      external_reference: orderId,
      collector: { id: opts.collectorId ?? COLLECTOR_ID },
      items: [],
      total_amount: amount,
      paid_amount: status === 'approved' ? amount : 0,
      refunded_amount: 0,
      payments: [{ id: paymentId, transaction_amount: amount, currency_id: currency, status }],
      date_created: new Date(this.clock()).toISOString(),
    };
    this.merchantOrders.set(String(moId), mo);
    return { moId, paymentId };
  }

  async getMerchantOrder(id: number | string): Promise<MpMerchantOrder> {
    this.calls.push({ method: 'getMerchantOrder', args: [id] });
    this.emit('mo-read', id);
    await (this.gate ?? Promise.resolve());
    const mo = this.merchantOrders.get(String(id));
    if (!mo) throw new NotFound(`merchant order ${id} not found`);
    return structuredClone(mo);
  }

  async searchMerchantOrders(query: MerchantOrderSearch) {
    this.calls.push({ method: 'searchMerchantOrders', args: [query] });
    let list = [...this.merchantOrders.values()];
    if (query.external_reference !== undefined) list = list.filter((m) => m.external_reference === query.external_reference);
    if (query.date_created_from !== undefined) list = list.filter((m) => Date.parse(m.date_created!) >= Date.parse(query.date_created_from!));
    if (query.date_created_to !== undefined) list = list.filter((m) => Date.parse(m.date_created!) <= Date.parse(query.date_created_to!));
    const offset = query.offset ?? 0;
    const page = list.slice(offset, offset + Math.min(100, query.limit ?? 30));
    return { elements: page.length ? structuredClone(page) : null, next_offset: offset + page.length, total: list.length };
  }

  async getPayment(id: number | string): Promise<MpPayment> {
    this.calls.push({ method: 'getPayment', args: [id] });
    const p = this.payments.get(String(id));
    if (!p) throw new NotFound(`payment ${id} not found`);
    return structuredClone(p);
  }

  refundCalls(): { paymentId: string; key: string }[] {
    return this.calls
      .filter((c) => c.method === 'refundPayment')
      .map((c) => ({ paymentId: String(c.args[0]), key: (c.args[1] as { idempotencyKey: string }).idempotencyKey }));
  }

  async refundPayment(paymentId: number | string, opts: { idempotencyKey: string; amount?: number }): Promise<MpRefund> {
    this.calls.push({ method: 'refundPayment', args: [paymentId, opts] });
    this.emit('refund-call', paymentId, opts.idempotencyKey);
    const queued = this.refundErrors.shift();
    if (queued) throw queued;
    const refused = this.refusedPayments.get(String(paymentId));
    if (refused) throw refused;
    if (this.refundMode === 'fail') throw new Error('connect ECONNREFUSED (fake)');
    if (this.refundMode === 'hang') return new Promise<MpRefund>(() => {});
    // Like MP: the same idempotency key returns the first refund instead of making another.
    let refund = this.refundByKey.get(opts.idempotencyKey);
    if (!refund) {
      const p = this.payments.get(String(paymentId));
      if (!p) throw new NotFound(`payment ${paymentId} not found`);
      refund = { id: this.nextId++, payment_id: Number(paymentId), amount: opts.amount ?? p.transaction_amount, status: 'approved' };
      this.refunds.push(refund);
      this.refundByKey.set(opts.idempotencyKey, refund);
      p.status = 'refunded';
      for (const mo of this.merchantOrders.values()) {
        for (const mp of mo.payments) if (mp.id === Number(paymentId)) mp.status = 'refunded';
      }
    }
    // "lose-response": MP made the refund, the answer never reached us (timeout, crash).
    if (this.refundMode === 'lose-response') throw new Error('socket hang up (fake, refund was made)');
    return structuredClone(refund);
  }

  async createStore(): Promise<never> {
    throw new Error('not used by the relay');
  }
  async createPos(): Promise<never> {
    throw new Error('not used by the relay');
  }
  async getPos(): Promise<never> {
    throw new Error('not used by the relay');
  }
  // The other payment models talk to the sandbox emulator in their tests; this fake serves the
  // unattended model's unit tests only, and says so if a test strays.
  putPosOrder = notEmulated('putPosOrder');
  deletePosOrder = notEmulated('deletePosOrder');
  postMobilePosOrder = notEmulated('postMobilePosOrder');
  deleteMobilePosOrder = notEmulated('deleteMobilePosOrder');
  createDynamicQr = notEmulated('createDynamicQr');
  createOrder = notEmulated('createOrder');
  getOrder = notEmulated('getOrder');
  cancelOrder = notEmulated('cancelOrder');
  refundOrder = notEmulated('refundOrder');
  searchOrders = notEmulated('searchOrders');
}

export interface LogLine {
  level: number;
  msg: string;
  [k: string]: unknown;
}

export function captureLogger() {
  const lines: LogLine[] = [];
  const raw: string[] = [];
  const destination = {
    write(text: string) {
      raw.push(text);
      for (const l of text.split('\n')) if (l.trim()) lines.push(JSON.parse(l) as LogLine);
    },
  };
  const logger = createLogger('relay-test', { level: 'debug', destination });
  return {
    logger,
    lines,
    raw,
    warns: () => lines.filter((l) => l.level === 40).map((l) => l.msg),
    errors: () => lines.filter((l) => l.level >= 50).map((l) => l.msg),
  };
}

export type Frame = { type: string; id: string; [k: string]: unknown };

/** A kiosk as the relay sees it: a real `ws` client speaking the protocol. */
export class TestKiosk {
  readonly frames: Frame[] = [];
  autoAck = true;
  private readonly waiters: { pred: (f: Frame) => boolean; resolve: (f: Frame) => void }[] = [];
  private seq = 0;

  private constructor(readonly ws: WebSocket) {
    ws.on('message', (data) => {
      const f = JSON.parse(String(data)) as Frame;
      this.frames.push(f);
      if (this.autoAck && isReliable(f.type)) this.send({ type: 'ack', ackId: f.id });
      for (const w of [...this.waiters]) {
        if (w.pred(f)) {
          this.waiters.splice(this.waiters.indexOf(w), 1);
          w.resolve(f);
        }
      }
    });
  }

  static async connect(
    relay: { wsUrl: string },
    token: string,
    opts: { hello?: boolean; kioskId?: string; openOrders?: { orderId: string; state: string }[]; autoAck?: boolean } = {},
  ): Promise<TestKiosk> {
    const ws = new WebSocket(relay.wsUrl, { headers: { authorization: `Bearer ${token}` } });
    const k = new TestKiosk(ws);
    if (opts.autoAck === false) k.autoAck = false;
    await once(ws, 'open');
    if (opts.hello !== false) {
      const welcome = k.waitFrame((f) => f.type === 'welcome');
      k.send({ type: 'hello', kioskId: opts.kioskId ?? 'k1', agentVersion: 'test', openOrders: opts.openOrders ?? [] });
      await welcome;
    }
    return k;
  }

  send(body: Record<string, unknown>): string {
    const id = (body.id as string | undefined) ?? `t_${++this.seq}_${Math.random().toString(36).slice(2, 8)}`;
    this.ws.send(JSON.stringify({ v: 1, id, ...body }));
    return id;
  }

  sendRaw(text: string): void {
    this.ws.send(text);
  }

  /** First frame (already received or future) matching pred. */
  // Generous deadlines: they only bound a failure; a busy 2-core machine can take seconds to
  // deliver a frame that a quiet one delivers in milliseconds.
  waitFrame(pred: (f: Frame) => boolean, timeoutMs = 20_000): Promise<Frame> {
    const seen = this.frames.find(pred);
    if (seen) return Promise.resolve(seen);
    return new Promise((resolve, reject) => {
      const t = setTimeout(() => reject(new Error(`no matching frame within ${timeoutMs}ms; got ${JSON.stringify(this.frames.map((f) => f.type))}`)), timeoutMs);
      this.waiters.push({
        pred,
        resolve: (f) => {
          clearTimeout(t);
          resolve(f);
        },
      });
    });
  }

  /** A frame matching pred that arrives AFTER this call. */
  nextFrame(pred: (f: Frame) => boolean, timeoutMs = 20_000): Promise<Frame> {
    const already = new Set(this.frames);
    return this.waitFrame((f) => pred(f) && !already.has(f), timeoutMs);
  }

  of(type: string, orderId?: string): Frame[] {
    return this.frames.filter((f) => f.type === type && (orderId === undefined || f.orderId === orderId));
  }

  /**
   * Ping/pong round trip: the relay writes frames in order on one socket, so once the pong is here
   * every frame sent before it has arrived too.
   */
  async roundTrip(): Promise<void> {
    const at = Date.now() + this.seq;
    const pong = this.nextFrame((f) => f.type === 'pong' && f.at === at);
    this.send({ type: 'ping', at });
    await pong;
  }

  /** Sends order.ready and waits for the relay's answer (accepted or rejected). */
  async ready(orderId: string, opts: { sku?: string; amount?: number; currency?: string; quantity?: number; deadline?: number; now?: number } = {}): Promise<Frame> {
    const answer = this.waitFrame((f) => (f.type === 'order.accepted' || f.type === 'order.rejected') && f.orderId === orderId);
    this.send({
      type: 'order.ready',
      orderId,
      slot: 1,
      sku: opts.sku ?? 'COLA',
      quantity: opts.quantity ?? 1,
      amount: opts.amount ?? 150000,
      currency: opts.currency ?? 'ARS',
      deadline: opts.deadline ?? (opts.now ?? Date.now()) + 60_000,
    });
    return answer;
  }

  async close(): Promise<void> {
    if (this.ws.readyState === WebSocket.CLOSED) return;
    const closed = once(this.ws, 'close');
    this.ws.close();
    await closed;
  }
}

export interface Harness {
  dir: string;
  dbPath: string;
  config: RelayConfig;
  relay: RunningRelay;
  mp: FakeMp;
  clock: { t: number };
  log: ReturnType<typeof captureLogger>;
  token: string;
  posKey: string;
  /** restart the relay on the same DB (and the same fake MP, clock, log) */
  restart(): Promise<RunningRelay>;
  cleanup(): Promise<void>;
}

export const CATALOG = [
  { sku: 'COLA', name: 'Cola 500ml', price: '1500.00', currency: 'ARS' },
  { sku: 'WATER', name: 'Agua 500ml', price: 900, currency: 'ARS' },
];

export async function startHarness(
  opts: {
    generation?: 'v1' | 'v2';
    webhookSecret?: string;
    orders?: RelayConfigInput['orders'];
    sponsorId?: number;
    mp?: FakeMp;
    limits?: RelayConfigInput['limits'];
    stock?: RelayConfigInput['stock'];
    notify?: RelayConfigInput['notify'];
    /**
     * the relay's store: a SQLite file in dir (default), or a fresh PostgreSQL database dropped at
     * cleanup. QRKIOSK_TEST_STORE=postgres makes PostgreSQL the default, to run the relay tests
     * that do not open the SQLite file themselves (h.dbPath) against it.
     */
    store?: StoreKind;
  } = {},
): Promise<Harness> {
  const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-relay-'));
  const dbPath = join(dir, 'relay.sqlite');
  const kind: StoreKind = opts.store ?? (process.env.QRKIOSK_TEST_STORE === 'postgres' ? 'postgres' : 'sqlite');
  const database = kind === 'postgres' ? await createTestDatabase() : undefined;
  const config = parseRelayConfig(
    {
      listen: { host: '127.0.0.1', port: 0 },
      publicUrl: PUBLIC_URL,
      store: database ? { url: database.url } : { path: dbPath },
      mercadopago: {
        accessToken: 'TEST-token',
        collectorId: COLLECTOR_ID,
        ...(opts.sponsorId ? { sponsorId: opts.sponsorId } : {}),
        ...(opts.webhookSecret ? { webhookSecret: opts.webhookSecret } : {}),
      },
      catalog: CATALOG,
      ...(opts.orders ? { orders: opts.orders } : {}),
      ...(opts.limits ? { limits: opts.limits } : {}),
      ...(opts.stock ? { stock: opts.stock } : {}),
      ...(opts.notify ? { notify: opts.notify } : {}),
    },
    {},
  );
  const mp = opts.mp ?? new FakeMp();
  const clock = { t: Date.now() };
  const log = captureLogger();
  const start = () => startRelay(config, { mp, logger: log.logger, now: () => clock.t });
  const relay = await start();
  const added = await relay.store.addKiosk({ id: 'k1', posExternalId: 'POS1', generation: opts.generation ?? 'v2', posQr: '00020101021143...' });
  const h: Harness = {
    dir,
    dbPath,
    config,
    relay,
    mp,
    clock,
    log,
    token: added.token,
    posKey: added.posKey,
    async restart() {
      await h.relay.close();
      h.relay = await start();
      return h.relay;
    },
    async cleanup() {
      await h.relay.close();
      await database?.drop();
      rmSync(dir, { recursive: true, force: true });
    },
  };
  return h;
}

export function posUrlOf(h: Harness, key = h.posKey, pos = 'POS1'): string {
  return `${h.relay.url}/mp/pos/${pos}?key=${encodeURIComponent(key)}`;
}

export async function getJson(url: string, init?: RequestInit): Promise<{ status: number; headers: Headers; body: unknown }> {
  const res = await fetch(url, init);
  const text = await res.text();
  return { status: res.status, headers: res.headers, body: text ? (JSON.parse(text) as unknown) : undefined };
}

/** A kiosk connected, hello'd, with one accepted order. */
export async function kioskWithOrder(h: Harness, orderId = 'ord_test0001'): Promise<TestKiosk> {
  const kiosk = await TestKiosk.connect(h.relay, h.token);
  const answer = await kiosk.ready(orderId, { now: h.clock.t });
  if (answer.type !== 'order.accepted') throw new Error(`order not accepted: ${JSON.stringify(answer)}`);
  return kiosk;
}

export async function notifyIpn(h: Harness, topic: string, id: number | string): Promise<number> {
  const res = await fetch(`${h.relay.url}/mp/notifications?topic=${topic}&id=${id}`, { method: 'POST' });
  await res.text();
  return res.status;
}

function notEmulated(name: string): () => Promise<never> {
  return async () => {
    throw new Error(`FakeMp.${name}: not emulated here; use the sandbox emulator (test/helpers/system.ts) for this payment model`);
  };
}
