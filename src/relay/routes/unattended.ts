import * as crypto from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { toDecimalNumber } from '../../core/money.js';
import type { Logger } from '../../runtime/log.js';
import type { RelayConfig } from '../config.js';
import type { RouteGuards } from '../limits.js';
import { printableId } from '../notification-ids.js';
import type { OrderService } from '../orders.js';
import type { Kiosk, OrderRecord, RelayStore } from '../store/index.js';

// The unattended-model POS url. Mercado Pago polls it while a customer's app shows "waiting" after
// scanning the kiosk's static QR. We answer with the kiosk's order only while it can still be
// dispensed (pending, in time, kiosk online); the response shape depends on the generation
// Mercado Pago enabled for the account (docs/mercadopago.md).

export interface UnattendedDeps {
  store: RelayStore;
  orders: OrderService;
  config: RelayConfig;
  logger: Logger;
  /** per-source limits and the aggregated refusal log (relay/limits.ts) */
  guards: RouteGuards;
  /** the business clock offerFor uses (tests move it by hand); an answer's validity is measured on it */
  now?: () => number;
  /** whether the kiosk's WebSocket is up; an answer is recomputed when this flips */
  isOnline?: (kioskId: string) => boolean;
}

// crypto.hash (Node >= 20.12) is one call instead of createHash's three objects: half the cost
// of the one digest every poll makes. An older Node 20 takes the long way.
const sha256: (s: string) => Buffer =
  typeof crypto.hash === 'function' ? (s) => crypto.hash('sha256', s, 'buffer') : (s) => crypto.createHash('sha256').update(s).digest();
const NO_SUCH_POS = sha256('no-such-pos');

/** Compares digests so the comparison time depends on neither the key nor its length. */
function sameKey(given: string, expected: Buffer): boolean {
  return crypto.timingSafeEqual(sha256(given), expected);
}

// Mercado Pago polls the POS url several times a second per waiting customer, and the answer
// changes only when an order changes (a database write), the kiosk connects or disconnects, or a
// deadline passes. Profiling the route (bench/README.md) showed the three store reads and the
// JSON building per poll costing more than fastify itself, so each POS keeps its kiosk row and
// its last answer, already serialised, and reuses them while:
//   - the store's write count is unchanged (no row changed in this process),
//   - the kiosk's online state is the same,
//   - the business clock is before the entry's end: ANSWER_TTL_MS after it was read, and never
//     past an offered order's deadline. The TTL bounds how long a change made by another
//     process (the CLI editing a kiosk) or by time alone (the just-paid window ending) can go
//     unseen; no "no order" answer becomes an order without a write in this process.
const ANSWER_TTL_MS = 250;
/** POS ids that do not exist are remembered too, so repeated probes cost what a known POS costs */
const CACHE_LIMIT = 1000;

interface Answer {
  status: number;
  orderVersion: boolean;
  body: string;
}

interface Cached {
  kiosk: Kiosk | undefined;
  keyDigest: Buffer;
  writes: number;
  until: number;
  online: boolean;
  answer: Answer | undefined;
  /** the order the last answer offered, so "serving order" is logged once per order, not per poll */
  orderId: string | undefined;
}

const REFUSED = JSON.stringify({ error: { type: 'invalid', message: 'unknown point of sale or wrong key' } });
const JSON_TYPE = 'application/json; charset=utf-8';

