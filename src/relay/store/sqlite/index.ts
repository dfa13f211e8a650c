import { AsyncLocalStorage } from 'node:async_hooks';
import { closeSync, fsyncSync, openSync } from 'node:fs';
import { crashPoint } from '../../../runtime/crash-hook.js';
import { openDatabase, type Db } from '../../../runtime/sqlite.js';
import type { RelayStore } from '../api.js';
import { StoreError } from '../types.js';
import { SqliteConn } from './conn.js';
import { SqliteDexAudits } from './dex-audits.js';
import { SqliteFleet } from './fleet-recorder.js';
import { SqliteApiKeys } from './api-keys.js';
import { SqliteAlerts, SqliteDeliveries, SqlitePresence } from './fleet.js';
import { SqliteKiosks } from './kiosks.js';
import { AsyncLock } from './lock.js';
import { MIGRATIONS } from './migrations.js';
import { SqliteNotifications } from './notifications.js';
import { SqliteOperators } from './operators.js';
import { SqliteOrders } from './orders.js';
import { SqliteOutbox } from './outbox.js';
import { SqlitePayments } from './payments.js';
import { SqliteRefunds } from './refunds.js';

// The relay's store on one SQLite file (the default, one relay process). The per-table modules
// of this folder are synchronous; this file makes them one async RelayStore that is safe on the
// single better-sqlite3 connection:
//  - a call outside any transaction runs its statement at once when nobody holds the lock (it is
//    synchronous, so nothing can interleave with it), else waits its turn;
//  - transaction(fn) takes the lock, BEGIN IMMEDIATE, awaits fn(tx), COMMIT (ROLLBACK when fn
//    throws) and always gives the lock back; `tx` runs statements directly (the lock is its own);
//  - so no caller ever joins another's transaction or sees its uncommitted rows, and one waits
//    for the other instead.
// A call on the outer store from inside fn would wait for itself forever; it is refused with a
// StoreError that says to use `tx` (found with AsyncLocalStorage, which follows fn's awaits).

/** The per-table modules over one connection. */
class SqliteTables {
  readonly kiosks: SqliteKiosks;
  readonly orders: SqliteOrders;
  readonly payments: SqlitePayments;
  readonly refunds: SqliteRefunds;
  readonly notifications: SqliteNotifications;
  readonly outbox: SqliteOutbox;
  readonly dex: SqliteDexAudits;
  readonly fleet: SqliteFleet;
  readonly apiKeys: SqliteApiKeys;
  readonly presence: SqlitePresence;
  readonly deliveries: SqliteDeliveries;
  readonly alerts: SqliteAlerts;
  readonly operators: SqliteOperators;

  constructor(readonly conn: SqliteConn) {
    const c = conn;
    this.kiosks = new SqliteKiosks(c);
    this.orders = new SqliteOrders(c);
    this.payments = new SqlitePayments(c);
    this.refunds = new SqliteRefunds(c);
    this.notifications = new SqliteNotifications(c);
    this.outbox = new SqliteOutbox(c);
    this.dex = new SqliteDexAudits(c);
    this.fleet = new SqliteFleet(c);
    this.apiKeys = new SqliteApiKeys(c);
    this.presence = new SqlitePresence(c);
    this.deliveries = new SqliteDeliveries(c);
    this.alerts = new SqliteAlerts(c, this.deliveries);
    this.operators = new SqliteOperators(c);
  }
}

/** When a store call may run, and what a transaction on this handle means. */
interface Runner {
  run<R>(step: () => R): Promise<R>;
  /** run, but a step outside any transaction commits without its own fsync (see bookkeeping below) */
  runUnsynced<R>(step: () => R): Promise<R>;
  durable(): Promise<void>;
  transaction<T>(fn: (tx: RelayStore) => Promise<T>, view: RelayStore): Promise<T>;
  writeCount(): number;
}

/** Which transaction (if any) the current async context is inside. */
const insideTransaction = new AsyncLocalStorage<TransactionRunner>();

function attempt<R>(step: () => R): Promise<R> {
  try {
    return Promise.resolve(step());
  } catch (err) {
    return Promise.reject(err as Error);
  }
}

/**
 * How long a commit made without its own fsync may wait for a synced transaction to flush it
 * before durable() fsyncs the log alone. Short beside what waits on it (Mercado Pago waits ~22 s
 * for the notification's 200), long enough for the transaction a notification leads to (a
 * Mercado Pago read, then `paid` + outbox) to come first on a healthy link.
 */
export const DURABLE_WITHIN_MS = 25;

