import type { MpMobileOrderInput } from '../../mercadopago/types.js';
import { toDecimalNumber } from '../../core/money.js';
import type { Kiosk, OrderRecord, PaymentRecord } from '../store/index.js';
import { notificationUrl, type ModelContext } from './context.js';
import { instoreOrderBody } from './instore-body.js';
import { isNotFound, searchMerchantOrders, searchMerchantOrderWindow } from './merchant-orders.js';
import { refundLegacyPayment } from './unattended.js';
import { ModelSetupError, type Payable, type PaymentModel, type PaymentState, type RefundAnswer, type SearchWindow, type WindowPage } from './types.js';

// Attended (Mercado Pago's "QR modelo atendido"): the order is put on the kiosk's POS, and the
// customer scans the POS's static QR. One order per POS at a time: putting a new one replaces the
// old, deleting removes whatever is on the POS. So the offer worker never puts a kiosk's next
// order on its POS before the previous one's withdrawal is done (relay/offers.ts).
//   v2:       PUT    /instore/qr/seller/collectors/{user}/stores/{store}/pos/{pos}/orders  (204)
//             DELETE /instore/qr/seller/collectors/{user}/pos/{pos}/orders                 (204)
//   mpmobile: POST   /mpmobile/instore/qr/{user}/{pos}, X-Ttl-Store-Preference; DELETE same path

export class AttendedModel implements PaymentModel {
  readonly name = 'attended' as const;
  constructor(private readonly ctx: ModelContext) {}

  qrOnAccept(): boolean {
    return true;
  }
  offerLocally(): undefined {
    return undefined;
  }

  async makePayable(order: OrderRecord, kiosk: Kiosk): Promise<Payable> {
    const user = this.ctx.config.mercadopago.collectorId;
    if (kiosk.modelMode === 'mpmobile') {
      const body: MpMobileOrderInput = {
        external_reference: order.id,
        notification_url: notificationUrl(this.ctx.config),
        items: [
          {
            id: order.sku,
            title: order.title,
            currency_id: order.currency,
            unit_price: toDecimalNumber(order.unitPrice, order.currency),
            quantity: order.quantity,
          },
        ],
      };
      if (this.ctx.config.mercadopago.sponsorId !== undefined) body.sponsor_id = this.ctx.config.mercadopago.sponsorId;
      // The order lives on the QR until the deadline, never the API's 10-minute default.
      const ttl = Math.max(1, Math.ceil((order.deadline - this.ctx.now()) / 1000));
      await this.ctx.mp.postMobilePosOrder(user, kiosk.posExternalId, body, ttl);
      return {};
    }
    if (!kiosk.storeExternalId) {
      throw new ModelSetupError(
        `kiosk ${kiosk.id} is attended but has no Mercado Pago store: run "qrkiosk relay provision ${kiosk.id} --store <STORE_EXTERNAL_ID>"`,
      );
    }
    await this.ctx.mp.putPosOrder(user, kiosk.storeExternalId, kiosk.posExternalId, instoreOrderBody(this.ctx, order, kiosk));
    return {};
  }

  async withdraw(_order: OrderRecord, kiosk: Kiosk): Promise<void> {
    const user = this.ctx.config.mercadopago.collectorId;
    try {
      if (kiosk.modelMode === 'mpmobile') await this.ctx.mp.deleteMobilePosOrder(user, kiosk.posExternalId);
      else await this.ctx.mp.deletePosOrder(user, kiosk.posExternalId);
    } catch (err) {
      if (isNotFound(err)) return; // nothing on the POS any more: paid, expired or already deleted
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
