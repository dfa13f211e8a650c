import type { Logger } from '../runtime/log.js';
import { isPermanentRefusal, describeRefusal } from './refunds.js';
import { ModelSetupError, type PaymentModels } from './models/index.js';
import type { OrderService } from './orders.js';
import type { OrderRecord, RelayStore } from './store/index.js';
import { WorkLoop, type WorkLoopOptions } from './work-loop.js';

// Makes orders payable at Mercado Pago and withdraws them, for the models that need a call
// (attended, dynamic online/hybrid, Orders API). The work list is the orders table itself
// (offer_state `due` or `withdraw_due`, written in the same transaction as the order's own state),
// so a restart resumes exactly what was left, and every call is safe to repeat: the Orders API
// create carries a key derived from our order id, a POS order PUT replaces, a cancel of a
// cancelled order changes nothing.
//
// Per kiosk, work runs in the order it was asked for, and a kiosk whose earlier order still has
// to be withdrawn gets no new order made payable first: on an attended POS, "delete the POS's
// order" would otherwise delete the next customer's.

export interface OfferWorkerOptions {
  store: RelayStore;
  models: PaymentModels;
  orders: OrderService;
  logger: Logger;
  baseBackoffMs?: number;
  maxBackoffMs?: number;
  /** several instances: one pass at a time across them (WorkLoopOptions.exclusive) */
  exclusive?: WorkLoopOptions['exclusive'];
}

export class OfferWorker extends WorkLoop {
  constructor(private readonly o: OfferWorkerOptions) {
    super({ logger: o.logger, name: 'offer', baseBackoffMs: o.baseBackoffMs ?? 500, maxBackoffMs: o.maxBackoffMs ?? 30_000, ...(o.exclusive ? { exclusive: o.exclusive } : {}) });
  }

  protected async pass(): Promise<void> {
    const blocked = new Set<string>();
    for (const order of await this.o.store.offerWork()) {
      if (this.closed) return;
      if (blocked.has(order.kioskId)) continue;
      const done = await this.step(order);
      if (!done) blocked.add(order.kioskId);
    }
  }

  /** One order's pending call. Resolves whether the kiosk's later work may go ahead. */
  private async step(order: OrderRecord): Promise<boolean> {
    if (this.backingOff(order.id)) return false;
    const kiosk = await this.o.store.getKiosk(order.kioskId);
    if (!kiosk) return true;
    const model = this.o.models.of(kiosk);
    const what = order.offerState === 'due' ? 'make payable' : 'withdraw';
    try {
      if (order.offerState === 'due') {
        const payable = await model.makePayable(order, kiosk);
        if (this.closed) return false;
        const more = await this.o.orders.offerMade(order.id, payable);
        if (more) return this.step((await this.o.store.getOrder(order.id))!);
        this.o.logger.info({ orderId: order.id, kioskId: kiosk.id, model: model.name, mpOrderId: payable.mpOrderId }, `order ${order.id} payable at Mercado Pago (${model.name})`);
      } else {
        await model.withdraw(order, kiosk);
        if (this.closed) return false;
        await this.o.orders.withdrawEnded(order.id);
        this.o.logger.info({ orderId: order.id, kioskId: kiosk.id, model: model.name }, `order ${order.id} withdrawn at Mercado Pago (${model.name})`);
      }
      this.succeeded(order.id);
      return true;
    } catch (err) {
      if (this.closed) return false;
      const permanent = err instanceof ModelSetupError || isPermanentRefusal(err);
      if (permanent) {
        const why = err instanceof ModelSetupError ? err.message : explain(err);
        this.o.logger.error({ err, orderId: order.id, kioskId: kiosk.id, model: model.name }, `Mercado Pago refused to ${what} order ${order.id} (${model.name}): ${why}`);
        if (order.offerState === 'due') await this.o.orders.offerRefused(order.id, why);
        else await this.o.orders.withdrawEnded(order.id, why);
        this.succeeded(order.id);
        return true;
      }
      await this.o.store.noteOfferError(order.id, (err as Error).message);
      this.failed(order.id, `${what} order ${order.id}`, err as Error);
      return false;
    }
  }
}

/** Mercado Pago's refusal in plain words, with the fix where we know it. */
export function explain(err: unknown): string {
  const status = (err as { status?: number }).status;
  const base = describeRefusal(err);
  if (status === 401 || status === 403) return `${base} (check the access token and that this account may use the kiosk's payment model)`;
  if (status === 404) return `${base} (the store or POS does not exist at Mercado Pago: run "qrkiosk relay provision")`;
  return base;
}
