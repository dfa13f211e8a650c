// How Mercado Pago's app reads the seller's POS url in the unattended model. Two generations are in
// the wild and the relay may speak either, so the sandbox understands both and is STRICT about the
// "ready" body: anything Mercado Pago would refuse (wrong collector, fractional quantities, totals
// that do not add up, more decimals than the currency has) must fail here, not in production.
//
// v1 not ready: HTTP 400 {"error":{"type":"unavailable"|"in_process"|"invalid"|"timeout","message"?}}
//    (some published pages show the same object without the "error" wrapper; both are accepted)
// v2 not ready: HTTP 202 {"status":{"status_detail":"in_process"|"notihing_to_pay"|"Waiting_for_order"}}
//    ("notihing" is Mercado Pago's published spelling)
// ready: HTTP 200; the v2 body when the response has header `order-version: 2`, else the v1 body.

import * as z from 'zod/mini';
import '../runtime/zod.js';
import { MoneyError, parseAmount, toDecimalNumber, type Currency } from '../core/money.js';
import type { MpItem } from '../mercadopago/types.js';
import type { PosGeneration } from './types.js';

export const V1_NOT_READY_TYPES = ['unavailable', 'in_process', 'invalid', 'timeout'] as const;
export const V2_NOT_READY_DETAILS = ['in_process', 'notihing_to_pay', 'Waiting_for_order'] as const;

export interface ReadyOrder {
  generation: PosGeneration;
  externalReference: string;
  notificationUrl: string;
  totalMinor: number;
  /** wire items for the merchant order (MP decimals) */
  items: MpItem[];
  sponsorId?: number;
  title?: string;
  description?: string;
}

export type PosAnswer =
  | { kind: 'ready'; order: ReadyOrder }
  | { kind: 'not_ready'; reason: string }
  /** the seller said the request is invalid, or its ready body is unacceptable: stop polling */
  | { kind: 'invalid'; error: string }
  /** an answer neither generation defines (5xx, HTML, 404...): keep asking, it may be transient */
  | { kind: 'unexpected'; reason: string };

const httpUrl = z.string().check(
  z.refine((s) => {
    try {
      const u = new URL(s);
      return u.protocol === 'http:' || u.protocol === 'https:';
    } catch {
      return false;
    }
  }, 'must be an http(s) URL'),
);

const nonEmpty = z.string().check(z.trim(), z.minLength(1, 'must be a non-empty string'));
const positiveInt = z.number().check(z.int('must be a whole number'), z.positive('must be positive'));
const positiveAmount = z.number().check(z.positive('must be a positive amount'));

const v1Schema = z.object({
  collector_id: z.union([z.number().check(z.int()), z.string().check(z.regex(/^\d+$/))]),
  sponsor_id: z.optional(z.union([z.number().check(z.int()), z.string().check(z.regex(/^\d+$/))])),
  items: z
    .array(
      z.object({
        id: z.optional(z.string()),
        title: nonEmpty,
        currency_id: nonEmpty,
        description: z.optional(z.string()),
        quantity: positiveInt,
        unit_price: positiveAmount,
      }),
    )
    .check(z.minLength(1, 'must list at least one item')),
  external_reference: nonEmpty.check(z.maxLength(256)),
  notification_url: httpUrl,
});

const v2Schema = z.object({
  external_reference: nonEmpty.check(z.maxLength(256)),
  total_amount: positiveAmount,
  items: z
    .array(
      z.object({
        sku_number: z.optional(z.string()),
        category: z.optional(z.string()),
        title: nonEmpty,
        description: z.optional(z.string()),
        quantity: positiveInt,
        unit_measure: nonEmpty,
        unit_price: positiveAmount,
        total_amount: positiveAmount,
      }),
    )
    .check(z.minLength(1, 'must list at least one item')),
  title: z.optional(z.string()),
  description: z.optional(z.string()),
  notification_url: httpUrl,
});

function issues(error: z.core.$ZodError): string {
  return error.issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : '(body)'}: ${i.message}`).join('; ');
}

class InvalidAnswer extends Error {}

function minor(value: number, currency: Currency, where: string): number {
  try {
    return parseAmount(value, currency);
  } catch (err) {
    throw new InvalidAnswer(`${where}: ${err instanceof MoneyError ? err.message : String(err)}`);
  }
}

function parseV1(body: unknown, collectorId: number, currency: Currency): ReadyOrder {
  const parsed = v1Schema.safeParse(body);
  if (!parsed.success) throw new InvalidAnswer(`v1 ready body: ${issues(parsed.error)}`);
  const b = parsed.data;
  if (Number(b.collector_id) !== collectorId) {
    throw new InvalidAnswer(
      `v1 ready body: collector_id ${b.collector_id} is not this account's (${collectorId}); Mercado Pago refuses to charge for another collector`,
    );
  }
  let totalMinor = 0;
  const items: MpItem[] = b.items.map((item, i) => {
    if (item.currency_id !== currency) {
      throw new InvalidAnswer(`items.${i}.currency_id: "${item.currency_id}" is not the site currency ${currency}`);
    }
    const unit = minor(item.unit_price, currency, `items.${i}.unit_price`);
    totalMinor += unit * item.quantity;
    const out: MpItem = {
      title: item.title,
      currency_id: currency,
      quantity: item.quantity,
      unit_price: toDecimalNumber(unit, currency),
    };
    if (item.id !== undefined) out.id = item.id;
    if (item.description !== undefined) out.description = item.description;
    return out;
  });
  const order: ReadyOrder = {
    generation: 'v1',
    externalReference: b.external_reference,
    notificationUrl: b.notification_url,
    totalMinor,
    items,
  };
  if (b.sponsor_id !== undefined) order.sponsorId = Number(b.sponsor_id);
  return order;
}

