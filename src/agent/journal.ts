import type { Db } from '../runtime/sqlite.js';
import { openDatabase } from '../runtime/sqlite.js';
import { JOURNAL_MIGRATIONS } from './journal-schema.js';
import { vendSession, OPEN_VEND_STATES, type VendEvent, type VendState } from '../core/vend-session.js';
import { kioskSideCommand, type KioskCommandEvent, type KioskCommandState } from '../core/kiosk-command.js';
import type { AgentMessage, Welcome } from '../protocol/messages.js';
import { crashPoint } from '../runtime/crash-hook.js';

// The agent's durable memory. Every vend step is ONE transaction: the order's new state, an
// append-only step row and the outbound frame that tells the relay about it. So after any crash
// the journal and the outbox agree, and the outbox is re-sent until the relay acks each frame.
// openDatabase runs synchronous=FULL: when a transaction returns, it is on disk. The session
// relies on that to commit `dispensing` before the motor moves.
//
// A few commits need not be flushed on their own (`flush: 'deferred'`): with SQLite's WAL they are
// atomic and survive the process being killed (the WAL is in the OS's cache), and the next synced
// commit flushes them with it. Only two kinds use that: an ack's outbox delete (losing it to a
// power cut re-sends a frame the relay drops as a repeat) and `paid`, flushed by the synced
// `dispensing` commit made right after it, before anything is acked (journal.flush() covers the
// paths where no synced commit follows). One fsync fewer on the way to the motor.


export interface OrderRow {
  id: string;
  slot: number;
  sku: string;
  amount: number;
  currency: string;
  state: VendState;
  deadline: number;
  createdAt: number;
  updatedAt: number;
  paymentId: string | null;
  result: string | null;
  pulses: number | null;
  relayAmount: number | null;
  qr: string | null;
  /** the customer's receipt page the relay sent with order.paid (journal schema 4); null: none */
  receiptUrl: string | null;
  /** a technician's verdict (qrkiosk resolve), who gave it and when; null until then */
  resolution: string | null;
  resolvedBy: string | null;
  resolvedAt: number | null;
}

export interface StepRow {
  seq: number;
  orderId: string;
  state: string;
  at: number;
  detail: string | null;
}

export interface OutboxRow {
  seq: number;
  id: string;
  type: string;
  payload: string;
  createdAt: number;
}

export interface JournalEntry extends OrderRow {
  steps: StepRow[];
}

export type OrderPatch = Partial<Pick<OrderRow, 'paymentId' | 'result' | 'pulses' | 'relayAmount' | 'qr' | 'receiptUrl'>>;

export interface TransitionOptions {
  detail?: string;
  patch?: OrderPatch;
  /** reliable frames to send about this step; committed with it */
  outbox?: AgentMessage[];
  /** change stock in the same transaction (a dispensed product leaves the slot) */
  stockDelta?: { slot: number; delta: number };
}

export interface TransitionResult {
  from: VendState;
  to: VendState;
  order: OrderRow;
}

export class UnknownOrder extends Error {
  override name = 'UnknownOrder';
}

export class AlreadyResolved extends Error {
  override name = 'AlreadyResolved';
}

export interface NewOrder {
  id: string;
  slot: number;
  sku: string;
  amount: number;
  currency: string;
  deadline: number;
}

interface RawOrder {
  id: string;
  slot: number;
  sku: string;
  amount: number;
  currency: string;
  state: string;
  deadline: number;
  created_at: number;
  updated_at: number;
  payment_id: string | null;
  result: string | null;
  pulses: number | null;
  relay_amount: number | null;
  qr: string | null;
  receipt_url?: string | null;
  resolution?: string | null;
  resolved_by?: string | null;
  resolved_at?: number | null;
}

function toOrder(r: RawOrder): OrderRow {
  return {
    id: r.id,
    slot: r.slot,
    sku: r.sku,
    amount: r.amount,
    currency: r.currency,
    state: r.state as VendState,
    deadline: r.deadline,
    createdAt: r.created_at,
    updatedAt: r.updated_at,
    paymentId: r.payment_id,
    result: r.result,
    pulses: r.pulses,
    relayAmount: r.relay_amount,
    qr: r.qr,
    receiptUrl: r.receipt_url ?? null,
    resolution: r.resolution ?? null,
    resolvedBy: r.resolved_by ?? null,
    resolvedAt: r.resolved_at ?? null,
  };
}

