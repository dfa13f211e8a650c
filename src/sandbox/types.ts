// Public types of the Mercado Pago sandbox. The sandbox is both Mercado Pago (its API, behind a
// bearer token) and the customer's app (scan a QR, pay), so demos and end-to-end tests can drive a
// whole sale over loopback without the internet.

import type { Logger } from 'pino';
import type { Currency } from '../core/money.js';
import type { MpMerchantOrder, MpPayment, MpPos, MpStore } from '../mercadopago/types.js';

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
  logger?: Logger;
}

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

export type ScanResult =
  | {
      status: 'ready';
      scanId: number;
      checkoutId: string;
      merchantOrderId: number;
      posId: number;
      totalMinor: number;
      currency: Currency;
      externalReference: string;
      generation: PosGeneration;
      polls: number;
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
export type SignatureMode = 'valid' | 'forged' | 'none';

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
}

export interface PayResult {
  paymentId: number;
  merchantOrderId: number;
  status: 'approved' | 'rejected';
  /** merchant order status after this payment */
  merchantOrderStatus: 'opened' | 'closed';
  /** id of the notification batch (0 when none was sent) */
  batchId: number;
  /** resolves (never rejects) when every notification attempt has an outcome */
  deliveries: Promise<Delivery[]>;
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

export interface RefundRecord {
  id: number;
  paymentId: number;
  merchantOrderId: number;
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
  | 'listRefunds';

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
}

export interface FaultInfo {
  id: number;
  path?: string;
  endpoint?: SandboxEndpoint;
  method?: string;
  status: number;
  remaining: number;
  hits: number;
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
