import { isCurrency, parseAmount } from '../core/money.js';
import { refundableOf, refundEventOf, refundMachine, refundNeedsPerson, type RefundState } from '../core/refund.js';
import type { PaymentModels } from './models/index.js';
import type { Logger } from '../runtime/log.js';
import { WorkLoop, type WorkLoopOptions } from './work-loop.js';
import type { OrderRecord, PaymentRecord, RefundReason, RefundRecord, RelayStore } from './store/index.js';
import type { RelayObserver } from './observability/observer.js';

// Refunds for orders in `refunding`, and surplus refunds (one payment an order did not need, given
// back while the order keeps its state). Each (order, payment) pair has ONE idempotency key,
// derived from the ids, never random: the intent row is written before calling Mercado Pago, and
// any retry (network error, timeout, 5xx, 429, crash, restart) repeats the call with the same key,
// which MP answers with the refund it already made. So a payment is refunded at most once, and at
// least once as long as the relay keeps running and Mercado Pago does not refuse it for good (a
// 4xx such as "payment too old to refund"): then the refund is marked `failed` and the order is
// flagged for a person, because repeating the call cannot succeed.

export function refundIdempotencyKey(orderId: string, paymentId: string): string {
  return `qrkiosk-refund-${orderId}-${paymentId}`;
}

/**
 * The key of an operator's partial refund of one payment: one per operator action (its audit
 * row), so two partial refunds of the same amount are two refunds, and a repeated call is not.
 */
export function partialRefundKey(orderId: string, paymentId: string, actionId: string): string {
  return `${refundIdempotencyKey(orderId, paymentId)}-p${actionId}`;
}

/**
 * The key of the new attempt of a refund Mercado Pago refused: derived from the refused row, so
 * two operators retrying at once write ONE row (the unique key), and the refused key, which
 * would only replay the refusal, is never sent again.
 */
export function retryRefundKey(refused: { id: number; idempotencyKey: string }): string {
  return `${refused.idempotencyKey.replace(/-r\d+$/, '')}-r${refused.id}`;
}

/** The current attempt of a refund: the row of `key`, or the newest retry of it. */
export async function currentRefundAttempt(store: RelayStore, key: string): Promise<RefundRecord | undefined> {
  let row = await store.getRefundByKey(key);
  while (row && refundNeedsPerson(row.status)) {
    const next = await store.getRefundByKey(retryRefundKey(row));
    if (!next) break;
    row = next;
  }
  return row;
}


/** 4xx that may succeed later: conflict / locked (a concurrent operation on the payment), rate limit. */
const RETRYABLE_4XX = new Set([409, 423, 429]);

/**
 * Whether Mercado Pago refused the refund for good: an HTTP 4xx answer other than 409/423/429
 * (e.g. 400 with cause 2063 "invalid payment state", 15016 "payment too old"). Network errors,
 * timeouts, 5xx and 429 are worth repeating with the same idempotency key.
 */
export function isPermanentRefusal(err: unknown): boolean {
  const status = (err as { status?: unknown } | null)?.status;
  return typeof status === 'number' && status >= 400 && status < 500 && !RETRYABLE_4XX.has(status);
}

/** "HTTP 400 2063: <MP's message>; <cause description>", from an MpError (duck-typed). */
export function describeRefusal(err: unknown): string {
  const e = (err ?? {}) as { status?: unknown; code?: unknown; body?: unknown; message?: unknown };
  const body = (typeof e.body === 'object' && e.body !== null ? e.body : {}) as { message?: unknown; cause?: unknown };
  const causes = Array.isArray(body.cause) ? (body.cause as unknown[]) : body.cause ? [body.cause] : [];
  const parts: string[] = [];
  if (typeof body.message === 'string' && body.message) parts.push(body.message);
  for (const c of causes) {
    const d = (c as { description?: unknown } | null)?.description;
    if (typeof d === 'string' && d && !parts.includes(d)) parts.push(d);
  }
  if (parts.length === 0) parts.push(typeof e.message === 'string' ? e.message : String(err));
  const code = typeof e.code === 'string' || typeof e.code === 'number' ? ` ${e.code}` : '';
  return `HTTP ${String(e.status)}${code}: ${parts.join('; ')}`.slice(0, 500);
}

/**
 * The two things the refund worker asks of the order service (relay/orders.ts), and no more: the
 * worker does not import the service, so the two files do not import each other.
 */
export interface RefundOrders {
  /** refunding -> refunded once every approved payment has a settled refund; `incomplete`: run again */
  finishRefund(orderId: string): Promise<'finished' | 'not_refunding' | 'incomplete'>;
  /** Adds a reason for review (in `tx` when given); resolves whether it is new (log it only then). */
  flagForReview(orderId: string, why: string, tx?: RelayStore): Promise<boolean>;
}

