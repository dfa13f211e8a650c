import { randomBytes } from 'node:crypto';
import { EventEmitter } from 'node:events';
import { IllegalTransition } from '../core/state-machine.js';
import type { VendEvent, VendState } from '../core/vend-session.js';
import { formatMoney, isCurrency } from '../core/money.js';
import { frame } from '../protocol/codec.js';
import type { AgentMessage, OrderCancel, VendResultKind, Welcome } from '../protocol/messages.js';
import type { Logger } from '../runtime/log.js';
import type { SelectionDetail } from '../devices/buttons.js';
import type { Dispenser, VendOutcome } from '../devices/dispenser.js';
import { checkMachinePrice } from '../devices/mdb/price.js';
import type { Display, Screen, ScreenName } from '../devices/display.js';
import { localeForCurrency, texts, type Texts } from '../devices/texts.js';
import type { AgentConfig } from './config.js';
import type { Journal, OrderRow, TransitionOptions } from './journal.js';
import type { LinkState, ReliableRelayMessage } from './relay-link.js';
import { qrProblem } from './qr-check.js';

// The vend flow: button -> order -> QR -> paid -> motor -> result. Every state change is a
// journal transition checked by the vend state machine; an illegal one is logged and refused,
// never "fixed up", because the wrong fix here is a motor pulse nobody paid for.

export type SelectRefusal = 'unknown_slot' | 'out_of_stock' | 'out_of_service' | 'busy' | 'price_unknown' | 'slot_jammed' | 'price_mismatch';

/** A machine that prices its own selection (MDB): checked against the catalog before the order. */
export type SelectOptions = Pick<SelectionDetail, 'machinePrice' | 'trustMachinePriceWithin'>;

export type SelectResult =
  | {
      ok: true;
      orderId: string;
      slot: number;
      sku: string;
      product: string;
      amount: number;
      currency: string;
      amountText: string;
      deadline: number;
    }
  | { ok: false; reason: SelectRefusal; message: string };

export type CancelReason = Extract<OrderCancel['reason'], 'customer' | 'technician'>;

export type CancelResult =
  | { ok: true; orderId: string }
  | { ok: false; reason: 'no_open_order' | 'already_paid'; message: string };

export interface StateChange {
  orderId: string;
  from: VendState | null;
  to: VendState;
  event: VendEvent | 'create';
  at: number;
}

/** What the session needs from the relay link (an interface so tests can fake it). */
export interface LinkView {
  readonly online: boolean;
  readonly welcome: Welcome | undefined;
  readonly state: LinkState;
  readonly lastWelcomeAt: number | undefined;
  flush(): void;
  /** a signed price/catalog command changed the prices in hand */
  adoptCatalog(catalog: Welcome['catalog']): void;
}

export interface SessionTimings {
  /** how long thank-you / failure / expired / rejected screens stay before idle */
  resultScreenMs: number;
  /** offline for less than this still shows the idle menu (a blip should not flash "out of service") */
  offlineGraceMs: number;
  /** countdown refresh */
  tickMs: number;
}

export const DEFAULT_TIMINGS: SessionTimings = { resultScreenMs: 4000, offlineGraceMs: 10_000, tickMs: 1000 };

export interface SessionDeps {
  config: AgentConfig;
  journal: Journal;
  link: LinkView;
  dispenser: Dispenser;
  display: Display;
  logger: Logger;
  timings?: Partial<SessionTimings>;
  now?: () => number;
}

export interface OrderView {
  orderId: string;
  state: VendState;
  slot: number;
  sku: string;
  product: string;
  amount: number;
  currency: string;
  amountText: string;
  deadline: number;
  secondsLeft: number;
  paymentId: string | null;
}

export interface StockView {
  slot: number;
  sku: string;
  count: number;
  product?: string;
  price?: number;
  currency?: string;
  amountText?: string;
  jammed: boolean;
}

/** `qrkiosk service on`: who switched it on and when. */
export interface ServiceMode {
  by: string;
  at: number;
  /** a technician at the kiosk, or an operator's signed command through the relay; absent = technician */
  via?: 'technician' | 'relay';
}

/** Orders a technician may settle by hand: nobody could see whether the product fell. */
const RESOLVABLE: readonly VendState[] = ['vend_unknown', 'vend_failed'];

export type ResolveResult =
  | { ok: true; orderId: string; resolution: 'dispensed' | 'refund'; by: string; at: number; state: VendState }
  | { ok: false; reason: 'unknown_order' | 'not_resolvable' | 'already_resolved'; message: string };

export interface SessionStatus {
  /** technician's service mode: no new sales; null when selling */
  service: ServiceMode | null;
  /** an update waits for (or holds) the vend lock: no new sales */
  updating: boolean;
  state: 'idle' | 'out_of_service' | VendState;
  screen: ScreenName | null;
  order: OrderView | null;
  stock: StockView[];
  outboxPending: number;
}

