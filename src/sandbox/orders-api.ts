// The Orders API for in-person QR (POST /v1/orders with type "qr"): create (idempotent by
// X-Idempotency-Key), get, cancel, refund, search, and the "order" webhooks sent to the one URL the
// seller configures in "Your integrations" (orders carry no notification_url).
//
// Lifecycle: created -> processed (paid) -> refunded; created -> canceled (API) | expired
// (expiration_time, default PT15M). Error bodies have the Orders API shape {errors:[{code,message,details}]}.
// Codes published by Mercado Pago are used where they exist (empty_required_header,
// invalid_idempotency_key_length, required_properties, unsupported_properties, property_value,
// invalid_total_amount, invalid_path_param, refund_amount_exceeds); the state-conflict codes
// (order_already_canceled, cannot_cancel_processed_order, order_expired, order_not_processed,
// order_already_refunded, pos_has_open_order) are the sandbox's own names for answers MP does not
// publish: the relay must decide by HTTP status (409) and by re-reading the order, never by code.

import { createHmac, randomBytes, randomUUID } from 'node:crypto';
import { CURRENCIES, toDecimalNumber, toDecimalString } from '../core/money.js';
import { buildMercadoPagoOrderQr } from '../emv/index.js';
import type { MpOrder, MpOrderItemInput, MpOrderPayment, MpOrderRefund, MpOrderSearch, MpQrMode } from '../mercadopago/types.js';
import { AmountRuleError, ordersAmountMinor } from './amounts.js';
import { MpApiError, SandboxError, canonicalJson, isObject, nowIso, ordersError } from './api-error.js';
import type { PosRef, SandboxHost } from './host.js';
import { appendQuery, webhookSignature, type OutgoingRequest } from './notify.js';
import type {
  Delivery,
  NotifyOptions,
  NotifyOrderRequest,
  NotifyOrderResult,
  OrdersApiPayResult,
  OrderWebhookAction,
  PayOptions,
  RefundRecord,
  SignatureMode,
} from './types.js';

export const DEFAULT_EXPIRATION = 'PT15M';
const MAX_EXPIRATION_S = 30 * 24 * 3600;
const MAX_KEY_LENGTH = 128;
const ORDER_ID = /^ORD[0-9A-Z]{26}$/;
const EXTERNAL_REFERENCE = /^[A-Za-z0-9_-]{1,64}$/;
const DURATION = /^P(?:(\d+)D)?(?:T(?:(\d+)H)?(?:(\d+)M)?(?:(\d+)S)?)?$/;
const TOP_LEVEL = new Set([
  'type',
  'total_amount',
  'external_reference',
  'description',
  'expiration_time',
  'config',
  'transactions',
  'items',
  'processing_mode',
  'integration_data',
  'taxes',
  'discounts',
]);
const CROCKFORD = '0123456789ABCDEFGHJKMNPQRSTVWXYZ';

/** "ORD" + 26 Crockford base32 characters, the shape of Mercado Pago's order ids. */
function newId(prefix: string): string {
  const bytes = randomBytes(26);
  let out = prefix;
  for (const b of bytes) out += CROCKFORD[b % 32];
  return out;
}

/** ISO 8601 duration (days, hours, minutes, seconds) in seconds; undefined when not one. */
export function durationSeconds(text: string): number | undefined {
  const m = DURATION.exec(text);
  if (!m || text === 'P' || text.endsWith('T')) return undefined;
  const [, d = '0', h = '0', min = '0', s = '0'] = m;
  return Number(d) * 86400 + Number(h) * 3600 + Number(min) * 60 + Number(s);
}

type OrderStatus = 'created' | 'processed' | 'canceled' | 'expired' | 'refunded';

interface PaymentRec {
  id: string;
  amountMinor: number;
  paidMinor: number;
  refundedMinor: number;
  status: string;
  statusDetail: string;
}

