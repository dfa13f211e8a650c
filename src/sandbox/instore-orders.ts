// The legacy "instore" QR APIs: attended orders put on a POS (instore v2 PUT/GET/DELETE and the
// older mpmobile POST/DELETE) and dynamic QRs (POST /qrs = the order's own QR, PUT /qrs = hybrid:
// the order's QR and the POS's static QR). Each order, once scanned, is paid through one merchant
// order opened by the core, exactly as in the unattended model; this module keeps the orders, their
// place on the POS and whether they can still be paid.
//
// Worst-case choices where Mercado Pago's behaviour is not published (see docs/sandbox.md):
// DELETE with no order on the POS answers 404 point_of_sale_in_store_order_not_found; a v2 order
// without expiration_date does not expire; POST /qrs honours X-Idempotency-Key.

import { randomUUID } from 'node:crypto';
import { toDecimalNumber } from '../core/money.js';
import { buildMercadoPagoOrderQr } from '../emv/index.js';
import type { MpItem } from '../mercadopago/types.js';
import { AmountRuleError, legacyAmountMinor } from './amounts.js';
import { MpApiError, canonicalJson, isObject, mpError, nowIso, numericId } from './api-error.js';
import type { PosRef, SandboxHost } from './host.js';
import type { InstoreApi, InstoreOrderInfo } from './types.js';

/** How long an mpmobile order stays on the QR without X-Ttl-Store-Preference (MP: 10 minutes). */
export const MPMOBILE_DEFAULT_TTL_S = 600;

interface InstoreRec {
  id: string;
  api: InstoreApi;
  pos: PosRef;
  externalReference: string;
  notificationUrl: string | null;
  title: string;
  items: MpItem[];
  totalMinor: number;
  sponsorId?: number;
  /** what GET …/orders shows: the body as sent */
  body: Record<string, unknown>;
  expiresAt: number | null;
  state: InstoreOrderInfo['state'];
  onPos: boolean;
  qrData?: string;
  merchantOrderId: number | null;
  dateCreated: string;
}

interface ParsedOrder {
  externalReference: string;
  title: string;
  notificationUrl: string | null;
  expiresAt: number | null;
  items: MpItem[];
  totalMinor: number;
  sponsorId?: number;
}

/** A 400 with the instore APIs' key in `error` and in cause[0].code (what MercadoPagoClient reports as code). */
function invalid(key: string, message: string): MpApiError {
  return mpError(400, key, message, [{ code: key, description: message }]);
}

function isHttpUrl(s: unknown): s is string {
  if (typeof s !== 'string') return false;
  try {
    const u = new URL(s);
    return u.protocol === 'http:' || u.protocol === 'https:';
  } catch {
    return false;
  }
}

const EXTERNAL_REFERENCE = /^[^\s]{1,256}$/;
const ISO_WITH_OFFSET = /^\d{4}-\d\d-\d\dT\d\d:\d\d:\d\d(\.\d+)?(Z|[+-]\d\d:\d\d)$/;

export class InstoreOrders {
  private readonly byId = new Map<string, InstoreRec>();
  /** the order attached to each POS's static QR (attended, mpmobile, hybrid) */
  private readonly onPos = new Map<number, string>();
  private readonly qrsKeys = new Map<string, { hash: string; id: string }>();

  constructor(private readonly host: SandboxHost) {}

  // ---- instore v2 (attended) -------------------------------------------------------------------

  putPosOrder(userId: string, externalStoreId: string, externalPosId: string, body: unknown): void {
    this.checkCollector(userId, 'invalid_collectorId');
    const store = this.host.findStoreByExternalId(externalStoreId);
    if (!store) throw invalid('invalid_externalStoreId', `there is no store with external_id ${externalStoreId} for collector ${userId}`);
    const pos = this.requirePos(externalPosId);
    if (pos.storeId !== store.id) {
      throw invalid('invalid_externalPosId', `POS ${externalPosId} does not belong to store ${externalStoreId}`);
    }
    const parsed = this.parseV2Body(body);
    this.attach(this.create('attended', pos, parsed, body as Record<string, unknown>));
  }

  getPosOrder(userId: string, externalPosId: string): Record<string, unknown> {
    this.checkCollector(userId, 'invalid_collectorId');
    const pos = this.requirePos(externalPosId);
    const rec = this.current(pos.id, ['attended', 'hybrid']);
    if (!rec) throw this.noOrder(externalPosId);
    return { ...rec.body };
  }

