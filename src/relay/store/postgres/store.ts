import type pg from 'pg';
import type { OrderState } from '../../../core/relay-order.js';
import type { RelayStore } from '../api.js';
import type { NotificationRecord, OrderRecord, RefundRecord } from '../types.js';
import { PgApiKeys } from './api-keys.js';
import { PgConn } from './conn.js';
import { PgDexAudits } from './dex-audits.js';
import { PgFleet } from './fleet-recorder.js';
import { PgAlerts, PgDeliveries, PgPresence } from './fleet.js';
import { PgKiosks } from './kiosks.js';
import { PgNotifications } from './notifications.js';
import { PgOperators } from './operators.js';
import { PgOrders } from './orders.js';
import { PgOutbox } from './outbox.js';
import { PgPayments } from './payments.js';
import { PgRefunds } from './refunds.js';

// The relay's store on PostgreSQL: the same methods, arguments and results as the SQLite store,
// each a Promise. The per-table modules of this folder (kiosks, orders with their events,
// payments, refunds, notifications, outbox, ...) each hold the SQL of their tables; this file
// makes them one RelayStore, as ../sqlite/index.ts does for the SQLite modules, over a PgConn
// (./conn.ts): the pool for the store itself, one checked-out connection for a transaction's `tx`,
// whose modules are built anew over that connection.
//
// Several relay instances share one database, so every read-then-write of the SQLite code is here
// either one conditional statement or a read that locks its row (`SELECT … FOR UPDATE`) inside a
// transaction: two instances handling the same notification at the same moment serialise on the
// order's row, and the second one sees the first one's result (and the transition table refuses
// the repeat), never a stale copy. A module's method that must write more than one row runs in the
// caller's transaction when there is one (its row locks last to that transaction's end), else in
// its own (PgConn.atomic).
//
// Background work (expiry, contingency, refunds, notifications, offers, the vend watchdog) is
// shared out with the claim* methods: `SELECT … FOR UPDATE SKIP LOCKED` inside a transaction, so
// each instance takes rows no other instance holds, and a row goes back to the pool by itself
// when the instance holding it dies (its connection closes, its transaction rolls back).

/** The per-table modules over one PgConn (the pool, or one transaction's connection). */
class PgTables {
  readonly kiosks: PgKiosks;
  readonly orders: PgOrders;
  readonly payments: PgPayments;
  readonly refunds: PgRefunds;
  readonly notifications: PgNotifications;
  readonly outbox: PgOutbox;
  readonly dex: PgDexAudits;
  readonly fleet: PgFleet;
  readonly apiKeys: PgApiKeys;
  readonly presence: PgPresence;
  readonly deliveries: PgDeliveries;
  readonly alerts: PgAlerts;
  readonly operators: PgOperators;

  constructor(c: PgConn) {
    this.kiosks = new PgKiosks(c);
    this.orders = new PgOrders(c);
    this.payments = new PgPayments(c);
    this.refunds = new PgRefunds(c);
    this.notifications = new PgNotifications(c);
    this.outbox = new PgOutbox(c);
    this.dex = new PgDexAudits(c);
    this.fleet = new PgFleet(c);
    this.apiKeys = new PgApiKeys(c);
    this.presence = new PgPresence(c);
    this.deliveries = new PgDeliveries(c);
    this.alerts = new PgAlerts(c, this.deliveries);
    this.operators = new PgOperators(c);
  }
}

export class PostgresRelayStore implements RelayStore {
  readonly kind = 'postgres' as const;
  private readonly c: PgConn;
  private readonly t: PgTables;

  /** @internal use openPostgresStore (a pg.Pool), or transaction() (its PgConn) */
  constructor(on: pg.Pool | PgConn) {
    this.c = on instanceof PgConn ? on : new PgConn(on);
    this.t = new PgTables(this.c);
  }

  /**
   * Runs fn in one transaction on one pooled connection (a savepoint when nested): the state
   * change and its outbox row commit together or not at all. fn gets a store bound to that
   * transaction; it rolls back when fn throws, and the error is thrown on.
   */
  transaction<T>(fn: (tx: PostgresRelayStore) => Promise<T>): Promise<T> {
    return this.c.transaction((c) => fn(c === this.c ? this : new PostgresRelayStore(c)));
  }