export function registerUnattendedRoutes(app: FastifyInstance, deps: UnattendedDeps): void {
  const notificationUrl = `${deps.config.publicUrl}/mp/notifications`;
  const now = deps.now ?? Date.now;
  const isOnline = deps.isOnline;
  const cache = new Map<string, Cached>();

  /** The answer for a known kiosk from the database, as offerFor sees it now. */
  const compute = async (kiosk: Kiosk, previousOrderId: string | undefined): Promise<{ answer: Answer; deadline?: number; orderId?: string }> => {
    const offer = await deps.orders.offerFor(kiosk);
    if (offer.kind === 'none') {
      if (kiosk.generation === 'v1') {
        // v1 has no "just paid" state: "unavailable" is the closest (no order to serve).
        const type = offer.reason === 'kiosk_offline' ? 'timeout' : 'unavailable';
        return { answer: { status: 400, orderVersion: false, body: JSON.stringify({ error: { type } }) } };
      }
      const detail = offer.reason === 'just_paid' ? 'notihing_to_pay' : 'Waiting_for_order'; // MP's spelling
      return { answer: { status: 202, orderVersion: false, body: JSON.stringify({ status: { status_detail: detail } }) } };
    }
    const order = offer.order;
    if (order.id !== previousOrderId) {
      deps.logger.info({ orderId: order.id, kioskId: kiosk.id, generation: kiosk.generation }, `POS ${kiosk.posExternalId}: serving order ${order.id}`);
    }
    const v1 = kiosk.generation === 'v1';
    const body = JSON.stringify(v1 ? v1Order(deps.config, kiosk, order, notificationUrl) : v2Order(kiosk, order, notificationUrl));
    return { answer: { status: 200, orderVersion: !v1, body }, deadline: order.deadline, orderId: order.id };
  };

  /** The POS's entry, read again from the database when a write, the TTL or a deadline says so. */
  const lookup = async (posExternalId: string, at: number): Promise<Cached> => {
    // the write count is read BEFORE the rows: a write landing meanwhile makes the next poll read again
    const writes = deps.store.writeCount();
    const old = cache.get(posExternalId);
    if (old && old.writes === writes && at < old.until) return old;
    const kiosk = await deps.store.getKioskByPos(posExternalId);
    if (!old && cache.size >= CACHE_LIMIT) cache.clear();
    const c: Cached = {
      kiosk,
      keyDigest: kiosk ? sha256(kiosk.posKey) : NO_SUCH_POS,
      writes,
      until: at + ANSWER_TTL_MS,
      online: false,
      answer: undefined,
      orderId: old?.orderId,
    };
    cache.set(posExternalId, c);
    return c;
  };

  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const { posExternalId } = req.params as { posExternalId: string };
    const q = req.query as Record<string, unknown>;
    const key = typeof q.key === 'string' ? q.key : '';
    const at = now();
    const c = await lookup(posExternalId, at);
    // Always compare, even for an unknown POS, so timing does not reveal which POS ids exist.
    const keyOk = sameKey(key, c.keyDigest);
    const kiosk = c.kiosk;
    if (!kiosk || !keyOk) {
      // aggregated per source: a prober must not be able to fill the disk with warnings
      deps.guards.refusals.note(
        req.ip,
        kiosk ? 'wrong POS key' : 'unknown POS',
        `POS url called with ${kiosk ? 'a wrong key' : 'an unknown POS'} (${printableId(posExternalId)}) from ${req.ip}: refused`,
      );
      // Same answer for both cases: an attacker learns nothing about which POS ids exist.
      return reply.code(400).header('content-type', JSON_TYPE).send(REFUSED);
    }

    // Without an online check to key on (a route registered on its own), compute every time.
    const online = isOnline ? isOnline(kiosk.id) : false;
    if (!c.answer || !isOnline || online !== c.online) {
      const r = await compute(kiosk, c.orderId);
      c.answer = r.answer;
      c.online = online;
      c.orderId = r.orderId;
      if (r.deadline !== undefined) c.until = Math.min(c.until, r.deadline);
    }
    const a = c.answer;
    reply.code(a.status).header('content-type', JSON_TYPE);
    if (a.orderVersion) reply.header('order-version', '2');
    return reply.send(a.body);
  };

  const opts = { bodyLimit: deps.guards.limits.bodyBytes.pos, onRequest: deps.guards.posGate };
  app.get('/mp/pos/:posExternalId', opts, handler);
  // Mercado Pago does not document the method of the poll: answer POST the same way.
  app.post('/mp/pos/:posExternalId', opts, handler);
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
