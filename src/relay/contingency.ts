import type { Logger } from '../runtime/log.js';
import type { PaymentModel, PaymentModels, PaymentState } from './models/index.js';
import type { RelayConfig } from './config.js';
import type { RelayLimits } from './limits.js';
import type { OrderService } from './orders.js';
import type { Kiosk, OrderRecord, RelayStore } from './store/index.js';

// Notifications get lost (MP outage, our restart, a proxy hiccup). The contingency poller asks
// Mercado Pago directly about (a) pending orders that have had no news for a while and (b) orders
// recently cancelled/expired, where a payment may still land and must be refunded. Each kiosk's
// payment model knows how to search (relay/models); the answers go through the same
// OrderService.applyPaymentState path as notifications.
//
// It must scale with a backlog: 1,000 select/cancel presses once made it search 1,000 orders one
// call each, oldest first, and a real paid order behind them missed its deadline. So:
//  - open (pending) orders first, soonest deadline first: a customer is waiting on those;
//  - then the cancelled/expired ones, newest first, each backing off on its own (interval,
//    doubling up to limits.contingency.maxBackoffSeconds) since a late payment gets rarer;
//  - a few orders are looked up one call each (exact external_reference); more are covered by
//    ONE batched search of every record created in their time window (the model's
//    searchWindow: merchant orders, or the Orders API search), paged, matched here by
//    external_reference;
//  - every call goes through a paced Mercado Pago view (limits.contingency.callsPerSecond).

export interface ContingencyOptions {
  store: RelayStore;
  /** the payment models, built on a paced view of the API (limits.contingency.callsPerSecond) */
  models: PaymentModels;
  orders: OrderService;
  config: RelayConfig['orders'];
  limits: RelayLimits['contingency'];
  logger: Logger;
  now: () => number;
}

/** Up to this many orders (per model) are looked up one call each; more go into the batch. */
const SINGLE_LOOKUPS = 3;
/**
 * Mercado Pago's record of a payment (merchant order, Orders API order) is created while our
 * order is offered, so its creation date lies between our order's creation and its closing; this
 * margin covers the difference between our clock and Mercado Pago's.
 */
const CLOCK_MARGIN_MS = 5 * 60_000;

interface Backoff {
  tries: number;
  nextAt: number;
}

export class ContingencyPoller {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private closed = false;
  private readonly backoff = new Map<string, Backoff>();

  constructor(private readonly o: ContingencyOptions) {}

  start(): void {
    this.timer = setInterval(() => {
      void this.runOnce();
    }, this.o.config.contingencyIntervalSeconds * 1000);
    this.timer.unref();
  }

  /** One pass; concurrent calls share the pass in progress. Resolves to the orders looked up. */
  runOnce(): Promise<number> {
    if (!this.running) {
      this.running = this.pass()
        .catch((err: unknown) => {
          this.o.logger.error({ err }, `contingency pass failed: ${(err as Error).message}`);
          return 0;
        })
        .finally(() => {
          this.running = undefined;
        });
    }
    return this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    if (this.timer) clearInterval(this.timer);
    await this.running;
  }

  /** Orders due for a look now, in the order they are looked at. */
  async due(): Promise<{ open: OrderRecord[]; closed: OrderRecord[] }> {
    const now = this.o.now();
    const after = this.o.config.contingencyAfterSeconds * 1000;
    const candidates = await this.o.store.contingencyCandidates(now - after, now - after, now - this.o.config.latePaymentWatchMinutes * 60_000);
    const live = new Set(candidates.map((c) => c.id));
    for (const id of this.backoff.keys()) if (!live.has(id)) this.backoff.delete(id);
    const open = candidates.filter((c) => c.state === 'pending').sort((a, b) => a.deadline - b.deadline);
    const closed = candidates
      .filter((c) => c.state !== 'pending' && (this.backoff.get(c.id)?.nextAt ?? 0) <= now)
      .sort((a, b) => b.updatedAt - a.updatedAt);
    return { open, closed };
  }

  private async pass(): Promise<number> {
    const { open, closed } = await this.due();
    // Open orders first: a customer may be standing at the kiosk. Looked up every pass.
    let looked = await this.look(open);
    if (this.closed || closed.length === 0) return looked;
    looked += await this.look(closed);
    const now = this.o.now();
    const base = this.o.config.contingencyIntervalSeconds * 1000;
    for (const order of closed) {
      const b = this.backoff.get(order.id) ?? { tries: 0, nextAt: 0 };
      b.tries++;
      b.nextAt = now + Math.min(base * 2 ** b.tries, this.o.limits.maxBackoffSeconds * 1000);
      this.backoff.set(order.id, b);
    }
    return looked;
  }