/** A relay command this kiosk verified (journal table `commands`). */
export interface CommandRow {
  id: string;
  kind: string;
  issuedBy: string;
  issuedAt: number;
  expiresAt: number;
  receivedAt: number;
  state: KioskCommandState;
  finishedAt: number | null;
  reason: string | null;
  message: string | null;
  result: Record<string, string | number | boolean | null> | null;
  payload: string;
}

interface RawCommand {
  id: string;
  kind: string;
  issued_by: string;
  issued_at: number;
  expires_at: number;
  received_at: number;
  state: string;
  finished_at: number | null;
  reason: string | null;
  message: string | null;
  result: string | null;
  payload: string;
}

function toCommand(r: RawCommand): CommandRow {
  return {
    id: r.id,
    kind: r.kind,
    issuedBy: r.issued_by,
    issuedAt: r.issued_at,
    expiresAt: r.expires_at,
    receivedAt: r.received_at,
    state: r.state as KioskCommandState,
    finishedAt: r.finished_at,
    reason: r.reason,
    message: r.message,
    result: r.result ? (JSON.parse(r.result) as CommandRow['result']) : null,
    payload: r.payload,
  };
}

export interface NewCommand {
  id: string;
  kind: string;
  issuedBy: string;
  issuedAt: number;
  expiresAt: number;
  payload: string;
  /** running (being applied) or refused at once (expired, invalid...) */
  state: 'running' | 'refused';
  /** when it was received (and, refused at once, refused): the time the relay is told */
  at: number;
  reason?: string;
  message?: string;
}

export interface CommandFinish {
  /** when it was applied or refused: the time the relay is told */
  at: number;
  message: string;
  reason?: string;
  result?: CommandRow['result'];
  /** frames about it (the command.result), committed with it */
  outbox?: AgentMessage[];
}

/** How the outermost transaction's commit reaches the disk (see the top of this file). */
export interface TxOptions {
  /** 'now' (default): flushed before tx returns; 'deferred': flushed by the next synced commit */
  flush?: 'now' | 'deferred';
}

export class Journal {
  readonly db: Db;
  private depth = 0;
  /** a deferred commit has not been flushed by a synced one yet */
  private unflushed = false;
  /** states entered inside the current (outermost) transaction; crash hook runs after commit */
  private entered: string[] = [];
  private callbacks: Array<() => void> = [];

  constructor(
    readonly path: string,
    private readonly now: () => number = Date.now,
  ) {
    this.db = openDatabase(path, { migrations: JOURNAL_MIGRATIONS, what: 'journal', key: 'journal.path' });
  }

  /**
   * Runs fn in one transaction (nested calls become part of the outer one). The crash test hook
   * fires only once the OUTERMOST transaction has committed, so "crash after X" always means
   * "X is on disk".
   */
  tx<T>(fn: () => T, opts: TxOptions = {}): T {
    // only the outermost transaction commits; a nested one joins it whatever it asks
    const outermost = this.depth === 0;
    const deferred = outermost && opts.flush === 'deferred';
    if (deferred) this.db.pragma('synchronous = NORMAL');
    // a commit that changed no row writes nothing to the WAL, so it flushes nothing either
    const changesBefore = outermost && this.unflushed ? this.totalChanges() : 0;
    this.depth++;
    const mark = this.entered.length;
    const cbMark = this.callbacks.length;
    let result: T;
    try {
      result = this.db.transaction(() => {
        const r = fn();
        // crash test hook: the writes are made, the commit is not
        if (this.depth === 1) for (const s of this.entered) crashPoint(`${s}.uncommitted`);
        return r;
      })();
    } catch (err) {
      // rolled back (or this savepoint was): those states were never committed
      this.entered.length = mark;
      this.callbacks.length = cbMark;
      throw err;
    } finally {
      this.depth--;
      if (deferred) this.db.pragma('synchronous = FULL');
    }
    // a synced commit (WAL mode: one fsync of the log) makes every commit before it durable too
    if (deferred) this.unflushed = true;
    else if (outermost && this.unflushed && this.totalChanges() !== changesBefore) this.unflushed = false;
    if (this.depth === 0) {
      const states = this.entered;
      const callbacks = this.callbacks;
      this.entered = [];
      this.callbacks = [];
      for (const s of states) crashPoint(s);
      for (const cb of callbacks) cb();
    }
    return result;
  }

