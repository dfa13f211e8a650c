import type { Logger } from '../runtime/log.js';
import type { PaymentModel, PaymentModels, PaymentState } from './models/index.js';
import type { RelayConfig } from './config.js';
import type { RelayLimits } from './limits.js';
import type { OrderService } from './orders.js';
import type { ContingencyCursor, Kiosk, OrderRecord, RelayStore } from './store/index.js';

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
//
// And the listing itself must scale: the recently closed orders are walked newest first with a
// keyset cursor (store.closedContingencyCandidates), a page at a time, never loaded whole and
// never with an OFFSET. A pass reads at most SCAN_PAGES_PER_PASS pages of them: it first reads
// the orders closed since the current sweep began (newest first, the most likely to be paid
// late), then goes on with the sweep where the last pass left it; at the end of the list a new
// sweep begins at the top. So a backlog of any size costs each pass bounded memory and time, and
// every closed order is still looked at while its backoff allows.

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
/**
 * Pages of closed orders (limits.contingency.pageSize each) a pass reads from the store at most:
 * 5,000 orders with the defaults, a few milliseconds of index reads. A longer list is finished by
 * the next passes (the sweep).
 */
const SCAN_PAGES_PER_PASS = 100;

interface Backoff {
  tries: number;
  nextAt: number;
  /** when the order closed: the entry is forgotten once the late-payment watch is over */
  closedAt: number;
}

/** Mercado Pago calls (single lookups, search pages) one list of a pass may still make. */
interface CallBudget {
  left: number;
}

const keyOf = (o: OrderRecord): ContingencyCursor => ({ updatedAt: o.updatedAt, id: o.id });
const above = (o: OrderRecord, k: ContingencyCursor) => o.updatedAt > k.updatedAt || (o.updatedAt === k.updatedAt && o.id > k.id);

export class ContingencyPoller {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private closed = false;
  /** closed orders looked at, by id; pruned when their watch ends, so bounded by the watch window */
  private readonly backoff = new Map<string, Backoff>();
  /**
   * The sweep over the closed orders: `top` is the newest order when it began (orders above it
   * closed since: read first in every pass), `below` where it stands (undefined: at the top).
   */
  private sweep: { top: ContingencyCursor | undefined; below: ContingencyCursor | undefined } = { top: undefined, below: undefined };

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

  private async pass(): Promise<number> {
    const now = this.o.now();
    const after = this.o.config.contingencyAfterSeconds * 1000;
    const { pageSize, maxPagesPerPass } = this.o.limits;
    // Open orders first: a customer may be standing at the kiosk. Looked up every pass, with
    // their own budget of calls, so no backlog of closed orders can delay them.
    const open = await this.o.store.openContingencyCandidates(now - after, now - after, pageSize * maxPagesPerPass);
    let looked = (await this.look(open, { left: maxPagesPerPass })).size;
    if (!this.closed) looked += await this.walkClosed(now);
    const closedSince = now - this.o.config.latePaymentWatchMinutes * 60_000;
    for (const [id, b] of this.backoff) if (b.closedAt < closedSince) this.backoff.delete(id);
    return looked;
  }

  /**
   * The closed orders due for a look (their backoff over), newest first: those closed since the
   * sweep began, then the sweep from where it stands. Due orders are gathered into batches of up
   * to pageSize x maxPagesPerPass (one batched search covers a whole time window, whatever the
   * number of our orders in it); each order looked at backs off: the pass interval, doubling
   * after each look, up to limits.contingency.maxBackoffSeconds.
   */
  private async walkClosed(now: number): Promise<number> {
    const { pageSize, maxPagesPerPass } = this.o.limits;
    const closedSince = now - this.o.config.latePaymentWatchMinutes * 60_000;
    const budget: CallBudget = { left: maxPagesPerPass };
    const batchSize = pageSize * maxPagesPerPass;
    let pagesLeft = SCAN_PAGES_PER_PASS;
    let looked = 0;
    let due: OrderRecord[] = [];
    const isDue = (o: OrderRecord) => (this.backoff.get(o.id)?.nextAt ?? 0) <= now;
    /**
     * Looks `due` up; false when the budget ran out before all of them were covered (the walk
     * stops there and the next pass reads them again). A batch that had the whole budget and still
     * did not finish (a window with more records than maxPagesPerPass pages, batch() warns) never
     * will: the walk goes on past it rather than stall.
     */
    const flush = async (): Promise<boolean> => {
      if (due.length === 0) return true;
      const fresh = budget.left === maxPagesPerPass;
      const covered = await this.look(due, budget);
      const base = this.o.config.contingencyIntervalSeconds * 1000;
      for (const order of due) {
        if (!covered.has(order.id)) continue;
        const b = this.backoff.get(order.id) ?? { tries: 0, nextAt: 0, closedAt: order.updatedAt };
        b.tries++;
        b.nextAt = now + Math.min(base * 2 ** b.tries, this.o.limits.maxBackoffSeconds * 1000);
        this.backoff.set(order.id, b);
      }
      looked += covered.size;
      const complete = covered.size === due.length || budget.left > 0 || fresh;
      due = [];
      return complete;
    };

    // 1. orders closed since the sweep began: newest first, re-read each pass until the sweep
    //    comes round (those already looked at are backing off and cost nothing but the read)
    const top = this.sweep.top;
    if (top) {
      let below: ContingencyCursor | undefined;
      head: while (pagesLeft > 0 && budget.left > 0 && !this.closed) {
        const page = await this.o.store.closedContingencyCandidates(closedSince, below, pageSize);
        pagesLeft--;
        for (const order of page) {
          if (!above(order, top)) break head;
          if (isDue(order)) due.push(order);
          if (due.length >= batchSize && !(await flush())) return looked;
        }
        if (page.length < pageSize) break;
        below = keyOf(page[page.length - 1]!);
      }
      if (!(await flush())) return looked;
    }

    // 2. the sweep, from where it stands; `resume` is where the next pass goes on: the last order
    //    read while nothing was waiting in `due` (a batch the budget could not finish is read again)
    let resume = this.sweep.below;
    let below = this.sweep.below;
    while (pagesLeft > 0 && budget.left > 0 && !this.closed) {
      const page = await this.o.store.closedContingencyCandidates(closedSince, below, pageSize);
      pagesLeft--;
      if (below === undefined) this.sweep.top = page.length ? keyOf(page[0]!) : undefined;
      for (const order of page) {
        if (isDue(order)) due.push(order);
        if (due.length >= batchSize && !(await flush())) {
          this.sweep.below = resume;
          return looked;
        }
        if (due.length === 0) resume = keyOf(order);
      }
      if (page.length < pageSize) {
        // the end of the list: the next pass begins a new sweep at the top
        this.sweep = (await flush()) ? { top: undefined, below: undefined } : { top: this.sweep.top, below: resume };
        return looked;
      }
      below = keyOf(page[page.length - 1]!);
    }
    this.sweep.below = (await flush()) ? below : resume;
    return looked;
  }

