// The sandbox's state and behaviour, independent of HTTP: server.ts maps routes onto these methods.
// Amounts are integer minor units in every record; they become MP decimals only in the *View
// functions that build wire shapes.

import { randomUUID } from 'node:crypto';
import { setTimeout as delay } from 'node:timers/promises';
import type { Logger } from 'pino';
import { CURRENCIES, MoneyError, parseAmount, toDecimalNumber, type Currency } from '../core/money.js';
import { EmvError, MP_QR_LIMITS, buildMercadoPagoQr, parseMercadoPagoQr } from '../emv/index.js';
import type { MpPosSearch } from '../mercadopago/client.js';
import type { MercadoPagoQrData } from '../emv/index.js';
import type {
  MpItem,
  MpMerchantOrder,
  MpOrder,
  MpMerchantOrderPayment,
  MpPayment,
  MpPos,
  MpRefund,
  MpSearchPage,
  MpStore,
} from '../mercadopago/types.js';
import { MpApiError, SandboxError, isObject, mpError, nowIso, numericId, pushCapped, truncate } from './api-error.js';
import { appendQuery, deliver, describeFetchError, webhookSignature, type OutgoingRequest } from './notify.js';
import type { MerchantOrderInput, NormalizedNotify, PosRef, SandboxHost } from './host.js';
import { InstoreOrders, type InstoreRec } from './instore-orders.js';
import { OrdersApi, type OrdersApiOrderRec } from './orders-api.js';
import { interpretPosAnswer, type PosAnswer } from './pos-answer.js';
import type {
  Delivery,
  FaultInfo,
  FaultSpec,
  NotifyOptions,
  NotifyRawRequest,
  NotifyRequest,
  NotifyResult,
  InstoreOrderInfo,
  MerchantOrderPayResult,
  MerchantOrderScan,
  NotifyOrderRequest,
  NotifyOrderResult,
  OrdersApiScan,
  PayOptions,
  PayResult,
  QrModel,
  SandboxConfigPatch,
  PollEntry,
  PosGeneration,
  RefundRecord,
  SandboxEndpoint,
  ScanOptions,
  ScanResult,
  SignatureMode,
} from './types.js';

export { MpApiError, SandboxError } from './api-error.js';

interface StoreRec {
  id: number;
  name: string;
  externalId?: string;
  location?: Record<string, unknown>;
  businessHours?: unknown;
  dateCreated: string;
}

interface PosRec {
  id: number;
  name: string;
  fixedAmount: boolean;
  category?: number;
  storeId: number;
  externalStoreId?: string;
  externalId: string;
  url?: string;
  uuid: string;
  qrCode: string;
  dateCreated: string;
  dateLastUpdated: string;
}

interface OrderRec {
  id: number;
  /** null: an offline QR naming no POS */
  posId: number | null;
  model: Exclude<QrModel, 'orders'>;
  checkoutId: string;
  generation: PosGeneration;
  externalReference: string;
  /** '' = none given: notifications go to the panel's URL, if configured */
  notificationUrl: string;
  inStoreOrderId?: string;
  items: MpItem[];
  totalMinor: number;
  sponsorId?: number;
  paymentIds: number[];
  dateCreated: string;
  lastUpdated: string;
}

interface PaymentRec {
  id: number;
  orderId: number;
  posId: number | null;
  status: 'approved' | 'rejected' | 'refunded';
  /** whether it was ever approved: refunded payments still count as paid on the merchant order */
  wasApproved: boolean;
  amountMinor: number;
  refundedMinor: number;
  externalReference: string;
  description: string;
  dateCreated: string;
  dateApproved: string | null;
  lastUpdated: string;
  refundIds: number[];
}

interface RefundRec {
  id: number;
  paymentId: number;
  orderId: number;
  amountMinor: number;
  idempotencyKey: string;
  dateCreated: string;
  replays: number;
}

/** What the customer's app shows after a scan: a merchant order to pay, or an Orders API order. */
type CheckoutRec = { id: string; kind: 'merchant_order'; orderId: number } | { id: string; kind: 'order'; ordersApiId: string };

interface FaultRec extends FaultInfo {
  regex?: RegExp;
  retryAfter?: string;
  body?: unknown;
}

export interface SandboxCoreConfig {
  accessToken: string;
  collectorId: number;
  currency: Currency;
  webhookSecret?: string;
  pollIntervalMs: number;
  pollGiveUpMs: number;
  httpTimeoutMs: number;
  ordersWebhookUrl?: string;
  ordersSignature?: SignatureMode;
  panelNotificationUrl?: string;
  latePayments?: boolean;
  logger?: Logger;
  /** the listening base URL, known only after listen() */
  baseUrl: () => string;
}

const DEFAULT_CITY: Record<Currency, string> = {
  ARS: 'Buenos Aires',
  BRL: 'Sao Paulo',
  MXN: 'CDMX',
  CLP: 'Santiago',
  COP: 'Bogota',
  PEN: 'Lima',
  UYU: 'Montevideo',
};

const POS_FIELDS = new Set(['name', 'fixed_amount', 'category', 'store_id', 'external_store_id', 'external_id', 'url']);
const ALNUM = /^[A-Za-z0-9]+$/;

export class SandboxCore {
  readonly lifetime = new AbortController();
  private readonly stores = new Map<number, StoreRec>();
  private readonly pos = new Map<number, PosRec>();
  private readonly orders = new Map<number, OrderRec>();
  private readonly paymentsById = new Map<number, PaymentRec>();
  private readonly refundsById = new Map<number, RefundRec>();
  private readonly refundsByKey = new Map<string, RefundRec>();
  private readonly checkouts = new Map<string, CheckoutRec>();
  private readonly deliveryLog: Delivery[] = [];
  private readonly polls: PollEntry[] = [];
  private readonly batches = new Map<number, Promise<Delivery[]>>();
  private faultList: FaultRec[] = [];
  private seq = {
    store: 40_000_000,
    pos: 70_000_000,
    order: 20_000_000_000,
    payment: 1_300_000_000,
    refund: 1_500_000_000,
    notification: 9_000_000_000,
    delivery: 0,
    batch: 0,
    scan: 0,
    checkout: 0,
    fault: 0,
  };

  private readonly host: SandboxHost;
  /** attended (instore v2, mpmobile) and dynamic (/qrs) orders */
  readonly instore: InstoreOrders;
  /** the Orders API (/v1/orders) */
  readonly ordersApi: OrdersApi;
  private panelNotificationUrl: string | undefined;
  private latePayments: boolean;

  constructor(readonly cfg: SandboxCoreConfig) {
    this.panelNotificationUrl = cfg.panelNotificationUrl;
    this.latePayments = cfg.latePayments ?? false;
    this.host = {
      collectorId: cfg.collectorId,
      currency: cfg.currency,
      logger: cfg.logger,
      webhookSecret: cfg.webhookSecret,
      findPosByExternalId: (externalId) => {
        const rec = [...this.pos.values()].find((p) => p.externalId === externalId);
        return rec ? this.posRef(rec) : undefined;
      },
      findStoreByExternalId: (externalId) => [...this.stores.values()].find((s) => s.externalId === externalId),
      openMerchantOrder: (input) => this.openMerchantOrder(input).id,
      normalizeNotify: (opts) => this.normalizeNotify(opts),
      startBatch: (opts, makers) => this.runBatch(opts, makers),
    };
    this.instore = new InstoreOrders(this.host);
    this.ordersApi = new OrdersApi(this.host, { webhookUrl: cfg.ordersWebhookUrl, signature: cfg.ordersSignature });
  }

