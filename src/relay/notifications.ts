import { createHmac, timingSafeEqual } from 'node:crypto';
import type { MercadoPagoApi } from '../mercadopago/types.js';
import type { PaymentModels } from './models/index.js';
import type { Logger } from '../runtime/log.js';
import { checkResourceId } from './notification-ids.js';
import type { NotFoundMemory } from './not-found-memory.js';
import type { MerchantOrderOutcome, OrderService } from './orders.js';
import type { NotificationRecord, RelayStore } from './store/index.js';
import type { RelayObserver } from './observability/observer.js';

// Mercado Pago notifications are only a hint that something changed: we store each one before
// answering 200 (so a crash cannot lose it), then a worker re-reads the merchant order from the
// API and hands it to the order service. Duplicates (MP retries, IPN + webhook for the same
// event) are coalesced; processing is idempotent anyway, so a duplicate costs an API call at most.

export type NotificationTopic = 'merchant_order' | 'payment' | 'order';

export interface ClassifiedNotification {
  form: 'ipn' | 'webhook' | 'unknown';
  /** normalised topic; null when it is one we do not handle */
  topic: NotificationTopic | null;
  /** the topic/type as MP sent it */
  rawTopic: string | null;
  resourceId: string | null;
}

const TOPICS: Record<string, NotificationTopic> = {
  merchant_order: 'merchant_order',
  topic_merchant_order_wh: 'merchant_order',
  payment: 'payment',
  // Orders API: Mercado Pago's guides spell the webhook type both ways
  order: 'order',
  orders: 'order',
};

/**
 * IPN: `?topic=merchant_order&id=123` (body ignored). Webhook: JSON `{type, action, data:{id}}`
 * with `?data.id=..&type=..` in the query too.
 */
