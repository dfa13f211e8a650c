import { AsyncLocalStorage } from 'node:async_hooks';
import pg from 'pg';
import type { OrderEvent, OrderState } from '../../../core/relay-order.js';
import { relayOrder } from '../../../core/relay-order.js';
import { mpOffer, type OfferEvent } from '../../../core/mp-offer.js';
import { IllegalTransition } from '../../../core/state-machine.js';
import { crashPoint } from '../../../runtime/crash-hook.js';
import { kioskCommand, type CommandEvent, type CommandState } from '../../../core/kiosk-command.js';
import type { CommandPatch, CommandRecord, CommandRefusalRecord, KioskPrices, Presence, RefillRecord, StoredStatus } from '../../fleet-recorder.js';
import { apiKeyFromRow, commandFromRow, commandHistoryFromRow, pricesFromRow, refillFromRow, refusalFromRow, statusFromRow, REFUSALS_KEPT } from '../recorder-rows.js';
import type { DexAuditFrame, PaymentModelName } from '../../../protocol/messages.js';
import type { ContingencyCursor, RelayStore, SaleRow } from '../api.js';
import { SIGNAL_CHANNEL } from '../../fleet/signals.js';
import { outboundDelivery, type DeliveryEvent, type DeliveryState } from '../../../core/outbound-delivery.js';
import { alertFromRow, deliveryFromRow, presenceFromRow } from '../fleet-rows.js';
import type { AlertRecord, DeliveryRecord, NewDelivery, OperatorAuditRecord, OperatorRecord, OperatorSessionRecord, PresenceRow } from '../types.js';
import {
  StoreError,
  checkKioskInput,
  checkStoreExternalId,
  hashToken,
  newKioskToken,
  newPosKey,
  posPath,
  withReviewReason,
  withoutReviewReasons,
  type AddKioskInput,
  type AddedKiosk,
  type ApiKeyRecord,
  type DexAuditRecord,
  type Kiosk,
  type NewOrder,
  type NotificationRecord,
  type OrderEventRecord,
  type OrderPatch,
  type OrderRecord,
  type OutboxRecord,
  type PaymentRecord,
  type RefundReason,
  type RefundRecord,
} from '../types.js';
import {
  dexAuditFromRow,
  kioskFromRow,
  notificationFromRow,
  orderEventFromRow,
  orderFromRow,
  outboxFromRow,
  paymentFromRow,
  refundFromRow,
  type Row,
} from './rows.js';

// The relay's store on PostgreSQL: the same methods, arguments and results as the SQLite store,
// each a Promise. Several relay instances share one database, so every read-then-write of the
// SQLite code is here either one conditional statement or a read that locks its row
// (`SELECT … FOR UPDATE`) inside a transaction: two instances handling the same notification at
// the same moment serialise on the order's row, and the second one sees the first one's result
// (and the transition table refuses the repeat), never a stale copy.
//
// Background work (expiry, contingency, refunds, notifications, offers, the vend watchdog) is
// shared out with the claim* methods: `SELECT … FOR UPDATE SKIP LOCKED` inside a transaction, so
// each instance takes rows no other instance holds, and a row goes back to the pool by itself
// when the instance holding it dies (its connection closes, its transaction rolls back).

/** Held while a kiosk revision is taken and until commit: revisions then commit in their order. */
const REVISION_LOCK = `SELECT pg_advisory_xact_lock(hashtext('qrkiosk kiosk revision ' || current_schema()))`;
const NEXT_REVISION = '(SELECT COALESCE(MAX(revision), 0) + 1 FROM kiosks)';

const UNIQUE_VIOLATION = '23505';

type Queryable = Pick<pg.Pool, 'query'> | pg.PoolClient;

interface TxState {
  pool: pg.Pool;
  client: pg.PoolClient;
  /** false once the transaction ended: a tx store kept past its callback must not run queries */
  open: boolean;
  savepoints: number;
}

/** Which transaction (if any) the current async context is inside (follows fn's awaits). */
const insideTransaction = new AsyncLocalStorage<TxState>();

interface Shared {
  calls: number;
  closed: boolean;
}

export class PostgresRelayStore implements RelayStore {
  readonly kind = 'postgres' as const;

  /** @internal use openPostgresStore */
  constructor(
    private readonly pool: pg.Pool,
    private readonly tx: TxState | null = null,
    private readonly shared: Shared = { calls: 0, closed: false },
  ) {}

  // ---- plumbing ---------------------------------------------------------------------------------

  private get q(): Queryable {
    if (!this.tx) {
      // a running transaction finishes on its own connection; close() waits for it
      if (this.shared.closed) throw new StoreError('the relay store is closed');
      this.refuseInsideOwnTransaction();
      return this.pool;
    }
    if (!this.tx.open) throw new StoreError('this transaction has ended: use the store passed to transaction() only inside its callback');
    return this.tx.client;
  }

  private async rows(sql: string, params: unknown[] = []): Promise<Row[]> {
    return (await this.q.query<Row>(sql, params)).rows;
  }

  private async one<T>(fromRow: (r: Row) => T, sql: string, ...params: unknown[]): Promise<T | undefined> {
    const r = (await this.rows(sql, params))[0];
    return r ? fromRow(r) : undefined;
  }

  private async many<T>(fromRow: (r: Row) => T, sql: string, ...params: unknown[]): Promise<T[]> {
    return (await this.rows(sql, params)).map(fromRow);
  }

  private async count(sql: string, ...params: unknown[]): Promise<number> {
    return (await this.rows(sql, params))[0]!.n as number;
  }

  private async run(sql: string, ...params: unknown[]): Promise<number> {
    return (await this.q.query(sql, params)).rowCount ?? 0;
  }

  /**
   * The POS-url poll reuses an answer while this number stays the same. Other instances write to
   * the same database without this process seeing it, so on PostgreSQL "no write here" never
   * means "nothing changed": every call returns a new number and the cache is never reused.
   */
  writeCount(): number {
    return ++this.shared.calls;
  }

  get inTransaction(): boolean {
    return this.tx !== null;
  }

  /**
   * Runs fn in one transaction on one pooled connection (a savepoint when nested): the state
   * change and its outbox row commit together or not at all. fn gets a store bound to that
   * transaction; it rolls back when fn throws, and the error is thrown on.
   */
  async transaction<T>(fn: (tx: PostgresRelayStore) => Promise<T>): Promise<T> {
    if (this.tx) return this.savepoint(fn);
    if (this.shared.closed) throw new StoreError('the relay store is closed');
    this.refuseInsideOwnTransaction();
    const client = await this.pool.connect();
    const state: TxState = { pool: this.pool, client, open: true, savepoints: 0 };
    let broken: Error | undefined;
    // A checked-out client whose connection dies between two queries (server restart, network)
    // emits 'error', and the pool listens only to idle clients: unheard, it would crash the
    // process. Noted instead; the transaction's next query fails and it rolls back as any other.
    const onError = (err: Error) => {
      broken = err;
    };
    client.on('error', onError);
    try {
      await client.query('BEGIN');
      let result: T;
      try {
        result = await insideTransaction.run(state, () => fn(new PostgresRelayStore(this.pool, state, this.shared)));
        crashPoint('relay.uncommitted'); // crash test hook: written, not committed
        await client.query('COMMIT');
      } catch (err) {
        await client.query('ROLLBACK').catch((e: Error) => {
          broken = e; // the connection is unusable: the pool must not hand it out again
        });
        throw err;
      }
      crashPoint('relay.committed'); // crash test hook: committed
      return result;
    } finally {
      state.open = false;
      client.off('error', onError);
      client.release(broken);
    }
  }

