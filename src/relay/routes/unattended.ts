import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { toDecimalNumber } from '../../core/money.js';
import type { Logger } from '../../runtime/log.js';
import type { RelayConfig } from '../config.js';
import type { OrderService } from '../orders.js';
import type { Kiosk, OrderRecord, RelayStore } from '../store.js';

// The unattended-model POS url. Mercado Pago polls it while a customer's app shows "waiting" after
// scanning the kiosk's static QR. We answer with the kiosk's order only while it can still be
// dispensed (pending, in time, kiosk online); the response shape depends on the generation
// Mercado Pago enabled for the account (docs/mercadopago.md).

export interface UnattendedDeps {
  store: RelayStore;
  orders: OrderService;
  config: RelayConfig;
  logger: Logger;
  /** the business clock offerFor uses (tests move it by hand); an answer's validity is measured on it */
  now?: () => number;
  /** whether the kiosk's WebSocket is up; an answer is recomputed when this flips */
  isOnline?: (kioskId: string) => boolean;
}

const sha256 = (s: string) => createHash('sha256').update(s).digest();
const NO_SUCH_POS = sha256('no-such-pos');

/** Compares digests so the comparison time depends on neither the key nor its length. */
function sameKey(given: string, expected: Buffer): boolean {
  return timingSafeEqual(sha256(given), expected);
}

// Mercado Pago polls the POS url several times a second per waiting customer, and the answer
// changes only when an order changes (a database write), the kiosk connects or disconnects, or a
// deadline passes. Profiling the route (bench/README.md) showed the three store reads and the
// JSON building per poll costing more than fastify itself, so each POS keeps its last answer,
// already serialised, and reuses it while:
//   - the store's write count is unchanged (no row changed in this process; the fields a poll
//     depends on are written only by the relay process: `kiosk add` from the CLI creates a POS
//     the cache has never seen, and nothing changes a POS key or generation afterwards),
//   - the kiosk's online state is the same,
//   - the business clock is before the answer's end: an offered order's deadline, or at most
//     ANSWER_TTL_MS for "no order" (which of the "no order" texts applies can change with time,
//     e.g. the just-paid window ending; no "no order" answer becomes an order without a write).
const ANSWER_TTL_MS = 250;
/** POS ids that do not exist, remembered so repeated probes cost what a known POS costs */
const UNKNOWN_POS_LIMIT = 1000;

interface Answer {
  status: number;
  orderVersion: boolean;
  body: string;
}

interface Cached {
  kiosk: Kiosk | undefined;
  keyDigest: Buffer;
  writes: number;
  online: boolean;
  until: number;
  answer: Answer | undefined;
  /** the order this answer offers, so "serving order" is logged once per order, not per poll */
  orderId: string | undefined;
}

const REFUSED = JSON.stringify({ error: { type: 'invalid', message: 'unknown point of sale or wrong key' } });
const JSON_TYPE = 'application/json; charset=utf-8';

