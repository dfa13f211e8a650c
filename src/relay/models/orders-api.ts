import { isCurrency, toDecimalString, type Currency } from '../../core/money.js';
import type { MpOrder, MpOrderInput } from '../../mercadopago/types.js';
import type { Kiosk, OrderRecord, PaymentRecord } from '../store/index.js';
import { describeOrder, type ModelContext } from './context.js';
import { isNotFound } from './merchant-orders.js';
import type { Payable, PaymentModel, PaymentState, RefundAnswer, SearchWindow, WindowPage } from './types.js';

// The Orders API (POST /v1/orders, type "qr"): Mercado Pago's current QR API and the only model a
// seller can switch on alone. config.qr.mode: `dynamic` (the order's qr_data on the kiosk screen),
// `static` (the order sits on the POS sticker), `hybrid` (both; paying one disables the other).
// Every write carries a key derived from our order id, so a create retried after a lost answer
// returns the first order instead of making a second one. Payment is confirmed by re-reading the
// order (GET /v1/orders/{id}) and is complete when its status is `processed`.

export function orderIdempotencyKey(orderId: string, what: 'create' | 'cancel'): string {
  return `qrkiosk-${what}-${orderId}`;
}

/** Orders API amounts are strings with the currency's decimals ("1500.00"; CLP "1500"). */
function amountText(minor: number, currency: Currency): string {
  return toDecimalString(minor, currency);
}

/** Normalises an Orders API order; payment `processed` (credited) reads as `approved`. */
export function fromOrder(o: MpOrder, fallbackCurrency: string): PaymentState {
  const currency = o.currency && isCurrency(o.currency) ? o.currency : fallbackCurrency;
  const state: PaymentState = {
    kind: 'order',
    mpId: o.id,
    status: o.status,
    externalReference: o.external_reference ?? null,
    complete: o.status === 'processed',
    payments: (o.transactions?.payments ?? []).map((p) => ({
      id: p.id,
      status: p.status === 'processed' || p.status === 'approved' ? 'approved' : p.status,
      amount: p.paid_amount ?? p.amount,
      currency,
    })),
  };
  if (o.user_id !== undefined && o.user_id !== null && o.user_id !== '') state.collectorId = String(o.user_id);
  return state;
}

/** ISO 8601 duration of the time left until the deadline, e.g. "PT118S". */
export function expirationTime(deadline: number, now: number): string {
  return `PT${Math.max(1, Math.ceil((deadline - now) / 1000))}S`;
}

export class OrdersApiModel implements PaymentModel {
  readonly name = 'orders' as const;
  constructor(private readonly ctx: ModelContext) {}

  qrOnAccept(): boolean {
    return true;
  }
  offerLocally(): undefined {
    return undefined;
  }

  orderBody(order: OrderRecord, kiosk: Kiosk): MpOrderInput {
    const total = amountText(order.amount, order.currency);
    return {
      type: 'qr',
      total_amount: total,
      external_reference: order.id,
      description: describeOrder(order, kiosk.id),
      expiration_time: expirationTime(order.deadline, this.ctx.now()),
      config: { qr: { external_pos_id: kiosk.posExternalId, mode: (kiosk.modelMode ?? 'dynamic') as 'dynamic' | 'static' | 'hybrid' } },
      transactions: { payments: [{ amount: total }] },
      items: [
        {
          title: order.title,
          unit_price: amountText(order.unitPrice, order.currency),
          quantity: order.quantity,
          unit_measure: 'unit',
          external_code: order.sku,
        },
      ],
    };
  }

  async makePayable(order: OrderRecord, kiosk: Kiosk): Promise<Payable> {
    const created = await this.ctx.mp.createOrder(this.orderBody(order, kiosk), { idempotencyKey: orderIdempotencyKey(order.id, 'create') });
    const qr = created.type_response?.qr_data;
    if (kiosk.modelMode !== 'static' && !qr) {
      throw new Error(`Mercado Pago created order ${created.id} in ${kiosk.modelMode} mode without type_response.qr_data`);
    }
    return { mpOrderId: created.id, ...(kiosk.modelMode !== 'static' && qr ? { qr } : {}) };
  }

