// Public types of the Mercado Pago sandbox. The sandbox is both Mercado Pago (its API, behind a
// bearer token) and the customer's app (scan a QR, pay), so demos and end-to-end tests can drive a
// whole sale over loopback without the internet.

import type { Logger } from 'pino';
import type { Currency } from '../core/money.js';
import type { MpMerchantOrder, MpOrder, MpPayment, MpPos, MpQrMode, MpStore } from '../mercadopago/types.js';

export interface SandboxOptions {
  /** default 127.0.0.1: the sandbox has no auth on /_sandbox, never expose it */
  host?: string;
  /** 0 = any free port (default) */
  port?: number;
  /** the bearer token the MP API endpoints accept */
  accessToken: string;
  /** the seller's Mercado Pago user id; QR codes and POS urls must match it */
  collectorId: number;
  /** site currency (default ARS); v2 POS answers carry no currency and use this one */
  currency?: Currency;
  /** when set, webhook notifications carry a valid x-signature by default */
  webhookSecret?: string;
  /** how often the "app" asks the POS url while it is not ready (default 200) */
  pollIntervalMs?: number;
  /** when the "app" stops asking (default 20000) */
  pollGiveUpMs?: number;
  /** per-request timeout for POS url polls and notification deliveries (default 5000) */
  httpTimeoutMs?: number;
  /**
   * Where Orders API webhooks go: the Orders API has no per-order notification_url, the seller
   * configures one URL in "Your integrations" (event "Order"). Unset = no order webhooks are sent.
   */
  ordersWebhookUrl?: string;
  /** x-signature of Orders API webhooks (default 'valid' with a webhookSecret, else 'none') */
  ordersSignature?: SignatureMode;
  /**
   * The panel's notification URL, used for merchant orders that carry none (offline dynamic QRs,
   * which cannot say where to notify).
   */
  panelNotificationUrl?: string;
  /** accept payments of withdrawn (deleted, canceled, expired, replaced) orders: the race "payment lands after cancel" */
  latePayments?: boolean;
  logger?: Logger;
}

/** What can change on a running sandbox (over /_sandbox/config too); null clears a URL. */
export interface SandboxConfigPatch {
  ordersWebhookUrl?: string | null;
  ordersSignature?: SignatureMode;
  panelNotificationUrl?: string | null;
  latePayments?: boolean;
}

/**
 * How the customer's payment reaches the seller: the POS url polled by MP (unattended), an order
 * put on the POS (attended: instore v2 or mpmobile), an order's own QR (dynamic /qrs, hybrid), a QR
 * the seller built offline, or an Orders API order (static, dynamic or hybrid mode).
 */
export type QrModel = 'unattended' | 'attended' | 'dynamic' | 'offline' | 'orders';

/** The legacy instore order kinds. */
export type InstoreApi = 'attended' | 'mpmobile' | 'dynamic' | 'hybrid';

export type PosGeneration = 'v1' | 'v2';

export interface ScanOptions {
  /** the EMVCo payload printed on the POS sticker */
  qr: string;
  /** stop after this many polls with status 'not_ready' (default: poll until ready/invalid/give-up) */
  maxPolls?: number;
  /** overrides the sandbox pollGiveUpMs for this scan */
  giveUpMs?: number;
  /** overrides the sandbox pollIntervalMs for this scan */
  intervalMs?: number;
  /**
   * Mercado Pago also notifies when it creates the (still opened) merchant order; the seller must
   * not treat that as paid. Set to send those notifications too (default: none).
   */
  notifyOpened?: NotifyOptions;
}

export interface LastPoll {
  /** null when no HTTP answer arrived (connection refused, timeout) */
  httpStatus: number | null;
  body: unknown;
  error?: string;
}

/** A checkout backed by a merchant order (every model but the Orders API). */
export interface MerchantOrderScan {
  status: 'ready';
  model: Exclude<QrModel, 'orders'>;
  scanId: number;
  checkoutId: string;
  merchantOrderId: number;
  /** null for an offline QR that names no POS */
  posId: number | null;
  totalMinor: number;
  currency: Currency;
  externalReference: string;
  /** unattended: the answer generation; attended: v2 (instore) or v1 (mpmobile) */
  generation?: PosGeneration;
  /** the legacy instore order paid through this checkout (attended, dynamic, hybrid) */
  inStoreOrderId?: string;
  polls: number;
}

/** A checkout of an Orders API order. */
export interface OrdersApiScan {
  status: 'ready';
  model: 'orders';
  scanId: number;
  checkoutId: string;
  orderId: string;
  mode: MpQrMode;
  posId: number;
  totalMinor: number;
  currency: Currency;
  externalReference: string;
  polls: 0;
  merchantOrderId?: undefined;
  generation?: undefined;
}