interface RefundRec {
  id: string;
  transactionId: string;
  amountMinor: number;
  idempotencyKey: string;
  dateCreated: string;
  replays: number;
}

interface OrderRec {
  id: string;
  uuid: string;
  externalReference: string;
  description?: string;
  mode: MpQrMode;
  pos: PosRef;
  totalMinor: number;
  items?: MpOrderItemInput[];
  expirationTime: string;
  expiresAt: number;
  status: OrderStatus;
  statusDetail: string;
  createdDate: string;
  lastUpdated: string;
  qrData?: string;
  payments: PaymentRec[];
  refunds: RefundRec[];
}

export interface OrdersApiSettings {
  webhookUrl: string | undefined;
  signature: SignatureMode | undefined;
}

function required(missing: string): MpApiError {
  return ordersError(400, 'required_properties', `required property '${missing}' is missing`, [`required property '${missing}' is missing`]);
}

function badValue(field: string, why: string): MpApiError {
  return ordersError(400, 'property_value', `${field}: ${why}`, [`${field}: ${why}`]);
}

export class OrdersApi {
  private readonly orders = new Map<string, OrderRec>();
  private readonly byUuid = new Map<string, string>();
  /** "<op>:<key>" -> what the first request with that key did */
  private readonly keys = new Map<string, { hash: string; orderId: string }>();
  private readonly timers = new Set<NodeJS.Timeout>();
  private notificationSeq = 7_000_000_000;

  constructor(
    private readonly host: SandboxHost,
    readonly settings: OrdersApiSettings,
  ) {}

  // ---- API ---------------------------------------------------------------------------------------

  create(idempotencyKey: string | undefined, body: unknown): MpOrder {
    const key = this.requireKey(idempotencyKey);
    const prev = this.keys.get(`create:${key}`);
    if (prev) {
      if (prev.hash !== canonicalJson(body)) {
        throw ordersError(409, 'idempotency_key_already_used', `X-Idempotency-Key ${key} was already used to create a different order (${prev.orderId})`);
      }
      return this.view(this.orders.get(prev.orderId)!);
    }
    const input = this.parseCreate(body);
    if (input.mode !== 'dynamic') {
      const open = this.orderOnPos(input.pos.id);
      if (open) {
        throw ordersError(409, 'pos_has_open_order', `point of sale ${input.pos.externalId} already has order ${open.id} on its QR; cancel it first`);
      }
    }
    const now = nowIso();
    const rec: OrderRec = {
      id: newId('ORD'),
      uuid: randomUUID(),
      externalReference: input.externalReference,
      mode: input.mode,
      pos: input.pos,
      totalMinor: input.totalMinor,
      expirationTime: input.expirationTime,
      expiresAt: Date.now() + input.expirationSeconds * 1000,
      status: 'created',
      statusDetail: 'created',
      createdDate: now,
      lastUpdated: now,
      payments: [{ id: newId('PAY'), amountMinor: input.totalMinor, paidMinor: 0, refundedMinor: 0, status: 'created', statusDetail: 'ready_to_process' }],
      refunds: [],
    };
    if (input.description !== undefined) rec.description = input.description;
    if (input.items !== undefined) rec.items = input.items;
    if (rec.mode !== 'static') {
      rec.qrData = buildMercadoPagoOrderQr({
        orderUuid: rec.uuid,
        currency: this.host.currency,
        merchantName: rec.pos.merchantName,
        merchantCity: rec.pos.merchantCity,
        terminalLabel: rec.pos.terminalLabel,
      });
    }
    this.orders.set(rec.id, rec);
    this.byUuid.set(rec.uuid, rec.id);
    this.keys.set(`create:${key}`, { hash: canonicalJson(body), orderId: rec.id });
    this.scheduleExpiry(rec);
    this.host.logger?.info({ orderId: rec.id, mode: rec.mode, pos: rec.pos.externalId, totalMinor: rec.totalMinor }, 'sandbox: Orders API order created');
    return this.view(rec);
  }

