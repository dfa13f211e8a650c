import { assertCurrency, toDecimalNumber } from '../../core/money.js';
import type { Kiosk, OrderRecord, PaymentRecord } from '../store/index.js';
import type { ModelContext } from './context.js';
import { searchMerchantOrders, searchMerchantOrderWindow } from './merchant-orders.js';
import type { Payable, PaymentModel, PaymentState, RefundAnswer, SearchWindow, WindowPage } from './types.js';

// Unattended (Mercado Pago polls the POS url): nothing is created at Mercado Pago before the
// customer scans; the POS route answers the poll (routes/unattended.ts) while the order is pending.

/** Refund of a legacy payment, shared by the three models whose payments are merchant-order payments. */
export async function refundLegacyPayment(ctx: ModelContext, payment: PaymentRecord, idempotencyKey: string, amount?: number): Promise<RefundAnswer> {
  // a partial refund names its amount as Mercado Pago's decimal ({"amount": 10.5}); a full one sends none
  const decimal = amount === undefined ? undefined : toDecimalNumber(amount, assertCurrency(payment.currency));
  const r = await ctx.mp.refundPayment(payment.paymentId, { idempotencyKey, ...(decimal !== undefined ? { amount: decimal } : {}) });
  return { id: String(r.id), amount: r.amount, status: r.status };
}

export class UnattendedModel implements PaymentModel {
  readonly name = 'unattended' as const;
  constructor(private readonly ctx: ModelContext) {}

  qrOnAccept(): boolean {
    // the POS url answers whenever the order is pending: the sticker can be shown at once
    return false;
  }
  offerLocally(): Payable {
    return {};
  }
  async makePayable(): Promise<Payable> {
    return {};
  }
  async withdraw(): Promise<void> {
    // The POS route stops serving an order the moment it is no longer pending.
  }
  search(order: OrderRecord, _kiosk: Kiosk): Promise<PaymentState[]> {
    return searchMerchantOrders(this.ctx.mp, order.id);
  }
  searchWindow(w: SearchWindow): Promise<WindowPage> {
    return searchMerchantOrderWindow(this.ctx.mp, w);
  }
  refund(_order: OrderRecord, payment: PaymentRecord, idempotencyKey: string, amount?: number): Promise<RefundAnswer> {
    return refundLegacyPayment(this.ctx, payment, idempotencyKey, amount);
  }
}
