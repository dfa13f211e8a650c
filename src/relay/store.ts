import {
  hashToken,
  newKioskToken,
  newPosKey,
  posPath,
  REVIEW_SEPARATOR,
  StoreError,
  type AddedKiosk,
  type AddKioskInput,
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
  type ResponseGeneration,
} from './store/types.js';
export * from './store/types.js';
import type { Currency } from '../core/money.js';
import { relayOrder, type OrderEvent, type OrderState } from '../core/relay-order.js';
import { mpOffer, type OfferEvent, type OfferState } from '../core/mp-offer.js';
import { crashPoint } from '../runtime/crash-hook.js';
import { openDatabase, type Db } from '../runtime/sqlite.js';
import type { DexAuditFrame, PaymentModelName } from '../protocol/messages.js';

// The relay's durable state in one SQLite file. Every state change of an order is written in the
// same transaction as the outbox message that tells the kiosk about it, so a crash can never leave
// "paid in the DB but the kiosk is never told" (or the reverse). Money columns are integer minor
// units. Kiosk tokens are stored only as sha256 hex: a stolen DB cannot impersonate a kiosk.

const MIGRATIONS: readonly string[] = [
  // 1: initial schema
  `
  CREATE TABLE kiosks (
    id                  TEXT PRIMARY KEY,
    token_hash          TEXT NOT NULL UNIQUE,
    pos_external_id     TEXT NOT NULL UNIQUE,
    pos_key             TEXT NOT NULL,
    payment_model       TEXT NOT NULL DEFAULT 'unattended' CHECK (payment_model = 'unattended'),
    response_generation TEXT NOT NULL DEFAULT 'v2' CHECK (response_generation IN ('v1','v2')),
    pos_qr              TEXT,
    created_at          INTEGER NOT NULL
  );

  CREATE TABLE orders (
    id                   TEXT PRIMARY KEY,
    kiosk_id             TEXT NOT NULL REFERENCES kiosks(id),
    slot                 INTEGER,
    sku                  TEXT NOT NULL,
    title                TEXT NOT NULL,
    quantity             INTEGER NOT NULL,
    unit_price           INTEGER NOT NULL,
    amount               INTEGER NOT NULL,
    currency             TEXT NOT NULL,
    claimed_amount       INTEGER NOT NULL,
    claimed_currency     TEXT NOT NULL,
    state                TEXT NOT NULL,
    reject_reason        TEXT,
    deadline             INTEGER NOT NULL,
    created_at           INTEGER NOT NULL,
    updated_at           INTEGER NOT NULL,
    paid_at              INTEGER,
    merchant_order_id    TEXT,
    payment_ids          TEXT NOT NULL DEFAULT '[]',
    last_notification_at INTEGER,
    vend_result          TEXT,
    needs_review         TEXT
  );
  CREATE INDEX orders_kiosk_state ON orders(kiosk_id, state);
  CREATE INDEX orders_state ON orders(state, deadline);

  CREATE TABLE order_events (
    seq      INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id TEXT NOT NULL,
    "from"   TEXT,
    "to"     TEXT NOT NULL,
    event    TEXT NOT NULL,
    detail   TEXT,
    at       INTEGER NOT NULL
  );
  CREATE INDEX order_events_order ON order_events(order_id, seq);

  CREATE TABLE payments (
    payment_id        TEXT PRIMARY KEY,
    order_id          TEXT NOT NULL,
    merchant_order_id TEXT,
    status            TEXT NOT NULL,
    amount            INTEGER NOT NULL,
    currency          TEXT NOT NULL,
    ever_approved     INTEGER NOT NULL DEFAULT 0,
    first_seen_at     INTEGER NOT NULL,
    updated_at        INTEGER NOT NULL
  );
  CREATE INDEX payments_order ON payments(order_id);

  CREATE TABLE refunds (
    id              INTEGER PRIMARY KEY AUTOINCREMENT,
    order_id        TEXT NOT NULL,
    payment_id      TEXT NOT NULL,
    idempotency_key TEXT NOT NULL UNIQUE,
    mp_refund_id    TEXT,
    amount          INTEGER,
    currency        TEXT,
    status          TEXT NOT NULL,
    attempts        INTEGER NOT NULL DEFAULT 0,
    last_error      TEXT,
    requested_at    INTEGER NOT NULL,
    completed_at    INTEGER
  );
  CREATE INDEX refunds_order ON refunds(order_id);

  CREATE TABLE notifications (
    id           INTEGER PRIMARY KEY AUTOINCREMENT,
    received_at  INTEGER NOT NULL,
    form         TEXT NOT NULL,
    topic        TEXT,
    resource_id  TEXT,
    query        TEXT NOT NULL,
    body         TEXT,
    headers      TEXT NOT NULL,
    signature_ok INTEGER,
    processed_at INTEGER,
    outcome      TEXT
  );
  CREATE INDEX notifications_unprocessed ON notifications(processed_at);

  CREATE TABLE outbox (
    seq        INTEGER PRIMARY KEY AUTOINCREMENT,
    kiosk_id   TEXT NOT NULL,
    message_id TEXT NOT NULL UNIQUE,
    type       TEXT NOT NULL,
    payload    TEXT NOT NULL,
    created_at INTEGER NOT NULL
  );
  CREATE INDEX outbox_kiosk ON outbox(kiosk_id, seq);

  CREATE TABLE inbox (
    kiosk_id   TEXT NOT NULL,
    message_id TEXT NOT NULL,
    type       TEXT NOT NULL,
    applied_at INTEGER NOT NULL,
    PRIMARY KEY (kiosk_id, message_id)
  );
  `,
  // 2: surplus refunds (a payment refunded on its own, the order keeps its state), the
  // paid-but-no-vend-result watchdog, and the operators' review list
  `
  ALTER TABLE refunds ADD COLUMN reason TEXT NOT NULL DEFAULT 'order';
  ALTER TABLE orders ADD COLUMN vend_overdue_at INTEGER;
  CREATE INDEX orders_needs_review ON orders(created_at) WHERE needs_review IS NOT NULL;
  CREATE INDEX refunds_status ON refunds(status);
  `,
  // 3: every payment model. The kiosk's model moves to a new column: SQLite cannot drop the CHECK
  // that pinned the old one to 'unattended' without rebuilding a table other tables reference, so
  // that column stays behind, unused. Orders learn what was made payable at Mercado Pago (its id,
  // the per-order QR) and where that stands (core/mp-offer.ts).
  `
  ALTER TABLE kiosks ADD COLUMN model TEXT NOT NULL DEFAULT 'unattended';
  ALTER TABLE kiosks ADD COLUMN model_mode TEXT;
  ALTER TABLE kiosks ADD COLUMN store_external_id TEXT;
  ALTER TABLE kiosks ADD COLUMN revision INTEGER NOT NULL DEFAULT 0;
  CREATE INDEX kiosks_revision ON kiosks(revision);
  ALTER TABLE orders ADD COLUMN offer_state TEXT NOT NULL DEFAULT 'local';
  ALTER TABLE orders ADD COLUMN mp_order_id TEXT;
  ALTER TABLE orders ADD COLUMN qr TEXT;
  ALTER TABLE orders ADD COLUMN offer_error TEXT;
  CREATE INDEX orders_offer_work ON orders(offer_state) WHERE offer_state IN ('due', 'withdraw_due');
  `,
  // 4: the machines' own audits (EVA-DTS over DEX, sent by the agents as dex.audit); the parsed
  // frame is kept whole in body, the columns are what the audit is looked up by
  `
  CREATE TABLE dex_audits (
    audit_id       TEXT PRIMARY KEY,
    kiosk_id       TEXT NOT NULL REFERENCES kiosks(id),
    machine_serial TEXT NOT NULL,
    read_at        INTEGER NOT NULL,
    received_at    INTEGER NOT NULL,
    body           TEXT NOT NULL
  );
  CREATE INDEX dex_audits_kiosk ON dex_audits(kiosk_id, read_at);
  `,
  // 5: limits on the public routes (docs/reliability.md): who sent a notification (per-source
  // cap), how often processing it failed (a poison row is given up after N tries, flagged),
  // and an index for pruning processed rows after the retention period
  `
  ALTER TABLE notifications ADD COLUMN source TEXT;
  ALTER TABLE notifications ADD COLUMN attempts INTEGER NOT NULL DEFAULT 0;
  ALTER TABLE notifications ADD COLUMN given_up_at INTEGER;
  CREATE INDEX notifications_source ON notifications(source, received_at);
  CREATE INDEX notifications_given_up ON notifications(given_up_at) WHERE given_up_at IS NOT NULL;
  `,
];

