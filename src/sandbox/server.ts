// HTTP face of the sandbox: the Mercado Pago API (bearer token, MP-shaped errors) and the
// unauthenticated /_sandbox/* customer + inspection API that lets a demo in another process drive it.

import type { AddressInfo } from 'node:net';
import { setTimeout as delay } from 'node:timers/promises';
import { LogController, fastify, type FastifyBaseLogger, type FastifyInstance, type FastifyReply, type FastifyRequest } from 'fastify';
import QRCode from 'qrcode';
import * as z from 'zod/mini';
import '../runtime/zod.js';
import type { Currency } from '../core/money.js';
import { MpApiError, SandboxCore, SandboxError } from './core.js';
import type { NotifyOptions, Sandbox, SandboxEndpoint, SandboxOptions } from './types.js';

const notifySchema = z.object({
  form: z.optional(z.enum(['ipn', 'webhook', 'both'])),
  copies: z.optional(z.number().check(z.int(), z.gte(1), z.lte(100))),
  delayMs: z.optional(z.number().check(z.gte(0))),
  signature: z.optional(z.enum(['valid', 'lowercase', 'forged', 'none'])),
  parallel: z.optional(z.boolean()),
});

const scanSchema = z.object({
  qr: z.string().check(z.minLength(1)),
  maxPolls: z.optional(z.number().check(z.int(), z.positive())),
  giveUpMs: z.optional(z.number().check(z.gte(0))),
  intervalMs: z.optional(z.number().check(z.gte(0))),
  notifyOpened: z.optional(notifySchema),
});

const paySchema = z.object({
  checkoutId: z.string().check(z.minLength(1)),
  outcome: z.optional(z.enum(['approved', 'rejected'])),
  amountMinor: z.optional(z.number().check(z.int(), z.positive())),
  notify: z.optional(z.union([notifySchema, z.literal(false)])),
  landAfterCancel: z.optional(z.boolean()),
  /** respond only after every notification has an outcome, with the deliveries */
  wait: z.optional(z.boolean()),
});

const notifyRequestSchema = z.extend(notifySchema, {
  merchantOrderId: z.pipe(z.union([z.number().check(z.int()), z.string().check(z.regex(/^\d+$/))]), z.transform(Number)),
  wait: z.optional(z.boolean()),
});

const notifyRawSchema = z.object({
  url: z.string().check(z.minLength(1)),
  query: z.optional(z.record(z.string(), z.string())),
  body: z.optional(z.unknown()),
  headers: z.optional(z.record(z.string(), z.string())),
  method: z.optional(z.string()),
});

const ENDPOINTS = [
  'createStore',
  'createPos',
  'searchPos',
  'getPos',
  'updatePos',
  'getMerchantOrder',
  'searchMerchantOrders',
  'getPayment',
  'refundPayment',
  'listRefunds',
  'putPosOrder',
  'getPosOrder',
  'deletePosOrder',
  'postMobileOrder',
  'deleteMobileOrder',
  'createDynamicQr',
  'createOrder',
  'getOrder',
  'cancelOrder',
  'refundOrder',
  'searchOrders',
] as const satisfies readonly SandboxEndpoint[];

const notifyOrderSchema = z.extend(z.omit(notifySchema, { form: true }), {
  orderId: z.string().check(z.minLength(1)),
  action: z.optional(z.enum(['order.processed', 'order.canceled', 'order.expired', 'order.refunded', 'order.action_required'])),
  wait: z.optional(z.boolean()),
});

const configSchema = z.object({
  ordersWebhookUrl: z.optional(z.nullable(z.string())),
  ordersSignature: z.optional(z.enum(['valid', 'lowercase', 'forged', 'none'])),
  panelNotificationUrl: z.optional(z.nullable(z.string())),
  latePayments: z.optional(z.boolean()),
});

const expireSchema = z.object({ orderId: z.optional(z.string()), inStoreOrderId: z.optional(z.string()) });

const faultSchema = z.object({
  path: z.optional(z.string()),
  endpoint: z.optional(z.enum(ENDPOINTS)),
  method: z.optional(z.string()),
  status: z.number().check(z.int()),
  times: z.optional(z.number().check(z.int(), z.positive())),
  retryAfter: z.optional(z.string()),
  body: z.optional(z.unknown()),
  delayMs: z.optional(z.number().check(z.int(), z.gte(0), z.lte(600_000))),
  afterEffect: z.optional(z.boolean()),
  dropConnection: z.optional(z.boolean()),
});

