import * as crypto from 'node:crypto';
import type { IncomingMessage, ServerResponse } from 'node:http';
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

/** what an unknown POS id's key is compared with: as long as a real key, matched by no request */
const NO_SUCH_POS = crypto.randomBytes(24).toString('base64url');

/**
 * Compares a poll's key with the POS's in constant time: the loop runs over the expected key's
 * length whatever is given, with no branch on a character, so the time depends on neither key's
 * content (a given key of another length differs by its length alone). Every key has the same
 * length (newPosKey: 24 random bytes, 32 characters), the unknown-POS stand-in too. This
 * replaced a sha256 of the given key and timingSafeEqual on the digests: the same guarantee, and
 * the digest was ~0.9 us of the poll's ~3 us (bench/README.md, issue 12).
 */
export function sameKey(given: string, expected: string): boolean {
  let d = given.length ^ expected.length;
  // past the end of `given`, charCodeAt is NaN, which `^` reads as 0: the length already differs
  for (let i = 0; i < expected.length; i++) d |= given.charCodeAt(i) ^ expected.charCodeAt(i);
  return d === 0;
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

interface Cached {
  kiosk: Kiosk | undefined;
  /** the key a poll must give (NO_SUCH_POS for an unknown POS id) */
  key: string;
  writes: number;
  until: number;
  online: boolean;
  answer: PollAnswer | undefined;
  /** the order the last answer offered, so "serving order" is logged once per order, not per poll */
  orderId: string | undefined;
}

/**
 * One answer of the POS url, its bytes ready to write: the status, the raw header list for
 * `writeHead` (content type, content length, order version) and the body. Built once per state
 * change of the POS (see Cached), written as is by every poll until the next change.
 */
export interface PollAnswer {
  status: number;
  /** name, value, name, value, ... (node:http's raw header form) */
  head: string[];
  body: Buffer;
}

const JSON_TYPE = 'application/json; charset=utf-8';

function pollAnswer(status: number, body: string, orderVersion = false): PollAnswer {
  const bytes = Buffer.from(body);
  const head = ['content-type', JSON_TYPE, 'content-length', String(bytes.length)];
  if (orderVersion) head.push('order-version', '2');
  return { status, head, body: bytes };
}

const REFUSED = pollAnswer(400, JSON.stringify({ error: { type: 'invalid', message: 'unknown point of sale or wrong key' } }));

/**
 * The POS url's answer logic, the one implementation: the fastify routes below and the relay's
 * front handler (`servePoll`, ahead of fastify for the plain GET Mercado Pago sends) both call
 * `answer`. What it does not do is the per-source rate gate, which each caller runs first with
 * the same RouteGuards.takePos.
 */
export class PosPoll {
  private readonly notificationUrl: string;
  private readonly now: () => number;
  private readonly cache = new Map<string, Cached>();
  /** polls answered by the front handler and by the fastify routes (tests tell the paths apart by it) */
  readonly served = { front: 0, fastify: 0 };

  constructor(private readonly deps: UnattendedDeps) {
    this.notificationUrl = `${deps.config.publicUrl}/mp/notifications`;
    this.now = deps.now ?? Date.now;
  }

  /**
   * The answer to a poll of `posExternalId` with `key` from `source` (the client address the
   * rate gate used). Synchronous when the POS's cached answer still holds (the hot path: no
   * promise, no microtask), a promise when the store must be read.
   */
  answer(posExternalId: string, key: string, source: string): PollAnswer | Promise<PollAnswer> {
    const at = this.now();
    // the write count is read BEFORE the rows: a write landing meanwhile makes the next poll read again
    const writes = this.deps.store.writeCount();
    const old = this.cache.get(posExternalId);
    if (old && old.writes === writes && at < old.until) return this.answerWith(old, posExternalId, key, source);
    return this.lookup(posExternalId, old, writes, at).then((c) => this.answerWith(c, posExternalId, key, source));
  }

  /** The POS's entry, read again from the database (a write, the TTL or a deadline said so). */
  private async lookup(posExternalId: string, old: Cached | undefined, writes: number, at: number): Promise<Cached> {
    const kiosk = await this.deps.store.getKioskByPos(posExternalId);
    if (!old && this.cache.size >= CACHE_LIMIT) this.cache.clear();
    const c: Cached = {
      kiosk,
      key: kiosk ? kiosk.posKey : NO_SUCH_POS,
      writes,
      until: at + ANSWER_TTL_MS,
      online: false,
      answer: undefined,
      orderId: old?.orderId,
    };
    this.cache.set(posExternalId, c);
    return c;
  }

  private answerWith(c: Cached, posExternalId: string, key: string, source: string): PollAnswer | Promise<PollAnswer> {
    // Always compare, even for an unknown POS, so timing does not reveal which POS ids exist.
    const keyOk = sameKey(key, c.key);
    const kiosk = c.kiosk;
    if (!kiosk || !keyOk) {
      // aggregated per source: a prober must not be able to fill the disk with warnings
      this.deps.guards.refusals.note(
        source,
        kiosk ? 'wrong POS key' : 'unknown POS',
        `POS url called with ${kiosk ? 'a wrong key' : 'an unknown POS'} (${printableId(posExternalId)}) from ${source}: refused`,
      );
      // Same answer for both cases: an attacker learns nothing about which POS ids exist.
      return REFUSED;
    }
    // Without an online check to key on (a route registered on its own), compute every time.
    const isOnline = this.deps.isOnline;
    const online = isOnline ? isOnline(kiosk.id) : false;
    if (c.answer && isOnline && online === c.online) return c.answer;
    return this.compute(kiosk, c.orderId).then((r) => {
      c.answer = r.answer;
      c.online = online;
      c.orderId = r.orderId;
      if (r.deadline !== undefined) c.until = Math.min(c.until, r.deadline);
      return r.answer;
    });
  }

  /** The answer for a known kiosk from the database, as offerFor sees it now. */
  private async compute(kiosk: Kiosk, previousOrderId: string | undefined): Promise<{ answer: PollAnswer; deadline?: number; orderId?: string }> {
    const offer = await this.deps.orders.offerFor(kiosk);
    if (offer.kind === 'none') {
      if (kiosk.generation === 'v1') {
        // v1 has no "just paid" state: "unavailable" is the closest (no order to serve).
        const type = offer.reason === 'kiosk_offline' ? 'timeout' : 'unavailable';
        return { answer: pollAnswer(400, JSON.stringify({ error: { type } })) };
      }
      const detail = offer.reason === 'just_paid' ? 'notihing_to_pay' : 'Waiting_for_order'; // MP's spelling
      return { answer: pollAnswer(202, JSON.stringify({ status: { status_detail: detail } })) };
    }
    const order = offer.order;
    if (order.id !== previousOrderId) {
      this.deps.logger.info({ orderId: order.id, kioskId: kiosk.id, generation: kiosk.generation }, `POS ${kiosk.posExternalId}: serving order ${order.id}`);
    }
    const v1 = kiosk.generation === 'v1';
    const body = JSON.stringify(v1 ? v1Order(this.deps.config, kiosk, order, this.notificationUrl) : v2Order(kiosk, order, this.notificationUrl));
    return { answer: pollAnswer(200, body, !v1), deadline: order.deadline, orderId: order.id };
  }
}

/** Writes an answer on a raw response (the front handler). */
export function writePollAnswer(res: ServerResponse, a: PollAnswer): void {
  res.writeHead(a.status, a.head);
  res.end(a.body);
}

const POS_PATH = '/mp/pos/';
/** what find-my-way accepts as the route's parameter and the fast path takes as is (no decoding) */
const PLAIN_ID = /^[A-Za-z0-9_.~-]{1,100}$/;

/** whether raw headers announce a body: any transfer-encoding, or a content-length other than 0 */
function hasBody(raw: string[]): boolean {
  for (let i = 0; i < raw.length; i += 2) {
    const name = raw[i]!;
    if (name.length === 17 && name.toLowerCase() === 'transfer-encoding') return true;
    if (name.length === 14 && name.toLowerCase() === 'content-length' && raw[i + 1] !== '0') return true;
  }
  return false;
}

/**
 * The POS url's hot path, for the relay's front handler (server.ts): a plain `GET
 * /mp/pos/<id>?key=<key>` without a body is answered here, from the raw request, without
 * fastify's request pipeline (profiled: bench/README.md). Returns false, having touched nothing,
 * for anything else (another method, a body, an id or query that needs decoding, a repeated
 * key): fastify then routes it to the routes below, which answer with the same PosPoll.
 */
export function servePoll(poll: PosPoll, guards: RouteGuards, req: IncomingMessage, res: ServerResponse, onError: (err: unknown) => void): boolean {
  const url = req.url!;
  if (req.method !== 'GET' || !url.startsWith(POS_PATH)) return false;
  // a GET with a body goes through fastify, which applies limits.bodyBytes.pos to it; read from
  // rawHeaders: req.headers is built on first use, an object per request the answer never needs
  if (hasBody(req.rawHeaders)) return false;
  const q = url.indexOf('?', POS_PATH.length);
  const id = q < 0 ? url.slice(POS_PATH.length) : url.slice(POS_PATH.length, q);
  if (!PLAIN_ID.test(id)) return false;
  let key = '';
  if (q >= 0) {
    const qs = url.slice(q + 1);
    // percent or plus encoding, or a repeated key, is decoded by fastify's query parser
    if (qs.includes('%') || qs.includes('+') || qs.includes('#')) return false;
    let seen = false;
    for (const part of qs.split('&')) {
      if (part.startsWith('key=')) {
        if (seen) return false;
        seen = true;
        key = part.slice(4);
      } else if (part === 'key') return false;
    }
  }
  poll.served.front++;
  const source = guards.clientAddress(req);
  const limited = guards.takePos(source);
  if (limited) {
    writePollAnswer(res, limited);
    return true;
  }
  const a = poll.answer(id, key, source);
  if (a instanceof Promise) a.then((x) => writePollAnswer(res, x), onError);
  else writePollAnswer(res, a);
  return true;
}

export function registerUnattendedRoutes(app: FastifyInstance, deps: UnattendedDeps): PosPoll {
  const poll = new PosPoll(deps);
  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const { posExternalId } = req.params as { posExternalId: string };
    const q = req.query as Record<string, unknown>;
    const key = typeof q.key === 'string' ? q.key : '';
    poll.served.fastify++;
    const a = await poll.answer(posExternalId, key, req.ip);
    for (let i = 0; i < a.head.length; i += 2) if (a.head[i] !== 'content-length') reply.header(a.head[i]!, a.head[i + 1]);
    return reply.code(a.status).send(a.body);
  };

  const opts = { bodyLimit: deps.guards.limits.bodyBytes.pos, onRequest: deps.guards.posGate };
  app.get('/mp/pos/:posExternalId', opts, handler);
  // Mercado Pago does not document the method of the poll: answer POST the same way.
  app.post('/mp/pos/:posExternalId', opts, handler);
  return poll;
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
