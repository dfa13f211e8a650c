import type { OrderEvent, OrderState } from '../../core/relay-order.js';
import type { OfferEvent } from '../../core/mp-offer.js';
import type { DexAuditFrame, PaymentModelName } from '../../protocol/messages.js';
import type { FleetRecorder } from '../fleet-recorder.js';
import type { DeliveryEvent, DeliveryState } from '../../core/outbound-delivery.js';
import type {
  AlertRecord,
  DeliveryRecord,
  NewDelivery,
  PresenceRow,
  AddedKiosk,
  AddKioskInput,
  ApiKeyRecord,
  DexAuditRecord,
  Kiosk,
  NewOrder,
  NotificationRecord,
  OrderEventRecord,
  OrderPatch,
  OrderRecord,
  OperatorAuditRecord,
  OperatorRecord,
  OperatorSessionRecord,
  OutboxRecord,
  PaymentRecord,
  RefundReason,
  RefundRecord,
} from './types.js';

// What the relay asks of its durable state, whatever holds it: SQLite (one process, the default)
// or PostgreSQL (several instances). Every method is async because a PostgreSQL round trip is.
// Nothing outside src/relay/store/ sees a database handle or writes SQL: a query the relay needs
// is a method here, implemented by both stores.
//
// Transactions: `transaction(fn)` hands fn a `tx` that is itself a RelayStore; every call made
// through `tx` is part of the transaction, which commits when fn resolves and rolls back when it
// throws. Calls on the outer store while a transaction is open are NOT part of it (SQLite: they
// wait until it ends; a call on the outer store from inside fn would wait for itself, so the
// SQLite store refuses it with a StoreError). A transaction on `tx` nests (a savepoint).
// The `tx` handle must not be used after fn has settled (StoreError).
//
// Concurrency: a read-decide-write done inside one transaction is never interleaved with another
// change of the same order: transitionOrder and moveOffer are conditional on the state they read
// (UPDATE ... WHERE state = <read>); when another transaction moved the order first they throw
// IllegalTransition (core/state-machine.ts) instead of overwriting it. PostgreSQL implementations
// take the row lock for these (SELECT ... FOR UPDATE) so the check and the write see one state.
// A refused move (IllegalTransition, StoreError "no order") leaves the surrounding transaction
// usable: the caller catches it and goes on (it notes the refusal in the order's history).
//
// Times are epoch milliseconds (integers), money integer minor units, as in types.ts.

export interface KioskStore {
  /** Validates (types.ts checkKioskInput), refuses a duplicate id or POS id (StoreError), returns the token once. */
  addKiosk(input: AddKioskInput, at?: number): Promise<AddedKiosk>;
  getKiosk(id: string): Promise<Kiosk | undefined>;
  getKioskByTokenHash(tokenHash: string): Promise<Kiosk | undefined>;
  getKioskByPos(posExternalId: string): Promise<Kiosk | undefined>;
  /** ordered by id */
  listKiosks(): Promise<Kiosk[]>;
  /** bumps the kiosk revision; StoreError when there is no such kiosk */
  setKioskPosQr(id: string, qr: string): Promise<void>;
  /** The highest kiosk revision: changes after it are found with kiosksChangedAfter. */
  kioskRevision(): Promise<number>;
  /** ordered by revision */
  kiosksChangedAfter(revision: number): Promise<Kiosk[]>;
  /** bumps the kiosk revision; StoreError when there is no such kiosk */
  setKioskModel(id: string, model: PaymentModelName, mode: string | null): Promise<void>;
  /** checkStoreExternalId, bumps the kiosk revision; StoreError when there is no such kiosk */
  setKioskStore(id: string, storeExternalId: string): Promise<void>;
  /** New token (returned once); the old one stops working at once; bumps the kiosk revision (running relays drop the old token's link). */
  rotateKioskToken(id: string): Promise<string>;
}

/** Where a walk of the contingency search's closed orders stands: the last order it read. */
export interface ContingencyCursor {
  updatedAt: number;
  id: string;
}

/** A kiosk's selling hours (OrderStore.saleHoursOf). */
export interface SaleHours {
  hours: number[];
  lastSaleAt: number | null;
}