type Row = Record<string, unknown>;

function dexAuditFromRow(r: Row): DexAuditRecord {
  return {
    auditId: r.audit_id as string,
    kioskId: r.kiosk_id as string,
    machineSerial: r.machine_serial as string,
    readAt: r.read_at as number,
    receivedAt: r.received_at as number,
    body: JSON.parse(r.body as string) as DexAuditRecord['body'],
  };
}

function kioskFromRow(r: Row): Kiosk {
  return {
    id: r.id as string,
    posExternalId: r.pos_external_id as string,
    posKey: r.pos_key as string,
    paymentModel: r.model as PaymentModelName,
    modelMode: (r.model_mode as string | null) ?? null,
    storeExternalId: (r.store_external_id as string | null) ?? null,
    generation: r.response_generation as ResponseGeneration,
    posQr: (r.pos_qr as string | null) ?? null,
    createdAt: r.created_at as number,
  };
}

function orderFromRow(r: Row): OrderRecord {
  return {
    id: r.id as string,
    kioskId: r.kiosk_id as string,
    slot: (r.slot as number | null) ?? null,
    sku: r.sku as string,
    title: r.title as string,
    quantity: r.quantity as number,
    unitPrice: r.unit_price as number,
    amount: r.amount as number,
    currency: r.currency as Currency,
    claimedAmount: r.claimed_amount as number,
    claimedCurrency: r.claimed_currency as string,
    state: r.state as OrderState,
    rejectReason: (r.reject_reason as string | null) ?? null,
    deadline: r.deadline as number,
    createdAt: r.created_at as number,
    updatedAt: r.updated_at as number,
    paidAt: (r.paid_at as number | null) ?? null,
    merchantOrderId: (r.merchant_order_id as string | null) ?? null,
    paymentIds: JSON.parse((r.payment_ids as string) || '[]') as string[],
    lastNotificationAt: (r.last_notification_at as number | null) ?? null,
    vendResult: (r.vend_result as string | null) ?? null,
    needsReview: (r.needs_review as string | null) ?? null,
    vendOverdueAt: (r.vend_overdue_at as number | null) ?? null,
    offerState: r.offer_state as OfferState,
    mpOrderId: (r.mp_order_id as string | null) ?? null,
    qr: (r.qr as string | null) ?? null,
    offerError: (r.offer_error as string | null) ?? null,
  };
}