/** The outer store's runner: the lock, the connection's life, BEGIN/COMMIT, durability. */
class LockedRunner implements Runner {
  readonly lock = new AsyncLock();
  closed = false;
  private writesAtClose = 0;
  /** a commit made without its own fsync may not be on disk yet */
  private unsynced = false;
  private durableWaiters: Array<{ resolve: () => void; reject: (err: Error) => void }> = [];
  private flushTimer: NodeJS.Timeout | undefined;

  constructor(
    readonly db: Db,
    private readonly tables: SqliteTables,
    private readonly durableWithinMs = DURABLE_WITHIN_MS,
  ) {}

  /** A StoreError to reject with, when a call cannot run at all. */
  private refusal(): StoreError | undefined {
    const tx = insideTransaction.getStore();
    if (tx?.active && tx.outer === this) {
      return new StoreError(
        'a store call was made on the store itself from inside its own transaction, where it would wait for the transaction to end: make it on the `tx` handle the transaction passed in',
      );
    }
    if (this.closed) return new StoreError('the relay store is closed');
    return undefined;
  }

  run<R>(step: () => R): Promise<R> {
    const refused = this.refusal();
    if (refused) return Promise.reject(refused);
    // A synchronous step cannot interleave with anything: no need to queue when nobody waits.
    if (this.lock.free) return attempt(step);
    return this.lock.acquire().then(() => {
      try {
        if (this.closed) throw new StoreError('the relay store is closed');
        return step();
      } finally {
        this.lock.release();
      }
    });
  }

  runUnsynced<R>(step: () => R): Promise<R> {
    return this.run(() => {
      // synchronous=NORMAL in WAL mode: the commit is in the log (a killed process loses nothing:
      // the OS has it) but not fsync'd; the next synced commit that writes flushes it with its own
      this.db.exec('PRAGMA synchronous = NORMAL');
      try {
        return step();
      } finally {
        this.db.exec('PRAGMA synchronous = FULL');
        this.unsynced = true;
      }
    });
  }

  durable(): Promise<void> {
    if (!this.unsynced || this.closed) return Promise.resolve(); // close() checkpoints, which syncs
    return new Promise((resolve, reject) => {
      this.durableWaiters.push({ resolve, reject });
      this.flushTimer ??= setTimeout(() => this.flushLog(), this.durableWithinMs);
    });
  }

  /**
   * fsync of the WAL file: what a synced commit does after writing its frames, here without a
   * commit (fsync flushes the file, whichever descriptor wrote it). No log file: everything was
   * checkpointed into the database, which a checkpoint syncs.
   */
  private flushLog(): void {
    this.flushTimer = undefined;
    if (!this.unsynced) return;
    let fd: number | undefined;
    try {
      fd = openSync(`${this.db.name}-wal`, 'r');
      fsyncSync(fd);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'ENOENT') {
        const waiters = this.durableWaiters;
        this.durableWaiters = [];
        for (const w of waiters) w.reject(err as Error);
        return;
      }
    } finally {
      if (fd !== undefined) closeSync(fd);
    }
    this.synced();
  }

  /** Everything committed so far is on disk. */
  private synced(): void {
    this.unsynced = false;
    if (this.flushTimer) clearTimeout(this.flushTimer);
    this.flushTimer = undefined;
    const waiters = this.durableWaiters;
    this.durableWaiters = [];
    for (const w of waiters) w.resolve();
  }

  /** Changes when a row is inserted: a commit that inserted wrote to the log, so its fsync flushed it. */
  private lastInsert(): number | bigint {
    return (this.db.prepare('SELECT last_insert_rowid() AS r').get() as { r: number | bigint }).r;
  }

  async transaction<T>(fn: (tx: RelayStore) => Promise<T>): Promise<T> {
    const refused = this.refusal();
    if (refused) throw refused;
    await this.lock.acquire();
    let result: T;
    try {
      if (this.closed) throw new StoreError('the relay store is closed');
      const runner = new TransactionRunner(this);
      const tx = new SqliteStoreView(this.tables, runner);
      // A synced commit flushes the log up to its own frames, earlier unsynced commits included,
      // but only if it wrote frames: an UPDATE to the same values counts as a change and writes
      // none, an INSERT always writes (no TEMP tables here). So only a transaction that inserted
      // a row it kept counts as a flush; any doubt leaves it to durable()'s own fsync.
      const insertedBefore = this.unsynced ? this.lastInsert() : undefined;
      this.db.exec('BEGIN IMMEDIATE');
      try {
        result = await insideTransaction.run(runner, () => fn(tx));
        crashPoint('relay.uncommitted'); // crash test hook: written, not committed
        this.db.exec('COMMIT');
        if (insertedBefore !== undefined && !runner.rolledBack && this.lastInsert() !== insertedBefore) this.synced();
      } catch (err) {
        if (this.db.inTransaction) this.db.exec('ROLLBACK');
        throw err;
      } finally {
        runner.active = false;
      }
    } finally {
      this.lock.release();
    }
    crashPoint('relay.committed'); // crash test hook: on disk
    return result;
  }

  writeCount(): number {
    if (this.closed) return this.writesAtClose;
    return (this.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
  }

  async close(): Promise<void> {
    const tx = insideTransaction.getStore();
    if (tx?.active && tx.outer === this) throw new StoreError('the relay store cannot be closed from inside one of its transactions');
    if (this.closed) return;
    await this.lock.acquire();
    try {
      if (this.closed) return;
      this.writesAtClose = this.writeCount();
      this.closed = true;
      // a waiter answers only once its commit is on disk: flushed now, not by the checkpoint
      // close() makes (which a full disk could fail)
      if (this.durableWaiters.length > 0) this.flushLog();
      if (this.flushTimer) clearTimeout(this.flushTimer);
      this.flushTimer = undefined;
      if (this.db.open) this.db.close();
    } finally {
      this.lock.release();
    }
  }
}