  private totalChanges(): number {
    return (this.db.prepare('SELECT total_changes() AS n').get() as { n: number }).n;
  }

  /**
   * Makes every commit so far durable: a no-op after a synced commit; after a deferred one that
   * no synced commit followed, a synced write of the time (kv `flushed_at`). Call it before
   * telling anyone about a deferred commit (the relay's ack).
   */
  flush(): void {
    if (!this.unflushed || this.depth > 0) return;
    this.setSetting('flushed_at', String(this.now()));
  }

  /**
   * Runs fn once the current transaction has committed (now, when none is open). Whatever tells
   * the outside world about a step (sending frames, events) goes here, so nothing is announced
   * that a crash could still un-happen.
   */
  afterCommit(fn: () => void): void {
    if (this.depth === 0) fn();
    else this.callbacks.push(fn);
  }

  get inTransaction(): boolean {
    return this.depth > 0;
  }

  createOrder(o: NewOrder, outbox: AgentMessage[] = []): OrderRow {
    return this.tx(() => {
      const at = this.now();
      this.db
        .prepare(
          `INSERT INTO orders (id, slot, sku, amount, currency, state, deadline, created_at, updated_at)
           VALUES (?, ?, ?, ?, ?, 'awaiting_payment', ?, ?, ?)`,
        )
        .run(o.id, o.slot, o.sku, o.amount, o.currency, o.deadline, at, at);
      this.addStep(o.id, 'awaiting_payment', at, `slot ${o.slot} ${o.sku} ${o.amount} ${o.currency}`);
      for (const f of outbox) this.enqueue(f);
      this.entered.push('awaiting_payment');
      return this.getOrder(o.id)!;
    });
  }

  /**
   * One vend step: checks the move against the vend state machine (IllegalTransition aborts the
   * whole transaction), updates the order, appends the step, queues the frames.
   */
  transition(orderId: string, event: VendEvent, opts: TransitionOptions = {}): TransitionResult {
    return this.tx(() => {
      const current = this.getOrder(orderId);
      if (!current) throw new UnknownOrder(`order ${orderId} is not in the journal`);
      const to = vendSession.next(current.state, event);
      const at = this.now();
      this.db.prepare(`UPDATE orders SET state = ?, updated_at = ? WHERE id = ?`).run(to, at, orderId);
      this.applyPatch(orderId, opts.patch);
      this.addStep(orderId, to, at, opts.detail ?? event);
      for (const f of opts.outbox ?? []) this.enqueue(f);
      if (opts.stockDelta) {
        this.db
          .prepare(`UPDATE stock SET count = MAX(0, count + ?) WHERE slot = ?`)
          .run(opts.stockDelta.delta, opts.stockDelta.slot);
      }
      this.entered.push(to);
      return { from: current.state, to, order: this.getOrder(orderId)! };
    });
  }

  /** A step that does not change state (late payment on a cancelled order, refund notice). */
  note(orderId: string, detail: string, opts: { patch?: OrderPatch; outbox?: AgentMessage[] } = {}): OrderRow {
    return this.tx(() => {
      const current = this.getOrder(orderId);
      if (!current) throw new UnknownOrder(`order ${orderId} is not in the journal`);
      const at = this.now();
      this.db.prepare(`UPDATE orders SET updated_at = ? WHERE id = ?`).run(at, orderId);
      this.applyPatch(orderId, opts.patch);
      this.addStep(orderId, current.state, at, detail);
      for (const f of opts.outbox ?? []) this.enqueue(f);
      return this.getOrder(orderId)!;
    });
  }

  private applyPatch(orderId: string, patch: OrderPatch | undefined): void {
    if (!patch) return;
    const cols: Record<keyof OrderPatch, string> = {
      paymentId: 'payment_id',
      result: 'result',
      pulses: 'pulses',
      relayAmount: 'relay_amount',
      qr: 'qr',
      receiptUrl: 'receipt_url',
    };
    for (const [k, v] of Object.entries(patch) as [keyof OrderPatch, unknown][]) {
      if (v === undefined) continue;
      this.db.prepare(`UPDATE orders SET ${cols[k]} = ? WHERE id = ?`).run(v, orderId);
    }
  }

