import type { ContingencyCursor, OrderStore, SaleHours } from '../api.js';
import { mpOffer, type OfferEvent } from '../../../core/mp-offer.js';
import { relayOrder, type OrderEvent, type OrderState } from '../../../core/relay-order.js';
import { IllegalTransition } from '../../../core/state-machine.js';
import { dispensedFromRow, orderEventFromRow, orderFromRow } from '../rows.js';
import {
  StoreError,
  withoutReviewReasons,
  withReviewReason,
  type NewOrder,
  type OrderEventRecord,
  type OrderPatch,
  type OrderRecord,
} from '../types.js';
import type { PgConn } from './conn.js';

// Orders and their history on PostgreSQL. Several instances share the rows, so every
// read-then-write locks the order's row first (lockOrder, `SELECT … FOR UPDATE`) inside the
// transaction: two instances moving the same order serialise on it, and the second one sees the
// first one's result (and the transition table refuses the repeat), never a stale copy.

// The background queries' conditions, shared by the plain and the claiming form.
const CONTINGENCY_WHERE = `(state = 'pending' AND created_at <= $1 AND (last_notification_at IS NULL OR last_notification_at <= $2))
     OR (state IN ('cancelled','expired') AND updated_at >= $3)`;
const OVERDUE_WHERE = `state = 'paid' AND vend_result IS NULL AND vend_overdue_at IS NULL AND paid_at IS NOT NULL AND paid_at <= $1`;
const OFFER_WORK_WHERE = `offer_state IN ('due', 'withdraw_due')`;

export class PgOrders implements OrderStore {
  constructor(private readonly c: PgConn) {}

  /** fn on this module bound to a transaction: the caller's when there is one, else a new one. */
  private atomic<T>(fn: (tx: PgOrders) => Promise<T>): Promise<T> {
    return this.c.atomic((c) => fn(c === this.c ? this : new PgOrders(c)));
  }

  insertOrder(o: NewOrder): Promise<OrderRecord> {
    // the first step of the lifecycle is checked like the others (core/relay-order.ts)
    const event = o.state === 'pending' ? 'created' : 'rejected';
    if (relayOrder.next('new', event) !== o.state) return Promise.reject(new IllegalTransition(relayOrder.name, 'new', event));
    return this.atomic(async (tx) => {
      const r = await tx.c.rows(
        `INSERT INTO orders (id, kiosk_id, slot, sku, title, quantity, unit_price, amount, currency, claimed_amount,
           claimed_currency, state, reject_reason, deadline, created_at, updated_at, offer_state, qr)
         VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $15, $16, $17) RETURNING *`,
        [
          o.id,
          o.kioskId,
          o.slot,
          o.sku,
          o.title,
          o.quantity,
          o.unitPrice,
          o.amount,
          o.currency,
          o.claimedAmount,
          o.claimedCurrency,
          o.state,
          o.rejectReason ?? null,
          o.deadline,
          o.createdAt,
          o.offerState ?? 'local',
          o.qr ?? null,
        ],
      );
      await tx.insertEvent(o.id, null, o.state, event, o.rejectReason ?? null, o.createdAt);
      return orderFromRow(r[0]!);
    });
  }

  getOrder(id: string): Promise<OrderRecord | undefined> {
    return this.c.one(orderFromRow, 'SELECT * FROM orders WHERE id = $1', id);
  }

  /** The order's row, locked until this transaction ends (another instance's lock is waited for). */
  private lockOrder(id: string): Promise<OrderRecord | undefined> {
    return this.c.one(orderFromRow, 'SELECT * FROM orders WHERE id = $1 FOR UPDATE', id);
  }

  pendingOrderOf(kioskId: string): Promise<OrderRecord | undefined> {
    return this.c.one(orderFromRow, `SELECT * FROM orders WHERE kiosk_id = $1 AND state = 'pending' ORDER BY created_at DESC, id DESC LIMIT 1`, kioskId);
  }

  latestOrderOf(kioskId: string): Promise<OrderRecord | undefined> {
    // Ties on created_at go to the later inserted (api.ts). PostgreSQL has no rowid: the order's
    // first history row (its insert) carries the insertion order, looked up for the tied rows only.
    return this.c.one(
      orderFromRow,
      `SELECT o.* FROM orders o
       WHERE o.kiosk_id = $1 AND o.state <> 'rejected'
         AND o.created_at = (SELECT MAX(created_at) FROM orders WHERE kiosk_id = $1 AND state <> 'rejected')
       ORDER BY (SELECT MIN(seq) FROM order_events e WHERE e.order_id = o.id) DESC LIMIT 1`,
      kioskId,
    );
  }