  deletePosOrder(userId: string, externalPosId: string): void {
    this.checkCollector(userId, 'invalid_collectorId');
    const pos = this.requirePos(externalPosId);
    const rec = this.current(pos.id, ['attended', 'hybrid']);
    if (!rec) throw this.noOrder(externalPosId);
    this.withdraw(rec, 'deleted');
  }

  // ---- mpmobile (attended, legacy v1) ------------------------------------------------------------

  postMobileOrder(userId: string, externalPosId: string, body: unknown, ttlHeader: string | undefined): void {
    this.checkCollector(userId, 'invalid_collector_id');
    const pos = this.requirePos(externalPosId, 'invalid_pos_id');
    let ttl = MPMOBILE_DEFAULT_TTL_S;
    if (ttlHeader !== undefined) {
      if (!/^\d{1,7}$/.test(ttlHeader.trim()) || Number(ttlHeader) <= 0) {
        throw invalid('invalid_ttl', `X-Ttl-Store-Preference must be a positive number of seconds, got "${ttlHeader}"`);
      }
      ttl = Number(ttlHeader);
    }
    const parsed = this.parseMobileBody(body);
    parsed.expiresAt = Date.now() + ttl * 1000;
    this.attach(this.create('mpmobile', pos, parsed, body as Record<string, unknown>));
  }

  deleteMobileOrder(userId: string, externalPosId: string): void {
    this.checkCollector(userId, 'invalid_collector_id');
    const pos = this.requirePos(externalPosId, 'invalid_pos_id');
    const rec = this.current(pos.id, ['mpmobile']);
    if (!rec) throw this.noOrder(externalPosId);
    this.withdraw(rec, 'deleted');
  }

  // ---- dynamic QR --------------------------------------------------------------------------------

  /** POST = dynamic (the order's own QR only), PUT = hybrid (also on the POS's static QR). */
  createDynamicQr(
    userId: string,
    externalPosId: string,
    body: unknown,
    mode: 'dynamic' | 'hybrid',
    idempotencyKey: string | undefined,
  ): { status: 200 | 201; body: { qr_data: string; in_store_order_id: string } } {
    this.checkCollector(userId, 'invalid_collectorId');
    const pos = this.requirePos(externalPosId);
    const parsed = this.parseV2Body(body);
    const keyed = mode === 'dynamic' && idempotencyKey ? `${pos.id}:${idempotencyKey}` : undefined;
    if (keyed) {
      const prev = this.qrsKeys.get(keyed);
      if (prev) {
        if (prev.hash !== canonicalJson(body)) {
          throw mpError(409, 'idempotency_key_conflict', `X-Idempotency-Key ${idempotencyKey} was already used with a different body`);
        }
        const rec = this.byId.get(prev.id)!;
        return { status: 201, body: { qr_data: rec.qrData!, in_store_order_id: rec.id } };
      }
    }
    const rec = this.create(mode, pos, parsed, body as Record<string, unknown>);
    rec.qrData = buildMercadoPagoOrderQr({
      orderUuid: rec.id,
      currency: this.host.currency,
      merchantName: pos.merchantName,
      merchantCity: pos.merchantCity,
      terminalLabel: pos.terminalLabel,
    });
    if (mode === 'hybrid') this.attach(rec);
    if (keyed) this.qrsKeys.set(keyed, { hash: canonicalJson(body), id: rec.id });
    return { status: 201, body: { qr_data: rec.qrData, in_store_order_id: rec.id } };
  }

  // ---- what the customer's app sees --------------------------------------------------------------

  /** The payable order on a POS's static QR, if any. */
  orderOnPos(posId: number): InstoreRec | undefined {
    return this.current(posId, ['attended', 'mpmobile', 'hybrid']);
  }

  byUuid(uuid: string): InstoreRec | undefined {
    const rec = this.byId.get(uuid.toLowerCase());
    if (rec) this.refresh(rec);
    return rec;
  }

