import type { PaymentModelName } from '../../protocol/messages.js';
import type { Kiosk, OrderRecord, PaymentRecord } from '../store/index.js';

// One payment model = one way of making an order payable at Mercado Pago. A model only TALKS to
// Mercado Pago: it makes the order payable, withdraws it, finds its payment state and refunds.
// What happens to the order (released, refunded, expired...) is decided by OrderService alone,
// from the PaymentState a model reads, whatever the model.

/** What the kiosk shows for an order, and Mercado Pago's id of what was made payable. */
export interface Payable {
  /** the order's own QR payload; absent: the kiosk shows its POS's static QR */
  qr?: string;
  /** the Orders API order id, or the legacy instore order id */
  mpOrderId?: string;
}

/** A payment as a model read it from Mercado Pago, normalised. Amounts are MP decimals. */
export interface PaymentSeen {
  id: string;
  /** `approved` (credited), `refunded`, or Mercado Pago's own word for anything else */
  status: string;
  amount: number | string;
  currency: string;
}

/**
 * What Mercado Pago says about one of our orders, READ FROM ITS API (never a notification body):
 * a merchant order (unattended, attended, dynamic) or an Orders API order.
 */
export interface PaymentState {
  kind: 'merchant_order' | 'order';
  /** the merchant order id or the Orders API order id */
  mpId: string;
  /** Mercado Pago's status, for logs: closed/opened/expired, created/processed/canceled/expired/refunded */
  status: string;
  externalReference: string | null;
  /** Mercado Pago says the total is covered (merchant order `closed`, order `processed`) */
  complete: boolean;
  /** the seller the money went to, when Mercado Pago says */
  collectorId?: string;
  payments: PaymentSeen[];
}

/** Mercado Pago's answer to a refund, normalised. */
export interface RefundAnswer {
  id: string;
  /** MP decimal */
  amount: number | string;
  status: string;
}

export interface PaymentModel {
  readonly name: PaymentModelName;
  /**
   * Whether an order is payable only once the relay accepted it (the kiosk shows no QR before
   * order.accepted; then the order's own QR if any, else the POS QR).
   */
  qrOnAccept(kiosk: Kiosk): boolean;
  /**
   * Makes the order payable without calling Mercado Pago, when the model can (unattended: the POS
   * url answers; offline dynamic: the relay composes the QR). undefined: makePayable must be called.
   */
  offerLocally(order: OrderRecord, kiosk: Kiosk): Payable | undefined;
  /** The call that makes the order payable. Repeating it for the same order makes no second one. */
  makePayable(order: OrderRecord, kiosk: Kiosk): Promise<Payable>;
  /** Leaves nothing payable for this order at Mercado Pago. Safe to repeat. */
  withdraw(order: OrderRecord, kiosk: Kiosk): Promise<void>;
  /** Contingency: the payment state of our order, found without a notification. */
  search(order: OrderRecord, kiosk: Kiosk): Promise<PaymentState[]>;
  /**
   * Contingency with a backlog: one page of EVERY record of this model's kind created in a time
   * window (ours matched by external_reference by the caller), so many orders cost a few calls
   * instead of one each (relay/contingency.ts). Models without it are searched order by order.
   */
  searchWindow?(window: SearchWindow): Promise<WindowPage>;
  /**
   * Refunds one payment of the order with a stable key: `amount` minor units of it (an operator's
   * partial refund, or what remains after partial ones), else all of it.
   */
  refund(order: OrderRecord, payment: PaymentRecord, idempotencyKey: string, amount?: number): Promise<RefundAnswer>;
}

/** A time window of creation dates (epoch ms, both ends included) and a page of it. */
export interface SearchWindow {
  fromMs: number;
  toMs: number;
  offset: number;
  limit: number;
}

export interface WindowPage {
  states: PaymentState[];
  /** how many records the whole window holds */
  total: number;
  /** how many records this page held (the next page starts that much further) */
  size: number;
}

/** Thrown by a model when its kiosk's setup cannot work (no store for an attended kiosk...). */
export class ModelSetupError extends Error {
  override name = 'ModelSetupError';
}
