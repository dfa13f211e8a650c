import type { NewDelivery } from './store/types.js';
import type { Catalog } from '../core/catalog.js';
import { isCurrency, parseAmount, toDecimalString, type Currency } from '../core/money.js';
import { IllegalTransition } from '../core/state-machine.js';
import type { OrderEvent } from '../core/relay-order.js';
import { paymentRefundSettled, refundSettles } from '../core/refund.js';
import { frame } from '../protocol/codec.js';
import type { Hello, OrderCancel, OrderReady, OrderRejected, VendResolve, VendResult } from '../protocol/messages.js';
import type { MpMerchantOrder } from '../mercadopago/types.js';
import { fromMerchantOrder, type Payable, type PaymentModels, type PaymentState } from './models/index.js';
import type { Logger } from '../runtime/log.js';
import type { RelayConfig } from './config.js';
import type { HubHandler, ReliableAgentMessage } from './hub.js';
import { refundIdempotencyKey } from './refunds.js';
import type { Kiosk, OrderPatch, OrderRecord, PaymentRecord, RelayStore } from './store/index.js';
import type { RelayObserver } from './observability/observer.js';

// The order service: the only place that decides what happens to an order. Every state change
// goes through store.transitionOrder (checked against core/relay-order.ts) inside a transaction
// together with the outbox row telling the kiosk; the outbox is pushed only AFTER the commit, so
// the kiosk is never told something the relay could still roll back.

export interface OrderServiceOptions {
  store: RelayStore;
  /** a kiosk's price list as it is now: the relay's (reloadable) with the prices that kiosk confirmed (relay/kiosk-commands.ts) */
  catalog: (kioskId: string) => Catalog;
  orders: RelayConfig['orders'];
  collectorId: number;
  logger: Logger;
  now: () => number;
  isOnline(kioskId: string): boolean;
  /** push a kiosk's outbox (hub.flush) */
  flush(kioskId: string): void;
  /** an order entered `refunding`, or a surplus payment must be given back */
  onRefundNeeded(): void;
  /** how each kiosk's payment model makes an order payable */
  models: PaymentModels;
  /** an order must be made payable or withdrawn at Mercado Pago (relay/offers.ts) */
  onOfferWork(): void;
  /** metrics (relay/observability): told of each vend result of a paid order */
  observe?: Pick<RelayObserver, 'vendReported'>;
  /**
   * The outbound webhook rows of an order that was just inserted or moved (console/order-webhooks.ts):
   * written in the SAME transaction as the order's row, so every committed event is announced
   * once and a rolled-back one never. Absent or empty: no channel wants order events.
   */
  orderDeliveries?: (order: OrderRecord, at: number) => NewDelivery[];
  /** deliveries were committed: wake the delivery worker */
  onDeliveries?(): void;
  /** the customer's receipt page of an order, sent with order.paid for the receipt's QR; undefined: none */
  receiptUrl?(orderId: string): string | undefined;
}

export type Offer =
  | { kind: 'ready'; order: OrderRecord }
  | { kind: 'none'; reason: 'no_order' | 'kiosk_offline' | 'just_paid' };

export type MerchantOrderOutcome =
  | 'released'
  | 'already_done'
  | 'not_ours'
  | 'waiting'
  | 'underpaid'
  | 'currency_mismatch'
  | 'foreign_collector'
  | 'late_payment'
  | 'closed_no_payment'
  | 'surplus_refund';

/** Prefix of the watchdog's reason for review; removed when the kiosk finally reports the vend. */
export const VEND_OVERDUE_REVIEW = 'vend result overdue';

/** What finishRefund answers; `incomplete` means an approved payment still has no refund. */
export type FinishRefundOutcome = 'finished' | 'not_refunding' | 'incomplete';

const JUST_PAID_WINDOW_MS = 30_000;

type RelayFrameBody = { type: string } & Record<string, unknown>;

/**
 * What one transaction leaves to do once it has committed: push outboxes, wake the refund and
 * offer workers. Kept per transaction, so one handler's commit never pushes what another
 * handler's transaction (still open, or rolled back) wrote.
 */
class AfterCommit {
  readonly kiosks = new Set<string>();
  refundNeeded = false;
  offerWork = false;
  deliveries = false;
}

/** A transaction of the order service: its store handle and what to do after its commit. */
interface Tx {
  store: RelayStore;
  after: AfterCommit;
}

export class OrderService implements HubHandler {
  constructor(private readonly o: OrderServiceOptions) {}

  private get store(): RelayStore {
    return this.o.store;
  }
  private get log(): Logger {
    return this.o.logger;
  }

  // ---- transactions -----------------------------------------------------------------------------

  /**
   * Runs fn in one store transaction and, once it has committed, pushes what it queued. The whole
   * read-decide-write of a handler is inside: a concurrent handler on the same order waits (SQLite)
   * or finds the state moved (PostgreSQL), never a stale read.
   */
  private async commit<T>(fn: (t: Tx) => Promise<T>): Promise<T> {
    const after = new AfterCommit();
    const result = await this.store.transaction((store) => fn({ store, after }));
    this.afterCommit(after);
    return result;
  }

