import { createHash } from 'node:crypto';
import { roleAllows, type Action, type Role } from '../../core/console-roles.js';
import type { Logger } from '../../runtime/log.js';
import type { KioskCommands } from '../kiosk-commands.js';
import { refundableOf, refundCounts, refundNeedsPerson } from '../../core/refund.js';
import { partialRefundKey, retryRefundKey } from '../refunds.js';
import type { OrderRecord, PaymentRecord, RefundRecord, RelayStore } from '../store/index.js';

// The operator actions of issue 11, ONE implementation for every way in: the web console
// (console/web/), the CLI (`qrkiosk relay refund ...`) and the REST API. Each action is checked
// against core/console-roles.ts, needs a reason, and is written to the operator audit (who, when,
// why) in the same transaction as its effect, so an order's timeline shows it. Money moves only
// through the existing machinery: a full refund moves the order to `refunding` (core/relay-order.ts,
// event operator_refund), a partial one writes refund intents with their amounts, a retry writes a
// new intent for a refused one; the refund worker (relay/refunds.ts) asks Mercado Pago once per
// intent with the intent's stable idempotency key, so each happens exactly once whatever crashes.
// What of an order is still refundable is read from its refund rows (core/refund.ts). Commands to
// a kiosk go through relay/kiosk-commands.ts (signed, expiring).

export interface Actor {
  /** operators.id; null for the CLI run by the machine's administrator */
  operatorId: number | null;
  /** shown in the audit and signed into kiosk commands: the e-mail, or `cli:<user>` */
  name: string;
  role: Role;
}

/** Refused action: `status` is the HTTP status the console and API answer with. */
export class ActionError extends Error {
  constructor(
    readonly status: 400 | 403 | 404 | 409,
    message: string,
  ) {
    super(message);
    this.name = 'ActionError';
  }
}

export interface ConsoleActionsDeps {
  store: RelayStore;
  orders: { operatorRefund(orderId: string, detail: string, audit: (tx: RelayStore) => Promise<void>): Promise<OrderRecord | undefined> };
  commands: Pick<KioskCommands, 'issue'>;
  logger: Logger;
  now: () => number;
  /** refunds above this amount (minor units, the amount refunded) wait for a second operator; null: never */
  approvalAbove: number | null;
  /** a partial refund or a retry was written: wake the refund worker (absent in the CLI: the running relay finds it on its next pass) */
  onRefundNeeded?: () => void;
}

/** A refund waiting for a second operator: who asked, why, and how much (null: all that is refundable). */
export interface PendingApproval {
  actor: string;
  operatorId: number | null;
  reason: string;
  at: number;
  amount: number | null;
}

/** Which console-roles action each kiosk command needs. */
const COMMAND_ACTION: Record<string, Action> = {
  service: 'kiosks.service',
  'stock.set': 'stock.write',
  'test.vend': 'kiosks.test_vend',
  'price.set': 'prices.write',
  'catalog.set': 'prices.write',
};

/**
 * `refunding`: the whole order is being refunded (vended -> refunding); `partial`: part of it,
 * the order stays vended; `awaiting_approval`: a second operator must approve. `amount`: minor units.
 */
export type RefundOutcome = { state: 'refunding' | 'partial' | 'awaiting_approval'; order: OrderRecord; amount: number };

/** A caller's request key as stored: per actor, hashed (it is the caller's, not ours to show). */
function requestTag(actor: Actor, key: string): string {
  if (!/^[A-Za-z0-9._:-]{1,100}$/.test(key)) throw new ActionError(400, 'the request key (Idempotency-Key) is 1 to 100 letters, digits, ".", "_", ":" or "-"');
  return `k${createHash('sha256').update(`${actor.name}\n${key}`).digest('hex').slice(0, 20)}`;
}

/** What one approved payment can still give back. */
interface PaymentRoom {
  payment: PaymentRecord;
  refundable: number;
}