  private addStep(orderId: string, state: string, at: number, detail: string | null): void {
    this.db.prepare(`INSERT INTO steps (order_id, state, at, detail) VALUES (?, ?, ?, ?)`).run(orderId, state, at, detail);
  }

  // ---- outbox / inbox ---------------------------------------------------------------------------

  enqueue(f: AgentMessage): void {
    this.tx(() => {
      this.db
        .prepare(`INSERT INTO outbox (id, type, payload, created_at) VALUES (?, ?, ?, ?)`)
        .run(f.id, f.type, JSON.stringify(f), this.now());
    });
  }

  /** In send order. */
  outbox(): OutboxRow[] {
    return (
      this.db.prepare(`SELECT seq, id, type, payload, created_at FROM outbox ORDER BY seq`).all() as Array<{
        seq: number;
        id: string;
        type: string;
        payload: string;
        created_at: number;
      }>
    ).map((r) => ({ seq: r.seq, id: r.id, type: r.type, payload: r.payload, createdAt: r.created_at }));
  }

  /** The relay has the frame: stop re-sending it. */
  ack(id: string): boolean {
    // deferred: a lost delete re-sends a frame the relay already has, and it drops the repeat
    return this.tx(() => this.db.prepare(`DELETE FROM outbox WHERE id = ?`).run(id).changes > 0, { flush: 'deferred' });
  }

  inboxHas(id: string): boolean {
    return this.db.prepare(`SELECT 1 FROM inbox WHERE id = ?`).get(id) !== undefined;
  }

  markInbox(id: string, type: string): void {
    this.tx(() => {
      this.db.prepare(`INSERT INTO inbox (id, type, received_at) VALUES (?, ?, ?)`).run(id, type, this.now());
    });
  }

  // ---- orders -----------------------------------------------------------------------------------

  getOrder(id: string): OrderRow | undefined {
    const r = this.db.prepare(`SELECT * FROM orders WHERE id = ?`).get(id) as RawOrder | undefined;
    return r ? toOrder(r) : undefined;
  }

  /** Orders a restart must look at: awaiting_payment, paid, dispensing. Oldest first. */
  openOrders(): OrderRow[] {
    const marks = OPEN_VEND_STATES.map(() => '?').join(', ');
    return (
      this.db.prepare(`SELECT * FROM orders WHERE state IN (${marks}) ORDER BY created_at, rowid`).all(...OPEN_VEND_STATES) as RawOrder[]
    ).map(toOrder);
  }

  steps(orderId: string): StepRow[] {
    return (
      this.db.prepare(`SELECT seq, order_id, state, at, detail FROM steps WHERE order_id = ? ORDER BY seq`).all(orderId) as Array<{
        seq: number;
        order_id: string;
        state: string;
        at: number;
        detail: string | null;
      }>
    ).map((s) => ({ seq: s.seq, orderId: s.order_id, state: s.state, at: s.at, detail: s.detail }));
  }

  /** The latest orders, newest first, each with its steps. */
  recent(limit = 20): JournalEntry[] {
    const rows = (
      this.db.prepare(`SELECT * FROM orders ORDER BY created_at DESC, rowid DESC LIMIT ?`).all(Math.max(1, limit)) as RawOrder[]
    ).map(toOrder);
    return rows.map((o) => ({ ...o, steps: this.steps(o.id) }));
  }

  // ---- stock ------------------------------------------------------------------------------------

  /**
   * Applies the configured stock. A slot whose configured count changed since the last start
   * (technician refilled and edited the file) is reset to it; otherwise the journal's count,
   * which already has the sales since, wins. Slots gone from the config are dropped.
   */
  syncStock(slots: ReadonlyArray<{ slot: number; stock: number }>): void {
    this.tx(() => {
      const existing = new Map(
        (this.db.prepare(`SELECT slot, count, configured FROM stock`).all() as Array<{ slot: number; count: number; configured: number }>).map(
          (r) => [r.slot, r],
        ),
      );
      for (const s of slots) {
        const row = existing.get(s.slot);
        if (!row) {
          this.db.prepare(`INSERT INTO stock (slot, count, configured) VALUES (?, ?, ?)`).run(s.slot, s.stock, s.stock);
        } else if (row.configured !== s.stock) {
          this.db.prepare(`UPDATE stock SET count = ?, configured = ? WHERE slot = ?`).run(s.stock, s.stock, s.slot);
        }
        existing.delete(s.slot);
      }
      for (const slot of existing.keys()) this.db.prepare(`DELETE FROM stock WHERE slot = ?`).run(slot);
    });
  }