  private afterCommit(after: AfterCommit): void {
    for (const k of after.kiosks) this.o.flush(k);
    if (after.refundNeeded) this.o.onRefundNeeded();
    if (after.offerWork) this.o.onOfferWork();
    if (after.deliveries) this.o.onDeliveries?.();
  }

  /** The order's webhook rows, in the current transaction (see orderDeliveries). */
  private async announce(t: Tx, order: OrderRecord): Promise<void> {
    const at = this.o.now();
    const rows = this.o.orderDeliveries?.(order, at) ?? [];
    if (rows.length === 0) return;
    await t.store.insertDeliveries(rows, at);
    t.after.deliveries = true;
  }

  private async insert(t: Tx, o: Parameters<RelayStore['insertOrder']>[0]): Promise<OrderRecord> {
    const order = await t.store.insertOrder(o);
    await this.announce(t, order);
    return order;
  }

  /** Queue a reliable frame to the kiosk: an outbox row in the CURRENT transaction. */
  private async send(t: Tx, kioskId: string, body: RelayFrameBody): Promise<void> {
    const f = frame(body);
    await t.store.enqueueOutbox(kioskId, f, this.o.now());
    t.after.kiosks.add(kioskId);
  }

  /** A checked state change; an illegal one is logged, noted in the history and refused. */
  private async move(t: Tx, order: OrderRecord, event: OrderEvent, detail?: string, patch?: OrderPatch): Promise<OrderRecord | undefined> {
    try {
      const next = await t.store.transitionOrder(order.id, event, this.o.now(), detail ?? null, patch);
      await this.announce(t, next);
      if (order.state === 'paid' && order.paidAt !== null && (event === 'vend_ok' || event === 'vend_failed')) this.o.observe?.vendReported(event === 'vend_ok' ? 'vended' : 'vend_failed', (this.o.now() - order.paidAt) / 1000);
      this.log.info({ orderId: order.id, from: order.state, to: next.state, event }, `order ${order.id}: ${order.state} -> ${next.state} (${event})`);
      if (next.state === 'refunding') t.after.refundNeeded = true;
      if ((next.state === 'cancelled' || next.state === 'expired') && (next.offerState === 'due' || next.offerState === 'offered')) {
        // No longer payable here: nothing may stay payable at Mercado Pago either. Written in the
        // same transaction as the state change, so a crash cannot forget it.
        t.after.offerWork = true;
        return await t.store.moveOffer(next.id, 'withdraw', this.o.now());
      }
      return next;
    } catch (err) {
      if (err instanceof IllegalTransition) {
        this.log.warn({ orderId: order.id, state: order.state, event }, `order ${order.id}: ${err.message}; refused`);
        await t.store.noteOrderEvent(order.id, order.state, `refused:${event}`, detail ?? null, this.o.now());
        return undefined;
      }
      throw err;
    }
  }

  // ---- kiosk frames (HubHandler) ----------------------------------------------------------------

  /** Runs inside the hub's inbox transaction `tx`; resolves what to do once that has committed. */
  async applyReliable(tx: RelayStore, kioskId: string, msg: ReliableAgentMessage): Promise<() => void> {
    const t: Tx = { store: tx, after: new AfterCommit() };
    switch (msg.type) {
      case 'order.ready':
        await this.orderReady(t, kioskId, msg);
        break;
      case 'order.cancel':
        await this.orderCancel(t, kioskId, msg);
        break;
      case 'vend.result':
        await this.vendResult(t, kioskId, msg);
        break;
      case 'vend.resolve':
        await this.vendResolve(t, kioskId, msg);
        break;
    }
    return () => this.afterCommit(t.after);
  }

  async onHello(kioskId: string, hello: Hello): Promise<void> {
    // The agent lists the orders it still waits on. A relay order pending for this kiosk that the
    // agent no longer knows (it restarted and lost it) must stop being offered: a customer could
    // pay for it and nobody would dispense. Cancelling is the safe direction: a payment that still
    // lands is refunded by the late-payment path.
    const open = new Set(hello.openOrders.map((o) => o.orderId));
    await this.commit(async (t) => {
      const pending = await t.store.pendingOrderOf(kioskId);
      if (pending && !open.has(pending.id)) {
        this.log.warn({ kioskId, orderId: pending.id }, `kiosk ${kioskId} no longer waits for order ${pending.id}: cancelling it so it is not offered`);
        const moved = await this.move(t, pending, 'cancel', 'agent hello does not list it');
        if (moved) await this.refundKnownPayments(t, moved);
      }
      for (const o of hello.openOrders) {
        const ours = await t.store.getOrder(o.orderId);
        if (!ours || ours.kioskId !== kioskId) {
          this.log.warn({ kioskId, orderId: o.orderId }, `kiosk ${kioskId} reports open order ${o.orderId} the relay never accepted`);
        } else if (ours.state !== 'pending') {
          // The outbox still holds (or already delivered) the frame that closes it for the agent.
          this.log.info({ kioskId, orderId: o.orderId, agentState: o.state, relayState: ours.state }, `kiosk ${kioskId}: order ${o.orderId} is ${o.state} on the kiosk, ${ours.state} here`);
        }
      }
    });
  }

