import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../runtime/log.js';
import type { RelayConfig } from '../config.js';
import { classifyNotification, verifyWebhookSignatureAnyCase, type NotificationWorker } from '../notifications.js';
import type { RelayStore } from '../store.js';

// POST /mp/notifications: store first, answer 200, process later. Mercado Pago retries for hours
// when we do not answer within ~22 s, and a crash between "answered" and "processed" is covered
// because the row is already on disk (resumed at start-up).

export interface NotificationRouteDeps {
  store: RelayStore;
  worker: NotificationWorker;
  config: RelayConfig;
  logger: Logger;
  now: () => number;
}

const KEPT_HEADERS = ['x-signature', 'x-request-id', 'user-agent', 'content-type', 'x-forwarded-for'];

/** The raw value of a query parameter as it appears in the URL (percent-decoded only). */
function rawQueryParam(url: string | undefined, name: string): string | undefined {
  const i = url?.indexOf('?') ?? -1;
  if (!url || i < 0) return undefined;
  return new URLSearchParams(url.slice(i + 1)).get(name) ?? undefined;
}

export function registerNotificationRoutes(app: FastifyInstance, deps: NotificationRouteDeps): void {
  app.post('/mp/notifications', { bodyLimit: 64 * 1024 }, async (req, reply) => {
    const receivedAt = deps.now();
    const query = { ...(req.query as Record<string, unknown>) };
    const rawBody = typeof req.body === 'string' ? req.body : req.body === undefined || req.body === null ? null : JSON.stringify(req.body);
    let body: unknown;
    try {
      body = rawBody ? JSON.parse(rawBody) : undefined;
    } catch {
      body = undefined; // IPN bodies are ignored anyway; a webhook without JSON is classified by its query
    }
    const c = classifyNotification(query, body);
    const headers: Record<string, string> = {};
    for (const h of KEPT_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    // the row as received; how it was judged is added when it is stored
    const received = { receivedAt, form: c.form, topic: c.rawTopic, resourceId: c.resourceId, query, body: rawBody, headers };

    const secret = deps.config.mercadopago.webhookSecret;
    let signatureOk: boolean | null = null;
    // A webhook that carries a signature must verify. An Orders API one without any is taken like
    // an IPN: Mercado Pago does not sign QR notifications on some sites, and nothing is released on
    // a notification's word anyway: the worker re-reads the order with our token. The legacy
    // topics keep their unsigned path, the IPN, so an unsigned webhook of theirs is refused.
    const unsignedOrder = c.topic === 'order' && headers['x-signature'] === undefined;
    if (c.form === 'webhook' && secret && !unsignedOrder) {
      const check = verifyWebhookSignatureAnyCase({
        secret,
        signatureHeader: headers['x-signature'],
        requestId: headers['x-request-id'],
        dataId: rawQueryParam(req.raw.url, 'data.id'),
        nowMs: receivedAt,
        toleranceSeconds: deps.config.mercadopago.signatureToleranceSeconds,
      });
      signatureOk = check.ok;
      if (!check.ok) {
        // Recorded for the audit trail, never processed.
        deps.store.insertNotification({ ...received, signatureOk: false, processedAt: receivedAt, outcome: `refused: ${check.reason}` });
        deps.logger.warn(
          { remote: req.ip, topic: c.rawTopic, resourceId: c.resourceId, reason: check.reason },
          `forged or stale webhook signature from ${req.ip} (${c.rawTopic ?? '?'} ${c.resourceId ?? '?'}): ${check.reason}; ignored`,
        );
        return reply.code(401).send({ error: { type: 'unauthorized', message: 'invalid webhook signature' } });
      }
    }

    const id = deps.store.insertNotification({ ...received, signatureOk, processedAt: null, outcome: null });
    deps.logger.info({ notificationId: id, form: c.form, topic: c.rawTopic, resourceId: c.resourceId }, `notification ${c.form} ${c.rawTopic ?? '?'} ${c.resourceId ?? '?'} stored`);
    // Processing is asynchronous (the worker's first step awaits the MP API); the row is on disk.
    deps.worker.submit({ id, topic: c.rawTopic, resourceId: c.resourceId });
    return reply.code(200).send({ ok: true });
  });
}