  ordersInState(state: OrderState): Promise<OrderRecord[]> {
    return this.c.many(orderFromRow, 'SELECT * FROM orders WHERE state = $1 ORDER BY created_at, id', state);
  }

  pendingPastDeadline(now: number, kioskId?: string): Promise<OrderRecord[]> {
    return kioskId
      ? this.c.many(orderFromRow, `SELECT * FROM orders WHERE state = 'pending' AND deadline <= $1 AND kiosk_id = $2 ORDER BY deadline, id`, now, kioskId)
      : this.c.many(orderFromRow, `SELECT * FROM orders WHERE state = 'pending' AND deadline <= $1 ORDER BY deadline, id`, now);
  }

  openContingencyCandidates(createdBefore: number, quietSince: number, limit: number): Promise<OrderRecord[]> {
    return this.c.many(
      orderFromRow,
      `SELECT * FROM orders WHERE state = 'pending' AND created_at <= $1 AND (last_notification_at IS NULL OR last_notification_at <= $2)
       ORDER BY deadline, id LIMIT $3`,
      createdBefore,
      quietSince,
      limit,
    );
  }

  /** As SQLite's (sqlite/orders.ts): the partial index orders_closed, a keyset cursor, newest first. */
  closedContingencyCandidates(closedSince: number, below: ContingencyCursor | undefined, limit: number): Promise<OrderRecord[]> {
    return below
      ? this.c.many(
          orderFromRow,
          `SELECT * FROM orders WHERE state IN ('cancelled','expired') AND updated_at >= $1 AND (updated_at, id) < ($2, $3)
           ORDER BY updated_at DESC, id DESC LIMIT $4`,
          closedSince,
          below.updatedAt,
          below.id,
          limit,
        )
      : this.c.many(orderFromRow, `SELECT * FROM orders WHERE state IN ('cancelled','expired') AND updated_at >= $1 ORDER BY updated_at DESC, id DESC LIMIT $2`, closedSince, limit);
  }

  countOrders(state: OrderState): Promise<number> {
    return this.c.count('SELECT COUNT(*) AS n FROM orders WHERE state = $1', state);
  }

  async saleHoursOf(kioskId: string, since: number): Promise<SaleHours> {
    // index orders_kiosk_state; integer division of a BIGINT: the UTC hour each sale was paid in
    const hours = await this.c.many(
      (r) => (r.h as number) * 3_600_000,
      `SELECT DISTINCT COALESCE(paid_at, updated_at) / 3600000 AS h FROM orders
       WHERE kiosk_id = $1 AND state = 'vended' AND COALESCE(paid_at, updated_at) >= $2 ORDER BY h`,
      kioskId,
      since,
    );
    const last = await this.c.one((r) => (r.t as number | null) ?? null, `SELECT MAX(COALESCE(paid_at, updated_at)) AS t FROM orders WHERE kiosk_id = $1 AND state = 'vended'`, kioskId);
    return { hours, lastSaleAt: last ?? null };
  }

  recentOrders(opts: { limit: number; kioskId?: string; state?: OrderState }): Promise<OrderRecord[]> {
    const where: string[] = [];
    const params: unknown[] = [opts.limit];
    if (opts.kioskId) {
      params.push(opts.kioskId);
      where.push(`kiosk_id = $${params.length}`);
    }
    if (opts.state) {
      params.push(opts.state);
      where.push(`state = $${params.length}`);
    }
    const sql = `SELECT * FROM orders ${where.length ? `WHERE ${where.join(' AND ')}` : ''} ORDER BY created_at DESC, id DESC LIMIT $1`;
    return this.c.many(orderFromRow, sql, ...params);
  }

  ordersNeedingReview(): Promise<OrderRecord[]> {
    return this.c.many(orderFromRow, 'SELECT * FROM orders WHERE needs_review IS NOT NULL ORDER BY created_at, id');
  }

  countNeedingReview(): Promise<number> {
    return this.c.count('SELECT COUNT(*) AS n FROM orders WHERE needs_review IS NOT NULL');
  }

  /** Adds a reason for review (the same reason twice is kept once); true when the order changed. */
  flagReview(orderId: string, why: string): Promise<boolean> {
    return this.atomic(async (tx) => {
      const cur = await tx.lockOrder(orderId);
      if (!cur) throw new StoreError(`no order "${orderId}"`);
      const next = withReviewReason(cur.needsReview, why);
      if (next === undefined) return false;
      await tx.c.run('UPDATE orders SET needs_review = $1 WHERE id = $2', next, orderId);
      return true;
    });
  }