  get(id: string): MpOrder {
    return this.view(this.require(id));
  }

  cancel(id: string, idempotencyKey: string | undefined): MpOrder {
    const rec = this.require(id);
    const key = idempotencyKey?.trim() ? `cancel:${idempotencyKey}` : undefined;
    if (key) {
      const prev = this.keys.get(key);
      if (prev) {
        if (prev.orderId !== rec.id) {
          throw ordersError(409, 'idempotency_key_already_used', `X-Idempotency-Key ${idempotencyKey} was already used to cancel order ${prev.orderId}`);
        }
        return this.view(rec);
      }
    }
    if (rec.status === 'canceled') throw ordersError(409, 'order_already_canceled', `order ${rec.id} is already canceled`);
    if (rec.status === 'expired') throw ordersError(409, 'order_expired', `order ${rec.id} expired at ${new Date(rec.expiresAt).toISOString()}; there is nothing to cancel`);
    if (rec.status !== 'created') {
      throw ordersError(409, 'cannot_cancel_processed_order', `order ${rec.id} is ${rec.status}: a paid order cannot be canceled, refund it instead`);
    }
    this.settle(rec, 'canceled');
    if (key) this.keys.set(key, { hash: '', orderId: rec.id });
    this.webhook(rec, 'order.canceled');
    return this.view(rec);
  }

  refund(id: string, idempotencyKey: string | undefined, body: unknown): MpOrder {
    const key = this.requireKey(idempotencyKey);
    const rec = this.require(id);
    const prev = this.keys.get(`refund:${key}`);
    if (prev) {
      if (prev.orderId !== rec.id || prev.hash !== canonicalJson(body ?? {})) {
        throw ordersError(409, 'idempotency_key_already_used', `X-Idempotency-Key ${key} was already used for a different refund (order ${prev.orderId})`);
      }
      for (const r of rec.refunds) if (r.idempotencyKey === key) r.replays++;
      return this.view(rec);
    }
    if (rec.status === 'refunded') throw ordersError(409, 'order_already_refunded', `order ${rec.id} is already fully refunded`);
    // money that reached the seller can always be given back, even on an order that is not
    // processed (an underpayment, then canceled): only an order nobody paid has nothing to refund
    if (rec.payments.every((p) => p.paidMinor - p.refundedMinor === 0)) {
      throw ordersError(409, 'order_not_processed', `order ${rec.id} is ${rec.status} and holds no paid amount: there is nothing to refund`);
    }
    const c = this.host.currency;
    const plan: { payment: PaymentRec; amountMinor: number }[] = [];
    if (body === undefined || body === null || (isObject(body) && body.transactions === undefined && Object.keys(body).length === 0)) {
      for (const p of rec.payments) if (p.paidMinor - p.refundedMinor > 0) plan.push({ payment: p, amountMinor: p.paidMinor - p.refundedMinor });
    } else {
      if (!isObject(body) || !Array.isArray(body.transactions) || body.transactions.length === 0) {
        throw badValue('transactions', 'a partial refund lists transactions: [{"id": "<payment id>", "amount": "10.00"}]; omit the body for a full refund');
      }
      for (const [i, t] of body.transactions.entries()) {
        if (!isObject(t)) throw badValue(`transactions[${i}]`, 'must be an object');
        const p = rec.payments.find((x) => x.id === t.id);
        if (!p) throw badValue(`transactions[${i}].id`, `${JSON.stringify(t.id)} is not a payment of order ${rec.id}`);
        const amountMinor = this.amount(t.amount, `transactions[${i}].amount`);
        if (amountMinor > p.paidMinor - p.refundedMinor) {
          throw ordersError(400, 'refund_amount_exceeds', `refund of ${toDecimalString(amountMinor, c)} exceeds the available ${toDecimalString(p.paidMinor - p.refundedMinor, c)} of ${p.id}`);
        }
        plan.push({ payment: p, amountMinor });
      }
    }
    const now = nowIso();
    for (const { payment, amountMinor } of plan) {
      payment.refundedMinor += amountMinor;
      if (payment.refundedMinor >= payment.paidMinor) {
        payment.status = 'refunded';
        payment.statusDetail = 'refunded';
      } else payment.statusDetail = 'partially_refunded';
      rec.refunds.push({ id: newId('REF'), transactionId: payment.id, amountMinor, idempotencyKey: key, dateCreated: now, replays: 0 });
    }
    const left = rec.payments.reduce((s, p) => s + p.paidMinor - p.refundedMinor, 0);
    if (left === 0 && rec.status === 'processed') rec.status = 'refunded';
    rec.statusDetail = left === 0 ? 'refunded' : 'partially_refunded';
    rec.lastUpdated = now;
    this.keys.set(`refund:${key}`, { hash: canonicalJson(body ?? {}), orderId: rec.id });
    this.host.logger?.info({ orderId: rec.id, amountMinor: plan.reduce((s, p) => s + p.amountMinor, 0) }, 'sandbox: Orders API refund');
    this.webhook(rec, 'order.refunded');
    return this.view(rec);
  }

