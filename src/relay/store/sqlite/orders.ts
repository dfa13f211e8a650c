import type { ContingencyCursor, OrderStore, SaleHours } from '../api.js';
import { mpOffer, type OfferEvent } from '../../../core/mp-offer.js';
import { relayOrder, type OrderEvent, type OrderState } from '../../../core/relay-order.js';
import { IllegalTransition } from '../../../core/state-machine.js';
import {
  StoreError,
  withoutReviewReasons,
  withReviewReason,
  type NewOrder,
  type OrderEventRecord,
  type OrderPatch,
  type OrderRecord,
} from '../types.js';
import type { SqliteConn, Sync } from './conn.js';
import { dispensedFromRow, orderEventFromRow, orderFromRow } from '../rows.js';

export class SqliteOrders implements Sync<OrderStore> {
  constructor(private readonly c: SqliteConn) {}

  insertOrder(o: NewOrder): OrderRecord {
    // the first step of the lifecycle is checked like the others (core/relay-order.ts)
    const event = o.state === 'pending' ? 'created' : 'rejected';
    if (relayOrder.next('new', event) !== o.state) throw new IllegalTransition(relayOrder.name, 'new', event);
    this.c.db
      .prepare(
        `INSERT INTO orders (id, kiosk_id, slot, sku, title, quantity, unit_price, amount, currency, claimed_amount,
           claimed_currency, state, reject_reason, deadline, created_at, updated_at, offer_state, qr)
         VALUES (@id, @kioskId, @slot, @sku, @title, @quantity, @unitPrice, @amount, @currency, @claimedAmount,
           @claimedCurrency, @state, @rejectReason, @deadline, @createdAt, @createdAt, @offerState, @qr)`,
      )
      .run({ ...o, rejectReason: o.rejectReason ?? null, offerState: o.offerState ?? 'local', qr: o.qr ?? null });
    this.insertEvent(o.id, null, o.state, event, o.rejectReason ?? null, o.createdAt);
    return this.getOrder(o.id)!;
  }

  getOrder(id: string): OrderRecord | undefined {
    return this.c.one(orderFromRow, 'SELECT * FROM orders WHERE id = ?', id);
  }

  pendingOrderOf(kioskId: string): OrderRecord | undefined {
    return this.c.one(orderFromRow, `SELECT * FROM orders WHERE kiosk_id = ? AND state = 'pending' ORDER BY created_at DESC LIMIT 1`, kioskId);
  }

  latestOrderOf(kioskId: string): OrderRecord | undefined {
    return this.c.one(
      orderFromRow,
      `SELECT * FROM orders WHERE kiosk_id = ? AND state <> 'rejected' ORDER BY created_at DESC, rowid DESC LIMIT 1`,
      kioskId,
    );
  }

  ordersInState(state: OrderState): OrderRecord[] {
    return this.c.many(orderFromRow, 'SELECT * FROM orders WHERE state = ? ORDER BY created_at', state);
  }

  pendingPastDeadline(now: number, kioskId?: string): OrderRecord[] {
    return kioskId
      ? this.c.many(orderFromRow, `SELECT * FROM orders WHERE state = 'pending' AND deadline <= ? AND kiosk_id = ?`, now, kioskId)
      : this.c.many(orderFromRow, `SELECT * FROM orders WHERE state = 'pending' AND deadline <= ?`, now);
  }

  /** Pending orders without news, soonest deadline first (index orders_state). */
  openContingencyCandidates(createdBefore: number, quietSince: number, limit: number): OrderRecord[] {
    return this.c.many(
      orderFromRow,
      `SELECT * FROM orders
       WHERE state = 'pending' AND created_at <= @createdBefore
         AND (last_notification_at IS NULL OR last_notification_at <= @quietSince)
       ORDER BY deadline, id LIMIT @limit`,
      { createdBefore, quietSince, limit },
    );
  }