  private async orderReady(t: Tx, kioskId: string, msg: OrderReady): Promise<void> {
    const now = this.o.now();
    const existing = await t.store.getOrder(msg.orderId);
    if (existing) {
      // Same order id with a NEW message id (the inbox caught the same message id already).
      if (existing.kioskId === kioskId && existing.state === 'pending' && existing.sku === msg.sku && existing.quantity === msg.quantity) {
        await this.send(t, kioskId, { type: 'order.accepted', orderId: existing.id, amount: existing.amount, currency: existing.currency });
      } else if (existing.kioskId !== kioskId) {
        // Another kiosk's order: say nothing about it (not its state, not whose it is).
        this.log.warn({ kioskId, orderId: msg.orderId, owner: existing.kioskId }, `kiosk ${kioskId} sent order id ${msg.orderId}, which belongs to kiosk ${existing.kioskId}: refused as duplicate`);
        await this.reject(t, kioskId, msg.orderId, 'duplicate', `order id ${msg.orderId} is already used; use a new order id`);
      } else {
        this.log.warn({ kioskId, orderId: msg.orderId, state: existing.state }, `kiosk ${kioskId} re-used order id ${msg.orderId} (${existing.state}): refused as duplicate`);
        await this.reject(t, kioskId, msg.orderId, 'duplicate', `order ${msg.orderId} already exists (${existing.state}); use a new order id`);
      }
      return;
    }

    // A stale pending order must not make the kiosk look busy.
    await this.expireIn(t, kioskId);

    const base = {
      id: msg.orderId,
      kioskId,
      slot: msg.slot,
      sku: msg.sku,
      quantity: msg.quantity,
      claimedAmount: msg.amount,
      claimedCurrency: msg.currency,
      deadline: msg.deadline,
      createdAt: now,
    };
    const product = this.o.catalog(kioskId).get(msg.sku);
    if (!product) {
      const text = `product ${msg.sku} is not in the relay's catalog`;
      this.log.warn({ kioskId, orderId: msg.orderId, sku: msg.sku }, `kiosk ${kioskId}: ${text}: order ${msg.orderId} refused`);
      await this.insert(t, {
        ...base,
        title: msg.sku,
        unitPrice: 0,
        amount: 0,
        currency: msg.currency as Currency,
        state: 'rejected',
        rejectReason: 'unknown_product',
      });
      await this.reject(t, kioskId, msg.orderId, 'unknown_product', text);
      return;
    }
    const amount = product.price * msg.quantity;
    const priced = { ...base, title: product.name, unitPrice: product.price, amount, currency: product.currency };
    if (msg.currency !== product.currency || msg.amount !== amount) {
      // The relay's catalog is the price list; a kiosk with a stale or tampered screen must not
      // make a customer pay a different price than the one we verify payments against.
      const what = msg.quantity === 1 ? msg.sku : `${msg.quantity} x ${msg.sku}`;
      const claimed = isCurrency(msg.currency) ? toDecimalString(msg.amount, msg.currency) : String(msg.amount);
      const text = `kiosk ${kioskId} claimed ${claimed} ${msg.currency} for ${what}, catalog says ${toDecimalString(amount, product.currency)} ${product.currency}: order ${msg.orderId} refused`;
      this.log.warn({ kioskId, orderId: msg.orderId, claimed: msg.amount, expected: amount }, text);
      await this.insert(t, { ...priced, state: 'rejected', rejectReason: 'price_mismatch' });
      await this.reject(t, kioskId, msg.orderId, 'price_mismatch', text);
      return;
    }
    if (!Number.isSafeInteger(amount)) {
      await this.insert(t, { ...priced, amount: 0, state: 'rejected', rejectReason: 'invalid' });
      await this.reject(t, kioskId, msg.orderId, 'invalid', 'quantity too large');
      return;
    }
    if (msg.deadline <= now) {
      await this.insert(t, { ...priced, state: 'rejected', rejectReason: 'invalid' });
      await this.reject(t, kioskId, msg.orderId, 'invalid', `deadline ${new Date(msg.deadline).toISOString()} already passed: check the kiosk clock`);
      return;
    }
    const busy = await t.store.pendingOrderOf(kioskId);
    if (busy) {
      // One POS = one order at a time: MP asks "what is this POS selling?", there is one answer.
      await this.insert(t, { ...priced, state: 'rejected', rejectReason: 'kiosk_busy' });
      await this.reject(t, kioskId, msg.orderId, 'kiosk_busy', `order ${busy.id} is still pending on this kiosk: cancel it first`);
      return;
    }
    // Never keep an order payable longer than the relay allows, whatever the kiosk asks.
    const deadline = Math.min(msg.deadline, now + this.o.orders.maxPaymentSeconds * 1000);
    const kiosk = (await t.store.getKiosk(kioskId))!;
    const model = this.o.models.of(kiosk);
    let local: Payable | undefined;
    try {
      local = model.offerLocally({ ...priced, deadline } as OrderRecord, kiosk);
    } catch (err) {
      // e.g. an offline QR that cannot carry this order (a field over EMVCo's limits)
      const text = `kiosk ${kioskId}: the ${model.name} model cannot make order ${msg.orderId} payable: ${(err as Error).message}`;
      this.log.error({ kioskId, orderId: msg.orderId, err }, text);
      await this.insert(t, { ...priced, state: 'rejected', rejectReason: 'payment_unavailable' });
      await this.reject(t, kioskId, msg.orderId, 'payment_unavailable', text);
      return;
    }
    await this.insert(t, { ...priced, deadline, state: 'pending', offerState: local ? 'local' : 'due', qr: local?.qr ?? null });
    this.log.info(
      { kioskId, orderId: msg.orderId, amount, currency: product.currency, model: model.name },
      `order ${msg.orderId} pending on kiosk ${kioskId}: ${product.name} ${toDecimalString(amount, product.currency)} ${product.currency}${local ? '' : ` (making it payable at Mercado Pago, ${model.name} model)`}`,
    );
    if (local) await this.send(t, kioskId, { type: 'order.accepted', orderId: msg.orderId, amount, currency: product.currency, ...(local.qr ? { qr: local.qr } : {}) });
    else t.after.offerWork = true;
  }