  search(query: Record<string, unknown>): MpOrderSearch {
    for (const k of ['begin_date', 'end_date'] as const) if (typeof query[k] !== 'string') throw required(k);
    const begin = Date.parse(String(query.begin_date));
    const end = Date.parse(String(query.end_date));
    if (Number.isNaN(begin)) throw badValue('begin_date', 'must be an ISO 8601 date-time');
    if (Number.isNaN(end)) throw badValue('end_date', 'must be an ISO 8601 date-time');
    let list = [...this.orders.values()].filter((o) => {
      const at = Date.parse(o.createdDate);
      return at >= begin && at <= end;
    });
    if (typeof query.external_reference === 'string') list = list.filter((o) => o.externalReference === query.external_reference);
    list.forEach((o) => this.refresh(o));
    if (typeof query.status === 'string') list = list.filter((o) => o.status === query.status);
    const pageSize = Math.min(100, Math.max(1, Number(query.page_size ?? 50) || 50));
    const page = Math.max(1, Number(query.page ?? 1) || 1);
    const data = list.slice((page - 1) * pageSize, page * pageSize).map((o) => this.view(o));
    return { data, paging: { total: list.length, total_pages: Math.ceil(list.length / pageSize), offset: (page - 1) * pageSize, limit: pageSize } };
  }

  // ---- the customer's app --------------------------------------------------------------------------

  /** The payable static or hybrid order on a POS, if any. */
  orderOnPos(posId: number): OrderRec | undefined {
    for (const o of this.orders.values()) {
      if (o.pos.id !== posId || o.mode === 'dynamic') continue;
      this.refresh(o);
      if (o.status === 'created') return o;
    }
    return undefined;
  }

  byQrUuid(uuid: string): OrderRec | undefined {
    const id = this.byUuid.get(uuid.toLowerCase());
    const rec = id === undefined ? undefined : this.orders.get(id);
    if (rec) this.refresh(rec);
    return rec;
  }

  whyNotPayable(rec: OrderRec): string | undefined {
    this.refresh(rec);
    return rec.status === 'created' ? undefined : `order ${rec.id} is ${rec.status}`;
  }

