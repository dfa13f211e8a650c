import { refundNeedsPerson } from '../../core/refund.js';
import type { FastifyInstance } from 'fastify';
import type { RelayStore } from '../store/index.js';
import { KeyedRateLimiter } from '../../runtime/rate-limit.js';
import { orderOfReceiptToken, receiptLang, receiptStepOf, renderReceiptPage, type ReceiptLang, type ReceiptView } from '../console/receipt-page.js';

// GET /r/<orderId>.<mac>: the customer's receipt page (relay/console/receipt-page.ts). Public and
// unauthenticated by design (the MAC is the key), so it is rate-limited per source and answers
// the same "not found" page for a bad MAC and an unknown order.

export interface ReceiptRouteDeps {
  store: RelayStore;
  secret: string;
  /** the page's language when the browser asks for none we have: the catalog's site */
  defaultLang: ReceiptLang;
  timeZone: string;
  /** per source address: pages per second and burst */
  perSecond?: number;
  burst?: number;
}

export function registerReceiptRoute(app: FastifyInstance, d: ReceiptRouteDeps): void {
  const limiter = new KeyedRateLimiter({ perSecond: d.perSecond ?? 2, burst: d.burst ?? 10 });
  app.get<{ Params: { token: string } }>('/r/:token', async (req, reply) => {
    void reply
      .header('cache-control', 'no-store')
      .header('x-robots-tag', 'noindex')
      .header('referrer-policy', 'no-referrer')
      .header('content-security-policy', "default-src 'none'; style-src 'unsafe-inline'")
      .type('text/html; charset=utf-8');
    if (!limiter.tryTake(req.ip)) return reply.code(429).header('retry-after', '5').send('too many requests: try again in a few seconds');
    const lang = receiptLang(req.headers['accept-language'], d.defaultLang);
    const orderId = orderOfReceiptToken(d.secret, req.params.token);
    const order = orderId ? await d.store.getOrder(orderId) : undefined;
    if (!order) return reply.code(404).send(renderReceiptPage(undefined, lang, d.timeZone));
    const events = await d.store.orderEvents(order.id);
    const refunds = await d.store.refundsOf(order.id);
    const view: ReceiptView = {
      orderId: order.id,
      product: order.title,
      amount: order.amount,
      currency: order.currency,
      state: order.state,
      steps: events.flatMap((e) => {
        const kind = receiptStepOf(e.event);
        return kind ? [{ kind, at: e.at }] : [];
      }),
      // each refund with its amount (a partial one is known from the start); a refused one is not on its way
      refunds: refunds
        .filter((r) => !refundNeedsPerson(r.status))
        .map((r) => ({ amount: r.amount ?? r.requestedAmount, currency: r.currency ?? order.currency, requestedAt: r.requestedAt, doneAt: r.status === 'approved' || r.status === 'external' ? r.completedAt ?? r.requestedAt : null })),
    };
    return reply.send(renderReceiptPage(view, lang, d.timeZone));
  });
}