function newOrderId(): string {
  // 16 base64url chars: 96 random bits, matches the protocol's ord_<letters/digits/_-> rule
  return `ord_${randomBytes(12).toString('base64url')}`;
}

function money(amount: number, currency: string): string {
  return isCurrency(currency) ? formatMoney(amount, currency) : `${amount} ${currency}`;
}

/** at or below this many units the menu shows how many are left */
const LOW_STOCK = 3;

export class VendSession extends EventEmitter {
  private readonly textsByLocale = new Map<string, Texts>();
  /** the last QR that passed qrProblem, so a countdown tick does not decode it again */
  private lastGoodQr: string | undefined;
  private readonly log: Logger;
  private readonly timings: SessionTimings;
  private readonly now: () => number;
  /** the order the screen is about */
  private currentId: string | undefined;
  private deadlineTimer: NodeJS.Timeout | undefined;
  private tickTimer: NodeJS.Timeout | undefined;
  private resultTimer: NodeJS.Timeout | undefined;
  private graceTimer: NodeJS.Timeout | undefined;
  /** a result screen (thank you, expired...) is up until resultTimer fires */
  private showingResult = false;
  /** offline long enough to say so */
  private outOfService = false;
  private inflight = new Set<Promise<void>>();
  /** slots whose motor stalled: no more sales there until a technician restarts the agent */
  private readonly jammed = new Set<number>();
  private cachedWelcome: Welcome | undefined;
  private closed = false;
  /** updates waiting for or holding the vend lock (qrkiosk update) */
  private updateHolds = 0;

  constructor(private readonly deps: SessionDeps) {
    super();
    this.log = deps.logger.child({ part: 'session' });
    this.timings = { ...DEFAULT_TIMINGS, ...deps.timings };
    this.now = deps.now ?? Date.now;
    this.cachedWelcome = deps.journal.loadWelcome()?.welcome;
  }

  // ---- catalog ----------------------------------------------------------------------------------

  /** Prices for display: the live welcome, else the one cached in the journal. */
  private catalogWelcome(): Welcome | undefined {
    return this.deps.link.welcome ?? this.cachedWelcome;
  }

  private productName(sku: string): string {
    return this.catalogWelcome()?.catalog.find((p) => p.sku === sku)?.name ?? sku;
  }

  // ---- language ---------------------------------------------------------------------------------

  /**
   * The kiosk's language: the configured one, else the one of the site its prices are in
   * (ARS -> es-AR, BRL -> pt-BR, ...), so a Brazilian kiosk speaks Portuguese without setup.
   */
  locale(): string {
    const currency = this.catalogWelcome()?.catalog[0]?.currency;
    return this.deps.config.locale ?? (currency ? localeForCurrency(currency) : undefined) ?? 'es';
  }

  private get t(): Texts {
    const locale = this.locale();
    let t = this.textsByLocale.get(locale);
    if (!t) this.textsByLocale.set(locale, (t = texts(locale)));
    return t;
  }

  // ---- screens ----------------------------------------------------------------------------------

  private show(s: Screen): void {
    if (this.closed) return;
    const withLocale: Screen = { ...s, locale: this.locale() };
    this.deps.display.show(withLocale);
    this.emit('screen', withLocale);
  }

  private idleScreen(message?: string): Screen {
    const w = this.catalogWelcome();
    const stock = this.deps.journal.stock();
    const products = this.deps.config.slots.map((s) => {
      const p = w?.catalog.find((c) => c.sku === s.sku);
      const left = stock.get(s.slot) ?? 0;
      return {
        slot: s.slot,
        name: p?.name ?? s.sku,
        ...(p ? { amountText: money(p.price, p.currency) } : {}),
        available: left > 0 && !this.jammed.has(s.slot) && p !== undefined,
        // "only 2 left" nudges a customer; a full count is noise
        ...(left > 0 && left <= LOW_STOCK ? { stock: left } : {}),
      };
    });
    if (this.service() || this.updateHolds > 0) return { screen: 'out_of_service', reason: 'service', products };
    if (this.outOfService) return { screen: 'out_of_service', reason: 'offline', products };
    // nothing can be sold: say so instead of a menu where every button is refused
    const screen: ScreenName = products.every((p) => !p.available) && this.catalogWelcome() ? 'out_of_stock' : 'idle';
    const msg = message ?? (this.deps.link.online ? undefined : this.t.connecting);
    return { screen, products, ...(msg ? { message: msg } : {}) };
  }

  /** Shows idle/out-of-service unless a customer's order or result screen is up. */
  refresh(): void {
    if (this.currentId || this.showingResult) return;
    this.show(this.idleScreen());
  }

  private showPay(order: OrderRow): void {
    const s = this.payScreen(order);
    if ('problem' in s) return this.refuseQr(order, s.problem);
    this.show(s);
  }