  /**
   * Looks `orders` up, grouped by their kiosk's payment model, keeping their order, within the
   * budget of calls. Resolves to the ids of the orders covered (a failed call covers none).
   */
  private async look(orders: OrderRecord[], budget: CallBudget): Promise<Set<string>> {
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
    const covered = new Set<string>();
    for (const [model, group] of groups) {
      if (this.closed) break;
      if (group.length <= SINGLE_LOOKUPS || !model.searchWindow) {
        for (const { order, kiosk } of group) {
          if (this.closed || budget.left <= 0) break;
          budget.left--;
          if (await this.lookUp(model, order, kiosk)) covered.add(order.id);
        }
      } else if (budget.left > 0) {
        const r = await this.batch(model, group.map((g) => g.order), budget);
        if (r === 'covered') for (const { order } of group) covered.add(order.id);
        if (r !== 'too_big') continue;
        // A busy store: the window holds more records than the calls left can read (a ±5 minute
        // window at 20 sales a second is 12,000 merchant orders). One call per order, in the
        // group's order (newest first); those the budget does not reach stay due for the next
        // pass, whose newest are then the ones not looked at yet (the others back off).
        for (const { order, kiosk } of group) {
          if (this.closed || budget.left <= 0) break;
          budget.left--;
          if (await this.lookUp(model, order, kiosk)) covered.add(order.id);
        }
      }
    }
    return covered;
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
   * Many orders, few calls: every record created in the orders' time window, page by page (as
   * many as the budget allows), matched to ours by external_reference. Resolves `covered` when
   * the pages covered the whole window, `too_big` when the first page's total shows the window
   * needs more pages than the budget leaves (the caller looks them up one by one, newest first,
   * as far as the budget goes), `failed` otherwise.
   */
  private async batch(model: PaymentModel, orders: OrderRecord[], budget: CallBudget): Promise<'covered' | 'too_big' | 'failed'> {
    const byId = new Map(orders.map((o) => [o.id, o]));
    let fromMs = Infinity;
    let toMs = -Infinity;
    for (const o of orders) {
      fromMs = Math.min(fromMs, o.createdAt - CLOCK_MARGIN_MS);
      toMs = Math.max(toMs, (o.state === 'pending' ? this.o.now() : o.updatedAt) + CLOCK_MARGIN_MS);
    }
    const limit = this.o.limits.pageSize;
    let offset = 0;
    while (budget.left > 0) {
      if (this.closed) return 'failed';
      budget.left--;
      let res;
      try {
        res = await model.searchWindow!({ fromMs, toMs, offset, limit });
      } catch (err) {
        this.o.logger.warn({ err, orders: orders.length, model: model.name }, `contingency: batched search (${model.name}) failed: ${(err as Error).message}`);
        return 'failed';
      }
      if (this.closed) return 'failed';
      for (const state of res.states) {
        const order = state.externalReference ? byId.get(state.externalReference) : undefined;
        if (order) await this.apply(order, state);
      }
      offset += res.size;
      if (res.size === 0 || offset >= res.total) return 'covered';
      const pagesNeeded = Math.ceil((res.total - offset) / limit);
      // Paging on could never cover the window in this pass (and the next pass would page the
      // same window again while the same orders stay due): one call each for as many of them as
      // the budget allows, newest first, the likeliest to be paid late; the rest stay due.
      if (offset === res.size && pagesNeeded > budget.left) return 'too_big';
    }
    this.o.logger.warn(
      { orders: orders.length, pages: this.o.limits.maxPagesPerPass, from: new Date(fromMs).toISOString(), model: model.name },
      `contingency: more records in the window than ${this.o.limits.maxPagesPerPass} pages; the rest next pass (limits.contingency.maxPagesPerPass)`,
    );
    return 'failed';
  }

  private async apply(order: OrderRecord, state: PaymentState): Promise<void> {
    const outcome = await this.o.orders.applyPaymentState(state, 'contingency');
    if (outcome === 'released' || outcome === 'late_payment') {
      this.o.logger.warn({ orderId: order.id, mpId: state.mpId, outcome }, `contingency: order ${order.id} ${outcome} without a notification (${state.kind} ${state.mpId})`);
    }
  }
}
