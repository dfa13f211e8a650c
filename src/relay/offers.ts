import type { Logger } from '../runtime/log.js';
import { backoffDelay } from '../runtime/backoff.js';
import { isPermanentRefusal, describeRefusal } from './refunds.js';
import { ModelSetupError, type PaymentModels } from './models/index.js';
import type { OrderService } from './orders.js';
import type { OrderRecord, RelayStore } from './store.js';

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
}

export class OfferWorker {
  private running: Promise<void> | undefined;
  private again = false;
  private closed = false;
  private readonly retry = new Map<string, { attempts: number; notBefore: number; timer: NodeJS.Timeout }>();

  constructor(private readonly o: OfferWorkerOptions) {}

  kick(): void {
    if (this.closed) return;
    if (this.running) {
      this.again = true;
      return;
    }
    this.running = this.passes()
      .catch((err: unknown) => {
        if (!this.closed) this.o.logger.error({ err }, `offer pass failed: ${(err as Error).message}`);
      })
      .finally(() => {
        this.running = undefined;
      });
  }

  async idle(): Promise<void> {
    while (this.running) await this.running;
  }

  async close(): Promise<void> {
    this.closed = true;
    for (const r of this.retry.values()) clearTimeout(r.timer);
    this.retry.clear();
    await Promise.race([this.running, new Promise((r) => setTimeout(r, 200).unref())]);
  }

  private async passes(): Promise<void> {
    do {
      this.again = false;
      const blocked = new Set<string>();
      for (const order of this.o.store.offerWork()) {
        if (this.closed || !this.o.store.isOpen) return;
        if (blocked.has(order.kioskId)) continue;
        const done = await this.step(order);
        if (!done) blocked.add(order.kioskId);
      }
    } while (this.again && !this.closed);
  }

  /** One order's pending call. Resolves whether the kiosk's later work may go ahead. */
  private async step(order: OrderRecord): Promise<boolean> {
    const r = this.retry.get(order.id);
    if (r && r.notBefore > Date.now()) return false;
    const kiosk = this.o.store.getKiosk(order.kioskId);
    if (!kiosk) return true;
    const model = this.o.models.of(kiosk);
    const what = order.offerState === 'due' ? 'make payable' : 'withdraw';
    try {
      if (order.offerState === 'due') {
        const payable = await model.makePayable(order, kiosk);
        if (this.closed || !this.o.store.isOpen) return false;
        const more = this.o.orders.offerMade(order.id, payable);
        if (more) return this.step(this.o.store.getOrder(order.id)!);
        this.o.logger.info({ orderId: order.id, kioskId: kiosk.id, model: model.name, mpOrderId: payable.mpOrderId }, `order ${order.id} payable at Mercado Pago (${model.name})`);
      } else {
        await model.withdraw(order, kiosk);
        if (this.closed || !this.o.store.isOpen) return false;
        this.o.orders.withdrawEnded(order.id);
        this.o.logger.info({ orderId: order.id, kioskId: kiosk.id, model: model.name }, `order ${order.id} withdrawn at Mercado Pago (${model.name})`);
      }
      this.clearRetry(order.id);
      return true;
    } catch (err) {
      if (this.closed || !this.o.store.isOpen) return false;
      const permanent = err instanceof ModelSetupError || isPermanentRefusal(err);
      if (permanent) {
        const why = err instanceof ModelSetupError ? err.message : explain(err);
        this.o.logger.error({ err, orderId: order.id, kioskId: kiosk.id, model: model.name }, `Mercado Pago refused to ${what} order ${order.id} (${model.name}): ${why}`);
        if (order.offerState === 'due') this.o.orders.offerRefused(order.id, why);
        else this.o.orders.withdrawEnded(order.id, why);
        this.clearRetry(order.id);
        return true;
      }
      this.o.store.noteOfferError(order.id, (err as Error).message);
      this.scheduleRetry(order.id, `${what} order ${order.id}`, err as Error);
      return false;
    }
  }

  private clearRetry(id: string): void {
    const r = this.retry.get(id);
    if (r) clearTimeout(r.timer);
    this.retry.delete(id);
  }

  private scheduleRetry(id: string, what: string, err: Error): void {
    const prev = this.retry.get(id);
    if (prev) clearTimeout(prev.timer);
    const attempts = (prev?.attempts ?? 0) + 1;
    const delay = backoffDelay(attempts, this.o.baseBackoffMs ?? 500, this.o.maxBackoffMs ?? 30_000);
    const timer = setTimeout(() => this.kick(), delay);
    timer.unref();
    this.retry.set(id, { attempts, notBefore: Date.now() + delay, timer });
    this.o.logger.warn({ err, orderId: id, attempts, delayMs: delay }, `${what} failed (${err.message}); retrying in ${delay} ms`);
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