  pay(orderId: string, opts: PayOptions, lateAllowed: boolean, notify: NotifyOptions | false): OrdersApiPayResult {
    const rec = this.orders.get(orderId);
    if (!rec) throw new SandboxError(404, 'unknown_order', `no Orders API order ${orderId}`);
    const why = this.whyNotPayable(rec);
    if (why && !lateAllowed) {
      throw new SandboxError(409, 'order_not_payable', `${why}: Mercado Pago's app refuses to pay it (set landAfterCancel to emulate a payment that lands anyway)`);
    }
    const outcome = opts.outcome ?? 'approved';
    const amountMinor = opts.amountMinor ?? rec.totalMinor;
    let payment = rec.payments.find((p) => p.paidMinor === 0 && p.status !== 'canceled' && p.status !== 'expired');
    if (!payment) {
      payment = { id: newId('PAY'), amountMinor: rec.totalMinor, paidMinor: 0, refundedMinor: 0, status: 'created', statusDetail: 'ready_to_process' };
      rec.payments.push(payment);
    }
    if (outcome === 'rejected') {
      payment.status = 'failed';
      payment.statusDetail = 'rejected_by_issuer';
    } else {
      payment.paidMinor = amountMinor;
      payment.status = 'processed';
      payment.statusDetail = 'accredited';
      const paid = rec.payments.reduce((s, p) => s + p.paidMinor, 0);
      if (paid >= rec.totalMinor) {
        // a late payment turns even a canceled or expired order into a paid one: what the relay reads
        rec.status = 'processed';
        rec.statusDetail = 'accredited';
      } else rec.statusDetail = 'partially_paid';
    }
    rec.lastUpdated = nowIso();
    this.host.logger?.info({ orderId: rec.id, outcome, amountMinor, status: rec.status, late: !!why }, 'sandbox: customer paid an Orders API order');
    const batch = notify === false || rec.status !== 'processed' ? { batchId: 0, deliveries: Promise.resolve([] as Delivery[]) } : this.webhook(rec, 'order.processed', notify);
    return {
      model: 'orders',
      paymentId: payment.id,
      orderId: rec.id,
      status: outcome,
      orderStatus: rec.status,
      lateAfterWithdrawal: !!why,
      batchId: batch.batchId,
      deliveries: batch.deliveries,
    };
  }

  expire(id: string): boolean {
    const rec = this.orders.get(id);
    if (!rec) return false;
    if (rec.status === 'created') {
      rec.expiresAt = Math.min(rec.expiresAt, Date.now());
      this.refresh(rec);
    }
    return true;
  }

  notify(req: NotifyOrderRequest): NotifyOrderResult {
    const rec = this.orders.get(req?.orderId);
    if (!rec) throw new SandboxError(404, 'unknown_order', `no Orders API order ${req?.orderId}`);
    if (!this.settings.webhookUrl) throw new SandboxError(409, 'no_orders_webhook_url', 'configure ordersWebhookUrl first (startSandbox option or /_sandbox/config)');
    const action = req.action ?? this.actionOf(rec);
    const { orderId: _o, action: _a, ...opts } = req;
    const batch = this.webhook(rec, action, opts);
    return { orderId: rec.id, ...batch };
  }

  // ---- inspection --------------------------------------------------------------------------------

  list(): MpOrder[] {
    return [...this.orders.values()].map((o) => this.view(o));
  }

  refundRecords(): RefundRecord[] {
    const c = this.host.currency;
    const out: RefundRecord[] = [];
    for (const o of this.orders.values()) {
      for (const r of o.refunds) {
        out.push({
          id: r.id,
          api: 'orders',
          paymentId: r.transactionId,
          merchantOrderId: null,
          orderId: o.id,
          externalReference: o.externalReference,
          amountMinor: r.amountMinor,
          amount: toDecimalNumber(r.amountMinor, c),
          currency: c,
          idempotencyKey: r.idempotencyKey,
          dateCreated: r.dateCreated,
          replays: r.replays,
        });
      }
    }
    return out;
  }

  close(): void {
    for (const t of this.timers) clearTimeout(t);
    this.timers.clear();
  }

  // ---- internals -----------------------------------------------------------------------------------

  private requireKey(key: string | undefined): string {
    if (key === undefined || key.trim() === '') throw ordersError(400, 'empty_required_header', 'Missing HTTP header: X-Idempotency-Key');
    if (key.length > MAX_KEY_LENGTH) throw ordersError(400, 'invalid_idempotency_key_length', `X-Idempotency-Key length exceeds ${MAX_KEY_LENGTH} characters`);
    return key;
  }

