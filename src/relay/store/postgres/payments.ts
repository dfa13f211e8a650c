import type { PaymentStore } from '../api.js';
import { paymentFromRow } from '../rows.js';
import type { PaymentRecord } from '../types.js';
import type { PgConn } from './conn.js';

export class PgPayments implements PaymentStore {
  constructor(private readonly c: PgConn) {}

  async upsertPayment(p: Omit<PaymentRecord, 'firstSeenAt' | 'updatedAt' | 'everApproved'>, at: number): Promise<void> {
    await this.c.run(
      `INSERT INTO payments (payment_id, order_id, merchant_order_id, status, amount, currency, ever_approved, first_seen_at, updated_at)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $8)
       ON CONFLICT (payment_id) DO UPDATE SET status = excluded.status, amount = excluded.amount,
         currency = excluded.currency, merchant_order_id = excluded.merchant_order_id, updated_at = excluded.updated_at,
         ever_approved = GREATEST(payments.ever_approved, excluded.ever_approved)`,
      p.paymentId,
      p.orderId,
      p.merchantOrderId,
      p.status,
      p.amount,
      p.currency,
      p.status === 'approved' ? 1 : 0,
      at,
    );
  }

  paymentsOf(orderId: string): Promise<PaymentRecord[]> {
    return this.c.many(paymentFromRow, 'SELECT * FROM payments WHERE order_id = $1 ORDER BY first_seen_at, payment_id', orderId);
  }

  async approvedPaymentsOf(orderId: string): Promise<PaymentRecord[]> {
    return (await this.paymentsOf(orderId)).filter((p) => p.everApproved);
  }

  getPayment(paymentId: string): Promise<PaymentRecord | undefined> {
    return this.c.one(paymentFromRow, 'SELECT * FROM payments WHERE payment_id = $1', paymentId);
  }

  unrefundedApprovedPaymentsOf(orderId: string): Promise<PaymentRecord[]> {
    return this.c.many(
      paymentFromRow,
      `SELECT p.* FROM payments p
       WHERE p.order_id = $1 AND p.ever_approved = 1
         AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = p.order_id AND r.payment_id = p.payment_id)
       ORDER BY p.first_seen_at, p.payment_id`,
      orderId,
    );
  }
}
