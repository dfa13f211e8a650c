import type { NewRefundRequest, RefundStore } from '../api.js';
import type { RefundReason, RefundRecord } from '../types.js';
import type { SqliteConn, Sync } from './conn.js';
import { refundFromRow } from '../rows.js';

export class SqliteRefunds implements Sync<RefundStore> {
  constructor(private readonly c: SqliteConn) {}

  getRefundByKey(key: string): RefundRecord | undefined {
    return this.c.one(refundFromRow, 'SELECT * FROM refunds WHERE idempotency_key = ?', key);
  }

  /** Records the intent BEFORE calling Mercado Pago; the unique key makes a second insert a no-op. */
  insertRefundIntent(orderId: string, paymentId: string, key: string, at: number, reason: RefundReason = 'order'): RefundRecord {
    this.c.db
      .prepare(
        `INSERT OR IGNORE INTO refunds (order_id, payment_id, idempotency_key, reason, status, requested_at)
         VALUES (?, ?, ?, ?, 'requested', ?)`,
      )
      .run(orderId, paymentId, key, reason, at);
    return this.getRefundByKey(key)!;
  }

  /** A payment MP shows refunded although we never asked (refunded by hand in the MP panel). */
  recordExternalRefund(
    orderId: string,
    paymentId: string,
    key: string,
    amount: number,
    currency: string,
    at: number,
    reason: RefundReason = 'order',
  ): void {
    this.c.db
      .prepare(
        `INSERT OR IGNORE INTO refunds (order_id, payment_id, idempotency_key, reason, amount, currency, status, requested_at, completed_at)
         VALUES (?, ?, ?, ?, ?, ?, 'external', ?, ?)`,
      )
      .run(orderId, paymentId, key, reason, amount, currency, at, at);
  }

  /** Mercado Pago refused the refund for good (4xx): no more calls; a person takes over. */
  failRefund(key: string, error: string, at: number): void {
    this.c.db
      .prepare(`UPDATE refunds SET status = 'failed', attempts = attempts + 1, last_error = ?, completed_at = ? WHERE idempotency_key = ?`)
      .run(error, at, key);
  }

  /**
   * Surplus refunds whose Mercado Pago call has not been answered yet. Those of an order in
   * `refunding` are left to the order's own refund, which covers every approved payment.
   */
  surplusRefundsDue(): RefundRecord[] {
    return this.c.many(
      refundFromRow,
      `SELECT r.* FROM refunds r JOIN orders o ON o.id = r.order_id
       WHERE r.status = 'requested' AND r.reason = 'surplus' AND o.state <> 'refunding'
       ORDER BY r.id`,
    );
  }

  recordRefundAttempt(key: string, error: string | null): void {
    this.c.db.prepare('UPDATE refunds SET attempts = attempts + 1, last_error = ? WHERE idempotency_key = ?').run(error, key);
  }

  completeRefund(key: string, r: { mpRefundId: string; amount: number; currency: string; status: string }, at: number): void {
    this.c.db
      .prepare(
        `UPDATE refunds SET mp_refund_id = ?, amount = ?, currency = ?, status = ?, completed_at = ?, last_error = NULL
         WHERE idempotency_key = ?`,
      )
      .run(r.mpRefundId, r.amount, r.currency, r.status, at, key);
  }

  refundsOf(orderId: string): RefundRecord[] {
    return this.c.many(refundFromRow, 'SELECT * FROM refunds WHERE order_id = ? ORDER BY id', orderId);
  }

  failingRefunds(minAttempts: number): RefundRecord[] {
    return this.c.many(refundFromRow, `SELECT * FROM refunds WHERE status = 'failed' OR (status = 'requested' AND attempts >= ?) ORDER BY id`, minAttempts);
  }

  allRefunds(): RefundRecord[] {
    return this.c.many(refundFromRow, 'SELECT * FROM refunds ORDER BY id');
  }

  // ---- schema 10: partial and retried refunds ----

  insertRefundRequest(r: NewRefundRequest): boolean {
    const res = this.c.db
      .prepare(
        `INSERT OR IGNORE INTO refunds (order_id, payment_id, idempotency_key, reason, requested_amount, status, requested_at)
         VALUES (?, ?, ?, ?, ?, 'requested', ?)`,
      )
      .run(r.orderId, r.paymentId, r.key, r.reason, r.requestedAmount, r.at);
    return res.changes === 1;
  }

  partialRefundsDue(): RefundRecord[] {
    return this.c.many(refundFromRow, `SELECT * FROM refunds WHERE status = 'requested' AND reason = 'partial' ORDER BY id`);
  }
}
