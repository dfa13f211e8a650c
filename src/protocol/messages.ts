import { z } from 'zod';
import { CURRENCY_CODES } from '../core/money.js';

// The agent <-> relay wire protocol: JSON text frames over one WebSocket (path /v1/kiosk).
// Every frame has `v` (protocol version), `type` and a unique `id`. Frames that change state are
// RELIABLE: the sender keeps them in its outbox until the peer answers `ack` with the same id,
// re-sends them after a reconnect, and the receiver applies each id at most once.

export const PROTOCOL_VERSION = 1;

const base = {
  v: z.literal(PROTOCOL_VERSION),
  id: z.string().min(1).max(100),
};
const orderId = z.string().regex(/^ord_[A-Za-z0-9_-]{6,60}$/, 'order ids look like ord_<letters/digits>');
const currency = z.enum(CURRENCY_CODES as [string, ...string[]]);
const minor = z.number().int().nonnegative();
const epochMs = z.number().int().nonnegative();

// ---- agent -> relay -----------------------------------------------------------------------------

export const Hello = z.object({
  ...base,
  type: z.literal('hello'),
  kioskId: z.string().min(1),
  agentVersion: z.string(),
  /** orders the agent still considers open, so the relay can reconcile after either side restarts */
  openOrders: z.array(z.object({ orderId, state: z.string() })).default([]),
});

/** Highest slot (button/spiral) number a kiosk may name: the largest machines have a few hundred. */
export const MAX_SLOT = 999;

export const OrderReady = z.object({
  ...base,
  type: z.literal('order.ready'),
  orderId,
  slot: z.number().int().positive().max(MAX_SLOT),
  sku: z.string().min(1),
  quantity: z.number().int().positive().default(1),
  /** what the kiosk displays; the relay prices from its own catalog and refuses a mismatch */
  amount: minor,
  currency,
  /** epoch ms after which the kiosk will no longer dispense for this order */
  deadline: epochMs,
});

export const OrderCancel = z.object({
  ...base,
  type: z.literal('order.cancel'),
  orderId,
  reason: z.enum(['customer', 'timeout', 'technician', 'fault', 'rejected']),
});

export const VEND_RESULTS = ['dispensed', 'vend_failed', 'jammed', 'vend_unknown', 'not_dispensed'] as const;
export type VendResultKind = (typeof VEND_RESULTS)[number];

export const VendResult = z.object({
  ...base,
  type: z.literal('vend.result'),
  orderId,
  result: z.enum(VEND_RESULTS),
  pulses: z.number().int().nonnegative().default(0),
  detail: z.string().max(500).optional(),
});

/**
 * A technician checked by hand a vend the kiosk could not see (crash mid-dispense, a sensor that
 * missed the drop) and says what happened: `qrkiosk resolve <order> dispensed|refund`.
 */
export const VendResolve = z.object({
  ...base,
  type: z.literal('vend.resolve'),
  orderId,
  resolution: z.enum(['dispensed', 'refund']),
  /** who (the technician's login) and when, as recorded in the kiosk's journal */
  by: z.string().min(1).max(100),
  at: epochMs,
});

// A vending machine's own audit (EVA-DTS over its DEX port, src/devices/dex/), read by the agent
// and kept by the relay beside qrkiosk's own sales. Amounts are in the machine's unit: `decimals`
// (EVA-DTS ID4) says where the point goes. Sized to fit one frame: a machine with more
// selections than `products` allows is sent without the extra ones (`truncated`).
const dexMeter = z
  .object({
    valueSinceInit: z.number().int().nullable(),
    countSinceInit: z.number().int().nullable(),
    valueSinceReset: z.number().int().nullable(),
    countSinceReset: z.number().int().nullable(),
  })
  .nullable();
const short = (n: number) => z.string().max(n).nullable();

export const DexAuditFrame = z.object({
  ...base,
  type: z.literal('dex.audit'),
  /** the read's own id: the relay stores each read once */
  auditId: z.string().regex(/^dex_[A-Za-z0-9_-]{6,60}$/, 'audit ids look like dex_<letters/digits>'),
  readAt: epochMs,
  protocol: z.enum(['dex', 'ddcmp']),
  /** which MDB cashless device qrkiosk is on this machine (1 or 2), null when it is not on MDB */
  cashlessDevice: z.union([z.literal(1), z.literal(2)]).nullable(),
  machine: z.object({ serial: z.string().min(1).max(40), model: short(40), location: short(60), asset: short(40) }),
  decimals: z.number().int().min(0).max(4).nullable(),
  currency: short(3),
  paid: dexMeter,
  cash: dexMeter,
  cashless1: dexMeter,
  cashless2: dexMeter,
  products: z
    .array(
      z.object({
        selection: z.string().min(1).max(20),
        price: z.number().int().nullable(),
        productId: short(40),
        countSinceInit: z.number().int().nullable(),
        valueSinceInit: z.number().int().nullable(),
        countSinceReset: z.number().int().nullable(),
        valueSinceReset: z.number().int().nullable(),
      }),
    )
    .max(300),
  events: z
    .array(
      z.object({
        code: z.string().min(2).max(4),
        name: short(60),
        date: short(6),
        time: short(6),
        sinceReset: z.number().int().nullable(),
        sinceInit: z.number().int().nullable(),
        active: z.boolean().nullable(),
      }),
    )
    .max(100),
  truncated: z.boolean().default(false),
});

