import type { IncomingMessage, Server } from 'node:http';
import type { Socket } from 'node:net';
import type { FastifyReply, FastifyRequest, HookHandlerDoneFunction } from 'fastify';
import * as z from 'zod/mini';
import '../runtime/zod.js';
import type { Logger } from '../runtime/log.js';
import { KeyedRateLimiter } from '../runtime/rate-limit.js';
import { RefusalLog } from '../runtime/refusal-log.js';

// Limits on every public route of the relay. The relay must face the internet (Mercado Pago calls
// it), so anyone can call it: each thing a request can make us spend (connections, memory,
// database rows, Mercado Pago calls, log lines) has a cap here, configurable under `limits:` in
// relay.yaml, with defaults far above what Mercado Pago's documented traffic needs
// (docs/reliability.md#limits-and-their-defaults explains each one).

const positiveInt = z.number().check(z.int(), z.positive());
const positive = z.number().check(z.positive());

export const limitsSchema = z.prefault(
  z
    .strictObject({
      // Behind a reverse proxy every connection comes from the proxy, and connections per source
      // must be limited by the proxy. The value is how many proxies stand in front of the relay
      // (true = 1): the client is the address the outermost of them appended to X-Forwarded-For,
      // counted from the RIGHT. Never the left-most entry, which the client writes itself (fastify's
      // `trustProxy: true` would take that one, and a client could dodge the per-source limits by
      // sending a new X-Forwarded-For with each request).
      trustProxy: z.pipe(
        z._default(
          z.union([
            z.boolean(),
            z.number().check(z.int(), z.gte(0), z.lte(5, 'trustProxy counts the proxies in front of the relay (0 to 5), or true for one')),
          ]),
          false,
        ),
        z.transform((v) => (v === true ? 1 : v === false ? 0 : v)),
      ),
      maxConnections: z._default(positiveInt, 4096),
      connectionsPerSource: z._default(positiveInt, 128),
      headersTimeoutSeconds: z._default(positiveInt, 10),
      requestTimeoutSeconds: z._default(positiveInt, 15),
      idleTimeoutSeconds: z._default(positiveInt, 30),
      keepAliveTimeoutSeconds: z._default(positiveInt, 5),
      bodyBytes: z.prefault(
        z.strictObject({
          notifications: z._default(positiveInt.check(z.lte(1024 * 1024)), 16 * 1024),
          pos: z._default(positiveInt.check(z.lte(1024 * 1024)), 4 * 1024),
        }),
        {},
      ),
      notifications: z.prefault(
        z.strictObject({
          // each stored notification must be on disk before its 200 (waiting ones share an fsync);
          // when each had its own, a burst of hundreds measurably delayed the POS poll, so the burst
          // stays modest; Mercado Pago sends a few per payment and retries what is refused
          perSecond: z._default(positive, 10),
          burst: z._default(positiveInt, 60),
          storedPerSourcePerHour: z._default(positiveInt, 5000),
          retentionDays: z._default(positiveInt, 30),
          notFoundMemorySeconds: z._default(positiveInt, 600),
          maxTries: z._default(positiveInt, 5),
          mpCallsPerSecond: z._default(positive, 10),
        }),
        {},
      ),
      pos: z.prefault(z.strictObject({ perSecond: z._default(positive, 50), burst: z._default(positiveInt, 200) }), {}),
      // the integrations' REST API (/api): per source, before the key is looked up, so a flood of
      // guessed keys costs one token each and no store read past the burst
      api: z.prefault(z.strictObject({ perSecond: z._default(positive, 10), burst: z._default(positiveInt, 60) }), {}),
      // The inbox records which kiosk frames were applied, so a re-sent one is acked, not applied
      // twice. An agent re-sends an unacked frame within minutes; a row older than this protects
      // nothing and only grows the table (issue 8).
      inbox: z.prefault(z.strictObject({ retentionDays: z._default(positiveInt, 7) }), {}),
      contingency: z.prefault(
        z.strictObject({
          callsPerSecond: z._default(positive, 2),
          maxBackoffSeconds: z._default(positiveInt, 300),
          pageSize: z._default(positiveInt.check(z.lte(100)), 50),
          maxPagesPerPass: z._default(positiveInt, 10),
        }),
        {},
      ),
      refusalLogSeconds: z._default(positiveInt, 60),
    })
    .check(
      z.superRefine((l, ctx) => {
        if (l.headersTimeoutSeconds > l.requestTimeoutSeconds) {
          ctx.addIssue({
            code: 'custom',
            path: ['headersTimeoutSeconds'],
            message: `must not be longer than requestTimeoutSeconds (${l.requestTimeoutSeconds}): the whole request includes its headers`,
          });
        }
      }),
    ),
  {},
);