  /** A technician counted the slot: its count becomes `count` (the configured full count stays). */
  setStock(slot: number, count: number): void {
    this.tx(() => {
      const r = this.db.prepare(`UPDATE stock SET count = ? WHERE slot = ?`).run(count, slot);
      if (r.changes === 0) throw new Error(`slot ${slot} is not in the config: the slots are those of agent.yaml`);
    });
  }

  /** The configured full count of each slot (what a refill loads). */
  configuredStock(): Map<number, number> {
    return new Map(
      (this.db.prepare(`SELECT slot, configured FROM stock ORDER BY slot`).all() as Array<{ slot: number; configured: number }>).map((r) => [r.slot, r.configured]),
    );
  }

  /**
   * A technician's verdict on a vend nobody saw end: recorded on the order (who, when, what) with
   * a step, and the frame for the relay queued in the same transaction. A second verdict is refused.
   */
  resolve(orderId: string, v: { resolution: 'dispensed' | 'refund'; by: string; at: number }, frame: AgentMessage): OrderRow {
    return this.tx(() => {
      const o = this.getOrder(orderId);
      if (!o) throw new UnknownOrder(`order ${orderId} is not in the journal`);
      if (o.resolution !== null) {
        throw new AlreadyResolved(`order ${orderId} was already resolved as ${o.resolution} by ${o.resolvedBy} at ${new Date(o.resolvedAt ?? 0).toISOString()}`);
      }
      this.db.prepare(`UPDATE orders SET resolution = ?, resolved_by = ?, resolved_at = ?, updated_at = ? WHERE id = ?`).run(v.resolution, v.by, v.at, v.at, orderId);
      this.addStep(orderId, o.state, v.at, `resolved by ${v.by}: ${v.resolution === 'dispensed' ? 'product was dispensed' : 'not dispensed, refund'} (checked by hand)`);
      if (v.resolution === 'dispensed') this.db.prepare(`UPDATE stock SET count = MAX(0, count - 1) WHERE slot = ?`).run(o.slot);
      this.enqueue(frame);
      return this.getOrder(orderId)!;
    });
  }

  /**
   * `qrkiosk stock refill [slot]`: the slot (or every slot) back to its configured full count, and
   * the stock.refill frame telling the relay, in one transaction: the refill is on disk and queued
   * for the relay together, or not at all.
   */
  refillStock(slot: number | undefined, makeFrame: (changes: Array<{ slot: number; before: number; after: number }>) => AgentMessage): Array<{ slot: number; before: number; after: number }> {
    return this.tx(() => {
      const rows = this.db.prepare(`SELECT slot, count, configured FROM stock ORDER BY slot`).all() as Array<{ slot: number; count: number; configured: number }>;
      const chosen = rows.filter((r) => slot === undefined || r.slot === slot);
      if (chosen.length === 0) throw new Error(`slot ${slot} is not in the config: the slots are those of agent.yaml`);
      const changes = chosen.map((r) => ({ slot: r.slot, before: r.count, after: r.configured }));
      for (const c of changes) this.db.prepare(`UPDATE stock SET count = ? WHERE slot = ?`).run(c.after, c.slot);
      this.enqueue(makeFrame(changes));
      return changes;
    });
  }

  // ---- the relay's signed commands (replay memory) ----------------------------------------------

  getCommand(id: string): CommandRow | undefined {
    const r = this.db.prepare(`SELECT * FROM commands WHERE id = ?`).get(id) as RawCommand | undefined;
    return r ? toCommand(r) : undefined;
  }

