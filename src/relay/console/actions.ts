import { roleAllows, type Action, type Role } from '../../core/console-roles.js';
import type { Logger } from '../../runtime/log.js';
import type { KioskCommands } from '../kiosk-commands.js';
import type { OrderRecord, RelayStore } from '../store/index.js';

// The operator actions of issue 11, ONE implementation for every way in: the web console
// (console/web/), the CLI (`qrkiosk relay refund ...`) and the REST API. Each action is checked
// against core/console-roles.ts, needs a reason, and is written to the operator audit (who, when,
// why) in the same transaction as its effect, so an order's timeline shows it. Money moves only
// through the existing machinery: a refund moves the order to `refunding` (core/relay-order.ts,
// event operator_refund) and the refund worker (relay/refunds.ts) gives each approved payment back
// with its stable idempotency key, so it happens exactly once whatever crashes. Commands to a
// kiosk go through relay/kiosk-commands.ts (signed, expiring).

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
  /** refunds of orders above this amount (minor units) wait for a second operator; null: never */
  approvalAbove: number | null;
}

/** Which console-roles action each kiosk command needs. */
const COMMAND_ACTION: Record<string, Action> = {
  service: 'kiosks.service',
  'stock.set': 'stock.write',
  'test.vend': 'kiosks.test_vend',
  'price.set': 'prices.write',
  'catalog.set': 'prices.write',
};

export type RefundOutcome = { state: 'refunding'; order: OrderRecord } | { state: 'awaiting_approval'; order: OrderRecord };

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
  async pendingApproval(orderId: string): Promise<{ actor: string; operatorId: number | null; reason: string; at: number } | undefined> {
    let pending: { actor: string; operatorId: number | null; reason: string; at: number } | undefined;
    for (const a of await this.d.store.operatorAuditOf(orderId)) {
      if (a.action === 'refund.requested') pending = { actor: a.actor, operatorId: a.operatorId, reason: a.reason, at: a.at };
      if (a.action === 'refund' || a.action === 'refund.approved' || a.action === 'refund.rejected') pending = undefined;
    }
    return pending;
  }

  /**
   * Full refund of a dispensed order. Above `approvalAbove` it is only recorded as awaiting
   * approval; another operator's approveRefund moves the money.
   */
  async refund(actor: Actor, orderId: string, reasonInput: unknown): Promise<RefundOutcome> {
    this.check(actor, 'refunds.create');
    const reason = this.reasonOf(reasonInput);
    const order = await this.order(orderId);
    if (order.state !== 'vended') throw new ActionError(409, `order ${orderId} is ${order.state}: only a dispensed (vended) order is refunded by an operator; the relay refunds the others by itself`);
    if (await this.pendingApproval(orderId)) throw new ActionError(409, `a refund of order ${orderId} already awaits approval`);
    if (this.d.approvalAbove !== null && order.amount > this.d.approvalAbove) {
      await this.d.store.transaction((tx) => this.audit(tx, actor, 'refund.requested', reason, { orderId, kioskId: order.kioskId }, { amount: order.amount, currency: order.currency }));
      this.d.logger.info({ orderId, by: actor.name }, `refund of order ${orderId} by ${actor.name} awaits a second operator's approval (amount ${order.amount} above ${this.d.approvalAbove})`);
      return { state: 'awaiting_approval', order };
    }
    return { state: 'refunding', order: await this.moveRefund(actor, order, 'refund', reason) };
  }

  async approveRefund(actor: Actor, orderId: string, reasonInput: unknown): Promise<OrderRecord> {
    this.check(actor, 'refunds.approve');
    const reason = typeof reasonInput === 'string' && reasonInput.trim() ? this.reasonOf(reasonInput) : 'approved';
    const order = await this.order(orderId);
    const pending = await this.pendingApproval(orderId);
    if (!pending) throw new ActionError(409, `no refund of order ${orderId} awaits approval`);
    if (pending.actor === actor.name) throw new ActionError(403, `${actor.name} asked for this refund: another operator must approve it`);
    return this.moveRefund(actor, order, 'refund.approved', reason, { requestedBy: pending.actor, requestReason: pending.reason });
  }

  private async moveRefund(actor: Actor, order: OrderRecord, action: string, reason: string, extra?: object): Promise<OrderRecord> {
    const moved = await this.d.orders.operatorRefund(order.id, `operator ${actor.name}: ${reason}`, (tx) =>
      this.audit(tx, actor, action, reason, { orderId: order.id, kioskId: order.kioskId }, { amount: order.amount, currency: order.currency, ...extra }),
    );
    if (!moved) throw new ActionError(409, `order ${order.id} could not be refunded from its state (${(await this.order(order.id)).state})`);
    this.d.logger.info({ orderId: order.id, by: actor.name, reason }, `operator ${actor.name} refunds order ${order.id}: ${reason}`);
    return moved;
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