  /** Removes the reasons starting with `prefix`; null when none is left. */
  clearReview(orderId: string, prefix: string): Promise<boolean> {
    return this.atomic(async (tx) => {
      const cur = await tx.lockOrder(orderId);
      if (!cur) return false;
      const next = withoutReviewReasons(cur.needsReview, prefix);
      if (next === undefined) return false;
      await tx.c.run('UPDATE orders SET needs_review = $1 WHERE id = $2', next, orderId);
      return true;
    });
  }

  overdueVends(paidBefore: number): Promise<OrderRecord[]> {
    return this.c.many(orderFromRow, `SELECT * FROM orders WHERE ${OVERDUE_WHERE} ORDER BY paid_at, id`, paidBefore);
  }

  /** The watchdog's mark: flagged once, whatever restarts follow. */
  async markVendOverdue(orderId: string, at: number, why: string): Promise<void> {
    await this.atomic(async (tx) => {
      await tx.c.run('UPDATE orders SET vend_overdue_at = $1 WHERE id = $2', at, orderId);
      await tx.flagReview(orderId, why);
    });
  }

  /**
   * The ONLY way an order changes state: locks the row, checks the move against
   * core/relay-order.ts (throws IllegalTransition) and writes the history row. Two instances
   * moving the same order serialise on the lock; the second sees the first's state.
   */
  transitionOrder(id: string, event: OrderEvent, at: number, detail?: string | null, patch: OrderPatch = {}): Promise<OrderRecord> {
    return this.atomic(async (tx) => {
      const cur = await tx.lockOrder(id);
      if (!cur) throw new StoreError(`no order "${id}"`);
      const to = relayOrder.next(cur.state, event);
      if (to === 'new') throw new IllegalTransition(relayOrder.name, cur.state, event); // no row goes back before its start
      const r = await tx.c.rows(
        `UPDATE orders SET state = $2, updated_at = $3,
           paid_at = CASE WHEN $4::boolean THEN $5::bigint ELSE paid_at END,
           merchant_order_id = CASE WHEN $6::boolean THEN $7::text ELSE merchant_order_id END,
           payment_ids = CASE WHEN $8::boolean THEN $9::text ELSE payment_ids END,
           vend_result = CASE WHEN $10::boolean THEN $11::text ELSE vend_result END,
           needs_review = CASE WHEN $12::boolean THEN $13::text ELSE needs_review END
         WHERE id = $1 AND state = $14 RETURNING *`,
        [
          id,
          to,
          at,
          patch.paidAt !== undefined,
          patch.paidAt ?? null,
          patch.merchantOrderId !== undefined,
          patch.merchantOrderId ?? null,
          patch.paymentIds !== undefined,
          JSON.stringify(patch.paymentIds ?? []),
          patch.vendResult !== undefined,
          patch.vendResult ?? null,
          patch.needsReview !== undefined,
          patch.needsReview ?? null,
          cur.state,
        ],
      );
      // cannot happen while we hold the row lock; kept (as SCHEMA-CHANGES.md says) so a future
      // edit that drops the lock still refuses instead of overwriting another writer's move
      if (r.length !== 1) throw new IllegalTransition(relayOrder.name, (await tx.getOrder(id))?.state ?? cur.state, event);
      await tx.insertEvent(id, cur.state, to, event, detail ?? null, at);
      return orderFromRow(r[0]!);
    });
  }

  /** The order's standing at Mercado Pago moves only through core/mp-offer.ts. */
  moveOffer(id: string, event: OfferEvent, at: number, facts: { mpOrderId?: string; qr?: string; error?: string | null } = {}): Promise<OrderRecord> {
    return this.atomic(async (tx) => {
      const cur = await tx.lockOrder(id);
      if (!cur) throw new StoreError(`no order "${id}"`);
      const to = mpOffer.next(cur.offerState, event);
      const r = await tx.c.rows(
        `UPDATE orders SET offer_state = $2,
           mp_order_id = COALESCE($3, mp_order_id), qr = COALESCE($4, qr), offer_error = $5
         WHERE id = $1 AND offer_state = $6 RETURNING *`,
        [id, to, facts.mpOrderId ?? null, facts.qr ?? null, facts.error ?? null, cur.offerState],
      );
      if (r.length !== 1) throw new IllegalTransition(mpOffer.name, (await tx.getOrder(id))?.offerState ?? cur.offerState, event);
      if (to !== cur.offerState) await tx.insertEvent(id, cur.state, cur.state, `mp_${event}`, facts.error ?? facts.mpOrderId ?? null, at);
      return orderFromRow(r[0]!);
    });
  }

  async noteOfferError(id: string, error: string): Promise<void> {
    await this.c.run('UPDATE orders SET offer_error = $1 WHERE id = $2', error.slice(0, 500), id);
  }