  /** The pay screen of an order, or why its QR must not be shown. */
  private payScreen(order: Pick<OrderRow, 'id' | 'sku' | 'amount' | 'currency' | 'deadline' | 'qr' | 'relayAmount'>): Screen | { problem: string } {
    const w = this.catalogWelcome();
    // Where the order is payable only once the relay accepted it, no QR is shown before: the
    // customer would scan a QR with nothing to pay on it. Until then the screen says "preparing".
    const accepted = order.relayAmount !== null;
    const qr = order.qr ?? (w?.qrOnAccept && !accepted ? undefined : w?.posQr || undefined);
    if (qr) {
      if (qr !== this.lastGoodQr) {
        const problem = qrProblem(qr, order);
        if (problem !== undefined) return { problem };
        this.lastGoodQr = qr;
      }
    }
    const secondsLeft = Math.max(0, Math.ceil((order.deadline - this.now()) / 1000));
    return {
      screen: 'pay',
      orderId: order.id,
      product: this.productName(order.sku),
      amountText: money(order.amount, order.currency),
      secondsLeft,
      ...(qr ? { qr } : { message: this.t.preparingQr }),
    };
  }

  /**
   * The QR for this order would not charge it correctly: the order is cancelled (the relay
   * withdraws it) and the screen says why, instead of a QR that takes the wrong money.
   */
  private refuseQr(order: OrderRow, problem: string): void {
    this.log.error({ orderId: order.id, problem }, `not showing the payment QR: ${problem}`);
    const r = this.step(order.id, 'cancel', { detail: `QR refused: ${problem}`, outbox: [this.cancelFrame(order.id, 'fault')] });
    if (!r) return;
    this.endPayment(order.id);
    this.deps.link.flush();
    this.showingResult = true;
    if (this.resultTimer) clearTimeout(this.resultTimer);
    this.show({ screen: 'out_of_service', reason: 'fault', orderId: order.id, message: problem });
    this.resultTimer = setTimeout(() => {
      this.resultTimer = undefined;
      this.showingResult = false;
      this.refresh();
    }, this.timings.resultScreenMs);
  }

  /** A result screen, then back to idle. */
  private showResult(screen: ScreenName, orderId: string | undefined, message?: string): void {
    this.showingResult = true;
    if (this.resultTimer) clearTimeout(this.resultTimer);
    this.show({ screen, ...(orderId ? { orderId } : {}), ...(message ? { message } : {}) });
    this.resultTimer = setTimeout(() => {
      this.resultTimer = undefined;
      this.showingResult = false;
      this.refresh();
    }, this.timings.resultScreenMs);
  }

  /** The idle menu with a message for a few seconds ("sold out", "cancelled"). */
  private flashIdle(message: string): void {
    this.clearResult();
    this.showingResult = true;
    this.show(this.idleScreen(message));
    this.resultTimer = setTimeout(() => {
      this.resultTimer = undefined;
      this.showingResult = false;
      this.refresh();
    }, this.timings.resultScreenMs);
  }

  private clearResult(): void {
    if (this.resultTimer) clearTimeout(this.resultTimer);
    this.resultTimer = undefined;
    this.showingResult = false;
  }

  // ---- link state -------------------------------------------------------------------------------

  onWelcome(w: Welcome): void {
    this.cachedWelcome = w;
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
    this.outOfService = false;
    this.refresh();
    // a dynamic QR might have arrived with the new catalog
    const cur = this.currentId ? this.deps.journal.getOrder(this.currentId) : undefined;
    if (cur?.state === 'awaiting_payment') this.showPay(cur);
  }

  /** The link is not (or no longer) welcomed: after a grace period the screen says so. */
  onOffline(): void {
    if (this.graceTimer || this.outOfService || this.closed) return;
    this.refresh();
    this.graceTimer = setTimeout(() => {
      this.graceTimer = undefined;
      if (this.deps.link.online) return;
      this.outOfService = true;
      this.log.warn('relay unreachable: showing out of service');
      this.refresh();
    }, this.timings.offlineGraceMs);
  }

  // ---- journal steps ----------------------------------------------------------------------------

  /**
   * One checked, journaled step. Announces it (event, outbox flush) only after the commit. An
   * IllegalTransition is logged and refused: returns undefined, nothing changed.
   */
  private step(orderId: string, event: VendEvent, opts: TransitionOptions = {}): OrderRow | undefined {
    const journal = this.deps.journal;
    try {
      const r = journal.transition(orderId, event, opts);
      const change: StateChange = { orderId, from: r.from, to: r.to, event, at: this.now() };
      this.log.info({ orderId, from: r.from, to: r.to, event, detail: opts.detail }, `order ${r.to}`);
      journal.afterCommit(() => {
        this.emit('state', change);
        if (opts.outbox?.length) this.deps.link.flush();
      });
      return r.order;
    } catch (err) {
      if (err instanceof IllegalTransition) {
        this.log.error({ orderId, from: err.from, event: err.event }, `refused illegal vend transition: ${err.message}`);
        return undefined;
      }
      throw err;
    }
  }

