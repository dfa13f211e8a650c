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

// ---- attended and dynamic QR (legacy "instore" API) ----------------------------------------------

/** An item of an instore order (attended v2, dynamic QR). Amounts are MP decimals, at most 2 places. */
export interface MpInstoreItem {
  sku_number?: string;
  category?: string;
  title: string;
  description?: string;
  unit_price: number;
  quantity: number;
  unit_measure: 'unit' | 'pack';
  total_amount: number;
}

/**
 * Body of PUT /instore/qr/seller/collectors/{user}/stores/{store}/pos/{pos}/orders (attended v2) and
 * of POST/PUT /instore/orders/qr/seller/collectors/{user}/pos/{pos}/qrs (dynamic, hybrid).
 */
export interface MpInstoreOrderInput {
  external_reference: string;
  title: string;
  description?: string;
  notification_url?: string;
  /** ISO 8601 with offset, in the future */
  expiration_date?: string;
  total_amount: number;
  items: MpInstoreItem[];
  sponsor?: { id: number };
}

/** Body of POST /mpmobile/instore/qr/{user}/{pos} (attended v1, legacy). */
export interface MpMobileOrderInput {
  external_reference: string;
  notification_url?: string;
  sponsor_id?: number;
  items: { id?: string; title: string; currency_id: string; unit_price: number; quantity: number; description?: string }[];
}

/** Answer of POST/PUT .../qrs: the EMVCo string to show, and MP's id of the instore order. */
export interface MpDynamicQr {
  qr_data: string;
  in_store_order_id: string;
}

// ---- Orders API (/v1/orders, type "qr") --------------------------------------------------------

export type MpQrMode = 'static' | 'dynamic' | 'hybrid';

export interface MpOrderItemInput {
  title: string;
  /** decimal string with the currency's decimals, e.g. "1500.00" */
  unit_price: string;
  quantity: number;
  unit_measure?: string;
  external_code?: string;
}

export interface MpOrderInput {
  type: 'qr';
  /** decimal string, e.g. "1500.00" */
  total_amount: string;
  external_reference: string;
  description?: string;
  /** ISO 8601 duration, e.g. "PT2M" */
  expiration_time?: string;
  config: { qr: { external_pos_id: string; mode: MpQrMode } };
  transactions: { payments: { amount: string }[] };
  items?: MpOrderItemInput[];
}

export interface MpOrderPayment {
  id: string;
  amount: string;
  paid_amount?: string;
  refunded_amount?: string;
  status: string;
  status_detail?: string;
  reference_id?: string;
  payment_method?: { id?: string; type?: string };
}

export interface MpOrderRefund {
  id: string;
  transaction_id: string;
  reference_id?: string;
  amount: string;
  status: string;
}

/**
 * An Orders API order. status: created -> processed (paid) -> refunded; or canceled / expired;
 * `action_required` and `failed` with their status_detail for payment problems.
 */
export interface MpOrder {
  id: string;
  type: 'qr' | string;
  external_reference: string;
  status: string;
  status_detail?: string;
  user_id?: string;
  total_amount: string;
  total_paid_amount?: string;
  currency?: string;
  country_code?: string;
  description?: string;
  created_date?: string;
  last_updated_date?: string;
  expiration_time?: string;
  processing_mode?: string;
  config?: { qr?: { external_pos_id?: string; mode?: MpQrMode } };
  transactions?: { payments?: MpOrderPayment[]; refunds?: MpOrderRefund[] };
  items?: MpOrderItemInput[];
  /** the per-order QR payload (dynamic and hybrid modes) */
  type_response?: { qr_data?: string };
}

export interface MpOrderSearch {
  data: MpOrder[];
  paging?: { total?: string | number; total_pages?: string | number; offset?: string | number; limit?: string | number };
}

export interface MpOrderSearchQuery {
  /** ISO 8601; required by Mercado Pago */
  begin_date: string;
  end_date: string;
  external_reference?: string;
  status?: string;
  page?: number;
  page_size?: number;
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

  // attended model
  /** PUT …/stores/{store}/pos/{pos}/orders: answers 204, no body; replaces the POS's current order */
  putPosOrder(userId: number | string, externalStoreId: string, externalPosId: string, input: MpInstoreOrderInput): Promise<void>;
  /** DELETE /instore/qr/seller/collectors/{user}/pos/{pos}/orders: 204 */
  deletePosOrder(userId: number | string, externalPosId: string): Promise<void>;
  /** legacy attended: POST /mpmobile/instore/qr/{user}/{pos}; the order lives ttlSeconds on the QR */
  postMobilePosOrder(userId: number | string, externalPosId: string, input: MpMobileOrderInput, ttlSeconds: number): Promise<void>;
  /** legacy attended: DELETE /mpmobile/instore/qr/{user}/{pos}: 204 */
  deleteMobilePosOrder(userId: number | string, externalPosId: string): Promise<void>;

  // dynamic model
  /** POST (dynamic) or PUT (hybrid: also on the POS's static QR) …/pos/{pos}/qrs */
  createDynamicQr(userId: number | string, externalPosId: string, input: MpInstoreOrderInput, mode: 'dynamic' | 'hybrid'): Promise<MpDynamicQr>;

  // Orders API
  /** POST /v1/orders; the key must be stable per order, so a retried create never makes a second one */
  createOrder(input: MpOrderInput, opts: { idempotencyKey: string }): Promise<MpOrder>;
  getOrder(id: string): Promise<MpOrder>;
  cancelOrder(id: string, opts: { idempotencyKey: string }): Promise<MpOrder>;
  /** full refund when transactions is omitted */
  refundOrder(id: string, opts: { idempotencyKey: string; transactions?: { id: string; amount: string }[] }): Promise<MpOrder>;
  searchOrders(query: MpOrderSearchQuery): Promise<MpOrderSearch>;
}
