import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { readFileSync } from 'node:fs';
import { join } from 'node:path';
import { packageRoot } from '../../../runtime/package-root.js';
import { roleAllows, type Action } from '../../../core/console-roles.js';
import type { Logger } from '../../../runtime/log.js';
import type { KioskConsole } from '../../kiosk-console.js';
import type { RelayStore } from '../../store/index.js';
import { ActionError, type Actor, type ConsoleActions } from '../actions.js';
import { actionsOf, ConsoleSessions, sessionCookie, type LoginLimits, type SessionUser } from './sessions.js';
import { consoleState, orderTimeline, salesCsv, salesRows } from './views.js';

// The operator's web console (issue 11): pages and static files under /console, its JSON under
// /console/api, and the live feed /console/events (server-sent events: a fresh snapshot whenever
// the store was written or a kiosk's presence/status/command changed; the page never reloads).
// Every state-changing request needs the session cookie (SameSite=Strict), the header
// X-Requested-With: qrkiosk-console (a cross-site form cannot set it) and, when the browser sends
// Origin, the relay's own origin: three independent CSRF defences.

// plain HTML/CSS/JS, no build step: web/console/ at the package root
const STATIC_DIR = join(packageRoot(), 'web', 'console');
const STATIC_FILES: Record<string, string> = {
  'app.js': 'text/javascript; charset=utf-8',
  'app.css': 'text/css; charset=utf-8',
  'login.js': 'text/javascript; charset=utf-8',
};
const CSP = "default-src 'self'; img-src 'self' data:; style-src 'self'; script-src 'self'; connect-src 'self'; frame-ancestors 'none'; base-uri 'none'; form-action 'self'";

export interface ConsoleWebDeps {
  store: RelayStore;
  kioskConsole: KioskConsole;
  actions: ConsoleActions;
  logger: Logger;
  now: () => number;
  /** the relay's public url: https makes the cookie Secure */
  publicUrl: string;
  sessionHours: number;
  /** what changes the snapshot besides store writes: hub presence */
  onPresence(listener: () => void): void;
  loginLimits?: LoginLimits;
  /** how often the live feed looks for store writes (ms) */
  feedPollMs?: number;
}

function readStatic(name: string): string {
  return readFileSync(join(STATIC_DIR, name), 'utf8');
}