export class ConsoleActions {
  constructor(private readonly d: ConsoleActionsDeps) {}

  private check(actor: Actor, action: Action): void {
    if (!roleAllows(actor.role, action)) throw new ActionError(403, `${actor.name} (${actor.role}) may not ${action}: ask an account with a higher role`);
  }

  private reasonOf(reason: unknown): string {
    const r = typeof reason === 'string' ? reason.trim() : '';
    if (!r) throw new ActionError(400, 'say why (reason): it is kept in the audit and shown in the timeline');
    if (r.length > 500) throw new ActionError(400, 'the reason is too long: at most 500 characters');
    return r;
  }

  private async audit(tx: RelayStore, actor: Actor, action: string, reason: string, ids: { orderId?: string; kioskId?: string }, detail?: object): Promise<void> {
    await tx.insertOperatorAudit({
      operatorId: actor.operatorId,
      actor: actor.name,
      action,
      orderId: ids.orderId ?? null,
      kioskId: ids.kioskId ?? null,
      reason,
      detail: detail ? JSON.stringify(detail) : null,
      at: this.d.now(),
    });
  }

  private async order(orderId: string): Promise<OrderRecord> {
    const order = await this.d.store.getOrder(orderId);
    if (!order) throw new ActionError(404, `no order "${orderId}" (qrkiosk relay orders lists them)`);
    return order;
  }

  /** The refund request of the order that waits for a second operator, if any. */
  async pendingApproval(orderId: string): Promise<PendingApproval | undefined> {
    let pending: PendingApproval | undefined;
    for (const a of await this.d.store.operatorAuditOf(orderId)) {
      if (a.action === 'refund.requested') {
        const partial = (JSON.parse(a.detail ?? '{}') as { partial?: unknown }).partial;
        pending = { actor: a.actor, operatorId: a.operatorId, reason: a.reason, at: a.at, amount: typeof partial === 'number' ? partial : null };
      }
      if (a.action === 'refund' || a.action === 'refund.partial' || a.action === 'refund.approved' || a.action === 'refund.rejected') pending = undefined;
    }
    return pending;
  }

  /**
   * What of the order may still be refunded: its amount less the partial refunds that count
   * (settled or on their way), and per approved payment what it can still give back (the
   * payments a surplus refund gives back on their own are not the order's).
   */
  private async refundRoom(tx: RelayStore, order: OrderRecord): Promise<{ total: number; payments: PaymentRoom[] }> {
    const refunds = await tx.refundsOf(order.id);
    const surplus = new Set(refunds.filter((r) => r.reason === 'surplus').map((r) => r.paymentId));
    const payments = (await tx.approvedPaymentsOf(order.id))
      .filter((p) => !surplus.has(p.paymentId))
      .map((payment) => ({ payment, refundable: refundableOf(payment.amount, refunds.filter((r) => r.paymentId === payment.paymentId)) }));
    const given = refunds.filter((r) => r.reason === 'partial' && refundCounts(r.status)).reduce((s, r) => s + (r.amount ?? r.requestedAmount ?? 0), 0);
    return { total: Math.max(0, order.amount - given), payments };
  }

  private amountOf(input: unknown, refundable: number, order: OrderRecord): number {
    if (input === undefined || input === null || input === '') return refundable;
    const n = typeof input === 'string' && /^\d+$/.test(input.trim()) ? Number(input) : input;
    if (typeof n !== 'number' || !Number.isSafeInteger(n) || n <= 0) throw new ActionError(400, 'amount is a whole number of minor units above 0 (e.g. 50000 for 500.00), or absent for a full refund');
    if (n > refundable) throw new ActionError(400, `amount ${n} is more than what order ${order.id} can still give back (${refundable} ${order.currency})`);
    return n;
  }