/** A transaction's handle: statements run at once (the transaction holds the lock) while it is open. */
class TransactionRunner implements Runner {
  active = true;
  /** a savepoint was rolled back: rows it inserted count in last_insert_rowid() but were never written */
  rolledBack = false;
  private savepoints = 0;

  constructor(readonly outer: LockedRunner) {}

  writeCount(): number {
    return this.outer.writeCount();
  }

  run<R>(step: () => R): Promise<R> {
    if (!this.active) return Promise.reject(new StoreError('a transaction handle was used after its transaction ended: use the store'));
    return attempt(step);
  }

  /** inside a transaction its commit decides how it reaches the disk */
  runUnsynced<R>(step: () => R): Promise<R> {
    return this.run(step);
  }

  /** the commits before the transaction; its own are not made yet */
  durable(): Promise<void> {
    return this.outer.durable();
  }

  /** Nested: a savepoint, rolled back alone when fn throws. Nested transactions of one handle run one at a time. */
  async transaction<T>(fn: (tx: RelayStore) => Promise<T>, view: RelayStore): Promise<T> {
    if (!this.active) throw new StoreError('a transaction handle was used after its transaction ended: use the store');
    const db = this.outer.db;
    const name = `nested_${++this.savepoints}`;
    db.exec(`SAVEPOINT ${name}`);
    try {
      const result = await fn(view);
      db.exec(`RELEASE ${name}`);
      return result;
    } catch (err) {
      if (this.active && db.inTransaction) {
        db.exec(`ROLLBACK TO ${name}`);
        this.rolledBack = true;
        db.exec(`RELEASE ${name}`);
      }
      throw err;
    } finally {
      this.savepoints--;
    }
  }
}

/** The RelayStore methods over the tables, run by a runner (the outer store's, or a transaction's). */
class SqliteStoreView implements RelayStore {
  readonly kind = 'sqlite' as const;

  constructor(
    protected readonly ops: SqliteTables,
    protected readonly r: Runner,
  ) {}

  transaction<T>(fn: (tx: RelayStore) => Promise<T>): Promise<T> {
    return this.r.transaction(fn, this);
  }

  ping(): Promise<void> {
    return this.r.run(() => {
      this.ops.conn.db.prepare('SELECT 1').get();
    });
  }

  writeCount(): number {
    return this.r.writeCount();
  }

  durable(): Promise<void> {
    return this.r.durable();
  }

  close(): Promise<void> {
    return Promise.reject(new StoreError('a transaction handle cannot close the store: close the store itself'));
  }

