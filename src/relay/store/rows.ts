import type { Currency } from '../../core/money.js';
import type { OfferState } from '../../core/mp-offer.js';
import type { OrderState } from '../../core/relay-order.js';
import type { PaymentModelName } from '../../protocol/messages.js';
import type {
  DexAuditRecord,
  Kiosk,
  NotificationRecord,
  OperatorAuditRecord,
  OperatorRecord,
  OperatorSessionRecord,
  OrderEventRecord,
  OrderRecord,
  OutboxRecord,
  PaymentRecord,
  RefundReason,
  RefundRecord,
  ResponseGeneration,
} from './types.js';

// The rows of the relay's own tables (kiosks, orders with their events, payments, refunds,
// notifications, outbox, DEX audits, operators) as the records of ./types.ts, for BOTH stores, as
// ./fleet-rows.ts and ./recorder-rows.ts are for the fleet's tables. The two drivers hand back the
// same values for one schema, and the few places where that had to be arranged are these:
//  - integers: SQLite returns numbers; PostgreSQL returns BIGINT and COUNT/SUM as strings, which
//    the relay's pool parses to exact numbers (postgres/rows.ts, pgTypes: it refuses one beyond
//    2^53 rather than round it), so a column here is a number from either store;
//  - booleans are 0/1 INTEGER columns in both schemas (postgres/migrations.ts says why): `flag`;
//  - JSON is TEXT in both: `json`.

export type Row = Record<string, unknown>;

const int = (v: unknown): number => v as number;
const intOrNull = (v: unknown): number | null => (v === null || v === undefined ? null : (v as number));
const strOrNull = (v: unknown): string | null => (v === null || v === undefined ? null : (v as string));
/** a 0/1 column (never NULL here) */
const flag = (v: unknown): boolean => v === 1;
const json = <T>(v: unknown): T => JSON.parse(v as string) as T;

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

/** A row of dispensedBySlot's query (slot, currency, COUNT(*) AS n, SUM(amount) AS amount). */
export function dispensedFromRow(r: Row): { slot: number | null; count: number; amount: number; currency: string } {
  return { slot: intOrNull(r.slot), count: int(r.n), amount: int(r.amount), currency: r.currency as string };
}

export function paymentFromRow(r: Row): PaymentRecord {
  return {
    paymentId: r.payment_id as string,
    orderId: r.order_id as string,
    merchantOrderId: strOrNull(r.merchant_order_id),
    status: r.status as string,
    amount: int(r.amount),
    currency: r.currency as string,
    everApproved: flag(r.ever_approved),
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
    query: json<Record<string, unknown>>(r.query),
    body: strOrNull(r.body),
    headers: json<Record<string, string>>(r.headers),
    signatureOk: r.signature_ok === null || r.signature_ok === undefined ? null : flag(r.signature_ok),
    processedAt: intOrNull(r.processed_at),
    outcome: strOrNull(r.outcome),
    source: strOrNull(r.source),
    attempts: intOrNull(r.attempts) ?? 0,
    givenUpAt: intOrNull(r.given_up_at),
  };
}

/**
 * The other way: a new notification's values for `INSERT INTO notifications (received_at, form,
 * topic, resource_id, query, body, headers, signature_ok, processed_at, outcome, source)`.
 */
export function notificationValues(n: Omit<NotificationRecord, 'id' | 'attempts' | 'givenUpAt'>): unknown[] {
  return [
    n.receivedAt,
    n.form,
    n.topic,
    n.resourceId,
    JSON.stringify(n.query),
    n.body,
    JSON.stringify(n.headers),
    n.signatureOk === null ? null : n.signatureOk ? 1 : 0,
    n.processedAt,
    n.outcome,
    n.source ?? null,
  ];
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
    body: json<DexAuditRecord['body']>(r.body),
  };
}

export function operatorFromRow(r: Row): OperatorRecord {
  return {
    id: int(r.id),
    email: r.email as string,
    role: r.role as OperatorRecord['role'],
    passwordHash: r.password_hash as string,
    createdAt: int(r.created_at),
    disabledAt: intOrNull(r.disabled_at),
  };
}

export function operatorSessionFromRow(r: Row): OperatorSessionRecord {
  return { tokenHash: r.token_hash as string, operatorId: int(r.operator_id), createdAt: int(r.created_at), expiresAt: int(r.expires_at) };
}

export function operatorAuditFromRow(r: Row): OperatorAuditRecord {
  return {
    id: int(r.id),
    operatorId: intOrNull(r.operator_id),
    actor: r.actor as string,
    action: r.action as string,
    orderId: strOrNull(r.order_id),
    kioskId: strOrNull(r.kiosk_id),
    reason: r.reason as string,
    detail: strOrNull(r.detail),
    at: int(r.at),
  };
}
