import { createHash, randomBytes } from 'node:crypto';
import type { Currency } from '../../core/money.js';
import type { OrderState } from '../../core/relay-order.js';
import type { OfferState } from '../../core/mp-offer.js';
import type { DexAuditFrame, PaymentModelName } from '../../protocol/messages.js';

// The relay's records as every store implementation (SQLite, PostgreSQL) hands them out, and the
// pure helpers around kiosk credentials. No I/O here: src/relay/store/api.ts says what a store
// does, src/relay/store/sqlite/ and src/relay/store/postgres/ how.

/** Several reasons for review are kept in the one column, joined by this. */
export const REVIEW_SEPARATOR = '; ';

export type ResponseGeneration = 'v1' | 'v2';

export interface Kiosk {
  id: string;
  posExternalId: string;
  posKey: string;
  paymentModel: PaymentModelName;
  /** the model's variant: see relay/models/catalog.ts (MODEL_MODES) */
  modelMode: string | null;
  /** the Mercado Pago store the POS belongs to (attended orders are put on store + POS) */
  storeExternalId: string | null;
  generation: ResponseGeneration;
  posQr: string | null;
  createdAt: number;
}

export interface OrderRecord {
  id: string;
  kioskId: string;
  slot: number | null;
  sku: string;
  title: string;
  quantity: number;
  /** catalog price of one unit, minor units */
  unitPrice: number;
  /** what the customer must pay: relay catalog price x quantity, minor units */
  amount: number;
  currency: Currency;
  /** what the kiosk said; kept to investigate price mismatches */
  claimedAmount: number;
  claimedCurrency: string;
  state: OrderState;
  rejectReason: string | null;
  deadline: number;
  createdAt: number;
  updatedAt: number;
  paidAt: number | null;
  merchantOrderId: string | null;
  paymentIds: string[];
  lastNotificationAt: number | null;
  vendResult: string | null;
  /** why a person must look at this order (reasons joined by "; "); null when nothing to review */
  needsReview: string | null;
  /** when the watchdog flagged a paid order whose kiosk had not reported the vend */
  vendOverdueAt: number | null;
  /** where the order stands at Mercado Pago (core/mp-offer.ts) */
  offerState: OfferState;
  /** Mercado Pago's id of what was made payable: the Orders API order, or the instore order */
  mpOrderId: string | null;
  /** the QR payload of this order (dynamic models); null when the kiosk shows its POS QR */
  qr: string | null;
  /** the last error of the offer or withdrawal call */
  offerError: string | null;
}

export interface OrderEventRecord {
  orderId: string;
  from: OrderState | null;
  to: OrderState;
  event: string;
  detail: string | null;
  at: number;
}

export interface PaymentRecord {
  paymentId: string;
  orderId: string;
  merchantOrderId: string | null;
  status: string;
  amount: number;
  currency: string;
  /** seen `approved` at least once: stays true after MP marks it refunded, so a refund is still owed/accounted */
  everApproved: boolean;
  firstSeenAt: number;
  updatedAt: number;
}

/**
 * `order`: the order itself is refunded (refunding -> refunded). `surplus`: one payment the order
 * did not need (a second payment, a payment on a rejected or already refunded order) is given back
 * while the order keeps its state. `partial`: an operator gives back part of a dispensed order's
 * payment (requestedAmount); the order keeps its state (schema 10).
 */
export type RefundReason = 'order' | 'surplus' | 'partial';

export interface RefundRecord {
  id: number;
  orderId: string;
  paymentId: string;
  idempotencyKey: string;
  reason: RefundReason;
  mpRefundId: string | null;
  amount: number | null;
  currency: string | null;
  /**
   * 'requested' until Mercado Pago answers; then MP's refund status (approved, in_process,
   * rejected...), 'external' (refunded outside the relay) or 'failed' (MP refused it for good).
   */
  status: string;
  attempts: number;
  lastError: string | null;
  requestedAt: number;
  completedAt: number | null;
  /** minor units asked of Mercado Pago; null: all that remains of the payment (schema 10) */
  requestedAmount: number | null;
}

