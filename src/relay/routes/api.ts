import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { ORDER_STATES, type OrderState } from '../../core/relay-order.js';
import { isScope, type Scope } from '../../core/console-roles.js';
import type { RelayConfig } from '../config.js';
import { hashSecret } from '../console/passwords.js';
import { pickList, slotStock } from '../console/stock.js';
import { activeFaults, type FleetStatus } from '../fleet-status.js';
import type { RelayStore } from '../store/api.js';
import type { OrderEventRecord, OrderRecord } from '../store/types.js';
import type { RouteGuards } from '../limits.js';
import { ActionError, type Actor, type ConsoleActions } from '../console/actions.js';
import { OPENAPI } from './openapi.js';

// /api/v1: the REST API for integrations (documented in ./openapi.ts, served at /api/openapi.json).
// Each request carries an API key (Authorization: Bearer qrk_…); the key's scopes
// (core/console-roles.ts) decide what it may read. Keys live in the store hashed (sha256 of a
// 256-bit random secret: a fast hash is enough for a secret nobody chose).

export interface ApiRouteDeps {
  store: RelayStore;
  /** the operator actions (refunds, prices): the one implementation the console and CLI use too */
  actions: ConsoleActions;
  fleet: FleetStatus;
  config: Pick<RelayConfig, 'stock'>;
  now: () => number;
  guards?: RouteGuards;
}

class ApiError extends Error {
  constructor(
    readonly status: number,
    readonly code: string,
    message: string,
  ) {
    super(message);
  }
}

function send(reply: FastifyReply, e: ApiError) {
  return reply.code(e.status).send({ error: { code: e.code, message: e.message } });
}