  // ---- making orders payable at Mercado Pago (driven by relay/offers.ts) ------------------------

  /**
   * Mercado Pago made the order payable. The kiosk is told (with the order's QR) only if the order
   * is still pending; a cancel that raced the call has already asked for a withdrawal, which now
   * knows Mercado Pago's id. Returns whether there is still work (a withdrawal) for the order.
   */
  offerMade(orderId: string, payable: Payable): Promise<boolean> {
    return this.commit(async (t) => {
      const order = await t.store.getOrder(orderId);
      if (!order) return false;
      if (order.offerState !== 'due' && order.offerState !== 'withdraw_due') return false;
      const facts = { ...(payable.mpOrderId ? { mpOrderId: payable.mpOrderId } : {}), ...(payable.qr ? { qr: payable.qr } : {}) };
      const moved = await t.store.moveOffer(orderId, 'created', this.o.now(), facts);
      if (moved.offerState === 'withdraw_due') {
        t.after.offerWork = true;
        return true;
      }
      if (moved.state === 'pending') {
        await this.send(t, order.kioskId, { type: 'order.accepted', orderId, amount: order.amount, currency: order.currency, ...(payable.qr ? { qr: payable.qr } : {}) });
      }
      return false;
    });
  }

  /** Mercado Pago refused for good to make the order payable: the kiosk is told, nothing is sold. */
  async offerRefused(orderId: string, why: string): Promise<void> {
    await this.commit(async (t) => {
      const order = await t.store.getOrder(orderId);
      if (!order || order.offerState !== 'due') return;
      const refused = await t.store.moveOffer(orderId, 'refused', this.o.now(), { error: why.slice(0, 500) });
      if (order.state === 'pending') {
        await this.move(t, refused, 'cancel', `Mercado Pago refused to make it payable: ${why}`);
        await this.reject(t, order.kioskId, orderId, 'payment_unavailable', `payments are unavailable: ${why}`);
      }
    });
  }

  /** The withdrawal at Mercado Pago is done (or was refused for good, for a person to check). */
  async withdrawEnded(orderId: string, failure?: string): Promise<void> {
    await this.commit(async (t) => {
      const order = await t.store.getOrder(orderId);
      if (!order || order.offerState !== 'withdraw_due') return;
      if (failure === undefined) {
        await t.store.moveOffer(orderId, 'withdrawn', this.o.now());
        return;
      }
      await t.store.moveOffer(orderId, 'withdraw_failed', this.o.now(), { error: failure.slice(0, 500) });
      await t.store.flagReview(orderId, `could not withdraw it at Mercado Pago: ${failure}`);
    });
  }

  private async reject(t: Tx, kioskId: string, orderId: string, reason: OrderRejected['reason'], message: string): Promise<void> {
    await this.send(t, kioskId, { type: 'order.rejected', orderId, reason, message });
  }

  private async ownOrder(t: Tx, kioskId: string, orderId: string, what: string): Promise<OrderRecord | undefined> {
    const order = await t.store.getOrder(orderId);
    if (!order || order.kioskId !== kioskId) {
      this.log.warn({ kioskId, orderId }, `kiosk ${kioskId} sent ${what} for order ${orderId}, which is not one of its orders: ignored`);
      return undefined;
    }
    return order;
  }

