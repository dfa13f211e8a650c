import type { PaymentStore } from '../api.js';
import type { PaymentRecord } from '../types.js';
import type { SqliteConn, Sync } from './conn.js';
import { paymentFromRow } from '../rows.js';

export class SqlitePayments implements Sync<PaymentStore> {
  constructor(private readonly c: SqliteConn) {}

  upsertPayment(p: Omit<PaymentRecord, 'firstSeenAt' | 'updatedAt' | 'everApproved'>, at: number): void {
    this.c.db
      .prepare(
        `INSERT INTO payments (payment_id, order_id, merchant_order_id, status, amount, currency, ever_approved, first_seen_at, updated_at)
         VALUES (@paymentId, @orderId, @merchantOrderId, @status, @amount, @currency, @approved, @at, @at)
         ON CONFLICT(payment_id) DO UPDATE SET status = excluded.status, amount = excluded.amount,
           currency = excluded.currency, merchant_order_id = excluded.merchant_order_id, updated_at = excluded.updated_at,
           ever_approved = MAX(ever_approved, excluded.ever_approved)`,
      )
      .run({ ...p, approved: p.status === 'approved' ? 1 : 0, at });
  }

  paymentsOf(orderId: string): PaymentRecord[] {
    return this.c.many(paymentFromRow, 'SELECT * FROM payments WHERE order_id = ? ORDER BY first_seen_at, payment_id', orderId);
  }

  /**
   * Payments that were approved at some point. A refund must be accounted for each of them even
   * once MP reports it `refunded` (e.g. our refund went through but we crashed before recording).
   */
  approvedPaymentsOf(orderId: string): PaymentRecord[] {
    return this.paymentsOf(orderId).filter((p) => p.everApproved);
  }

  getPayment(paymentId: string): PaymentRecord | undefined {
    return this.c.one(paymentFromRow, 'SELECT * FROM payments WHERE payment_id = ?', paymentId);
  }

  /** Payments of the order that were approved at some point and have no refund row at all. */
  unrefundedApprovedPaymentsOf(orderId: string): PaymentRecord[] {
    return this.c.many(
      paymentFromRow,
      `SELECT p.* FROM payments p
       WHERE p.order_id = ? AND p.ever_approved = 1
         AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = p.order_id AND r.payment_id = p.payment_id)
       ORDER BY p.first_seen_at, p.payment_id`,
      orderId,
    );
  }
}