  /** Looks `orders` up, grouped by their kiosk's payment model, keeping their order. */
  private async look(orders: OrderRecord[]): Promise<number> {
    const kiosks = new Map<string, Kiosk | undefined>();
    const groups = new Map<PaymentModel, { order: OrderRecord; kiosk: Kiosk }[]>();
    for (const order of orders) {
      if (!kiosks.has(order.kioskId)) kiosks.set(order.kioskId, await this.o.store.getKiosk(order.kioskId));
      const kiosk = kiosks.get(order.kioskId);
      if (!kiosk) continue;
      const model = this.o.models.of(kiosk);
      const g = groups.get(model) ?? [];
      g.push({ order, kiosk });
      groups.set(model, g);
    }
    let looked = 0;
    for (const [model, group] of groups) {
      if (this.closed) break;
      if (group.length <= SINGLE_LOOKUPS || !model.searchWindow) {
        for (const { order, kiosk } of group) {
          if (this.closed) break;
          if (await this.lookUp(model, order, kiosk)) looked++;
        }
      } else {
        looked += await this.batch(model, group.map((g) => g.order));
      }
    }
    return looked;
  }

  /** One order, one call: the model's search by the order's exact external_reference. */
  private async lookUp(model: PaymentModel, order: OrderRecord, kiosk: Kiosk): Promise<boolean> {
    try {
      const found = await model.search(order, kiosk);
      if (this.closed) return false;
      // Search matches by prefix in some MP versions: only the exact reference is ours.
      for (const state of found) if (state.externalReference === order.id) await this.apply(order, state);
      return true;
    } catch (err) {
      // One failing lookup must not starve the others; the next pass tries again.
      this.o.logger.warn({ err, orderId: order.id }, `contingency: could not search Mercado Pago for ${order.id}: ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * Many orders, few calls: every record created in the orders' time window, page by page (at
   * most maxPagesPerPass), matched to ours by external_reference. Returns how many of `orders`
   * the pages covered (all of them unless the window had more pages than allowed).
   */
  private async batch(model: PaymentModel, orders: OrderRecord[]): Promise<number> {
    const byId = new Map(orders.map((o) => [o.id, o]));
    const fromMs = Math.min(...orders.map((o) => o.createdAt)) - CLOCK_MARGIN_MS;
    const toMs = Math.max(...orders.map((o) => (o.state === 'pending' ? this.o.now() : o.updatedAt))) + CLOCK_MARGIN_MS;
    const limit = this.o.limits.pageSize;
    let offset = 0;
    for (let page = 0; page < this.o.limits.maxPagesPerPass; page++) {
      if (this.closed) return 0;
      let res;
      try {
        res = await model.searchWindow!({ fromMs, toMs, offset, limit });
      } catch (err) {
        this.o.logger.warn({ err, orders: orders.length, model: model.name }, `contingency: batched search (${model.name}) failed: ${(err as Error).message}`);
        return 0;
      }
      if (this.closed) return 0;
      for (const state of res.states) {
        const order = state.externalReference ? byId.get(state.externalReference) : undefined;
        if (order) await this.apply(order, state);
      }
      offset += res.size;
      if (res.size === 0 || offset >= res.total) return orders.length;
    }
    this.o.logger.warn(
      { orders: orders.length, pages: this.o.limits.maxPagesPerPass, from: new Date(fromMs).toISOString(), model: model.name },
      `contingency: more records in the window than ${this.o.limits.maxPagesPerPass} pages; the rest next pass (limits.contingency.maxPagesPerPass)`,
    );
    return 0;
  }

  private async apply(order: OrderRecord, state: PaymentState): Promise<void> {
    const outcome = await this.o.orders.applyPaymentState(state, 'contingency');
    if (outcome === 'released' || outcome === 'late_payment') {
      this.o.logger.warn({ orderId: order.id, mpId: state.mpId, outcome }, `contingency: order ${order.id} ${outcome} without a notification (${state.kind} ${state.mpId})`);
    }
  }
}