export interface NotificationRecord {
  id: number;
  receivedAt: number;
  form: 'ipn' | 'webhook' | 'unknown';
  topic: string | null;
  resourceId: string | null;
  query: Record<string, unknown>;
  body: string | null;
  headers: Record<string, string>;
  signatureOk: boolean | null;
  processedAt: number | null;
  outcome: string | null;
  /** the client address it came from (the proxy's X-Forwarded-For when trusted) */
  source?: string | null;
  /** failed processing attempts so far */
  attempts?: number;
  /** set when processing was given up for good (poison row): a person should look */
  givenUpAt?: number | null;
}

export interface OutboxRecord {
  seq: number;
  kioskId: string;
  messageId: string;
  type: string;
  /** the complete frame as JSON text, so a re-send is byte-identical (same id) */
  payload: string;
  createdAt: number;
}

export class StoreError extends Error {
  override name = 'StoreError';
}

export function hashToken(token: string): string {
  return createHash('sha256').update(token, 'utf8').digest('hex');
}

export function newKioskToken(): string {
  return `qk_${randomBytes(32).toString('base64url')}`;
}

export function newPosKey(): string {
  return randomBytes(24).toString('base64url');
}

/** The path Mercado Pago calls for this POS; append it to publicUrl. */
export function posPath(posExternalId: string, posKey: string): string {
  return `/mp/pos/${posExternalId}?key=${posKey}`;
}

/** The full URL registered at Mercado Pago as the POS url (MP keeps at most 300 characters). */
export function posUrl(publicUrl: string, kiosk: Pick<Kiosk, 'posExternalId' | 'posKey'>): string {
  const url = `${publicUrl.replace(/\/+$/, '')}${posPath(kiosk.posExternalId, kiosk.posKey)}`;
  if (url.length >= 300) {
    throw new StoreError(`POS url is ${url.length} characters; Mercado Pago accepts fewer than 300: shorten publicUrl`);
  }
  return url;
}

/** One stored machine audit: the dex.audit frame as received, minus the envelope. */
export interface DexAuditRecord {
  auditId: string;
  kioskId: string;
  machineSerial: string;
  readAt: number;
  receivedAt: number;
  body: Omit<DexAuditFrame, 'v' | 'id' | 'type'>;
}

export interface NewOrder {
  id: string;
  kioskId: string;
  slot: number | null;
  sku: string;
  title: string;
  quantity: number;
  unitPrice: number;
  amount: number;
  currency: Currency;
  claimedAmount: number;
  claimedCurrency: string;
  state: 'pending' | 'rejected';
  rejectReason?: string | null;
  deadline: number;
  createdAt: number;
  /** default `local`: nothing to do at Mercado Pago */
  offerState?: 'local' | 'due';
  /** a QR made without a call (offline dynamic) */
  qr?: string | null;
}

/** Columns a transition may set besides state (the order's own facts, not its history). */
export interface OrderPatch {
  paidAt?: number | null;
  merchantOrderId?: string | null;
  paymentIds?: string[];
  vendResult?: string | null;
  needsReview?: string | null;
}

export interface AddKioskInput {
  id: string;
  /** the external_id of the Mercado Pago POS: letters and digits, fewer than 40 */
  posExternalId: string;
  generation?: ResponseGeneration;
  posQr?: string | null;
  model?: PaymentModelName;
  modelMode?: string | null;
  storeExternalId?: string | null;
}

export interface AddedKiosk {
  /** shown once: only its sha256 is stored */
  token: string;
  posKey: string;
  posPath: string;
  kiosk: Kiosk;
}


// ---- pure rules shared by every implementation --------------------------------------------------

const KIOSK_ID = /^[A-Za-z0-9][A-Za-z0-9_.-]{0,63}$/;
const POS_EXTERNAL_ID = /^[A-Za-z0-9]{1,39}$/;

/** Mercado Pago's rule for a store's external id; throws StoreError naming what to write. */
export function checkStoreExternalId(storeExternalId: string): void {
  if (!POS_EXTERNAL_ID.test(storeExternalId)) {
    throw new StoreError(`store external id "${storeExternalId}" must be letters and digits only, fewer than 40 (Mercado Pago's rule)`);
  }
}