  private async savepoint<T>(fn: (tx: PostgresRelayStore) => Promise<T>): Promise<T> {
    const tx = this.tx!;
    const name = `sp${++tx.savepoints}`;
    await this.q.query(`SAVEPOINT ${name}`);
    try {
      const r = await fn(this);
      await tx.client.query(`RELEASE SAVEPOINT ${name}`);
      return r;
    } catch (err) {
      await tx.client.query(`ROLLBACK TO SAVEPOINT ${name}`);
      throw err;
    }
  }

  /**
   * A call on the outer store from inside one of its transactions runs on another connection,
   * outside the transaction: it does not see its writes, and waits forever for a row the
   * transaction has locked. Refused, as the SQLite store refuses it.
   */
  private refuseInsideOwnTransaction(): void {
    const open = insideTransaction.getStore();
    if (open?.open && open.pool === this.pool) {
      throw new StoreError(
        'a store call was made on the store itself from inside its own transaction, where it would not see the transaction and could wait for it forever: make it on the `tx` handle the transaction passed in',
      );
    }
  }

  /** fn inside a transaction: this one when there is one (its row locks last to its end), else a new one. */
  private atomic<T>(fn: (tx: PostgresRelayStore) => Promise<T>): Promise<T> {
    return this.tx ? fn(this) : this.transaction(fn);
  }

  private requireTransaction(what: string): void {
    if (!this.tx) {
      throw new StoreError(
        `${what} claims rows with FOR UPDATE SKIP LOCKED, which last only until the transaction ends: call it on the store given by transaction()`,
      );
    }
  }

  /** Proves the database answers (health checks). */
  async ping(): Promise<void> {
    await this.q.query('SELECT 1');
  }

  /** Ends the pool (waits for checked-out connections to be released). */
  async close(): Promise<void> {
    if (this.tx) throw new StoreError('close() the store, not a transaction');
    if (this.shared.closed) return;
    this.shared.closed = true;
    await this.pool.end(); // waits for the connections checked out by running transactions
  }

  // ---- kiosks -----------------------------------------------------------------------------------

  async addKiosk(input: AddKioskInput, at = Date.now()): Promise<AddedKiosk> {
    const generation = checkKioskInput(input);
    const token = newKioskToken();
    const posKey = newPosKey();
    return this.atomic(async (tx) => {
      if (await tx.getKiosk(input.id)) throw new StoreError(`kiosk "${input.id}" already exists`);
      if (await tx.getKioskByPos(input.posExternalId)) {
        throw new StoreError(`POS external id "${input.posExternalId}" already belongs to another kiosk`);
      }
      try {
        await tx.run(
          `INSERT INTO kiosks (id, token_hash, pos_external_id, pos_key, payment_model, response_generation, pos_qr, created_at,
             model, model_mode, store_external_id)
           VALUES ($1, $2, $3, $4, 'unattended', $5, $6, $7, $8, $9, $10)`,
          input.id,
          hashToken(token),
          input.posExternalId,
          posKey,
          generation,
          input.posQr ?? null,
          at,
          input.model ?? 'unattended',
          input.modelMode ?? null,
          input.storeExternalId ?? null,
        );
      } catch (err) {
        // another instance added the same kiosk or POS between our check and our insert
        if ((err as { code?: string }).code === UNIQUE_VIOLATION) {
          throw new StoreError(`kiosk "${input.id}" or POS external id "${input.posExternalId}" already exists`);
        }
        throw err;
      }
      return { token, posKey, posPath: posPath(input.posExternalId, posKey), kiosk: (await tx.getKiosk(input.id))! };
    });
  }

  getKiosk(id: string): Promise<Kiosk | undefined> {
    return this.one(kioskFromRow, 'SELECT * FROM kiosks WHERE id = $1', id);
  }

  getKioskByTokenHash(tokenHash: string): Promise<Kiosk | undefined> {
    return this.one(kioskFromRow, 'SELECT * FROM kiosks WHERE token_hash = $1', tokenHash);
  }

  getKioskByPos(posExternalId: string): Promise<Kiosk | undefined> {
    return this.one(kioskFromRow, 'SELECT * FROM kiosks WHERE pos_external_id = $1', posExternalId);
  }

  listKiosks(): Promise<Kiosk[]> {
    return this.many(kioskFromRow, 'SELECT * FROM kiosks ORDER BY id');
  }

  /** Every change a kiosk must see takes the next revision, under a lock so revisions commit in order. */
  private async bumpRevision(id: string, set: string, ...params: unknown[]): Promise<void> {
    const changed = await this.atomic(async (tx) => {
      await tx.run(REVISION_LOCK);
      return tx.run(`UPDATE kiosks SET ${set}, revision = ${NEXT_REVISION} WHERE id = $1`, id, ...params);
    });
    if (changed === 0) throw new StoreError(`no kiosk "${id}"`);
  }

  setKioskPosQr(id: string, qr: string): Promise<void> {
    return this.bumpRevision(id, 'pos_qr = $2', qr);
  }

  /** The highest kiosk revision: changes after it are found with kiosksChangedAfter. */
  async kioskRevision(): Promise<number> {
    return (await this.rows('SELECT COALESCE(MAX(revision), 0) AS r FROM kiosks'))[0]!.r as number;
  }

  kiosksChangedAfter(revision: number): Promise<Kiosk[]> {
    return this.many(kioskFromRow, 'SELECT * FROM kiosks WHERE revision > $1 ORDER BY revision', revision);
  }

  setKioskModel(id: string, model: PaymentModelName, mode: string | null): Promise<void> {
    return this.bumpRevision(id, 'model = $2, model_mode = $3', model, mode);
  }

  async setKioskStore(id: string, storeExternalId: string): Promise<void> {
    checkStoreExternalId(storeExternalId);
    return this.bumpRevision(id, 'store_external_id = $2', storeExternalId);
  }

  async rotateKioskToken(id: string): Promise<string> {
    const token = newKioskToken();
    // a new revision: every running instance notices within a tick and drops the old token's link
    await this.bumpRevision(id, 'token_hash = $2', hashToken(token));
    return token;
  }

  // ---- orders -----------------------------------------------------------------------------------