  private require(id: string): OrderRec {
    if (!ORDER_ID.test(id)) throw ordersError(400, 'invalid_path_param', `order id ${JSON.stringify(id)} is invalid: it must start with ORD followed by 26 characters`);
    const rec = this.orders.get(id);
    if (!rec) throw ordersError(404, 'order_not_found', `order ${id} not found`);
    this.refresh(rec);
    return rec;
  }

  private amount(value: unknown, field: string): number {
    try {
      return ordersAmountMinor(value, this.host.currency, field);
    } catch (err) {
      if (err instanceof AmountRuleError) throw badValue(field, err.message);
      throw err;
    }
  }

  private parseCreate(body: unknown): {
    externalReference: string;
    description?: string;
    mode: MpQrMode;
    pos: PosRef;
    totalMinor: number;
    items?: MpOrderItemInput[];
    expirationTime: string;
    expirationSeconds: number;
  } {
    if (!isObject(body)) throw ordersError(400, 'json_syntax_error', 'the body must be a JSON object');
    const unsupported = Object.keys(body).filter((k) => !TOP_LEVEL.has(k));
    if (unsupported.length) {
      throw ordersError(400, 'unsupported_properties', `unsupported properties: ${unsupported.join(', ')}`, unsupported.map((k) => `property '${k}' is not supported`));
    }
    for (const k of ['type', 'total_amount', 'external_reference', 'config', 'transactions'] as const) if (body[k] === undefined) throw required(k);
    if (body.type !== 'qr') throw badValue('type', `must be "qr" for QR orders, got ${JSON.stringify(body.type)}`);
    const qr = isObject(body.config) && isObject(body.config.qr) ? body.config.qr : undefined;
    if (!qr) throw required('config.qr');
    if (qr.external_pos_id === undefined) throw required('config.qr.external_pos_id');
    if (qr.mode === undefined) throw required('config.qr.mode');
    const mode = qr.mode;
    if (mode !== 'static' && mode !== 'dynamic' && mode !== 'hybrid') throw badValue('config.qr.mode', `must be static, dynamic or hybrid, got ${JSON.stringify(mode)}`);
    const pos = typeof qr.external_pos_id === 'string' ? this.host.findPosByExternalId(qr.external_pos_id) : undefined;
    if (!pos) throw badValue('config.qr.external_pos_id', `no point of sale with external_id ${JSON.stringify(qr.external_pos_id)} exists for this user; create it first`);

    const ref = body.external_reference;
    if (typeof ref !== 'string' || !EXTERNAL_REFERENCE.test(ref)) {
      throw badValue('external_reference', `must be 1 to 64 letters, digits, hyphens or underscores, got ${JSON.stringify(ref)}`);
    }
    if (body.description !== undefined && typeof body.description !== 'string') throw badValue('description', 'must be a string');

    const totalMinor = this.amount(body.total_amount, 'total_amount');
    if (totalMinor === 0) throw ordersError(400, 'invalid_total_amount', 'Order total amount cannot be zero');
    const c = this.host.currency;

    const payments = isObject(body.transactions) ? body.transactions.payments : undefined;
    if (!Array.isArray(payments)) throw required('transactions.payments');
    if (payments.length === 0) throw ordersError(400, 'minimum_items', 'minimum 1 items required, but found 0');
    if (payments.length > 1) throw ordersError(400, 'maximum_items', `maximum 1 items required, but found ${payments.length}`);
    const p0 = payments[0];
    if (!isObject(p0) || p0.amount === undefined) throw required('transactions.payments[0].amount');
    if (this.amount(p0.amount, 'transactions.payments[0].amount') !== totalMinor) {
      throw ordersError(400, 'invalid_total_amount', `transactions.payments[0].amount ${String(p0.amount)} is not total_amount ${String(body.total_amount)}`);
    }

    let items: MpOrderItemInput[] | undefined;
    if (body.items !== undefined) {
      if (!Array.isArray(body.items)) throw badValue('items', 'must be an array');
      let sum = 0;
      items = body.items.map((raw, i) => {
        if (!isObject(raw)) throw badValue(`items[${i}]`, 'must be an object');
        if (typeof raw.title !== 'string' || raw.title.trim() === '') throw required(`items[${i}].title`);
        const unit = this.amount(raw.unit_price, `items[${i}].unit_price`);
        const q = raw.quantity;
        if (typeof q !== 'number' || !Number.isSafeInteger(q) || q <= 0) throw badValue(`items[${i}].quantity`, `must be a positive whole number, got ${JSON.stringify(q)}`);
        sum += unit * q;
        const item: MpOrderItemInput = { title: raw.title, unit_price: raw.unit_price as string, quantity: q };
        if (typeof raw.unit_measure === 'string') item.unit_measure = raw.unit_measure;
        if (typeof raw.external_code === 'string') item.external_code = raw.external_code;
        return item;
      });
      if (items.length && sum !== totalMinor) {
        throw ordersError(400, 'invalid_total_amount', `total_amount ${String(body.total_amount)} is not equivalent to the sum of the items (${toDecimalString(sum, c)})`);
      }
    }

    const expirationTime = body.expiration_time === undefined ? DEFAULT_EXPIRATION : body.expiration_time;
    const seconds = typeof expirationTime === 'string' ? durationSeconds(expirationTime) : undefined;
    if (seconds === undefined || seconds < 1 || seconds > MAX_EXPIRATION_S) {
      throw badValue('expiration_time', `must be an ISO 8601 duration between PT1S and P30D (e.g. PT15M), got ${JSON.stringify(expirationTime)}`);
    }
    const out: ReturnType<OrdersApi['parseCreate']> = {
      externalReference: ref,
      mode,
      pos,
      totalMinor,
      expirationTime: expirationTime as string,
      expirationSeconds: seconds,
    };
    if (typeof body.description === 'string') out.description = body.description;
    if (items !== undefined) out.items = items;
    return out;
  }