async function authorise(store: RelayStore, req: FastifyRequest, scope: Scope | ((body: Record<string, unknown>) => Scope | undefined)): Promise<Actor> {
  const m = /^Bearer (qrk_[A-Za-z0-9_-]{20,100})$/.exec(req.headers.authorization ?? '');
  if (!m) throw new ApiError(401, 'unauthorized', 'send an API key: Authorization: Bearer qrk_… (qrkiosk relay apikey add <name> --scopes …)');
  const key = await store.apiKeyByHash(hashSecret(m[1]!));
  if (!key || key.revokedAt !== null) throw new ApiError(401, 'unauthorized', 'this API key is unknown or revoked');
  if (typeof scope === 'function') {
    // the scope depends on what is asked (a kiosk command's kind): known only from the body
    const need = scope((req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>);
    if (!need) throw new ApiError(400, 'bad_request', `action.kind must be one of ${Object.keys(COMMAND_SCOPES).join(', ')} through the API`);
    scope = need;
  }
  if (!key.scopes.filter(isScope).includes(scope)) throw new ApiError(403, 'forbidden', `API key "${key.name}" lacks the "${scope}" scope this route needs`);
  // the key's scope is what allows the action; the audit names the integration
  return { operatorId: null, name: `api:${key.name}`, role: 'admin' };
}

const ACTION_CODES = { 400: 'bad_request', 403: 'forbidden', 404: 'not_found', 409: 'conflict' } as const;

/** Which scope a kiosk command needs through the API (the others are the console's and the CLI's). */
const COMMAND_SCOPES: Record<string, Scope> = { 'price.set': 'prices', 'catalog.set': 'prices', 'stock.set': 'stock' };

/** Who caused a step of an order's timeline. */
export function stepSource(event: string): 'kiosk' | 'mercadopago' | 'operator' | 'relay' {
  if (event.startsWith('operator')) return 'operator';
  if (['created', 'rejected', 'cancel', 'vend_ok', 'vend_failed'].includes(event)) return 'kiosk';
  if (['payment_verified', 'late_payment', 'refund_done'].includes(event)) return 'mercadopago';
  return 'relay';
}

const isoDay = (day: number): string => new Date(day * 86_400_000).toISOString().slice(0, 10);

function orderOut(o: OrderRecord) {
  return {
    id: o.id,
    kioskId: o.kioskId,
    slot: o.slot,
    sku: o.sku,
    title: o.title,
    quantity: o.quantity,
    amount: o.amount,
    currency: o.currency,
    state: o.state,
    createdAt: o.createdAt,
    updatedAt: o.updatedAt,
    paidAt: o.paidAt,
    needsReview: o.needsReview,
  };
}

function stepOut(e: OrderEventRecord) {
  return { at: e.at, from: e.from, to: e.to, event: e.event, source: stepSource(e.event), detail: e.detail };
}

async function parsByKiosk(store: RelayStore): Promise<Map<string, Map<number, number>>> {
  const out = new Map<string, Map<number, number>>();
  for (const p of await store.parLevels()) {
    if (!out.has(p.kioskId)) out.set(p.kioskId, new Map());
    out.get(p.kioskId)!.set(p.slot, p.par);
  }
  return out;
}

export function registerApiRoutes(app: FastifyInstance, deps: ApiRouteDeps): void {
  const { store } = deps;
  const route = (path: string, scope: Scope, handler: (req: FastifyRequest) => Promise<object>) => {
    app.get(path, { onRequest: deps.guards ? [deps.guards.apiGate] : [] }, async (req, reply) => {
      try {
        await authorise(store, req, scope);
        return await handler(req);
      } catch (e) {
        if (e instanceof ApiError) return send(reply, e);
        throw e;
      }
    });
  };

  /** A POST route: the scope is checked before anything is read or written; ActionErrors answer as documented. */
  const action = (path: string, scope: Scope | ((body: Record<string, unknown>) => Scope | undefined), handler: (actor: Actor, req: FastifyRequest, body: Record<string, unknown>) => Promise<{ status: number; body: object }>) => {
    app.post(path, { onRequest: deps.guards ? [deps.guards.apiGate] : [] }, async (req, reply) => {
      try {
        const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
        const actor = await authorise(store, req, scope);
        const r = await handler(actor, req, body);
        return reply.code(r.status).send(r.body);
      } catch (e) {
        if (e instanceof ActionError) return send(reply, new ApiError(e.status, ACTION_CODES[e.status], e.message));
        if (e instanceof ApiError) return send(reply, e);
        throw e;
      }
    });
  };
  const orderId = (req: FastifyRequest) => (req.params as { orderId: string }).orderId;

  // refunds (scope refunds): full or partial, retry of a refused one, approval of one awaiting a second approver
  action('/api/v1/orders/:orderId/refunds', 'refunds', async (actor, req, body) => {
    const header = req.headers['idempotency-key'];
    const requestKey = typeof header === 'string' ? header : undefined;
    const r = await deps.actions.refund(actor, orderId(req), body.reason, { amount: body.amount, ...(requestKey !== undefined ? { requestKey } : {}) });
    return { status: 202, body: { state: r.state, amount: r.amount, currency: r.order.currency, order: orderOut(await orderNow(r.order.id)) } };
  });
  action('/api/v1/orders/:orderId/refunds/retry', 'refunds', async (actor, req, body) => {
    if (body.refundId !== undefined && (typeof body.refundId !== 'number' || !Number.isInteger(body.refundId))) throw new ApiError(400, 'bad_request', 'refundId is a refund id (GET /api/v1/orders/{orderId} lists them)');
    const r = await deps.actions.retryRefund(actor, orderId(req), body.reason, body.refundId as number | undefined);
    return { status: 202, body: r };
  });
  action('/api/v1/orders/:orderId/refunds/approve', 'refunds', async (actor, req, body) => {
    const r = await deps.actions.approveRefund(actor, orderId(req), body.reason);
    return { status: 202, body: { state: r.state, amount: r.amount, currency: r.order.currency, order: orderOut(await orderNow(r.order.id)) } };
  });
  // prices and the catalog (scope prices), stock counts (scope stock): signed commands to the kiosk
  action('/api/v1/kiosks/:kioskId/commands', (body) => COMMAND_SCOPES[String((body.action as { kind?: unknown } | null)?.kind)], async (actor, req, body) => {
    const r = await deps.actions.kioskCommand(actor, (req.params as { kioskId: string }).kioskId, body.action, body.reason);
    return { status: 202, body: r };
  });
  const orderNow = async (id: string) => (await store.getOrder(id))!;

  app.get('/api/openapi.json', { onRequest: deps.guards ? [deps.guards.apiGate] : [] }, async () => OPENAPI);

  route('/api/v1/kiosks', 'kiosks', async () => {
    const [kiosks, views, pars] = await Promise.all([store.listKiosks(), deps.fleet.kiosks(), parsByKiosk(store)]);
    const byId = new Map(views.map((v) => [v.kioskId, v]));
    return {
      kiosks: kiosks.map((k) => {
        const v = byId.get(k.id);
        const status = v?.status ?? null;
        return {
          id: k.id,
          online: v?.online ?? false,
          since: v?.since ?? null,
          lastReportAt: v?.statusReceivedAt ?? null,
          screen: status?.screen ?? null,
          agentVersion: status?.agentVersion ?? null,
          paymentModel: k.paymentModel,
          stock: slotStock(status, pars.get(k.id) ?? new Map(), deps.config.stock.lowPercent),
          faults: activeFaults(status),
        };
      }),
    };
  });

  route('/api/v1/orders', 'orders', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const limit = q.limit === undefined ? 50 : Number(q.limit);
    if (!Number.isInteger(limit) || limit < 1 || limit > 500) throw new ApiError(400, 'bad_request', 'limit must be a whole number from 1 to 500');
    if (q.state !== undefined && !(ORDER_STATES as readonly string[]).includes(q.state)) throw new ApiError(400, 'bad_request', `state must be one of ${ORDER_STATES.join(', ')}`);
    const orders = await store.recentOrders({ limit, ...(q.kiosk ? { kioskId: q.kiosk } : {}), ...(q.state ? { state: q.state as OrderState } : {}) });
    return { orders: orders.map(orderOut) };
  });

  route('/api/v1/orders/:orderId', 'orders', async (req) => {
    const { orderId } = req.params as { orderId: string };
    const order = await store.getOrder(orderId);
    if (!order) throw new ApiError(404, 'not_found', `no order "${orderId.slice(0, 80)}"`);
    const refunds = (await store.refundsOf(orderId)).map((r) => ({
      id: r.id,
      paymentId: r.paymentId,
      reason: r.reason,
      status: r.status,
      requestedAmount: r.requestedAmount,
      amount: r.amount,
      currency: r.currency ?? order.currency,
      requestedAt: r.requestedAt,
      completedAt: r.completedAt,
      error: r.lastError,
    }));
    return { order: orderOut(order), timeline: (await store.orderEvents(orderId)).map(stepOut), refunds };
  });

  route('/api/v1/sales', 'sales', async (req) => {
    const q = req.query as Record<string, string | undefined>;
    const DAY = 86_400_000;
    const day = (text: string | undefined, name: string, fallback: number): number => {
      if (text === undefined) return fallback;
      if (!/^\d{4}-\d{2}-\d{2}$/.test(text) || Number.isNaN(Date.parse(`${text}T00:00:00Z`))) throw new ApiError(400, 'bad_request', `${name} must be a day as YYYY-MM-DD (UTC)`);
      return Date.parse(`${text}T00:00:00Z`) / DAY;
    };
    const today = Math.floor(deps.now() / DAY);
    const to = day(q.to, 'to', today);
    const from = day(q.from, 'from', to - 6);
    if (from > to || to - from > 366) throw new ApiError(400, 'bad_request', 'from must be on or before to, at most 366 days apart');
    const rows = await store.salesByDay(from * DAY, (to + 1) * DAY, q.kiosk || undefined);
    return { from: isoDay(from), to: isoDay(to), sales: rows.map((r) => ({ day: isoDay(r.day), kioskId: r.kioskId, sku: r.sku, currency: r.currency, units: r.units, amount: r.amount })) };
  });

  route('/api/v1/stock/pick-list', 'stock', async (req) => {
    const name = (req.query as Record<string, string | undefined>).route ?? '';
    const kioskIds = Object.hasOwn(deps.config.stock.routes, name) ? deps.config.stock.routes[name]! : undefined;
    if (!kioskIds) throw new ApiError(404, 'not_found', `no route "${name.slice(0, 40)}" in stock.routes of relay.yaml (routes: ${Object.keys(deps.config.stock.routes).join(', ') || 'none'})`);
    const [views, pars, kiosks] = await Promise.all([deps.fleet.kiosks(), parsByKiosk(store), store.listKiosks()]);
    const byId = new Map(views.map((v) => [v.kioskId, v]));
    const known = new Set(kiosks.map((k) => k.id));
    return pickList(name, kioskIds, (id) => ({ status: byId.get(id)?.status ?? null, pars: pars.get(id) ?? new Map(), known: known.has(id) }));
  });
}