  private async orderCancel(t: Tx, kioskId: string, msg: OrderCancel): Promise<void> {
    const order = await this.ownOrder(t, kioskId, msg.orderId, 'order.cancel');
    if (!order) return;
    if (order.state === 'cancelled' || order.state === 'rejected' || order.state === 'expired') return; // already not payable
    const moved = await this.move(t, order, 'cancel', `kiosk: ${msg.reason}`);
    if (moved) await this.refundKnownPayments(t, moved);
  }

  private async vendResult(t: Tx, kioskId: string, msg: VendResult): Promise<void> {
    const order = await this.ownOrder(t, kioskId, msg.orderId, 'vend.result');
    if (!order) return;
    const detail = `${msg.result}${msg.detail ? `: ${msg.detail}` : ''} (pulses ${msg.pulses})`;
    if (order.vendOverdueAt !== null && order.state === 'paid' && (await t.store.clearReview(order.id, VEND_OVERDUE_REVIEW))) {
      // The watchdog's worry is answered; whatever the result says is handled below as usual.
      this.log.info({ kioskId, orderId: order.id, result: msg.result }, `kiosk ${kioskId} reported the overdue vend of ${order.id}: ${msg.result}`);
    }
    switch (msg.result) {
      case 'dispensed':
        await this.move(t, order, 'vend_ok', detail, { vendResult: msg.result });
        return;
      case 'vend_failed':
      case 'jammed':
      case 'not_dispensed':
        await this.move(t, order, 'vend_failed', detail, { vendResult: msg.result });
        return;
      case 'vend_unknown':
        if (this.o.orders.uncertainVendPolicy === 'refund') {
          await this.move(t, order, 'vend_failed', `${detail}; policy refund`, { vendResult: msg.result });
        } else if (order.state === 'paid') {
          // Policy "review": the product may have dropped; a human decides, money stays.
          await t.store.patchOrder(order.id, { vendResult: msg.result });
          await t.store.flagReview(order.id, `vend_unknown: ${detail}`);
          await t.store.noteOrderEvent(order.id, order.state, 'vend_unknown', `${detail}; kept for review`, this.o.now());
          this.log.warn({ kioskId, orderId: order.id }, `order ${order.id}: kiosk ${kioskId} cannot tell whether it dispensed; kept paid for review`);
        } else {
          await this.move(t, order, 'vend_failed', detail); // logs the refusal
        }
        return;
    }
  }

  /**
   * A technician's verdict on a vend the kiosk could not see (`qrkiosk resolve`). Applied once (the
   * hub's inbox drops a re-sent frame) and only by a checked transition: dispensed releases a
   * `paid` order as vended, refund sends it to refunding. An order already past that point keeps
   * its state; the verdict is recorded and, when it disagrees, the order goes to review.
   */
  private async vendResolve(t: Tx, kioskId: string, msg: VendResolve): Promise<void> {
    const order = await this.ownOrder(t, kioskId, msg.orderId, 'vend.resolve');
    if (!order) return;
    const detail = `technician ${msg.by} at ${new Date(msg.at).toISOString()}: ${msg.resolution === 'dispensed' ? 'product was dispensed' : 'product was not dispensed, refund'} (checked by hand)`;
    const agrees = msg.resolution === 'dispensed' ? order.state === 'vended' : order.state === 'refunding' || order.state === 'refunded';
    if (order.state === 'paid') {
      const moved = await this.move(t, order, msg.resolution === 'dispensed' ? 'vend_ok' : 'vend_failed', detail);
      if (moved) await t.store.clearReview(order.id, 'vend_unknown');
    } else {
      await t.store.noteOrderEvent(order.id, order.state, 'technician_resolved', detail, this.o.now());
      if (!agrees) await t.store.flagReview(order.id, `technician says ${msg.resolution} but the order is ${order.state}: ${detail}`);
    }
    this.log.warn({ kioskId, orderId: order.id, resolution: msg.resolution, by: msg.by, state: order.state }, `order ${order.id}: ${detail}`);
  }

  // ---- expiry -----------------------------------------------------------------------------------

  /** Moves pending orders past their deadline to `expired` (all kiosks, or one). */
  expireDue(kioskId?: string): Promise<number> {
    return this.commit((t) => this.expireIn(t, kioskId));
  }

  private async expireIn(t: Tx, kioskId?: string): Promise<number> {
    const due = await t.store.pendingPastDeadline(this.o.now(), kioskId);
    for (const o of due) {
      const moved = await this.move(t, o, 'expire', 'deadline passed');
      if (!moved) continue;
      await this.send(t, o.kioskId, { type: 'order.expired', orderId: o.id });
      await this.refundKnownPayments(t, moved);
    }
    return due.length;
  }

  // ---- paid but no vend result ------------------------------------------------------------------

