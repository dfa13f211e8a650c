import * as z from 'zod/mini';
import '../runtime/zod.js';
import { CURRENCY_CODES } from '../core/money.js';

// The agent <-> relay wire protocol: JSON text frames over one WebSocket (path /v1/kiosk).
// Every frame has `v` (protocol version), `type` and a unique `id`. Frames that change state are
// RELIABLE: the sender keeps them in its outbox until the peer answers `ack` with the same id,
// re-sends them after a reconnect, and the receiver applies each id at most once.

export const PROTOCOL_VERSION = 1;

const base = {
  v: z.literal(PROTOCOL_VERSION),
  id: z.string().check(z.minLength(1), z.maxLength(100)),
};
const orderId = z.string().check(z.regex(/^ord_[A-Za-z0-9_-]{6,60}$/, 'order ids look like ord_<letters/digits>'));
const currency = z.enum(CURRENCY_CODES as [string, ...string[]]);
const minor = z.number().check(z.int(), z.nonnegative());
const epochMs = z.number().check(z.int(), z.nonnegative());

// ---- agent -> relay -----------------------------------------------------------------------------

export const Hello = z.object({
  ...base,
  type: z.literal('hello'),
  kioskId: z.string().check(z.minLength(1)),
  agentVersion: z.string(),
  /** orders the agent still considers open, so the relay can reconcile after either side restarts */
  openOrders: z._default(z.array(z.object({ orderId, state: z.string() })), []),
});

/** Highest slot (button/spiral) number a kiosk may name: the largest machines have a few hundred. */
export const MAX_SLOT = 999;

export const OrderReady = z.object({
  ...base,
  type: z.literal('order.ready'),
  orderId,
  slot: z.number().check(z.int(), z.positive(), z.lte(MAX_SLOT)),
  sku: z.string().check(z.minLength(1)),
  quantity: z._default(z.number().check(z.int(), z.positive()), 1),
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
  pulses: z._default(z.number().check(z.int(), z.nonnegative()), 0),
  detail: z.optional(z.string().check(z.maxLength(500))),
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
  by: z.string().check(z.minLength(1), z.maxLength(100)),
  at: epochMs,
});

// A vending machine's own audit (EVA-DTS over its DEX port, src/devices/dex/), read by the agent
// and kept by the relay beside qrkiosk's own sales. Amounts are in the machine's unit: `decimals`
// (EVA-DTS ID4) says where the point goes. Sized to fit one frame: a machine with more
// selections than `products` allows is sent without the extra ones (`truncated`).
const dexMeter = z.nullable(
  z.object({
    valueSinceInit: z.nullable(z.number().check(z.int())),
    countSinceInit: z.nullable(z.number().check(z.int())),
    valueSinceReset: z.nullable(z.number().check(z.int())),
    countSinceReset: z.nullable(z.number().check(z.int())),
  }),
);
const short = (n: number) => z.nullable(z.string().check(z.maxLength(n)));

export const DexAuditFrame = z.object({
  ...base,
  type: z.literal('dex.audit'),
  /** the read's own id: the relay stores each read once */
  auditId: z.string().check(z.regex(/^dex_[A-Za-z0-9_-]{6,60}$/, 'audit ids look like dex_<letters/digits>')),
  readAt: epochMs,
  protocol: z.enum(['dex', 'ddcmp']),
  /** which MDB cashless device qrkiosk is on this machine (1 or 2), null when it is not on MDB */
  cashlessDevice: z.nullable(z.union([z.literal(1), z.literal(2)])),
  machine: z.object({ serial: z.string().check(z.minLength(1), z.maxLength(40)), model: short(40), location: short(60), asset: short(40) }),
  decimals: z.nullable(z.number().check(z.int(), z.gte(0), z.lte(4))),
  currency: short(3),
  paid: dexMeter,
  cash: dexMeter,
  cashless1: dexMeter,
  cashless2: dexMeter,
  products: z
    .array(
      z.object({
        selection: z.string().check(z.minLength(1), z.maxLength(20)),
        price: z.nullable(z.number().check(z.int())),
        productId: short(40),
        countSinceInit: z.nullable(z.number().check(z.int())),
        valueSinceInit: z.nullable(z.number().check(z.int())),
        countSinceReset: z.nullable(z.number().check(z.int())),
        valueSinceReset: z.nullable(z.number().check(z.int())),
      }),
    )
    .check(z.maxLength(300)),
  events: z
    .array(
      z.object({
        code: z.string().check(z.minLength(2), z.maxLength(4)),
        name: short(60),
        date: short(6),
        time: short(6),
        sinceReset: z.nullable(z.number().check(z.int())),
        sinceInit: z.nullable(z.number().check(z.int())),
        active: z.nullable(z.boolean()),
      }),
    )
    .check(z.maxLength(100)),
  truncated: z._default(z.boolean(), false),
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
  qrOnAccept: z.optional(z.boolean()),
  catalog: z.array(CatalogEntry),
  /** the relay never keeps an order payable longer than this */
  maxPaymentSeconds: z.number().check(z.int(), z.positive()),
  /**
   * What this relay understands beyond the order frames: 'console.v1' = kiosk.status,
   * stock.refill and command.result (docs/console-kiosk.md). Absent from older relays.
   */
  features: z.optional(z.array(z.string().check(z.maxLength(40))).check(z.maxLength(20))),
  /**
   * The id of the key the relay signs commands with. Informational only: the kiosk trusts the key
   * in its own agent.yaml (relay.commandKey), never one named over the link; this lets it say
   * early that the two differ.
   */
  commandKeyId: z.optional(z.string().check(z.maxLength(64))),
});