  /**
   * Refund of a dispensed order: all of it (no amount, or the amount still refundable) moves it
   * vended -> refunding; a smaller amount is a partial refund and the order stays vended. Several
   * partial refunds may follow each other up to the order's amount. Above `approvalAbove` (the
   * amount refunded) the request is only recorded; another operator's approveRefund moves the money.
   */
  async refund(actor: Actor, orderId: string, reasonInput: unknown, opts: { amount?: unknown; requestKey?: string } = {}): Promise<RefundOutcome> {
    this.check(actor, 'refunds.create');
    const reason = this.reasonOf(reasonInput);
    const order = await this.order(orderId);
    const tag = opts.requestKey === undefined ? undefined : requestTag(actor, opts.requestKey);
    if (tag) {
      // the same request again (an integration repeating a call whose answer it lost): its first answer
      const first = (await this.d.store.operatorAuditOf(orderId)).find((a) => a.actor === actor.name && a.detail !== null && (JSON.parse(a.detail) as { request?: unknown }).request === tag);
      if (first) {
        const d = JSON.parse(first.detail!) as { amount: number };
        const state = first.action === 'refund.requested' ? 'awaiting_approval' : first.action === 'refund.partial' ? 'partial' : 'refunding';
        return { state, order: await this.order(orderId), amount: d.amount };
      }
    }
    if (order.state !== 'vended') throw new ActionError(409, `order ${orderId} is ${order.state}: only a dispensed (vended) order is refunded by an operator; the relay refunds the others by itself`);
    if (await this.pendingApproval(orderId)) throw new ActionError(409, `a refund of order ${orderId} already awaits approval`);
    const room = await this.refundRoom(this.d.store, order);
    if (room.total === 0) throw new ActionError(409, `order ${orderId} has nothing left to refund: its partial refunds add up to its amount`);
    const amount = this.amountOf(opts.amount, room.total, order);
    const partial = amount < room.total;
    if (this.d.approvalAbove !== null && amount > this.d.approvalAbove) {
      await this.d.store.transaction((tx) => this.audit(tx, actor, 'refund.requested', reason, { orderId, kioskId: order.kioskId }, { amount, currency: order.currency, ...(partial ? { partial: amount } : {}), ...(tag ? { request: tag } : {}) }));
      this.d.logger.info({ orderId, by: actor.name }, `refund of ${amount} of order ${orderId} by ${actor.name} awaits a second operator's approval (above ${this.d.approvalAbove})`);
      return { state: 'awaiting_approval', order, amount };
    }
    const extra = tag ? { request: tag } : undefined;
    if (partial) return { state: 'partial', order, amount: await this.partialRefund(actor, order, amount, 'refund.partial', reason, extra) };
    return { state: 'refunding', order: await this.moveRefund(actor, order, 'refund', reason, extra), amount };
  }

  async approveRefund(actor: Actor, orderId: string, reasonInput: unknown): Promise<RefundOutcome> {
    this.check(actor, 'refunds.approve');
    const reason = typeof reasonInput === 'string' && reasonInput.trim() ? this.reasonOf(reasonInput) : 'approved';
    const order = await this.order(orderId);
    const pending = await this.pendingApproval(orderId);
    if (!pending) throw new ActionError(409, `no refund of order ${orderId} awaits approval`);
    if (pending.actor === actor.name) throw new ActionError(403, `${actor.name} asked for this refund: another operator must approve it`);
    const extra = { requestedBy: pending.actor, requestReason: pending.reason };
    const room = await this.refundRoom(this.d.store, order);
    if (pending.amount !== null && pending.amount > room.total) throw new ActionError(409, `order ${orderId} can no longer give back ${pending.amount} (${room.total} left): ask again`);
    if (pending.amount !== null && pending.amount < room.total) {
      return { state: 'partial', order, amount: await this.partialRefund(actor, order, pending.amount, 'refund.approved', reason, extra) };
    }
    return { state: 'refunding', order: await this.moveRefund(actor, order, 'refund.approved', reason, extra), amount: room.total };
  }