export type ScanResult =
  | MerchantOrderScan
  | OrdersApiScan
  | {
      /**
       * waiting_for_order: a POS without url and without an order on it (the app's waiting screen);
       * nothing_to_pay: the scanned order QR names an order that is paid, canceled, deleted or expired.
       */
      status: 'waiting_for_order' | 'nothing_to_pay';
      scanId: number;
      posId: number | null;
      reason: string;
      polls: 0;
      /** no POS url was asked: httpStatus null */
      last: LastPoll;
    }
  | {
      status: 'not_ready' | 'invalid' | 'gave_up';
      scanId: number;
      posId: number;
      last: LastPoll;
      polls: number;
      /** why the answer was invalid (bad ready body, or the seller said "invalid") */
      error?: string;
    };

export type NotificationForm = 'ipn' | 'webhook' | 'both';
/**
 * valid: HMAC over the manifest with data.id verbatim (what MP signs today); lowercase: valid the
 * old way (data.id lowercased, as SDKs did before June 2026); forged: wrong key; none: no header.
 */
export type SignatureMode = 'valid' | 'lowercase' | 'forged' | 'none';

export interface NotifyOptions {
  /** default 'ipn' */
  form?: NotificationForm;
  /** send each notification N times: duplicates, as Mercado Pago does (default 1) */
  copies?: number;
  /** wait before sending: late notifications (default 0) */
  delayMs?: number;
  /** webhook x-signature: default 'valid' with a webhookSecret, else 'none' */
  signature?: SignatureMode;
  /** send the copies concurrently instead of one after another (racing duplicates) */
  parallel?: boolean;
}

export interface PayOptions {
  checkoutId: string;
  /** default 'approved' */
  outcome?: 'approved' | 'rejected';
  /** integer minor units; default the order total; lower = underpayment, higher = overpayment */
  amountMinor?: number;
  /** false = send no notification at all (the seller must find the payment by searching) */
  notify?: NotifyOptions | false;
  /**
   * Pay even though the order was withdrawn (deleted, canceled, expired, replaced) after the scan:
   * the race where the payment lands after the cancel. Default: the sandbox's latePayments option;
   * otherwise such a payment is refused (SandboxError order_not_payable) as Mercado Pago's app would.
   */
  landAfterCancel?: boolean;
}

interface PayResultBase {
  status: 'approved' | 'rejected';
  /** the order had been withdrawn and the payment landed anyway (landAfterCancel) */
  lateAfterWithdrawal: boolean;
  /** id of the notification batch (0 when none was sent) */
  batchId: number;
  /** resolves (never rejects) when every notification attempt has an outcome */
  deliveries: Promise<Delivery[]>;
}

export interface MerchantOrderPayResult extends PayResultBase {
  model: Exclude<QrModel, 'orders'>;
  paymentId: number;
  merchantOrderId: number;
  /** merchant order status after this payment */
  merchantOrderStatus: 'opened' | 'closed';
}

export interface OrdersApiPayResult extends PayResultBase {
  model: 'orders';
  /** the Orders API transaction id (transactions.payments[].id) */
  paymentId: string;
  orderId: string;
  /** order status after this payment: processed when paid in full */
  orderStatus: string;
  merchantOrderId?: undefined;
  merchantOrderStatus?: undefined;
}

export type PayResult = MerchantOrderPayResult | OrdersApiPayResult;

export type OrderWebhookAction = 'order.processed' | 'order.canceled' | 'order.expired' | 'order.refunded' | 'order.action_required';

export interface NotifyOrderRequest extends Omit<NotifyOptions, 'form'> {
  orderId: string;
  /** default: the action matching the order's status */
  action?: OrderWebhookAction;
}

export interface NotifyOrderResult {
  orderId: string;
  batchId: number;
  deliveries: Promise<Delivery[]>;
}

/** Inspection view of a legacy instore order (attended, mpmobile, dynamic, hybrid). */
export interface InstoreOrderInfo {
  id: string;
  api: InstoreApi;
  posId: number;
  externalPosId: string;
  externalReference: string;
  totalMinor: number;
  state: 'open' | 'paid' | 'deleted' | 'replaced' | 'expired';
  /** attached to the POS's static QR (attended, mpmobile, hybrid) */
  onPos: boolean;
  expiresAt: string | null;
  merchantOrderId: number | null;
  qrData?: string;
  dateCreated: string;
}

export interface NotifyRequest extends NotifyOptions {
  merchantOrderId: number;
}

export interface NotifyResult {
  merchantOrderId: number;
  batchId: number;
  deliveries: Promise<Delivery[]>;
}

export interface NotifyRawRequest {
  url: string;
  /** appended to url's query */
  query?: Record<string, string>;
  /** JSON-encoded when an object; sent as is when a string */
  body?: unknown;
  headers?: Record<string, string>;
  /** default POST */
  method?: string;
}

export interface Delivery {
  id: number;
  batchId: number;
  merchantOrderId: number | null;
  /** Orders API webhooks: the order id */
  orderId?: string;
  form: 'ipn' | 'webhook' | 'raw';
  /** 1-based copy number within its batch */
  copy: number;
  method: string;
  url: string;
  signature: SignatureMode;
  requestId?: string;
  headers: Record<string, string>;
  body?: string;
  startedAt: string;
  durationMs: number;
  /** what the seller's server answered; null when it did not (refused, timeout) */
  httpStatus: number | null;
  error?: string;
  /** first 500 characters of the answer */
  responseBody?: string;
}