export const OrderAccepted = z.object({
  ...base,
  type: z.literal('order.accepted'),
  orderId,
  amount: minor,
  currency,
  /** per-order QR (dynamic model); absent for the static POS QR */
  qr: z.optional(z.string()),
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
  /**
   * the customer's receipt page (/r/<order>.<mac> on the relay): what the printed receipt's QR
   * opens. Absent from an older relay: the QR holds hardware.printer.qrText as before.
   */
  receiptUrl: z.optional(z.url().check(z.maxLength(500))),
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

// ---- operator console (docs/console-kiosk.md) ----------------------------------------------------

/** The relay understands the console frames below (Welcome.features). */
export const CONSOLE_FEATURE = 'console.v1';

const commandId = z.string().check(z.regex(/^cmd_[A-Za-z0-9_-]{6,60}$/, 'command ids look like cmd_<letters/digits>'));
const text = (n: number) => z.string().check(z.maxLength(n));

const statusFault = z.object({
  at: epochMs,
  device: text(120),
  kind: text(40),
  message: text(300),
  active: z.boolean(),
  clearedAt: z.optional(epochMs),
});

/** Most slots a status snapshot lists; a bigger machine is sent truncated (the frame cap is 64 KiB). */
export const STATUS_MAX_SLOTS = 300;

/**
 * agent -> relay, NOT reliable: what the kiosk is like right now. Each snapshot replaces the
 * previous one at the relay, so a lost one costs nothing: the next change, and every welcome,
 * sends a fresh one. Faults that started and cleared while the link was down are in `recent`.
 */
export const KioskStatus = z.object({
  ...base,
  type: z.literal('kiosk.status'),
  /** kiosk clock when the snapshot was taken */
  at: epochMs,
  agentVersion: text(40),
  startedAt: epochMs,
  /** the payment model of the last welcome; null before the first one */
  paymentModel: z.nullable(z.enum(PAYMENT_MODELS)),
  /** the screen shown now (idle, pay, out_of_service...) */
  screen: z.nullable(text(40)),
  /** idle, out_of_service, or the open order's state */
  state: text(40),
  /** out of service by a technician (`qrkiosk service on`) or by a relay command */
  service: z.nullable(z.object({ by: text(200), at: epochMs, via: z.enum(['technician', 'relay']) })),
  updating: z.boolean(),
  openOrder: z.nullable(z.object({ orderId, state: text(40) })),
  stock: z
    .array(
      z.object({
        slot: z.number().check(z.int(), z.positive(), z.lte(MAX_SLOT)),
        sku: text(60),
        count: z.number().check(z.int(), z.nonnegative()),
        /** the configured full count: what a refill loads */
        full: z.number().check(z.int(), z.nonnegative()),
        jammed: z.boolean(),
      }),
    )
    .check(z.maxLength(STATUS_MAX_SLOTS)),
  /** the prices the kiosk sells at now (after any price command) */
  prices: z.array(z.object({ sku: text(60), price: minor, currency })).check(z.maxLength(STATUS_MAX_SLOTS)),
  faults: z.object({ active: z.array(statusFault).check(z.maxLength(50)), recent: z.array(statusFault).check(z.maxLength(20)) }),
  /** reliable frames still waiting for the relay's ack */
  outboxPending: z.number().check(z.int(), z.nonnegative()),
  /** some slots, prices or faults were left out to fit one frame */
  truncated: z._default(z.boolean(), false),
});

/**
 * agent -> relay, reliable: a technician refilled (`qrkiosk stock refill`). A fact, so it goes
 * through the outbox; the relay keeps it once per refillId (the frame id is the refillId).
 */
export const StockRefill = z.object({
  ...base,
  type: z.literal('stock.refill'),
  refillId: z.string().check(z.regex(/^rfl_[A-Za-z0-9_-]{6,60}$/, 'refill ids look like rfl_<letters/digits>')),
  at: epochMs,
  by: z.string().check(z.minLength(1), z.maxLength(100)),
  slots: z
    .array(
      z.object({
        slot: z.number().check(z.int(), z.positive(), z.lte(MAX_SLOT)),
        sku: text(60),
        before: z.number().check(z.int(), z.nonnegative()),
        after: z.number().check(z.int(), z.nonnegative()),
      }),
    )
    .check(z.minLength(1), z.maxLength(STATUS_MAX_SLOTS)),
});

/**
 * relay -> agent: a signed operator command. `payload` is the exact JSON text that was signed
 * (src/protocol/signed-command.ts): the kiosk verifies the bytes it got, then parses them, so no
 * canonical JSON is needed. `signature` is optional here only so that an unsigned frame reaches
 * the kiosk's check and is refused with a reason instead of as a malformed frame.
 */
export const CommandFrame = z.object({
  ...base,
  type: z.literal('command'),
  payload: z.string().check(z.minLength(2), z.maxLength(60_000)),
  signature: z.optional(z.string().check(z.maxLength(200))),
  keyId: z.optional(z.string().check(z.maxLength(64))),
});

/** Why a kiosk that verified a command still did not apply it (recorded, sent reliably). */
export const COMMAND_VERDICT_REASONS = ['expired', 'not_yet_valid', 'invalid', 'busy'] as const;
/** Why a kiosk would not take a command frame at all (not recorded as seen, except replayed). */
export const COMMAND_REJECTIONS = ['no_key', 'unsigned', 'bad_signature', 'malformed', 'wrong_kiosk', 'replayed'] as const;
export type CommandVerdictReason = (typeof COMMAND_VERDICT_REASONS)[number];
export type CommandRejection = (typeof COMMAND_REJECTIONS)[number];

/**
 * agent -> relay, reliable: the kiosk's one verdict on a command whose signature it verified:
 * applied (with the kiosk's time of applying it) or refused with a reason. Queued in the same
 * journal transaction that applied or refused it.
 */
export const CommandResult = z.object({
  ...base,
  type: z.literal('command.result'),
  commandId,
  outcome: z.enum(['applied', 'refused']),
  /** kiosk clock: when it was applied (or refused) */
  at: epochMs,
  reason: z.optional(z.enum(COMMAND_VERDICT_REASONS)),
  message: text(500),
  /** what applying it gave: a test vend's result, the stock before/after... */
  result: z.optional(z.record(z.string(), z.union([z.string().check(z.maxLength(200)), z.number(), z.boolean(), z.null()]))),
});

/**
 * agent -> relay, NOT reliable: a command frame the kiosk would not take (unsigned, forged, for
 * another kiosk, already seen). Not queued: a flood of forged frames must not fill the outbox;
 * the kiosk logs each one.
 */
export const CommandRefused = z.object({
  ...base,
  type: z.literal('command.refused'),
  /** the id of the refused frame */
  frameId: z.string().check(z.minLength(1), z.maxLength(100)),
  /** the command id, when the payload could be read */
  commandId: z.optional(z.string().check(z.maxLength(100))),
  reason: z.enum(COMMAND_REJECTIONS),
  message: text(500),
  /** replayed: what the kiosk did with it the first time */
  first: z.optional(z.object({ state: text(20), at: epochMs })),
});

// ---- both ways -----------------------------------------------------------------------------------

export const Ack = z.object({ ...base, type: z.literal('ack'), ackId: z.string().check(z.minLength(1)) });
export const Ping = z.object({ ...base, type: z.literal('ping'), at: epochMs });
export const Pong = z.object({ ...base, type: z.literal('pong'), at: epochMs });
export const ErrorFrame = z.object({
  ...base,
  type: z.literal('error'),
  /** the id of the frame that caused it, when it had one */
  refId: z.optional(z.string()),
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
  KioskStatus,
  StockRefill,
  CommandResult,
  CommandRefused,
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
  CommandFrame,
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
export type KioskStatus = z.infer<typeof KioskStatus>;
export type StockRefill = z.infer<typeof StockRefill>;
export type CommandFrame = z.infer<typeof CommandFrame>;
export type CommandResult = z.infer<typeof CommandResult>;
export type CommandRefused = z.infer<typeof CommandRefused>;

/** Frames kept in an outbox until acked, and applied at most once by the receiver. */
export const RELIABLE_TYPES = new Set<string>([
  'order.ready',
  'order.cancel',
  'vend.result',
  'vend.resolve',
  'dex.audit',
  'stock.refill',
  'command.result',
  'order.accepted',
  'order.rejected',
  'order.paid',
  'order.expired',
  'order.refunded',
]);

export function isReliable(type: string): boolean {
  return RELIABLE_TYPES.has(type);
}