export type RelayLimits = z.output<typeof limitsSchema>;

/** Fastify's own options for the limits it enforces itself. */
export function fastifyLimitOptions(l: RelayLimits) {
  return {
    // proxy-addr walks from the socket (hop 0) leftwards through X-Forwarded-For and takes the
    // first address it does not trust: trusting hops 0..n-1 gives the address the n-th proxy saw
    trustProxy: l.trustProxy > 0 ? (_address: string, hop: number) => hop < l.trustProxy : false,
    // whole request, body included: a body sent a byte every 10 s is cut here
    requestTimeout: l.requestTimeoutSeconds * 1000,
    // a socket silent this long is closed (kiosk WebSockets are exempt: `ws` clears it)
    connectionTimeout: l.idleTimeoutSeconds * 1000,
    keepAliveTimeout: l.keepAliveTimeoutSeconds * 1000,
    http: {
      headersTimeout: l.headersTimeoutSeconds * 1000,
      requestTimeout: l.requestTimeoutSeconds * 1000,
      // Node checks the two timeouts above only this often (default 30 s)
      connectionsCheckingInterval: 1000,
    },
  };
}

export interface RouteGuardOptions {
  limits: RelayLimits;
  logger: Logger;
}

/**
 * The per-source gates of the public routes and the aggregated log of what they refuse. One
 * instance per relay; routes use its fastify hooks, the server its connection gate.
 */
export class RouteGuards {
  readonly refusals: RefusalLog;
  private readonly notifications: KeyedRateLimiter;
  private readonly pos: KeyedRateLimiter;
  private readonly api: KeyedRateLimiter;
  private readonly connections = new Map<string, number>();

  constructor(private readonly o: RouteGuardOptions) {
    this.refusals = new RefusalLog({ logger: o.logger, periodMs: o.limits.refusalLogSeconds * 1000 });
    this.notifications = new KeyedRateLimiter({ perSecond: o.limits.notifications.perSecond, burst: o.limits.notifications.burst });
    this.pos = new KeyedRateLimiter({ perSecond: o.limits.pos.perSecond, burst: o.limits.pos.burst });
    this.api = new KeyedRateLimiter({ perSecond: o.limits.api.perSecond, burst: o.limits.api.burst });
  }

  get limits(): RelayLimits {
    return this.o.limits;
  }

  /** Caps connections, in total and per source address (unless a trusted proxy is in front). */
  attach(server: Server): void {
    server.maxConnections = this.o.limits.maxConnections;
    if (this.o.limits.trustProxy) return;
    const max = this.o.limits.connectionsPerSource;
    server.on('connection', (socket: Socket) => {
      const source = socket.remoteAddress ?? 'unknown';
      const n = (this.connections.get(source) ?? 0) + 1;
      if (n > max) {
        this.refusals.note(source, 'too many connections', `connection from ${source} refused: it already has ${max} open (limits.connectionsPerSource)`);
        socket.destroy();
        return;
      }
      this.connections.set(source, n);
      socket.once('close', () => {
        const left = (this.connections.get(source) ?? 1) - 1;
        if (left <= 0) this.connections.delete(source);
        else this.connections.set(source, left);
      });
    });
  }

  // The gates are callback-style hooks, not async ones: the POS url runs one per poll, and an
  // async hook costs fastify a promise and a microtask turn per request (profiled: bench/README.md).

  /** onRequest hook of the POS url: runs before the body is read. */
  readonly posGate = (req: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    this.gate(this.pos, 'pos', req, reply, done);
  };

