import { isCurrency, parseAmount } from '../core/money.js';
import type { MercadoPagoApi } from '../mercadopago/types.js';
import type { Logger } from '../runtime/log.js';
import type { OrderService } from './orders.js';
import type { OrderRecord, RelayStore } from './store.js';

// Refunds for orders in `refunding`. Each (order, payment) pair has ONE idempotency key, derived
// from the ids, never random: the intent row is written before calling Mercado Pago, and any
// retry (network error, timeout, crash, restart) repeats the call with the same key, which MP
// answers with the refund it already made. So a payment is refunded at most once, and at least
// once as long as the relay keeps running.

export function refundIdempotencyKey(orderId: string, paymentId: string): string {
  return `qrkiosk-refund-${orderId}-${paymentId}`;
}

/** Refund statuses after which MP will not give the money back by itself: a human must look. */
const FAILED = new Set(['rejected', 'cancelled']);

export interface RefundWorkerOptions {
  store: RelayStore;
  mp: MercadoPagoApi;
  orders: OrderService;
  logger: Logger;
  now: () => number;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
}

export class RefundWorker {
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private readonly retry = new Map<string, { attempts: number; notBefore: number; timer: NodeJS.Timeout }>();

  constructor(private readonly o: RefundWorkerOptions) {}

  /** Something may need refunding: run a pass now (or right after the one in progress). */
  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.loop().finally(() => {
      this.running = undefined;
    });
  }

  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const r of this.retry.values()) clearTimeout(r.timer);
    this.retry.clear();
    // Do not wait for an MP call that may hang: the intent row makes the restart safe.
    await Promise.race([this.running, new Promise((r) => setTimeout(r, 200).unref())]);
  }

  private async loop(): Promise<void> {
    try {
      await this.passes();
    } catch (err) {
      // e.g. the database closed under us during shutdown; never an unhandled rejection.
      if (!this.closed) this.o.logger.error({ err }, `refund pass failed: ${(err as Error).message}`);
    }
  }

  private async passes(): Promise<void> {
    do {
      this.again = false;
      for (const order of this.o.store.ordersInState('refunding')) {
        if (this.closed) return;
        if (order.needsReview?.startsWith('refund')) continue; // waits for a human
        const r = this.retry.get(order.id);
        if (r && r.notBefore > Date.now()) continue;
        try {
          await this.refundOrder(order);
          if (r) clearTimeout(r.timer);
          this.retry.delete(order.id);
        } catch (err) {
          if (this.closed) return;
          this.scheduleRetry(order.id, err as Error);
        }
      }
    } while (this.again && !this.closed);
  }

  private scheduleRetry(orderId: string, err: Error): void {
    const prev = this.retry.get(orderId);
    if (prev) clearTimeout(prev.timer);
    const attempts = (prev?.attempts ?? 0) + 1;
    // Capped exponential backoff: MP outages last minutes; hammering them does not help.
    const delay = Math.min((this.o.baseBackoffMs ?? 1000) * 2 ** (attempts - 1), this.o.maxBackoffMs ?? 5 * 60_000);
    const timer = setTimeout(() => this.kick(), delay);
    timer.unref();
    this.retry.set(orderId, { attempts, notBefore: Date.now() + delay, timer });
    this.o.logger.warn({ err, orderId, attempts, delayMs: delay }, `refund for order ${orderId} failed (${err.message}); retrying in ${Math.round(delay / 1000)}s`);
  }

  private async refundOrder(order: OrderRecord): Promise<void> {
    const { store, mp, logger } = this.o;
    const approved = store.approvedPaymentsOf(order.id);
    if (approved.length === 0) {
      logger.error({ orderId: order.id }, `order ${order.id} must be refunded but no approved payment is known: review by hand`);
      this.o.orders.flagForReview(order.id, 'refund: no approved payment known');
      return;
    }
    for (const p of approved) {
      const key = refundIdempotencyKey(order.id, p.paymentId);
      const existing = store.getRefundByKey(key);
      if (existing && existing.status !== 'requested') {
        if (FAILED.has(existing.status)) {
          this.o.orders.flagForReview(order.id, `refund ${existing.mpRefundId} of payment ${p.paymentId} was ${existing.status}`);
          return;
        }
        continue; // MP already answered for this payment
      }
      if (!existing && p.status === 'refunded') {
        // Refunded without us ever asking (by hand in the MP panel): the money is back already;
        // calling again would fail or, worse, be a second refund.
        store.recordExternalRefund(order.id, p.paymentId, key, p.amount, p.currency, this.o.now());
        logger.info({ orderId: order.id, paymentId: p.paymentId }, `order ${order.id}: payment ${p.paymentId} was already refunded outside the relay`);
        continue;
      }
      // Intent first: if we crash during the call, the restart finds this row and repeats the
      // call with the same key instead of wondering whether a refund happened.
      store.insertRefundIntent(order.id, p.paymentId, key, this.o.now());
      let refund;
      try {
        refund = await mp.refundPayment(p.paymentId, { idempotencyKey: key });
      } catch (err) {
        if (!this.closed && store.isOpen) store.recordRefundAttempt(key, (err as Error).message.slice(0, 500));
        throw err;
      }
      if (this.closed || !store.isOpen) return;
      const currency = isCurrency(p.currency) ? p.currency : order.currency;
      let amount = p.amount;
      try {
        amount = parseAmount(refund.amount, currency);
      } catch {
        /* keep the payment amount: a full refund was asked */
      }
      store.completeRefund(key, { mpRefundId: String(refund.id), amount, currency, status: refund.status }, this.o.now());
      logger.info({ orderId: order.id, paymentId: p.paymentId, refundId: refund.id, status: refund.status }, `order ${order.id}: payment ${p.paymentId} refunded (refund ${refund.id}, ${refund.status})`);
      if (FAILED.has(refund.status)) {
        logger.error({ orderId: order.id, paymentId: p.paymentId }, `Mercado Pago ${refund.status} the refund of payment ${p.paymentId} (order ${order.id}): refund by hand`);
        this.o.orders.flagForReview(order.id, `refund ${refund.id} of payment ${p.paymentId} was ${refund.status}`);
        return;
      }
    }
    this.o.orders.finishRefund(order.id);
  }
}