function parse<T extends z.ZodMiniType>(schema: T, body: unknown): z.output<T> {
  const result = schema.safeParse(body ?? {});
  if (!result.success) {
    const why = result.error.issues.map((i) => `${i.path.length ? i.path.map(String).join('.') : '(body)'}: ${i.message}`).join('; ');
    throw new SandboxError(400, 'bad_request', why);
  }
  return result.data;
}

/** Drops undefined values so optional fields stay absent (callers test `in`/`??`). */
function defined<T extends object>(o: T): T {
  return Object.fromEntries(Object.entries(o).filter(([, v]) => v !== undefined)) as T;
}

function notifyOpts(o: z.output<typeof notifySchema>): NotifyOptions {
  return defined({ form: o.form, copies: o.copies, delayMs: o.delayMs, signature: o.signature, parallel: o.parallel });
}

function formatUrl(address: AddressInfo, requestedHost: string): string {
  let host = requestedHost;
  if (host === '0.0.0.0') host = '127.0.0.1';
  if (host === '::') host = '::1';
  if (host.includes(':')) host = `[${host}]`;
  return `http://${host}:${address.port}`;
}

/** Starts the sandbox and resolves once it is listening. */
export async function startSandbox(opts: SandboxOptions): Promise<Sandbox> {
  if (!opts.accessToken) throw new TypeError('startSandbox needs an accessToken');
  if (!Number.isSafeInteger(opts.collectorId) || opts.collectorId <= 0) {
    throw new TypeError(`startSandbox needs collectorId as a positive integer, got ${opts.collectorId}`);
  }
  const host = opts.host ?? '127.0.0.1';
  const currency: Currency = opts.currency ?? 'ARS';
  let baseUrl = '';
  const core = new SandboxCore({
    accessToken: opts.accessToken,
    collectorId: opts.collectorId,
    currency,
    ...(opts.webhookSecret !== undefined ? { webhookSecret: opts.webhookSecret } : {}),
    pollIntervalMs: opts.pollIntervalMs ?? 200,
    pollGiveUpMs: opts.pollGiveUpMs ?? 20_000,
    httpTimeoutMs: opts.httpTimeoutMs ?? 5_000,
    ...(opts.ordersWebhookUrl !== undefined ? { ordersWebhookUrl: opts.ordersWebhookUrl } : {}),
    ...(opts.ordersSignature !== undefined ? { ordersSignature: opts.ordersSignature } : {}),
    ...(opts.panelNotificationUrl !== undefined ? { panelNotificationUrl: opts.panelNotificationUrl } : {}),
    ...(opts.latePayments !== undefined ? { latePayments: opts.latePayments } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
    baseUrl: () => baseUrl,
  });

  try {
    // the same checks as /_sandbox/config, so a typo fails at start rather than silently
    core.configure(
      defined({ ordersWebhookUrl: opts.ordersWebhookUrl, panelNotificationUrl: opts.panelNotificationUrl, ordersSignature: opts.ordersSignature }),
    );
  } catch (err) {
    throw new TypeError(`startSandbox: ${(err as Error).message}`);
  }

  const app: FastifyInstance = opts.logger
    ? fastify({
        loggerInstance: opts.logger as FastifyBaseLogger,
        // the sandbox logs what it does itself; per-request lines would drown the demo's log
        logController: new LogController({ disableRequestLogging: true }),
      })
    : fastify({ logger: false });
  registerRoutes(app, core);
  await app.listen({ host, port: opts.port ?? 0 });
  baseUrl = formatUrl(app.server.address() as AddressInfo, host);
  opts.logger?.info({ url: baseUrl, collectorId: opts.collectorId, currency }, 'sandbox: listening');

  let closing: Promise<void> | undefined;
  const sandbox: Sandbox = {
    url: baseUrl,
    accessToken: opts.accessToken,
    collectorId: opts.collectorId,
    currency,
    scan: (o) => core.scan(o),
    pay: async (o) => core.pay(o),
    notify: async (o) => core.notify(o),
    notifyRaw: (o) => core.notifyRaw(o),
    refunds: async () => core.listRefundRecords(),
    payments: async () => core.listPayments(),
    merchantOrders: async () => core.listOrders(),
    deliveries: async () => core.listDeliveries(),
    pollLog: async () => core.listPolls(),
    pointsOfSale: async () => core.listPos(),
    stores: async () => core.listStores(),
    setFault: async (spec) => core.addFault(spec),
    faults: async () => core.listFaults(),
    clearFaults: async () => core.clearFaults(),
    notifyOrder: async (o) => core.notifyOrder(o),
    orders: async () => core.listOrdersApi(),
    instoreOrders: async () => core.listInstoreOrders(),
    configure: async (patch) => core.configure(patch),
    expire: async (ref) => core.expire(ref),
    close: () => {
      closing ??= (async () => {
        await core.close();
        await app.close();
      })();
      return closing;
    },
  };
  return sandbox;
}

function registerRoutes(app: FastifyInstance, core: SandboxCore): void {
  // Mercado Pago tolerates an empty body with Content-Type: application/json (e.g. a full refund
  // sent without "{}"); fastify's default parser would answer 400, so parse leniently.
  app.removeContentTypeParser('application/json');
  app.addContentTypeParser('application/json', { parseAs: 'string' }, (_req, body, done) => {
    const text = String(body);
    if (text.trim() === '') {
      done(null, undefined);
      return;
    }
    try {
      done(null, JSON.parse(text));
    } catch {
      done(Object.assign(new Error('body is not valid JSON'), { statusCode: 400 }), undefined);
    }
  });

  app.setErrorHandler((err: unknown, req, reply) => {
    if (err instanceof MpApiError) {
      void reply.code(err.status).headers(err.headers).send(err.body);
      return;
    }
    if (err instanceof SandboxError) {
      void reply.code(err.status).send({ error: err.code, message: err.message });
      return;
    }
    const e = err as { statusCode?: number; message?: string };
    const status = typeof e.statusCode === 'number' && e.statusCode >= 400 && e.statusCode < 500 ? e.statusCode : 500;
    if (status === 500) req.log.error({ err }, 'sandbox: internal error');
    void reply.code(status).send({ message: e.message ?? 'error', error: status === 500 ? 'internal_error' : 'bad_request', status, cause: [] });
  });

  app.setNotFoundHandler((req, reply) => {
    void reply.code(404).send({ message: `${req.method} ${req.url.split('?')[0]} is not a sandbox endpoint`, error: 'not_found', status: 404, cause: [] });
  });

  // ---- Mercado Pago API ------------------------------------------------------------------------

  /** What an MP route answers; the wrapper sends it (or loses it, for an afterEffect fault). */
  type Answer = { status: number; body?: unknown };
  type Handler = (req: FastifyRequest) => Answer | Promise<Answer>;
  const ok = (body: unknown, status = 200): Answer => ({ status, body });
  const drop = (req: FastifyRequest, reply: FastifyReply): void => {
    reply.hijack();
    req.raw.socket.destroy();
  };
  const mp = (method: 'GET' | 'POST' | 'PUT' | 'DELETE', url: string, endpoint: SandboxEndpoint, handler: Handler): void => {
    app.route({
      method,
      url,
      // Faults come first (an outage answers regardless of credentials), then the bearer token.
      onRequest: async (req, reply) => {
        const fault = core.takeFault(endpoint, req.method, req.url);
        if (fault?.delayMs) await delay(fault.delayMs, undefined, { signal: core.lifetime.signal }).catch(() => undefined);
        if (fault?.dropConnection) return drop(req, reply);
        if (fault) throw fault;
        core.checkToken(req.headers.authorization);
      },
      handler: async (req, reply) => {
        const lost = core.takeFault(endpoint, req.method, req.url, 'after');
        if (!lost) {
          const answer = await handler(req);
          return reply.code(answer.status).send(answer.body);
        }
        // the effect happens (or fails as it would), and then the answer never reaches the caller
        await Promise.resolve()
          .then(() => handler(req))
          .catch(() => undefined);
        if (lost.dropConnection) return drop(req, reply);
        throw lost;
      },
    });
  };
  const params = (req: FastifyRequest): Record<string, string> => req.params as Record<string, string>;
  const query = (req: FastifyRequest): Record<string, unknown> => req.query as Record<string, unknown>;
  const header = (req: FastifyRequest, name: string): string | undefined => {
    const v = req.headers[name];
    return Array.isArray(v) ? v[0] : v;
  };

  mp('POST', '/users/:userId/stores', 'createStore', (req) => ok(core.createStore(params(req).userId!, req.body), 201));
  mp('POST', '/pos', 'createPos', (req) => ok(core.createPos(req.body), 201));
  mp('GET', '/pos', 'searchPos', (req) => ok(core.searchPos(query(req))));
  mp('GET', '/pos/:id', 'getPos', (req) => ok(core.getPos(params(req).id!)));
  mp('PUT', '/pos/:id', 'updatePos', (req) => ok(core.updatePos(params(req).id!, req.body)));
  mp('GET', '/merchant_orders/search', 'searchMerchantOrders', (req) => ok(core.searchMerchantOrders(query(req))));
  mp('GET', '/merchant_orders/:id', 'getMerchantOrder', (req) => ok(core.getMerchantOrder(params(req).id!)));
  mp('GET', '/v1/payments/:id', 'getPayment', (req) => ok(core.getPayment(params(req).id!)));
  mp('GET', '/v1/payments/:id/refunds', 'listRefunds', (req) => ok(core.listRefunds(params(req).id!)));
  mp('POST', '/v1/payments/:id/refunds', 'refundPayment', (req) => {
    const { status, refund } = core.refundPayment(params(req).id!, header(req, 'x-idempotency-key'), req.body);
    return ok(refund, status);
  });

  // attended: an order on the POS's static QR (instore v2, and the older mpmobile)
  mp('PUT', '/instore/qr/seller/collectors/:userId/stores/:storeId/pos/:posId/orders', 'putPosOrder', (req) => {
    const p = params(req);
    core.instore.putPosOrder(p.userId!, p.storeId!, p.posId!, req.body);
    return { status: 204 };
  });
  mp('GET', '/instore/qr/seller/collectors/:userId/pos/:posId/orders', 'getPosOrder', (req) =>
    ok(core.instore.getPosOrder(params(req).userId!, params(req).posId!)),
  );
  mp('DELETE', '/instore/qr/seller/collectors/:userId/pos/:posId/orders', 'deletePosOrder', (req) => {
    core.instore.deletePosOrder(params(req).userId!, params(req).posId!);
    return { status: 204 };
  });
  mp('POST', '/mpmobile/instore/qr/:userId/:posId', 'postMobileOrder', (req) => {
    core.instore.postMobileOrder(params(req).userId!, params(req).posId!, req.body, header(req, 'x-ttl-store-preference'));
    return { status: 200 };
  });
  mp('DELETE', '/mpmobile/instore/qr/:userId/:posId', 'deleteMobileOrder', (req) => {
    core.instore.deleteMobileOrder(params(req).userId!, params(req).posId!);
    return { status: 204 };
  });

  // dynamic: the order's own QR (POST), or hybrid: also on the POS's static QR (PUT)
  for (const [method, mode] of [
    ['POST', 'dynamic'],
    ['PUT', 'hybrid'],
  ] as const) {
    mp(method, '/instore/orders/qr/seller/collectors/:userId/pos/:posId/qrs', 'createDynamicQr', (req) => {
      const r = core.instore.createDynamicQr(params(req).userId!, params(req).posId!, req.body, mode, header(req, 'x-idempotency-key'));
      return ok(r.body, r.status);
    });
  }

  // Orders API
  mp('POST', '/v1/orders', 'createOrder', (req) => ok(core.ordersApi.create(header(req, 'x-idempotency-key'), req.body), 201));
  mp('GET', '/v1/orders', 'searchOrders', (req) => ok(core.ordersApi.search(query(req))));
  mp('GET', '/v1/orders/:id', 'getOrder', (req) => ok(core.ordersApi.get(params(req).id!)));
  mp('POST', '/v1/orders/:id/cancel', 'cancelOrder', (req) => ok(core.ordersApi.cancel(params(req).id!, header(req, 'x-idempotency-key'))));
  mp('POST', '/v1/orders/:id/refund', 'refundOrder', (req) => ok(core.ordersApi.refund(params(req).id!, header(req, 'x-idempotency-key'), req.body), 201));

  // ---- customer + inspection (no auth: loopback only) -----------------------------------------

  app.get('/_sandbox/health', async () => ({ ok: true }));

  app.post('/_sandbox/scan', async (req) => {
    const b = parse(scanSchema, req.body);
    return core.scan(
      defined({
        qr: b.qr,
        maxPolls: b.maxPolls,
        giveUpMs: b.giveUpMs,
        intervalMs: b.intervalMs,
        notifyOpened: b.notifyOpened ? notifyOpts(b.notifyOpened) : undefined,
      }),
    );
  });

  app.post('/_sandbox/pay', async (req) => {
    const b = parse(paySchema, req.body);
    const result = core.pay(
      defined({
        checkoutId: b.checkoutId,
        outcome: b.outcome,
        amountMinor: b.amountMinor,
        notify: b.notify === false ? (false as const) : b.notify ? notifyOpts(b.notify) : undefined,
        landAfterCancel: b.landAfterCancel,
      }),
    );
    const { deliveries, ...rest } = result;
    return b.wait ? { ...rest, deliveries: await deliveries } : rest;
  });

  app.post('/_sandbox/notify', async (req) => {
    const b = parse(notifyRequestSchema, req.body);
    const result = core.notify({ merchantOrderId: b.merchantOrderId, ...notifyOpts(b) });
    const { deliveries, ...rest } = result;
    return b.wait ? { ...rest, deliveries: await deliveries } : rest;
  });

  app.post('/_sandbox/notify-raw', async (req) => {
    const b = parse(notifyRawSchema, req.body);
    return core.notifyRaw(defined({ url: b.url, query: b.query, body: b.body, headers: b.headers, method: b.method }));
  });

  app.get('/_sandbox/batches/:id', async (req) => {
    const batch = core.batch(Number(params(req).id));
    if (!batch) throw new SandboxError(404, 'unknown_batch', `no notification batch ${params(req).id}`);
    return batch;
  });

  app.post('/_sandbox/notify-order', async (req) => {
    const b = parse(notifyOrderSchema, req.body);
    const { wait, ...rest } = b;
    const result = core.notifyOrder(defined({ ...rest }));
    const { deliveries, ...out } = result;
    return wait ? { ...out, deliveries: await deliveries } : out;
  });
  app.post('/_sandbox/config', async (req) => {
    const b = parse(configSchema, req.body);
    core.configure(defined({ ...b }));
    return { ok: true };
  });
  app.post('/_sandbox/expire', async (req) => {
    core.expire(defined({ ...parse(expireSchema, req.body) }));
    return { ok: true };
  });
  app.get('/_sandbox/orders', async () => core.listOrdersApi());
  app.get('/_sandbox/instore-orders', async () => core.listInstoreOrders());
  app.get('/_sandbox/refunds', async () => core.listRefundRecords());
  app.get('/_sandbox/payments', async () => core.listPayments());
  app.get('/_sandbox/merchant-orders', async () => core.listOrders());
  app.get('/_sandbox/deliveries', async () => core.listDeliveries());
  app.get('/_sandbox/poll-log', async () => core.listPolls());
  app.get('/_sandbox/pos', async () => core.listPos());
  app.get('/_sandbox/stores', async () => core.listStores());
  app.get('/_sandbox/faults', async () => core.listFaults());
  app.post('/_sandbox/faults', async (req) => {
    const b = parse(faultSchema, req.body);
    return core.addFault(
      defined({
        path: b.path,
        endpoint: b.endpoint,
        method: b.method,
        status: b.status,
        times: b.times,
        retryAfter: b.retryAfter,
        body: b.body,
        delayMs: b.delayMs,
        afterEffect: b.afterEffect,
        dropConnection: b.dropConnection,
      }),
    );
  });
  app.delete('/_sandbox/faults', async () => {
    core.clearFaults();
    return { ok: true };
  });

  // The sticker: PNG (what qr.image points at), SVG, or the raw payload as text.
  app.get('/_sandbox/qr/:file', async (req, reply) => {
    const m = /^(\d+)\.(png|svg|txt)$/.exec(params(req).file ?? '');
    const payload = m ? core.posQrCode(m[1]!) : undefined;
    if (!m || !payload) throw new SandboxError(404, 'unknown_pos', `no POS QR ${params(req).file}`);
    if (m[2] === 'txt') return reply.type('text/plain; charset=utf-8').send(payload);
    if (m[2] === 'svg') return reply.type('image/svg+xml').send(await QRCode.toString(payload, { type: 'svg' }));
    return reply.type('image/png').send(await QRCode.toBuffer(payload, { type: 'png', margin: 2, scale: 8 }));
  });
}
