import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { timingSafeEqual, createHash } from 'node:crypto';
import type { FastifyInstance } from 'fastify';
import type { MpCallReport } from '../../mercadopago/endpoints.js';
import type { Logger } from '../../runtime/log.js';
import type { RelayStore } from '../store/index.js';
import type { ObservabilityConfig } from './config.js';
import { DependencyTracker } from './dependency.js';
import { mpErrorKind, RelayMetrics } from './metrics.js';
import type { RelayObserver } from './observer.js';
import { pingStore } from './store-probe.js';

// /metrics, /healthz and /readyz of one relay instance (docs/deploy.md).
//
// - /healthz: "is this process worth keeping?" Store and Mercado Pago reachability with the age of
//   their last success; 503 once either has been failing longer than observability.health.*. The
//   store is pinged (in the background and on each request); Mercado Pago is judged from the
//   calls the relay makes anyway (never a call made only to check): an answer below 500 other
//   than 429 is a success, no answer, 5xx and 429 are failures.
// - /readyz: "may the load balancer send work here?" 503 while starting, while draining after
//   SIGTERM, and while the latest store ping failed. Mercado Pago being down does not make an
//   instance unready: every instance shares the same Mercado Pago, so moving kiosks helps nobody.
// - /metrics: Prometheus text; on the public listener only with the bearer token (config.ts).

export type Readiness = 'starting' | 'ready' | 'draining' | 'closed';

export interface RelayOpsOptions {
  config: ObservabilityConfig;
  logger: Logger;
  /** getters: the store and the hub are built after the Mercado Pago client, which reports here */
  store: () => RelayStore;
  kiosksConnected: () => number;
}

interface Answer {
  status: number;
  contentType: string;
  body: string;
}

const JSON_TYPE = 'application/json; charset=utf-8';

export class RelayOps {
  readonly health = { store: new DependencyTracker(), mercadopago: new DependencyTracker() };
  readonly metrics: RelayMetrics;
  private state: Readiness = 'starting';
  private storeTimer: NodeJS.Timeout | undefined;
  private admin: Server | undefined;
  private draining: Promise<void> | undefined;
  private storeCheck: Promise<void> | undefined;
  private storeCheckedAt = -Infinity;
  private readonly tokenDigest: Buffer | undefined;

  constructor(private readonly o: RelayOpsOptions) {
    this.metrics = new RelayMetrics({ instance: o.config.instance, store: o.store, kiosksConnected: o.kiosksConnected, health: this.health });
    this.tokenDigest = o.config.metricsToken ? digest(o.config.metricsToken) : undefined;
  }

  /** The workers' hooks (order service, notification worker, refund worker). */
  get observer(): RelayObserver {
    return this.metrics;
  }

  /** MercadoPagoClient's onCall: metrics, and Mercado Pago's reachability for /healthz. */
  readonly mpCall = (call: MpCallReport): void => {
    this.metrics.mpCall(call);
    const kind = mpErrorKind(call);
    if (kind === null || kind === 'http_4xx') this.health.mercadopago.success();
    else this.health.mercadopago.failure(`${call.method} ${call.path}: ${kind}${call.status ? ` (${call.status})` : ''}`);
  };

  get readiness(): Readiness {
    return this.state;
  }

  /** The routes on the relay's public listener. */
  register(app: FastifyInstance): void {
    const send = (reply: import('fastify').FastifyReply, a: Answer) => reply.code(a.status).header('content-type', a.contentType).header('cache-control', 'no-store').send(a.body);
    app.get('/healthz', async (_req, reply) => send(reply, await this.healthz()));
    app.get('/readyz', async (_req, reply) => send(reply, await this.readyz()));
    app.get('/metrics', async (req, reply) => send(reply, await this.metricsAnswer(req.headers.authorization, false)));
  }