  /** The merchant order that pays this instore order (opened at the first scan, reused after). */
  merchantOrderFor(rec: InstoreRec): number {
    rec.merchantOrderId ??= this.host.openMerchantOrder({
      model: rec.api === 'attended' || rec.api === 'mpmobile' ? 'attended' : 'dynamic',
      posId: rec.pos.id,
      generation: rec.api === 'mpmobile' ? 'v1' : 'v2',
      externalReference: rec.externalReference,
      // MP falls back to the panel's URL; the core does the same for merchant orders without one
      notificationUrl: rec.notificationUrl ?? '',
      items: rec.items,
      totalMinor: rec.totalMinor,
      inStoreOrderId: rec.id,
      ...(rec.sponsorId !== undefined ? { sponsorId: rec.sponsorId } : {}),
    });
    return rec.merchantOrderId;
  }

  /** Why the order can no longer be paid, or undefined when it can. */
  whyNotPayable(id: string): string | undefined {
    const rec = this.byId.get(id);
    if (!rec) return `instore order ${id} does not exist`;
    this.refresh(rec);
    return rec.state === 'open' ? undefined : `the order was ${rec.state}`;
  }

  /** Paid in full: off the POS and off its own QR (paying a hybrid order disables the other channel). */
  markPaid(id: string): void {
    const rec = this.byId.get(id);
    if (rec && rec.state === 'open') this.withdraw(rec, 'paid');
  }

  expire(id: string): boolean {
    const rec = this.byId.get(id.toLowerCase());
    if (!rec) return false;
    if (rec.state === 'open') this.withdraw(rec, 'expired');
    return true;
  }

  list(): InstoreOrderInfo[] {
    return [...this.byId.values()].map((r) => {
      this.refresh(r);
      const info: InstoreOrderInfo = {
        id: r.id,
        api: r.api,
        posId: r.pos.id,
        externalPosId: r.pos.externalId,
        externalReference: r.externalReference,
        totalMinor: r.totalMinor,
        state: r.state,
        onPos: r.onPos,
        expiresAt: r.expiresAt === null ? null : new Date(r.expiresAt).toISOString(),
        merchantOrderId: r.merchantOrderId,
        dateCreated: r.dateCreated,
      };
      if (r.qrData !== undefined) info.qrData = r.qrData;
      return info;
    });
  }

  // ---- internals -----------------------------------------------------------------------------------

  private create(api: InstoreApi, pos: PosRef, parsed: ParsedOrder, body: Record<string, unknown>): InstoreRec {
    const rec: InstoreRec = {
      id: randomUUID(),
      api,
      pos,
      externalReference: parsed.externalReference,
      notificationUrl: parsed.notificationUrl,
      title: parsed.title,
      items: parsed.items,
      totalMinor: parsed.totalMinor,
      body: { ...body },
      expiresAt: parsed.expiresAt,
      state: 'open',
      onPos: false,
      merchantOrderId: null,
      dateCreated: nowIso(),
    };
    if (parsed.sponsorId !== undefined) rec.sponsorId = parsed.sponsorId;
    this.byId.set(rec.id, rec);
    this.host.logger?.info(
      { inStoreOrderId: rec.id, api, pos: pos.externalId, externalReference: rec.externalReference, totalMinor: rec.totalMinor },
      'sandbox: instore order created',
    );
    return rec;
  }

  /** Puts the order on its POS's static QR, replacing whatever was there (the PUT semantics). */
  private attach(rec: InstoreRec): void {
    const previous = this.onPos.get(rec.pos.id);
    if (previous !== undefined) {
      const prev = this.byId.get(previous);
      if (prev && prev.state === 'open') this.withdraw(prev, 'replaced');
    }
    rec.onPos = true;
    this.onPos.set(rec.pos.id, rec.id);
  }

  private withdraw(rec: InstoreRec, state: Exclude<InstoreOrderInfo['state'], 'open'>): void {
    rec.state = state;
    if (rec.onPos && this.onPos.get(rec.pos.id) === rec.id) this.onPos.delete(rec.pos.id);
    rec.onPos = false;
    this.host.logger?.info({ inStoreOrderId: rec.id, state }, 'sandbox: instore order withdrawn');
  }

  /** Lazy expiry: an order past its expiration is expired whenever anyone looks at it. */
  private refresh(rec: InstoreRec): void {
    if (rec.state === 'open' && rec.expiresAt !== null && Date.now() >= rec.expiresAt) this.withdraw(rec, 'expired');
  }