function paymentFromRow(r: Row): PaymentRecord {
  return {
    paymentId: r.payment_id as string,
    orderId: r.order_id as string,
    merchantOrderId: (r.merchant_order_id as string | null) ?? null,
    status: r.status as string,
    amount: r.amount as number,
    currency: r.currency as string,
    everApproved: r.ever_approved === 1,
    firstSeenAt: r.first_seen_at as number,
    updatedAt: r.updated_at as number,
  };
}

function refundFromRow(r: Row): RefundRecord {
  return {
    id: r.id as number,
    orderId: r.order_id as string,
    paymentId: r.payment_id as string,
    idempotencyKey: r.idempotency_key as string,
    reason: (r.reason as RefundReason | null) ?? 'order',
    mpRefundId: (r.mp_refund_id as string | null) ?? null,
    amount: (r.amount as number | null) ?? null,
    currency: (r.currency as string | null) ?? null,
    status: r.status as string,
    attempts: r.attempts as number,
    lastError: (r.last_error as string | null) ?? null,
    requestedAt: r.requested_at as number,
    completedAt: (r.completed_at as number | null) ?? null,
  };
}

function notificationFromRow(r: Row): NotificationRecord {
  return {
    id: r.id as number,
    receivedAt: r.received_at as number,
    form: r.form as NotificationRecord['form'],
    topic: (r.topic as string | null) ?? null,
    resourceId: (r.resource_id as string | null) ?? null,
    query: JSON.parse(r.query as string) as Record<string, unknown>,
    body: (r.body as string | null) ?? null,
    headers: JSON.parse(r.headers as string) as Record<string, string>,
    signatureOk: r.signature_ok === null || r.signature_ok === undefined ? null : r.signature_ok === 1,
    processedAt: (r.processed_at as number | null) ?? null,
    outcome: (r.outcome as string | null) ?? null,
    source: (r.source as string | null) ?? null,
    attempts: (r.attempts as number | undefined) ?? 0,
    givenUpAt: (r.given_up_at as number | null) ?? null,
  };
}

function orderEventFromRow(r: Row): OrderEventRecord {
  return {
    orderId: r.order_id as string,
    from: (r.from as OrderState | null) ?? null,
    to: r.to as OrderState,
    event: r.event as string,
    detail: (r.detail as string | null) ?? null,
    at: r.at as number,
  };
}

function outboxFromRow(r: Row): OutboxRecord {
  return {
    seq: r.seq as number,
    kioskId: r.kiosk_id as string,
    messageId: r.message_id as string,
    type: r.type as string,
    payload: r.payload as string,
    createdAt: r.created_at as number,
  };
}

/**
 * Every change a kiosk must see (its QR, its model) takes the next revision of the table, so a
 * running relay finds what another process (the CLI) changed with one indexed query.
 */
const NEXT_REVISION = '(SELECT COALESCE(MAX(revision), 0) + 1 FROM kiosks)';

const KIOSK_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const POS_EXTERNAL_ID = /^[A-Za-z0-9]{1,39}$/;

export class RelayStore {
  readonly db: Db;
  private txDepth = 0;

  constructor(path: string) {
    this.db = openDatabase(path, { migrations: MIGRATIONS, what: 'relay database', key: 'store.path', mode: 0o600 });
  }

  close(): void {
    if (this.db.open) this.db.close();
  }

  get isOpen(): boolean {
    return this.db.open;
  }