  private vendResult(orderId: string, result: VendResultKind, pulses: number, detail?: string): AgentMessage {
    return frame({
      type: 'vend.result' as const,
      orderId,
      result,
      pulses,
      ...(detail ? { detail: detail.slice(0, 500) } : {}),
    });
  }

  private cancelFrame(orderId: string, reason: OrderCancel['reason']): AgentMessage {
    return frame({ type: 'order.cancel' as const, orderId, reason });
  }

  private openOrder(): OrderRow | undefined {
    return this.deps.journal.openOrders().at(-1);
  }

  // ---- customer actions -------------------------------------------------------------------------

  select(slot: number, opts: SelectOptions = {}): SelectResult {
    const refuse = (reason: SelectRefusal, detail?: string): SelectResult => {
      const message = this.t.refused[reason];
      this.log.info({ slot, reason, detail }, 'selection refused');
      // the customer pressed a button: tell them why nothing happens, unless a vend is on screen
      if (!this.currentId) this.flashIdle(message);
      return { ok: false, reason, message: detail ? `${message} (${detail})` : message };
    };
    if (this.closed) return refuse('out_of_service', 'agent is shutting down');
    const service = this.service();
    if (service) return refuse('out_of_service', `service mode, switched on by ${service.by} (qrkiosk service off)`);
    if (this.updateHolds > 0) return refuse('out_of_service', 'an update is being installed');
    const cfg = this.deps.config.slots.find((s) => s.slot === slot);
    if (!cfg) return refuse('unknown_slot', `slot ${slot} is not in the config`);
    const open = this.openOrder();
    if (open) return refuse('busy', `order ${open.id} is ${open.state}`);
    if ((this.deps.journal.stock().get(slot) ?? 0) <= 0) return refuse('out_of_stock', `slot ${slot} is empty`);
    if (this.jammed.has(slot)) return refuse('slot_jammed', `slot ${slot} jammed; restart the agent after clearing it`);
    const w = this.deps.link.online ? this.deps.link.welcome : undefined;
    if (!w) return refuse('out_of_service', `relay link is ${this.deps.link.state}`);
    const product = w.catalog.find((p) => p.sku === cfg.sku);
    if (!product) return refuse('price_unknown', `sku ${cfg.sku} is not in the relay catalog`);
    if (opts.machinePrice !== undefined) {
      // the customer pays the catalog price; the machine's own price must agree with it
      const pc = checkMachinePrice(opts.machinePrice, opts.trustMachinePriceWithin, product);
      if (!pc.ok) return refuse('price_mismatch', pc.detail);
      if (pc.difference !== 0) {
        this.log.warn({ slot, machine: pc.machine, catalog: product.price }, 'machine price differs from the catalog within the trusted bound: selling at the catalog price');
      }
    }

    const now = this.now();
    // never promise the customer longer than the relay keeps the order payable
    const seconds = Math.min(this.deps.config.payment.deadlineSeconds, w.maxPaymentSeconds);
    const deadline = now + Math.round(seconds * 1000);
    const orderId = newOrderId();
    const ready = frame({
      type: 'order.ready' as const,
      orderId,
      slot,
      sku: cfg.sku,
      quantity: 1,
      amount: product.price,
      currency: product.currency,
      deadline,
    });
    const draft = { id: orderId, slot, sku: cfg.sku, amount: product.price, currency: product.currency, deadline };
    // The pay screen is drawn and written before the commit, so the QR is on the panel without
    // waiting for the journal's fsync. Safe: nobody can pay before order.ready reaches the relay,
    // which is sent after the commit; a crash in between leaves a QR with nothing to pay on it
    // until the restart redraws the screen. A QR the order check refuses waits for the commit
    // (showPay cancels the order then).
    const early = this.closed || !this.deps.display.showNow ? undefined : this.payScreen({ ...draft, qr: null, relayAmount: null });
    if (early && !('problem' in early)) this.deps.display.showNow!({ ...early, locale: this.locale() });
    let order: OrderRow;
    try {
      order = this.deps.journal.createOrder(draft, [ready]);
    } catch (err) {
      // not sold: the screen must not keep a QR for an order that does not exist
      if (early) {
        this.clearResult();
        this.refresh();
      }
      throw err;
    }
    this.log.info({ orderId, slot, sku: cfg.sku, amount: product.price, currency: product.currency }, 'order awaiting payment');
    this.emit('state', { orderId, from: null, to: 'awaiting_payment', event: 'create', at: now } satisfies StateChange);
    this.deps.link.flush();
    this.clearResult();
    this.currentId = orderId;
    this.startPayTimers(order);
    return {
      ok: true,
      orderId,
      slot,
      sku: cfg.sku,
      product: product.name,
      amount: product.price,
      currency: product.currency,
      amountText: money(product.price, product.currency),
      deadline,
    };
  }