  /** Changes settings of a running sandbox (also over /_sandbox/config). */
  configure(patch: SandboxConfigPatch): void {
    const url = (v: unknown, what: string): string | undefined => {
      if (v === null) return undefined;
      try {
        const u = new URL(String(v));
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
      } catch {
        throw new SandboxError(400, 'bad_config', `${what} must be an absolute http(s) URL or null, got ${JSON.stringify(v)}`);
      }
      return String(v);
    };
    if (patch.ordersSignature !== undefined && !['valid', 'lowercase', 'forged', 'none'].includes(patch.ordersSignature)) {
      throw new SandboxError(400, 'bad_config', `ordersSignature must be valid, lowercase, forged or none, got ${String(patch.ordersSignature)}`);
    }
    if ((patch.ordersSignature === 'valid' || patch.ordersSignature === 'lowercase') && !this.cfg.webhookSecret) {
      throw new SandboxError(400, 'no_webhook_secret', 'a valid signature needs the sandbox started with webhookSecret');
    }
    if (patch.ordersWebhookUrl !== undefined) this.ordersApi.settings.webhookUrl = url(patch.ordersWebhookUrl, 'ordersWebhookUrl');
    if (patch.panelNotificationUrl !== undefined) this.panelNotificationUrl = url(patch.panelNotificationUrl, 'panelNotificationUrl');
    if (patch.ordersSignature !== undefined) this.ordersApi.settings.signature = patch.ordersSignature;
    if (patch.latePayments !== undefined) this.latePayments = patch.latePayments === true;
  }

  // ---- the per-model APIs (their modules do the work) --------------------------------------------

  /** Expires an order now, as its expiration time would. */
  expire(ref: { orderId?: string; inStoreOrderId?: string }): void {
    const found =
      (ref?.orderId !== undefined && this.ordersApi.expire(ref.orderId)) ||
      (ref?.inStoreOrderId !== undefined && this.instore.expire(ref.inStoreOrderId));
    if (!found) throw new SandboxError(404, 'unknown_order', `no order ${JSON.stringify(ref)}: give {orderId} (Orders API) or {inStoreOrderId}`);
  }

  notifyOrder(req: NotifyOrderRequest): NotifyOrderResult {
    return this.ordersApi.notify(req);
  }

  listInstoreOrders(): InstoreOrderInfo[] {
    return this.instore.list();
  }

  listOrdersApi(): MpOrder[] {
    return this.ordersApi.list();
  }

  get closed(): boolean {
    return this.lifetime.signal.aborted;
  }

  // ---- Mercado Pago API ------------------------------------------------------------------------

  checkToken(authorization: string | undefined): void {
    const m = /^Bearer\s+(.+)$/i.exec(authorization ?? '');
    if (!m || m[1]!.trim() !== this.cfg.accessToken) {
      throw new MpApiError(401, { message: 'invalid_token', error: 'unauthorized', status: 401, cause: [] });
    }
  }

  createStore(userId: string, body: unknown): MpStore {
    if (numericId(userId) !== this.cfg.collectorId) {
      throw mpError(403, 'forbidden', `user ${userId} is not the owner of this access token (${this.cfg.collectorId})`);
    }
    if (!isObject(body)) throw mpError(400, 'bad_request', 'HTTP body is required to create a store');
    if (typeof body.name !== 'string' || body.name.trim() === '') {
      throw mpError(400, 'bad_request', 'name is required and must be a string');
    }
    let externalId: string | undefined;
    if (body.external_id !== undefined) {
      if (typeof body.external_id !== 'string' || !ALNUM.test(body.external_id) || body.external_id.length > 60) {
        throw mpError(400, 'bad_request', 'external_id must be alphanumeric, up to 60 characters');
      }
      externalId = body.external_id;
      if ([...this.stores.values()].some((s) => s.externalId === externalId)) {
        throw mpError(409, 'conflict', `a store with external_id ${externalId} already exists`);
      }
    }
    if (body.location !== undefined && !isObject(body.location)) {
      throw mpError(400, 'bad_request', 'location must be an object');
    }
    const rec: StoreRec = { id: ++this.seq.store, name: body.name, dateCreated: nowIso() };
    if (externalId !== undefined) rec.externalId = externalId;
    if (isObject(body.location)) rec.location = body.location;
    if (body.business_hours !== undefined) rec.businessHours = body.business_hours;
    this.stores.set(rec.id, rec);
    this.cfg.logger?.info({ storeId: rec.id, externalId }, 'sandbox: store created');
    return this.storeView(rec);
  }

  createPos(body: unknown): MpPos {
    const input = this.validatePosInput(body);
    if ([...this.pos.values()].some((p) => p.externalId === input.externalId)) {
      throw mpError(409, 'conflict', `A pos with the external_id ${input.externalId} already exists for this user`, [
        { code: 'POS_ALREADY_EXISTS', description: 'external_id must be unique per user' },
      ]);
    }
    const id = ++this.seq.pos;
    const now = nowIso();
    const rec: PosRec = {
      id,
      name: input.name,
      fixedAmount: input.fixedAmount,
      storeId: input.store.id,
      externalId: input.externalId,
      uuid: randomUUID(),
      qrCode: '',
      dateCreated: now,
      dateLastUpdated: now,
    };
    if (input.category !== undefined) rec.category = input.category;
    if (input.store.externalId !== undefined) rec.externalStoreId = input.store.externalId;
    if (input.url !== undefined) rec.url = input.url;
    rec.qrCode = this.buildPosQr(rec, input.store);
    this.pos.set(id, rec);
    this.cfg.logger?.info({ posId: id, externalId: rec.externalId, url: rec.url }, 'sandbox: POS created');
    return this.posView(rec);
  }

  updatePos(rawId: string, body: unknown): MpPos {
    const rec = this.requirePos(rawId);
    if (isObject(body) && body.external_id !== undefined && body.external_id !== rec.externalId) {
      throw mpError(400, 'bad_request', 'external_id cannot be changed');
    }
    const merged = {
      name: rec.name,
      fixed_amount: rec.fixedAmount,
      store_id: rec.storeId,
      external_id: rec.externalId,
      ...(rec.category !== undefined ? { category: rec.category } : {}),
      ...(rec.url !== undefined ? { url: rec.url } : {}),
      ...(isObject(body) ? body : {}),
    };
    if (isObject(body) && body.url === null) delete (merged as { url?: unknown }).url;
    if (isObject(body) && (body.store_id !== undefined || body.external_store_id !== undefined)) {
      if (body.store_id === undefined) delete (merged as { store_id?: unknown }).store_id;
    }
    const input = this.validatePosInput(merged);
    rec.name = input.name;
    rec.fixedAmount = input.fixedAmount;
    rec.storeId = input.store.id;
    if (input.store.externalId !== undefined) rec.externalStoreId = input.store.externalId;
    else delete rec.externalStoreId;
    if (input.category !== undefined) rec.category = input.category;
    if (input.url !== undefined) rec.url = input.url;
    else delete rec.url;
    rec.dateLastUpdated = nowIso();
    rec.qrCode = this.buildPosQr(rec, input.store);
    return this.posView(rec);
  }

  getPos(rawId: string): MpPos {
    return this.posView(this.requirePos(rawId));
  }

  searchPos(query: Record<string, unknown>): MpPosSearch {
    let results = [...this.pos.values()];
    if (typeof query.external_id === 'string') results = results.filter((p) => p.externalId === query.external_id);
    if (query.store_id !== undefined) results = results.filter((p) => String(p.storeId) === String(query.store_id));
    if (typeof query.external_store_id === 'string') {
      results = results.filter((p) => p.externalStoreId === query.external_store_id);
    }
    return {
      paging: { total: results.length, offset: 0, limit: 50 },
      results: results.slice(0, 50).map((p) => this.posView(p)),
    };
  }

  getMerchantOrder(rawId: string): MpMerchantOrder {
    const id = numericId(rawId);
    const rec = id === undefined ? undefined : this.orders.get(id);
    if (!rec) throw mpError(404, 'not_found', `Merchant Order ${rawId} not found`);
    return this.orderView(rec);
  }