export interface OrderStore {
  /** Inserts a `pending` order (event `created`) or a `rejected` one (event `rejected`) with its history row. */
  insertOrder(o: NewOrder): Promise<OrderRecord>;
  getOrder(id: string): Promise<OrderRecord | undefined>;
  /** the newest pending order of the kiosk */
  pendingOrderOf(kioskId: string): Promise<OrderRecord | undefined>;
  /** the newest order of the kiosk that is not `rejected` (ties: the later inserted) */
  latestOrderOf(kioskId: string): Promise<OrderRecord | undefined>;
  /** oldest first */
  ordersInState(state: OrderState): Promise<OrderRecord[]>;
  pendingPastDeadline(now: number, kioskId?: string): Promise<OrderRecord[]>;
  /**
   * The contingency search's open orders: pending ones created at or before `createdBefore` with
   * no notification since `quietSince`, soonest deadline first, at most `limit`.
   */
  openContingencyCandidates(createdBefore: number, quietSince: number, limit: number): Promise<OrderRecord[]>;
  /**
   * The contingency search's closed orders: cancelled or expired ones closed (updated) at or after
   * `closedSince`, where a payment can still land. Newest first, a page at a time: `below` is the
   * keyset cursor (the last order of the previous page; only orders strictly below it in
   * (updatedAt, id) order come), so a backlog of any size is walked without loading it whole and
   * without an OFFSET that rereads what came before.
   */
  closedContingencyCandidates(closedSince: number, below: ContingencyCursor | undefined, limit: number): Promise<OrderRecord[]>;
  countOrders(state: OrderState): Promise<number>;
  /** Newest first, for the operator's `qrkiosk relay orders`. */
  recentOrders(opts: { limit: number; kioskId?: string; state?: OrderState }): Promise<OrderRecord[]>;
  /**
   * The hours in which a kiosk's dispensed (vended) orders were paid since `since` (each as the ms
   * at the start of its UTC hour, oldest first) and the last such payment: what the no-sales alert
   * needs, counted by the database rather than loading every order of a busy kiosk.
   */
  saleHoursOf(kioskId: string, since: number): Promise<SaleHours>;
  /** Orders a person must look at (needs_review set), oldest first. */
  ordersNeedingReview(): Promise<OrderRecord[]>;
  countNeedingReview(): Promise<number>;
  /**
   * Adds a reason for review (types.ts withReviewReason). Resolves whether the order changed, so
   * callers log a new reason only once. StoreError when there is no such order.
   */
  flagReview(orderId: string, why: string): Promise<boolean>;
  /** Removes the reasons starting with `prefix` (types.ts withoutReviewReasons); whether it changed. */
  clearReview(orderId: string, prefix: string): Promise<boolean>;
  /** Paid before `paidBefore`, no vend result, not flagged by the watchdog yet; oldest paid first. */
  overdueVends(paidBefore: number): Promise<OrderRecord[]>;
  /** The watchdog's mark (vend_overdue_at) and its review reason, in one transaction. */
  markVendOverdue(orderId: string, at: number, why: string): Promise<void>;
  /**
   * The ONLY way an order changes state: checks the move against core/relay-order.ts (throws
   * IllegalTransition), writes the new state, updated_at = at, the patch, and the history row,
   * in one transaction, conditional on the state it read (see the header). StoreError when there
   * is no such order. Resolves the order as it is after the move.
   */
  transitionOrder(id: string, event: OrderEvent, at: number, detail?: string | null, patch?: OrderPatch): Promise<OrderRecord>;
  /**
   * The order's standing at Mercado Pago moves only through core/mp-offer.ts (IllegalTransition
   * otherwise). `facts` records what the call returned (its id, the QR) or why it failed; a
   * history row `mp_<event>` is written when the offer state changes.
   */
  moveOffer(id: string, event: OfferEvent, at: number, facts?: { mpOrderId?: string; qr?: string; error?: string | null }): Promise<OrderRecord>;
  /** Records a failed offer/withdraw attempt that will be retried (no move); error cut to 500 chars. */
  noteOfferError(id: string, error: string): Promise<void>;
  /** Orders whose Mercado Pago side has work to do (offer_state due / withdraw_due), oldest first. */
  offerWork(): Promise<OrderRecord[]>;
  /** Facts that are not a state change (a vend_unknown kept for review, a notification seen). */
  patchOrder(id: string, patch: OrderPatch & { lastNotificationAt?: number }): Promise<void>;
  /** An audit line in the order's history without a state change (e.g. a refused transition). */
  noteOrderEvent(orderId: string, state: OrderState, event: string, detail: string | null, at: number): Promise<void>;
  /** the order's history, in the order it was written */
  orderEvents(orderId: string): Promise<OrderEventRecord[]>;
  /** qrkiosk's own sales of a kiosk: vends reported dispensed for orders paid in (from, to], per slot and currency. */
  dispensedBySlot(kioskId: string, from: number, to: number): Promise<Array<{ slot: number | null; count: number; amount: number; currency: string }>>;
}