/** The checks of addKiosk that need no database (the uniqueness checks are the store's). */
export function checkKioskInput(input: AddKioskInput): ResponseGeneration {
  if (!KIOSK_ID.test(input.id)) {
    throw new StoreError(`kiosk id "${input.id}" must be letters, digits, "_", "-" or "." (at most 64)`);
  }
  if (!POS_EXTERNAL_ID.test(input.posExternalId)) {
    throw new StoreError(`POS external id "${input.posExternalId}" must be letters and digits only, fewer than 40 (Mercado Pago's rule)`);
  }
  const generation = input.generation ?? 'v2';
  if (generation !== 'v1' && generation !== 'v2') throw new StoreError(`generation must be v1 or v2, not ${String(generation)}`);
  if (input.storeExternalId != null) checkStoreExternalId(input.storeExternalId);
  return generation;
}

/**
 * The review column after adding `why` to `current` (earlier reasons kept, the same reason twice
 * kept once); undefined when nothing changes.
 */
export function withReviewReason(current: string | null, why: string): string | undefined {
  const reasons = current ? current.split(REVIEW_SEPARATOR) : [];
  if (reasons.includes(why)) return undefined;
  reasons.push(why);
  return reasons.join(REVIEW_SEPARATOR);
}

/** The review column without the reasons starting with `prefix` (null: none left); undefined when nothing changes. */
export function withoutReviewReasons(current: string | null, prefix: string): string | null | undefined {
  if (!current) return undefined;
  const reasons = current.split(REVIEW_SEPARATOR);
  const kept = reasons.filter((r) => !r.startsWith(prefix));
  if (kept.length === reasons.length) return undefined;
  return kept.length ? kept.join(REVIEW_SEPARATOR) : null;
}

/** An integration's key for /api/v1 (migration 8): only the secret's hash is kept. */
export interface ApiKeyRecord {
  id: string;
  name: string;
  /** scopes of core/console-roles.ts */
  scopes: string[];
  secretHash: string;
  createdAt: number;
  revokedAt: number | null;
}
// ---- fleet and console (schema 7) ---------------------------------------------------------------

/** Which relay instance holds a kiosk's WebSocket (relay/fleet/presence.ts). */
export interface PresenceRow {
  kioskId: string;
  instanceId: string;
  connectedAt: number;
  seenAt: number;
}

/** One alert: a condition about a subject, fired once and cleared once (core/alert.ts). */
export interface AlertRecord {
  id: string;
  /** kind + subject; at most one open (not cleared) alert per key */
  key: string;
  kind: import('../../core/alert.js').AlertKind;
  kioskId: string | null;
  summary: string;
  facts: Record<string, unknown>;
  firedAt: number;
  clearedAt: number | null;
}

/** A message owed to the outside world (core/outbound-delivery.ts). */
export interface DeliveryRecord {
  id: string;
  channel: string;
  event: string;
  payload: string;
  /** what it is about, e.g. `alert:<id>` or `order:<id>` */
  subject: string;
  state: import('../../core/outbound-delivery.js').DeliveryState;
  attempts: number;
  nextAt: number;
  lastError: string | null;
  createdAt: number;
  deliveredAt: number | null;
}

export type NewDelivery = Pick<DeliveryRecord, 'id' | 'channel' | 'event' | 'payload' | 'subject'>;

// ---- operator console (schema 9) ------------------------------------------------------------------

/** A person who logs in to /console (src/relay/console/web/). Roles: core/console-roles.ts. */
export interface OperatorRecord {
  id: number;
  email: string;
  role: 'viewer' | 'operator' | 'admin';
  passwordHash: string;
  createdAt: number;
  disabledAt: number | null;
}

/** A console login; only the sha256 of the cookie's secret is stored. */
export interface OperatorSessionRecord {
  tokenHash: string;
  operatorId: number;
  createdAt: number;
  expiresAt: number;
}

/** One operator action (refund, review cleared, kiosk command...): who, when, why. */
export interface OperatorAuditRecord {
  id: number;
  operatorId: number | null;
  /** who acted, as they were named then (an e-mail, or `cli:<user>` for the CLI) */
  actor: string;
  action: string;
  orderId: string | null;
  kioskId: string | null;
  reason: string;
  /** facts of the action (amount, slot, decision...) as JSON text */
  detail: string | null;
  at: number;
}