  cancel(reason: CancelReason = 'customer'): CancelResult {
    const open = this.openOrder();
    if (!open) return { ok: false, reason: 'no_open_order', message: 'there is no open order to cancel' };
    if (open.state !== 'awaiting_payment') {
      return { ok: false, reason: 'already_paid', message: `order ${open.id} is ${open.state}: it was paid, it cannot be cancelled` };
    }
    const r = this.step(open.id, 'cancel', { detail: `cancelled: ${reason}`, outbox: [this.cancelFrame(open.id, reason)] });
    if (!r) return { ok: false, reason: 'already_paid', message: `order ${open.id} could not be cancelled in state ${open.state}` };
    this.endPayment(open.id);
    this.flashIdle(this.t.cancelled);
    return { ok: true, orderId: open.id };
  }

  // ---- pay screen timers ------------------------------------------------------------------------

  private startPayTimers(order: OrderRow): void {
    this.stopPayTimers();
    this.showPay(order);
    this.deadlineTimer = setTimeout(() => this.onDeadline(order.id), Math.max(0, order.deadline - this.now()));
    this.tickTimer = setInterval(() => {
      const cur = this.deps.journal.getOrder(order.id);
      if (cur?.state === 'awaiting_payment' && this.currentId === order.id) this.showPay(cur);
    }, this.timings.tickMs);
  }

  private stopPayTimers(): void {
    if (this.deadlineTimer) clearTimeout(this.deadlineTimer);
    if (this.tickTimer) clearInterval(this.tickTimer);
    this.deadlineTimer = undefined;
    this.tickTimer = undefined;
  }

  /** The order on screen is no longer awaiting payment. */
  private endPayment(orderId: string): void {
    if (this.currentId === orderId) {
      this.stopPayTimers();
      this.currentId = undefined;
    }
  }

  private onDeadline(orderId: string): void {
    this.deadlineTimer = undefined;
    const order = this.deps.journal.getOrder(orderId);
    if (order?.state !== 'awaiting_payment') return;
    const r = this.step(orderId, 'expire', {
      detail: 'payment deadline passed',
      outbox: [this.cancelFrame(orderId, 'timeout')],
    });
    if (!r) return;
    this.endPayment(orderId);
    this.showResult('expired', orderId);
  }

  // ---- relay frames -----------------------------------------------------------------------------

  /**
   * Applies a reliable relay frame. Called inside the journal transaction that records it in the
   * inbox; returns work for after the commit, run before the ack (the motor: its synced `dispensing`
   * commit flushes the deferred `paid` one).
   */
  apply(msg: ReliableRelayMessage): (() => void) | void {
    const journal = this.deps.journal;
    const order = journal.getOrder(msg.orderId);
    switch (msg.type) {
      case 'order.accepted': {
        if (!order) return void this.log.warn({ orderId: msg.orderId }, 'order.accepted for an order this kiosk does not know');
        if (msg.amount !== order.amount || msg.currency !== order.currency) {
          this.log.warn({ orderId: order.id, ours: order.amount, relay: msg.amount }, 'relay accepted the order at a different amount');
        }
        const updated = journal.note(order.id, `accepted by relay: ${msg.amount} ${msg.currency}${msg.qr ? ', per-order QR' : ''}`, {
          patch: { relayAmount: msg.amount, ...(msg.qr ? { qr: msg.qr } : {}) },
        });
        // the order is payable now: its QR (or the POS sticker) replaces "preparing"
        if (updated.state === 'awaiting_payment' && this.currentId === order.id) {
          journal.afterCommit(() => this.showPay(updated));
        }
        return;
      }
      case 'order.rejected': {
        if (!order) return void this.log.warn({ orderId: msg.orderId }, 'order.rejected for an order this kiosk does not know');
        if (order.state !== 'awaiting_payment') {
          journal.note(order.id, `relay rejected (${msg.reason}) in state ${order.state}: ${msg.message}`);
          return;
        }
        const r = this.step(order.id, 'reject', { detail: `${msg.reason}: ${msg.message}`, patch: { result: 'rejected' } });
        if (r) {
          journal.afterCommit(() => {
            this.endPayment(order.id);
            this.showResult('rejected', order.id, msg.message);
          });
        }
        return;
      }
      case 'order.expired': {
        if (!order) return void this.log.warn({ orderId: msg.orderId }, 'order.expired for an order this kiosk does not know');
        if (order.state !== 'awaiting_payment') {
          journal.note(order.id, `relay expired the order in state ${order.state}`);
          return;
        }
        const r = this.step(order.id, 'expire', { detail: 'relay expired the order' });
        if (r) {
          journal.afterCommit(() => {
            this.endPayment(order.id);
            this.showResult('expired', order.id);
          });
        }
        return;
      }
      case 'order.refunded': {
        if (!order) return void this.log.warn({ orderId: msg.orderId }, 'order.refunded for an order this kiosk does not know');
        journal.note(order.id, `refunded by relay: ${msg.refundId} ${msg.amount} ${msg.currency}`);
        return;
      }
      case 'order.paid':
        return this.onPaid(msg, order);
    }
  }