  /**
   * Flags (once) every order released to its kiosk longer than vendResultTimeoutSeconds ago that
   * has no vend.result. Never refunds: the product may have dropped, and the kiosk's outbox still
   * holds the result it will deliver when it comes back. Returns how many were flagged now.
   */
  flagOverdueVends(): Promise<number> {
    const now = this.o.now();
    return this.commit(async (t) => {
      const due = await t.store.overdueVends(now - this.o.orders.vendResultTimeoutSeconds * 1000);
      for (const o of due) {
        const seconds = Math.floor((now - (o.paidAt ?? now)) / 1000);
        const text = `kiosk ${o.kioskId} has not reported the vend of ${o.id} for ${seconds} s`;
        await t.store.markVendOverdue(o.id, now, `${VEND_OVERDUE_REVIEW}: ${text}`);
        await t.store.noteOrderEvent(o.id, o.state, 'vend_overdue', text, now);
        this.log.warn({ kioskId: o.kioskId, orderId: o.id, paidAt: o.paidAt, seconds, kioskOnline: this.o.isOnline(o.kioskId) }, text);
      }
      return due.length;
    });
  }

  /**
   * An order that stopped being payable but already received approved money (underpaid, or a
   * payment that raced the cancel) must give it back: nothing will be dispensed for it.
   */
  private async refundKnownPayments(t: Tx, order: OrderRecord): Promise<void> {
    const approved = await t.store.approvedPaymentsOf(order.id);
    if (approved.length === 0) return;
    this.log.warn({ orderId: order.id, payments: approved.map((p) => p.paymentId) }, `order ${order.id} is ${order.state} but has approved payments: refunding`);
    await this.move(t, order, 'late_payment', `approved payments ${approved.map((p) => p.paymentId).join(',')}`);
  }

  // ---- refunds ----------------------------------------------------------------------------------

  /**
   * Called by the refund worker once Mercado Pago accepted a refund for every approved payment:
   * refunding -> refunded, and the kiosk is told (it may show "your money was returned"). Checked
   * here, in the same transaction as the move, so a payment that landed while the worker was
   * talking to Mercado Pago is never left behind by a `refunded` order (`incomplete`: run again).
   */
  finishRefund(orderId: string): Promise<FinishRefundOutcome> {
    return this.commit(async (t): Promise<FinishRefundOutcome> => {
      const order = await t.store.getOrder(orderId);
      if (!order || order.state !== 'refunding') return 'not_refunding';
      const refunds = await t.store.refundsOf(orderId);
      // given back in full: a settled refund of what remained, or settled partial ones adding up to it
      const settled = (p: PaymentRecord) => paymentRefundSettled(p.amount, refunds.filter((r) => r.paymentId === p.paymentId));
      if ((await t.store.approvedPaymentsOf(orderId)).some((p) => !settled(p))) return 'incomplete';
      const moved = await this.move(t, order, 'refund_done', `refunds ${refunds.map((r) => r.mpRefundId).join(',')}`);
      if (!moved) return 'not_refunding';
      const amount = refunds.filter((r) => r.currency === order.currency && refundSettles(r.status)).reduce((s, r) => s + (r.amount ?? 0), 0);
      await this.send(t, order.kioskId, {
        type: 'order.refunded',
        orderId,
        refundId: refunds.map((r) => r.mpRefundId ?? `external-${r.paymentId}`).join(','),
        amount,
        currency: order.currency,
      });
      return 'finished';
    });
  }

  /**
   * An operator gives back the money of a dispensed order (relay/console/actions.ts): vended ->
   * refunding through the order's table, in one transaction with `audit` (the operator's row);
   * the refund worker then refunds every approved payment with its stable key, exactly once.
   * Resolves the order after the move, or undefined when its state does not allow it.
   */
  operatorRefund(orderId: string, detail: string, audit: (tx: RelayStore) => Promise<void>): Promise<OrderRecord | undefined> {
    return this.commit(async (t) => {
      const order = await t.store.getOrder(orderId);
      if (!order) return undefined;
      const moved = await this.move(t, order, 'operator_refund', detail);
      if (moved) await audit(t.store);
      return moved;
    });
  }

  /**
   * Marks an order for a human (refund refused by MP, no payment to refund...), keeping earlier
   * reasons. Returns whether the reason is new (log it only then).
   */
  flagForReview(orderId: string, why: string, tx?: RelayStore): Promise<boolean> {
    return (tx ?? this.store).flagReview(orderId, why);
  }