  /** onRequest hook of the notification url: runs before the body is read. */
  readonly notificationGate = (req: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void => {
    this.gate(this.notifications, 'notifications', req, reply, done);
  };

  /** onRequest hook of /api (the REST API): its error body is the API's documented Error. */
  readonly apiGate = async (req: FastifyRequest, reply: FastifyReply): Promise<FastifyReply | undefined> => {
    const source = req.ip;
    if (this.api.tryTake(source)) return undefined;
    this.refusals.note(source, 'API rate limited', `/api called too often by ${source}: answering 429 (limits.api)`);
    return reply
      .code(429)
      .header('retry-after', String(this.api.retryAfterSeconds(source)))
      .send({ error: { code: 'rate_limited', message: 'too many requests from this address; retry after the seconds in Retry-After' } });
  };

  /**
   * The POS url's rate gate for the relay's front handler (routes/unattended.ts servePoll), the
   * same bucket and refusal note as posGate: undefined when the poll may go on, else the answer.
   */
  takePos(source: string): RateLimitedAnswer | undefined {
    const retryAfter = this.take(this.pos, 'pos', source);
    return retryAfter === undefined ? undefined : rateLimitedAnswer(retryAfter);
  }

  /**
   * The client's address as fastify's `req.ip` gives it with fastifyLimitOptions' trustProxy, for
   * a request answered ahead of fastify: the socket's address, or behind `trustProxy` proxies the
   * address the outermost of them appended to X-Forwarded-For (proxy-addr's walk from the right:
   * hop 0 is the socket, hop i the i-th entry from the right; the first untrusted hop, or the
   * left-most entry when every hop is trusted).
   */
  clientAddress(req: IncomingMessage): string {
    const socket = req.socket.remoteAddress ?? '';
    const hops = this.o.limits.trustProxy;
    // without proxies the headers are not looked at (req.headers is built on first use)
    if (!hops) return socket;
    const xff = req.headers['x-forwarded-for'];
    if (!xff) return socket;
    const entries = (typeof xff === 'string' ? xff : xff.join(',')).split(',');
    for (let i = entries.length - 1, hop = 1; i >= 0; i--) {
      const a = entries[i]!.trim();
      if (a === '') continue;
      if (hop === hops || i === 0) return a;
      hop++;
    }
    return socket;
  }

  /** Takes a token for `source`; when there is none, notes the refusal and returns the Retry-After seconds. */
  private take(limiter: KeyedRateLimiter, key: 'pos' | 'notifications', source: string): number | undefined {
    if (limiter.tryTake(source)) return undefined;
    const what = key === 'pos' ? 'POS url' : 'notification url';
    this.refusals.note(source, `${what} rate limited`, `${what} called too often by ${source}: answering 429 (limits.${key})`);
    return limiter.retryAfterSeconds(source);
  }

  private gate(limiter: KeyedRateLimiter, key: 'pos' | 'notifications', req: FastifyRequest, reply: FastifyReply, done: HookHandlerDoneFunction): void {
    const retryAfter = this.take(limiter, key, req.ip);
    if (retryAfter === undefined) return done();
    // Mercado Pago retries a notification that was not answered 200, so nothing is lost. Answered
    // here, without done(): the route's handler never runs.
    const a = rateLimitedAnswer(retryAfter);
    for (let i = 0; i < a.head.length; i += 2) if (a.head[i] !== 'content-length') reply.header(a.head[i]!, a.head[i + 1]);
    reply.code(a.status).send(a.body);
  }

  close(): void {
    this.refusals.close();
  }
}

/** An answer's bytes in node:http's raw form (the POS url's PollAnswer has the same shape). */
export interface RateLimitedAnswer {
  status: number;
  head: string[];
  body: Buffer;
}

const RATE_LIMITED = Buffer.from(JSON.stringify({ error: { type: 'rate_limited', message: 'too many requests; retry later' } }));

/** 429 of the per-source gates, with Retry-After; the connection is closed after it. */
export function rateLimitedAnswer(retryAfterSeconds: number): RateLimitedAnswer {
  return {
    status: 429,
    head: [
      'content-type',
      'application/json; charset=utf-8',
      'content-length',
      String(RATE_LIMITED.length),
      'retry-after',
      String(retryAfterSeconds),
      'connection',
      'close',
    ],
    body: RATE_LIMITED,
  };
}