  /**
   * Like Mercado Pago, `elements` is null (not []) when nothing matches: the relay must cope.
   */
  searchMerchantOrders(query: Record<string, unknown>): MpSearchPage<MpMerchantOrder> {
    let list = [...this.orders.values()];
    if (typeof query.external_reference === 'string') {
      list = list.filter((o) => o.externalReference === query.external_reference);
    }
    // Time windows, as at Mercado Pago: ISO 8601 instants, both ends included.
    const windows: [string, 'dateCreated' | 'lastUpdated', 'from' | 'to'][] = [
      ['date_created_from', 'dateCreated', 'from'],
      ['date_created_to', 'dateCreated', 'to'],
      ['last_updated_from', 'lastUpdated', 'from'],
      ['last_updated_to', 'lastUpdated', 'to'],
    ];
    for (const [param, field, end] of windows) {
      const raw = query[param];
      if (raw === undefined) continue;
      const at = typeof raw === 'string' ? Date.parse(raw) : Number.NaN;
      if (Number.isNaN(at)) throw mpError(400, 'bad_request', `${param} must be an ISO 8601 date, e.g. 2026-12-01T10:00:00.000-03:00`);
      list = list.filter((o) => (end === 'from' ? Date.parse(o[field]) >= at : Date.parse(o[field]) <= at));
    }
    const offset = Math.max(0, Number(query.offset ?? 0) || 0);
    const limit = Math.min(100, Math.max(1, Number(query.limit ?? 30) || 30));
    const page = list.slice(offset, offset + limit);
    return {
      elements: page.length ? page.map((o) => this.orderView(o)) : null,
      next_offset: offset + page.length,
      total: list.length,
    };
  }

  getPayment(rawId: string): MpPayment {
    return this.paymentView(this.requirePayment(rawId));
  }

  listRefunds(rawId: string): MpRefund[] {
    const p = this.requirePayment(rawId);
    return p.refundIds.map((id) => this.refundView(this.refundsById.get(id)!));
  }

  /**
   * Refunds are idempotent by X-Idempotency-Key, as at Mercado Pago: the same key gives back the
   * first refund (HTTP 200 here, 201 when created) and never moves money twice.
   */
  refundPayment(rawId: string, idempotencyKey: string | undefined, body: unknown): { status: 200 | 201; refund: MpRefund } {
    if (!idempotencyKey || idempotencyKey.trim() === '') {
      throw mpError(400, 'bad_request', 'X-Idempotency-Key header is required to refund a payment', [
        { code: 4292, description: "Header X-Idempotency-Key can't be null" },
      ]);
    }
    const payment = this.requirePayment(rawId);
    if (body !== undefined && body !== null && !isObject(body)) {
      throw mpError(400, 'bad_request', 'the body must be a JSON object: {} or {"amount": 10.5}');
    }
    const rawAmount = isObject(body) ? body.amount : undefined;
    let requestedMinor: number | undefined;
    if (rawAmount !== undefined && rawAmount !== null) {
      if (typeof rawAmount !== 'number') {
        throw mpError(400, 'bad_request', 'amount must be a number', [{ code: 'invalid_amount', description: 'amount must be a number' }]);
      }
      try {
        requestedMinor = parseAmount(rawAmount, this.cfg.currency);
      } catch (err) {
        const why = err instanceof MoneyError ? err.message : String(err);
        throw mpError(400, 'bad_request', `invalid refund amount: ${why}`, [{ code: 'invalid_amount', description: why }]);
      }
      if (requestedMinor <= 0) {
        throw mpError(400, 'bad_request', 'refund amount must be positive', [
          { code: 'invalid_amount', description: 'amount must be positive' },
        ]);
      }
    }

    const previous = this.refundsByKey.get(idempotencyKey);
    if (previous) {
      if (previous.paymentId !== payment.id || (requestedMinor !== undefined && requestedMinor !== previous.amountMinor)) {
        throw mpError(
          409,
          'conflict',
          `X-Idempotency-Key ${idempotencyKey} was already used for a different refund (payment ${previous.paymentId}, amount ${toDecimalNumber(previous.amountMinor, this.cfg.currency)})`,
        );
      }
      previous.replays++;
      return { status: 200, refund: this.refundView(previous) };
    }

    if (payment.status !== 'approved') {
      throw mpError(400, 'bad_request', `payment ${payment.id} is ${payment.status}: only approved payments can be refunded`, [
        { code: 2063, description: 'The action requested is not valid for the current payment state' },
      ]);
    }
    const remaining = payment.amountMinor - payment.refundedMinor;
    const amountMinor = requestedMinor ?? remaining;
    if (amountMinor > remaining) {
      throw mpError(
        400,
        'bad_request',
        `refund amount ${toDecimalNumber(amountMinor, this.cfg.currency)} exceeds the refundable ${toDecimalNumber(remaining, this.cfg.currency)} of payment ${payment.id}`,
        [{ code: 'amount_exceeds_refundable', description: 'The amount to refund is greater than the available amount' }],
      );
    }
    const refund: RefundRec = {
      id: ++this.seq.refund,
      paymentId: payment.id,
      orderId: payment.orderId,
      amountMinor,
      idempotencyKey,
      dateCreated: nowIso(),
      replays: 0,
    };
    this.refundsById.set(refund.id, refund);
    this.refundsByKey.set(idempotencyKey, refund);
    payment.refundIds.push(refund.id);
    payment.refundedMinor += amountMinor;
    if (payment.refundedMinor >= payment.amountMinor) payment.status = 'refunded';
    payment.lastUpdated = refund.dateCreated;
    const order = this.orders.get(payment.orderId);
    if (order) order.lastUpdated = refund.dateCreated;
    this.cfg.logger?.info({ refundId: refund.id, paymentId: payment.id, amountMinor }, 'sandbox: refund created');
    return { status: 201, refund: this.refundView(refund) };
  }

  // ---- faults ----------------------------------------------------------------------------------

  addFault(spec: FaultSpec): FaultInfo {
    if (!Number.isInteger(spec.status) || spec.status < 400 || spec.status > 599) {
      throw new SandboxError(400, 'bad_fault', `fault status must be an HTTP error status (400-599), got ${spec.status}`);
    }
    if (spec.path === undefined && spec.endpoint === undefined) {
      throw new SandboxError(400, 'bad_fault', 'a fault needs a path regex or an endpoint name');
    }
    const times = spec.times ?? 1;
    if (!Number.isInteger(times) || times < 1) {
      throw new SandboxError(400, 'bad_fault', `fault times must be a positive integer, got ${times}`);
    }
    let regex: RegExp | undefined;
    if (spec.path !== undefined) {
      try {
        regex = spec.path instanceof RegExp ? spec.path : new RegExp(spec.path);
      } catch (err) {
        throw new SandboxError(400, 'bad_fault', `fault path is not a valid regex: ${(err as Error).message}`);
      }
    }
    const rec: FaultRec = { id: ++this.seq.fault, status: spec.status, remaining: times, hits: 0 };
    if (regex) {
      rec.regex = regex;
      rec.path = regex.source;
    }
    if (spec.endpoint !== undefined) rec.endpoint = spec.endpoint;
    if (spec.method !== undefined) rec.method = spec.method.toUpperCase();
    if (spec.retryAfter !== undefined) rec.retryAfter = spec.retryAfter;
    if (spec.body !== undefined) rec.body = spec.body;
    if (spec.afterEffect) rec.afterEffect = true;
    if (spec.dropConnection) rec.dropConnection = true;
    this.faultList.push(rec);
    return this.faultInfo(rec);
  }