  /**
   * Payments the order does not need, refunded one by one while the order keeps its state: a
   * second payment for an order another payment already released (two customers, or one who paid
   * twice), any payment on a `rejected` order, a payment left over after the order was refunded.
   * Only the intent is written here, in the caller's transaction; the refund worker calls Mercado
   * Pago with the stable key. Returns how many payments were newly taken care of.
   */
  private async refundSurplus(t: Tx, order: OrderRecord): Promise<number> {
    const released = order.state === 'paid' || order.state === 'vended' ? new Set(order.paymentIds) : new Set<string>();
    const now = this.o.now();
    let n = 0;
    for (const p of await t.store.unrefundedApprovedPaymentsOf(order.id)) {
      if (released.has(p.paymentId)) continue;
      const key = refundIdempotencyKey(order.id, p.paymentId);
      const amount = describeAmount(p);
      if (p.status === 'refunded') {
        // Already given back outside the relay (MP panel): record it, never ask a second time.
        await t.store.recordExternalRefund(order.id, p.paymentId, key, p.amount, p.currency, now, 'surplus');
        await t.store.noteOrderEvent(order.id, order.state, 'surplus_payment', `payment ${p.paymentId} ${amount}: already refunded outside the relay`, now);
        this.log.info({ orderId: order.id, paymentId: p.paymentId }, `order ${order.id}: surplus payment ${p.paymentId} of ${amount} was already refunded outside the relay`);
        n++;
        continue;
      }
      // in_mediation, charged_back...: Mercado Pago holds or returned the money; a later read decides.
      if (p.status !== 'approved') continue;
      await t.store.insertRefundIntent(order.id, p.paymentId, key, now, 'surplus');
      await t.store.noteOrderEvent(order.id, order.state, 'surplus_payment', `payment ${p.paymentId} ${amount}: refunding`, now);
      this.log.warn(
        { orderId: order.id, paymentId: p.paymentId, amount: p.amount, currency: p.currency, state: order.state },
        `order ${order.id} (${order.state}) received surplus payment ${p.paymentId} of ${amount}: refunding it, the order stays ${order.state}`,
      );
      t.after.refundNeeded = true;
      n++;
    }
    return n;
  }

  // ---- POS offering -----------------------------------------------------------------------------

  /** What the POS url answers for this kiosk right now. */
  async offerFor(kiosk: Kiosk): Promise<Offer> {
    // Only an unattended kiosk's POS has a url; the other models never answer a poll.
    if (kiosk.paymentModel !== 'unattended') return { kind: 'none', reason: 'no_order' };
    const now = this.o.now();
    const pending = await this.store.pendingOrderOf(kiosk.id);
    if (pending && pending.deadline > now) {
      // Offer only what the kiosk can still dispense: an offline kiosk would take the money and
      // never drop the product.
      if (!this.o.isOnline(kiosk.id)) return { kind: 'none', reason: 'kiosk_offline' };
      return { kind: 'ready', order: pending };
    }
    // Right after a payment the paying customer's app may still poll: tell it there is nothing
    // left to pay. Kept short so the next customer's early scan sees "waiting" and keeps polling.
    const last = await this.store.latestOrderOf(kiosk.id);
    const justPaidMs = Math.min(JUST_PAID_WINDOW_MS, this.o.orders.maxPaymentSeconds * 1000);
    if (last?.paidAt && now - last.paidAt < justPaidMs) return { kind: 'none', reason: 'just_paid' };
    return { kind: 'none', reason: 'no_order' };
  }

  // ---- payments ---------------------------------------------------------------------------------

  /**
   * Applies a merchant order READ FROM THE MERCADO PAGO API (never a notification body). Releases
   * the order only when the MO is closed, ours, fully paid with approved payments in the order's
   * currency. Idempotent: a second call for a released order changes nothing.
   */
  applyMerchantOrder(mo: MpMerchantOrder, source: 'notification' | 'contingency'): Promise<MerchantOrderOutcome> {
    return this.applyPaymentState(fromMerchantOrder(mo), source);
  }