  /**
   * Cancelled/expired orders closed since `closedSince`, newest first, below the keyset cursor.
   * The partial index orders_closed (updated_at, id) holds only these states, so a page reads
   * `limit` index entries whatever the history; `updated_at <= @u` bounds the index range and the
   * rest of the condition only sorts out the orders closed in the same millisecond. INDEXED BY:
   * without statistics SQLite picks orders_state and sorts every cancelled order ever made.
   */
  closedContingencyCandidates(closedSince: number, below: ContingencyCursor | undefined, limit: number): OrderRecord[] {
    return below
      ? this.c.many(
          orderFromRow,
          `SELECT * FROM orders INDEXED BY orders_closed
           WHERE state IN ('cancelled','expired') AND updated_at >= @closedSince
             AND updated_at <= @u AND (updated_at < @u OR id < @id)
           ORDER BY updated_at DESC, id DESC LIMIT @limit`,
          { closedSince, u: below.updatedAt, id: below.id, limit },
        )
      : this.c.many(
          orderFromRow,
          `SELECT * FROM orders INDEXED BY orders_closed
           WHERE state IN ('cancelled','expired') AND updated_at >= @closedSince
           ORDER BY updated_at DESC, id DESC LIMIT @limit`,
          { closedSince, limit },
        );
  }

  countOrders(state: OrderState): number {
    return this.c.count('SELECT COUNT(*) AS n FROM orders WHERE state = ?', state);
  }

  saleHoursOf(kioskId: string, since: number): SaleHours {
    // index orders_kiosk_state; integer division: the UTC hour each sale was paid in
    const hours = this.c.many(
      (r) => (r.h as number) * 3_600_000,
      `SELECT DISTINCT COALESCE(paid_at, updated_at) / 3600000 AS h FROM orders
       WHERE kiosk_id = ? AND state = 'vended' AND COALESCE(paid_at, updated_at) >= ? ORDER BY h`,
      kioskId,
      since,
    );
    const last = this.c.one((r) => (r.t as number | null) ?? null, `SELECT MAX(COALESCE(paid_at, updated_at)) AS t FROM orders WHERE kiosk_id = ? AND state = 'vended'`, kioskId);
    return { hours, lastSaleAt: last ?? null };
  }

  /** Newest first, for the operator's `qrkiosk relay orders`. */
  recentOrders(opts: { limit: number; kioskId?: string; state?: OrderState }): OrderRecord[] {
    const where: string[] = [];
    const params: Record<string, unknown> = { limit: opts.limit };
    if (opts.kioskId) {
      where.push('kiosk_id = @kioskId');
      params.kioskId = opts.kioskId;
    }
    if (opts.state) {
      where.push('state = @state');
      params.state = opts.state;
    }
    const sql = `SELECT * FROM orders ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, rowid DESC LIMIT @limit`;
    return this.c.many(orderFromRow, sql, params);
  }

  /** Orders a person must look at (needs_review set), oldest first. */
  ordersNeedingReview(): OrderRecord[] {
    return this.c.many(orderFromRow, 'SELECT * FROM orders WHERE needs_review IS NOT NULL ORDER BY created_at, rowid');
  }

  countNeedingReview(): number {
    return this.c.count('SELECT COUNT(*) AS n FROM orders WHERE needs_review IS NOT NULL');
  }

  /**
   * Adds a reason for review to the order (kept alongside earlier ones; the same reason twice is
   * kept once). Returns whether the order changed, so callers log a new reason only once.
   */
  flagReview(orderId: string, why: string): boolean {
    const cur = this.getOrder(orderId);
    if (!cur) throw new StoreError(`no order "${orderId}"`);
    const next = withReviewReason(cur.needsReview, why);
    if (next === undefined) return false;
    this.c.run('UPDATE orders SET needs_review = ? WHERE id = ?', next, orderId);
    return true;
  }