  /**
   * Consumes one matching fault, if any: the request must then fail with it. Phase 'before' takes
   * ordinary faults (the request has no effect); phase 'after' takes afterEffect faults, which the
   * server applies once the handler has run (the effect happened, the answer is lost).
   */
  takeFault(endpoint: SandboxEndpoint, method: string, url: string, phase: 'before' | 'after' = 'before'): (MpApiError & { dropConnection?: boolean }) | undefined {
    const f = this.faultList.find(
      (x) =>
        x.remaining > 0 &&
        !!x.afterEffect === (phase === 'after') &&
        (x.endpoint === undefined || x.endpoint === endpoint) &&
        (x.method === undefined || x.method === method.toUpperCase()) &&
        (x.regex === undefined || x.regex.test(url)),
    );
    if (!f) return undefined;
    f.remaining--;
    f.hits++;
    const headers: Record<string, string> = f.retryAfter !== undefined ? { 'retry-after': f.retryAfter } : {};
    const body = isObject(f.body)
      ? f.body
      : f.status === 429
        ? { message: 'too_many_requests', error: 'too_many_requests', status: 429, cause: [] }
        : { message: 'internal_error (sandbox fault)', error: 'internal_server_error', status: f.status, cause: [] };
    const error: MpApiError & { dropConnection?: boolean } = new MpApiError(f.status, body, headers);
    if (f.dropConnection) error.dropConnection = true;
    return error;
  }

  listFaults(): FaultInfo[] {
    return this.faultList.map((f) => this.faultInfo(f));
  }

  clearFaults(): void {
    this.faultList = [];
  }

  private faultInfo(f: FaultRec): FaultInfo {
    const info: FaultInfo = { id: f.id, status: f.status, remaining: f.remaining, hits: f.hits };
    if (f.path !== undefined) info.path = f.path;
    if (f.endpoint !== undefined) info.endpoint = f.endpoint;
    if (f.method !== undefined) info.method = f.method;
    if (f.afterEffect) info.afterEffect = true;
    if (f.dropConnection) info.dropConnection = true;
    return info;
  }

  // ---- the customer's app ----------------------------------------------------------------------

  /**
   * Scans a POS sticker: finds the POS from the QR (collector + terminal label), then asks its url
   * until the seller's server has an order ready, as Mercado Pago's app does in the unattended model.
   */
  async scan(opts: ScanOptions): Promise<ScanResult> {
    if (!opts || typeof opts.qr !== 'string' || opts.qr.trim() === '') {
      throw new SandboxError(400, 'invalid_qr', 'scan needs {qr: "<EMVCo payload>"}');
    }
    let qr;
    try {
      qr = parseMercadoPagoQr(opts.qr.trim());
    } catch (err) {
      if (err instanceof EmvError) {
        throw new SandboxError(400, 'invalid_qr', `not a valid Mercado Pago QR: ${err.message}`);
      }
      throw err;
    }
    if (qr.collectorId !== undefined && qr.collectorId !== String(this.cfg.collectorId)) {
      throw new SandboxError(
        404,
        'unknown_collector',
        `the QR belongs to collector ${qr.collectorId}, but this sandbox is collector ${this.cfg.collectorId}`,
      );
    }
    // an order's own QR (online dynamic, hybrid, Orders API dynamic/hybrid): found by its UUID
    if (qr.orderUuid !== undefined || qr.collectorId === undefined) return this.scanOrderQr(qr, opts);
    // a QR the seller built offline: amount and reference in the QR itself
    if (qr.initiation === 'dynamic') return this.scanOfflineQr(qr);
    if (qr.terminalLabel === undefined) {
      throw new SandboxError(400, 'invalid_qr', 'the QR has no terminal label (62/07), so it names no POS');
    }
    const pos = this.findPosByLabel(qr.terminalLabel);
    if (!pos) throw new SandboxError(404, 'unknown_pos', `no POS with external_id "${qr.terminalLabel}"`);
    // a POS without url: whatever order sits on its static QR (attended, hybrid, Orders API static/hybrid)
    if (!pos.url) return this.scanAttendedPos(pos, opts);
    const intervalMs = opts.intervalMs ?? this.cfg.pollIntervalMs;
    const giveUpMs = opts.giveUpMs ?? this.cfg.pollGiveUpMs;
    const scanId = ++this.seq.scan;
    const started = Date.now();
    let polls = 0;
    for (;;) {
      polls++;
      const { entry, answer } = await this.pollOnce(scanId, pos);
      const last = { httpStatus: entry.httpStatus, body: entry.body, ...(entry.error ? { error: entry.error } : {}) };
      if (answer.kind === 'ready') {
        const order = this.openMerchantOrder({ model: 'unattended', posId: pos.id, ...answer.order });
        if (opts.notifyOpened) this.sendNotifications(order.id, opts.notifyOpened);
        return {
          status: 'ready',
          model: 'unattended',
          scanId,
          checkoutId: order.checkoutId,
          merchantOrderId: order.id,
          posId: pos.id,
          totalMinor: order.totalMinor,
          currency: this.cfg.currency,
          externalReference: order.externalReference,
          generation: order.generation,
          polls,
        };
      }
      if (answer.kind === 'invalid') {
        return { status: 'invalid', scanId, posId: pos.id, last, polls, error: answer.error };
      }
      if (opts.maxPolls !== undefined && polls >= opts.maxPolls) {
        return { status: 'not_ready', scanId, posId: pos.id, last, polls };
      }
      const elapsed = Date.now() - started;
      if (elapsed >= giveUpMs) return { status: 'gave_up', scanId, posId: pos.id, last, polls };
      try {
        await delay(Math.min(intervalMs, giveUpMs - elapsed), undefined, { signal: this.lifetime.signal });
      } catch {
        throw new SandboxError(503, 'sandbox_closed', 'the sandbox closed while the scan was polling');
      }
    }
  }

  private async pollOnce(scanId: number, pos: PosRec): Promise<{ entry: PollEntry; answer: PosAnswer }> {
    const startedAt = new Date();
    const entry: PollEntry = {
      scanId,
      posId: pos.id,
      externalId: pos.externalId,
      url: pos.url!,
      at: startedAt.toISOString(),
      durationMs: 0,
      httpStatus: null,
      body: null,
    };
    let answer: PosAnswer;
    try {
      const res = await fetch(pos.url!, {
        method: 'GET',
        headers: { accept: 'application/json', 'user-agent': 'MercadoPago-Sandbox (qrkiosk)' },
        redirect: 'manual',
        signal: AbortSignal.any([this.lifetime.signal, AbortSignal.timeout(this.cfg.httpTimeoutMs)]),
      });
      const text = await res.text();
      entry.httpStatus = res.status;
      const orderVersion = res.headers.get('order-version') ?? undefined;
      if (orderVersion !== undefined) entry.orderVersion = orderVersion;
      try {
        entry.body = text === '' ? null : (JSON.parse(text) as unknown);
      } catch {
        entry.body = text.slice(0, 2000);
      }
      answer = interpretPosAnswer(res.status, orderVersion, entry.body, {
        collectorId: this.cfg.collectorId,
        currency: this.cfg.currency,
        contentType: res.headers.get('content-type'),
      });
    } catch (err) {
      if (this.closed) throw new SandboxError(503, 'sandbox_closed', 'the sandbox closed while the scan was polling');
      entry.error = describeFetchError(err);
      answer = { kind: 'unexpected', reason: entry.error };
    }
    entry.durationMs = Date.now() - startedAt.getTime();
    pushCapped(this.polls, entry);
    this.cfg.logger?.debug(
      { scanId, posId: pos.id, httpStatus: entry.httpStatus, answer: answer.kind },
      'sandbox: polled POS url',
    );
    return { entry, answer };
  }

  private openMerchantOrder(input: MerchantOrderInput): OrderRec {
    const now = nowIso();
    const order: OrderRec = {
      id: ++this.seq.order,
      posId: input.posId,
      model: input.model,
      checkoutId: '',
      generation: input.generation,
      externalReference: input.externalReference,
      notificationUrl: input.notificationUrl,
      items: input.items,
      totalMinor: input.totalMinor,
      paymentIds: [],
      dateCreated: now,
      lastUpdated: now,
    };
    if (input.sponsorId !== undefined) order.sponsorId = input.sponsorId;
    if (input.inStoreOrderId !== undefined) order.inStoreOrderId = input.inStoreOrderId;
    order.checkoutId = this.newCheckout({ kind: 'merchant_order', orderId: order.id });
    this.orders.set(order.id, order);
    this.cfg.logger?.info(
      { merchantOrderId: order.id, model: order.model, externalReference: order.externalReference, totalMinor: order.totalMinor },
      'sandbox: merchant order opened',
    );
    return order;
  }