  insertOrder(o: NewOrder): Promise<OrderRecord> {
    // the first step of the lifecycle is checked like the others (core/relay-order.ts)
    const event = o.state === 'pending' ? 'created' : 'rejected';
    if (relayOrder.next('new', event) !== o.state) return Promise.reject(new IllegalTransition(relayOrder.name, 'new', event));
    return this.atomic(async (tx) => {
      const r = await tx.rows(
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
    return this.one(orderFromRow, 'SELECT * FROM orders WHERE id = $1', id);
  }

  /** The order's row, locked until this transaction ends (another instance's lock is waited for). */
  private lockOrder(id: string): Promise<OrderRecord | undefined> {
    return this.one(orderFromRow, 'SELECT * FROM orders WHERE id = $1 FOR UPDATE', id);
  }

  pendingOrderOf(kioskId: string): Promise<OrderRecord | undefined> {
    return this.one(orderFromRow, `SELECT * FROM orders WHERE kiosk_id = $1 AND state = 'pending' ORDER BY created_at DESC, id DESC LIMIT 1`, kioskId);
  }

  latestOrderOf(kioskId: string): Promise<OrderRecord | undefined> {
    // Ties on created_at go to the later inserted (api.ts). PostgreSQL has no rowid: the order's
    // first history row (its insert) carries the insertion order, looked up for the tied rows only.
    return this.one(
      orderFromRow,
      `SELECT o.* FROM orders o
       WHERE o.kiosk_id = $1 AND o.state <> 'rejected'
         AND o.created_at = (SELECT MAX(created_at) FROM orders WHERE kiosk_id = $1 AND state <> 'rejected')
       ORDER BY (SELECT MIN(seq) FROM order_events e WHERE e.order_id = o.id) DESC LIMIT 1`,
      kioskId,
    );
  }

  ordersInState(state: OrderState): Promise<OrderRecord[]> {
    return this.many(orderFromRow, 'SELECT * FROM orders WHERE state = $1 ORDER BY created_at, id', state);
  }

  pendingPastDeadline(now: number, kioskId?: string): Promise<OrderRecord[]> {
    return kioskId
      ? this.many(orderFromRow, `SELECT * FROM orders WHERE state = 'pending' AND deadline <= $1 AND kiosk_id = $2 ORDER BY deadline, id`, now, kioskId)
      : this.many(orderFromRow, `SELECT * FROM orders WHERE state = 'pending' AND deadline <= $1 ORDER BY deadline, id`, now);
  }

  openContingencyCandidates(createdBefore: number, quietSince: number, limit: number): Promise<OrderRecord[]> {
    return this.many(
      orderFromRow,
      `SELECT * FROM orders WHERE state = 'pending' AND created_at <= $1 AND (last_notification_at IS NULL OR last_notification_at <= $2)
       ORDER BY deadline, id LIMIT $3`,
      createdBefore,
      quietSince,
      limit,
    );
  }

  /** As SQLite's (orders.ts): the partial index orders_closed, a keyset cursor, newest first. */
  closedContingencyCandidates(closedSince: number, below: ContingencyCursor | undefined, limit: number): Promise<OrderRecord[]> {
    return below
      ? this.many(
          orderFromRow,
          `SELECT * FROM orders WHERE state IN ('cancelled','expired') AND updated_at >= $1 AND (updated_at, id) < ($2, $3)
           ORDER BY updated_at DESC, id DESC LIMIT $4`,
          closedSince,
          below.updatedAt,
          below.id,
          limit,
        )
      : this.many(orderFromRow, `SELECT * FROM orders WHERE state IN ('cancelled','expired') AND updated_at >= $1 ORDER BY updated_at DESC, id DESC LIMIT $2`, closedSince, limit);
  }

  countOrders(state: OrderState): Promise<number> {
    return this.count('SELECT COUNT(*) AS n FROM orders WHERE state = $1', state);
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
    return this.many(orderFromRow, sql, ...params);
  }

  ordersNeedingReview(): Promise<OrderRecord[]> {
    return this.many(orderFromRow, 'SELECT * FROM orders WHERE needs_review IS NOT NULL ORDER BY created_at, id');
  }

  countNeedingReview(): Promise<number> {
    return this.count('SELECT COUNT(*) AS n FROM orders WHERE needs_review IS NOT NULL');
  }

  /** Adds a reason for review (the same reason twice is kept once); true when the order changed. */
  flagReview(orderId: string, why: string): Promise<boolean> {
    return this.atomic(async (tx) => {
      const cur = await tx.lockOrder(orderId);
      if (!cur) throw new StoreError(`no order "${orderId}"`);
      const next = withReviewReason(cur.needsReview, why);
      if (next === undefined) return false;
      await tx.run('UPDATE orders SET needs_review = $1 WHERE id = $2', next, orderId);
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
      await tx.run('UPDATE orders SET needs_review = $1 WHERE id = $2', next, orderId);
      return true;
    });
  }

  overdueVends(paidBefore: number): Promise<OrderRecord[]> {
    return this.many(orderFromRow, `SELECT * FROM orders WHERE ${OVERDUE_WHERE} ORDER BY paid_at, id`, paidBefore);
  }

  /** The watchdog's mark: flagged once, whatever restarts follow. */
  async markVendOverdue(orderId: string, at: number, why: string): Promise<void> {
    await this.atomic(async (tx) => {
      await tx.run('UPDATE orders SET vend_overdue_at = $1 WHERE id = $2', at, orderId);
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
      const r = await tx.rows(
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
      const r = await tx.rows(
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
    await this.run('UPDATE orders SET offer_error = $1 WHERE id = $2', error.slice(0, 500), id);
  }

  offerWork(): Promise<OrderRecord[]> {
    return this.many(orderFromRow, `SELECT * FROM orders WHERE ${OFFER_WORK_WHERE} ORDER BY created_at, id`);
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
    if (sets.length) await this.run(`UPDATE orders SET ${sets.join(', ')} WHERE id = $1`, ...params);
  }

  async noteOrderEvent(orderId: string, state: OrderState, event: string, detail: string | null, at: number): Promise<void> {
    await this.insertEvent(orderId, state, state, event, detail, at);
  }

  private async insertEvent(orderId: string, from: OrderState | null, to: OrderState, event: string, detail: string | null, at: number): Promise<void> {
    await this.run('INSERT INTO order_events (order_id, "from", "to", event, detail, at) VALUES ($1, $2, $3, $4, $5, $6)', orderId, from, to, event, detail, at);
  }

  orderEvents(orderId: string): Promise<OrderEventRecord[]> {
    return this.many(orderEventFromRow, 'SELECT * FROM order_events WHERE order_id = $1 ORDER BY seq', orderId);
  }

  // ---- payments ---------------------------------------------------------------------------------

  async upsertPayment(p: Omit<PaymentRecord, 'firstSeenAt' | 'updatedAt' | 'everApproved'>, at: number): Promise<void> {
    await this.run(
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
    return this.many(paymentFromRow, 'SELECT * FROM payments WHERE order_id = $1 ORDER BY first_seen_at, payment_id', orderId);
  }

  async approvedPaymentsOf(orderId: string): Promise<PaymentRecord[]> {
    return (await this.paymentsOf(orderId)).filter((p) => p.everApproved);
  }

  getPayment(paymentId: string): Promise<PaymentRecord | undefined> {
    return this.one(paymentFromRow, 'SELECT * FROM payments WHERE payment_id = $1', paymentId);
  }

  unrefundedApprovedPaymentsOf(orderId: string): Promise<PaymentRecord[]> {
    return this.many(
      paymentFromRow,
      `SELECT p.* FROM payments p
       WHERE p.order_id = $1 AND p.ever_approved = 1
         AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = p.order_id AND r.payment_id = p.payment_id)
       ORDER BY p.first_seen_at, p.payment_id`,
      orderId,
    );
  }

  // ---- refunds ----------------------------------------------------------------------------------

  getRefundByKey(key: string): Promise<RefundRecord | undefined> {
    return this.one(refundFromRow, 'SELECT * FROM refunds WHERE idempotency_key = $1', key);
  }

  /** Records the intent BEFORE calling Mercado Pago; the unique key makes a second insert a no-op. */
  async insertRefundIntent(orderId: string, paymentId: string, key: string, at: number, reason: RefundReason = 'order'): Promise<RefundRecord> {
    await this.run(
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
    await this.run(
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
    await this.run(`UPDATE refunds SET status = 'failed', attempts = attempts + 1, last_error = $1, completed_at = $2 WHERE idempotency_key = $3`, error, at, key);
  }

  surplusRefundsDue(): Promise<RefundRecord[]> {
    return this.many(refundFromRow, `SELECT r.* FROM refunds r JOIN orders o ON o.id = r.order_id WHERE ${SURPLUS_DUE_WHERE} ORDER BY r.id`);
  }

  async recordRefundAttempt(key: string, error: string | null): Promise<void> {
    await this.run('UPDATE refunds SET attempts = attempts + 1, last_error = $1 WHERE idempotency_key = $2', error, key);
  }

  async completeRefund(key: string, r: { mpRefundId: string; amount: number; currency: string; status: string }, at: number): Promise<void> {
    await this.run(
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
    return this.many(refundFromRow, 'SELECT * FROM refunds WHERE order_id = $1 ORDER BY id', orderId);
  }

  allRefunds(): Promise<RefundRecord[]> {
    return this.many(refundFromRow, 'SELECT * FROM refunds ORDER BY id');
  }

  // ---- notifications ----------------------------------------------------------------------------

  async insertNotification(n: Omit<NotificationRecord, 'id' | 'attempts' | 'givenUpAt'>): Promise<number> {
    const r = await this.rows(
      `INSERT INTO notifications (received_at, form, topic, resource_id, query, body, headers, signature_ok, processed_at, outcome, source)
       VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11) RETURNING id`,
      [
        n.receivedAt,
        n.form,
        n.topic,
        n.resourceId,
        JSON.stringify(n.query),
        n.body,
        JSON.stringify(n.headers),
        n.signatureOk === null ? null : n.signatureOk ? 1 : 0,
        n.processedAt,
        n.outcome,
        n.source ?? null,
      ],
    );
    return r[0]!.id as number;
  }

  countNotificationsFrom(source: string, since: number): Promise<number> {
    return this.count('SELECT COUNT(*) AS n FROM notifications WHERE source = $1 AND received_at >= $2', source, since);
  }

  async noteNotificationFailure(id: number, outcome: string): Promise<number> {
    const r = await this.rows('UPDATE notifications SET attempts = attempts + 1, outcome = $1 WHERE id = $2 RETURNING attempts', [outcome, id]);
    return (r[0]?.attempts as number | undefined) ?? 0;
  }

  async giveUpNotification(id: number, outcome: string, at: number): Promise<void> {
    await this.run('UPDATE notifications SET outcome = $1, processed_at = $2, given_up_at = $2 WHERE id = $3', outcome, at, id);
  }

  countGivenUpNotifications(): Promise<number> {
    return this.count('SELECT COUNT(*) AS n FROM notifications WHERE given_up_at IS NOT NULL');
  }

  pruneNotifications(processedBefore: number): Promise<number> {
    return this.run('DELETE FROM notifications WHERE processed_at IS NOT NULL AND processed_at < $1', processedBefore);
  }

  async markNotification(id: number, outcome: string, processedAt: number | null): Promise<void> {
    await this.run('UPDATE notifications SET outcome = $1, processed_at = $2 WHERE id = $3', outcome, processedAt, id);
  }

  unprocessedNotifications(): Promise<NotificationRecord[]> {
    return this.many(notificationFromRow, 'SELECT * FROM notifications WHERE processed_at IS NULL ORDER BY id');
  }

  listNotifications(): Promise<NotificationRecord[]> {
    return this.many(notificationFromRow, 'SELECT * FROM notifications ORDER BY id');
  }

  // ---- outbox / inbox ---------------------------------------------------------------------------

  /**
   * The row, and a NOTIFY that tells the instance holding the kiosk's WebSocket to push it
   * (relay/fleet/signals.ts). PostgreSQL delivers a NOTIFY when its transaction commits, never
   * for a rolled-back one, so the signal and the row become visible together.
   */
  async enqueueOutbox(kioskId: string, frame: { id: string; type: string }, at: number): Promise<void> {
    await this.rows(
      `WITH ins AS (INSERT INTO outbox (kiosk_id, message_id, type, payload, created_at) VALUES ($1, $2, $3, $4, $5) RETURNING kiosk_id)
       SELECT pg_notify($6, 'outbox:' || kiosk_id) FROM ins`,
      [kioskId, frame.id, frame.type, JSON.stringify(frame), at, SIGNAL_CHANNEL],
    );
  }

  outboxOf(kioskId: string): Promise<OutboxRecord[]> {
    return this.many(outboxFromRow, 'SELECT * FROM outbox WHERE kiosk_id = $1 ORDER BY seq', kioskId);
  }

  /** Reliable frames written for kiosks and not yet acked, all kiosks (the outbox depth metric). */
  outboxDepth(): Promise<number> {
    return this.count('SELECT COUNT(*) AS n FROM outbox');
  }

  async deleteOutbox(kioskId: string, messageId: string): Promise<boolean> {
    return (await this.run('DELETE FROM outbox WHERE kiosk_id = $1 AND message_id = $2', kioskId, messageId)) > 0;
  }

  async inInbox(kioskId: string, messageId: string): Promise<boolean> {
    return (await this.rows('SELECT 1 FROM inbox WHERE kiosk_id = $1 AND message_id = $2', [kioskId, messageId])).length > 0;
  }

  pruneInbox(appliedBefore: number): Promise<number> {
    return this.run('DELETE FROM inbox WHERE applied_at < $1', appliedBefore);
  }

  async recordInbox(kioskId: string, messageId: string, type: string, at: number): Promise<void> {
    await this.run('INSERT INTO inbox (kiosk_id, message_id, type, applied_at) VALUES ($1, $2, $3, $4)', kioskId, messageId, type, at);
  }

  // ---- machine audits (DEX) ---------------------------------------------------------------------

  async insertDexAudit(kioskId: string, frame: DexAuditFrame, at: number): Promise<boolean> {
    const { v: _v, id: _id, type: _type, ...body } = frame;
    return (
      (await this.run(
        'INSERT INTO dex_audits (audit_id, kiosk_id, machine_serial, read_at, received_at, body) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (audit_id) DO NOTHING',
        frame.auditId,
        kioskId,
        frame.machine.serial,
        frame.readAt,
        at,
        JSON.stringify(body),
      )) > 0
    );
  }

  getDexAudit(auditId: string): Promise<DexAuditRecord | undefined> {
    return this.one(dexAuditFromRow, 'SELECT * FROM dex_audits WHERE audit_id = $1', auditId);
  }

  dexAudits(opts: { kioskId?: string; from?: number; to?: number; limit: number }): Promise<DexAuditRecord[]> {
    return this.many(
      dexAuditFromRow,
      `SELECT * FROM dex_audits WHERE ($1::text IS NULL OR kiosk_id = $1) AND read_at >= $2 AND read_at <= $3
       ORDER BY read_at DESC, audit_id DESC LIMIT $4`,
      opts.kioskId ?? null,
      opts.from ?? 0,
      opts.to ?? Number.MAX_SAFE_INTEGER,
      opts.limit,
    );
  }

  previousDexAudit(kioskId: string, machineSerial: string, readAt: number): Promise<DexAuditRecord | undefined> {
    return this.one(
      dexAuditFromRow,
      'SELECT * FROM dex_audits WHERE kiosk_id = $1 AND machine_serial = $2 AND read_at < $3 ORDER BY read_at DESC LIMIT 1',
      kioskId,
      machineSerial,
      readAt,
    );
  }

  dispensedBySlot(kioskId: string, from: number, to: number): Promise<Array<{ slot: number | null; count: number; amount: number; currency: string }>> {
    return this.many(
      (r) => ({ slot: (r.slot as number | null) ?? null, count: r.n as number, amount: r.amount as number, currency: r.currency as string }),
      `SELECT slot, currency, COUNT(*) AS n, SUM(amount)::bigint AS amount FROM orders
       WHERE kiosk_id = $1 AND vend_result = 'dispensed' AND paid_at > $2 AND paid_at <= $3
       GROUP BY slot, currency ORDER BY slot NULLS FIRST, currency`,
      kioskId,
      from,
      to,
    );
  }

  // ---- fleet presence, alerts, deliveries (schema 7) ---------------------------------------------

  async claimPresence(kioskId: string, instanceId: string, at: number): Promise<void> {
    await this.run(
      `INSERT INTO kiosk_presence (kiosk_id, instance_id, connected_at, seen_at) VALUES ($1, $2, $3, $3)
       ON CONFLICT (kiosk_id) DO UPDATE SET instance_id = EXCLUDED.instance_id, connected_at = EXCLUDED.connected_at, seen_at = EXCLUDED.seen_at`,
      kioskId,
      instanceId,
      at,
    );
  }

  touchPresence(instanceId: string, at: number): Promise<number> {
    return this.run('UPDATE kiosk_presence SET seen_at = $1 WHERE instance_id = $2', at, instanceId);
  }

  async releasePresence(kioskId: string, instanceId: string): Promise<boolean> {
    return (await this.run('DELETE FROM kiosk_presence WHERE kiosk_id = $1 AND instance_id = $2', kioskId, instanceId)) > 0;
  }

  presenceOf(kioskId: string): Promise<PresenceRow | undefined> {
    return this.one(presenceFromRow, 'SELECT * FROM kiosk_presence WHERE kiosk_id = $1', kioskId);
  }

  presentSince(since: number): Promise<PresenceRow[]> {
    return this.many(presenceFromRow, 'SELECT * FROM kiosk_presence WHERE seen_at >= $1 ORDER BY kiosk_id', since);
  }

  kiosksWithOutbox(): Promise<string[]> {
    return this.many((r) => r.kiosk_id as string, 'SELECT DISTINCT kiosk_id FROM outbox ORDER BY kiosk_id');
  }

  // ---- OperatorStore (schema 9) -------------------------------------------------------------

  async addOperator(email: string, role: OperatorRecord['role'], passwordHash: string, at: number): Promise<OperatorRecord> {
    const e = email.trim().toLowerCase();
    const r = await this.rows(`INSERT INTO operators (email, role, password_hash, created_at) VALUES ($1, $2, $3, $4) ON CONFLICT (email) DO NOTHING RETURNING *`, [e, role, passwordHash, at]);
    if (!r[0]) throw new StoreError(`operator ${e} exists already: disable it or choose another e-mail`);
    return pgOperatorFromRow(r[0]);
  }

  getOperatorByEmail(email: string): Promise<OperatorRecord | undefined> {
    return this.one(pgOperatorFromRow, 'SELECT * FROM operators WHERE email = $1', email.trim().toLowerCase());
  }

  getOperator(id: number): Promise<OperatorRecord | undefined> {
    return this.one(pgOperatorFromRow, 'SELECT * FROM operators WHERE id = $1', id);
  }

  listOperators(): Promise<OperatorRecord[]> {
    return this.many(pgOperatorFromRow, 'SELECT * FROM operators ORDER BY id');
  }

  setOperatorDisabled(email: string, at: number | null): Promise<boolean> {
    return this.atomic(async (tx) => {
      const r = await tx.rows('UPDATE operators SET disabled_at = $2 WHERE email = $1 RETURNING id', [email.trim().toLowerCase(), at]);
      if (!r[0]) return false;
      if (at !== null) await tx.run('DELETE FROM operator_sessions WHERE operator_id = $1', r[0].id);
      return true;
    });
  }

  async insertOperatorSession(s: OperatorSessionRecord): Promise<void> {
    await this.run('INSERT INTO operator_sessions (token_hash, operator_id, created_at, expires_at) VALUES ($1, $2, $3, $4)', s.tokenHash, s.operatorId, s.createdAt, s.expiresAt);
  }

  getOperatorSession(tokenHash: string): Promise<OperatorSessionRecord | undefined> {
    return this.one(
      (r) => ({ tokenHash: r.token_hash as string, operatorId: r.operator_id as number, createdAt: r.created_at as number, expiresAt: r.expires_at as number }),
      'SELECT * FROM operator_sessions WHERE token_hash = $1',
      tokenHash,
    );
  }

  async deleteOperatorSession(tokenHash: string): Promise<void> {
    await this.run('DELETE FROM operator_sessions WHERE token_hash = $1', tokenHash);
  }

  pruneOperatorSessions(before: number): Promise<number> {
    return this.run('DELETE FROM operator_sessions WHERE expires_at < $1', before);
  }

  async insertOperatorAudit(a: Omit<OperatorAuditRecord, 'id'>): Promise<number> {
    const r = await this.rows(
      'INSERT INTO operator_audit (operator_id, actor, action, order_id, kiosk_id, reason, detail, at) VALUES ($1, $2, $3, $4, $5, $6, $7, $8) RETURNING id',
      [a.operatorId, a.actor, a.action, a.orderId, a.kioskId, a.reason, a.detail, a.at],
    );
    return r[0]!.id as number;
  }

  operatorAuditOf(orderId: string): Promise<OperatorAuditRecord[]> {
    return this.many(pgOperatorAuditFromRow, 'SELECT * FROM operator_audit WHERE order_id = $1 ORDER BY id', orderId);
  }

  recentOperatorAudit(limit: number): Promise<OperatorAuditRecord[]> {
    return this.many(pgOperatorAuditFromRow, 'SELECT * FROM operator_audit ORDER BY id DESC LIMIT $1', limit);
  }

  openAlerts(): Promise<AlertRecord[]> {
    return this.many(alertFromRow, 'SELECT * FROM alerts WHERE cleared_at IS NULL ORDER BY fired_at, id');
  }

  fireAlert(a: Omit<AlertRecord, 'clearedAt'>, deliveries: NewDelivery[]): Promise<AlertRecord | undefined> {
    return this.atomic(async (tx) => {
      // the partial unique index (one open alert per key) makes a second fire, from any instance, a no-op
      const n = await tx.run(
        `INSERT INTO alerts (id, key, kind, kiosk_id, summary, facts, fired_at) VALUES ($1, $2, $3, $4, $5, $6, $7) ON CONFLICT DO NOTHING`,
        a.id,
        a.key,
        a.kind,
        a.kioskId,
        a.summary,
        JSON.stringify(a.facts),
        a.firedAt,
      );
      if (n === 0) return undefined;
      await tx.insertDeliveries(deliveries, a.firedAt);
      return { ...a, clearedAt: null };
    });
  }

  clearAlert(id: string, at: number, deliveries: NewDelivery[]): Promise<boolean> {
    return this.atomic(async (tx) => {
      if ((await tx.run('UPDATE alerts SET cleared_at = $1 WHERE id = $2 AND cleared_at IS NULL', at, id)) === 0) return false;
      await tx.insertDeliveries(deliveries, at);
      return true;
    });
  }

  alerts(opts: { limit: number; open?: boolean; kioskId?: string }): Promise<AlertRecord[]> {
    return this.many(
      alertFromRow,
      `SELECT * FROM alerts WHERE ($1::boolean IS NULL OR ($1 AND cleared_at IS NULL) OR (NOT $1 AND cleared_at IS NOT NULL))
         AND ($2::text IS NULL OR kiosk_id = $2) ORDER BY fired_at DESC, id DESC LIMIT $3`,
      opts.open ?? null,
      opts.kioskId ?? null,
      opts.limit,
    );
  }

  async insertDeliveries(rows: NewDelivery[], at: number): Promise<void> {
    for (const d of rows) {
      await this.run(
        `INSERT INTO deliveries (id, channel, event, payload, subject, state, attempts, next_at, created_at) VALUES ($1, $2, $3, $4, $5, 'pending', 0, $6, $6)`,
        d.id,
        d.channel,
        d.event,
        d.payload,
        d.subject,
        at,
      );
    }
  }

  dueDeliveries(now: number, limit: number): Promise<DeliveryRecord[]> {
    return this.many(deliveryFromRow, `SELECT * FROM deliveries WHERE state IN ('pending', 'held') AND next_at <= $1 ORDER BY next_at, created_at, id LIMIT $2`, now, limit);
  }

  async nextDeliveryAt(): Promise<number | undefined> {
    const r = (await this.rows(`SELECT MIN(next_at) AS t FROM deliveries WHERE state IN ('pending', 'held')`))[0];
    return r?.t === null || r?.t === undefined ? undefined : Number(r.t);
  }

  moveDelivery(id: string, event: DeliveryEvent, at: number, facts: { nextAt?: number; error?: string | null; attempts?: number }): Promise<DeliveryRecord> {
    return this.atomic(async (tx) => {
      const d = await tx.one(deliveryFromRow, 'SELECT * FROM deliveries WHERE id = $1 FOR UPDATE', id);
      if (!d) throw new StoreError(`no delivery "${id}"`);
      const to = outboundDelivery.next(d.state, event);
      const next: DeliveryRecord = {
        ...d,
        state: to,
        attempts: facts.attempts ?? d.attempts,
        nextAt: facts.nextAt ?? d.nextAt,
        lastError: facts.error === undefined ? d.lastError : facts.error === null ? null : facts.error.slice(0, 500),
        deliveredAt: to === 'delivered' ? at : d.deliveredAt,
      };
      await tx.run(
        'UPDATE deliveries SET state = $1, attempts = $2, next_at = $3, last_error = $4, delivered_at = $5 WHERE id = $6',
        next.state,
        next.attempts,
        next.nextAt,
        next.lastError,
        next.deliveredAt,
        id,
      );
      return next;
    });
  }

  deliveries(opts: { limit: number; subject?: string; state?: DeliveryState }): Promise<DeliveryRecord[]> {
    return this.many(
      deliveryFromRow,
      `SELECT * FROM deliveries WHERE ($1::text IS NULL OR subject = $1) AND ($2::text IS NULL OR state = $2) ORDER BY created_at DESC, id DESC LIMIT $3`,
      opts.subject ?? null,
      opts.state ?? null,
      opts.limit,
    );
  }

  // ---- the fleet recorder (migration 8; relay/fleet-recorder.ts) -------------------------------

  async saveStatus(s: StoredStatus): Promise<void> {
    await this.run(
      `INSERT INTO fleet_status (kiosk_id, status, received_at) VALUES ($1, $2, $3)
       ON CONFLICT (kiosk_id) DO UPDATE SET status = excluded.status, received_at = excluded.received_at`,
      s.kioskId,
      JSON.stringify(s.status),
      s.receivedAt,
    );
  }

  statuses(): Promise<StoredStatus[]> {
    return this.many(statusFromRow, 'SELECT * FROM fleet_status ORDER BY kiosk_id');
  }

  async setPresence(p: Presence): Promise<void> {
    await this.run(
      `INSERT INTO fleet_presence (kiosk_id, online, since) VALUES ($1, $2, $3)
       ON CONFLICT (kiosk_id) DO UPDATE SET online = excluded.online, since = excluded.since`,
      p.kioskId,
      p.online ? 1 : 0,
      p.since,
    );
  }

  presences(): Promise<Presence[]> {
    return this.many((r) => ({ kioskId: r.kiosk_id as string, online: r.online === 1, since: r.since as number }), 'SELECT * FROM fleet_presence ORDER BY kiosk_id');
  }

  async recordRefill(r: RefillRecord): Promise<boolean> {
    // ON CONFLICT DO NOTHING: two instances receiving the same re-sent frame keep it once
    const n = await this.run(
      'INSERT INTO fleet_refills (refill_id, kiosk_id, at, by_whom, slots, received_at) VALUES ($1, $2, $3, $4, $5, $6) ON CONFLICT (refill_id) DO NOTHING',
      r.refillId,
      r.kioskId,
      r.at,
      r.by,
      JSON.stringify(r.slots),
      r.receivedAt,
    );
    return n > 0;
  }

  refills(kioskId?: string, limit = 50): Promise<RefillRecord[]> {
    return this.many(refillFromRow, 'SELECT * FROM fleet_refills WHERE ($1::text IS NULL OR kiosk_id = $1) ORDER BY received_at DESC, refill_id DESC LIMIT $2', kioskId ?? null, limit);
  }

  async recordRefusal(r: CommandRefusalRecord): Promise<void> {
    await this.atomic(async (tx) => {
      const rows = await tx.rows(
        'INSERT INTO fleet_refusals (kiosk_id, frame_id, command_id, reason, message, ours, received_at) VALUES ($1, $2, $3, $4, $5, $6, $7) RETURNING seq',
        [r.kioskId, r.frameId, r.commandId, r.reason, r.message, r.ours ? 1 : 0, r.receivedAt],
      );
      // a flood of forged frames must not grow the database without bound
      await tx.run('DELETE FROM fleet_refusals WHERE seq <= $1', (rows[0]!.seq as number) - REFUSALS_KEPT);
    });
  }

  refusals(kioskId?: string, limit = 50): Promise<CommandRefusalRecord[]> {
    return this.many(refusalFromRow, 'SELECT * FROM fleet_refusals WHERE ($1::text IS NULL OR kiosk_id = $1) ORDER BY seq DESC LIMIT $2', kioskId ?? null, limit);
  }

  async insertCommand(c: CommandRecord): Promise<void> {
    await this.atomic(async (tx) => {
      try {
        await tx.run(
          `INSERT INTO fleet_commands (id, kiosk_id, kind, action, issued_by, reason, issued_at, expires_at, state, frame,
             delivered_at, kiosk_at, answered_at, refusal, result, message) VALUES ($1, $2, $3, $4, $5, $6, $7, $8, $9, $10, $11, $12, $13, $14, $15, $16)`,
          c.id,
          c.kioskId,
          c.kind,
          JSON.stringify(c.action),
          c.issuedBy,
          c.reason,
          c.issuedAt,
          c.expiresAt,
          c.state,
          c.frame,
          c.deliveredAt,
          c.kioskAt,
          c.answeredAt,
          c.refusal ? JSON.stringify(c.refusal) : null,
          c.result ? JSON.stringify(c.result) : null,
          c.message,
        );
      } catch (err) {
        if ((err as { code?: string }).code === UNIQUE_VIOLATION) throw new StoreError(`command ${c.id} exists already`);
        throw err;
      }
      for (const h of c.history) {
        await tx.run('INSERT INTO fleet_command_history (command_id, at, "from", "to", event, detail) VALUES ($1, $2, $3, $4, $5, $6)', c.id, h.at, h.from, h.to, h.event, h.detail);
      }
    });
  }

  private async commandWith(row: Row): Promise<CommandRecord> {
    return commandFromRow(row, await this.many(commandHistoryFromRow, 'SELECT * FROM fleet_command_history WHERE command_id = $1 ORDER BY seq', row.id));
  }

  async getCommand(id: string): Promise<CommandRecord | undefined> {
    const row = (await this.rows('SELECT * FROM fleet_commands WHERE id = $1', [id]))[0];
    return row ? this.commandWith(row) : undefined;
  }

  transitionCommand(id: string, event: CommandEvent, at: number, patch: CommandPatch = {}, detail?: string): Promise<CommandRecord> {
    return this.atomic(async (tx) => {
      // the row lock: another instance moving the same command waits, then reads our result
      const row = (await tx.rows('SELECT * FROM fleet_commands WHERE id = $1 FOR UPDATE', [id]))[0];
      if (!row) throw new StoreError(`command ${id} is not recorded`);
      const c = await tx.commandWith(row);
      const to = kioskCommand.next(c.state, event); // throws IllegalTransition: nothing written
      const next = { ...c, ...patch };
      await tx.run(
        `UPDATE fleet_commands SET state = $1, delivered_at = $2, kiosk_at = $3, answered_at = $4, refusal = $5, result = $6, message = $7
         WHERE id = $8 AND state = $9`,
        to,
        next.deliveredAt,
        next.kioskAt,
        next.answeredAt,
        next.refusal ? JSON.stringify(next.refusal) : null,
        next.result ? JSON.stringify(next.result) : null,
        next.message,
        id,
        c.state,
      );
      await tx.run('INSERT INTO fleet_command_history (command_id, at, "from", "to", event, detail) VALUES ($1, $2, $3, $4, $5, $6)', id, at, c.state, to, event, detail ?? null);
      return (await tx.getCommand(id))!;
    });
  }

  async noteCommand(id: string, at: number, detail: string): Promise<void> {
    await this.atomic(async (tx) => {
      const row = (await tx.rows('SELECT state FROM fleet_commands WHERE id = $1 FOR UPDATE', [id]))[0];
      if (!row) throw new StoreError(`command ${id} is not recorded`);
      await tx.run('INSERT INTO fleet_command_history (command_id, at, "from", "to", event, detail) VALUES ($1, $2, $3, $4, $5, $6)', id, at, row.state, row.state, 'note', detail);
    });
  }

  async commandsOf(kioskId: string, limit = 50): Promise<CommandRecord[]> {
    const rows = await this.rows('SELECT * FROM fleet_commands WHERE kiosk_id = $1 ORDER BY seq DESC LIMIT $2', [kioskId, limit]);
    const out: CommandRecord[] = [];
    for (const r of rows) out.push(await this.commandWith(r));
    return out;
  }

  async commandsIn(states: readonly CommandState[]): Promise<CommandRecord[]> {
    const rows = await this.rows('SELECT * FROM fleet_commands WHERE state = ANY($1::text[]) ORDER BY seq', [[...states]]);
    const out: CommandRecord[] = [];
    for (const r of rows) out.push(await this.commandWith(r));
    return out;
  }

  async setKioskPrices(kioskId: string, p: KioskPrices): Promise<void> {
    await this.run(
      `INSERT INTO fleet_kiosk_prices (kiosk_id, catalog, prices, command_id) VALUES ($1, $2, $3, $4)
       ON CONFLICT (kiosk_id) DO UPDATE SET catalog = excluded.catalog, prices = excluded.prices, command_id = excluded.command_id`,
      kioskId,
      p.catalog ? JSON.stringify(p.catalog) : null,
      JSON.stringify(p.prices),
      p.commandId,
    );
  }

  async kioskPrices(): Promise<Map<string, KioskPrices>> {
    const rows = await this.rows('SELECT * FROM fleet_kiosk_prices ORDER BY kiosk_id');
    return new Map(rows.map((r) => [r.kiosk_id as string, pricesFromRow(r)]));
  }

  // ---- API keys, par levels (migration 8) --------------------------------------------------------

  async insertApiKey(k: Omit<ApiKeyRecord, 'revokedAt'>): Promise<void> {
    try {
      await this.run('INSERT INTO api_keys (id, name, scopes, secret_hash, created_at) VALUES ($1, $2, $3, $4, $5)', k.id, k.name, JSON.stringify(k.scopes), k.secretHash, k.createdAt);
    } catch (err) {
      if ((err as { code?: string }).code === UNIQUE_VIOLATION) throw new StoreError(`an API key named "${k.name}" exists already: pick another name, or revoke that one first`);
      throw err;
    }
  }

  apiKeyByHash(secretHash: string): Promise<ApiKeyRecord | undefined> {
    return this.one(apiKeyFromRow, 'SELECT * FROM api_keys WHERE secret_hash = $1', secretHash);
  }

  listApiKeys(): Promise<ApiKeyRecord[]> {
    return this.many(apiKeyFromRow, 'SELECT * FROM api_keys ORDER BY created_at, id');
  }

  async revokeApiKey(idOrName: string, at: number): Promise<boolean> {
    return (await this.run('UPDATE api_keys SET revoked_at = $1 WHERE (id = $2 OR name = $2) AND revoked_at IS NULL', at, idOrName)) > 0;
  }

  parLevels(): Promise<Array<{ kioskId: string; slot: number; par: number }>> {
    return this.many((r) => ({ kioskId: r.kiosk_id as string, slot: r.slot as number, par: r.par as number }), 'SELECT * FROM stock_par ORDER BY kiosk_id, slot');
  }

  async setParLevel(kioskId: string, slot: number, par: number): Promise<void> {
    if (par === 0) await this.run('DELETE FROM stock_par WHERE kiosk_id = $1 AND slot = $2', kioskId, slot);
    else await this.run('INSERT INTO stock_par (kiosk_id, slot, par) VALUES ($1, $2, $3) ON CONFLICT (kiosk_id, slot) DO UPDATE SET par = excluded.par', kioskId, slot, par);
  }

  salesByDay(from: number, to: number, kioskId?: string): Promise<SaleRow[]> {
    return this.many(
      (r) => ({ day: r.day as number, kioskId: r.kiosk_id as string, sku: r.sku as string, currency: r.currency as string, units: r.units as number, amount: r.amount as number }),
      `SELECT paid_at / 86400000 AS day, kiosk_id, sku, currency, SUM(quantity)::bigint AS units, SUM(amount)::bigint AS amount FROM orders
       WHERE state = 'vended' AND paid_at >= $1 AND paid_at < $2 AND ($3::text IS NULL OR kiosk_id = $3)
       GROUP BY day, kiosk_id, sku, currency ORDER BY day, kiosk_id, sku, currency`,
      from,
      to,
      kioskId ?? null,
    );
  }

  // ---- background work shared between instances (FOR UPDATE SKIP LOCKED) -----------------------
  //
  // Each claim* is the same query as its plain twin, limited, with FOR UPDATE SKIP LOCKED: rows
  // another instance has claimed (or is transitioning right now) are skipped, not waited for. The
  // locks last until the transaction ends, so call them on the store given by transaction() and
  // do the work (the transition, the refund row) in that same transaction.

  async claimPendingPastDeadline(now: number, limit: number): Promise<OrderRecord[]> {
    this.requireTransaction('claimPendingPastDeadline');
    return await this.many(orderFromRow, `SELECT * FROM orders WHERE state = 'pending' AND deadline <= $1 ORDER BY deadline, id LIMIT $2 FOR UPDATE SKIP LOCKED`, now, limit);
  }

  async claimContingencyCandidates(createdBefore: number, quietSince: number, closedSince: number, limit: number): Promise<OrderRecord[]> {
    this.requireTransaction('claimContingencyCandidates');
    return await this.many(orderFromRow, `SELECT * FROM orders WHERE ${CONTINGENCY_WHERE} ORDER BY created_at, id LIMIT $4 FOR UPDATE SKIP LOCKED`, createdBefore, quietSince, closedSince, limit);
  }

  /** e.g. the orders in `refunding` whose refunds the refund worker retries */
  async claimOrdersInState(state: OrderState, limit: number): Promise<OrderRecord[]> {
    this.requireTransaction('claimOrdersInState');
    return await this.many(orderFromRow, 'SELECT * FROM orders WHERE state = $1 ORDER BY created_at, id LIMIT $2 FOR UPDATE SKIP LOCKED', state, limit);
  }

  async claimSurplusRefundsDue(limit: number): Promise<RefundRecord[]> {
    this.requireTransaction('claimSurplusRefundsDue');
    return await this.many(refundFromRow, `SELECT r.* FROM refunds r JOIN orders o ON o.id = r.order_id WHERE ${SURPLUS_DUE_WHERE} ORDER BY r.id LIMIT $1 FOR UPDATE OF r SKIP LOCKED`, limit);
  }

  async claimUnprocessedNotifications(limit: number): Promise<NotificationRecord[]> {
    this.requireTransaction('claimUnprocessedNotifications');
    return await this.many(notificationFromRow, 'SELECT * FROM notifications WHERE processed_at IS NULL ORDER BY id LIMIT $1 FOR UPDATE SKIP LOCKED', limit);
  }

  async claimOfferWork(limit: number): Promise<OrderRecord[]> {
    this.requireTransaction('claimOfferWork');
    return await this.many(orderFromRow, `SELECT * FROM orders WHERE ${OFFER_WORK_WHERE} ORDER BY created_at, id LIMIT $1 FOR UPDATE SKIP LOCKED`, limit);
  }

  async claimOverdueVends(paidBefore: number, limit: number): Promise<OrderRecord[]> {
    this.requireTransaction('claimOverdueVends');
    return await this.many(orderFromRow, `SELECT * FROM orders WHERE ${OVERDUE_WHERE} ORDER BY paid_at, id LIMIT $2 FOR UPDATE SKIP LOCKED`, paidBefore, limit);
  }
}

// The background queries' conditions, shared by the plain and the claiming form.
const CONTINGENCY_WHERE = `(state = 'pending' AND created_at <= $1 AND (last_notification_at IS NULL OR last_notification_at <= $2))
     OR (state IN ('cancelled','expired') AND updated_at >= $3)`;
const OVERDUE_WHERE = `state = 'paid' AND vend_result IS NULL AND vend_overdue_at IS NULL AND paid_at IS NOT NULL AND paid_at <= $1`;
const OFFER_WORK_WHERE = `offer_state IN ('due', 'withdraw_due')`;
const SURPLUS_DUE_WHERE = `r.status = 'requested' AND r.reason = 'surplus' AND o.state <> 'refunding'`;

function pgOperatorFromRow(r: Row): OperatorRecord {
  return {
    id: r.id as number,
    email: r.email as string,
    role: r.role as OperatorRecord['role'],
    passwordHash: r.password_hash as string,
    createdAt: r.created_at as number,
    disabledAt: (r.disabled_at as number | null) ?? null,
  };
}

function pgOperatorAuditFromRow(r: Row): OperatorAuditRecord {
  return {
    id: r.id as number,
    operatorId: (r.operator_id as number | null) ?? null,
    actor: r.actor as string,
    action: r.action as string,
    orderId: (r.order_id as string | null) ?? null,
    kioskId: (r.kiosk_id as string | null) ?? null,
    reason: r.reason as string,
    detail: (r.detail as string | null) ?? null,
    at: r.at as number,
  };
}
