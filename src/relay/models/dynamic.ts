import { buildMercadoPagoQr } from '../../emv/index.js';
import type { Kiosk, OrderRecord, PaymentRecord } from '../store/index.js';
import type { ModelContext } from './context.js';
import { instoreOrderBody } from './instore-body.js';
import { isNotFound, searchMerchantOrders, searchMerchantOrderWindow } from './merchant-orders.js';
import { refundLegacyPayment } from './unattended.js';
import type { Payable, PaymentModel, PaymentState, RefundAnswer, SearchWindow, WindowPage } from './types.js';

// Dynamic QR (Mercado Pago's "QR modelo dinâmico"): a QR per order, shown on the kiosk's screen.
//   online:  POST …/pos/{pos}/qrs -> qr_data. Mercado Pago offers no delete for it: the order's
//            expiration_date is its deadline, and a payment that still lands is refunded.
//   hybrid:  PUT  …/pos/{pos}/qrs -> qr_data, also payable through the POS's static QR; withdrawn
//            from the POS with DELETE …/pos/{pos}/orders.
//   offline: the relay composes the EMVCo payload itself (template 43 with our collector id, the
//            amount in tag 54, our order id as reference label 62/05): no call before the QR is
//            shown, so the kiosk sells while Mercado Pago's order APIs are unreachable.

export class DynamicModel implements PaymentModel {
  readonly name = 'dynamic' as const;
  constructor(private readonly ctx: ModelContext) {}

  qrOnAccept(): boolean {
    return true;
  }

  offerLocally(order: OrderRecord, kiosk: Kiosk): Payable | undefined {
    if (kiosk.modelMode !== 'offline') return undefined;
    const mp = this.ctx.config.mercadopago;
    return {
      qr: buildMercadoPagoQr({
        collectorId: mp.collectorId,
        ...(mp.sponsorId !== undefined ? { sponsorId: mp.sponsorId } : {}),
        mcc: this.ctx.config.qr.mcc,
        currency: order.currency,
        amountMinor: order.amount,
        merchantName: this.ctx.config.qr.merchantName,
        merchantCity: this.ctx.config.qr.merchantCity ?? defaultCity(order.currency),
        referenceLabel: order.id,
        terminalLabel: kiosk.posExternalId.slice(0, 25),
      }),
    };
  }

  async makePayable(order: OrderRecord, kiosk: Kiosk): Promise<Payable> {
    const mode = kiosk.modelMode === 'hybrid' ? 'hybrid' : 'dynamic';
    const r = await this.ctx.mp.createDynamicQr(this.ctx.config.mercadopago.collectorId, kiosk.posExternalId, instoreOrderBody(this.ctx, order, kiosk), mode);
    return { qr: r.qr_data, mpOrderId: String(r.in_store_order_id) };
  }

  async withdraw(_order: OrderRecord, kiosk: Kiosk): Promise<void> {
    if (kiosk.modelMode !== 'hybrid') return; // online: expires at the deadline; offline: nothing at MP
    try {
      await this.ctx.mp.deletePosOrder(this.ctx.config.mercadopago.collectorId, kiosk.posExternalId);
    } catch (err) {
      if (isNotFound(err)) return;
      throw err;
    }
  }

  search(order: OrderRecord): Promise<PaymentState[]> {
    return searchMerchantOrders(this.ctx.mp, order.id);
  }
  searchWindow(w: SearchWindow): Promise<WindowPage> {
    return searchMerchantOrderWindow(this.ctx.mp, w);
  }
  refund(_order: OrderRecord, payment: PaymentRecord, idempotencyKey: string, amount?: number): Promise<RefundAnswer> {
    return refundLegacyPayment(this.ctx, payment, idempotencyKey, amount);
  }
}

const CITY: Record<string, string> = {
  ARS: 'Buenos Aires',
  BRL: 'Sao Paulo',
  MXN: 'Ciudad de Mexico',
  CLP: 'Santiago',
  COP: 'Bogota',
  PEN: 'Lima',
  UYU: 'Montevideo',
};

function defaultCity(currency: string): string {
  return CITY[currency] ?? 'Ciudad';
}