  /** After the public listener is up: the store pings, the admin listener, then ready. */
  async start(): Promise<void> {
    await this.checkStore(true);
    this.storeTimer = setInterval(() => void this.checkStore(true), this.o.config.health.storeCheckSeconds * 1000);
    this.storeTimer.unref();
    const adminListen = this.o.config.adminListen;
    if (adminListen) {
      this.admin = createServer((req, res) => void this.serveAdmin(req, res));
      await new Promise<void>((resolve, reject) => {
        this.admin!.once('error', (err: NodeJS.ErrnoException) =>
          reject(new Error(`observability.adminListen ${adminListen.host}:${adminListen.port}: ${err.code === 'EADDRINUSE' ? 'the port is taken: choose another' : err.message}`, { cause: err })),
        );
        this.admin!.listen(adminListen.port, adminListen.host, () => {
          this.admin!.removeAllListeners('error');
          resolve();
        });
      });
      this.o.logger.info({ admin: this.adminUrl }, `metrics and health on the admin listener ${this.adminUrl}`);
    }
    this.state = 'ready';
  }

  /** http://host:port of the admin listener, when configured */
  get adminUrl(): string | undefined {
    const a = this.admin?.address() as AddressInfo | null | undefined;
    if (!a) return undefined;
    return `http://${a.family === 'IPv6' ? `[${a.address}]` : a.address}:${a.port}`;
  }

  /**
   * SIGTERM: /readyz answers 503 at once, and this resolves after observability.drainSeconds, time
   * for the load balancer to see it and stop routing here. The relay keeps serving meanwhile.
   */
  drain(): Promise<void> {
    if (this.state !== 'closed') this.state = 'draining';
    this.draining ??= new Promise((resolve) => {
      this.o.logger.info({ seconds: this.o.config.drainSeconds }, `draining: /readyz answers 503 for ${this.o.config.drainSeconds}s before the relay stops`);
      setTimeout(resolve, this.o.config.drainSeconds * 1000).unref();
    });
    return this.draining;
  }

  async close(): Promise<void> {
    this.state = 'closed';
    if (this.storeTimer) clearInterval(this.storeTimer);
    const admin = this.admin;
    this.admin = undefined;
    if (admin) {
      admin.closeAllConnections();
      await new Promise<void>((resolve) => admin.close(() => resolve()));
    }
  }

  // ---- answers ----------------------------------------------------------------------------------

  async healthz(): Promise<Answer> {
    await this.checkStore();
    const h = this.o.config.health;
    const store = this.health.store.snapshot();
    const mercadopago = this.health.mercadopago.snapshot();
    const problems: string[] = [];
    if (store.downForSeconds > h.storeDownSeconds) problems.push(`store unreachable for ${Math.round(store.downForSeconds)}s (limit observability.health.storeDownSeconds: ${h.storeDownSeconds})`);
    if (mercadopago.downForSeconds > h.mercadopagoDownSeconds) problems.push(`Mercado Pago failing for ${Math.round(mercadopago.downForSeconds)}s (limit observability.health.mercadopagoDownSeconds: ${h.mercadopagoDownSeconds})`);
    const body = {
      ok: problems.length === 0,
      ...(problems.length ? { problems } : {}),
      instance: this.o.config.instance,
      readiness: this.state,
      ...(await this.summary()),
      store,
      mercadopago,
    };
    return { status: problems.length ? 503 : 200, contentType: JSON_TYPE, body: JSON.stringify(body) };
  }

  async readyz(): Promise<Answer> {
    if (this.state === 'ready') await this.checkStore();
    const reason =
      this.state !== 'ready' ? this.state : this.health.store.failing ? `store unreachable: ${this.health.store.snapshot().error}` : null;
    return {
      status: reason ? 503 : 200,
      contentType: JSON_TYPE,
      body: JSON.stringify({ ready: !reason, instance: this.o.config.instance, ...(reason ? { reason } : {}) }),
    };
  }