export interface RefundWorkerOptions {
  store: RelayStore;
  /** each kiosk's payment model refunds its own payments (legacy payment refund, or Orders API refund) */
  models: PaymentModels;
  orders: RefundOrders;
  logger: Logger;
  now: () => number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** several instances: one pass at a time across them (WorkLoopOptions.exclusive) */
  exclusive?: WorkLoopOptions['exclusive'];
  /** metrics (relay/observability): told how each refund attempt ended */
  observe?: Pick<RelayObserver, 'refundAttempted'>;
}

type PaymentRefundOutcome = 'done' | 'failed';

/** Rounds of "refund what is approved, then finish" before leaving an order to the next pass. */
const MAX_ROUNDS = 3;

export class RefundWorker extends WorkLoop {
  constructor(private readonly o: RefundWorkerOptions) {
    super({ logger: o.logger, name: 'refund', baseBackoffMs: o.baseBackoffMs ?? 1000, maxBackoffMs: o.maxBackoffMs ?? 5 * 60_000, ...(o.exclusive ? { exclusive: o.exclusive } : {}) });
  }

  /** Retries are keyed by order id (order refunds) or idempotency key (surplus refunds). */
  protected async pass(): Promise<void> {
    for (const order of await this.o.store.ordersInState('refunding')) {
      if (this.closed) return;
      await this.attempt(order.id, `refund for order ${order.id}`, () => this.refundOrder(order));
    }
    for (const r of await this.o.store.surplusRefundsDue()) {
      if (this.closed) return;
      const order = await this.o.store.getOrder(r.orderId);
      const payment = await this.o.store.getPayment(r.paymentId);
      if (!order || !payment) continue; // written together with the payment: cannot happen
      await this.attempt(r.idempotencyKey, `surplus refund of payment ${r.paymentId} (order ${r.orderId})`, async () => {
        await this.refundPayment(order, payment, 'surplus');
      });
    }
    // operators' partial refunds (and their retries): each row is its own refund of an amount
    for (const r of await this.o.store.partialRefundsDue()) {
      if (this.closed) return;
      const order = await this.o.store.getOrder(r.orderId);
      const payment = await this.o.store.getPayment(r.paymentId);
      if (!order || !payment) continue;
      await this.attempt(r.idempotencyKey, `partial refund of payment ${r.paymentId} (order ${r.orderId})`, async () => {
        await this.callMercadoPago(order, payment, r);
      });
    }
  }

  private async refundOrder(order: OrderRecord): Promise<void> {
    const { store, logger } = this.o;
    for (let round = 0; round < MAX_ROUNDS; round++) {
      const approved = await store.approvedPaymentsOf(order.id);
      if (approved.length === 0) {
        if (await this.o.orders.flagForReview(order.id, 'refund: no approved payment known')) {
          logger.error({ orderId: order.id }, `order ${order.id} must be refunded but no approved payment is known: review by hand`);
        }
        return;
      }
      // Every payment gets its chance even when another one was refused.
      let failed = 0;
      for (const p of approved) {
        if ((await this.refundPayment(order, p, 'order')) === 'failed') failed++;
        if (this.closed) return;
      }
      if (failed > 0) return; // flagged per payment; the order stays `refunding` for a person
      // `incomplete`: a payment landed while we were talking to Mercado Pago; refund it too.
      if ((await this.o.orders.finishRefund(order.id)) !== 'incomplete') return;
    }
  }

  /**
   * Refunds one payment with its stable key. Resolves `done` once Mercado Pago accepted it (now or
   * before), `failed` when it refused it for good (recorded, order flagged, logged); throws when
   * the call should be repeated later.
   */
  private async refundPayment(order: OrderRecord, p: PaymentRecord, reason: RefundReason): Promise<PaymentRefundOutcome> {
    const { store, logger } = this.o;
    const base = refundIdempotencyKey(order.id, p.paymentId);
    // a refused refund an operator retried: its new attempt (relay/console/actions.ts retryRefund)
    const existing = await currentRefundAttempt(store, base);
    if (existing && existing.status !== 'requested') return refundNeedsPerson(existing.status) ? 'failed' : 'done';
    if (existing) return this.callMercadoPago(order, p, existing);
    const partials = (await store.refundsOf(order.id)).filter((r) => r.paymentId === p.paymentId && r.reason === 'partial');
    if (!existing && p.status === 'refunded' && partials.length === 0) {
      // Refunded without us ever asking (by hand in the MP panel): the money is back already;
      // calling again would fail or, worse, be a second refund.
      await store.recordExternalRefund(order.id, p.paymentId, base, p.amount, p.currency, this.o.now(), reason);
      this.o.observe?.refundAttempted('external');
      logger.info({ orderId: order.id, paymentId: p.paymentId }, `order ${order.id}: payment ${p.paymentId} was already refunded outside the relay`);
      return 'done';
    }
    // Intent first: if we crash during the call, the restart finds this row and repeats the
    // call with the same key instead of wondering whether a refund happened. After partial
    // refunds of the payment, the intent names what remains (the same amount on every repeat).
    if (partials.length === 0) {
      await store.insertRefundIntent(order.id, p.paymentId, base, this.o.now(), reason);
    } else {
      const remaining = refundableOf(p.amount, partials);
      if (remaining === 0) return 'done'; // given back in parts already (finishRefund checks they settled)
      await store.insertRefundRequest({ orderId: order.id, paymentId: p.paymentId, key: base, reason, requestedAmount: remaining, at: this.o.now() });
    }
    return this.callMercadoPago(order, p, (await store.getRefundByKey(base))!);
  }