  private onPaid(msg: Extract<ReliableRelayMessage, { type: 'order.paid' }>, order: OrderRow | undefined): (() => void) | void {
    const journal = this.deps.journal;
    if (!order) {
      // The relay took money for an order we never made (or lost with a wiped journal): only a
      // refund is safe. No order row to attach a step to, so the outbox carries the record.
      this.log.warn({ orderId: msg.orderId, paymentId: msg.paymentId }, 'order.paid for an unknown order: not dispensing');
      journal.enqueue(this.vendResult(msg.orderId, 'not_dispensed', 0, 'unknown order at this kiosk'));
      journal.afterCommit(() => this.deps.link.flush());
      return;
    }
    switch (order.state) {
      case 'awaiting_payment': {
        const now = this.now();
        let refuse: string | undefined;
        if (now > order.deadline) refuse = `paid ${Math.round((now - order.deadline) / 1000)} s after the deadline`;
        else if (msg.currency !== order.currency || msg.amount < order.amount) {
          refuse = `paid ${msg.amount} ${msg.currency}, price is ${order.amount} ${order.currency}`;
        }
        const paid = this.step(order.id, 'paid', { detail: `payment ${msg.paymentId}`, patch: { paymentId: msg.paymentId, ...(msg.receiptUrl ? { receiptUrl: msg.receiptUrl } : {}) } });
        if (!paid) return;
        journal.afterCommit(() => this.endPayment(order.id));
        if (refuse) {
          this.log.warn({ orderId: order.id, reason: refuse }, 'paid but not dispensing');
          this.step(order.id, 'give_up', {
            detail: refuse,
            patch: { result: 'not_dispensed' },
            outbox: [this.vendResult(order.id, 'not_dispensed', 0, refuse)],
          });
          journal.afterCommit(() => this.showResult('vend_failed', order.id));
          return;
        }
        return () => this.startDispense(order.id);
      }
      case 'cancelled':
      case 'rejected': {
        // Paid after we stopped selling: no product, the relay must refund. The state stays as
        // it is (both are terminal); the step records the late payment.
        this.log.warn({ orderId: order.id, state: order.state, paymentId: msg.paymentId }, 'payment for a closed order: not dispensing');
        journal.note(order.id, `payment ${msg.paymentId} arrived after ${order.state}: not dispensed`, {
          patch: { paymentId: msg.paymentId, result: 'not_dispensed' },
          outbox: [this.vendResult(order.id, 'not_dispensed', 0, `order was ${order.state} before payment`)],
        });
        journal.afterCommit(() => this.deps.link.flush());
        return;
      }
      default: {
        // Already past paid: a re-delivery with a new frame id. One payment, one product.
        if (order.paymentId && order.paymentId !== msg.paymentId) {
          this.log.error(
            { orderId: order.id, first: order.paymentId, second: msg.paymentId },
            'a second payment for an order already paid: not dispensing again (relay must refund it)',
          );
          journal.note(order.id, `second payment ${msg.paymentId} ignored (already paid by ${order.paymentId})`);
        } else {
          this.log.info({ orderId: order.id, state: order.state }, 'duplicate order.paid ignored');
        }
        return;
      }
    }
  }

  // ---- dispensing -------------------------------------------------------------------------------

  private startDispense(orderId: string): void {
    const p = this.dispense(orderId).catch((err: unknown) => {
      this.log.error({ err, orderId }, 'dispense failed unexpectedly');
    });
    this.inflight.add(p);
    void p.finally(() => this.inflight.delete(p));
  }