  private newCheckout(target: { kind: 'merchant_order'; orderId: number } | { kind: 'order'; ordersApiId: string }): string {
    const id = `chk_${++this.seq.checkout}`;
    this.checkouts.set(id, { id, ...target });
    return id;
  }

  private merchantOrderScan(order: OrderRec, scanId: number, checkoutId: string): MerchantOrderScan {
    const scan: MerchantOrderScan = {
      status: 'ready',
      model: order.model,
      scanId,
      checkoutId,
      merchantOrderId: order.id,
      posId: order.posId,
      totalMinor: order.totalMinor,
      currency: this.cfg.currency,
      externalReference: order.externalReference,
      generation: order.generation,
      polls: 0,
    };
    if (order.inStoreOrderId !== undefined) scan.inStoreOrderId = order.inStoreOrderId;
    return scan;
  }

  private ordersApiScan(o: OrdersApiOrderRec, scanId: number): OrdersApiScan {
    return {
      status: 'ready',
      model: 'orders',
      scanId,
      checkoutId: this.newCheckout({ kind: 'order', ordersApiId: o.id }),
      orderId: o.id,
      mode: o.mode,
      posId: o.pos.id,
      totalMinor: o.totalMinor,
      currency: this.cfg.currency,
      externalReference: o.externalReference,
      polls: 0,
    };
  }

  /** A checkout for an instore order: one merchant order per instore order, a new checkout per scan. */
  private instoreScan(rec: InstoreRec, scanId: number, opts: ScanOptions): MerchantOrderScan {
    const firstScan = rec.merchantOrderId === null;
    const order = this.orders.get(this.instore.merchantOrderFor(rec))!;
    if (firstScan && opts.notifyOpened) this.sendNotifications(order.id, opts.notifyOpened);
    return this.merchantOrderScan(order, scanId, this.newCheckout({ kind: 'merchant_order', orderId: order.id }));
  }

  private nothing(status: 'waiting_for_order' | 'nothing_to_pay', scanId: number, posId: number | null, reason: string): ScanResult {
    return { status, scanId, posId, reason, polls: 0, last: { httpStatus: null, body: null } };
  }

  /** The POS sticker of a POS without url: the app shows the order on it, or its waiting screen. */
  private scanAttendedPos(pos: PosRec, opts: ScanOptions): ScanResult {
    const scanId = ++this.seq.scan;
    const instore = this.instore.orderOnPos(pos.id);
    if (instore) return this.instoreScan(instore, scanId, opts);
    const order = this.ordersApi.orderOnPos(pos.id);
    if (order) return this.ordersApiScan(order, scanId);
    return this.nothing('waiting_for_order', scanId, pos.id, `no order on POS ${pos.externalId}: the app shows its waiting screen`);
  }

  /** qr_data of an order (43/06 or the Pix URL): the order it names, if it can still be paid. */
  private scanOrderQr(qr: MercadoPagoQrData, opts: ScanOptions): ScanResult {
    const scanId = ++this.seq.scan;
    const uuid = qr.orderUuid;
    if (uuid === undefined) throw new SandboxError(400, 'invalid_qr', 'the Pix QR names no order (no UUID at the end of its URL)');
    const order = this.ordersApi.byQrUuid(uuid);
    if (order) {
      const why = this.ordersApi.whyNotPayable(order);
      return why ? this.nothing('nothing_to_pay', scanId, order.pos.id, why) : this.ordersApiScan(order, scanId);
    }
    const rec = this.instore.byUuid(uuid);
    if (rec) {
      const why = this.instore.whyNotPayable(rec.id);
      return why ? this.nothing('nothing_to_pay', scanId, rec.pos.id, why) : this.instoreScan(rec, scanId, opts);
    }
    throw new SandboxError(404, 'unknown_order', `the QR names order ${uuid}, which this sandbox never created`);
  }

  /**
   * A QR the seller built offline (01=12, 43/03 collector, 54 amount, 62/05 reference): every scan
   * opens a new merchant order for that amount and reference, as Mercado Pago documents for
   * amount-bearing QRs. Nothing can withdraw it: a late payment is always possible.
   */
  private scanOfflineQr(qr: MercadoPagoQrData): ScanResult {
    if (qr.amountMinor === undefined) {
      throw new SandboxError(400, 'invalid_qr', 'a dynamic QR without an order UUID must carry its amount (54)');
    }
    if (qr.referenceLabel === undefined) {
      throw new SandboxError(400, 'invalid_qr', 'an offline dynamic QR needs a reference label (62/05): it becomes the external_reference');
    }
    if (qr.currency !== this.cfg.currency) {
      throw new SandboxError(400, 'invalid_qr', `the QR is in ${qr.currency}, this sandbox's site sells in ${this.cfg.currency}`);
    }
    const pos = qr.terminalLabel === undefined ? undefined : this.findPosByLabel(qr.terminalLabel);
    const c = this.cfg.currency;
    const title = qr.purpose ?? qr.merchantName;
    const order = this.openMerchantOrder({
      model: 'offline',
      posId: pos?.id ?? null,
      generation: 'v1',
      externalReference: qr.referenceLabel,
      notificationUrl: '',
      items: [{ title, currency_id: c, quantity: 1, unit_price: toDecimalNumber(qr.amountMinor, c) }],
      totalMinor: qr.amountMinor,
    });
    return this.merchantOrderScan(order, ++this.seq.scan, order.checkoutId);
  }

  /**
   * The customer pays a scanned checkout; then Mercado Pago notifies the seller. A checkout whose
   * order was withdrawn after the scan (deleted, canceled, expired, replaced, paid through the other
   * channel of a hybrid order) is refused as Mercado Pago's app would, unless landAfterCancel (or
   * the sandbox's latePayments) asks for the race where the payment lands anyway.
   */
  pay(opts: PayOptions): PayResult {
    const checkout = opts && typeof opts.checkoutId === 'string' ? this.checkouts.get(opts.checkoutId) : undefined;
    if (!checkout) throw new SandboxError(404, 'unknown_checkout', `no checkout "${opts?.checkoutId}": scan first`);
    const outcome = opts.outcome ?? 'approved';
    if (outcome !== 'approved' && outcome !== 'rejected') {
      throw new SandboxError(400, 'bad_outcome', `outcome must be approved or rejected, got ${String(outcome)}`);
    }
    if (opts.amountMinor !== undefined && (!Number.isSafeInteger(opts.amountMinor) || opts.amountMinor <= 0)) {
      throw new SandboxError(400, 'bad_amount', `amountMinor must be a positive whole number of minor units, got ${opts.amountMinor}`);
    }
    // validate notify options before moving money, so a bad option does not leave a silent payment
    const notify = opts.notify === false ? undefined : this.normalizeNotify(opts.notify ?? {});
    const lateAllowed = opts.landAfterCancel ?? this.latePayments;
    if (checkout.kind === 'order') {
      return this.ordersApi.pay(checkout.ordersApiId, opts, lateAllowed, opts.notify === false ? false : (opts.notify ?? {}));
    }
    const order = this.orders.get(checkout.orderId)!;
    const why = order.inStoreOrderId !== undefined ? this.instore.whyNotPayable(order.inStoreOrderId) : undefined;
    if (why && !lateAllowed) {
      throw new SandboxError(
        409,
        'order_not_payable',
        `${why} after the customer scanned it: Mercado Pago's app refuses the payment (set landAfterCancel to emulate a payment that lands anyway)`,
      );
    }
    const amountMinor = opts.amountMinor ?? order.totalMinor;
    const now = nowIso();
    const payment: PaymentRec = {
      id: ++this.seq.payment,
      orderId: order.id,
      posId: order.posId,
      status: outcome,
      wasApproved: outcome === 'approved',
      amountMinor,
      refundedMinor: 0,
      externalReference: order.externalReference,
      description: order.items[0]?.title ?? 'qrkiosk',
      dateCreated: now,
      dateApproved: outcome === 'approved' ? now : null,
      lastUpdated: now,
      refundIds: [],
    };
    this.paymentsById.set(payment.id, payment);
    order.paymentIds.push(payment.id);
    order.lastUpdated = now;
    const view = this.orderView(order);
    if (view.status === 'closed' && order.inStoreOrderId !== undefined) this.instore.markPaid(order.inStoreOrderId);
    this.cfg.logger?.info(
      { paymentId: payment.id, merchantOrderId: order.id, outcome, amountMinor, orderStatus: view.status, late: !!why },
      'sandbox: customer paid',
    );
    const batch = notify ? this.startBatch(order, notify) : { batchId: 0, deliveries: Promise.resolve([]) };
    const result: MerchantOrderPayResult = {
      model: order.model,
      paymentId: payment.id,
      merchantOrderId: order.id,
      status: outcome,
      merchantOrderStatus: view.status === 'closed' ? 'closed' : 'opened',
      lateAfterWithdrawal: !!why,
      batchId: batch.batchId,
      deliveries: batch.deliveries,
    };
    return result;
  }