export function registerUnattendedRoutes(app: FastifyInstance, deps: UnattendedDeps): void {
  const notificationUrl = `${deps.config.publicUrl}/mp/notifications`;
  const now = deps.now ?? Date.now;
  const cache = new Map<string, Cached>();

  /** The answer for a known kiosk from the database, as offerFor sees it now. */
  const compute = (kiosk: Kiosk, at: number, previousOrderId: string | undefined): { answer: Answer; until: number; orderId?: string } => {
    const offer = deps.orders.offerFor(kiosk);
    if (offer.kind === 'none') {
      const until = at + ANSWER_TTL_MS;
      if (kiosk.generation === 'v1') {
        // v1 has no "just paid" state: "unavailable" is the closest (no order to serve).
        const type = offer.reason === 'kiosk_offline' ? 'timeout' : 'unavailable';
        return { answer: { status: 400, orderVersion: false, body: JSON.stringify({ error: { type } }) }, until };
      }
      const detail = offer.reason === 'just_paid' ? 'notihing_to_pay' : 'Waiting_for_order'; // MP's spelling
      return { answer: { status: 202, orderVersion: false, body: JSON.stringify({ status: { status_detail: detail } }) }, until };
    }
    const order = offer.order;
    if (order.id !== previousOrderId) {
      deps.logger.info({ orderId: order.id, kioskId: kiosk.id, generation: kiosk.generation }, `POS ${kiosk.posExternalId}: serving order ${order.id}`);
    }
    const v1 = kiosk.generation === 'v1';
    const body = JSON.stringify(v1 ? v1Order(deps.config, kiosk, order, notificationUrl) : v2Order(kiosk, order, notificationUrl));
    return { answer: { status: 200, orderVersion: !v1, body }, until: order.deadline, orderId: order.id };
  };

  /** The POS's cached entry, refreshed when the database or the kiosk's link changed since. */
  const lookup = (posExternalId: string): Cached => {
    const writes = deps.store.writeCount();
    let c = cache.get(posExternalId);
    if (c && c.writes !== writes) c = undefined;
    if (!c) {
      const kiosk = deps.store.getKioskByPos(posExternalId);
      if (!kiosk && cache.size >= UNKNOWN_POS_LIMIT) cache.clear();
      c = { kiosk, keyDigest: kiosk ? sha256(kiosk.posKey) : NO_SUCH_POS, writes, online: false, until: -Infinity, answer: undefined, orderId: undefined };
      const old = cache.get(posExternalId);
      c.orderId = old?.orderId;
      cache.set(posExternalId, c);
    }
    return c;
  };

  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const { posExternalId } = req.params as { posExternalId: string };
    const q = req.query as Record<string, unknown>;
    const key = typeof q.key === 'string' ? q.key : '';
    const c = lookup(posExternalId);
    // Always compare, even for an unknown POS, so timing does not reveal which POS ids exist.
    const keyOk = sameKey(key, c.keyDigest);
    const kiosk = c.kiosk;
    if (!kiosk || !keyOk) {
      deps.logger.warn(
        { posExternalId, remote: req.ip },
        `POS url called with ${kiosk ? 'a wrong key' : 'an unknown POS'} (${posExternalId}) from ${req.ip}: refused`,
      );
      // Same answer for both cases: an attacker learns nothing about which POS ids exist.
      return reply.code(400).header('content-type', JSON_TYPE).send(REFUSED);
    }

    const at = now();
    const online = deps.isOnline ? deps.isOnline(kiosk.id) : false;
    if (!c.answer || at >= c.until || (deps.isOnline !== undefined && online !== c.online) || !deps.isOnline) {
      const r = compute(kiosk, at, c.orderId);
      c.answer = r.answer;
      c.until = r.until;
      c.online = online;
      c.orderId = r.orderId;
    }
    const a = c.answer;
    reply.code(a.status).header('content-type', JSON_TYPE);
    if (a.orderVersion) reply.header('order-version', '2');
    return reply.send(a.body);
  };

  app.get('/mp/pos/:posExternalId', handler);
  // Mercado Pago does not document the method of the poll: answer POST the same way.
  app.post('/mp/pos/:posExternalId', handler);
}

function describe(kiosk: Kiosk, order: OrderRecord): string {
  return `${order.title} (kiosk ${kiosk.id}${order.slot ? `, slot ${order.slot}` : ''})`;
}

export function v1Order(config: RelayConfig, kiosk: Kiosk, order: OrderRecord, notificationUrl: string) {
  return {
    collector_id: config.mercadopago.collectorId,
    ...(config.mercadopago.sponsorId !== undefined ? { sponsor_id: config.mercadopago.sponsorId } : {}),
    items: [
      {
        title: order.title,
        currency_id: order.currency,
        description: describe(kiosk, order),
        quantity: order.quantity,
        unit_price: toDecimalNumber(order.unitPrice, order.currency),
      },
    ],
    external_reference: order.id,
    notification_url: notificationUrl,
  };
}

export function v2Order(kiosk: Kiosk, order: OrderRecord, notificationUrl: string) {
  // total_amount must equal the sum of the items' total_amount: both come from the same integer.
  const total = toDecimalNumber(order.amount, order.currency);
  return {
    external_reference: order.id,
    total_amount: total,
    items: [
      {
        sku_number: order.sku,
        category: 'vending',
        title: order.title,
        description: describe(kiosk, order),
        quantity: order.quantity,
        unit_measure: 'unit',
        unit_price: toDecimalNumber(order.unitPrice, order.currency),
        total_amount: total,
      },
    ],
    title: order.title,
    description: describe(kiosk, order),
    notification_url: notificationUrl,
  };
}
