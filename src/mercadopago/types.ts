// Wire shapes of the Mercado Pago endpoints qrkiosk uses. Amounts here are Mercado Pago's decimals
// (JSON numbers); convert with core/money.ts parseAmount at the edge, never do arithmetic on them.

export interface MpItem {
  id?: string;
  sku_number?: string;
  title: string;
  description?: string;
  currency_id?: string;
  quantity: number;
  unit_price: number;
  unit_measure?: string;
  total_amount?: number;
}

export interface MpMerchantOrderPayment {
  id: number;
  transaction_amount: number;
  total_paid_amount?: number;
  currency_id: string;
  status: string;
  status_detail?: string;
  operation_type?: string;
  date_approved?: string | null;
  date_created?: string;
  amount_refunded?: number;
}

export type MpMerchantOrderStatus = 'opened' | 'closed' | 'expired';

export interface MpMerchantOrder {
  id: number;
  status: MpMerchantOrderStatus;
  order_status?: string;
  external_reference: string | null;
  preference_id?: string | null;
  site_id?: string;
  collector?: { id: number; nickname?: string };
  notification_url?: string | null;
  items: MpItem[];
  total_amount: number;
  paid_amount: number;
  refunded_amount: number;
  cancelled?: boolean;
  payments: MpMerchantOrderPayment[];
  date_created?: string;
  last_updated?: string;
  is_test?: boolean;
}

/**
 * `GET /merchant_orders/search` filters we use: one order by its reference, or every merchant
 * order created in a time window (ISO 8601), a page at a time (the contingency search's batch).
 */
export interface MerchantOrderSearch {
  external_reference?: string;
  date_created_from?: string;
  date_created_to?: string;
  limit?: number;
  offset?: number;
}

export interface MpSearchPage<T> {
  elements: T[] | null;
  next_offset?: number;
  total: number;
}

export interface MpPayment {
  id: number;
  status: string;
  status_detail?: string;
  external_reference?: string | null;
  transaction_amount: number;
  currency_id: string;
  order?: { id: number | string; type?: string };
  date_approved?: string | null;
  date_created?: string;
  transaction_amount_refunded?: number;
}

export interface MpRefund {
  id: number;
  payment_id: number;
  amount: number;
  status: string;
  date_created?: string;
}

export interface MpStore {
  id: number | string;
  name: string;
  external_id?: string;
  location?: Record<string, unknown>;
}

export interface MpPos {
  id: number;
  name: string;
  fixed_amount: boolean;
  store_id?: number | string;
  external_store_id?: string;
  external_id: string;
  url?: string | null;
  uuid?: string;
  user_id?: number;
  status?: string;
  qr?: { image?: string; template_document?: string; template_image?: string };
  /** the EMVCo string printed on the sticker; [U] not in the published reference, our sandbox returns it */
  qr_code?: string;
}

export interface CreateStoreInput {
  name: string;
  external_id?: string;
  location?: Record<string, unknown>;
}

export interface CreatePosInput {
  name: string;
  fixed_amount: boolean;
  store_id?: number | string;
  external_store_id?: string;
  external_id: string;
  category?: number;
  url?: string;
}

/** The operations the relay needs. The HTTP client implements it; tests may wrap it. */
export interface MercadoPagoApi {
  getMerchantOrder(id: number | string): Promise<MpMerchantOrder>;
  searchMerchantOrders(query: MerchantOrderSearch): Promise<MpSearchPage<MpMerchantOrder>>;
  getPayment(id: number | string): Promise<MpPayment>;
  /** Full refund when amount is omitted. The key makes a repeated call return the first refund. */
  refundPayment(paymentId: number | string, opts: { idempotencyKey: string; amount?: number }): Promise<MpRefund>;
  createStore(userId: number | string, input: CreateStoreInput): Promise<MpStore>;
  createPos(input: CreatePosInput): Promise<MpPos>;
  getPos(id: number | string): Promise<MpPos>;
}
