import { toDecimalNumber } from '../../core/money.js';
import type { MpInstoreOrderInput } from '../../mercadopago/types.js';
import type { Kiosk, OrderRecord } from '../store/index.js';
import { describeOrder, isoWithOffset, notificationUrl, type ModelContext } from './context.js';

/**
 * The body the instore APIs take (attended v2 PUT, dynamic POST/PUT …/qrs). total_amount equals
 * the items' total because both come from the same integer of minor units.
 */
export function instoreOrderBody(ctx: ModelContext, order: OrderRecord, kiosk: Kiosk): MpInstoreOrderInput {
  const total = toDecimalNumber(order.amount, order.currency);
  const description = describeOrder(order, kiosk.id);
  const body: MpInstoreOrderInput = {
    external_reference: order.id,
    title: order.title,
    description,
    notification_url: notificationUrl(ctx.config),
    expiration_date: isoWithOffset(order.deadline),
    total_amount: total,
    items: [
      {
        sku_number: order.sku,
        category: 'vending',
        title: order.title,
        description,
        unit_price: toDecimalNumber(order.unitPrice, order.currency),
        quantity: order.quantity,
        unit_measure: 'unit',
        total_amount: total,
      },
    ],
  };
  if (ctx.config.mercadopago.sponsorId !== undefined) body.sponsor = { id: ctx.config.mercadopago.sponsorId };
  return body;
}