export interface PollEntry {
  scanId: number;
  posId: number;
  externalId: string;
  url: string;
  at: string;
  durationMs: number;
  httpStatus: number | null;
  /** the `order-version` response header, when present */
  orderVersion?: string;
  body: unknown;
  error?: string;
}

/** One refund at Mercado Pago, whichever API made it: the ledger tests read ("refunded exactly once"). */
export interface RefundRecord {
  /** numeric for /v1/payments refunds, "REF…" for Orders API refunds */
  id: number | string;
  api: 'payments' | 'orders';
  /** /v1/payments id, or the Orders API transaction id */
  paymentId: number | string;
  /** null for Orders API refunds */
  merchantOrderId: number | null;
  /** Orders API order id */
  orderId?: string;
  externalReference: string;
  amountMinor: number;
  /** MP decimal, as on the wire */
  amount: number;
  currency: Currency;
  idempotencyKey: string;
  dateCreated: string;
  /** how many later requests with the same key got this refund back instead of a new one */
  replays: number;
}

/** MP endpoint names a fault can target. */
export type SandboxEndpoint =
  | 'createStore'
  | 'createPos'
  | 'searchPos'
  | 'getPos'
  | 'updatePos'
  | 'getMerchantOrder'
  | 'searchMerchantOrders'
  | 'getPayment'
  | 'refundPayment'
  | 'listRefunds'
  | 'putPosOrder'
  | 'getPosOrder'
  | 'deletePosOrder'
  | 'postMobileOrder'
  | 'deleteMobileOrder'
  | 'createDynamicQr'
  | 'createOrder'
  | 'getOrder'
  | 'cancelOrder'
  | 'refundOrder'
  | 'searchOrders';

export interface FaultSpec {
  /** regex (or its source) tested against the request path with query, e.g. /^\/v1\/payments\/\d+$/ */
  path?: RegExp | string;
  endpoint?: SandboxEndpoint;
  /** restrict to one HTTP method */
  method?: string;
  /** e.g. 500, 503, 429 */
  status: number;
  /** how many matching requests fail (default 1) */
  times?: number;
  /** Retry-After header value, e.g. "0" or "1" */
  retryAfter?: string;
  /** response body; default a Mercado Pago-like error */
  body?: unknown;
  /**
   * hold the request this long before the error answer: a slow Mercado Pago, or (longer than the
   * client's timeout) one that times out (default 0)
   */
  delayMs?: number;
  /**
   * Let the request take effect (create the order, cancel, refund...) and only then fail: the
   * answer is lost. Proves that a retried create makes no second order.
   */
  afterEffect?: boolean;
  /** instead of answering `status`, drop the connection (the client sees a network error) */
  dropConnection?: boolean;
}

export interface FaultInfo {
  id: number;
  path?: string;
  endpoint?: SandboxEndpoint;
  method?: string;
  status: number;
  remaining: number;
  hits: number;
  afterEffect?: boolean;
  dropConnection?: boolean;
}

/**
 * The customer + inspection operations. Implemented in-process by `startSandbox` and over HTTP by
 * `connectSandbox`, so a demo drives a sandbox the same way whether it runs inside or elsewhere.
 */
export interface SandboxControl {
  scan(opts: ScanOptions): Promise<ScanResult>;
  pay(opts: PayOptions): Promise<PayResult>;
  notify(opts: NotifyRequest): Promise<NotifyResult>;
  notifyRaw(req: NotifyRawRequest): Promise<Delivery>;
  refunds(): Promise<RefundRecord[]>;
  payments(): Promise<MpPayment[]>;
  merchantOrders(): Promise<MpMerchantOrder[]>;
  deliveries(): Promise<Delivery[]>;
  pollLog(): Promise<PollEntry[]>;
  pointsOfSale(): Promise<MpPos[]>;
  stores(): Promise<MpStore[]>;
  setFault(spec: FaultSpec): Promise<FaultInfo>;
  /** sends order webhooks to the configured ordersWebhookUrl */
  notifyOrder(req: NotifyOrderRequest): Promise<NotifyOrderResult>;
  /** Orders API orders, as GET /v1/orders/{id} shows them */
  orders(): Promise<MpOrder[]>;
  instoreOrders(): Promise<InstoreOrderInfo[]>;
  configure(patch: SandboxConfigPatch): Promise<void>;
  /** expires an order now, as its expiration time would (Orders API id, or in_store_order_id) */
  expire(ref: { orderId?: string; inStoreOrderId?: string }): Promise<void>;
  faults(): Promise<FaultInfo[]>;
  clearFaults(): Promise<void>;
}

export interface Sandbox extends SandboxControl {
  /** base URL, e.g. http://127.0.0.1:41234 — use it as the MercadoPagoClient baseUrl */
  readonly url: string;
  readonly accessToken: string;
  readonly collectorId: number;
  readonly currency: Currency;
  close(): Promise<void>;
}