  // ---- notifications ---------------------------------------------------------------------------

  notify(req: NotifyRequest): NotifyResult {
    const order = this.orders.get(Number(req?.merchantOrderId));
    if (!order) throw new SandboxError(404, 'unknown_merchant_order', `no merchant order ${req?.merchantOrderId}`);
    return this.sendNotifications(order.id, req);
  }

  private sendNotifications(orderId: number, opts: NotifyOptions): NotifyResult {
    const order = this.orders.get(orderId)!;
    const batch = this.startBatch(order, this.normalizeNotify(opts));
    return { merchantOrderId: orderId, ...batch };
  }

  private normalizeNotify(opts: NotifyOptions): NormalizedNotify {
    const form = opts.form ?? 'ipn';
    if (form !== 'ipn' && form !== 'webhook' && form !== 'both') {
      throw new SandboxError(400, 'bad_notify', `notify.form must be ipn, webhook or both, got ${String(form)}`);
    }
    const copies = opts.copies ?? 1;
    if (!Number.isInteger(copies) || copies < 1 || copies > 100) {
      throw new SandboxError(400, 'bad_notify', `notify.copies must be 1..100, got ${copies}`);
    }
    const delayMs = opts.delayMs ?? 0;
    if (!Number.isFinite(delayMs) || delayMs < 0) {
      throw new SandboxError(400, 'bad_notify', `notify.delayMs must be >= 0, got ${delayMs}`);
    }
    const signature: SignatureMode = opts.signature ?? (this.cfg.webhookSecret ? 'valid' : 'none');
    if (signature !== 'valid' && signature !== 'lowercase' && signature !== 'forged' && signature !== 'none') {
      throw new SandboxError(400, 'bad_notify', `notify.signature must be valid, lowercase, forged or none, got ${String(signature)}`);
    }
    if ((signature === 'valid' || signature === 'lowercase') && form !== 'ipn' && !this.cfg.webhookSecret) {
      throw new SandboxError(400, 'no_webhook_secret', 'a valid webhook signature needs the sandbox started with webhookSecret');
    }
    return { form, copies, delayMs, signature, parallel: opts.parallel ?? false };
  }

  private startBatch(order: OrderRec, opts: NormalizedNotify): { batchId: number; deliveries: Promise<Delivery[]> } {
    if (!this.notificationUrlOf(order)) {
      this.cfg.logger?.warn({ merchantOrderId: order.id }, 'sandbox: merchant order has no notification_url and no panel URL is configured: nothing sent');
      return { batchId: 0, deliveries: Promise.resolve([]) };
    }
    const notificationId = ++this.seq.notification;
    const forms: ('ipn' | 'webhook')[] = opts.form === 'both' ? ['ipn', 'webhook'] : [opts.form];
    const makers: ((batchId: number) => OutgoingRequest)[] = [];
    for (const form of forms) {
      for (let copy = 1; copy <= opts.copies; copy++) {
        makers.push((batchId) => this.buildNotification(order, form, copy, batchId, notificationId, opts.signature));
      }
    }
    return this.runBatch(opts, makers);
  }

  private runBatch(opts: NormalizedNotify, makers: ((batchId: number) => OutgoingRequest)[]): { batchId: number; deliveries: Promise<Delivery[]> } {
    const batchId = ++this.seq.batch;
    const run = async (): Promise<Delivery[]> => {
      if (opts.delayMs > 0) {
        try {
          await delay(opts.delayMs, undefined, { signal: this.lifetime.signal });
        } catch {
          return [];
        }
      }
      // built at send time: the webhook ts must be when it is sent (late ones carry a late ts)
      const jobs = makers.map((make) => () => this.send(make(batchId)));
      if (opts.parallel) return Promise.all(jobs.map((j) => j()));
      const out: Delivery[] = [];
      for (const job of jobs) out.push(await job());
      return out;
    };
    const deliveries = run();
    this.batches.set(batchId, deliveries);
    return { batchId, deliveries };
  }

  /** Where a merchant order's notifications go: its notification_url, else the panel's URL. */
  private notificationUrlOf(order: OrderRec): string | undefined {
    return order.notificationUrl || this.panelNotificationUrl || undefined;
  }