  private async dispense(orderId: string): Promise<void> {
    const order = this.deps.journal.getOrder(orderId);
    if (order?.state !== 'paid') return;
    if (this.closed) return; // recovery on the next start will decide
    // Committed with synchronous=FULL before the motor moves: if we die from here on, the next
    // start finds `dispensing` and never pulses this order again.
    const started = this.step(orderId, 'start_dispense', { detail: `slot ${order.slot}` });
    if (!started) return;
    this.currentId = orderId;
    this.clearResult();
    this.show({ screen: 'dispensing', orderId, product: this.productName(order.sku) });
    let outcome: VendOutcome;
    try {
      outcome = await this.deps.dispenser.vend(order.slot, { orderId, amount: order.amount, currency: order.currency });
    } catch (err) {
      this.deps.dispenser.safe();
      outcome = { result: 'vend_failed', pulses: 0, detail: `dispenser error: ${(err as Error).message}` };
    }
    const event: VendEvent = outcome.result === 'dispensed' ? 'drop_seen' : outcome.result === 'jammed' ? 'jammed' : 'no_drop';
    const done = this.step(orderId, event, {
      detail: outcome.detail ?? `${outcome.result} after ${outcome.pulses} pulse(s)`,
      patch: { result: outcome.result, pulses: outcome.pulses },
      outbox: [this.vendResult(orderId, outcome.result, outcome.pulses, outcome.detail)],
      ...(outcome.result === 'dispensed' ? { stockDelta: { slot: order.slot, delta: -1 } } : {}),
    });
    if (outcome.result === 'jammed') {
      this.jammed.add(order.slot);
      this.log.error({ slot: order.slot }, 'slot jammed: no more sales from it until the agent restarts');
    }
    if (this.currentId === orderId) this.currentId = undefined;
    if (!done) return;
    this.showResult(outcome.result === 'dispensed' ? 'thank_you' : 'vend_failed', orderId);
  }

  // ---- recovery ---------------------------------------------------------------------------------

  /**
   * Settles what a previous run left open, before the relay link starts: the journal, not the
   * relay, knows whether the motor might have moved.
   */
  recover(): void {
    const now = this.now();
    const toDispense: string[] = [];
    for (const o of this.deps.journal.openOrders()) {
      switch (o.state) {
        case 'dispensing':
          this.log.warn({ orderId: o.id, slot: o.slot }, 'found an order dispensing at start: the product may have dropped; reporting vend_unknown');
          this.step(o.id, 'crash_recovered', {
            detail: 'agent restarted while dispensing: not pulsing again',
            patch: { result: 'vend_unknown' },
            outbox: [this.vendResult(o.id, 'vend_unknown', o.pulses ?? 0, 'agent restarted while dispensing; not pulsed again')],
          });
          break;
        case 'paid':
          if (now <= o.deadline) {
            this.log.warn({ orderId: o.id }, 'found a paid order at start: dispensing it now');
            toDispense.push(o.id);
          } else {
            const why = 'agent restarted after the deadline of a paid order';
            this.step(o.id, 'give_up', {
              detail: why,
              patch: { result: 'not_dispensed' },
              outbox: [this.vendResult(o.id, 'not_dispensed', 0, why)],
            });
          }
          break;
        case 'awaiting_payment':
          if (now < o.deadline && !this.currentId && toDispense.length === 0) {
            this.log.info({ orderId: o.id }, 'resuming the pay screen of an open order');
            this.currentId = o.id;
            this.startPayTimers(o);
          } else {
            this.step(o.id, 'expire', {
              detail: 'agent restarted after the payment deadline',
              outbox: [this.cancelFrame(o.id, 'timeout')],
            });
          }
          break;
        default:
          break;
      }
    }
    if (!this.currentId) this.refresh();
    for (const id of toDispense.slice(0, 1)) this.startDispense(id);
    // more than one paid order can only come from a bug; never run two motors for them
    for (const id of toDispense.slice(1)) {
      this.step(id, 'give_up', {
        detail: 'another paid order was dispensed first',
        patch: { result: 'not_dispensed' },
        outbox: [this.vendResult(id, 'not_dispensed', 0, 'several paid orders open at start')],
      });
    }
  }

  // ---- technician: service mode, update lock, settling a vend by hand --------------------------

  /** Service mode as recorded in the journal (it survives a restart: the technician is still there). */
  service(): ServiceMode | null {
    const v = this.deps.journal.getSetting('service');
    if (!v) return null;
    try {
      return JSON.parse(v) as ServiceMode;
    } catch {
      return { by: 'unknown', at: 0 };
    }
  }

  /**
   * On: no new selections (an open vend finishes), the out-of-service screen. Off: selling again.
   * May run inside a journal transaction (a relay command): the screen changes after the commit.
   */
  setService(on: boolean, by: string, via: 'technician' | 'relay' = 'technician'): { service: ServiceMode | null; openOrder: string | null } {
    const mode: ServiceMode | null = on ? { by, at: this.now(), via } : null;
    this.deps.journal.setSetting('service', mode ? JSON.stringify(mode) : undefined);
    this.log.warn({ by, on, via }, on ? `service mode on (${by}): no new sales` : `service mode off (${by}): selling again`);
    this.deps.journal.afterCommit(() => this.refresh());
    return { service: mode, openOrder: this.openOrder()?.id ?? null };
  }

  /** The price list the kiosk sells at now (the relay's welcome, changed by any price command since). */
  catalog(): Welcome['catalog'] | undefined {
    return this.catalogWelcome()?.catalog;
  }