export interface PaymentStore {
  /** Insert or update by payment id; ever_approved only ever goes from false to true. */
  upsertPayment(p: Omit<PaymentRecord, 'firstSeenAt' | 'updatedAt' | 'everApproved'>, at: number): Promise<void>;
  /** ordered by first seen, then payment id */
  paymentsOf(orderId: string): Promise<PaymentRecord[]>;
  /** Payments that were approved at some point (a refund is owed/accounted for each). */
  approvedPaymentsOf(orderId: string): Promise<PaymentRecord[]>;
  getPayment(paymentId: string): Promise<PaymentRecord | undefined>;
  /** Payments of the order that were approved at some point and have no refund row at all. */
  unrefundedApprovedPaymentsOf(orderId: string): Promise<PaymentRecord[]>;
}

export interface RefundStore {
  getRefundByKey(key: string): Promise<RefundRecord | undefined>;
  /** Records the intent BEFORE calling Mercado Pago; the unique key makes a second insert a no-op. Resolves the row. */
  insertRefundIntent(orderId: string, paymentId: string, key: string, at: number, reason?: RefundReason): Promise<RefundRecord>;
  /** A payment MP shows refunded although we never asked (status `external`); a no-op when the key exists. */
  recordExternalRefund(orderId: string, paymentId: string, key: string, amount: number, currency: string, at: number, reason?: RefundReason): Promise<void>;
  /** Mercado Pago refused the refund for good (status `failed`, attempts + 1). */
  failRefund(key: string, error: string, at: number): Promise<void>;
  /** Surplus refunds still `requested` whose order is not `refunding`, by id. */
  surplusRefundsDue(): Promise<RefundRecord[]>;
  recordRefundAttempt(key: string, error: string | null): Promise<void>;
  completeRefund(key: string, r: { mpRefundId: string; amount: number; currency: string; status: string }, at: number): Promise<void>;
  /** by id */
  refundsOf(orderId: string): Promise<RefundRecord[]>;
  /** by id */
  allRefunds(): Promise<RefundRecord[]>;
  /** Refunds that failed for good, or are still requested after `minAttempts` tries: the alert's, by id. */
  failingRefunds(minAttempts: number): Promise<RefundRecord[]>;

  // ---- schema 10: partial and retried refunds ----
  /**
   * A refund intent with the amount to ask for (null: what remains of the payment): an operator's
   * partial refund, or a new attempt of a refused one. A no-op when the key exists; resolves
   * whether this call wrote the row (two concurrent retries: one wins).
   */
  insertRefundRequest(r: NewRefundRequest): Promise<boolean>;
  /** Partial refunds still `requested` (Mercado Pago not answered yet), by id. */
  partialRefundsDue(): Promise<RefundRecord[]>;
}

export interface NewRefundRequest {
  orderId: string;
  paymentId: string;
  key: string;
  reason: RefundReason;
  requestedAmount: number | null;
  at: number;
}

export interface NotificationStore {
  /**
   * Resolves the new row's id. May be committed without an fsync of its own (SQLite): whoever
   * answers for it (the route's 200) awaits durable() first.
   */
  insertNotification(n: Omit<NotificationRecord, 'id' | 'attempts' | 'givenUpAt'>): Promise<number>;
  /** Notifications stored from `source` at or after `since` (the per-source cap). */
  countNotificationsFrom(source: string, since: number): Promise<number>;
  /** One more failed processing of a notification; resolves how many there have been (0: no such row). */
  noteNotificationFailure(id: number, outcome: string): Promise<number>;
  /** Processing given up for good: done (never resumed) and flagged for a person. */
  giveUpNotification(id: number, outcome: string, at: number): Promise<void>;
  countGivenUpNotifications(): Promise<number>;
  /** Retention: deletes processed notifications processed before `processedBefore`; resolves how many. */
  pruneNotifications(processedBefore: number): Promise<number>;
  /** May be committed without an fsync of its own (SQLite): a lost mark only means processing it again. */
  markNotification(id: number, outcome: string, processedAt: number | null): Promise<void>;
  /** by id */
  unprocessedNotifications(): Promise<NotificationRecord[]>;
  /** by id */
  listNotifications(): Promise<NotificationRecord[]>;
}