  get inTransaction(): boolean {
    return this.c.inTransaction;
  }

  /** Every commit is synced (synchronous_commit stays on): nothing to wait for. */
  durable(): Promise<void> {
    return Promise.resolve();
  }

  /** Proves the database answers (health checks). */
  ping(): Promise<void> {
    return this.c.ping();
  }

  /** See PgConn.writeCount: a new number every call, as other instances write unseen. */
  writeCount(): number {
    return this.c.writeCount();
  }

  /** Ends the pool (waits for checked-out connections to be released). */
  close(): Promise<void> {
    return this.c.close();
  }

  // Background work shared between instances (FOR UPDATE SKIP LOCKED; PostgreSQL only): call
  // them on the store given by transaction() and do the work in that same transaction.
  claimPendingPastDeadline(now: number, limit: number): Promise<OrderRecord[]> {
    return this.t.orders.claimPendingPastDeadline(now, limit);
  }
  claimContingencyCandidates(createdBefore: number, quietSince: number, closedSince: number, limit: number): Promise<OrderRecord[]> {
    return this.t.orders.claimContingencyCandidates(createdBefore, quietSince, closedSince, limit);
  }
  /** e.g. the orders in `refunding` whose refunds the refund worker retries */
  claimOrdersInState(state: OrderState, limit: number): Promise<OrderRecord[]> {
    return this.t.orders.claimOrdersInState(state, limit);
  }
  claimOfferWork(limit: number): Promise<OrderRecord[]> {
    return this.t.orders.claimOfferWork(limit);
  }
  claimOverdueVends(paidBefore: number, limit: number): Promise<OrderRecord[]> {
    return this.t.orders.claimOverdueVends(paidBefore, limit);
  }
  claimSurplusRefundsDue(limit: number): Promise<RefundRecord[]> {
    return this.t.refunds.claimSurplusRefundsDue(limit);
  }
  claimUnprocessedNotifications(limit: number): Promise<NotificationRecord[]> {
    return this.t.notifications.claimUnprocessedNotifications(limit);
  }