  /** Removes the reasons starting with `prefix` (the cause went away); null when none is left. */
  clearReview(orderId: string, prefix: string): boolean {
    const cur = this.getOrder(orderId);
    if (!cur) return false;
    const next = withoutReviewReasons(cur.needsReview, prefix);
    if (next === undefined) return false;
    this.c.run('UPDATE orders SET needs_review = ? WHERE id = ?', next, orderId);
    return true;
  }

  /** Paid (released) before `paidBefore`, no vend.result yet, not flagged by the watchdog yet. */
  overdueVends(paidBefore: number): OrderRecord[] {
    return this.c.many(
      orderFromRow,
      `SELECT * FROM orders
       WHERE state = 'paid' AND vend_result IS NULL AND vend_overdue_at IS NULL AND paid_at IS NOT NULL AND paid_at <= ?
       ORDER BY paid_at`,
      paidBefore,
    );
  }

  /** The watchdog's mark: flagged once, whatever restarts follow. */
  markVendOverdue(orderId: string, at: number, why: string): void {
    this.c.atomically(() => {
      this.c.db.prepare('UPDATE orders SET vend_overdue_at = ? WHERE id = ?').run(at, orderId);
      this.flagReview(orderId, why);
    });
  }

  /**
   * The ONLY way an order changes state: checks the move against core/relay-order.ts (throws
   * IllegalTransition, which callers log and refuse) and writes the history row.
   */
  transitionOrder(id: string, event: OrderEvent, at: number, detail?: string | null, patch: OrderPatch = {}): OrderRecord {
    return this.c.atomically(() => {
      const cur = this.getOrder(id);
      if (!cur) throw new StoreError(`no order "${id}"`);
      const to = relayOrder.next(cur.state, event);
      if (to === 'new') throw new IllegalTransition(relayOrder.name, cur.state, event); // no row goes back before its start
      const res = this.c.db
        .prepare(
          `UPDATE orders SET state = @to, updated_at = @at,
             paid_at = CASE WHEN @setPaidAt THEN @paidAt ELSE paid_at END,
             merchant_order_id = CASE WHEN @setMo THEN @mo ELSE merchant_order_id END,
             payment_ids = CASE WHEN @setPayments THEN @payments ELSE payment_ids END,
             vend_result = CASE WHEN @setVend THEN @vend ELSE vend_result END,
             needs_review = CASE WHEN @setReview THEN @review ELSE needs_review END
           WHERE id = @id AND state = @from`,
        )
        .run({
          id,
          from: cur.state,
          to,
          at,
          setPaidAt: patch.paidAt !== undefined ? 1 : 0,
          paidAt: patch.paidAt ?? null,
          setMo: patch.merchantOrderId !== undefined ? 1 : 0,
          mo: patch.merchantOrderId ?? null,
          setPayments: patch.paymentIds !== undefined ? 1 : 0,
          payments: JSON.stringify(patch.paymentIds ?? []),
          setVend: patch.vendResult !== undefined ? 1 : 0,
          vend: patch.vendResult ?? null,
          setReview: patch.needsReview !== undefined ? 1 : 0,
          review: patch.needsReview ?? null,
        });
      // Conditional on the state read: another writer that moved the order first wins, this
      // move is refused as it would have been had it come second (see ../api.ts).
      if (res.changes === 0) throw new IllegalTransition(relayOrder.name, this.getOrder(id)?.state ?? cur.state, event);
      this.insertEvent(id, cur.state, to, event, detail ?? null, at);
      return this.getOrder(id)!;
    });
  }