  /**
   * Writes the partial refund: the audit row and, in the same transaction, one intent per
   * payment it is taken from (keyed by the audit row, so it is one refund however often the
   * worker repeats the call). The refund worker asks Mercado Pago for each.
   */
  private async partialRefund(actor: Actor, order: OrderRecord, amount: number, action: string, reason: string, extra?: object): Promise<number> {
    await this.d.store.transaction(async (tx) => {
      // what is refundable is read again inside the transaction: a concurrent refund counts
      const room = await this.refundRoom(tx, order);
      if (amount > room.total) throw new ActionError(409, `order ${order.id} can no longer give back ${amount} (${room.total} left)`);
      const parts: Array<{ payment: PaymentRecord; amount: number }> = [];
      let left = amount;
      for (const r of room.payments) {
        if (left === 0) break;
        const take = Math.min(left, r.refundable);
        if (take > 0) parts.push({ payment: r.payment, amount: take });
        left -= take;
      }
      if (left > 0) throw new ActionError(409, `order ${order.id} has no approved payment that can give back ${amount} (known payments: ${room.payments.map((r) => `${r.payment.paymentId} ${r.refundable}`).join(', ') || 'none'})`);
      const auditId = await tx.insertOperatorAudit({
        operatorId: actor.operatorId,
        actor: actor.name,
        action,
        orderId: order.id,
        kioskId: order.kioskId,
        reason,
        detail: JSON.stringify({ amount, currency: order.currency, partial: amount, payments: parts.map((p) => ({ paymentId: p.payment.paymentId, amount: p.amount })), ...extra }),
        at: this.d.now(),
      });
      // keyed by the caller's request key when it gave one (two identical requests at once: one
      // writes, the other finds the key taken and is rolled back), else by this action's audit row
      const request = (extra as { request?: string } | undefined)?.request;
      for (const p of parts) {
        const key = partialRefundKey(order.id, p.payment.paymentId, request ?? String(auditId));
        if (!(await tx.insertRefundRequest({ orderId: order.id, paymentId: p.payment.paymentId, key, reason: 'partial', requestedAmount: p.amount, at: this.d.now() }))) {
          throw new ActionError(409, `this refund request of order ${order.id} is being made already (the same request key)`);
        }
      }
    });
    this.d.onRefundNeeded?.();
    this.d.logger.info({ orderId: order.id, by: actor.name, amount, reason }, `operator ${actor.name} refunds ${amount} ${order.currency} of order ${order.id} (partial): ${reason}`);
    return amount;
  }

  private async moveRefund(actor: Actor, order: OrderRecord, action: string, reason: string, extra?: object): Promise<OrderRecord> {
    const moved = await this.d.orders.operatorRefund(order.id, `operator ${actor.name}: ${reason}`, (tx) =>
      this.audit(tx, actor, action, reason, { orderId: order.id, kioskId: order.kioskId }, { amount: order.amount, currency: order.currency, ...extra }),
    );
    if (!moved) throw new ActionError(409, `order ${order.id} could not be refunded from its state (${(await this.order(order.id)).state})`);
    this.d.logger.info({ orderId: order.id, by: actor.name, reason }, `operator ${actor.name} refunds order ${order.id}: ${reason}`);
    return moved;
  }

  /** The refunds of the order whose last attempt Mercado Pago refused (failed, rejected, cancelled) and nobody retried. */
  async refusedRefunds(orderId: string): Promise<RefundRecord[]> {
    const refunds = await this.d.store.refundsOf(orderId);
    const keys = new Set(refunds.map((r) => r.idempotencyKey));
    return refunds.filter((r) => refundNeedsPerson(r.status) && !keys.has(retryRefundKey(r)));
  }