  /**
   * Applies what Mercado Pago says about one of our orders, READ FROM ITS API by a payment model
   * (a merchant order, or an Orders API order). The same rules for every model: released only
   * when complete, ours, fully paid with approved payments in the order's currency.
   */
  applyPaymentState(mo: PaymentState, source: 'notification' | 'contingency'): Promise<MerchantOrderOutcome> {
    const ref = mo.externalReference;
    const what = mo.kind === 'order' ? 'Mercado Pago order' : 'merchant order';
    return this.commit(async (t): Promise<MerchantOrderOutcome> => {
      const order = ref ? await t.store.getOrder(ref) : undefined;
      if (!order) {
        this.log.info({ mpId: mo.mpId, externalReference: ref }, `${what} ${mo.mpId} (external_reference ${JSON.stringify(ref)}) is not ours`);
        return 'not_ours';
      }
      if (mo.collectorId !== undefined && Number(mo.collectorId) !== this.o.collectorId) {
        this.log.warn({ mpId: mo.mpId, collector: mo.collectorId, orderId: order.id }, `${what} ${mo.mpId} for ${order.id} belongs to collector ${mo.collectorId}, not us: ignored`);
        return 'foreign_collector';
      }
      const now = this.o.now();
      if (source === 'notification') await t.store.patchOrder(order.id, { lastNotificationAt: now });

      // Remember every payment we saw with its status: the refund worker works from this table.
      let unparsable = false;
      const payments: Array<Omit<PaymentRecord, 'firstSeenAt' | 'updatedAt' | 'everApproved'>> = [];
      for (const p of mo.payments) {
        const cur = isCurrency(p.currency) ? p.currency : order.currency;
        let minor = 0;
        try {
          minor = parseAmount(p.amount, cur);
        } catch {
          unparsable = true;
        }
        const rec = { paymentId: p.id, orderId: order.id, merchantOrderId: mo.mpId, status: p.status, amount: minor, currency: p.currency };
        await t.store.upsertPayment(rec, now);
        payments.push(rec);
      }
      const approved = payments.filter((p) => p.status === 'approved');
      const inCurrency = approved.filter((p) => p.currency === order.currency);
      const paid = inCurrency.reduce((s, p) => s + p.amount, 0);
      const money = (m: number) => `${toDecimalString(m, order.currency)}`;

      switch (order.state) {
        case 'pending': {
          if (approved.length === 0) return 'waiting';
          if (inCurrency.length !== approved.length || unparsable) {
            this.log.warn({ orderId: order.id, merchantOrderId: mo.mpId }, `order ${order.id}: ${what} ${mo.mpId} has approved payments not in ${order.currency}: not released`);
            return 'currency_mismatch';
          }
          if (paid < order.amount) {
            this.log.warn({ orderId: order.id, merchantOrderId: mo.mpId, paid, amount: order.amount }, `order ${order.id} underpaid: ${money(paid)} of ${money(order.amount)} ${order.currency}`);
            return 'underpaid';
          }
          if (!mo.complete) {
            // MP closes the MO once the paid amount covers it; until then, wait for the next news.
            this.log.info({ orderId: order.id, mpId: mo.mpId, status: mo.status }, `order ${order.id}: ${what} ${mo.mpId} is ${mo.status}, waiting for it to complete`);
            return 'waiting';
          }
          // The payments that pay for the order: in the merchant order's own order, until the
          // amount is covered. Any further approved payment is surplus and given back below.
          const releasing: typeof inCurrency = [];
          let covered = 0;
          for (const p of inCurrency) {
            if (covered >= order.amount) break;
            releasing.push(p);
            covered += p.amount;
          }
          const ids = releasing.map((p) => p.paymentId);
          const moved = await this.move(t, order, 'payment_verified', `${what} ${mo.mpId}; payments ${ids.join(',')}`, {
            paidAt: now,
            merchantOrderId: mo.mpId,
            paymentIds: ids,
          });
          if (!moved) return 'already_done';
          const receiptUrl = this.o.receiptUrl?.(order.id);
          await this.send(t, order.kioskId, { type: 'order.paid', orderId: order.id, paymentId: ids[0]!, amount: order.amount, currency: order.currency, ...(receiptUrl ? { receiptUrl } : {}) });
          this.log.info({ orderId: order.id, merchantOrderId: mo.mpId, paymentIds: ids }, `order ${order.id} paid: ${money(covered)} ${order.currency} (${what} ${mo.mpId}); releasing to kiosk ${order.kioskId}`);
          if (covered > order.amount) {
            // Paid more than the total within the payments it needed: released (the customer
            // paid at least the price), the difference is a person's call, not an automatic refund.
            const why = `overpaid: payments ${ids.join(',')} paid ${money(covered)} ${order.currency} for ${money(order.amount)} ${order.currency}`;
            await t.store.flagReview(order.id, why);
            await t.store.noteOrderEvent(order.id, moved.state, 'overpaid', why, now);
            this.log.warn(
              { orderId: order.id, merchantOrderId: mo.mpId, paymentIds: ids, paid: covered, amount: order.amount, currency: order.currency },
              `order ${order.id} overpaid: ${money(covered)} of ${money(order.amount)} ${order.currency} (payments ${ids.join(',')}); released, flagged for review, the difference is not refunded automatically`,
            );
          }
          await this.refundSurplus(t, moved);
          return 'released';
        }
        case 'paid':
        case 'vended':
        case 'refunded':
        case 'rejected':
          if (await this.refundSurplus(t, order) > 0) return 'surplus_refund';
          if (order.state === 'rejected' && approved.length === 0) return 'closed_no_payment';
          return 'already_done';
        case 'refunding':
          // The order's own refund covers every approved payment it has, this one included.
          return 'already_done';
        case 'cancelled':
        case 'expired':
          if (approved.length === 0) return 'closed_no_payment';
          this.log.warn({ orderId: order.id, merchantOrderId: mo.mpId }, `order ${order.id} was ${order.state} when payment arrived: refunding, nothing dispensed`);
          return await this.move(t, order, 'late_payment', `${what} ${mo.mpId}; payments ${approved.map((p) => p.paymentId).join(',')}`)
            ? 'late_payment'
            : 'already_done';
      }
    });
  }
}


function describeAmount(p: Pick<PaymentRecord, 'amount' | 'currency'>): string {
  return isCurrency(p.currency) ? `${toDecimalString(p.amount, p.currency)} ${p.currency}` : `${p.amount} minor units of ${p.currency}`;
}