  private settle(rec: OrderRec, status: 'canceled' | 'expired'): void {
    rec.status = status;
    rec.statusDetail = status;
    for (const p of rec.payments) {
      if (p.status === 'created' || p.status === 'failed') {
        p.status = status;
        p.statusDetail = status;
      }
    }
    rec.lastUpdated = nowIso();
    this.host.logger?.info({ orderId: rec.id, status }, 'sandbox: Orders API order settled');
  }

  /** Lazy expiry (the timer below only makes the webhook timely). */
  private refresh(rec: OrderRec): void {
    if (rec.status === 'created' && Date.now() >= rec.expiresAt) {
      this.settle(rec, 'expired');
      this.webhook(rec, 'order.expired');
    }
  }

  private scheduleExpiry(rec: OrderRec): void {
    const ms = Math.max(0, rec.expiresAt - Date.now());
    if (ms > 2 ** 31 - 1) return; // beyond setTimeout's range: lazy expiry covers it
    const t = setTimeout(() => {
      this.timers.delete(t);
      this.refresh(rec);
    }, ms);
    t.unref();
    this.timers.add(t);
  }

  private actionOf(rec: OrderRec): OrderWebhookAction {
    if (rec.status === 'processed') return 'order.processed';
    if (rec.status === 'canceled') return 'order.canceled';
    if (rec.status === 'expired') return 'order.expired';
    if (rec.status === 'refunded') return 'order.refunded';
    return 'order.action_required';
  }