  /**
   * A new attempt of a refund Mercado Pago refused: a new intent row with a NEW idempotency key
   * (the refused key would only replay the refusal), the same payment, reason and amount. Only
   * for a refund whose last attempt was refused; the new key is derived from the refused row, so
   * two operators retrying at once write one row and Mercado Pago is asked once. `refundId`:
   * which refund (default: every refused one of the order).
   */
  async retryRefund(actor: Actor, orderId: string, reasonInput: unknown, refundId?: number): Promise<{ retried: Array<{ refundId: number; paymentId: string; amount: number | null }> }> {
    this.check(actor, 'refunds.retry');
    const reason = this.reasonOf(reasonInput);
    const order = await this.order(orderId);
    let refused = await this.refusedRefunds(orderId);
    if (refundId !== undefined) refused = refused.filter((r) => r.id === refundId);
    if (refused.length === 0) {
      throw new ActionError(409, refundId !== undefined ? `refund ${refundId} of order ${orderId} is not one whose last attempt was refused (it succeeded, is on its way, or was retried already)` : `order ${orderId} has no refused refund to retry`);
    }
    const retried = await this.d.store.transaction(async (tx) => {
      const written: Array<{ refundId: number; paymentId: string; amount: number | null }> = [];
      for (const r of refused) {
        const created = await tx.insertRefundRequest({ orderId, paymentId: r.paymentId, key: retryRefundKey(r), reason: r.reason, requestedAmount: r.requestedAmount, at: this.d.now() });
        if (created) written.push({ refundId: r.id, paymentId: r.paymentId, amount: r.requestedAmount });
      }
      if (written.length === 0) throw new ActionError(409, `the refused refund of order ${orderId} was retried already by someone else`);
      await this.audit(tx, actor, 'refund.retried', reason, { orderId, kioskId: order.kioskId }, { refunds: written });
      return written;
    });
    this.d.onRefundNeeded?.();
    this.d.logger.info({ orderId, by: actor.name, refunds: retried }, `operator ${actor.name} retries the refused refund(s) of order ${orderId}: ${reason}`);
    return { retried };
  }

  /** Clears every review reason of the order, recording the decision. */
  async clearReview(actor: Actor, orderId: string, decisionInput: unknown, reasonInput: unknown): Promise<void> {
    this.check(actor, 'reviews.clear');
    const reason = this.reasonOf(reasonInput);
    const decision = typeof decisionInput === 'string' ? decisionInput.trim() : '';
    if (!decision || decision.length > 100) throw new ActionError(400, 'say what was decided (decision, e.g. "product was given", "refunded by hand"; at most 100 characters)');
    const order = await this.order(orderId);
    if (!order.needsReview) throw new ActionError(409, `order ${orderId} is not flagged for review`);
    await this.d.store.transaction(async (tx) => {
      await tx.clearReview(orderId, '');
      await this.audit(tx, actor, 'review.cleared', reason, { orderId, kioskId: order.kioskId }, { decision, reasons: order.needsReview });
    });
  }

  /** A signed command to a kiosk (service, stock.set, test.vend, price.set, catalog.set). */
  async kioskCommand(actor: Actor, kioskId: string, action: unknown, reasonInput: unknown): Promise<{ commandId: string }> {
    const kind = (action as { kind?: unknown } | null)?.kind;
    const needed = typeof kind === 'string' ? COMMAND_ACTION[kind] : undefined;
    if (!needed) throw new ActionError(400, `unknown command kind ${JSON.stringify(kind)}: one of ${Object.keys(COMMAND_ACTION).join(', ')}`);
    this.check(actor, needed);
    const reason = this.reasonOf(reasonInput);
    let rec;
    try {
      rec = await this.d.commands.issue(kioskId, action, { by: actor.name, reason });
    } catch (err) {
      if ((err as Error).name === 'CommandInputError') throw new ActionError(400, (err as Error).message);
      throw err;
    }
    await this.d.store.transaction((tx) => this.audit(tx, actor, `kiosk.${kind}`, reason, { kioskId }, { commandId: rec.id, action }));
    return { commandId: rec.id };
  }
}