export function classifyNotification(query: Record<string, unknown>, body: unknown): ClassifiedNotification {
  const q = (k: string): string | undefined => {
    const v = query[k];
    if (Array.isArray(v)) return v.length ? String(v[0]) : undefined;
    return v === undefined || v === null || v === '' ? undefined : String(v);
  };
  const b = typeof body === 'object' && body !== null && !Array.isArray(body) ? (body as Record<string, unknown>) : undefined;
  const bodyData = b && typeof b.data === 'object' && b.data !== null ? (b.data as Record<string, unknown>) : undefined;
  const isWebhook = q('data.id') !== undefined || q('type') !== undefined || (b !== undefined && ('type' in b || 'action' in b || 'data' in b));
  if (isWebhook) {
    const rawTopic = q('type') ?? (typeof b?.type === 'string' ? b.type : undefined) ?? null;
    const bodyId = bodyData?.id;
    const resourceId = q('data.id') ?? (typeof bodyId === 'string' || typeof bodyId === 'number' ? String(bodyId) : undefined) ?? null;
    return { form: 'webhook', rawTopic, topic: rawTopic ? (TOPICS[rawTopic] ?? null) : null, resourceId };
  }
  // Some IPN deliveries carry {resource, topic} in the body instead of the query.
  const bodyResource = typeof b?.resource === 'string' ? /([^/?#]+)\/?(?:[?#].*)?$/.exec(b.resource)?.[1] : undefined;
  const rawTopic = q('topic') ?? (typeof b?.topic === 'string' ? b.topic : undefined) ?? null;
  const resourceId = q('id') ?? bodyResource ?? null;
  if (rawTopic || resourceId) return { form: 'ipn', rawTopic, topic: rawTopic ? (TOPICS[rawTopic] ?? null) : null, resourceId };
  return { form: 'unknown', rawTopic: null, topic: null, resourceId: null };
}

export type SignatureCheck = { ok: true } | { ok: false; reason: string };

/**
 * Mercado Pago's webhook signature: `x-signature: ts=<sec>,v1=<hex>` where v1 =
 * HMAC-SHA256(secret, "id:<data.id>;request-id:<x-request-id>;ts:<ts>;") with absent parts dropped.
 * `dataId` is the query's data.id exactly as received.
 */
export function verifyWebhookSignature(args: {
  secret: string;
  signatureHeader: string | undefined;
  requestId: string | undefined;
  dataId: string | undefined;
  nowMs: number;
  toleranceSeconds: number;
}): SignatureCheck {
  if (!args.signatureHeader) return { ok: false, reason: 'no x-signature header' };
  let ts: string | undefined;
  let v1: string | undefined;
  for (const part of args.signatureHeader.split(',')) {
    const i = part.indexOf('=');
    if (i < 0) continue;
    const k = part.slice(0, i).trim();
    const v = part.slice(i + 1).trim();
    if (k === 'ts') ts = v;
    else if (k === 'v1') v1 = v;
  }
  if (!ts || !v1) return { ok: false, reason: 'x-signature lacks ts or v1' };
  if (!/^\d+$/.test(ts)) return { ok: false, reason: 'x-signature ts is not a number' };
  // The tolerance bounds how long a captured request can be replayed.
  const skew = Math.abs(args.nowMs / 1000 - Number(ts));
  if (skew > args.toleranceSeconds) return { ok: false, reason: `ts is ${Math.round(skew)}s away from our clock` };
  let manifest = '';
  if (args.dataId !== undefined && args.dataId !== '') manifest += `id:${args.dataId};`;
  if (args.requestId) manifest += `request-id:${args.requestId};`;
  manifest += `ts:${ts};`;
  const expected = createHmac('sha256', args.secret).update(manifest).digest();
  if (!/^[0-9a-fA-F]+$/.test(v1) || v1.length !== expected.length * 2) return { ok: false, reason: 'v1 does not match' };
  const given = Buffer.from(v1, 'hex');
  return timingSafeEqual(given, expected) ? { ok: true } : { ok: false, reason: 'v1 does not match' };
}

/**
 * Mercado Pago changed how `data.id` enters the manifest: older senders lowercased alphanumeric
 * ids (Orders API ids are upper case), current ones sign it verbatim. Either verifies.
 */
export function verifyWebhookSignatureAnyCase(args: Parameters<typeof verifyWebhookSignature>[0]): SignatureCheck {
  const first = verifyWebhookSignature(args);
  if (first.ok || args.dataId === undefined || args.dataId.toLowerCase() === args.dataId) return first;
  const lower = verifyWebhookSignature({ ...args, dataId: args.dataId.toLowerCase() });
  return lower.ok ? lower : first;
}

function isNotFound(err: unknown): boolean {
  // Duck-typed so this file does not depend on the HTTP client's error classes.
  const e = err as { name?: string; status?: number; statusCode?: number } | null;
  return !!e && (e.name === 'MpNotFoundError' || e.status === 404 || e.statusCode === 404);
}

/** A 4xx other than 404/429: asking again with the same id gets the same answer. */
function isPermanent(err: unknown): boolean {
  const status = (err as { status?: number } | null)?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && status !== 404 && status !== 429 && status !== 408;
}

export interface NotificationWorkerOptions {
  store: RelayStore;
  mp: MercadoPagoApi;
  models: PaymentModels;
  /** the site's currency: Orders API payments do not carry one */
  currency: string;
  orders: OrderService;
  logger: Logger;
  now: () => number;
  /** retries of a failing API read inside one processing, with capped backoff */
  maxAttempts?: number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** a key that ended in a final outcome is not re-read again within this window */
  recentWindowMs?: number;
  /** resources Mercado Pago said do not exist, remembered for a while (limits.notifications) */
  notFound?: NotFoundMemory;
  /** processings of one stored notification that may fail before it is given up (poison row) */
  maxTries?: number;
  /** metrics (relay/observability): told how long each processed notification took */
  observe?: Pick<RelayObserver, 'notificationProcessed'>;
}

const FINAL: ReadonlySet<string> = new Set<MerchantOrderOutcome | string>(['released', 'already_done']);

export class NotificationWorker {
  private readonly inFlight = new Map<string, { rerun: boolean }>();
  private readonly recent = new Map<string, number>();
  private readonly tasks = new Set<Promise<void>>();
  private closed = false;
  private readonly abort = new AbortController();

  constructor(private readonly o: NotificationWorkerOptions) {}

  /** Queue a stored notification for processing. Never throws; idle() waits for it. */
  submit(n: Pick<NotificationRecord, 'id' | 'topic' | 'resourceId' | 'attempts'>): void {
    if (this.closed) return;
    const task: Promise<void> = this.admit(n)
      .catch((err: unknown) => {
        if (!this.closed) this.o.logger.error({ err, notificationId: n.id }, `notification ${n.id} could not be handled: ${(err as Error).message}`);
      })
      .finally(() => this.tasks.delete(task));
    this.tasks.add(task);
  }

  /**
   * Decides what to do with a stored notification and does it. Everything up to the in-flight
   * bookkeeping is synchronous (a coalesced duplicate must see the running read), the store writes
   * come after.
   */
  private async admit(n: Pick<NotificationRecord, 'id' | 'topic' | 'resourceId' | 'attempts'>): Promise<void> {
    const mark = (outcome: string) => this.o.store.markNotification(n.id, outcome, this.o.now());
    const topic = n.topic ? (TOPICS[n.topic] ?? null) : null;
    if (!topic || !n.resourceId) return mark(`ignored: topic ${JSON.stringify(n.topic)}`);
    // The route checks ids before storing; rows stored by an older version are checked here,
    // before any Mercado Pago call.
    const idCheck = checkResourceId(topic, n.resourceId);
    if (!idCheck.ok) return mark(`refused: ${idCheck.reason}`);
    if ((n.attempts ?? 0) >= this.maxTries) {
      return this.o.store.giveUpNotification(n.id, `given up after ${n.attempts} failed tries`, this.o.now());
    }
    const key = `${topic}:${n.resourceId}`;
    if (this.o.notFound?.has(key)) return mark('not_found (remembered)');
    const running = this.inFlight.get(key);
    if (running) {
      // The running read may have started before MP's latest change: read once more after it.
      running.rerun = true;
      return mark('coalesced');
    }
    const doneAt = this.recent.get(key);
    if (doneAt !== undefined && this.o.now() - doneAt < (this.o.recentWindowMs ?? 60_000)) return mark('coalesced');
    const state = { rerun: false };
    this.inFlight.set(key, state);
    try {
      await this.run(n.id, topic, n.resourceId, key, state);
    } finally {
      this.inFlight.delete(key);
    }
  }

  private get maxTries(): number {
    return this.o.maxTries ?? 5;
  }

  /** At start-up: notifications stored but not processed when we stopped. */
  async resumePending(): Promise<number> {
    const pending = (await this.o.store.unprocessedNotifications()).filter((n) => n.signatureOk !== false);
    for (const n of pending) this.submit(n);
    return pending.length;
  }

  /** Resolves when nothing is being processed (tests, graceful shutdown). */
  async idle(): Promise<void> {
    while (this.tasks.size > 0) await Promise.allSettled([...this.tasks]);
  }

  async close(): Promise<void> {
    this.closed = true;
    this.abort.abort();
    await this.idle();
  }

  private async run(id: number, topic: NotificationTopic, resourceId: string, key: string, state: { rerun: boolean }): Promise<void> {
    let outcome = 'error';
    let processed = false;
    const started = performance.now();
    try {
      let released = false;
      do {
        state.rerun = false;
        outcome = await this.withRetries(() => this.process(topic, resourceId));
        released ||= outcome === 'released';
      } while (state.rerun && !this.closed);
      // The re-read after a coalesced duplicate says "already_done"; the record keeps what happened.
      if (released) outcome = 'released';
      processed = true;
    } catch (err) {
      if (this.closed) return; // left unprocessed: resumed at the next start
      outcome = `error: ${(err as Error).message}`.slice(0, 500);
      // Left unprocessed on purpose: the next start resumes it, and the contingency poller asks MP
      // about the order meanwhile. Unless it keeps failing (a poison row): then it is given up,
      // flagged (store.countGivenUpNotifications, /healthz) and never run again.
      try {
        const tries = await this.o.store.noteNotificationFailure(id, outcome);
        if (isPermanent(err) || tries >= this.maxTries) {
          const why = isPermanent(err) ? 'Mercado Pago refuses this request for good' : `failed ${tries} times`;
          await this.o.store.giveUpNotification(id, `given up (${why}): ${outcome}`.slice(0, 500), this.o.now());
          this.o.logger.error({ err, topic, resourceId, tries }, `notification ${topic} ${resourceId} given up (${why}): ${(err as Error).message}; flagged for review`);
        } else {
          this.o.logger.error({ err, topic, resourceId, tries }, `notification ${topic} ${resourceId} could not be processed (try ${tries} of ${this.maxTries}): ${(err as Error).message}`);
        }
      } catch (dbErr) {
        this.o.logger.error({ err: dbErr }, 'could not record notification failure');
      }
      return;
    }
    if (this.closed) return;
    try {
      await this.o.store.markNotification(id, outcome, processed ? this.o.now() : null);
      if (processed) this.o.observe?.notificationProcessed((performance.now() - started) / 1000);
    } catch (err) {
      this.o.logger.error({ err }, 'could not record notification outcome');
    }
    if (processed && FINAL.has(outcome)) this.recent.set(key, this.o.now());
    if (this.recent.size > 10_000) this.recent.clear();
  }

  private async withRetries<T>(fn: () => Promise<T>): Promise<T> {
    const max = this.o.maxAttempts ?? 5;
    for (let attempt = 1; ; attempt++) {
      try {
        return await fn();
      } catch (err) {
        if (this.closed || attempt >= max || isPermanent(err)) throw err;
        const delay = Math.min((this.o.baseBackoffMs ?? 500) * 2 ** (attempt - 1), this.o.maxBackoffMs ?? 30_000);
        this.o.logger.warn({ err, attempt }, `Mercado Pago read failed (${(err as Error).message}); retrying in ${delay}ms`);
        await sleep(delay, this.abort.signal);
        if (this.closed) throw err;
      }
    }
  }

  /** Exposed for the contingency poller and tests: the same path a notification takes. */
  async process(topic: NotificationTopic, resourceId: string): Promise<string> {
    if (topic === 'payment') return this.processPayment(resourceId);
    if (topic === 'order') return this.processOrder(resourceId);
    return this.processMerchantOrder(resourceId);
  }

  /** Orders API: the order is re-read with our token; its body in the notification proves nothing. */
  private async processOrder(id: string): Promise<string> {
    const state = await this.o.models.orders.read(id, this.o.currency);
    if (!state) {
      this.o.notFound?.remember(`order:${id}`);
      this.o.logger.info({ mpOrderId: id }, `Mercado Pago order ${id} does not exist for our token: not ours`);
      return 'not_found';
    }
    if (this.closed) return 'closed';
    return this.o.orders.applyPaymentState(state, 'notification');
  }

  private async processMerchantOrder(id: string): Promise<string> {
    let mo;
    try {
      mo = await this.o.mp.getMerchantOrder(id);
    } catch (err) {
      if (isNotFound(err)) {
        this.o.notFound?.remember(`merchant_order:${id}`);
        this.o.logger.info({ merchantOrderId: id }, `merchant order ${id} does not exist for our token: not ours`);
        return 'not_found';
      }
      throw err;
    }
    if (this.closed) return 'closed';
    return this.o.orders.applyMerchantOrder(mo, 'notification');
  }

  private async processPayment(id: string): Promise<string> {
    let payment;
    try {
      payment = await this.o.mp.getPayment(id);
    } catch (err) {
      if (isNotFound(err)) {
        this.o.notFound?.remember(`payment:${id}`);
        this.o.logger.info({ paymentId: id }, `payment ${id} does not exist for our token: not ours`);
        return 'not_found';
      }
      throw err;
    }
    if (this.closed) return 'closed';
    // The payment alone proves nothing about the order: the merchant order is the source of truth.
    if (payment.order?.id !== undefined && payment.order.id !== null && payment.order.id !== '') {
      const moId = String(payment.order.id);
      if (!checkResourceId('merchant_order', moId).ok) return 'not_ours';
      return this.processMerchantOrder(moId);
    }
    if (payment.external_reference) {
      const page = await this.o.mp.searchMerchantOrders({ external_reference: payment.external_reference });
      if (this.closed) return 'closed';
      const outcomes: string[] = [];
      for (const mo of page.elements ?? []) outcomes.push(await this.o.orders.applyMerchantOrder(mo, 'notification'));
      return outcomes.includes('released') ? 'released' : (outcomes[0] ?? 'no_merchant_order');
    }
    this.o.logger.info({ paymentId: id }, `payment ${id} has no merchant order: not ours`);
    return 'not_ours';
  }
}

function sleep(ms: number, signal: AbortSignal): Promise<void> {
  return new Promise((resolve) => {
    if (signal.aborted) return resolve();
    const t = setTimeout(done, ms);
    function done() {
      clearTimeout(t);
      signal.removeEventListener('abort', done);
      resolve();
    }
    signal.addEventListener('abort', done);
  });
}