  // KioskStore: ./kiosks.ts
  addKiosk(...a: Parameters<RelayStore['addKiosk']>) {
    return this.t.kiosks.addKiosk(...a);
  }
  getKiosk(...a: Parameters<RelayStore['getKiosk']>) {
    return this.t.kiosks.getKiosk(...a);
  }
  getKioskByTokenHash(...a: Parameters<RelayStore['getKioskByTokenHash']>) {
    return this.t.kiosks.getKioskByTokenHash(...a);
  }
  getKioskByPos(...a: Parameters<RelayStore['getKioskByPos']>) {
    return this.t.kiosks.getKioskByPos(...a);
  }
  listKiosks(...a: Parameters<RelayStore['listKiosks']>) {
    return this.t.kiosks.listKiosks(...a);
  }
  setKioskPosQr(...a: Parameters<RelayStore['setKioskPosQr']>) {
    return this.t.kiosks.setKioskPosQr(...a);
  }
  kioskRevision(...a: Parameters<RelayStore['kioskRevision']>) {
    return this.t.kiosks.kioskRevision(...a);
  }
  kiosksChangedAfter(...a: Parameters<RelayStore['kiosksChangedAfter']>) {
    return this.t.kiosks.kiosksChangedAfter(...a);
  }
  setKioskModel(...a: Parameters<RelayStore['setKioskModel']>) {
    return this.t.kiosks.setKioskModel(...a);
  }
  setKioskStore(...a: Parameters<RelayStore['setKioskStore']>) {
    return this.t.kiosks.setKioskStore(...a);
  }
  rotateKioskToken(...a: Parameters<RelayStore['rotateKioskToken']>) {
    return this.t.kiosks.rotateKioskToken(...a);
  }
  // OrderStore: ./orders.ts
  insertOrder(...a: Parameters<RelayStore['insertOrder']>) {
    return this.t.orders.insertOrder(...a);
  }
  getOrder(...a: Parameters<RelayStore['getOrder']>) {
    return this.t.orders.getOrder(...a);
  }
  pendingOrderOf(...a: Parameters<RelayStore['pendingOrderOf']>) {
    return this.t.orders.pendingOrderOf(...a);
  }
  latestOrderOf(...a: Parameters<RelayStore['latestOrderOf']>) {
    return this.t.orders.latestOrderOf(...a);
  }
  ordersInState(...a: Parameters<RelayStore['ordersInState']>) {
    return this.t.orders.ordersInState(...a);
  }
  pendingPastDeadline(...a: Parameters<RelayStore['pendingPastDeadline']>) {
    return this.t.orders.pendingPastDeadline(...a);
  }
  openContingencyCandidates(...a: Parameters<RelayStore['openContingencyCandidates']>) {
    return this.t.orders.openContingencyCandidates(...a);
  }
  closedContingencyCandidates(...a: Parameters<RelayStore['closedContingencyCandidates']>) {
    return this.t.orders.closedContingencyCandidates(...a);
  }
  countOrders(...a: Parameters<RelayStore['countOrders']>) {
    return this.t.orders.countOrders(...a);
  }
  saleHoursOf(...a: Parameters<RelayStore['saleHoursOf']>) {
    return this.t.orders.saleHoursOf(...a);
  }
  recentOrders(...a: Parameters<RelayStore['recentOrders']>) {
    return this.t.orders.recentOrders(...a);
  }
  ordersNeedingReview(...a: Parameters<RelayStore['ordersNeedingReview']>) {
    return this.t.orders.ordersNeedingReview(...a);
  }
  countNeedingReview(...a: Parameters<RelayStore['countNeedingReview']>) {
    return this.t.orders.countNeedingReview(...a);
  }
  flagReview(...a: Parameters<RelayStore['flagReview']>) {
    return this.t.orders.flagReview(...a);
  }
  clearReview(...a: Parameters<RelayStore['clearReview']>) {
    return this.t.orders.clearReview(...a);
  }
  overdueVends(...a: Parameters<RelayStore['overdueVends']>) {
    return this.t.orders.overdueVends(...a);
  }
  markVendOverdue(...a: Parameters<RelayStore['markVendOverdue']>) {
    return this.t.orders.markVendOverdue(...a);
  }
  transitionOrder(...a: Parameters<RelayStore['transitionOrder']>) {
    return this.t.orders.transitionOrder(...a);
  }
  moveOffer(...a: Parameters<RelayStore['moveOffer']>) {
    return this.t.orders.moveOffer(...a);
  }
  noteOfferError(...a: Parameters<RelayStore['noteOfferError']>) {
    return this.t.orders.noteOfferError(...a);
  }
  offerWork(...a: Parameters<RelayStore['offerWork']>) {
    return this.t.orders.offerWork(...a);
  }
  patchOrder(...a: Parameters<RelayStore['patchOrder']>) {
    return this.t.orders.patchOrder(...a);
  }
  noteOrderEvent(...a: Parameters<RelayStore['noteOrderEvent']>) {
    return this.t.orders.noteOrderEvent(...a);
  }
  orderEvents(...a: Parameters<RelayStore['orderEvents']>) {
    return this.t.orders.orderEvents(...a);
  }
  dispensedBySlot(...a: Parameters<RelayStore['dispensedBySlot']>) {
    return this.t.orders.dispensedBySlot(...a);
  }
  // PaymentStore: ./payments.ts
  upsertPayment(...a: Parameters<RelayStore['upsertPayment']>) {
    return this.t.payments.upsertPayment(...a);
  }
  paymentsOf(...a: Parameters<RelayStore['paymentsOf']>) {
    return this.t.payments.paymentsOf(...a);
  }
  approvedPaymentsOf(...a: Parameters<RelayStore['approvedPaymentsOf']>) {
    return this.t.payments.approvedPaymentsOf(...a);
  }
  getPayment(...a: Parameters<RelayStore['getPayment']>) {
    return this.t.payments.getPayment(...a);
  }
  unrefundedApprovedPaymentsOf(...a: Parameters<RelayStore['unrefundedApprovedPaymentsOf']>) {
    return this.t.payments.unrefundedApprovedPaymentsOf(...a);
  }
  // RefundStore: ./refunds.ts
  getRefundByKey(...a: Parameters<RelayStore['getRefundByKey']>) {
    return this.t.refunds.getRefundByKey(...a);
  }
  insertRefundIntent(...a: Parameters<RelayStore['insertRefundIntent']>) {
    return this.t.refunds.insertRefundIntent(...a);
  }
  recordExternalRefund(...a: Parameters<RelayStore['recordExternalRefund']>) {
    return this.t.refunds.recordExternalRefund(...a);
  }
  failRefund(...a: Parameters<RelayStore['failRefund']>) {
    return this.t.refunds.failRefund(...a);
  }
  surplusRefundsDue(...a: Parameters<RelayStore['surplusRefundsDue']>) {
    return this.t.refunds.surplusRefundsDue(...a);
  }
  recordRefundAttempt(...a: Parameters<RelayStore['recordRefundAttempt']>) {
    return this.t.refunds.recordRefundAttempt(...a);
  }
  completeRefund(...a: Parameters<RelayStore['completeRefund']>) {
    return this.t.refunds.completeRefund(...a);
  }
  refundsOf(...a: Parameters<RelayStore['refundsOf']>) {
    return this.t.refunds.refundsOf(...a);
  }
  failingRefunds(...a: Parameters<RelayStore['failingRefunds']>) {
    return this.t.refunds.failingRefunds(...a);
  }
  allRefunds(...a: Parameters<RelayStore['allRefunds']>) {
    return this.t.refunds.allRefunds(...a);
  }
  // schema 10: partial and retried refunds
  insertRefundRequest(...a: Parameters<RelayStore['insertRefundRequest']>) {
    return this.t.refunds.insertRefundRequest(...a);
  }
  partialRefundsDue(...a: Parameters<RelayStore['partialRefundsDue']>) {
    return this.t.refunds.partialRefundsDue(...a);
  }
  // NotificationStore: ./notifications.ts
  insertNotification(...a: Parameters<RelayStore['insertNotification']>) {
    return this.t.notifications.insertNotification(...a);
  }
  countNotificationsFrom(...a: Parameters<RelayStore['countNotificationsFrom']>) {
    return this.t.notifications.countNotificationsFrom(...a);
  }
  noteNotificationFailure(...a: Parameters<RelayStore['noteNotificationFailure']>) {
    return this.t.notifications.noteNotificationFailure(...a);
  }
  giveUpNotification(...a: Parameters<RelayStore['giveUpNotification']>) {
    return this.t.notifications.giveUpNotification(...a);
  }
  countGivenUpNotifications(...a: Parameters<RelayStore['countGivenUpNotifications']>) {
    return this.t.notifications.countGivenUpNotifications(...a);
  }
  pruneNotifications(...a: Parameters<RelayStore['pruneNotifications']>) {
    return this.t.notifications.pruneNotifications(...a);
  }
  markNotification(...a: Parameters<RelayStore['markNotification']>) {
    return this.t.notifications.markNotification(...a);
  }
  unprocessedNotifications(...a: Parameters<RelayStore['unprocessedNotifications']>) {
    return this.t.notifications.unprocessedNotifications(...a);
  }
  listNotifications(...a: Parameters<RelayStore['listNotifications']>) {
    return this.t.notifications.listNotifications(...a);
  }
  // OutboxStore: ./outbox.ts
  enqueueOutbox(...a: Parameters<RelayStore['enqueueOutbox']>) {
    return this.t.outbox.enqueueOutbox(...a);
  }
  outboxOf(...a: Parameters<RelayStore['outboxOf']>) {
    return this.t.outbox.outboxOf(...a);
  }
  outboxDepth(...a: Parameters<RelayStore['outboxDepth']>) {
    return this.t.outbox.outboxDepth(...a);
  }
  deleteOutbox(...a: Parameters<RelayStore['deleteOutbox']>) {
    return this.t.outbox.deleteOutbox(...a);
  }
  inInbox(...a: Parameters<RelayStore['inInbox']>) {
    return this.t.outbox.inInbox(...a);
  }
  recordInbox(...a: Parameters<RelayStore['recordInbox']>) {
    return this.t.outbox.recordInbox(...a);
  }
  pruneInbox(...a: Parameters<RelayStore['pruneInbox']>) {
    return this.t.outbox.pruneInbox(...a);
  }
  // presence: ./fleet.ts
  claimPresence(...a: Parameters<RelayStore['claimPresence']>) {
    return this.t.presence.claimPresence(...a);
  }
  touchPresence(...a: Parameters<RelayStore['touchPresence']>) {
    return this.t.presence.touchPresence(...a);
  }
  releasePresence(...a: Parameters<RelayStore['releasePresence']>) {
    return this.t.presence.releasePresence(...a);
  }
  presenceOf(...a: Parameters<RelayStore['presenceOf']>) {
    return this.t.presence.presenceOf(...a);
  }
  presentSince(...a: Parameters<RelayStore['presentSince']>) {
    return this.t.presence.presentSince(...a);
  }
  kiosksWithOutbox(...a: Parameters<RelayStore['kiosksWithOutbox']>) {
    return this.t.presence.kiosksWithOutbox(...a);
  }
  // alerts: ./fleet.ts
  openAlerts(...a: Parameters<RelayStore['openAlerts']>) {
    return this.t.alerts.openAlerts(...a);
  }
  fireAlert(...a: Parameters<RelayStore['fireAlert']>) {
    return this.t.alerts.fireAlert(...a);
  }
  clearAlert(...a: Parameters<RelayStore['clearAlert']>) {
    return this.t.alerts.clearAlert(...a);
  }
  alerts(...a: Parameters<RelayStore['alerts']>) {
    return this.t.alerts.alerts(...a);
  }
  // deliveries: ./fleet.ts
  insertDeliveries(...a: Parameters<RelayStore['insertDeliveries']>) {
    return this.t.deliveries.insertDeliveries(...a);
  }
  dueDeliveries(...a: Parameters<RelayStore['dueDeliveries']>) {
    return this.t.deliveries.dueDeliveries(...a);
  }
  nextDeliveryAt(...a: Parameters<RelayStore['nextDeliveryAt']>) {
    return this.t.deliveries.nextDeliveryAt(...a);
  }
  moveDelivery(...a: Parameters<RelayStore['moveDelivery']>) {
    return this.t.deliveries.moveDelivery(...a);
  }
  deliveries(...a: Parameters<RelayStore['deliveries']>) {
    return this.t.deliveries.deliveries(...a);
  }
  // DexAuditStore: ./dex-audits.ts
  insertDexAudit(...a: Parameters<RelayStore['insertDexAudit']>) {
    return this.t.dex.insertDexAudit(...a);
  }
  getDexAudit(...a: Parameters<RelayStore['getDexAudit']>) {
    return this.t.dex.getDexAudit(...a);
  }
  dexAudits(...a: Parameters<RelayStore['dexAudits']>) {
    return this.t.dex.dexAudits(...a);
  }
  previousDexAudit(...a: Parameters<RelayStore['previousDexAudit']>) {
    return this.t.dex.previousDexAudit(...a);
  }
  // FleetStore: ./fleet-recorder.ts
  saveStatus(...a: Parameters<RelayStore['saveStatus']>) {
    return this.t.fleet.saveStatus(...a);
  }
  statuses(...a: Parameters<RelayStore['statuses']>) {
    return this.t.fleet.statuses(...a);
  }
  setPresence(...a: Parameters<RelayStore['setPresence']>) {
    return this.t.fleet.setPresence(...a);
  }
  presences(...a: Parameters<RelayStore['presences']>) {
    return this.t.fleet.presences(...a);
  }
  recordRefill(...a: Parameters<RelayStore['recordRefill']>) {
    return this.t.fleet.recordRefill(...a);
  }
  refills(...a: Parameters<RelayStore['refills']>) {
    return this.t.fleet.refills(...a);
  }
  recordRefusal(...a: Parameters<RelayStore['recordRefusal']>) {
    return this.t.fleet.recordRefusal(...a);
  }
  refusals(...a: Parameters<RelayStore['refusals']>) {
    return this.t.fleet.refusals(...a);
  }
  insertCommand(...a: Parameters<RelayStore['insertCommand']>) {
    return this.t.fleet.insertCommand(...a);
  }
  getCommand(...a: Parameters<RelayStore['getCommand']>) {
    return this.t.fleet.getCommand(...a);
  }
  transitionCommand(...a: Parameters<RelayStore['transitionCommand']>) {
    return this.t.fleet.transitionCommand(...a);
  }
  noteCommand(...a: Parameters<RelayStore['noteCommand']>) {
    return this.t.fleet.noteCommand(...a);
  }
  commandsOf(...a: Parameters<RelayStore['commandsOf']>) {
    return this.t.fleet.commandsOf(...a);
  }
  commandsIn(...a: Parameters<RelayStore['commandsIn']>) {
    return this.t.fleet.commandsIn(...a);
  }
  setKioskPrices(...a: Parameters<RelayStore['setKioskPrices']>) {
    return this.t.fleet.setKioskPrices(...a);
  }
  kioskPrices(...a: Parameters<RelayStore['kioskPrices']>) {
    return this.t.fleet.kioskPrices(...a);
  }
  // ApiKeyStore, StockStore: ./api-keys.ts
  insertApiKey(...a: Parameters<RelayStore['insertApiKey']>) {
    return this.t.apiKeys.insertApiKey(...a);
  }
  apiKeyByHash(...a: Parameters<RelayStore['apiKeyByHash']>) {
    return this.t.apiKeys.apiKeyByHash(...a);
  }
  listApiKeys(...a: Parameters<RelayStore['listApiKeys']>) {
    return this.t.apiKeys.listApiKeys(...a);
  }
  revokeApiKey(...a: Parameters<RelayStore['revokeApiKey']>) {
    return this.t.apiKeys.revokeApiKey(...a);
  }
  parLevels(...a: Parameters<RelayStore['parLevels']>) {
    return this.t.apiKeys.parLevels(...a);
  }
  setParLevel(...a: Parameters<RelayStore['setParLevel']>) {
    return this.t.apiKeys.setParLevel(...a);
  }
  salesByDay(...a: Parameters<RelayStore['salesByDay']>) {
    return this.t.apiKeys.salesByDay(...a);
  }
  // OperatorStore: ./operators.ts
  addOperator(...a: Parameters<RelayStore['addOperator']>) {
    return this.t.operators.addOperator(...a);
  }
  getOperatorByEmail(...a: Parameters<RelayStore['getOperatorByEmail']>) {
    return this.t.operators.getOperatorByEmail(...a);
  }
  getOperator(...a: Parameters<RelayStore['getOperator']>) {
    return this.t.operators.getOperator(...a);
  }
  listOperators(...a: Parameters<RelayStore['listOperators']>) {
    return this.t.operators.listOperators(...a);
  }
  setOperatorDisabled(...a: Parameters<RelayStore['setOperatorDisabled']>) {
    return this.t.operators.setOperatorDisabled(...a);
  }
  insertOperatorSession(...a: Parameters<RelayStore['insertOperatorSession']>) {
    return this.t.operators.insertOperatorSession(...a);
  }
  getOperatorSession(...a: Parameters<RelayStore['getOperatorSession']>) {
    return this.t.operators.getOperatorSession(...a);
  }
  deleteOperatorSession(...a: Parameters<RelayStore['deleteOperatorSession']>) {
    return this.t.operators.deleteOperatorSession(...a);
  }
  pruneOperatorSessions(...a: Parameters<RelayStore['pruneOperatorSessions']>) {
    return this.t.operators.pruneOperatorSessions(...a);
  }
  insertOperatorAudit(...a: Parameters<RelayStore['insertOperatorAudit']>) {
    return this.t.operators.insertOperatorAudit(...a);
  }
  operatorAuditOf(...a: Parameters<RelayStore['operatorAuditOf']>) {
    return this.t.operators.operatorAuditOf(...a);
  }
  recentOperatorAudit(...a: Parameters<RelayStore['recentOperatorAudit']>) {
    return this.t.operators.recentOperatorAudit(...a);
  }
}
