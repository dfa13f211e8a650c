import pg from 'pg';
import type { Currency } from '../../../core/money.js';
import type { OrderState } from '../../../core/relay-order.js';
import type { OfferState } from '../../../core/mp-offer.js';
import type { PaymentModelName } from '../../../protocol/messages.js';
import {
  StoreError,
  type DexAuditRecord,
  type Kiosk,
  type NotificationRecord,
  type OrderEventRecord,
  type OrderRecord,
  type OutboxRecord,
  type PaymentRecord,
  type RefundReason,
  type RefundRecord,
  type ResponseGeneration,
} from '../types.js';

// Rows as PostgreSQL returns them, mapped to the same records the SQLite store returns.
//
// pg returns int8 (BIGINT, COUNT(*)) and numeric (SUM of a bigint) as strings, because a JS number
// loses integers above 2^53. Every BIGINT here is an epoch in ms or an amount in minor units, far
// below 2^53, so the pool parses them to numbers, and REFUSES (throws) a value that would not be
// exact rather than round it: money is never a float. These parsers are given to our pool only
// (not set globally on the pg module) so another library's pool in the same process is untouched.

export type Row = Record<string, unknown>;

const INT8_OID = 20;
const NUMERIC_OID = 1700;

export function exactInteger(text: string): number {
  if (!/^-?\d+$/.test(text)) throw new StoreError(`PostgreSQL returned ${JSON.stringify(text)} where a whole number (ms or minor units) was expected`);
  const n = Number(text);
  if (!Number.isSafeInteger(n)) throw new StoreError(`PostgreSQL returned ${text}, beyond what a JavaScript number holds exactly (2^53): refusing to round it`);
  return n;
}

export const pgTypes: pg.CustomTypesConfig = {
  getTypeParser: ((oid: number, format?: 'text' | 'binary') => {
    if (oid === INT8_OID || oid === NUMERIC_OID) return (v: string) => exactInteger(v);
    return pg.types.getTypeParser(oid, format as 'text');
  }) as pg.CustomTypesConfig['getTypeParser'],
};

const int = (v: unknown): number => v as number;
const intOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : (v as number));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : (v as string));

export function kioskFromRow(r: Row): Kiosk {
  return {
    id: r.id as string,
    posExternalId: r.pos_external_id as string,
    posKey: r.pos_key as string,
    paymentModel: r.model as PaymentModelName,
    modelMode: strOrNull(r.model_mode),
    storeExternalId: strOrNull(r.store_external_id),
    generation: r.response_generation as ResponseGeneration,
    posQr: strOrNull(r.pos_qr),
    createdAt: int(r.created_at),
  };
}

export function orderFromRow(r: Row): OrderRecord {
  return {
    id: r.id as string,
    kioskId: r.kiosk_id as string,
    slot: intOrNull(r.slot),
    sku: r.sku as string,
    title: r.title as string,
    quantity: int(r.quantity),
    unitPrice: int(r.unit_price),
    amount: int(r.amount),
    currency: r.currency as Currency,
    claimedAmount: int(r.claimed_amount),
    claimedCurrency: r.claimed_currency as string,
    state: r.state as OrderState,
    rejectReason: strOrNull(r.reject_reason),
    deadline: int(r.deadline),
    createdAt: int(r.created_at),
    updatedAt: int(r.updated_at),
    paidAt: intOrNull(r.paid_at),
    merchantOrderId: strOrNull(r.merchant_order_id),
    paymentIds: JSON.parse((r.payment_ids as string) || '[]') as string[],
    lastNotificationAt: intOrNull(r.last_notification_at),
    vendResult: strOrNull(r.vend_result),
    needsReview: strOrNull(r.needs_review),
    vendOverdueAt: intOrNull(r.vend_overdue_at),
    offerState: r.offer_state as OfferState,
    mpOrderId: strOrNull(r.mp_order_id),
    qr: strOrNull(r.qr),
    offerError: strOrNull(r.offer_error),
  };
}

export function orderEventFromRow(r: Row): OrderEventRecord {
  return {
    orderId: r.order_id as string,
    from: (r.from as OrderState | null) ?? null,
    to: r.to as OrderState,
    event: r.event as string,
    detail: strOrNull(r.detail),
    at: int(r.at),
  };
}

export function paymentFromRow(r: Row): PaymentRecord {
  return {
    paymentId: r.payment_id as string,
    orderId: r.order_id as string,
    merchantOrderId: strOrNull(r.merchant_order_id),
    status: r.status as string,
    amount: int(r.amount),
    currency: r.currency as string,
    everApproved: r.ever_approved === 1,
    firstSeenAt: int(r.first_seen_at),
    updatedAt: int(r.updated_at),
  };
}

export function refundFromRow(r: Row): RefundRecord {
  return {
    id: int(r.id),
    orderId: r.order_id as string,
    paymentId: r.payment_id as string,
    idempotencyKey: r.idempotency_key as string,
    reason: (r.reason as RefundReason | null) ?? 'order',
    mpRefundId: strOrNull(r.mp_refund_id),
    amount: intOrNull(r.amount),
    currency: strOrNull(r.currency),
    status: r.status as string,
    attempts: int(r.attempts),
    lastError: strOrNull(r.last_error),
    requestedAt: int(r.requested_at),
    completedAt: intOrNull(r.completed_at),
    requestedAmount: intOrNull(r.requested_amount),
  };
}

export function notificationFromRow(r: Row): NotificationRecord {
  return {
    id: int(r.id),
    receivedAt: int(r.received_at),
    form: r.form as NotificationRecord['form'],
    topic: strOrNull(r.topic),
    resourceId: strOrNull(r.resource_id),
    query: JSON.parse(r.query as string) as Record<string, unknown>,
    body: strOrNull(r.body),
    headers: JSON.parse(r.headers as string) as Record<string, string>,
    signatureOk: r.signature_ok === null || r.signature_ok === undefined ? null : r.signature_ok === 1,
    processedAt: intOrNull(r.processed_at),
    outcome: strOrNull(r.outcome),
    source: strOrNull(r.source),
    attempts: (r.attempts as number | undefined) ?? 0,
    givenUpAt: intOrNull(r.given_up_at),
  };
}

export function outboxFromRow(r: Row): OutboxRecord {
  return {
    seq: int(r.seq),
    kioskId: r.kiosk_id as string,
    messageId: r.message_id as string,
    type: r.type as string,
    payload: r.payload as string,
    createdAt: int(r.created_at),
  };
}

export function dexAuditFromRow(r: Row): DexAuditRecord {
  return {
    auditId: r.audit_id as string,
    kioskId: r.kiosk_id as string,
    machineSerial: r.machine_serial as string,
    readAt: int(r.read_at),
    receivedAt: int(r.received_at),
    body: JSON.parse(r.body as string) as DexAuditRecord['body'],
  };
}