  /** Sends an "order" webhook batch to the configured URL (none when no URL is configured). */
  private webhook(rec: OrderRec, action: OrderWebhookAction, opts: Omit<NotifyOptions, 'form'> = {}): { batchId: number; deliveries: Promise<Delivery[]> } {
    const url = this.settings.webhookUrl;
    if (!url) return { batchId: 0, deliveries: Promise.resolve([]) };
    const normalized = this.host.normalizeNotify({ ...opts, form: 'webhook', signature: opts.signature ?? this.settings.signature ?? (this.host.webhookSecret ? 'valid' : 'none') });
    const notificationId = String(++this.notificationSeq);
    const makers = Array.from({ length: normalized.copies }, (_, i) => (batchId: number) =>
      this.buildWebhook(rec, action, url, normalized.signature, i + 1, batchId, notificationId),
    );
    return this.host.startBatch(normalized, makers);
  }

  private buildWebhook(
    rec: OrderRec,
    action: OrderWebhookAction,
    url: string,
    signature: SignatureMode,
    copy: number,
    batchId: number,
    notificationId: string,
  ): OutgoingRequest {
    const requestId = randomUUID();
    const ts = Math.floor(Date.now() / 1000);
    const headers: Record<string, string> = {
      'content-type': 'application/json',
      accept: '*/*',
      'user-agent': 'MercadoPago WebHook v1.0 order',
      'x-request-id': requestId,
    };
    const secret = this.host.webhookSecret;
    if (signature !== 'none') {
      // 'valid' signs data.id verbatim (MP today); 'lowercase' the way older SDKs expected
      const key = signature === 'forged' ? `${secret ?? 'none'}:forged` : secret!;
      const id = signature === 'lowercase' ? rec.id.toLowerCase() : rec.id;
      headers['x-signature'] = `ts=${ts},v1=${webhookSignature(key, id, requestId, ts)}`;
    }
    const body = {
      id: notificationId,
      live_mode: false,
      type: 'order',
      date_created: nowIso(),
      user_id: String(this.host.collectorId),
      api_version: 'v1',
      action,
      data: { id: rec.id },
    };
    return {
      batchId,
      merchantOrderId: null,
      orderId: rec.id,
      form: 'webhook',
      copy,
      method: 'POST',
      url: appendQuery(url, { 'data.id': rec.id, type: 'order' }),
      headers,
      body: JSON.stringify(body),
      signature,
      requestId,
    };
  }

  private view(o: OrderRec): MpOrder {
    this.refresh(o);
    const c = this.host.currency;
    const s = (minor: number): string => toDecimalString(minor, c);
    const payments: MpOrderPayment[] = o.payments.map((p) => {
      const v: MpOrderPayment = {
        id: p.id,
        amount: s(p.amountMinor),
        paid_amount: s(p.paidMinor),
        status: p.status,
        status_detail: p.statusDetail,
        payment_method: { id: 'account_money', type: 'account_money' },
      };
      if (p.refundedMinor > 0) v.refunded_amount = s(p.refundedMinor);
      return v;
    });
    const refunds: MpOrderRefund[] = o.refunds.map((r) => ({ id: r.id, transaction_id: r.transactionId, amount: s(r.amountMinor), status: 'processed' }));
    const view: MpOrder & Record<string, unknown> = {
      id: o.id,
      type: 'qr',
      processing_mode: 'automatic',
      external_reference: o.externalReference,
      total_amount: s(o.totalMinor),
      total_paid_amount: s(o.payments.reduce((sum, p) => sum + p.paidMinor, 0)),
      currency: c,
      country_code: CURRENCIES[c].country,
      user_id: String(this.host.collectorId),
      status: o.status,
      status_detail: o.statusDetail,
      created_date: o.createdDate,
      last_updated_date: o.lastUpdated,
      expiration_time: o.expirationTime,
      config: { qr: { external_pos_id: o.pos.externalId, mode: o.mode } },
      transactions: refunds.length ? { payments, refunds } : { payments },
    };
    if (o.description !== undefined) view.description = o.description;
    if (o.items !== undefined) view.items = o.items.map((i) => ({ ...i }));
    if (o.qrData !== undefined) view.type_response = { qr_data: o.qrData };
    return view;
  }
}

export type { OrderRec as OrdersApiOrderRec };