  /**
   * The order's standing at Mercado Pago moves only through core/mp-offer.ts (IllegalTransition
   * otherwise). `facts` records what the call returned (its id, the QR) or why it failed.
   */
  moveOffer(id: string, event: OfferEvent, at: number, facts: { mpOrderId?: string; qr?: string; error?: string | null } = {}): OrderRecord {
    return this.c.atomically(() => {
      const cur = this.getOrder(id);
      if (!cur) throw new StoreError(`no order "${id}"`);
      const to = mpOffer.next(cur.offerState, event);
      const res = this.c.db
        .prepare(
          `UPDATE orders SET offer_state = @to,
             mp_order_id = COALESCE(@mpOrderId, mp_order_id), qr = COALESCE(@qr, qr), offer_error = @error
           WHERE id = @id AND offer_state = @from`,
        )
        .run({ id, from: cur.offerState, to, mpOrderId: facts.mpOrderId ?? null, qr: facts.qr ?? null, error: facts.error ?? null });
      if (res.changes === 0) throw new IllegalTransition(mpOffer.name, this.getOrder(id)?.offerState ?? cur.offerState, event);
      if (to !== cur.offerState) this.insertEvent(id, cur.state, cur.state, `mp_${event}`, facts.error ?? facts.mpOrderId ?? null, at);
      return this.getOrder(id)!;
    });
  }

  /** Records a failed offer/withdraw attempt that will be retried (no move). */
  noteOfferError(id: string, error: string): void {
    this.c.db.prepare('UPDATE orders SET offer_error = ? WHERE id = ?').run(error.slice(0, 500), id);
  }

  /** Orders whose Mercado Pago side has work to do (make payable, withdraw), oldest first. */
  offerWork(): OrderRecord[] {
    return this.c.many(orderFromRow, `SELECT * FROM orders WHERE offer_state IN ('due', 'withdraw_due') ORDER BY created_at, rowid`);
  }

  /** Facts that are not a state change (a vend_unknown kept for review, a notification seen). */
  patchOrder(id: string, patch: OrderPatch & { lastNotificationAt?: number }): void {
    const sets: string[] = [];
    const params: Record<string, unknown> = { id };
    const map: Record<string, [string, unknown]> = {
      paidAt: ['paid_at', patch.paidAt],
      merchantOrderId: ['merchant_order_id', patch.merchantOrderId],
      paymentIds: ['payment_ids', patch.paymentIds === undefined ? undefined : JSON.stringify(patch.paymentIds)],
      vendResult: ['vend_result', patch.vendResult],
      needsReview: ['needs_review', patch.needsReview],
      lastNotificationAt: ['last_notification_at', patch.lastNotificationAt],
    };
    for (const [k, [col, v]] of Object.entries(map)) {
      if (v === undefined) continue;
      sets.push(`${col} = @${k}`);
      params[k] = v;
    }
    if (sets.length) this.c.db.prepare(`UPDATE orders SET ${sets.join(', ')} WHERE id = @id`).run(params);
  }

  /** An audit line in the order's history without a state change (e.g. a refused transition). */
  noteOrderEvent(orderId: string, state: OrderState, event: string, detail: string | null, at: number): void {
    this.insertEvent(orderId, state, state, event, detail, at);
  }

  private insertEvent(orderId: string, from: OrderState | null, to: OrderState, event: string, detail: string | null, at: number) {
    this.c.db
      .prepare('INSERT INTO order_events (order_id, "from", "to", event, detail, at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(orderId, from, to, event, detail, at);
  }

  orderEvents(orderId: string): OrderEventRecord[] {
    return this.c.many(orderEventFromRow, 'SELECT * FROM order_events WHERE order_id = ? ORDER BY seq', orderId);
  }

  /** qrkiosk's own sales of a kiosk: vends reported dispensed for orders paid in (from, to], per slot. */
  dispensedBySlot(kioskId: string, from: number, to: number): Array<{ slot: number | null; count: number; amount: number; currency: string }> {
    return this.c.many(
      dispensedFromRow,
      `SELECT slot, currency, COUNT(*) AS n, SUM(amount) AS amount FROM orders
       WHERE kiosk_id = ? AND vend_result = 'dispensed' AND paid_at > ? AND paid_at <= ?
       GROUP BY slot, currency ORDER BY slot`,
      kioskId,
      from,
      to,
    );
  }
}