export interface OutboxStore {
  /** The frame is kept whole as JSON text (payload), so a re-send is byte-identical. */
  enqueueOutbox(kioskId: string, frame: { id: string; type: string }, at: number): Promise<void>;
  /** by seq (the order they were enqueued) */
  outboxOf(kioskId: string): Promise<OutboxRecord[]>;
  /** Reliable frames written for kiosks and not yet acked, all kiosks (the outbox depth metric). */
  outboxDepth(): Promise<number>;
  /**
   * Only the kiosk the message was addressed to can ack it away; whether a row went. May be
   * committed without an fsync of its own (SQLite): a lost delete re-sends a frame the agent drops.
   */
  deleteOutbox(kioskId: string, messageId: string): Promise<boolean>;
  /** Whether the kiosk's reliable message was applied already (at most once). */
  inInbox(kioskId: string, messageId: string): Promise<boolean>;
  recordInbox(kioskId: string, messageId: string, type: string, at: number): Promise<void>;
  /**
   * Retention of the inbox: deletes rows applied before `appliedBefore`; resolves how many. An
   * agent re-sends an unacked message within minutes, so a week-old row protects nothing.
   */
  pruneInbox(appliedBefore: number): Promise<number>;
}

export interface DexAuditStore {
  /** Stores a machine audit once (a re-sent read with the same auditId is ignored); whether it was new. */
  insertDexAudit(kioskId: string, frame: DexAuditFrame, at: number): Promise<boolean>;
  getDexAudit(auditId: string): Promise<DexAuditRecord | undefined>;
  /** Newest first (read_at, then audit id); from/to bound read_at (inclusive). */
  dexAudits(opts: { kioskId?: string; from?: number; to?: number; limit: number }): Promise<DexAuditRecord[]>;
  /** The same machine's audit read just before `readAt`, for the sales between two reads. */
  previousDexAudit(kioskId: string, machineSerial: string, readAt: number): Promise<DexAuditRecord | undefined>;
}

export interface OperatorStore {
  /** StoreError when the e-mail (case-insensitive) already has an account. Resolves the new row. */
  addOperator(email: string, role: OperatorRecord['role'], passwordHash: string, at: number): Promise<OperatorRecord>;
  /** by e-mail, case-insensitive */
  getOperatorByEmail(email: string): Promise<OperatorRecord | undefined>;
  getOperator(id: number): Promise<OperatorRecord | undefined>;
  /** by id */
  listOperators(): Promise<OperatorRecord[]>;
  /** Disables (at) or re-enables (null); a disable also deletes the account's sessions. Whether the account exists. */
  setOperatorDisabled(email: string, at: number | null): Promise<boolean>;
  insertOperatorSession(s: OperatorSessionRecord): Promise<void>;
  getOperatorSession(tokenHash: string): Promise<OperatorSessionRecord | undefined>;
  deleteOperatorSession(tokenHash: string): Promise<void>;
  /** Retention: deletes sessions expired before `before`; resolves how many. */
  pruneOperatorSessions(before: number): Promise<number>;
  /** Resolves the new row's id. */
  insertOperatorAudit(a: Omit<OperatorAuditRecord, 'id'>): Promise<number>;
  /** the order's operator actions, oldest first */
  operatorAuditOf(orderId: string): Promise<OperatorAuditRecord[]>;
  /** newest first */
  recentOperatorAudit(limit: number): Promise<OperatorAuditRecord[]>;
}

/**
 * The operator console's record of the fleet (relay/fleet-recorder.ts; tables of migration 8):
 * recordRefill is idempotent per refillId, transitionCommand checks the move against
 * core/kiosk-command.ts and appends the history row in the same transaction (conditional on the
 * state it read, as transitionOrder).
 */
export type FleetStore = FleetRecorder;

export interface ApiKeyStore {
  /** StoreError when the name is taken (names are how operators tell keys apart). */
  insertApiKey(k: Omit<ApiKeyRecord, 'revokedAt'>): Promise<void>;
  /** the key whose secret hashes to this (revoked ones too: the caller refuses them) */
  apiKeyByHash(secretHash: string): Promise<ApiKeyRecord | undefined>;
  /** by creation */
  listApiKeys(): Promise<ApiKeyRecord[]>;
  /** By id or name; whether a key that was not revoked is revoked now. */
  revokeApiKey(idOrName: string, at: number): Promise<boolean>;
}

export interface StockStore {
  /** the par level of each slot that has one, all kiosks, by kiosk and slot */
  parLevels(): Promise<Array<{ kioskId: string; slot: number; par: number }>>;
  /** par 0 removes it */
  setParLevel(kioskId: string, slot: number, par: number): Promise<void>;
}

export interface SaleRow {
  /** days since the epoch, UTC (the day of paid_at) */
  day: number;
  kioskId: string;
  sku: string;
  currency: string;
  /** units sold (sum of quantity) */
  units: number;
  /** minor units */
  amount: number;
}

