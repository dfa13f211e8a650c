import type { MercadoPagoApi, MpMerchantOrder } from '../mercadopago/types.js';
import type { Logger } from '../runtime/log.js';
import type { RelayConfig } from './config.js';
import type { RelayLimits } from './limits.js';
import type { OrderService } from './orders.js';
import type { OrderRecord, RelayStore } from './store.js';

// Notifications get lost (MP outage, our restart, a proxy hiccup). The contingency poller asks
// Mercado Pago directly about (a) pending orders that have had no news for a while and (b) orders
// recently cancelled/expired, where a payment may still land and must be refunded. The answers go
// through the same OrderService.applyMerchantOrder path as notifications.
//
// It must scale with a backlog: 1,000 select/cancel presses once made it search 1,000 orders one
// call each, oldest first, and a real paid order behind them missed its deadline. So:
//  - open (pending) orders first, soonest deadline first: a customer is waiting on those;
//  - then the cancelled/expired ones, newest first, each backing off on its own (interval,
//    doubling up to limits.contingency.maxBackoffSeconds) since a late payment gets rarer;
//  - a few orders are looked up one call each (exact external_reference); more are covered by
//    ONE batched search of every merchant order created in their time window, paged, and
//    matched here by external_reference;
//  - every call goes through a paced Mercado Pago view (limits.contingency.callsPerSecond).

export interface ContingencyOptions {
  store: RelayStore;
  mp: MercadoPagoApi;
  orders: OrderService;
  config: RelayConfig['orders'];
  limits: RelayLimits['contingency'];
  logger: Logger;
  now: () => number;
}

/** Up to this many orders are looked up one call each; more go into the batched search. */
const SINGLE_LOOKUPS = 3;
/**
 * Merchant orders are created while our order is offered (the customer scans, MP asks the POS
 * url), so their date_created lies between our order's creation and its closing; this margin
 * covers the difference between our clock and Mercado Pago's.
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
  due(): { open: OrderRecord[]; closed: OrderRecord[] } {
    const now = this.o.now();
    const after = this.o.config.contingencyAfterSeconds * 1000;
    const candidates = this.o.store.contingencyCandidates(now - after, now - after, now - this.o.config.latePaymentWatchMinutes * 60_000);
    const live = new Set(candidates.map((c) => c.id));
    for (const id of this.backoff.keys()) if (!live.has(id)) this.backoff.delete(id);
    const open = candidates.filter((c) => c.state === 'pending').sort((a, b) => a.deadline - b.deadline);
    const closed = candidates
      .filter((c) => c.state !== 'pending' && (this.backoff.get(c.id)?.nextAt ?? 0) <= now)
      .sort((a, b) => b.updatedAt - a.updatedAt);
    return { open, closed };
  }

  private async pass(): Promise<number> {
    const { open, closed } = this.due();
    let looked = 0;
    // Open orders: a customer may be standing at the kiosk. Looked up every pass.
    if (open.length <= SINGLE_LOOKUPS) {
      for (const order of open) {
        if (this.closed) return looked;
        if (await this.lookUp(order)) looked++;
      }
    } else {
      looked += await this.batch(open);
    }
    if (this.closed || closed.length === 0) return looked;
    const n = closed.length <= SINGLE_LOOKUPS ? await this.lookUpEach(closed) : await this.batch(closed);
    looked += n;
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

  private async lookUpEach(orders: OrderRecord[]): Promise<number> {
    let looked = 0;
    for (const order of orders) {
      if (this.closed) break;
      if (await this.lookUp(order)) looked++;
    }
    return looked;
  }

  /** One order, one call: the search by its exact external_reference. */
  private async lookUp(order: OrderRecord): Promise<boolean> {
    try {
      const page = await this.o.mp.searchMerchantOrders({ external_reference: order.id });
      if (this.closed) return false;
      // Search matches by prefix in some MP versions: only the exact reference is ours.
      for (const mo of page.elements ?? []) if (mo.external_reference === order.id) this.apply(order, mo);
      return true;
    } catch (err) {
      // One failing lookup must not starve the others; the next pass tries again.
      this.o.logger.warn({ err, orderId: order.id }, `contingency: could not search merchant orders for ${order.id}: ${(err as Error).message}`);
      return false;
    }
  }

  /**
   * Many orders, few calls: every merchant order created in the orders' time window, page by
   * page (at most maxPagesPerPass), matched to ours by external_reference. Returns how many of
   * `orders` the pages covered (all of them unless the window had more pages than allowed).
   */
  private async batch(orders: OrderRecord[]): Promise<number> {
    const byId = new Map(orders.map((o) => [o.id, o]));
    const from = Math.min(...orders.map((o) => o.createdAt)) - CLOCK_MARGIN_MS;
    const to = Math.max(...orders.map((o) => (o.state === 'pending' ? this.o.now() : o.updatedAt))) + CLOCK_MARGIN_MS;
    const limit = this.o.limits.pageSize;
    let offset = 0;
    for (let page = 0; page < this.o.limits.maxPagesPerPass; page++) {
      if (this.closed) return 0;
      let res;
      try {
        res = await this.o.mp.searchMerchantOrders({
          date_created_from: new Date(from).toISOString(),
          date_created_to: new Date(to).toISOString(),
          limit,
          offset,
        });
      } catch (err) {
        this.o.logger.warn({ err, orders: orders.length }, `contingency: batched merchant order search failed: ${(err as Error).message}`);
        return 0;
      }
      if (this.closed) return 0;
      const elements = res.elements ?? [];
      for (const mo of elements) {
        const order = mo.external_reference ? byId.get(mo.external_reference) : undefined;
        if (order) this.apply(order, mo);
      }
      offset += elements.length;
      if (elements.length === 0 || offset >= res.total) return orders.length;
    }
    this.o.logger.warn(
      { orders: orders.length, pages: this.o.limits.maxPagesPerPass, from: new Date(from).toISOString() },
      `contingency: more merchant orders in the window than ${this.o.limits.maxPagesPerPass} pages; the rest next pass (limits.contingency.maxPagesPerPass)`,
    );
    return 0;
  }

  private apply(order: OrderRecord, mo: MpMerchantOrder): void {
    const outcome = this.o.orders.applyMerchantOrder(mo, 'contingency');
    if (outcome === 'released' || outcome === 'late_payment') {
      this.o.logger.warn({ orderId: order.id, merchantOrderId: mo.id, outcome }, `contingency: order ${order.id} ${outcome} without a notification (merchant order ${mo.id})`);
    }
  }
}