  private async metricsAnswer(authorization: string | undefined, onAdmin: boolean): Promise<Answer> {
    if (!this.tokenDigest && !onAdmin) {
      return {
        status: 404,
        contentType: JSON_TYPE,
        body: JSON.stringify({ error: 'metrics are not served on the public listener without a token: set observability.metricsToken (or QRKIOSK_METRICS_TOKEN), or observability.adminListen' }),
      };
    }
    if (this.tokenDigest) {
      const m = /^Bearer\s+(\S+)\s*$/i.exec(authorization ?? '');
      // compared as digests: equal length, constant time
      if (!m || !timingSafeEqual(digest(m[1]!), this.tokenDigest)) {
        return { status: 401, contentType: JSON_TYPE, body: JSON.stringify({ error: 'send Authorization: Bearer <observability.metricsToken>' }) };
      }
    }
    const { contentType, body } = await this.metrics.text();
    return { status: 200, contentType, body };
  }

  /** The counts /healthz always showed; left out while the store cannot answer. */
  private async summary(): Promise<Record<string, number>> {
    try {
      const store = this.o.store();
      return {
        kiosksOnline: this.o.kiosksConnected(),
        pendingOrders: await store.countOrders('pending'),
        // orders a person must look at: store.ordersNeedingReview() lists them
        needsReview: await store.countNeedingReview(),
        // notifications whose processing was given up (poison rows): see the notifications table
        notificationsGivenUp: await store.countGivenUpNotifications(),
      };
    } catch {
      return { kiosksOnline: this.o.kiosksConnected() };
    }
  }

  /**
   * Pings the store. /healthz and /readyz are public, so requests share one ping in flight and
   * reuse a result younger than a second: a flood of health requests is not a flood of queries.
   */
  private checkStore(force = false): Promise<void> {
    if (this.state === 'closed') return Promise.resolve();
    if (this.storeCheck) return this.storeCheck;
    if (!force && performance.now() - this.storeCheckedAt < 1000) return Promise.resolve();
    this.storeCheck = this.pingOnce().finally(() => {
      this.storeCheck = undefined;
      this.storeCheckedAt = performance.now();
    });
    return this.storeCheck;
  }

  private async pingOnce(): Promise<void> {
    const limitMs = this.o.config.health.pingTimeoutSeconds * 1000;
    let timer: NodeJS.Timeout | undefined;
    try {
      await Promise.race([
        pingStore(this.o.store()),
        new Promise((_, reject) => {
          timer = setTimeout(() => reject(new Error(`no answer within ${limitMs} ms`)), limitMs);
        }),
      ]);
      const downMs = this.health.store.downForMs();
      this.health.store.success();
      if (downMs > 0) this.o.logger.info({ downMs }, `store reachable again after ${Math.round(downMs / 1000)}s`);
    } catch (err) {
      const first = !this.health.store.failing;
      this.health.store.failure((err as Error).message);
      if (first) this.o.logger.error({ err }, `store ping failed: ${(err as Error).message}`);
    } finally {
      clearTimeout(timer);
    }
  }

  private async serveAdmin(req: IncomingMessage, res: ServerResponse): Promise<void> {
    let a: Answer;
    try {
      const path = new URL(req.url ?? '/', 'http://admin').pathname;
      if (req.method !== 'GET' && req.method !== 'HEAD') a = { status: 405, contentType: JSON_TYPE, body: '{"error":"use GET"}' };
      else if (path === '/metrics') a = await this.metricsAnswer(req.headers.authorization, true);
      else if (path === '/healthz') a = await this.healthz();
      else if (path === '/readyz') a = await this.readyz();
      else a = { status: 404, contentType: JSON_TYPE, body: '{"error":"the admin listener serves /metrics, /healthz and /readyz"}' };
    } catch (err) {
      this.o.logger.error({ err }, `admin ${req.url} failed: ${(err as Error).message}`);
      a = { status: 500, contentType: JSON_TYPE, body: '{"error":"internal error"}' };
    }
    res.writeHead(a.status, { 'content-type': a.contentType, 'cache-control': 'no-store' });
    res.end(req.method === 'HEAD' ? undefined : a.body);
  }
}

function digest(token: string): Buffer {
  return createHash('sha256').update(token).digest();
}