  /**
   * Asks Mercado Pago for the refund of one intent row (its key, its amount if any). Resolves
   * `done` once Mercado Pago accepted it, `failed` when it refused it for good (recorded, order
   * flagged, logged); throws when the call should be repeated later.
   */
  private async callMercadoPago(order: OrderRecord, p: PaymentRecord, row: RefundRecord): Promise<PaymentRefundOutcome> {
    const { store, logger } = this.o;
    const key = row.idempotencyKey;
    const reason = row.reason;
    const what = reason === 'surplus' ? 'surplus payment' : reason === 'partial' ? `part (${row.requestedAmount}) of payment` : 'payment';
    let refund;
    try {
      const kiosk = (await store.getKiosk(order.kioskId))!;
      refund = await this.o.models.of(kiosk).refund(order, p, key, row.requestedAmount ?? undefined);
    } catch (err) {
      if (this.closed) throw err;
      if (isPermanentRefusal(err)) {
        const refusal = describeRefusal(err);
        await store.transaction(async (tx) => {
          // requested -> failed through the refund's table; another instance that recorded an answer first wins
          refundMachine.next(((await tx.getRefundByKey(key))?.status ?? 'requested') as RefundState, 'refused');
          await tx.failRefund(key, refusal, this.o.now());
          await this.o.orders.flagForReview(order.id, `refund of ${what} ${p.paymentId} refused by Mercado Pago: ${refusal}`, tx);
        });
        this.o.observe?.refundAttempted('refused');
        logger.error(
          { orderId: order.id, paymentId: p.paymentId, amount: p.amount, currency: p.currency, status: (err as { status?: number }).status, reason },
          `Mercado Pago refused for good the refund of ${what} ${p.paymentId} (order ${order.id}): ${refusal}; not repeating this call: retry it as a new refund (console, API or "qrkiosk relay refund retry") or refund it by hand`,
        );
        return 'failed';
      }
      await store.recordRefundAttempt(key, (err as Error).message.slice(0, 500));
      this.o.observe?.refundAttempted('retry');
      throw err;
    }
    if (this.closed) return 'done';
    const currency = isCurrency(p.currency) ? p.currency : order.currency;
    let amount = row.requestedAmount ?? p.amount;
    try {
      amount = parseAmount(refund.amount, currency);
    } catch {
      /* keep the payment amount: a full refund was asked */
    }
    // Mercado Pago's answer moves the intent through core/refund.ts; what is stored is the state
    const status = await store.transaction(async (tx) => {
      const cur = ((await tx.getRefundByKey(key))?.status ?? 'requested') as RefundState;
      const to = refundMachine.next(cur, refundEventOf(refund.status));
      await tx.completeRefund(key, { mpRefundId: String(refund.id), amount, currency, status: to }, this.o.now());
      if (refundNeedsPerson(to)) await this.o.orders.flagForReview(order.id, `refund ${refund.id} of ${what} ${p.paymentId} was ${refund.status}`, tx);
      return to;
    });
    const refused = refundNeedsPerson(status);
    this.o.observe?.refundAttempted(refused ? 'refused' : 'refunded');
    logger.info(
      { orderId: order.id, paymentId: p.paymentId, refundId: refund.id, status: refund.status, reason },
      `order ${order.id}: ${what} ${p.paymentId} refunded (refund ${refund.id}, ${refund.status})`,
    );
    if (refused) {
      logger.error({ orderId: order.id, paymentId: p.paymentId }, `Mercado Pago ${refund.status} the refund of ${what} ${p.paymentId} (order ${order.id}): refund by hand`);
      return 'failed';
    }
    return 'done';
  }
}