  private buildNotification(
    order: OrderRec,
    form: 'ipn' | 'webhook',
    copy: number,
    batchId: number,
    notificationId: number,
    signature: SignatureMode,
  ): OutgoingRequest {
    const moId = String(order.id);
    if (form === 'ipn') {
      return {
        batchId,
        merchantOrderId: order.id,
        form,
        copy,
        method: 'POST',
        url: appendQuery(this.notificationUrlOf(order)!, { topic: 'merchant_order', id: moId }),
        headers: { accept: '*/*', 'user-agent': 'MercadoPago Feed v2.0 merchant_order' },
        signature: 'none',
      };
    }
    const requestId = randomUUID();
    const ts = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: '*/*',
      'user-agent': 'MercadoPago WebHook v1.0 merchant_order',
      'x-request-id': requestId,
    };
    if (signature !== 'none') {
      // merchant order ids are digits: the lowercase manifest is the same as the verbatim one
      const secret = signature === 'forged' ? `${this.cfg.webhookSecret ?? 'none'}:forged` : this.cfg.webhookSecret!;
      headers['x-signature'] = `ts=${ts},v1=${webhookSignature(secret, moId, requestId, ts)}`;
    }
    const body = {
      id: notificationId,
      live_mode: false,
      type: 'topic_merchant_order_wh',
      date_created: nowIso(),
      user_id: this.cfg.collectorId,
      api_version: 'v1',
      action: 'update',
      data: { id: moId },
    };
    return {
      batchId,
      merchantOrderId: order.id,
      form,
      copy,
      method: 'POST',
      url: appendQuery(this.notificationUrlOf(order)!, { 'data.id': moId, type: 'topic_merchant_order_wh' }),
      headers,
      body: JSON.stringify(body),
      signature,
      requestId,
    };
  }

  private async send(req: OutgoingRequest): Promise<Delivery> {
    const record = await deliver(++this.seq.delivery, req, {
      timeoutMs: this.cfg.httpTimeoutMs,
      signal: this.lifetime.signal,
    });
    pushCapped(this.deliveryLog, record);
    this.cfg.logger?.info(
      { form: record.form, url: record.url, httpStatus: record.httpStatus, error: record.error },
      'sandbox: notification delivered',
    );
    return record;
  }

  /** A notification of your own making: forged, unknown topic, wrong id... */
  async notifyRaw(req: NotifyRawRequest): Promise<Delivery> {
    let url: URL;
    try {
      url = new URL(req?.url);
    } catch {
      throw new SandboxError(400, 'bad_url', `notifyRaw needs an absolute http(s) url, got ${String(req?.url)}`);
    }
    if (url.protocol !== 'http:' && url.protocol !== 'https:') {
      throw new SandboxError(400, 'bad_url', `notifyRaw url must be http(s), got ${url.protocol}`);
    }
    const headers: Record<string, string> = {};
    for (const [k, v] of Object.entries(req.headers ?? {})) headers[k.toLowerCase()] = String(v);
    let body: string | undefined;
    if (typeof req.body === 'string') body = req.body;
    else if (req.body !== undefined) {
      body = JSON.stringify(req.body);
      headers['content-type'] ??= 'application/json';
    }
    const out: OutgoingRequest = {
      batchId: ++this.seq.batch,
      merchantOrderId: null,
      form: 'raw',
      copy: 1,
      method: (req.method ?? 'POST').toUpperCase(),
      url: appendQuery(req.url, req.query ?? {}),
      headers,
      signature: headers['x-signature'] ? 'forged' : 'none',
    };
    if (body !== undefined) out.body = body;
    if (headers['x-request-id']) out.requestId = headers['x-request-id'];
    const delivery = this.send(out);
    this.batches.set(out.batchId, delivery.then((d) => [d]));
    return delivery;
  }

  batch(id: number): Promise<Delivery[]> | undefined {
    return this.batches.get(id);
  }

  // ---- inspection ------------------------------------------------------------------------------

  /** Every refund, through /v1/payments and through the Orders API: the ledger tests check. */
  listRefundRecords(): RefundRecord[] {
    const viaPayments: RefundRecord[] = [...this.refundsById.values()].map((r) => ({
      id: r.id,
      api: 'payments' as const,
      paymentId: r.paymentId,
      merchantOrderId: r.orderId,
      externalReference: this.paymentsById.get(r.paymentId)?.externalReference ?? '',
      amountMinor: r.amountMinor,
      amount: toDecimalNumber(r.amountMinor, this.cfg.currency),
      currency: this.cfg.currency,
      idempotencyKey: r.idempotencyKey,
      dateCreated: r.dateCreated,
      replays: r.replays,
    }));
    return [...viaPayments, ...this.ordersApi.refundRecords()].sort((a, b) => a.dateCreated.localeCompare(b.dateCreated));
  }

  listPayments(): MpPayment[] {
    return [...this.paymentsById.values()].map((p) => this.paymentView(p));
  }

  listOrders(): MpMerchantOrder[] {
    return [...this.orders.values()].map((o) => this.orderView(o));
  }

  listDeliveries(): Delivery[] {
    return [...this.deliveryLog];
  }

  listPolls(): PollEntry[] {
    return [...this.polls];
  }

  listPos(): MpPos[] {
    return [...this.pos.values()].map((p) => this.posView(p));
  }

  listStores(): MpStore[] {
    return [...this.stores.values()].map((s) => this.storeView(s));
  }

  /** The QR payload of a POS (for the PNG route). */
  posQrCode(rawId: string): string | undefined {
    const id = numericId(rawId);
    return id === undefined ? undefined : this.pos.get(id)?.qrCode;
  }

  async close(): Promise<void> {
    this.lifetime.abort();
    this.ordersApi.close();
    await Promise.allSettled([...this.batches.values()]);
  }

  // ---- helpers ---------------------------------------------------------------------------------

  private requirePos(rawId: string): PosRec {
    const id = numericId(rawId);
    if (id === undefined) throw mpError(400, 'INVALID_POS_ID', 'The ID of the pos is invalid, it must be numeric.');
    const rec = this.pos.get(id);
    if (!rec) throw mpError(404, 'not_found', `There is no pos with id ${rawId} for this user`);
    return rec;
  }

  private requirePayment(rawId: string): PaymentRec {
    const id = numericId(rawId);
    const rec = id === undefined ? undefined : this.paymentsById.get(id);
    if (!rec) {
      throw mpError(404, 'not_found', 'Payment not found', [{ code: 2000, description: 'Payment not found' }]);
    }
    return rec;
  }

  /** The QR names the POS by external_id, or "#<id>" when the external_id is too long for 62/07. */
  private terminalLabelFor(rec: { id: number; externalId: string }): string {
    return rec.externalId.length <= MP_QR_LIMITS.terminalLabel ? rec.externalId : `#${rec.id}`;
  }

  private findPosByLabel(label: string): PosRec | undefined {
    if (label.startsWith('#')) return this.pos.get(Number(label.slice(1)));
    return [...this.pos.values()].find((p) => p.externalId === label);
  }

  /** The name and city a POS's QRs show (59, 60): the store's. */
  private qrIdentity(rec: PosRec, store: StoreRec): { merchantName: string; merchantCity: string } {
    const city = typeof store.location?.city_name === 'string' && store.location.city_name.trim() ? store.location.city_name : DEFAULT_CITY[this.cfg.currency];
    return {
      merchantName: truncate(store.name.trim() || rec.name, MP_QR_LIMITS.merchantName),
      merchantCity: truncate(city.trim(), MP_QR_LIMITS.merchantCity),
    };
  }

  private buildPosQr(rec: PosRec, store: StoreRec): string {
    return buildMercadoPagoQr({
      collectorId: this.cfg.collectorId,
      currency: this.cfg.currency,
      ...this.qrIdentity(rec, store),
      terminalLabel: this.terminalLabelFor(rec),
    });
  }

  private posRef(rec: PosRec): PosRef {
    const ref: PosRef = {
      id: rec.id,
      externalId: rec.externalId,
      storeId: rec.storeId,
      ...this.qrIdentity(rec, this.stores.get(rec.storeId)!),
      terminalLabel: this.terminalLabelFor(rec),
    };
    if (rec.externalStoreId !== undefined) ref.externalStoreId = rec.externalStoreId;
    if (rec.url !== undefined) ref.url = rec.url;
    return ref;
  }

  private validatePosInput(
    body: unknown,
  ): { name: string; fixedAmount: boolean; category?: number; store: StoreRec; externalId: string; url?: string } {
    const bad = (error: string, message: string): MpApiError => mpError(400, error, message);
    if (!isObject(body)) throw bad('MISSING_BODY', 'HTTP body is required to create pos.');
    for (const key of Object.keys(body)) {
      if (!POS_FIELDS.has(key)) {
        throw bad('UNKNOWN_FIELD_EXCEPTION', `The field ${key} is not allowed for this operation or is unknown.`);
      }
    }
    if (typeof body.name !== 'string' || body.name.trim() === '') throw bad('INVALID_NAME', 'NAME must be string.');
    if (body.name.length >= 45) throw bad('NAME_TOO_LONG', 'The NAME must be less than 45 characters.');
    if (typeof body.fixed_amount !== 'boolean') throw bad('INVALID_FIXED_AMOUNT', 'FIXED_AMOUNT must be boolean.');
    if (body.category !== undefined && typeof body.category !== 'number') {
      throw bad('INVALID_CATEGORY', 'CATEGORY must be numeric.');
    }
    let store: StoreRec | undefined;
    if (body.store_id !== undefined) {
      const id = numericId(body.store_id);
      if (id === undefined) throw bad('INVALID_STORE_ID', 'STORE_ID must be numeric.');
      store = this.stores.get(id);
      if (!store) throw bad('INEXISTENT_STORE_ID', `The STORE_ID ${body.store_id} does not refer to any existing store.`);
    }
    if (body.external_store_id !== undefined) {
      if (typeof body.external_store_id !== 'string') {
        throw bad('INVALID_EXTERNAL_STORE_ID', 'EXTERNAL_STORE_ID muste be string.');
      }
      const byExternal = [...this.stores.values()].find((s) => s.externalId === body.external_store_id);
      if (!byExternal) {
        throw bad('INEXISTENT_EXTERNAL_STORE_ID', 'The EXTERNAL_STORE_ID does not refer to any existing store.');
      }
      if (store && store.id !== byExternal.id) {
        throw bad('EXTERNAL_STORE_ID_NOT_MATCH', 'The EXTERNAL_STORE_ID does not refer to the indicated STORE_ID.');
      }
      store = byExternal;
    }
    if (!store) throw bad('STORE_REQUIRED', 'store_id or external_store_id is required: every POS belongs to a store.');
    if (typeof body.external_id !== 'string' || !ALNUM.test(body.external_id)) {
      throw bad(
        'INVALID_EXTERNAL_ID',
        'The EXTERNAL_ID field must be alphanumeric, only letters and numbers. No spaces or hyphens, or special characters.',
      );
    }
    if (body.external_id.length >= 40) throw bad('EXTERNAL_ID_TOO_LONG', 'The EXTERNAL_ID must be less than 40 characters.');
    let url: string | undefined;
    if (body.url !== undefined) {
      if (typeof body.url !== 'string') throw bad('INVALID_URL', 'The URL must be string and muste have the format of a valid url');
      try {
        const u = new URL(body.url);
        if (u.protocol !== 'http:' && u.protocol !== 'https:') throw new Error('protocol');
      } catch {
        throw bad('INVALID_URL', 'The URL must be string and muste have the format of a valid url');
      }
      if (body.url.length >= 300) throw bad('URL_TOO_LONG', 'The URL must be less than 300 characters.');
      if (body.fixed_amount !== true) {
        throw bad(
          'FIXED_AMOUNT_FALSE',
          'If the URL field is indicated, the FIXED_AMOUNT field must be true. We do not support the open amount modality in this case.',
        );
      }
      url = body.url;
    }
    const out: { name: string; fixedAmount: boolean; category?: number; store: StoreRec; externalId: string; url?: string } = {
      name: body.name,
      fixedAmount: body.fixed_amount,
      store,
      externalId: body.external_id,
    };
    if (typeof body.category === 'number') out.category = body.category;
    if (url !== undefined) out.url = url;
    return out;
  }

  // ---- wire views ------------------------------------------------------------------------------

  private storeView(s: StoreRec): MpStore {
    const view: MpStore & Record<string, unknown> = {
      id: s.id,
      name: s.name,
      date_creation: s.dateCreated,
    };
    if (s.externalId !== undefined) view.external_id = s.externalId;
    if (s.location !== undefined) view.location = s.location;
    if (s.businessHours !== undefined) view.business_hours = s.businessHours;
    return view;
  }

  private posView(p: PosRec): MpPos {
    const base = this.cfg.baseUrl();
    const view: MpPos & Record<string, unknown> = {
      id: p.id,
      name: p.name,
      fixed_amount: p.fixedAmount,
      store_id: p.storeId,
      external_id: p.externalId,
      url: p.url ?? null,
      uuid: p.uuid,
      user_id: this.cfg.collectorId,
      status: 'active',
      qr: {
        image: `${base}/_sandbox/qr/${p.id}.png`,
        template_image: `${base}/_sandbox/qr/${p.id}.png`,
      },
      qr_code: p.qrCode,
      date_created: p.dateCreated,
      date_last_updated: p.dateLastUpdated,
    };
    if (p.externalStoreId !== undefined) view.external_store_id = p.externalStoreId;
    if (p.category !== undefined) view.category = p.category;
    return view;
  }

  private orderView(o: OrderRec): MpMerchantOrder {
    const c = this.cfg.currency;
    const payments = o.paymentIds.map((id) => this.paymentsById.get(id)!);
    const paidMinor = payments.filter((p) => p.wasApproved).reduce((s, p) => s + p.amountMinor, 0);
    const refundedMinor = payments.reduce((s, p) => s + p.refundedMinor, 0);
    const closed = paidMinor >= o.totalMinor;
    const orderStatus = closed
      ? refundedMinor === 0
        ? 'paid'
        : refundedMinor >= paidMinor
          ? 'reverted'
          : 'partially_reverted'
      : paidMinor > 0
        ? 'partially_paid'
        : 'payment_required';
    // a withdrawn instore order (deleted, expired, replaced) leaves its unpaid merchant order expired
    const withdrawn = paidMinor === 0 && o.inStoreOrderId !== undefined && this.instore.whyNotPayable(o.inStoreOrderId) !== undefined;
    const status: MpMerchantOrder['status'] = closed ? 'closed' : withdrawn ? 'expired' : 'opened';
    const view: MpMerchantOrder & Record<string, unknown> = {
      id: o.id,
      status,
      order_status: withdrawn ? 'expired' : orderStatus,
      external_reference: o.externalReference,
      preference_id: null,
      site_id: CURRENCIES[c].site,
      collector: { id: this.cfg.collectorId, nickname: `SANDBOX${this.cfg.collectorId}` },
      notification_url: o.notificationUrl,
      items: o.items.map((i) => ({ ...i })),
      total_amount: toDecimalNumber(o.totalMinor, c),
      paid_amount: toDecimalNumber(paidMinor, c),
      refunded_amount: toDecimalNumber(refundedMinor, c),
      shipping_cost: 0,
      cancelled: false,
      payments: payments.map((p) => this.orderPaymentView(p)),
      date_created: o.dateCreated,
      last_updated: o.lastUpdated,
      is_test: true,
      marketplace: 'NONE',
      application_id: null,
      pos_id: o.posId,
    };
    if (o.sponsorId !== undefined) view.sponsor_id = o.sponsorId;
    return view;
  }

  private orderPaymentView(p: PaymentRec): MpMerchantOrderPayment {
    const c = this.cfg.currency;
    return {
      id: p.id,
      transaction_amount: toDecimalNumber(p.amountMinor, c),
      total_paid_amount: toDecimalNumber(p.amountMinor, c),
      currency_id: c,
      status: p.status,
      status_detail: this.statusDetail(p),
      operation_type: 'regular_payment',
      date_approved: p.dateApproved,
      date_created: p.dateCreated,
      amount_refunded: toDecimalNumber(p.refundedMinor, c),
    };
  }

  private statusDetail(p: PaymentRec): string {
    if (p.status === 'rejected') return 'cc_rejected_other_reason';
    if (p.status === 'refunded') return 'refunded';
    return p.refundedMinor > 0 ? 'partially_refunded' : 'accredited';
  }

  private paymentView(p: PaymentRec): MpPayment {
    const c = this.cfg.currency;
    const order = this.orders.get(p.orderId);
    const view: MpPayment & Record<string, unknown> = {
      id: p.id,
      status: p.status,
      status_detail: this.statusDetail(p),
      external_reference: p.externalReference,
      transaction_amount: toDecimalNumber(p.amountMinor, c),
      transaction_amount_refunded: toDecimalNumber(p.refundedMinor, c),
      currency_id: c,
      order: { id: p.orderId, type: 'mercadopago' },
      date_created: p.dateCreated,
      date_approved: p.dateApproved,
      date_last_updated: p.lastUpdated,
      collector_id: this.cfg.collectorId,
      description: p.description,
      operation_type: 'regular_payment',
      payment_method_id: 'account_money',
      payment_type_id: 'account_money',
      live_mode: false,
      pos_id: p.posId === null ? null : String(p.posId),
      notification_url: order?.notificationUrl ?? null,
      refunds: p.refundIds.map((id) => this.refundView(this.refundsById.get(id)!)),
    };
    return view;
  }

  private refundView(r: RefundRec): MpRefund {
    const amount = toDecimalNumber(r.amountMinor, this.cfg.currency);
    const view: MpRefund & Record<string, unknown> = {
      id: r.id,
      payment_id: r.paymentId,
      amount,
      status: 'approved',
      date_created: r.dateCreated,
      source: { id: String(this.cfg.collectorId), name: 'sandbox', type: 'collector' },
      amount_refunded_to_payer: amount,
      adjustment_amount: 0,
      refund_mode: 'standard',
      unique_sequence_number: null,
      metadata: {},
      reason: null,
    };
    return view;
  }
}
