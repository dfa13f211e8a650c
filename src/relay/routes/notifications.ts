import type { FastifyInstance } from 'fastify';
import type { Logger } from '../../runtime/log.js';
import type { RelayConfig } from '../config.js';
import type { RouteGuards } from '../limits.js';
import { checkResourceId, printableId } from '../notification-ids.js';
import { classifyNotification, verifyWebhookSignatureAnyCase, type NotificationWorker } from '../notifications.js';
import type { RelayStore } from '../store/index.js';

// POST /mp/notifications: store, start processing, answer 200 once the row is on disk. Mercado
// Pago retries for hours when we do not answer within ~22 s, and a crash between "answered" and
// "processed" is covered because the row is on disk by then (resumed at start-up).

export interface NotificationRouteDeps {
  store: RelayStore;
  worker: NotificationWorker;
  config: RelayConfig;
  logger: Logger;
  now: () => number;
  /** per-source limits and the aggregated refusal log (relay/limits.ts) */
  guards: RouteGuards;
}

const HOUR_MS = 3_600_000;

const KEPT_HEADERS = ['x-signature', 'x-request-id', 'user-agent', 'content-type', 'x-forwarded-for'];

/** The raw value of a query parameter as it appears in the URL (percent-decoded only). */
function rawQueryParam(url: string | undefined, name: string): string | undefined {
  const i = url?.indexOf('?') ?? -1;
  if (!url || i < 0) return undefined;
  return new URLSearchParams(url.slice(i + 1)).get(name) ?? undefined;
}

export function registerNotificationRoutes(app: FastifyInstance, deps: NotificationRouteDeps): void {
  const limits = deps.guards.limits;
  const refuse = (source: string, reason: string, message: string, fields: Record<string, unknown> = {}) => deps.guards.refusals.note(source, reason, message, fields);
  app.post('/mp/notifications', { bodyLimit: limits.bodyBytes.notifications, onRequest: deps.guards.notificationGate }, async (req, reply) => {
    const receivedAt = deps.now();
    const source = req.ip;
    const query = { ...(req.query as Record<string, unknown>) };
    const rawBody = typeof req.body === 'string' ? req.body : req.body === undefined || req.body === null ? null : JSON.stringify(req.body);
    let body: unknown;
    try {
      body = rawBody ? JSON.parse(rawBody) : undefined;
    } catch {
      body = undefined; // IPN bodies are ignored anyway; a webhook without JSON is classified by its query
    }
    const c = classifyNotification(query, body);
    // Refused requests are answered and logged (aggregated), never stored: storing them was how
    // a flood grew the database without limit.
    if (c.form === 'unknown') {
      refuse(source, 'not a notification', `request to the notification url from ${source} names no topic and no id: refused`);
      return reply.code(400).send({ error: { type: 'invalid', message: 'not a Mercado Pago notification: no topic/type and no id' } });
    }
    if (c.rawTopic !== null && !/^[A-Za-z0-9_.-]{1,64}$/.test(c.rawTopic)) {
      refuse(source, 'invalid topic', `notification from ${source} refused: topic ${printableId(c.rawTopic)} is not one Mercado Pago sends`);
      return reply.code(400).send({ error: { type: 'invalid', message: 'the topic/type must be letters, digits, "_", "-" or "." (at most 64)' } });
    }
    const idCheck = checkResourceId(c.topic, c.resourceId);
    if (!idCheck.ok) {
      refuse(source, 'invalid id', `notification from ${source} refused: ${idCheck.reason}`, { topic: c.rawTopic === null ? null : printableId(c.rawTopic) });
      return reply.code(400).send({ error: { type: 'invalid', message: idCheck.reason } });
    }
    const headers: Record<string, string> = {};
    for (const h of KEPT_HEADERS) {
      const v = req.headers[h];
      if (typeof v === 'string') headers[h] = v;
    }
    // the row as received; how it was judged is added when it is stored
    const received = { receivedAt, form: c.form, topic: c.rawTopic, resourceId: c.resourceId, query, body: rawBody, headers, source };

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
        refuse(source, 'bad signature', `forged or stale webhook signature from ${source} (${c.topic ?? '?'} ${c.resourceId ?? '?'}): ${check.reason}; ignored`, { resourceId: c.resourceId });
        return reply.code(401).send({ error: { type: 'unauthorized', message: 'invalid webhook signature' } });
      }
    }

    // A cap on what one source can make us store; Mercado Pago retries later what it is refused.
    // (Two requests racing may both pass at the edge: the cap is a bound on storage, not an exact count.)
    if ((await deps.store.countNotificationsFrom(source, receivedAt - HOUR_MS)) >= limits.notifications.storedPerSourcePerHour) {
      refuse(source, 'over the stored cap', `notification from ${source} refused: ${limits.notifications.storedPerSourcePerHour} already stored from it in the last hour (limits.notifications.storedPerSourcePerHour)`);
      return reply.code(429).header('retry-after', '600').send({ error: { type: 'rate_limited', message: 'too many notifications from this address; retry later' } });
    }

    const id = await deps.store.insertNotification({ ...received, signatureOk, processedAt: null, outcome: null });
    deps.logger.info({ notificationId: id, form: c.form, topic: c.rawTopic, resourceId: c.resourceId }, `notification ${c.form} ${c.rawTopic ?? '?'} ${c.resourceId ?? '?'} stored`);
    // Processing starts now (the worker's first step awaits the MP API), before the row is on
    // disk: nothing it releases can outrun the row, since the release is a synced transaction
    // and that fsync flushes the log with the row in it.
    deps.worker.submit({ id, topic: c.rawTopic, resourceId: c.resourceId });
    // Only a row on disk is answered 200: Mercado Pago stops sending what we answered.
    await deps.store.durable();
    return reply.code(200).send({ ok: true });
  });
}