  private current(posId: number, apis: InstoreApi[]): InstoreRec | undefined {
    const id = this.onPos.get(posId);
    const rec = id === undefined ? undefined : this.byId.get(id);
    if (!rec) return undefined;
    this.refresh(rec);
    return rec.state === 'open' && apis.includes(rec.api) ? rec : undefined;
  }

  private noOrder(externalPosId: string): MpApiError {
    return mpError(404, 'point_of_sale_in_store_order_not_found', `There is no order on point of sale ${externalPosId}`, [
      { code: 'point_of_sale_in_store_order_not_found', description: 'in store order not found' },
    ]);
  }

  private checkCollector(userId: string, key: string): void {
    if (numericId(userId) !== this.host.collectorId) {
      throw invalid(key, `collector ${userId} is not the owner of this access token (${this.host.collectorId})`);
    }
  }

  private requirePos(externalPosId: string, key = 'invalid_externalPosId'): PosRef {
    const pos = this.host.findPosByExternalId(externalPosId);
    if (!pos) throw invalid(key, `there is no point of sale with external_id ${externalPosId} for this collector`);
    return pos;
  }

  private amount(value: unknown, key: string, what: string): number {
    try {
      return legacyAmountMinor(value, this.host.currency, what);
    } catch (err) {
      if (err instanceof AmountRuleError) throw invalid(key, err.message);
      throw err;
    }
  }

  /** Body of instore v2 PUT …/orders and of /qrs (POST and PUT). */
  private parseV2Body(body: unknown): ParsedOrder {
    if (!isObject(body)) throw invalid('invalid_body', 'HTTP body is required: a JSON object with external_reference, title, total_amount and items');
    const common = this.parseCommon(body);
    if (typeof body.title !== 'string' || body.title.trim() === '') throw invalid('invalid_title', 'title is required and must be a non-empty string');
    if (body.description !== undefined && typeof body.description !== 'string') throw invalid('invalid_description', 'description must be a string');
    let expiresAt: number | null = null;
    if (body.expiration_date !== undefined) {
      const text = body.expiration_date;
      const at = typeof text === 'string' && ISO_WITH_OFFSET.test(text) ? Date.parse(text) : NaN;
      if (Number.isNaN(at)) {
        throw invalid('invalid_expiration_date', `expiration_date must be ISO 8601 with an offset, e.g. 2030-01-01T10:00:00.000-03:00; got ${JSON.stringify(text)}`);
      }
      if (at <= Date.now()) throw invalid('invalid_expiration_date', `expiration_date ${text} is in the past; it must be in the future`);
      expiresAt = at;
    }
    let sponsorId: number | undefined;
    if (body.sponsor !== undefined) {
      const id = isObject(body.sponsor) ? body.sponsor.id : undefined;
      if (typeof id !== 'number' || !Number.isSafeInteger(id) || id <= 0) throw invalid('invalid_sponsor.id', 'sponsor.id must be a Mercado Pago user id (number)');
      sponsorId = id;
    }
    if (body.cash_out !== undefined) {
      throw invalid('invalid_cash_out.amount', 'cash_out needs a commercial agreement with Mercado Pago; the sandbox does not emulate it');
    }
    const totalMinor = this.amount(body.total_amount, 'invalid_total_amount', 'total_amount');
    if (!Array.isArray(body.items) || body.items.length === 0) {
      throw invalid('error_creating_seller_qr_order', 'items are required (an order without items needs cash_out)');
    }
    let sum = 0;
    const c = this.host.currency;
    const items: MpItem[] = body.items.map((raw, i) => {
      if (!isObject(raw)) throw invalid('invalid_items', `items[${i}] must be an object`);
      if (typeof raw.title !== 'string' || raw.title.trim() === '') throw invalid('invalid_items.title', `items[${i}].title is required`);
      const unit = this.amount(raw.unit_price, 'invalid_unit_price', `items[${i}].unit_price`);
      const q = raw.quantity;
      if (typeof q !== 'number' || !Number.isSafeInteger(q) || q <= 0) throw invalid('invalid_quantity', `items[${i}].quantity must be a positive whole number, got ${JSON.stringify(q)}`);
      if (raw.unit_measure !== 'unit' && raw.unit_measure !== 'pack') {
        throw invalid('invalid_unit_measure', `items[${i}].unit_measure must be "unit" or "pack", got ${JSON.stringify(raw.unit_measure)}`);
      }
      const line = this.amount(raw.total_amount, 'invalid_items.total_amount', `items[${i}].total_amount`);
      if (line !== unit * q) {
        throw invalid('invalid_items.total_amount', `items[${i}].total_amount ${String(raw.total_amount)} is not unit_price ${String(raw.unit_price)} x quantity ${q}`);
      }
      sum += line;
      const item: MpItem = {
        title: raw.title,
        currency_id: c,
        quantity: q,
        unit_price: toDecimalNumber(unit, c),
        unit_measure: raw.unit_measure,
        total_amount: toDecimalNumber(line, c),
      };
      if (typeof raw.sku_number === 'string') {
        item.sku_number = raw.sku_number;
        item.id = raw.sku_number;
      }
      if (typeof raw.description === 'string') item.description = raw.description;
      return item;
    });
    if (sum !== totalMinor) {
      throw invalid('invalid_total_amount', `total_amount ${String(body.total_amount)} is not the sum of the items' total_amount (${toDecimalNumber(sum, c)})`);
    }
    const out: ParsedOrder = { ...common, title: body.title, expiresAt, items, totalMinor };
    if (sponsorId !== undefined) out.sponsorId = sponsorId;
    return out;
  }