  /** Records a verified command as seen (running or refused at once), with its frames. A second insert of the same id fails. */
  insertCommand(c: NewCommand, outbox: AgentMessage[] = []): CommandRow {
    return this.tx(() => {
      const at = c.at;
      this.db
        .prepare(
          `INSERT INTO commands (id, kind, issued_by, issued_at, expires_at, received_at, state, finished_at, reason, message, payload)
           VALUES (?, ?, ?, ?, ?, ?, ?, ?, ?, ?, ?)`,
        )
        .run(c.id, c.kind, c.issuedBy, c.issuedAt, c.expiresAt, at, c.state, c.state === 'refused' ? at : null, c.reason ?? null, c.message ?? null, c.payload);
      for (const f of outbox) this.enqueue(f);
      return this.getCommand(c.id)!;
    });
  }

  /** A running command ends: checked against core/kiosk-command.ts, its frames queued in the same transaction. */
  finishCommand(id: string, event: KioskCommandEvent, f: CommandFinish): CommandRow {
    return this.tx(() => {
      const cur = this.getCommand(id);
      if (!cur) throw new Error(`command ${id} is not in the journal`);
      const to = kioskSideCommand.next(cur.state, event);
      this.db
        .prepare(`UPDATE commands SET state = ?, finished_at = ?, reason = ?, message = ?, result = ? WHERE id = ?`)
        .run(to, f.at, f.reason ?? null, f.message, f.result ? JSON.stringify(f.result) : null, id);
      for (const fr of f.outbox ?? []) this.enqueue(fr);
      return this.getCommand(id)!;
    });
  }

  /** Commands a previous run left running (a test vend the agent died in). */
  runningCommands(): CommandRow[] {
    return (this.db.prepare(`SELECT * FROM commands WHERE state = 'running' ORDER BY received_at`).all() as RawCommand[]).map(toCommand);
  }

  recentCommands(limit = 20): CommandRow[] {
    return (this.db.prepare(`SELECT * FROM commands ORDER BY received_at DESC, rowid DESC LIMIT ?`).all(Math.max(1, limit)) as RawCommand[]).map(toCommand);
  }

  // ---- small settings that survive a restart (service mode) -------------------------------------

  getSetting(key: string): string | undefined {
    return (this.db.prepare(`SELECT value FROM kv WHERE key = ?`).get(key) as { value: string } | undefined)?.value;
  }

  setSetting(key: string, value: string | undefined): void {
    this.tx(() => {
      if (value === undefined) this.db.prepare(`DELETE FROM kv WHERE key = ?`).run(key);
      else {
        this.db
          .prepare(`INSERT INTO kv (key, value, updated_at) VALUES (?, ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`)
          .run(key, value, this.now());
      }
    });
  }

  stock(): Map<number, number> {
    return new Map(
      (this.db.prepare(`SELECT slot, count FROM stock ORDER BY slot`).all() as Array<{ slot: number; count: number }>).map((r) => [r.slot, r.count]),
    );
  }

  // ---- cached welcome (prices for the idle screen before the relay answers) ---------------------

  saveWelcome(w: Welcome, receivedAt: number): void {
    this.tx(() => {
      this.db
        .prepare(`INSERT INTO kv (key, value, updated_at) VALUES ('welcome', ?, ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value, updated_at = excluded.updated_at`)
        .run(JSON.stringify(w), receivedAt);
    });
  }

  /**
   * A price or catalog command changed the kiosk's prices: the cached welcome carries them, so a
   * restart before the relay's next welcome still sells at them. Its receive time is kept.
   */
  replaceWelcomeCatalog(catalog: Welcome['catalog']): boolean {
    return this.tx(() => {
      const cached = this.loadWelcome();
      if (!cached) return false;
      this.db.prepare(`UPDATE kv SET value = ? WHERE key = 'welcome'`).run(JSON.stringify({ ...cached.welcome, catalog }));
      return true;
    });
  }

  loadWelcome(): { welcome: Welcome; receivedAt: number } | undefined {
    const r = this.db.prepare(`SELECT value, updated_at FROM kv WHERE key = 'welcome'`).get() as { value: string; updated_at: number } | undefined;
    if (!r) return undefined;
    try {
      return { welcome: JSON.parse(r.value) as Welcome, receivedAt: r.updated_at };
    } catch {
      return undefined;
    }
  }

  close(): void {
    if (this.db.open) this.db.close();
  }
}