  /**
   * A signed price or catalog command: the next order is priced from `catalog`. Written to the
   * cached welcome in the caller's transaction; the screen shows the new prices after the commit.
   */
  applyCatalog(catalog: Welcome['catalog']): void {
    this.deps.journal.replaceWelcomeCatalog(catalog);
    this.deps.journal.afterCommit(() => {
      this.deps.link.adoptCatalog(catalog);
      if (this.cachedWelcome) this.cachedWelcome = { ...this.cachedWelcome, catalog };
      this.refresh();
    });
  }

  /** The order a customer has open now (a test vend must wait for it). */
  openOrderId(): string | null {
    return this.openOrder()?.id ?? null;
  }

  /**
   * The update lock: an update may restart the agent only while no vend is open. Asking for it
   * stops new selections at once (so a busy kiosk cannot starve the update), then waits for the
   * open vend to end, motor work included. The returned function gives the lock back.
   */
  async holdForUpdate(onWait?: (order: { orderId: string; state: VendState }) => void): Promise<() => void> {
    this.updateHolds++;
    let released = false;
    const release = () => {
      if (released) return;
      released = true;
      this.updateHolds--;
      this.refresh();
    };
    this.refresh();
    try {
      for (let open = this.openOrder(); open; open = this.openOrder()) {
        onWait?.({ orderId: open.id, state: open.state });
        await new Promise<void>((resolve) => this.once('state', () => resolve()));
      }
      await this.settle();
    } catch (err) {
      release();
      throw err;
    }
    return release;
  }

  /** `qrkiosk resolve`: a technician checked a vend by hand; recorded, and told to the relay once. */
  resolve(orderId: string, resolution: 'dispensed' | 'refund', by: string): ResolveResult {
    const o = this.deps.journal.getOrder(orderId);
    if (!o) return { ok: false, reason: 'unknown_order', message: `order ${orderId} is not in this kiosk's journal (qrkiosk journal lists them)` };
    if (!RESOLVABLE.includes(o.state)) {
      return { ok: false, reason: 'not_resolvable', message: `order ${orderId} is ${o.state}: only ${RESOLVABLE.join(' or ')} orders are settled by hand` };
    }
    if (o.resolution !== null) {
      return { ok: false, reason: 'already_resolved', message: `order ${orderId} was already resolved as ${o.resolution} by ${o.resolvedBy}` };
    }
    const at = this.now();
    const f = frame({ type: 'vend.resolve' as const, orderId, resolution, by, at });
    const r = this.deps.journal.resolve(orderId, { resolution, by, at }, f);
    this.log.warn({ orderId, resolution, by }, `order ${orderId} resolved by ${by}: ${resolution}`);
    this.deps.journal.afterCommit(() => this.deps.link.flush());
    this.refresh();
    return { ok: true, orderId, resolution, by, at, state: r.state };
  }

  // ---- status -----------------------------------------------------------------------------------

  openOrdersForHello(): Array<{ orderId: string; state: string }> {
    return this.deps.journal.openOrders().map((o) => ({ orderId: o.id, state: o.state }));
  }

  status(): SessionStatus {
    const open = this.openOrder();
    const now = this.now();
    const w = this.catalogWelcome();
    const stock = this.deps.journal.stock();
    const service = this.service();
    return {
      service,
      updating: this.updateHolds > 0,
      state: open ? open.state : this.outOfService || service || this.updateHolds > 0 ? 'out_of_service' : 'idle',
      screen: this.deps.display.last()?.screen ?? null,
      order: open
        ? {
            orderId: open.id,
            state: open.state,
            slot: open.slot,
            sku: open.sku,
            product: this.productName(open.sku),
            amount: open.amount,
            currency: open.currency,
            amountText: money(open.amount, open.currency),
            deadline: open.deadline,
            secondsLeft: Math.max(0, Math.ceil((open.deadline - now) / 1000)),
            paymentId: open.paymentId,
          }
        : null,
      stock: this.deps.config.slots.map((s) => {
        const p = w?.catalog.find((c) => c.sku === s.sku);
        return {
          slot: s.slot,
          sku: s.sku,
          count: stock.get(s.slot) ?? 0,
          jammed: this.jammed.has(s.slot),
          ...(p ? { product: p.name, price: p.price, currency: p.currency, amountText: money(p.price, p.currency) } : {}),
        };
      }),
      outboxPending: this.deps.journal.outbox().length,
    };
  }

  /** Waits for a vend in progress (graceful shutdown must not cut a motor mid-pulse). */
  async settle(): Promise<void> {
    while (this.inflight.size > 0) await Promise.all([...this.inflight]);
  }

  async close(): Promise<void> {
    // finish a vend in progress first: stopping mid-pulse is how a spiral ends half-turned
    await this.settle();
    this.closed = true;
    this.stopPayTimers();
    this.clearResult();
    if (this.graceTimer) clearTimeout(this.graceTimer);
    this.graceTimer = undefined;
  }
}