  /** Body of POST /mpmobile/instore/qr/{user}/{pos}. */
  private parseMobileBody(body: unknown): ParsedOrder {
    if (!isObject(body)) throw invalid('invalid_body', 'HTTP body is required: a JSON object with external_reference and items');
    const common = this.parseCommon(body);
    let sponsorId: number | undefined;
    if (body.sponsor_id !== undefined) {
      if (typeof body.sponsor_id !== 'number' || !Number.isSafeInteger(body.sponsor_id) || body.sponsor_id <= 0) {
        throw invalid('invalid_sponsor_id', 'sponsor_id must be a Mercado Pago user id (number)');
      }
      sponsorId = body.sponsor_id;
    }
    if (!Array.isArray(body.items) || body.items.length === 0) throw invalid('invalid_items', 'items must list at least one item');
    const c = this.host.currency;
    let total = 0;
    const items: MpItem[] = body.items.map((raw, i) => {
      if (!isObject(raw)) throw invalid('invalid_items', `items[${i}] must be an object`);
      if (typeof raw.title !== 'string' || raw.title.trim() === '') throw invalid('invalid_items', `items[${i}].title is required`);
      if (raw.currency_id !== c) throw invalid('invalid_items', `items[${i}].currency_id must be the site currency ${c}, got ${JSON.stringify(raw.currency_id)}`);
      const unit = this.amount(raw.unit_price, 'invalid_items', `items[${i}].unit_price`);
      const q = raw.quantity;
      if (typeof q !== 'number' || !Number.isSafeInteger(q) || q <= 0) throw invalid('invalid_items', `items[${i}].quantity must be a positive whole number`);
      total += unit * q;
      const item: MpItem = { title: raw.title, currency_id: c, quantity: q, unit_price: toDecimalNumber(unit, c) };
      if (typeof raw.id === 'string') item.id = raw.id;
      if (typeof raw.description === 'string') item.description = raw.description;
      return item;
    });
    const out: ParsedOrder = { ...common, title: items[0]!.title, expiresAt: null, items, totalMinor: total };
    if (sponsorId !== undefined) out.sponsorId = sponsorId;
    return out;
  }

  private parseCommon(body: Record<string, unknown>): { externalReference: string; notificationUrl: string | null } {
    const ref = body.external_reference;
    if (typeof ref !== 'string' || !EXTERNAL_REFERENCE.test(ref)) {
      throw invalid('invalid_external_reference', `external_reference is required: up to 256 characters without spaces, got ${JSON.stringify(ref)}`);
    }
    let notificationUrl: string | null = null;
    if (body.notification_url !== undefined) {
      if (!isHttpUrl(body.notification_url)) throw invalid('invalid_notification_url', `notification_url must be an http(s) URL, got ${JSON.stringify(body.notification_url)}`);
      notificationUrl = body.notification_url;
    }
    return { externalReference: ref, notificationUrl };
  }
}

export type { InstoreRec };
