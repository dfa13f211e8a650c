import type { NewRefundRequest, RefundStore } from '../api.js';
import { refundFromRow } from '../rows.js';
import type { RefundReason, RefundRecord } from '../types.js';
import type { PgConn } from './conn.js';

/** Surplus refunds not answered yet, except those of an order in `refunding` (its own refund covers them). */
const SURPLUS_DUE_WHERE = `r.status = 'requested' AND r.reason = 'surplus' AND o.state <> 'refunding'`;

export class PgRefunds implements RefundStore {
  constructor(private readonly c: PgConn) {}

  getRefundByKey(key: string): Promise<RefundRecord | undefined> {
    return this.c.one(refundFromRow, 'SELECT * FROM refunds WHERE idempotency_key = $1', key);
  }

  /** Records the intent BEFORE calling Mercado Pago; the unique key makes a second insert a no-op. */
  async insertRefundIntent(orderId: string, paymentId: string, key: string, at: number, reason: RefundReason = 'order'): Promise<RefundRecord> {
    await this.c.run(
      `INSERT INTO refunds (order_id, payment_id, idempotency_key, reason, status, requested_at)
       VALUES ($1, $2, $3, $4, 'requested', $5) ON CONFLICT (idempotency_key) DO NOTHING`,
      orderId,
      paymentId,
      key,
      reason,
      at,
    );
    return (await this.getRefundByKey(key))!;
  }

  async recordExternalRefund(orderId: string, paymentId: string, key: string, amount: number, currency: string, at: number, reason: RefundReason = 'order'): Promise<void> {
    await this.c.run(
      `INSERT INTO refunds (order_id, payment_id, idempotency_key, reason, amount, currency, status, requested_at, completed_at)
       VALUES ($1, $2, $3, $4, $5, $6, 'external', $7, $7) ON CONFLICT (idempotency_key) DO NOTHING`,
      orderId,
      paymentId,
      key,
      reason,
      amount,
      currency,
      at,
    );
  }

  async failRefund(key: string, error: string, at: number): Promise<void> {
    await this.c.run(`UPDATE refunds SET status = 'failed', attempts = attempts + 1, last_error = $1, completed_at = $2 WHERE idempotency_key = $3`, error, at, key);
  }

  surplusRefundsDue(): Promise<RefundRecord[]> {
    return this.c.many(refundFromRow, `SELECT r.* FROM refunds r JOIN orders o ON o.id = r.order_id WHERE ${SURPLUS_DUE_WHERE} ORDER BY r.id`);
  }

  async recordRefundAttempt(key: string, error: string | null): Promise<void> {
    await this.c.run('UPDATE refunds SET attempts = attempts + 1, last_error = $1 WHERE idempotency_key = $2', error, key);
  }

  async completeRefund(key: string, r: { mpRefundId: string; amount: number; currency: string; status: string }, at: number): Promise<void> {
    await this.c.run(
      `UPDATE refunds SET mp_refund_id = $1, amount = $2, currency = $3, status = $4, completed_at = $5, last_error = NULL WHERE idempotency_key = $6`,
      r.mpRefundId,
      r.amount,
      r.currency,
      r.status,
      at,
      key,
    );
  }

  refundsOf(orderId: string): Promise<RefundRecord[]> {
    return this.c.many(refundFromRow, 'SELECT * FROM refunds WHERE order_id = $1 ORDER BY id', orderId);
  }

  failingRefunds(minAttempts: number): Promise<RefundRecord[]> {
    return this.c.many(refundFromRow, `SELECT * FROM refunds WHERE status = 'failed' OR (status = 'requested' AND attempts >= $1) ORDER BY id`, minAttempts);
  }

  allRefunds(): Promise<RefundRecord[]> {
    return this.c.many(refundFromRow, 'SELECT * FROM refunds ORDER BY id');
  }

  /** surplusRefundsDue, limited, each row claimed with FOR UPDATE SKIP LOCKED (see ./orders.ts). */
  async claimSurplusRefundsDue(limit: number): Promise<RefundRecord[]> {
    this.c.requireTransaction('claimSurplusRefundsDue');
    return await this.c.many(refundFromRow, `SELECT r.* FROM refunds r JOIN orders o ON o.id = r.order_id WHERE ${SURPLUS_DUE_WHERE} ORDER BY r.id LIMIT $1 FOR UPDATE OF r SKIP LOCKED`, limit);
  }

  // ---- schema 10: partial and retried refunds ----

  async insertRefundRequest(r: NewRefundRequest): Promise<boolean> {
    const n = await this.c.run(
      `INSERT INTO refunds (order_id, payment_id, idempotency_key, reason, requested_amount, status, requested_at)
       VALUES ($1, $2, $3, $4, $5, 'requested', $6) ON CONFLICT (idempotency_key) DO NOTHING`,
      r.orderId,
      r.paymentId,
      r.key,
      r.reason,
      r.requestedAmount,
      r.at,
    );
    return n === 1;
  }

  partialRefundsDue(): Promise<RefundRecord[]> {
    return this.c.many(refundFromRow, `SELECT * FROM refunds WHERE status = 'requested' AND reason = 'partial' ORDER BY id`);
  }
}