export interface SalesStore {
  /** Orders vended (state `vended`) and paid in [from, to), per UTC day, kiosk, product and currency; ordered by those. */
  salesByDay(from: number, to: number, kioskId?: string): Promise<SaleRow[]>;
}

/**
 * Several relay instances on one database (relay/fleet/): which instance holds each kiosk's
 * WebSocket, refreshed by a heartbeat, so any instance can tell whether a kiosk is connected.
 */
export interface PresenceStore {
  /** this kiosk is now connected to `instanceId` (replaces any other instance's row) */
  claimPresence(kioskId: string, instanceId: string, at: number): Promise<void>;
  /** refreshes seen_at of every row of this instance; resolves how many */
  touchPresence(instanceId: string, at: number): Promise<number>;
  /** removes the row only if it is still this instance's (a newer connection elsewhere keeps its own) */
  releasePresence(kioskId: string, instanceId: string): Promise<boolean>;
  presenceOf(kioskId: string): Promise<PresenceRow | undefined>;
  /** rows seen at or after `since` */
  presentSince(since: number): Promise<PresenceRow[]>;
  /** kiosks that have outbox rows not yet acked (the fleet's sweep pushes only these) */
  kiosksWithOutbox(): Promise<string[]>;
}

/** Alerts fire once per condition key and clear once (relay/console/alerts.ts). */
export interface AlertStore {
  openAlerts(): Promise<AlertRecord[]>;
  /** inserts the alert and its deliveries in one transaction; undefined when one is already open for its key */
  fireAlert(a: Omit<AlertRecord, 'clearedAt'>, deliveries: NewDelivery[]): Promise<AlertRecord | undefined>;
  /** clears an open alert and writes its deliveries in one transaction; false when it was not open */
  clearAlert(id: string, at: number, deliveries: NewDelivery[]): Promise<boolean>;
  /** newest first */
  alerts(opts: { limit: number; open?: boolean; kioskId?: string }): Promise<AlertRecord[]>;
}

/** Messages owed to webhooks and e-mail (relay/console/deliveries.ts). */
export interface DeliveryStore {
  /** writes new pending deliveries (call it inside the transaction of the fact they report) */
  insertDeliveries(rows: NewDelivery[], at: number): Promise<void>;
  /** pending or held rows whose next_at has come, oldest first */
  dueDeliveries(now: number, limit: number): Promise<DeliveryRecord[]>;
  /** the earliest next_at of a pending or held row */
  nextDeliveryAt(): Promise<number | undefined>;
  /** a checked move (core/outbound-delivery.ts); IllegalTransition on a stale row, StoreError when there is none */
  moveDelivery(id: string, event: DeliveryEvent, at: number, facts: { nextAt?: number; error?: string | null; attempts?: number }): Promise<DeliveryRecord>;
  /** newest first */
  deliveries(opts: { limit: number; subject?: string; state?: DeliveryState }): Promise<DeliveryRecord[]>;
}

export interface RelayStore
  extends KioskStore,
    OrderStore,
    PaymentStore,
    RefundStore,
    NotificationStore,
    OutboxStore,
    DexAuditStore,
    PresenceStore,
    AlertStore,
    DeliveryStore,
    FleetStore,
    ApiKeyStore,
    StockStore,
    SalesStore,
    OperatorStore {
  /** See the header: fn's writes through `tx` commit together or not at all. */
  transaction<T>(fn: (tx: RelayStore) => Promise<T>): Promise<T>;
  /** Waits for the running transaction (if any), then closes; later calls reject with StoreError. */
  close(): Promise<void>;
  readonly kind: 'sqlite' | 'postgres';
  /** Resolves when the database answers a trivial query (health checks); rejects with why not. */
  ping(): Promise<void>;
  /**
   * How many writes this store object has made since it opened (this process only): unchanged
   * means no row changed through it, so an answer derived from the database (the POS-url poll
   * cache) can be reused. Writes through its transactions count; rolled-back ones may too.
   * Synchronous and cheap: it is read on every poll.
   */
  writeCount(): number;
  /**
   * Resolves once every commit made so far through this store is on disk. PostgreSQL: at once
   * (each commit is). SQLite: at once after a synced commit; after one made without its own fsync
   * (insertNotification...), at the next synced transaction that writes a row, which flushes the
   * log with it, or a few milliseconds later by an fsync of the log alone: commits waited on
   * together share one fsync.
   */
  durable(): Promise<void>;
}