// ---- relay -> agent -----------------------------------------------------------------------------

export const CatalogEntry = z.object({
  sku: z.string(),
  name: z.string(),
  price: minor,
  currency,
});

export const PAYMENT_MODELS = ['unattended', 'attended', 'dynamic', 'orders'] as const;
export type PaymentModelName = (typeof PAYMENT_MODELS)[number];

export const Welcome = z.object({
  ...base,
  type: z.literal('welcome'),
  kioskId: z.string(),
  serverTime: epochMs,
  paymentModel: z.enum(PAYMENT_MODELS),
  /** what the screen shows as QR for this kiosk's POS (static model) */
  posQr: z.string(),
  /**
   * true when an order becomes payable only once the relay accepts it (every model but
   * unattended): the kiosk shows no QR before order.accepted, then the order's own QR if it
   * brought one, else the POS QR. Absent from older relays = false.
   */
  qrOnAccept: z.boolean().optional(),
  catalog: z.array(CatalogEntry),
  /** the relay never keeps an order payable longer than this */
  maxPaymentSeconds: z.number().int().positive(),
});

export const OrderAccepted = z.object({
  ...base,
  type: z.literal('order.accepted'),
  orderId,
  amount: minor,
  currency,
  /** per-order QR (dynamic model); absent for the static POS QR */
  qr: z.string().optional(),
});

export const OrderRejected = z.object({
  ...base,
  type: z.literal('order.rejected'),
  orderId,
  reason: z.enum(['price_mismatch', 'unknown_product', 'duplicate', 'kiosk_busy', 'invalid', 'payment_unavailable']),
  message: z.string(),
});

export const OrderPaid = z.object({
  ...base,
  type: z.literal('order.paid'),
  orderId,
  paymentId: z.string(),
  amount: minor,
  currency,
});

export const OrderExpired = z.object({
  ...base,
  type: z.literal('order.expired'),
  orderId,
});

export const OrderRefunded = z.object({
  ...base,
  type: z.literal('order.refunded'),
  orderId,
  refundId: z.string(),
  amount: minor,
  currency,
});

// ---- both ways -----------------------------------------------------------------------------------

export const Ack = z.object({ ...base, type: z.literal('ack'), ackId: z.string().min(1) });
export const Ping = z.object({ ...base, type: z.literal('ping'), at: epochMs });
export const Pong = z.object({ ...base, type: z.literal('pong'), at: epochMs });
export const ErrorFrame = z.object({
  ...base,
  type: z.literal('error'),
  /** the id of the frame that caused it, when it had one */
  refId: z.string().optional(),
  code: z.enum(['malformed', 'unknown_type', 'unsupported_version', 'invalid', 'unauthorized', 'internal']),
  message: z.string(),
});

export const AgentMessage = z.discriminatedUnion('type', [
  Hello,
  OrderReady,
  OrderCancel,
  VendResult,
  VendResolve,
  DexAuditFrame,
  Ack,
  Ping,
  Pong,
  ErrorFrame,
]);
export const RelayMessage = z.discriminatedUnion('type', [
  Welcome,
  OrderAccepted,
  OrderRejected,
  OrderPaid,
  OrderExpired,
  OrderRefunded,
  Ack,
  Ping,
  Pong,
  ErrorFrame,
]);

export type AgentMessage = z.infer<typeof AgentMessage>;
export type RelayMessage = z.infer<typeof RelayMessage>;
export type Hello = z.infer<typeof Hello>;
export type OrderReady = z.infer<typeof OrderReady>;
export type OrderCancel = z.infer<typeof OrderCancel>;
export type VendResult = z.infer<typeof VendResult>;
export type VendResolve = z.infer<typeof VendResolve>;
export type Welcome = z.infer<typeof Welcome>;
export type OrderAccepted = z.infer<typeof OrderAccepted>;
export type OrderRejected = z.infer<typeof OrderRejected>;
export type OrderPaid = z.infer<typeof OrderPaid>;
export type OrderExpired = z.infer<typeof OrderExpired>;
export type OrderRefunded = z.infer<typeof OrderRefunded>;
export type ErrorFrame = z.infer<typeof ErrorFrame>;
export type DexAuditFrame = z.infer<typeof DexAuditFrame>;

/** Frames kept in an outbox until acked, and applied at most once by the receiver. */
export const RELIABLE_TYPES = new Set<string>([
  'order.ready',
  'order.cancel',
  'vend.result',
  'vend.resolve',
  'dex.audit',
  'order.accepted',
  'order.rejected',
  'order.paid',
  'order.expired',
  'order.refunded',
]);

export function isReliable(type: string): boolean {
  return RELIABLE_TYPES.has(type);
}