  /**
   * Rows this connection has inserted, updated or deleted since it opened (SQLite's
   * total_changes()). Unchanged means no row changed in this process: answers derived from the
   * database (the POS-url poll) can be reused until it moves. ~1 µs, no read transaction.
   */
  writeCount(): number {
    return (this.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
  }

  /**
   * Runs fn in one SQLite transaction (a savepoint when nested). Keep fn synchronous: the point
   * is that the state change and its outbox row commit together or not at all.
   */
  transaction<T>(fn: () => T): T {
    if (this.txDepth > 0) return this.db.transaction(fn)();
    this.txDepth++;
    let result: T;
    try {
      result = this.db.transaction(() => {
        const r = fn();
        crashPoint('relay.uncommitted'); // crash test hook: written, not committed
        return r;
      })();
    } finally {
      this.txDepth--;
    }
    crashPoint('relay.committed'); // crash test hook: on disk
    return result;
  }

  /** The first row `sql` selects, as a record; undefined when there is none. */
  private one<T>(fromRow: (r: Row) => T, sql: string, ...params: unknown[]): T | undefined {
    const r = this.db.prepare(sql).get(...params) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** Every row `sql` selects, as records. */
  private many<T>(fromRow: (r: Row) => T, sql: string, ...params: unknown[]): T[] {
    return (this.db.prepare(sql).all(...params) as Row[]).map(fromRow);
  }

  /** `sql` selects COUNT(*) AS n. */
  private count(sql: string, ...params: unknown[]): number {
    return (this.db.prepare(sql).get(...params) as { n: number }).n;
  }

  // ---- kiosks -----------------------------------------------------------------------------------

  addKiosk(input: AddKioskInput, at = Date.now()): AddedKiosk {
    if (!KIOSK_ID.test(input.id)) {
      throw new StoreError(`kiosk id "${input.id}" must be letters, digits, "_", "-" or "." (at most 64)`);
    }
    if (!POS_EXTERNAL_ID.test(input.posExternalId)) {
      throw new StoreError(
        `POS external id "${input.posExternalId}" must be letters and digits only, fewer than 40 (Mercado Pago's rule)`,
      );
    }
    const generation = input.generation ?? 'v2';
    if (generation !== 'v1' && generation !== 'v2') throw new StoreError(`generation must be v1 or v2, not ${String(generation)}`);
    if (this.getKiosk(input.id)) throw new StoreError(`kiosk "${input.id}" already exists`);
    if (this.getKioskByPos(input.posExternalId)) {
      throw new StoreError(`POS external id "${input.posExternalId}" already belongs to another kiosk`);
    }
    if (input.storeExternalId != null && !POS_EXTERNAL_ID.test(input.storeExternalId)) {
      throw new StoreError(`store external id "${input.storeExternalId}" must be letters and digits only, fewer than 40 (Mercado Pago's rule)`);
    }
    const token = newKioskToken();
    const posKey = newPosKey();
    this.db
      .prepare(
        `INSERT INTO kiosks (id, token_hash, pos_external_id, pos_key, payment_model, response_generation, pos_qr, created_at,
           model, model_mode, store_external_id)
         VALUES (?, ?, ?, ?, 'unattended', ?, ?, ?, ?, ?, ?)`,
      )
      .run(
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
    return { token, posKey, posPath: posPath(input.posExternalId, posKey), kiosk: this.getKiosk(input.id)! };
  }

  getKiosk(id: string): Kiosk | undefined {
    return this.one(kioskFromRow, 'SELECT * FROM kiosks WHERE id = ?', id);
  }

  getKioskByTokenHash(tokenHash: string): Kiosk | undefined {
    return this.one(kioskFromRow, 'SELECT * FROM kiosks WHERE token_hash = ?', tokenHash);
  }

  getKioskByPos(posExternalId: string): Kiosk | undefined {
    return this.one(kioskFromRow, 'SELECT * FROM kiosks WHERE pos_external_id = ?', posExternalId);
  }

  listKiosks(): Kiosk[] {
    return this.many(kioskFromRow, 'SELECT * FROM kiosks ORDER BY id');
  }

  setKioskPosQr(id: string, qr: string): void {
    const res = this.db.prepare(`UPDATE kiosks SET pos_qr = ?, revision = ${NEXT_REVISION} WHERE id = ?`).run(qr, id);
    if (res.changes === 0) throw new StoreError(`no kiosk "${id}"`);
  }

  /** The highest kiosk revision: changes after it are found with kiosksChangedAfter. */
  kioskRevision(): number {
    return (this.db.prepare('SELECT COALESCE(MAX(revision), 0) AS r FROM kiosks').get() as { r: number }).r;
  }

  kiosksChangedAfter(revision: number): Kiosk[] {
    return this.many(kioskFromRow, 'SELECT * FROM kiosks WHERE revision > ? ORDER BY revision', revision);
  }

  /** Changes the kiosk's payment model (the caller validated model and mode). */
  setKioskModel(id: string, model: PaymentModelName, mode: string | null): void {
    const res = this.db.prepare(`UPDATE kiosks SET model = ?, model_mode = ?, revision = ${NEXT_REVISION} WHERE id = ?`).run(model, mode, id);
    if (res.changes === 0) throw new StoreError(`no kiosk "${id}"`);
  }

  setKioskStore(id: string, storeExternalId: string): void {
    if (!POS_EXTERNAL_ID.test(storeExternalId)) {
      throw new StoreError(`store external id "${storeExternalId}" must be letters and digits only, fewer than 40 (Mercado Pago's rule)`);
    }
    const res = this.db.prepare(`UPDATE kiosks SET store_external_id = ?, revision = ${NEXT_REVISION} WHERE id = ?`).run(storeExternalId, id);
    if (res.changes === 0) throw new StoreError(`no kiosk "${id}"`);
  }

  /** New token (returned once); the old one stops working at once. */
  rotateKioskToken(id: string): string {
    const token = newKioskToken();
    const res = this.db.prepare('UPDATE kiosks SET token_hash = ? WHERE id = ?').run(hashToken(token), id);
    if (res.changes === 0) throw new StoreError(`no kiosk "${id}"`);
    return token;
  }

  // ---- orders -----------------------------------------------------------------------------------

  insertOrder(o: NewOrder): OrderRecord {
    this.db
      .prepare(
        `INSERT INTO orders (id, kiosk_id, slot, sku, title, quantity, unit_price, amount, currency, claimed_amount,
           claimed_currency, state, reject_reason, deadline, created_at, updated_at, offer_state, qr)
         VALUES (@id, @kioskId, @slot, @sku, @title, @quantity, @unitPrice, @amount, @currency, @claimedAmount,
           @claimedCurrency, @state, @rejectReason, @deadline, @createdAt, @createdAt, @offerState, @qr)`,
      )
      .run({ ...o, rejectReason: o.rejectReason ?? null, offerState: o.offerState ?? 'local', qr: o.qr ?? null });
    this.insertEvent(o.id, null, o.state, o.state === 'pending' ? 'created' : 'rejected', o.rejectReason ?? null, o.createdAt);
    return this.getOrder(o.id)!;
  }

  getOrder(id: string): OrderRecord | undefined {
    return this.one(orderFromRow, 'SELECT * FROM orders WHERE id = ?', id);
  }

  pendingOrderOf(kioskId: string): OrderRecord | undefined {
    return this.one(orderFromRow, `SELECT * FROM orders WHERE kiosk_id = ? AND state = 'pending' ORDER BY created_at DESC LIMIT 1`, kioskId);
  }

  latestOrderOf(kioskId: string): OrderRecord | undefined {
    return this.one(
      orderFromRow,
      `SELECT * FROM orders WHERE kiosk_id = ? AND state <> 'rejected' ORDER BY created_at DESC, rowid DESC LIMIT 1`,
      kioskId,
    );
  }

  ordersInState(state: OrderState): OrderRecord[] {
    return this.many(orderFromRow, 'SELECT * FROM orders WHERE state = ? ORDER BY created_at', state);
  }

  pendingPastDeadline(now: number, kioskId?: string): OrderRecord[] {
    return kioskId
      ? this.many(orderFromRow, `SELECT * FROM orders WHERE state = 'pending' AND deadline <= ? AND kiosk_id = ?`, now, kioskId)
      : this.many(orderFromRow, `SELECT * FROM orders WHERE state = 'pending' AND deadline <= ?`, now);
  }

  /**
   * Orders the contingency poller should ask Mercado Pago about: pending ones without news for
   * `quietSince`, and cancelled/expired ones closed after `closedSince` (a payment can still land).
   */
  contingencyCandidates(createdBefore: number, quietSince: number, closedSince: number): OrderRecord[] {
    return this.many(
      orderFromRow,
      `SELECT * FROM orders
       WHERE (state = 'pending' AND created_at <= @createdBefore
              AND (last_notification_at IS NULL OR last_notification_at <= @quietSince))
          OR (state IN ('cancelled','expired') AND updated_at >= @closedSince)
       ORDER BY created_at`,
      { createdBefore, quietSince, closedSince },
    );
  }

  countOrders(state: OrderState): number {
    return this.count('SELECT COUNT(*) AS n FROM orders WHERE state = ?', state);
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
    return this.many(orderFromRow, sql, params);
  }

  /** Orders a person must look at (needs_review set), oldest first. */
  ordersNeedingReview(): OrderRecord[] {
    return this.many(orderFromRow, 'SELECT * FROM orders WHERE needs_review IS NOT NULL ORDER BY created_at, rowid');
  }

  countNeedingReview(): number {
    return this.count('SELECT COUNT(*) AS n FROM orders WHERE needs_review IS NOT NULL');
  }

  /**
   * Adds a reason for review to the order (kept alongside earlier ones; the same reason twice is
   * kept once). Returns whether the order changed, so callers log a new reason only once.
   */
  flagReview(orderId: string, why: string): boolean {
    const cur = this.getOrder(orderId);
    if (!cur) throw new StoreError(`no order "${orderId}"`);
    const reasons = cur.needsReview ? cur.needsReview.split(REVIEW_SEPARATOR) : [];
    if (reasons.includes(why)) return false;
    reasons.push(why);
    this.db.prepare('UPDATE orders SET needs_review = ? WHERE id = ?').run(reasons.join(REVIEW_SEPARATOR), orderId);
    return true;
  }

  /** Removes the reasons starting with `prefix` (the cause went away); null when none is left. */
  clearReview(orderId: string, prefix: string): boolean {
    const cur = this.getOrder(orderId);
    if (!cur?.needsReview) return false;
    const reasons = cur.needsReview.split(REVIEW_SEPARATOR);
    const kept = reasons.filter((r) => !r.startsWith(prefix));
    if (kept.length === reasons.length) return false;
    this.db.prepare('UPDATE orders SET needs_review = ? WHERE id = ?').run(kept.length ? kept.join(REVIEW_SEPARATOR) : null, orderId);
    return true;
  }

  /** Paid (released) before `paidBefore`, no vend.result yet, not flagged by the watchdog yet. */
  overdueVends(paidBefore: number): OrderRecord[] {
    return this.many(
      orderFromRow,
      `SELECT * FROM orders
       WHERE state = 'paid' AND vend_result IS NULL AND vend_overdue_at IS NULL AND paid_at IS NOT NULL AND paid_at <= ?
       ORDER BY paid_at`,
      paidBefore,
    );
  }

  /** The watchdog's mark: flagged once, whatever restarts follow. */
  markVendOverdue(orderId: string, at: number, why: string): void {
    this.transaction(() => {
      this.db.prepare('UPDATE orders SET vend_overdue_at = ? WHERE id = ?').run(at, orderId);
      this.flagReview(orderId, why);
    });
  }

  /**
   * The ONLY way an order changes state: checks the move against core/relay-order.ts (throws
   * IllegalTransition, which callers log and refuse) and writes the history row.
   */
  transitionOrder(id: string, event: OrderEvent, at: number, detail?: string | null, patch: OrderPatch = {}): OrderRecord {
    return this.transaction(() => {
      const cur = this.getOrder(id);
      if (!cur) throw new StoreError(`no order "${id}"`);
      const to = relayOrder.next(cur.state, event);
      this.db
        .prepare(
          `UPDATE orders SET state = @to, updated_at = @at,
             paid_at = CASE WHEN @setPaidAt THEN @paidAt ELSE paid_at END,
             merchant_order_id = CASE WHEN @setMo THEN @mo ELSE merchant_order_id END,
             payment_ids = CASE WHEN @setPayments THEN @payments ELSE payment_ids END,
             vend_result = CASE WHEN @setVend THEN @vend ELSE vend_result END,
             needs_review = CASE WHEN @setReview THEN @review ELSE needs_review END
           WHERE id = @id`,
        )
        .run({
          id,
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
      this.insertEvent(id, cur.state, to, event, detail ?? null, at);
      return this.getOrder(id)!;
    });
  }

  /**
   * The order's standing at Mercado Pago moves only through core/mp-offer.ts (IllegalTransition
   * otherwise). `facts` records what the call returned (its id, the QR) or why it failed.
   */
  moveOffer(id: string, event: OfferEvent, at: number, facts: { mpOrderId?: string; qr?: string; error?: string | null } = {}): OrderRecord {
    return this.transaction(() => {
      const cur = this.getOrder(id);
      if (!cur) throw new StoreError(`no order "${id}"`);
      const to = mpOffer.next(cur.offerState, event);
      this.db
        .prepare(
          `UPDATE orders SET offer_state = @to,
             mp_order_id = COALESCE(@mpOrderId, mp_order_id), qr = COALESCE(@qr, qr), offer_error = @error
           WHERE id = @id`,
        )
        .run({ id, to, mpOrderId: facts.mpOrderId ?? null, qr: facts.qr ?? null, error: facts.error ?? null });
      if (to !== cur.offerState) this.insertEvent(id, cur.state, cur.state, `mp_${event}`, facts.error ?? facts.mpOrderId ?? null, at);
      return this.getOrder(id)!;
    });
  }

  /** Records a failed offer/withdraw attempt that will be retried (no move). */
  noteOfferError(id: string, error: string): void {
    this.db.prepare('UPDATE orders SET offer_error = ? WHERE id = ?').run(error.slice(0, 500), id);
  }

  /** Orders whose Mercado Pago side has work to do (make payable, withdraw), oldest first. */
  offerWork(): OrderRecord[] {
    return this.many(orderFromRow, `SELECT * FROM orders WHERE offer_state IN ('due', 'withdraw_due') ORDER BY created_at, rowid`);
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
    if (sets.length) this.db.prepare(`UPDATE orders SET ${sets.join(', ')} WHERE id = @id`).run(params);
  }

  /** An audit line in the order's history without a state change (e.g. a refused transition). */
  noteOrderEvent(orderId: string, state: OrderState, event: string, detail: string | null, at: number): void {
    this.insertEvent(orderId, state, state, event, detail, at);
  }

  private insertEvent(orderId: string, from: OrderState | null, to: OrderState, event: string, detail: string | null, at: number) {
    this.db
      .prepare('INSERT INTO order_events (order_id, "from", "to", event, detail, at) VALUES (?, ?, ?, ?, ?, ?)')
      .run(orderId, from, to, event, detail, at);
  }

  orderEvents(orderId: string): OrderEventRecord[] {
    return this.many(orderEventFromRow, 'SELECT * FROM order_events WHERE order_id = ? ORDER BY seq', orderId);
  }

  // ---- payments ---------------------------------------------------------------------------------

  upsertPayment(p: Omit<PaymentRecord, 'firstSeenAt' | 'updatedAt' | 'everApproved'>, at: number): void {
    this.db
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
    return this.many(paymentFromRow, 'SELECT * FROM payments WHERE order_id = ? ORDER BY first_seen_at, payment_id', orderId);
  }

  /**
   * Payments that were approved at some point. A refund must be accounted for each of them even
   * once MP reports it `refunded` (e.g. our refund went through but we crashed before recording).
   */
  approvedPaymentsOf(orderId: string): PaymentRecord[] {
    return this.paymentsOf(orderId).filter((p) => p.everApproved);
  }

  getPayment(paymentId: string): PaymentRecord | undefined {
    return this.one(paymentFromRow, 'SELECT * FROM payments WHERE payment_id = ?', paymentId);
  }

  /** Payments of the order that were approved at some point and have no refund row at all. */
  unrefundedApprovedPaymentsOf(orderId: string): PaymentRecord[] {
    return this.many(
      paymentFromRow,
      `SELECT p.* FROM payments p
       WHERE p.order_id = ? AND p.ever_approved = 1
         AND NOT EXISTS (SELECT 1 FROM refunds r WHERE r.order_id = p.order_id AND r.payment_id = p.payment_id)
       ORDER BY p.first_seen_at, p.payment_id`,
      orderId,
    );
  }

  // ---- refunds ----------------------------------------------------------------------------------

  getRefundByKey(key: string): RefundRecord | undefined {
    return this.one(refundFromRow, 'SELECT * FROM refunds WHERE idempotency_key = ?', key);
  }

  /** Records the intent BEFORE calling Mercado Pago; the unique key makes a second insert a no-op. */
  insertRefundIntent(orderId: string, paymentId: string, key: string, at: number, reason: RefundReason = 'order'): RefundRecord {
    this.db
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
    this.db
      .prepare(
        `INSERT OR IGNORE INTO refunds (order_id, payment_id, idempotency_key, reason, amount, currency, status, requested_at, completed_at)
         VALUES (?, ?, ?, ?, ?, ?, 'external', ?, ?)`,
      )
      .run(orderId, paymentId, key, reason, amount, currency, at, at);
  }

  /** Mercado Pago refused the refund for good (4xx): no more calls; a person takes over. */
  failRefund(key: string, error: string, at: number): void {
    this.db
      .prepare(`UPDATE refunds SET status = 'failed', attempts = attempts + 1, last_error = ?, completed_at = ? WHERE idempotency_key = ?`)
      .run(error, at, key);
  }

  /**
   * Surplus refunds whose Mercado Pago call has not been answered yet. Those of an order in
   * `refunding` are left to the order's own refund, which covers every approved payment.
   */
  surplusRefundsDue(): RefundRecord[] {
    return this.many(
      refundFromRow,
      `SELECT r.* FROM refunds r JOIN orders o ON o.id = r.order_id
       WHERE r.status = 'requested' AND r.reason = 'surplus' AND o.state <> 'refunding'
       ORDER BY r.id`,
    );
  }

  recordRefundAttempt(key: string, error: string | null): void {
    this.db.prepare('UPDATE refunds SET attempts = attempts + 1, last_error = ? WHERE idempotency_key = ?').run(error, key);
  }

  completeRefund(key: string, r: { mpRefundId: string; amount: number; currency: string; status: string }, at: number): void {
    this.db
      .prepare(
        `UPDATE refunds SET mp_refund_id = ?, amount = ?, currency = ?, status = ?, completed_at = ?, last_error = NULL
         WHERE idempotency_key = ?`,
      )
      .run(r.mpRefundId, r.amount, r.currency, r.status, at, key);
  }

  refundsOf(orderId: string): RefundRecord[] {
    return this.many(refundFromRow, 'SELECT * FROM refunds WHERE order_id = ? ORDER BY id', orderId);
  }

  allRefunds(): RefundRecord[] {
    return this.many(refundFromRow, 'SELECT * FROM refunds ORDER BY id');
  }

  // ---- notifications ----------------------------------------------------------------------------

  insertNotification(n: Omit<NotificationRecord, 'id' | 'attempts' | 'givenUpAt'>): number {
    const res = this.db
      .prepare(
        `INSERT INTO notifications (received_at, form, topic, resource_id, query, body, headers, signature_ok, processed_at, outcome, source)
         VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
      )
      .run(
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
      );
    return Number(res.lastInsertRowid);
  }

  /** Notifications stored from `source` since `since` (the per-source cap). */
  countNotificationsFrom(source: string, since: number): number {
    return this.count('SELECT COUNT(*) AS n FROM notifications WHERE source = ? AND received_at >= ?', source, since);
  }

  /** One more failed processing of a notification; returns how many there have been. */
  noteNotificationFailure(id: number, outcome: string): number {
    const r = this.db
      .prepare('UPDATE notifications SET attempts = attempts + 1, outcome = ? WHERE id = ? RETURNING attempts')
      .get(outcome, id) as { attempts: number } | undefined;
    return r?.attempts ?? 0;
  }

  /** Processing given up for good: done (never resumed) and flagged for a person. */
  giveUpNotification(id: number, outcome: string, at: number): void {
    this.db.prepare('UPDATE notifications SET outcome = ?, processed_at = ?, given_up_at = ? WHERE id = ?').run(outcome, at, at, id);
  }

  countGivenUpNotifications(): number {
    return this.count('SELECT COUNT(*) AS n FROM notifications WHERE given_up_at IS NOT NULL');
  }

  /** Retention: deletes processed notifications older than `processedBefore`; returns how many. */
  pruneNotifications(processedBefore: number): number {
    return this.db.prepare('DELETE FROM notifications WHERE processed_at IS NOT NULL AND processed_at < ?').run(processedBefore).changes;
  }

  markNotification(id: number, outcome: string, processedAt: number | null): void {
    this.db.prepare('UPDATE notifications SET outcome = ?, processed_at = ? WHERE id = ?').run(outcome, processedAt, id);
  }

  unprocessedNotifications(): NotificationRecord[] {
    return this.many(notificationFromRow, 'SELECT * FROM notifications WHERE processed_at IS NULL ORDER BY id');
  }

  listNotifications(): NotificationRecord[] {
    return this.many(notificationFromRow, 'SELECT * FROM notifications ORDER BY id');
  }

  // ---- outbox / inbox ---------------------------------------------------------------------------

  enqueueOutbox(kioskId: string, frame: { id: string; type: string }, at: number): void {
    this.db
      .prepare('INSERT INTO outbox (kiosk_id, message_id, type, payload, created_at) VALUES (?, ?, ?, ?, ?)')
      .run(kioskId, frame.id, frame.type, JSON.stringify(frame), at);
  }

  outboxOf(kioskId: string): OutboxRecord[] {
    return this.many(outboxFromRow, 'SELECT * FROM outbox WHERE kiosk_id = ? ORDER BY seq', kioskId);
  }

  /** Only the kiosk the message was addressed to can ack it away. */
  deleteOutbox(kioskId: string, messageId: string): boolean {
    return this.db.prepare('DELETE FROM outbox WHERE kiosk_id = ? AND message_id = ?').run(kioskId, messageId).changes > 0;
  }

  inInbox(kioskId: string, messageId: string): boolean {
    return this.db.prepare('SELECT 1 FROM inbox WHERE kiosk_id = ? AND message_id = ?').get(kioskId, messageId) !== undefined;
  }

  recordInbox(kioskId: string, messageId: string, type: string, at: number): void {
    this.db.prepare('INSERT INTO inbox (kiosk_id, message_id, type, applied_at) VALUES (?, ?, ?, ?)').run(kioskId, messageId, type, at);
  }

  // ---- machine audits (DEX) ---------------------------------------------------------------------

  /** Stores a machine audit once (a re-sent read with the same auditId is ignored); true when new. */
  insertDexAudit(kioskId: string, frame: DexAuditFrame, at: number): boolean {
    const { v: _v, id: _id, type: _type, ...body } = frame;
    return (
      this.db
        .prepare('INSERT OR IGNORE INTO dex_audits (audit_id, kiosk_id, machine_serial, read_at, received_at, body) VALUES (?, ?, ?, ?, ?, ?)')
        .run(frame.auditId, kioskId, frame.machine.serial, frame.readAt, at, JSON.stringify(body)).changes > 0
    );
  }

  getDexAudit(auditId: string): DexAuditRecord | undefined {
    return this.one(dexAuditFromRow, 'SELECT * FROM dex_audits WHERE audit_id = ?', auditId);
  }

  /** Newest first; from/to bound read_at (inclusive). */
  dexAudits(opts: { kioskId?: string; from?: number; to?: number; limit: number }): DexAuditRecord[] {
    return this.many(
      dexAuditFromRow,
      `SELECT * FROM dex_audits WHERE (@kiosk IS NULL OR kiosk_id = @kiosk) AND read_at >= @from AND read_at <= @to
       ORDER BY read_at DESC, audit_id DESC LIMIT @limit`,
      { kiosk: opts.kioskId ?? null, from: opts.from ?? 0, to: opts.to ?? Number.MAX_SAFE_INTEGER, limit: opts.limit },
    );
  }

  /** The same machine's audit read just before `readAt`, for the sales between two reads. */
  previousDexAudit(kioskId: string, machineSerial: string, readAt: number): DexAuditRecord | undefined {
    return this.one(
      dexAuditFromRow,
      'SELECT * FROM dex_audits WHERE kiosk_id = ? AND machine_serial = ? AND read_at < ? ORDER BY read_at DESC LIMIT 1',
      kioskId,
      machineSerial,
      readAt,
    );
  }

  /** qrkiosk's own sales of a kiosk: vends reported dispensed for orders paid in (from, to], per slot. */
  dispensedBySlot(kioskId: string, from: number, to: number): Array<{ slot: number | null; count: number; amount: number; currency: string }> {
    return this.many(
      (r) => ({ slot: (r.slot as number | null) ?? null, count: r.n as number, amount: r.amount as number, currency: r.currency as string }),
      `SELECT slot, currency, COUNT(*) AS n, SUM(amount) AS amount FROM orders
       WHERE kiosk_id = ? AND vend_result = 'dispensed' AND paid_at > ? AND paid_at <= ?
       GROUP BY slot, currency ORDER BY slot`,
      kioskId,
      from,
      to,
    );
  }
}

export function openRelayStore(path: string): RelayStore {
  return new RelayStore(path);
}

// Free-function forms of the provisioning operations (what the CLI and the brief name).
export function addKiosk(store: RelayStore, input: AddKioskInput): AddedKiosk {
  return store.addKiosk(input);
}
export function setKioskPosQr(store: RelayStore, id: string, qr: string): void {
  store.setKioskPosQr(id, qr);
}
export function listKiosks(store: RelayStore): Kiosk[] {
  return store.listKiosks();
}
export function rotateKioskToken(store: RelayStore, id: string): string {
  return store.rotateKioskToken(id);
}