  offerWork(): Promise<OrderRecord[]> {
    return this.c.many(orderFromRow, `SELECT * FROM orders WHERE ${OFFER_WORK_WHERE} ORDER BY created_at, id`);
  }

  /** Facts that are not a state change (a vend_unknown kept for review, a notification seen). */
  async patchOrder(id: string, patch: OrderPatch & { lastNotificationAt?: number }): Promise<void> {
    const sets: string[] = [];
    const params: unknown[] = [id];
    const map: Record<string, [string, unknown]> = {
      paidAt: ['paid_at', patch.paidAt],
      merchantOrderId: ['merchant_order_id', patch.merchantOrderId],
      paymentIds: ['payment_ids', patch.paymentIds === undefined ? undefined : JSON.stringify(patch.paymentIds)],
      vendResult: ['vend_result', patch.vendResult],
      needsReview: ['needs_review', patch.needsReview],
      lastNotificationAt: ['last_notification_at', patch.lastNotificationAt],
    };
    for (const [col, v] of Object.values(map)) {
      if (v === undefined) continue;
      params.push(v);
      sets.push(`${col} = $${params.length}`);
    }
    if (sets.length) await this.c.run(`UPDATE orders SET ${sets.join(', ')} WHERE id = $1`, ...params);
  }

  async noteOrderEvent(orderId: string, state: OrderState, event: string, detail: string | null, at: number): Promise<void> {
    await this.insertEvent(orderId, state, state, event, detail, at);
  }

  private async insertEvent(orderId: string, from: OrderState | null, to: OrderState, event: string, detail: string | null, at: number): Promise<void> {
    await this.c.run('INSERT INTO order_events (order_id, "from", "to", event, detail, at) VALUES ($1, $2, $3, $4, $5, $6)', orderId, from, to, event, detail, at);
  }

  orderEvents(orderId: string): Promise<OrderEventRecord[]> {
    return this.c.many(orderEventFromRow, 'SELECT * FROM order_events WHERE order_id = $1 ORDER BY seq', orderId);
  }

  dispensedBySlot(kioskId: string, from: number, to: number): Promise<Array<{ slot: number | null; count: number; amount: number; currency: string }>> {
    return this.c.many(
      dispensedFromRow,
      `SELECT slot, currency, COUNT(*) AS n, SUM(amount)::bigint AS amount FROM orders
       WHERE kiosk_id = $1 AND vend_result = 'dispensed' AND paid_at > $2 AND paid_at <= $3
       GROUP BY slot, currency ORDER BY slot NULLS FIRST, currency`,
      kioskId,
      from,
      to,
    );
  }

  // ---- background work shared between instances (FOR UPDATE SKIP LOCKED) -----------------------
  //
  // Each claim* is the same query as its plain twin, limited, with FOR UPDATE SKIP LOCKED: rows
  // another instance has claimed (or is transitioning right now) are skipped, not waited for. The
  // locks last until the transaction ends, so call them on the store given by transaction() and
  // do the work (the transition, the refund row) in that same transaction.

  async claimPendingPastDeadline(now: number, limit: number): Promise<OrderRecord[]> {
    this.c.requireTransaction('claimPendingPastDeadline');
    return await this.c.many(orderFromRow, `SELECT * FROM orders WHERE state = 'pending' AND deadline <= $1 ORDER BY deadline, id LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit);
  }

  async claimContingencyCandidates(createdBefore: number, quietSince: number, closedSince: number, limit: number): Promise<OrderRecord[]> {
    this.c.requireTransaction('claimContingencyCandidates');
    return await this.c.many(orderFromRow, `SELECT * FROM orders WHERE ${CONTINGENCY_WHERE} ORDER BY created_at, id LIMIT $4 FOR UPDATE SKIP LOCKED`, createdBefore, quietSince, closedSince, limit);
  }

  /** e.g. the orders in `refunding` whose refunds the refund worker retries */
  async claimOrdersInState(state: OrderState, limit: number): Promise<OrderRecord[]> {
    this.c.requireTransaction('claimOrdersInState');
    return await this.c.many(orderFromRow, 'SELECT * FROM orders WHERE state = $1 ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED', state, limit);
  }

  async claimOfferWork(limit: number): Promise<OrderRecord[]> {
    this.c.requireTransaction('claimOfferWork');
    return await this.c.many(orderFromRow, `SELECT * FROM orders WHERE ${OFFER_WORK_WHERE} ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit);
  }

  async claimOverdueVends(paidBefore: number, limit: number): Promise<OrderRecord[]> {
    this.c.requireTransaction('claimOverdueVends');
    return await this.c.many(orderFromRow, `SELECT * FROM orders WHERE ${OVERDUE_WHERE} ORDER BY paid_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`, paidBefore, limit);
  }
}
