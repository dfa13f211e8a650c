import Fastify from 'fastify';
import { createServer, type IncomingMessage, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { Catalog } from '../core/catalog.js';
import { MercadoPagoClient } from '../mercadopago/client.js';
import type { MercadoPagoApi } from '../mercadopago/types.js';
import { createLogger, type Logger } from '../runtime/log.js';
import { requireAccessToken, type RelayConfig } from './config.js';
import { ContingencyPoller } from './contingency.js';
import { KioskHub, KIOSK_WS_PATH } from './hub.js';
import { Fleet, newInstanceId } from './fleet/index.js';
import { RelayNotify } from './console/notify.js';
import { orderDeliveries } from './console/order-webhooks.js';
import { fastifyLimitOptions, RouteGuards } from './limits.js';
import { NotFoundMemory } from './not-found-memory.js';
import { pacedReads } from './paced-mp.js';
import { NotificationWorker } from './notifications.js';
import { PaymentModels } from './models/index.js';
import { OfferWorker } from './offers.js';
import { OrderService } from './orders.js';
import { RefundWorker } from './refunds.js';
import { registerNotificationRoutes } from './routes/notifications.js';
import { registerApiRoutes } from './routes/api.js';
import { registerReceiptRoute } from './routes/receipt.js';
import { receiptToken } from './console/receipt-page.js';
import { registerUnattendedRoutes, servePoll, type PosPoll } from './routes/unattended.js';
import { openRelayStore, type RelayStore } from './store/index.js';
import { RelayOps } from './observability/ops.js';
import { KioskConsole } from './kiosk-console.js';
import type { FleetRecorder } from './fleet-recorder.js';
import { CONSOLE_FEATURE } from '../protocol/messages.js';
import { ConsoleActions } from './console/actions.js';
import { registerConsoleWeb } from './console/web/routes.js';

// Composition root of the relay: one SQLite store, one HTTP server (fastify) carrying both the
// Mercado Pago routes and the kiosks' WebSocket upgrade, and the background loops (expiry,
// notification worker, refunds, contingency polling). Every loop resumes from the database at
// start-up, so stopping the relay at any instant loses nothing.

export interface RelayDeps {
  logger?: Logger;
  /** Mercado Pago API; defaults to the HTTP client with the configured token */
  mp?: MercadoPagoApi;
  /** business clock (deadlines, timestamps); tests move it by hand */
  now?: () => number;
  /** where kiosk reports and operator commands are kept (default: the relay store, migration 8) */
  fleetRecorder?: FleetRecorder;
}

export interface RunningRelay {
  /** http base, e.g. http://127.0.0.1:8080 */
  url: string;
  /** ws://…/v1/kiosk */
  wsUrl: string;
  port: number;
  store: RelayStore;
  hub: KioskHub;
  orders: OrderService;
  /** the POS url's answers (routes/unattended.ts): one PosPoll behind the front handler and the fastify routes */
  posPoll: PosPoll;
  /** /metrics, /healthz, /readyz; drain() before close() on SIGTERM */
  ops: RelayOps;
  /** kiosk reports and signed operator commands (relay/kiosk-console.ts) */
  console: KioskConsole;
  /** operator actions (refund, review, kiosk commands), the one implementation the console, CLI and API call */
  actions: ConsoleActions;
  /** alerts and outbound webhooks/e-mail (relay/console/notify.ts); notify.check() runs one alert check now */
  notify: RelayNotify;
  /** the public link of an order's receipt page (what the printed receipt's QR opens) */
  receiptUrl(orderId: string): string;
  /** one expiry pass now (the timer runs it every second) */
  runExpiry(): Promise<number>;
  /** one paid-but-no-vend-result check now (the timer runs it every second); resolves how many were flagged */
  runWatchdog(): Promise<number>;
  /** one contingency pass now; resolves to the number of orders looked up */
  runContingency(): Promise<number>;
  /** one retention pass now (the timer runs it hourly); resolves how many notifications and inbox rows were pruned */
  runRetention(): Promise<{ notifications: number; inbox: number }>;
  /**
   * Replaces the price list while running (the config file changed): connected kiosks get it at
   * once, and the next order is priced with it. Returns how many kiosks were told.
   */
  setCatalog(entries: RelayConfig['catalog']): Promise<number>;
  /** sends a fresh welcome to connected kiosks whose QR or model changed (the timer runs it every second) */
  pushKioskChanges(): Promise<number>;
  /** resolves when notification processing and refunds have nothing in flight */
  whenIdle(): Promise<void>;
  close(): Promise<void>;
}

const EXPIRY_TICK_MS = 1000;
/** every this many ticks the refund worker makes a pass even unkicked: work the CLI wrote in the store */
const REFUND_SWEEP_TICKS = 5;
const RETENTION_TICK_MS = 3_600_000;

export async function startRelay(config: RelayConfig, deps: RelayDeps = {}): Promise<RunningRelay> {
  const logger = deps.logger ?? createLogger('relay');
  const now = deps.now ?? Date.now;
  let catalog = Catalog.fromInput(config.catalog);
  const ops = new RelayOps({ config: config.observability, logger: logger.child({ part: 'ops' }), store: () => store, kiosksConnected: () => hub.onlineCount() });
  const mp: MercadoPagoApi =
    deps.mp ??
    new MercadoPagoClient({
      baseUrl: config.mercadopago.baseUrl,
      accessToken: requireAccessToken(config),
      logger: logger.child({ part: 'mercadopago' }),
      onCall: ops.mpCall,
    });
  const store = await openRelayStore(config.store);
  let kioskConsole: KioskConsole;
  try {
    kioskConsole = new KioskConsole({ config, logger, now, kioskExists: async (id) => (await store.getKiosk(id)) !== undefined, recorder: deps.fleetRecorder ?? store });
    await kioskConsole.load();
  } catch (err) {
    await store.close();
    throw err;
  }
  const limits = config.limits;
  const guards = new RouteGuards({ limits, logger: logger.child({ part: 'limits' }) });
  const models = new PaymentModels({ mp, config, now });

  // Request logging off: MP polls the POS url several times a second while a customer waits.
  // The server is made here (fastify's serverFactory, with the same options fastify gives its
  // own) so that one request handler runs ahead of fastify: the POS url's plain GET, answered
  // from the raw request (routes/unattended.ts servePoll; fastify's request pipeline was most of
  // a poll's cost, bench/README.md). Everything else goes to fastify's handler untouched.
  let front: ((req: IncomingMessage, res: ServerResponse) => boolean) | undefined;
  const limitOptions = fastifyLimitOptions(limits);
  const app = Fastify({
    logger: false,
    ...limitOptions,
    serverFactory: (handler) => {
      const server = createServer(limitOptions.http, (req, res) => {
        if (front?.(req, res)) return;
        handler(req, res);
      });
      server.keepAliveTimeout = limitOptions.keepAliveTimeout;
      server.requestTimeout = limitOptions.requestTimeout;
      server.setTimeout(limitOptions.connectionTimeout);
      return server;
    },
  });
  /** a request's failure, logged and answered the same on both paths */
  const failure = (err: unknown, ip: string, method: string | undefined, url: string, route: string | undefined) => {
    const status = (err as { statusCode?: number }).statusCode ?? 500;
    if (status === 413) guards.refusals.note(ip, 'body too large', `request to ${route ?? url.slice(0, 64)} from ${ip} refused: body larger than allowed (limits.bodyBytes)`);
    if (status >= 500) logger.error({ err, url }, `HTTP ${method} ${url} failed: ${err instanceof Error ? err.message : String(err)}`);
    return { status, body: JSON.stringify({ error: { type: status >= 500 ? 'internal' : 'invalid', message: status >= 500 ? 'internal error' : (err as Error).message } }) };
  };
  app.setErrorHandler((err, req, reply) => {
    const f = failure(err, req.ip, req.method, req.url, req.routeOptions.url);
    void reply.code(f.status).header('content-type', 'application/json; charset=utf-8').send(f.body);
  });

  const hub = new KioskHub({
    store,
    logger: logger.child({ part: 'hub' }),
    refusals: guards.refusals,
    pingIntervalMs: config.hub.pingIntervalSeconds * 1000,
    now,
    welcomeFor: (kiosk) => ({
      kioskId: kiosk.id,
      serverTime: now(),
      paymentModel: kiosk.paymentModel,
      posQr: kiosk.posQr ?? '',
      qrOnAccept: models.of(kiosk).qrOnAccept(kiosk),
      catalog: kioskConsole.catalogFor(kiosk.id, catalog).list().map((p) => ({ sku: p.sku, name: p.name, price: p.price, currency: p.currency })),
      maxPaymentSeconds: config.orders.maxPaymentSeconds,
      features: [CONSOLE_FEATURE],
      commandKeyId: kioskConsole.signer.keyId,
    }),
  });
  kioskConsole.attach(hub);
  // Several instances on one PostgreSQL database: presence, signals, job locks (relay/fleet/).
  // With one SQLite relay the same code runs in-process, so both shapes take one path.
  const fleet = await Fleet.start({
    store,
    logger: logger.child({ part: 'fleet' }),
    instanceId: newInstanceId(config.observability.instance),
    ...(config.store.url ? { pgUrl: config.store.url } : {}),
    heartbeatMs: config.hub.pingIntervalSeconds * 1000,
  });
  fleet.attach(hub);
  /** connected here, or to another live instance */
  const kioskOnline = (id: string) => hub.isOnline(id) || fleet.isPresent(id);
  kioskConsole.setPresence((id) => fleet.isPresent(id));
  // alerts and outbound messages (relay.yaml notify, alerts): relay/console/notify.ts
  const notify = new RelayNotify({ config, store, logger: logger.child({ part: 'notify' }), now, jobs: fleet.jobs, kioskOnline, fleetView: kioskConsole.fleet });

  let refunds: RefundWorker | undefined;
  let offers: OfferWorker | undefined;
  const orders = new OrderService({
    store,
    // every order event as a signed webhook to the channels that want it (notify.channels, order.*)
    orderDeliveries: (order, at) => orderDeliveries(notify.channels, order, at),
    onDeliveries: () => notify.worker.kick(),
    catalog: (kioskId) => kioskConsole.catalogFor(kioskId, catalog),
    orders: config.orders,
    collectorId: config.mercadopago.collectorId,
    logger: logger.child({ part: 'orders' }),
    now,
    isOnline: kioskOnline,
    flush: (id) => void hub.flush(id),
    onRefundNeeded: () => refunds?.kick(),
    models,
    onOfferWork: () => offers?.kick(),
    observe: ops.observer,
    // the printed receipt's QR opens the customer's receipt page (config receiptBaseUrl, default publicUrl)
    receiptUrl: (orderId) => (config.receiptBaseUrl === false ? undefined : `${config.receiptBaseUrl ?? config.publicUrl}/r/${receiptToken(receiptSecret, orderId)}`),
  });
  hub.setHandler(orders);
  refunds = new RefundWorker({ store, models, orders, logger: logger.child({ part: 'refunds' }), now, observe: ops.observer, exclusive: (job, fn) => fleet.jobs.run(job, fn) });
  offers = new OfferWorker({ store, models, orders, logger: logger.child({ part: 'offers' }), exclusive: (job, fn) => fleet.jobs.run(job, fn) });
  const siteCurrency = catalog.list()[0]!.currency;
  // the customers' receipt links (/r/<order>.<mac>): the same on every instance, from the shared key
  const receiptSecret = kioskConsole.signer.deriveSecret('receipt-link-v1');
  // What notifications and the contingency search may cost at Mercado Pago, each with its own
  // rate (limits.notifications.mpCallsPerSecond, limits.contingency.callsPerSecond): their reads
  // go through paced views of the API (refunds and offers do not wait).
  const notificationReads = pacedReads(mp, { perSecond: limits.notifications.mpCallsPerSecond, burst: Math.max(1, Math.ceil(limits.notifications.mpCallsPerSecond)) });
  const contingencyReads = pacedReads(mp, { perSecond: limits.contingency.callsPerSecond, burst: 1 });
  const worker = new NotificationWorker({
    store,
    mp: notificationReads.api,
    models: new PaymentModels({ mp: notificationReads.api, config, now }),
    currency: siteCurrency,
    orders,
    logger: logger.child({ part: 'notifications' }),
    now,
    notFound: new NotFoundMemory(limits.notifications.notFoundMemorySeconds * 1000, now),
    maxTries: limits.notifications.maxTries,
    observe: ops.observer,
  });
  const contingency = new ContingencyPoller({
    store,
    models: new PaymentModels({ mp: contingencyReads.api, config, now }),
    orders,
    config: config.orders,
    limits: limits.contingency,
    logger: logger.child({ part: 'contingency' }),
    now,
  });

  let posPoll: PosPoll | undefined;
  await app.register(async (scope) => {
    // Mercado Pago's content types are not documented (IPN often sends an empty body labelled
    // JSON). Take every body as text so no request is refused before it is recorded.
    scope.removeAllContentTypeParsers();
    scope.addContentTypeParser('*', { parseAs: 'string' }, (_req, body, done) => done(null, body));
    posPoll = registerUnattendedRoutes(scope, { store, orders, config, logger: logger.child({ part: 'pos' }), guards, now, isOnline: kioskOnline });
    registerNotificationRoutes(scope, { store, worker, config, logger: logger.child({ part: 'notifications' }), now, guards });
    registerReceiptRoute(scope, { store, secret: receiptSecret, defaultLang: siteCurrency === 'BRL' ? 'pt' : 'es', timeZone: config.alerts.timeZone });
  });
  // the REST API for integrations (API keys with scopes; OpenAPI at /api/openapi.json)
  // operator actions (refunds, reviews, kiosk commands): one implementation for the console, the API and the CLI
  const actions = new ConsoleActions({ store, orders, commands: kioskConsole.commands, logger: logger.child({ part: 'console-actions' }), now, approvalAbove: config.consoleWeb.refundApprovalAbove, onRefundNeeded: () => refunds?.kick() });
  registerApiRoutes(app, { store, actions, fleet: kioskConsole.fleet, config, now, guards });
  ops.register(app);
  // the operator's web console (/console): routes, live feed (relay/console/web/)
  const consoleWeb = registerConsoleWeb(app, {
    store,
    kioskConsole,
    actions,
    logger: logger.child({ part: 'console-web' }),
    now,
    publicUrl: config.publicUrl,
    sessionHours: config.consoleWeb.sessionHours,
    onPresence: (listener) => {
      hub.on('online', listener);
      hub.on('offline', listener);
    },
  });

  // the POS url's hot path ahead of fastify, once its routes exist (they answer with the same
  // PosPoll whatever this handler leaves to them); off again when the relay closes, so fastify
  // answers what arrives then (503 while closing) and nothing reads a closing store
  const poll = posPoll!;
  front = (req, res) =>
    servePoll(poll, guards, req, res, (err) => {
      const f = failure(err, guards.clientAddress(req), req.method, req.url ?? '', '/mp/pos/:posExternalId');
      if (res.headersSent) return void res.destroy();
      res.writeHead(f.status, { 'content-type': 'application/json; charset=utf-8', 'content-length': Buffer.byteLength(f.body) });
      res.end(f.body);
    });
  guards.attach(app.server);
  hub.attach(app.server);
  try {
    await app.listen({ host: config.listen.host, port: config.listen.port });
  } catch (err) {
    await fleet.close();
    await hub.close();
    await store.close();
    throw err;
  }
  const port = (app.server.address() as AddressInfo).port;
  const host = config.listen.host === '0.0.0.0' || config.listen.host === '::' ? '127.0.0.1' : config.listen.host;
  const base = `http://${host.includes(':') ? `[${host}]` : host}:${port}`;

  // Resume whatever the previous run left: expired deadlines, refunds, stored notifications.
  // Each timed pass runs on one instance at a time (fleet job locks); the others skip that tick.
  const exclusive = async (job: string, fn: () => Promise<number>): Promise<number> => {
    const r = await fleet.jobs.run(job, fn);
    return r.ran ? r.value : 0;
  };
  const runExpiry = async () => {
    try {
      return await exclusive('expiry', () => orders.expireDue());
    } catch (err) {
      logger.error({ err }, `expiry pass failed: ${(err as Error).message}`);
      return 0;
    }
  };
  const runWatchdog = async () => {
    try {
      return await exclusive('vend-watchdog', () => orders.flagOverdueVends());
    } catch (err) {
      logger.error({ err }, `vend watchdog pass failed: ${(err as Error).message}`);
      return 0;
    }
  };
  // Retention: processed notifications older than limits.notifications.retentionDays go, and
  // inbox rows (the at-most-once record of kiosk frames) older than limits.inbox.retentionDays.
  const runRetention = async () => {
    const pruned = { notifications: 0, inbox: 0 };
    try {
      pruned.notifications = await store.pruneNotifications(now() - limits.notifications.retentionDays * 86_400_000);
      if (pruned.notifications) logger.info({ pruned: pruned.notifications }, `pruned ${pruned.notifications} processed notifications older than ${limits.notifications.retentionDays} days`);
    } catch (err) {
      logger.error({ err }, `notification retention pass failed: ${(err as Error).message}`);
    }
    try {
      pruned.inbox = await store.pruneInbox(now() - limits.inbox.retentionDays * 86_400_000);
      if (pruned.inbox) logger.info({ pruned: pruned.inbox }, `pruned ${pruned.inbox} inbox rows older than ${limits.inbox.retentionDays} days`);
    } catch (err) {
      logger.error({ err }, `inbox retention pass failed: ${(err as Error).message}`);
    }
    return pruned;
  };
  await runRetention();
  const retentionTimer = setInterval(() => void runRetention(), RETENTION_TICK_MS);
  retentionTimer.unref();
  // Kiosk changes made by another process (provision, set-qr, set-model) reach connected kiosks
  // within a tick: the store's kiosk revision says what changed. A rotated or revoked token ends
  // the kiosk's link on every instance (each one polls the revision).
  let seenRevision = await store.kioskRevision();
  const pushKioskChanges = async () => {
    let n = 0;
    try {
      const now = await store.kioskRevision();
      if (now === seenRevision) return 0;
      const changed = await store.kiosksChangedAfter(seenRevision);
      seenRevision = Math.max(seenRevision, now);
      for (const k of changed) {
        if (await hub.dropIfTokenRevoked(k.id)) continue;
        if (await hub.rewelcome(k.id)) {
          n++;
          logger.info({ kioskId: k.id, model: k.paymentModel }, `kiosk ${k.id} changed (QR or payment model): sent it a fresh welcome`);
        }
      }
    } catch (err) {
      logger.error({ err }, `kiosk change check failed: ${(err as Error).message}`);
    }
    return n;
  };
  const setCatalog = async (entries: RelayConfig['catalog']) => {
    catalog = Catalog.fromInput(entries);
    let n = 0;
    for (const id of hub.onlineKiosks()) if (await hub.rewelcome(id)) n++;
    logger.info({ products: catalog.list().length, kiosks: n }, `catalog replaced: ${catalog.list().length} products, sent to ${n} connected kiosks`);
    return n;
  };
  await runExpiry();
  await runWatchdog();
  refunds.kick();
  offers.kick();
  const resumed = await worker.resumePending();
  if (resumed) logger.info({ resumed }, `resuming ${resumed} stored notifications`);
  // One tick at a time: a slow store must not pile up overlapping passes.
  let ticking = false;
  let ticks = 0;
  const expiryTimer = setInterval(() => {
    if (ticking) return;
    ticking = true;
    void (async () => {
      await runExpiry();
      await runWatchdog();
      await pushKioskChanges();
      kioskConsole.tick();
      // refunds the CLI (qrkiosk relay refund) or another instance wrote: picked up within a few ticks
      if (++ticks % REFUND_SWEEP_TICKS === 0) refunds!.kick();
    })().finally(() => {
      ticking = false;
    });
  }, EXPIRY_TICK_MS);
  expiryTimer.unref();
  contingency.start();
  notify.start();
  logger.info({ url: base, publicUrl: config.publicUrl }, `relay listening on ${base} (public ${config.publicUrl})`);

  let closing: Promise<void> | undefined;
  const close = () => {
    closing ??= (async () => {
      front = undefined;
      clearInterval(expiryTimer);
      clearInterval(retentionTimer);
      await ops.close();
      await notify.close();
      await fleet.close().catch((err: Error) => logger.warn({ err }, `fleet close: ${err.message}`));
      // waiters for a Mercado Pago turn go now (they see the closed flag and stop)
      notificationReads.close();
      contingencyReads.close();
      // Background work first, so nothing writes to the database after it is closed. A hanging
      // Mercado Pago call is not awaited: its intent is on disk and the next start resumes it.
      await Promise.all([withTimeout(contingency.close(), 1000), withTimeout(worker.close(), 1000), refunds!.close(), offers!.close()]);
      await hub.close();
      consoleWeb.close();
      await app.close();
      guards.close();
      await store.close();
      logger.info('relay stopped');
    })();
    return closing;
  };
  try {
    await ops.start(); // store pings, the admin listener (its port may be taken), then ready
  } catch (err) {
    await close();
    throw err;
  }

  return {
    url: base,
    wsUrl: `${base.replace(/^http/, 'ws')}${KIOSK_WS_PATH}`,
    port,
    store,
    hub,
    orders,
    posPoll: poll,
    ops,
    console: kioskConsole,
    actions,
    notify,
    receiptUrl: (orderId: string) => `${config.receiptBaseUrl || config.publicUrl}/r/${receiptToken(receiptSecret, orderId)}`,
    runExpiry,
    runWatchdog,
    runContingency: () => contingency.runOnce(),
    runRetention,
    setCatalog,
    pushKioskChanges,
    whenIdle: async () => {
      await offers!.idle();
      await worker.idle();
      await refunds!.idle();
      await offers!.idle();
      await worker.idle();
    },
    close,
  };
}

function withTimeout(p: Promise<unknown>, ms: number): Promise<void> {
  return new Promise((resolve) => {
    const t = setTimeout(resolve, ms);
    t.unref();
    p.then(
      () => {
        clearTimeout(t);
        resolve();
      },
      () => {
        clearTimeout(t);
        resolve();
      },
    );
  });
}