function parseV2(body: unknown, currency: Currency): ReadyOrder {
  const parsed = v2Schema.safeParse(body);
  if (!parsed.success) throw new InvalidAnswer(`v2 ready body: ${issues(parsed.error)}`);
  const b = parsed.data;
  let sumMinor = 0;
  const items: MpItem[] = b.items.map((item, i) => {
    const unit = minor(item.unit_price, currency, `items.${i}.unit_price`);
    const lineTotal = minor(item.total_amount, currency, `items.${i}.total_amount`);
    if (unit * item.quantity !== lineTotal) {
      throw new InvalidAnswer(`items.${i}.total_amount ${item.total_amount} is not unit_price ${item.unit_price} x quantity ${item.quantity}`);
    }
    sumMinor += lineTotal;
    const out: MpItem = {
      title: item.title,
      currency_id: currency,
      quantity: item.quantity,
      unit_price: toDecimalNumber(unit, currency),
      unit_measure: item.unit_measure,
      total_amount: toDecimalNumber(lineTotal, currency),
    };
    if (item.sku_number !== undefined) {
      out.sku_number = item.sku_number;
      out.id = item.sku_number;
    }
    if (item.description !== undefined) out.description = item.description;
    return out;
  });
  const totalMinor = minor(b.total_amount, currency, 'total_amount');
  if (totalMinor !== sumMinor) {
    throw new InvalidAnswer(`v2 ready body: total_amount ${b.total_amount} is not the sum of the items' total_amount (${toDecimalNumber(sumMinor, currency)})`);
  }
  const order: ReadyOrder = {
    generation: 'v2',
    externalReference: b.external_reference,
    notificationUrl: b.notification_url,
    totalMinor,
    items,
  };
  if (b.title !== undefined) order.title = b.title;
  if (b.description !== undefined) order.description = b.description;
  return order;
}

/**
 * Classifies one answer of the seller's POS url. `orderVersion` is the `order-version` header;
 * `contentType`, when given, must be JSON for a ready answer (Mercado Pago requires it).
 */
export function interpretPosAnswer(
  httpStatus: number,
  orderVersion: string | undefined,
  body: unknown,
  ctx: { collectorId: number; currency: Currency; contentType?: string | null },
): PosAnswer {
  if (httpStatus === 200) {
    if (ctx.contentType !== undefined && !/^application\/json\b/i.test(ctx.contentType ?? '')) {
      return {
        kind: 'invalid',
        error: `ready answer has Content-Type "${ctx.contentType ?? ''}"; Mercado Pago requires application/json`,
      };
    }
    try {
      const order = orderVersion?.trim() === '2' ? parseV2(body, ctx.currency) : parseV1(body, ctx.collectorId, ctx.currency);
      return { kind: 'ready', order };
    } catch (err) {
      if (err instanceof InvalidAnswer) return { kind: 'invalid', error: err.message };
      throw err;
    }
  }
  const obj = body && typeof body === 'object' ? (body as Record<string, unknown>) : undefined;
  if (httpStatus === 400 && obj) {
    const inner = obj.error && typeof obj.error === 'object' ? (obj.error as Record<string, unknown>) : obj;
    const type = inner.type;
    if (typeof type === 'string' && (V1_NOT_READY_TYPES as readonly string[]).includes(type)) {
      const message = typeof inner.message === 'string' ? `: ${inner.message}` : '';
      if (type === 'invalid') return { kind: 'invalid', error: `seller answered invalid${message}` };
      return { kind: 'not_ready', reason: `${type}${message}` };
    }
  }
  if (httpStatus === 202 && obj && obj.status && typeof obj.status === 'object') {
    const detail = (obj.status as Record<string, unknown>).status_detail;
    if (typeof detail === 'string' && (V2_NOT_READY_DETAILS as readonly string[]).includes(detail)) {
      return { kind: 'not_ready', reason: detail };
    }
  }
  return { kind: 'unexpected', reason: `HTTP ${httpStatus} is neither a v1 nor a v2 answer` };
}
