import type { PaymentModels } from './models/index.js';
import type { Logger } from '../runtime/log.js';
import type { RelayConfig } from './config.js';
import type { OrderService } from './orders.js';
import type { RelayStore } from './store.js';

// Notifications get lost (MP outage, our restart, a proxy hiccup). The contingency poller asks
// Mercado Pago directly about (a) pending orders that have had no news for a while and (b) orders
// recently cancelled/expired, where a payment may still land and must be refunded. The answers go
// through the same OrderService.applyMerchantOrder path as notifications.

export interface ContingencyOptions {
  store: RelayStore;
  models: PaymentModels;
  orders: OrderService;
  config: RelayConfig['orders'];
  logger: Logger;
  now: () => number;
}

export class ContingencyPoller {
  private timer: NodeJS.Timeout | undefined;
  private running: Promise<number> | undefined;
  private closed = false;

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
    const candidates = this.o.store.contingencyCandidates(now - after, now - after, now - this.o.config.latePaymentWatchMinutes * 60_000);
    let looked = 0;
    for (const order of candidates) {
      if (this.closed) break;
      try {
        const kiosk = this.o.store.getKiosk(order.kioskId);
        if (!kiosk) continue;
        const found = await this.o.models.of(kiosk).search(order, kiosk);
        looked++;
        if (this.closed) break;
        for (const state of found) {
          // Search matches by prefix in some MP versions: only the exact reference is ours.
          if (state.externalReference !== order.id) continue;
          const outcome = this.o.orders.applyPaymentState(state, 'contingency');
          if (outcome === 'released' || outcome === 'late_payment') {
            this.o.logger.warn({ orderId: order.id, mpId: state.mpId, outcome }, `contingency: order ${order.id} ${outcome} without a notification (${state.kind} ${state.mpId})`);
          }
        }
      } catch (err) {
        // One failing lookup must not starve the others; the next pass tries again.
        this.o.logger.warn({ err, orderId: order.id }, `contingency: could not search Mercado Pago for ${order.id}: ${(err as Error).message}`);
      }
    }
    return looked;
  }
}