export function registerConsoleWeb(app: FastifyInstance, d: ConsoleWebDeps): { close(): void } {
  const sessions = new ConsoleSessions({ store: d.store, now: d.now, ttlMs: d.sessionHours * 3_600_000, ...(d.loginLimits ? { limits: d.loginLimits } : {}) });
  const secure = d.publicUrl.startsWith('https:');
  const pages = { index: readStatic('index.html'), login: readStatic('login.html') };
  const feeds = new Set<() => void>();
  const streams = new Set<{ end(): void }>();
  const changed = () => {
    for (const f of feeds) f();
  };
  d.kioskConsole.fleet.on('kiosk', changed);
  d.kioskConsole.commands.on('change', changed);
  d.onPresence(changed);
  // store writes (orders, payments, refunds, audit) from any part of the relay
  let seenWrites = d.store.writeCount();
  const poll = setInterval(() => {
    const w = d.store.writeCount();
    if (w !== seenWrites) {
      seenWrites = w;
      changed();
    }
  }, d.feedPollMs ?? (d.store.kind === 'postgres' ? 1000 : 250));
  poll.unref();
  // expired sessions are useless rows: prune them hourly
  const prune = setInterval(() => void d.store.pruneOperatorSessions(d.now()).catch((err: unknown) => d.logger.error({ err }, `console session pruning failed: ${(err as Error).message}`)), 3_600_000);
  prune.unref();

  const html = (reply: FastifyReply, body: string) =>
    reply.header('content-type', 'text/html; charset=utf-8').header('content-security-policy', CSP).header('x-frame-options', 'DENY').header('cache-control', 'no-store').send(body);

  /** The logged-in operator, or a refusal already sent. */
  async function who(req: FastifyRequest, reply: FastifyReply, need: Action): Promise<SessionUser | undefined> {
    const u = await sessions.user(req.headers.cookie);
    if (!u) {
      await reply.code(401).send({ error: { type: 'login', message: 'not logged in: open /console/login' } });
      return undefined;
    }
    if (!roleAllows(u.role, need)) {
      await reply.code(403).send({ error: { type: 'forbidden', message: `${u.operator.email} (${u.role}) may not ${need}` } });
      return undefined;
    }
    return u;
  }

  /** CSRF: the custom header, and the Origin (when sent) must be this relay's. */
  function csrfProblem(req: FastifyRequest): string | undefined {
    if (req.headers['x-requested-with'] !== 'qrkiosk-console') return 'missing X-Requested-With: qrkiosk-console (requests come from the console page)';
    const origin = req.headers.origin;
    if (origin !== undefined) {
      const host = req.headers.host ?? '';
      const ok = [`http://${host}`, `https://${host}`, new URL(d.publicUrl).origin].includes(origin);
      if (!ok) return `cross-site request refused (Origin ${origin})`;
    }
    return undefined;
  }

  async function mutate(req: FastifyRequest, reply: FastifyReply, need: Action, fn: (actor: Actor, body: Record<string, unknown>) => Promise<unknown>) {
    const bad = csrfProblem(req);
    if (bad) return reply.code(403).send({ error: { type: 'csrf', message: bad } });
    const u = await who(req, reply, need);
    if (!u) return reply;
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as Record<string, unknown>;
    try {
      const result = await fn({ operatorId: u.operator.id, name: u.operator.email, role: u.role }, body);
      changed();
      return reply.send({ ok: true, result: result ?? null });
    } catch (err) {
      if (err instanceof ActionError) return reply.code(err.status).send({ error: { type: 'action', message: err.message } });
      throw err;
    }
  }

  app.get('/console/login', (_req, reply) => html(reply, pages.login));
  app.get('/console', async (req, reply) => {
    if (!(await sessions.user(req.headers.cookie))) return reply.redirect('/console/login', 303);
    return html(reply, pages.index);
  });
  app.get<{ Params: { file: string } }>('/console/static/:file', (req, reply) => {
    const type = STATIC_FILES[req.params.file];
    if (!type) return reply.code(404).send({ error: { type: 'not_found', message: 'no such file' } });
    return reply.header('content-type', type).header('cache-control', 'no-cache').send(readStatic(req.params.file));
  });

  app.post('/console/login', async (req, reply) => {
    const bad = csrfProblem(req);
    if (bad) return reply.code(403).send({ error: { type: 'csrf', message: bad } });
    const body = (req.body && typeof req.body === 'object' ? req.body : {}) as { email?: unknown; password?: unknown };
    const r = await sessions.login(req.ip, body.email, body.password);
    if (!r.ok) {
      d.logger.warn({ source: req.ip, status: r.status }, `console login refused from ${req.ip}: ${r.message}`);
      return reply.code(r.status).send({ error: { type: 'login', message: r.message } });
    }
    d.logger.info({ operator: r.operator.email, source: req.ip }, `console login: ${r.operator.email}`);
    return reply.header('set-cookie', sessionCookie(r.secret, d.sessionHours * 3600, secure)).send({ ok: true, email: r.operator.email, role: r.operator.role });
  });
  app.post('/console/logout', async (req, reply) => {
    const bad = csrfProblem(req);
    if (bad) return reply.code(403).send({ error: { type: 'csrf', message: bad } });
    const u = await sessions.user(req.headers.cookie);
    if (u) await sessions.logout(u.tokenHash);
    return reply.header('set-cookie', sessionCookie('', 0, secure)).send({ ok: true });
  });

  app.get('/console/api/me', async (req, reply) => {
    const u = await who(req, reply, 'orders.read');
    if (!u) return reply;
    return { email: u.operator.email, role: u.role, actions: actionsOf(u.role) };
  });
  app.get('/console/api/state', async (req, reply) => {
    if (!(await who(req, reply, 'orders.read'))) return reply;
    return consoleState(d.store, d.kioskConsole, d.now());
  });
  app.get<{ Params: { id: string } }>('/console/api/orders/:id/timeline', async (req, reply) => {
    if (!(await who(req, reply, 'orders.read'))) return reply;
    const order = await d.store.getOrder(req.params.id);
    if (!order) return reply.code(404).send({ error: { type: 'not_found', message: `no order ${req.params.id}` } });
    const refused = (await d.actions.refusedRefunds(order.id)).map((r) => ({ id: r.id, paymentId: r.paymentId, amount: r.requestedAmount, status: r.status, error: r.lastError }));
    return { order, timeline: await orderTimeline(d.store, order), pendingApproval: (await d.actions.pendingApproval(order.id)) ?? null, refusedRefunds: refused };
  });
  app.get('/console/api/sales.csv', async (req, reply) => {
    if (!(await who(req, reply, 'sales.read'))) return reply;
    return reply.header('content-type', 'text/csv; charset=utf-8').header('content-disposition', 'attachment; filename="qrkiosk-sales.csv"').send(salesCsv(await salesRows(d.store)));
  });

  app.post<{ Params: { id: string } }>('/console/api/orders/:id/refund', (req, reply) => mutate(req, reply, 'refunds.create', (a, b) => d.actions.refund(a, req.params.id, b.reason, { amount: b.amount }).then((r) => ({ state: r.state, amount: r.amount }))));
  app.post<{ Params: { id: string } }>('/console/api/orders/:id/approve-refund', (req, reply) => mutate(req, reply, 'refunds.approve', (a, b) => d.actions.approveRefund(a, req.params.id, b.reason).then((r) => ({ state: r.state, amount: r.amount }))));
  app.post<{ Params: { id: string } }>('/console/api/orders/:id/retry-refund', (req, reply) =>
    mutate(req, reply, 'refunds.retry', (a, b) => d.actions.retryRefund(a, req.params.id, b.reason, typeof b.refundId === 'number' ? b.refundId : undefined)),
  );
  app.post<{ Params: { id: string } }>('/console/api/orders/:id/clear-review', (req, reply) => mutate(req, reply, 'reviews.clear', (a, b) => d.actions.clearReview(a, req.params.id, b.decision, b.reason)));
  // the action decides which permission the command needs (kiosks.service, stock.write, prices.write...)
  app.post<{ Params: { id: string } }>('/console/api/kiosks/:id/command', (req, reply) => mutate(req, reply, 'kiosks.read', (a, b) => d.actions.kioskCommand(a, req.params.id, b.action, b.reason)));

  app.get('/console/events', async (req, reply) => {
    if (!(await who(req, reply, 'orders.read'))) return reply;
    reply.hijack();
    const res = reply.raw;
    res.writeHead(200, { 'content-type': 'text/event-stream; charset=utf-8', 'cache-control': 'no-store', connection: 'keep-alive', 'x-accel-buffering': 'no' });
    let sending = false;
    let again = false;
    let closed = false;
    let lastSent = '';
    // one snapshot at a time; changes during a send coalesce into one more
    const push = async () => {
      if (closed) return;
      if (sending) {
        again = true;
        return;
      }
      sending = true;
      try {
        do {
          again = false;
          const state = await consoleState(d.store, d.kioskConsole, d.now());
          // PostgreSQL's writeCount changes on every call (other instances write too): send only news
          const { at: _at, ...content } = state;
          const key = JSON.stringify(content);
          if (!closed && key !== lastSent) {
            lastSent = key;
            res.write(`event: state\ndata: ${JSON.stringify(state)}\n\n`);
          }
        } while (again && !closed);
      } catch (err) {
        d.logger.error({ err }, `console live feed: ${(err as Error).message}`);
      } finally {
        sending = false;
      }
    };
    const listener = () => void push();
    feeds.add(listener);
    streams.add(res);
    // keep-alive comments, and the presence of "last seen" moving on screen
    const beat = setInterval(() => res.write(': keep-alive\n\n'), 15_000);
    beat.unref();
    req.raw.on('close', () => {
      closed = true;
      clearInterval(beat);
      feeds.delete(listener);
      streams.delete(res);
    });
    void push();
  });

  return {
    close() {
      clearInterval(poll);
      clearInterval(prune);
      feeds.clear();
      // open feeds would keep the server from closing
      for (const r of [...streams]) r.end();
      streams.clear();
    },
  };
}