  // KioskStore: ./kiosks.ts
  addKiosk(...a: Parameters<RelayStore['addKiosk']>) {
    return this.r.run(() => this.ops.kiosks.addKiosk(...a));
  }
  getKiosk(...a: Parameters<RelayStore['getKiosk']>) {
    return this.r.run(() => this.ops.kiosks.getKiosk(...a));
  }
  getKioskByTokenHash(...a: Parameters<RelayStore['getKioskByTokenHash']>) {
    return this.r.run(() => this.ops.kiosks.getKioskByTokenHash(...a));
  }
  getKioskByPos(...a: Parameters<RelayStore['getKioskByPos']>) {
    return this.r.run(() => this.ops.kiosks.getKioskByPos(...a));
  }
  listKiosks(...a: Parameters<RelayStore['listKiosks']>) {
    return this.r.run(() => this.ops.kiosks.listKiosks(...a));
  }
  setKioskPosQr(...a: Parameters<RelayStore['setKioskPosQr']>) {
    return this.r.run(() => this.ops.kiosks.setKioskPosQr(...a));
  }
  kioskRevision(...a: Parameters<RelayStore['kioskRevision']>) {
    return this.r.run(() => this.ops.kiosks.kioskRevision(...a));
  }
  kiosksChangedAfter(...a: Parameters<RelayStore['kiosksChangedAfter']>) {
    return this.r.run(() => this.ops.kiosks.kiosksChangedAfter(...a));
  }
  setKioskModel(...a: Parameters<RelayStore['setKioskModel']>) {
    return this.r.run(() => this.ops.kiosks.setKioskModel(...a));
  }
  setKioskStore(...a: Parameters<RelayStore['setKioskStore']>) {
    return this.r.run(() => this.ops.kiosks.setKioskStore(...a));
  }
  rotateKioskToken(...a: Parameters<RelayStore['rotateKioskToken']>) {
    return this.r.run(() => this.ops.kiosks.rotateKioskToken(...a));
  }
  // OrderStore: ./orders.ts
  insertOrder(...a: Parameters<RelayStore['insertOrder']>) {
    return this.r.run(() => this.ops.orders.insertOrder(...a));
  }
  getOrder(...a: Parameters<RelayStore['getOrder']>) {
    return this.r.run(() => this.ops.orders.getOrder(...a));
  }
  pendingOrderOf(...a: Parameters<RelayStore['pendingOrderOf']>) {
    return this.r.run(() => this.ops.orders.pendingOrderOf(...a));
  }
  latestOrderOf(...a: Parameters<RelayStore['latestOrderOf']>) {
    return this.r.run(() => this.ops.orders.latestOrderOf(...a));
  }
  ordersInState(...a: Parameters<RelayStore['ordersInState']>) {
    return this.r.run(() => this.ops.orders.ordersInState(...a));
  }
  pendingPastDeadline(...a: Parameters<RelayStore['pendingPastDeadline']>) {
    return this.r.run(() => this.ops.orders.pendingPastDeadline(...a));
  }
  openContingencyCandidates(...a: Parameters<RelayStore['openContingencyCandidates']>) {
    return this.r.run(() => this.ops.orders.openContingencyCandidates(...a));
  }
  closedContingencyCandidates(...a: Parameters<RelayStore['closedContingencyCandidates']>) {
    return this.r.run(() => this.ops.orders.closedContingencyCandidates(...a));
  }
  countOrders(...a: Parameters<RelayStore['countOrders']>) {
    return this.r.run(() => this.ops.orders.countOrders(...a));
  }
  saleHoursOf(...a: Parameters<RelayStore['saleHoursOf']>) {
    return this.r.run(() => this.ops.orders.saleHoursOf(...a));
  }
  recentOrders(...a: Parameters<RelayStore['recentOrders']>) {
    return this.r.run(() => this.ops.orders.recentOrders(...a));
  }
  ordersNeedingReview(...a: Parameters<RelayStore['ordersNeedingReview']>) {
    return this.r.run(() => this.ops.orders.ordersNeedingReview(...a));
  }
  countNeedingReview(...a: Parameters<RelayStore['countNeedingReview']>) {
    return this.r.run(() => this.ops.orders.countNeedingReview(...a));
  }
  flagReview(...a: Parameters<RelayStore['flagReview']>) {
    return this.r.run(() => this.ops.orders.flagReview(...a));
  }
  clearReview(...a: Parameters<RelayStore['clearReview']>) {
    return this.r.run(() => this.ops.orders.clearReview(...a));
  }
  overdueVends(...a: Parameters<RelayStore['overdueVends']>) {
    return this.r.run(() => this.ops.orders.overdueVends(...a));
  }
  markVendOverdue(...a: Parameters<RelayStore['markVendOverdue']>) {
    return this.r.run(() => this.ops.orders.markVendOverdue(...a));
  }
  transitionOrder(...a: Parameters<RelayStore['transitionOrder']>) {
    return this.r.run(() => this.ops.orders.transitionOrder(...a));
  }
  moveOffer(...a: Parameters<RelayStore['moveOffer']>) {
    return this.r.run(() => this.ops.orders.moveOffer(...a));
  }
  noteOfferError(...a: Parameters<RelayStore['noteOfferError']>) {
    return this.r.run(() => this.ops.orders.noteOfferError(...a));
  }
  offerWork(...a: Parameters<RelayStore['offerWork']>) {
    return this.r.run(() => this.ops.orders.offerWork(...a));
  }
  patchOrder(...a: Parameters<RelayStore['patchOrder']>) {
    return this.r.run(() => this.ops.orders.patchOrder(...a));
  }
  noteOrderEvent(...a: Parameters<RelayStore['noteOrderEvent']>) {
    return this.r.run(() => this.ops.orders.noteOrderEvent(...a));
  }
  orderEvents(...a: Parameters<RelayStore['orderEvents']>) {
    return this.r.run(() => this.ops.orders.orderEvents(...a));
  }
  dispensedBySlot(...a: Parameters<RelayStore['dispensedBySlot']>) {
    return this.r.run(() => this.ops.orders.dispensedBySlot(...a));
  }
  // PaymentStore: ./payments.ts
  upsertPayment(...a: Parameters<RelayStore['upsertPayment']>) {
    return this.r.run(() => this.ops.payments.upsertPayment(...a));
  }
  paymentsOf(...a: Parameters<RelayStore['paymentsOf']>) {
    return this.r.run(() => this.ops.payments.paymentsOf(...a));
  }
  approvedPaymentsOf(...a: Parameters<RelayStore['approvedPaymentsOf']>) {
    return this.r.run(() => this.ops.payments.approvedPaymentsOf(...a));
  }
  getPayment(...a: Parameters<RelayStore['getPayment']>) {
    return this.r.run(() => this.ops.payments.getPayment(...a));
  }
  unrefundedApprovedPaymentsOf(...a: Parameters<RelayStore['unrefundedApprovedPaymentsOf']>) {
    return this.r.run(() => this.ops.payments.unrefundedApprovedPaymentsOf(...a));
  }
  // RefundStore: ./refunds.ts
  getRefundByKey(...a: Parameters<RelayStore['getRefundByKey']>) {
    return this.r.run(() => this.ops.refunds.getRefundByKey(...a));
  }
  insertRefundIntent(...a: Parameters<RelayStore['insertRefundIntent']>) {
    return this.r.run(() => this.ops.refunds.insertRefundIntent(...a));
  }
  recordExternalRefund(...a: Parameters<RelayStore['recordExternalRefund']>) {
    return this.r.run(() => this.ops.refunds.recordExternalRefund(...a));
  }
  failRefund(...a: Parameters<RelayStore['failRefund']>) {
    return this.r.run(() => this.ops.refunds.failRefund(...a));
  }
  surplusRefundsDue(...a: Parameters<RelayStore['surplusRefundsDue']>) {
    return this.r.run(() => this.ops.refunds.surplusRefundsDue(...a));
  }
  recordRefundAttempt(...a: Parameters<RelayStore['recordRefundAttempt']>) {
    return this.r.run(() => this.ops.refunds.recordRefundAttempt(...a));
  }
  completeRefund(...a: Parameters<RelayStore['completeRefund']>) {
    return this.r.run(() => this.ops.refunds.completeRefund(...a));
  }
  refundsOf(...a: Parameters<RelayStore['refundsOf']>) {
    return this.r.run(() => this.ops.refunds.refundsOf(...a));
  }
  failingRefunds(...a: Parameters<RelayStore['failingRefunds']>) {
    return this.r.run(() => this.ops.refunds.failingRefunds(...a));
  }
  allRefunds(...a: Parameters<RelayStore['allRefunds']>) {
    return this.r.run(() => this.ops.refunds.allRefunds(...a));
  }
  // schema 10: partial and retried refunds
  insertRefundRequest(...a: Parameters<RelayStore['insertRefundRequest']>) {
    return this.r.run(() => this.ops.refunds.insertRefundRequest(...a));
  }
  partialRefundsDue(...a: Parameters<RelayStore['partialRefundsDue']>) {
    return this.r.run(() => this.ops.refunds.partialRefundsDue(...a));
  }
  // NotificationStore: ./notifications.ts
  /**
   * Not fsync'd on its own: the route answers 200 only after durable(), and meanwhile the worker
   * already reads the order at Mercado Pago; its synced `paid` transaction (or durable()'s own
   * fsync, if that comes first) puts the row on disk. A crash before that is a notification never
   * answered: Mercado Pago sends it again, and nothing was released on it (the release is in the
   * synced transaction, which flushes the row with it).
   */
  insertNotification(...a: Parameters<RelayStore['insertNotification']>) {
    return this.r.runUnsynced(() => this.ops.notifications.insertNotification(...a));
  }
  countNotificationsFrom(...a: Parameters<RelayStore['countNotificationsFrom']>) {
    return this.r.run(() => this.ops.notifications.countNotificationsFrom(...a));
  }
  noteNotificationFailure(...a: Parameters<RelayStore['noteNotificationFailure']>) {
    return this.r.run(() => this.ops.notifications.noteNotificationFailure(...a));
  }
  giveUpNotification(...a: Parameters<RelayStore['giveUpNotification']>) {
    return this.r.run(() => this.ops.notifications.giveUpNotification(...a));
  }
  countGivenUpNotifications(...a: Parameters<RelayStore['countGivenUpNotifications']>) {
    return this.r.run(() => this.ops.notifications.countGivenUpNotifications(...a));
  }
  pruneNotifications(...a: Parameters<RelayStore['pruneNotifications']>) {
    return this.r.run(() => this.ops.notifications.pruneNotifications(...a));
  }
  // Bookkeeping that a power cut may lose without losing or repeating an effect, so it is
  // committed without an fsync of its own (runUnsynced; a SIGKILL loses none of it):
  //  - markNotification: a lost mark leaves the notification unprocessed, and the next start
  //    processes it again (resumePending): a re-read at Mercado Pago and an idempotent apply
  //    (`already_done`), never a second release: the order's state decides that, and its
  //    `paid` transaction is synced;
  //  - deleteOutbox (the kiosk's ack): a lost delete re-sends the frame at the next hello, and the
  //    agent's inbox drops the repeat and acks it again (as the agent's own deferred outbox delete).
  // One fsync fewer per notification and per acked frame; on the path notification -> motor pulse
  // the mark's fsync held the event loop between the `paid` commit and the next frame handled.
  markNotification(...a: Parameters<RelayStore['markNotification']>) {
    return this.r.runUnsynced(() => this.ops.notifications.markNotification(...a));
  }
  unprocessedNotifications(...a: Parameters<RelayStore['unprocessedNotifications']>) {
    return this.r.run(() => this.ops.notifications.unprocessedNotifications(...a));
  }
  listNotifications(...a: Parameters<RelayStore['listNotifications']>) {
    return this.r.run(() => this.ops.notifications.listNotifications(...a));
  }
  // OutboxStore: ./outbox.ts
  enqueueOutbox(...a: Parameters<RelayStore['enqueueOutbox']>) {
    return this.r.run(() => this.ops.outbox.enqueueOutbox(...a));
  }
  outboxOf(...a: Parameters<RelayStore['outboxOf']>) {
    return this.r.run(() => this.ops.outbox.outboxOf(...a));
  }
  outboxDepth(...a: Parameters<RelayStore['outboxDepth']>) {
    return this.r.run(() => this.ops.outbox.outboxDepth(...a));
  }
  /** not fsync'd on its own: see markNotification */
  deleteOutbox(...a: Parameters<RelayStore['deleteOutbox']>) {
    return this.r.runUnsynced(() => this.ops.outbox.deleteOutbox(...a));
  }
  inInbox(...a: Parameters<RelayStore['inInbox']>) {
    return this.r.run(() => this.ops.outbox.inInbox(...a));
  }
  recordInbox(...a: Parameters<RelayStore['recordInbox']>) {
    return this.r.run(() => this.ops.outbox.recordInbox(...a));
  }
  pruneInbox(...a: Parameters<RelayStore['pruneInbox']>) {
    return this.r.run(() => this.ops.outbox.pruneInbox(...a));
  }
  // presence: ./fleet.ts
  claimPresence(...a: Parameters<RelayStore['claimPresence']>) {
    return this.r.run(() => this.ops.presence.claimPresence(...a));
  }
  touchPresence(...a: Parameters<RelayStore['touchPresence']>) {
    return this.r.run(() => this.ops.presence.touchPresence(...a));
  }
  releasePresence(...a: Parameters<RelayStore['releasePresence']>) {
    return this.r.run(() => this.ops.presence.releasePresence(...a));
  }
  presenceOf(...a: Parameters<RelayStore['presenceOf']>) {
    return this.r.run(() => this.ops.presence.presenceOf(...a));
  }
  presentSince(...a: Parameters<RelayStore['presentSince']>) {
    return this.r.run(() => this.ops.presence.presentSince(...a));
  }
  kiosksWithOutbox(...a: Parameters<RelayStore['kiosksWithOutbox']>) {
    return this.r.run(() => this.ops.presence.kiosksWithOutbox(...a));
  }
  // alerts: ./fleet.ts
  openAlerts(...a: Parameters<RelayStore['openAlerts']>) {
    return this.r.run(() => this.ops.alerts.openAlerts(...a));
  }
  fireAlert(...a: Parameters<RelayStore['fireAlert']>) {
    return this.r.run(() => this.ops.alerts.fireAlert(...a));
  }
  clearAlert(...a: Parameters<RelayStore['clearAlert']>) {
    return this.r.run(() => this.ops.alerts.clearAlert(...a));
  }
  alerts(...a: Parameters<RelayStore['alerts']>) {
    return this.r.run(() => this.ops.alerts.alerts(...a));
  }
  // deliveries: ./fleet.ts
  insertDeliveries(...a: Parameters<RelayStore['insertDeliveries']>) {
    return this.r.run(() => this.ops.deliveries.insertDeliveries(...a));
  }
  dueDeliveries(...a: Parameters<RelayStore['dueDeliveries']>) {
    return this.r.run(() => this.ops.deliveries.dueDeliveries(...a));
  }
  nextDeliveryAt(...a: Parameters<RelayStore['nextDeliveryAt']>) {
    return this.r.run(() => this.ops.deliveries.nextDeliveryAt(...a));
  }
  moveDelivery(...a: Parameters<RelayStore['moveDelivery']>) {
    return this.r.run(() => this.ops.deliveries.moveDelivery(...a));
  }
  deliveries(...a: Parameters<RelayStore['deliveries']>) {
    return this.r.run(() => this.ops.deliveries.deliveries(...a));
  }
  // DexAuditStore: ./dex-audits.ts
  insertDexAudit(...a: Parameters<RelayStore['insertDexAudit']>) {
    return this.r.run(() => this.ops.dex.insertDexAudit(...a));
  }
  getDexAudit(...a: Parameters<RelayStore['getDexAudit']>) {
    return this.r.run(() => this.ops.dex.getDexAudit(...a));
  }
  dexAudits(...a: Parameters<RelayStore['dexAudits']>) {
    return this.r.run(() => this.ops.dex.dexAudits(...a));
  }
  previousDexAudit(...a: Parameters<RelayStore['previousDexAudit']>) {
    return this.r.run(() => this.ops.dex.previousDexAudit(...a));
  }
  // FleetStore: ./fleet.ts
  saveStatus(...a: Parameters<RelayStore['saveStatus']>) {
    return this.r.run(() => this.ops.fleet.saveStatus(...a));
  }
  statuses(...a: Parameters<RelayStore['statuses']>) {
    return this.r.run(() => this.ops.fleet.statuses(...a));
  }
  setPresence(...a: Parameters<RelayStore['setPresence']>) {
    return this.r.run(() => this.ops.fleet.setPresence(...a));
  }
  presences(...a: Parameters<RelayStore['presences']>) {
    return this.r.run(() => this.ops.fleet.presences(...a));
  }
  recordRefill(...a: Parameters<RelayStore['recordRefill']>) {
    return this.r.run(() => this.ops.fleet.recordRefill(...a));
  }
  refills(...a: Parameters<RelayStore['refills']>) {
    return this.r.run(() => this.ops.fleet.refills(...a));
  }
  recordRefusal(...a: Parameters<RelayStore['recordRefusal']>) {
    return this.r.run(() => this.ops.fleet.recordRefusal(...a));
  }
  refusals(...a: Parameters<RelayStore['refusals']>) {
    return this.r.run(() => this.ops.fleet.refusals(...a));
  }
  insertCommand(...a: Parameters<RelayStore['insertCommand']>) {
    return this.r.run(() => this.ops.fleet.insertCommand(...a));
  }
  getCommand(...a: Parameters<RelayStore['getCommand']>) {
    return this.r.run(() => this.ops.fleet.getCommand(...a));
  }
  transitionCommand(...a: Parameters<RelayStore['transitionCommand']>) {
    return this.r.run(() => this.ops.fleet.transitionCommand(...a));
  }
  noteCommand(...a: Parameters<RelayStore['noteCommand']>) {
    return this.r.run(() => this.ops.fleet.noteCommand(...a));
  }
  commandsOf(...a: Parameters<RelayStore['commandsOf']>) {
    return this.r.run(() => this.ops.fleet.commandsOf(...a));
  }
  commandsIn(...a: Parameters<RelayStore['commandsIn']>) {
    return this.r.run(() => this.ops.fleet.commandsIn(...a));
  }
  setKioskPrices(...a: Parameters<RelayStore['setKioskPrices']>) {
    return this.r.run(() => this.ops.fleet.setKioskPrices(...a));
  }
  kioskPrices(...a: Parameters<RelayStore['kioskPrices']>) {
    return this.r.run(() => this.ops.fleet.kioskPrices(...a));
  }
  // ApiKeyStore, StockStore: ./api-keys.ts
  insertApiKey(...a: Parameters<RelayStore['insertApiKey']>) {
    return this.r.run(() => this.ops.apiKeys.insertApiKey(...a));
  }
  apiKeyByHash(...a: Parameters<RelayStore['apiKeyByHash']>) {
    return this.r.run(() => this.ops.apiKeys.apiKeyByHash(...a));
  }
  listApiKeys(...a: Parameters<RelayStore['listApiKeys']>) {
    return this.r.run(() => this.ops.apiKeys.listApiKeys(...a));
  }
  revokeApiKey(...a: Parameters<RelayStore['revokeApiKey']>) {
    return this.r.run(() => this.ops.apiKeys.revokeApiKey(...a));
  }
  parLevels(...a: Parameters<RelayStore['parLevels']>) {
    return this.r.run(() => this.ops.apiKeys.parLevels(...a));
  }
  setParLevel(...a: Parameters<RelayStore['setParLevel']>) {
    return this.r.run(() => this.ops.apiKeys.setParLevel(...a));
  }
  salesByDay(...a: Parameters<RelayStore['salesByDay']>) {
    return this.r.run(() => this.ops.apiKeys.salesByDay(...a));
  }
  // OperatorStore: ./operators.ts
  addOperator(...a: Parameters<RelayStore['addOperator']>) {
    return this.r.run(() => this.ops.operators.addOperator(...a));
  }
  getOperatorByEmail(...a: Parameters<RelayStore['getOperatorByEmail']>) {
    return this.r.run(() => this.ops.operators.getOperatorByEmail(...a));
  }
  getOperator(...a: Parameters<RelayStore['getOperator']>) {
    return this.r.run(() => this.ops.operators.getOperator(...a));
  }
  listOperators(...a: Parameters<RelayStore['listOperators']>) {
    return this.r.run(() => this.ops.operators.listOperators(...a));
  }
  setOperatorDisabled(...a: Parameters<RelayStore['setOperatorDisabled']>) {
    return this.r.run(() => this.ops.operators.setOperatorDisabled(...a));
  }
  insertOperatorSession(...a: Parameters<RelayStore['insertOperatorSession']>) {
    return this.r.run(() => this.ops.operators.insertOperatorSession(...a));
  }
  getOperatorSession(...a: Parameters<RelayStore['getOperatorSession']>) {
    return this.r.run(() => this.ops.operators.getOperatorSession(...a));
  }
  deleteOperatorSession(...a: Parameters<RelayStore['deleteOperatorSession']>) {
    return this.r.run(() => this.ops.operators.deleteOperatorSession(...a));
  }
  pruneOperatorSessions(...a: Parameters<RelayStore['pruneOperatorSessions']>) {
    return this.r.run(() => this.ops.operators.pruneOperatorSessions(...a));
  }
  insertOperatorAudit(...a: Parameters<RelayStore['insertOperatorAudit']>) {
    return this.r.run(() => this.ops.operators.insertOperatorAudit(...a));
  }
  operatorAuditOf(...a: Parameters<RelayStore['operatorAuditOf']>) {
    return this.r.run(() => this.ops.operators.operatorAuditOf(...a));
  }
  recentOperatorAudit(...a: Parameters<RelayStore['recentOperatorAudit']>) {
    return this.r.run(() => this.ops.operators.recentOperatorAudit(...a));
  }
}

/** The store itself: the view on the lock, and the connection's life. */
export class SqliteRelayStore extends SqliteStoreView {
  private readonly locked: LockedRunner;

  constructor(path: string, opts: SqliteStoreOptions = {}) {
    const db = openDatabase(path, { migrations: MIGRATIONS, what: 'relay database', key: 'store.path', mode: 0o600 });
    const tables = new SqliteTables(new SqliteConn(db));
    const locked = new LockedRunner(db, tables, opts.durableWithinMs);
    super(tables, locked);
    this.locked = locked;
  }

  override close(): Promise<void> {
    return this.locked.close();
  }
}

export interface SqliteStoreOptions {
  /** durable(): how long an unsynced commit waits for a synced transaction (default DURABLE_WITHIN_MS) */
  durableWithinMs?: number;
}

/** Opens (creating and migrating as needed) the relay's SQLite file. */
export function openSqliteStore(path: string, opts: SqliteStoreOptions = {}): RelayStore {
  return new SqliteRelayStore(path, opts);
}
