import type { PaymentModelName } from '../../protocol/messages.js';
import type { Kiosk } from '../store/index.js';
import { AttendedModel } from './attended.js';
import type { ModelContext } from './context.js';
import { DynamicModel } from './dynamic.js';
import { OrdersApiModel } from './orders-api.js';
import type { PaymentModel } from './types.js';
import { UnattendedModel } from './unattended.js';

export * from './types.js';
export { fromMerchantOrder, readMerchantOrder } from './merchant-orders.js';
export { fromOrder, OrdersApiModel } from './orders-api.js';
export type { ModelContext } from './context.js';

/** One instance of each model, and the one a kiosk uses. */
export class PaymentModels {
  readonly orders: OrdersApiModel;
  private readonly byName: Record<PaymentModelName, PaymentModel>;

  constructor(ctx: ModelContext) {
    this.orders = new OrdersApiModel(ctx);
    this.byName = {
      unattended: new UnattendedModel(ctx),
      attended: new AttendedModel(ctx),
      dynamic: new DynamicModel(ctx),
      orders: this.orders,
    };
  }

  of(kiosk: Pick<Kiosk, 'paymentModel'>): PaymentModel {
    return this.byName[kiosk.paymentModel];
  }
}