  async withdraw(order: OrderRecord): Promise<void> {
    const ids = order.mpOrderId ? [order.mpOrderId] : (await this.search(order)).map((s) => s.mpId);
    for (const id of ids) {
      try {
        await this.ctx.mp.cancelOrder(id, { idempotencyKey: orderIdempotencyKey(order.id, 'cancel') });
      } catch (err) {
        if (isNotFound(err)) continue;
        // Mercado Pago refuses to cancel an order that is already paid, cancelled or expired:
        // nothing is payable then. Any other answer is worth another try.
        const status = (err as { status?: number }).status;
        if (status !== undefined && status >= 400 && status < 500) {
          const now = await this.ctx.mp.getOrder(id);
          if (now.status !== 'created') continue;
        }
        throw err;
      }
    }
  }

  async search(order: OrderRecord): Promise<PaymentState[]> {
    // The search needs a date range; an hour either side of the order covers clock skew.
    const hour = 3_600_000;
    const page = await this.ctx.mp.searchOrders({
      begin_date: new Date(order.createdAt - hour).toISOString(),
      end_date: new Date(Math.max(this.ctx.now(), order.deadline) + hour).toISOString(),
      external_reference: order.id,
    });
    return (page.data ?? []).filter((o) => o.external_reference === order.id).map((o) => fromOrder(o, order.currency));
  }

  /** One page of every Orders API order created in the window (the contingency search's batch). */
  async searchWindow(w: SearchWindow): Promise<WindowPage> {
    // Orders API pages are numbered from 1 with a fixed size: the window's offset is a multiple of it
    const page = await this.ctx.mp.searchOrders({
      begin_date: new Date(w.fromMs).toISOString(),
      end_date: new Date(w.toMs).toISOString(),
      page: Math.floor(w.offset / w.limit) + 1,
      page_size: w.limit,
    });
    const data = page.data ?? [];
    const currency = this.ctx.config.catalog[0]?.currency ?? 'ARS';
    return { states: data.map((o) => fromOrder(o, currency)), total: Number(page.paging?.total ?? data.length), size: data.length };
  }

  /** Reads an order named by a notification; null when it does not exist for our token. */
  async read(id: string, fallbackCurrency: string): Promise<PaymentState | null> {
    try {
      return fromOrder(await this.ctx.mp.getOrder(id), fallbackCurrency);
    } catch (err) {
      if (isNotFound(err)) return null;
      throw err;
    }
  }

  async refund(order: OrderRecord, payment: PaymentRecord, idempotencyKey: string, minor?: number): Promise<RefundAnswer> {
    const mpOrderId = payment.merchantOrderId ?? order.mpOrderId;
    if (!mpOrderId) throw new Error(`order ${order.id} has no Mercado Pago order id to refund payment ${payment.paymentId} on`);
    const currency = isCurrency(payment.currency) ? payment.currency : order.currency;
    const amount = amountText(minor ?? payment.amount, currency);
    const after = await this.ctx.mp.refundOrder(mpOrderId, { idempotencyKey, transactions: [{ id: payment.paymentId, amount }] });
    // several (partial) refunds of one payment: the newest of this amount is this call's
    const refund = (after.transactions?.refunds ?? []).filter((r) => r.transaction_id === payment.paymentId && (minor === undefined || r.amount === amount)).at(-1);
    // an Orders API refund `processed` is done: it reads as `approved`, as a processed payment does
    if (refund) return { id: refund.id, amount: refund.amount, status: refund.status === 'processed' ? 'approved' : refund.status };
    return { id: `${mpOrderId}/${payment.paymentId}`, amount, status: after.status === 'refunded' ? 'approved' : after.status };
  }
}
