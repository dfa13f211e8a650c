import { createHash, timingSafeEqual } from 'node:crypto';
import type { FastifyInstance, FastifyReply, FastifyRequest } from 'fastify';
import { toDecimalNumber } from '../../core/money.js';
import type { Logger } from '../../runtime/log.js';
import type { RelayConfig } from '../config.js';
import type { RouteGuards } from '../limits.js';
import { printableId } from '../notification-ids.js';
import type { OrderService } from '../orders.js';
import type { Kiosk, OrderRecord, RelayStore } from '../store.js';

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
}

/** Compares hashes so the comparison time depends on neither the key nor its length. */
function sameKey(given: string, expected: string): boolean {
  const a = createHash('sha256').update(given).digest();
  const b = createHash('sha256').update(expected).digest();
  return timingSafeEqual(a, b);
}

export function registerUnattendedRoutes(app: FastifyInstance, deps: UnattendedDeps): void {
  const notificationUrl = `${deps.config.publicUrl}/mp/notifications`;

  const handler = async (req: FastifyRequest, reply: FastifyReply) => {
    const { posExternalId } = req.params as { posExternalId: string };
    const q = req.query as Record<string, unknown>;
    const key = typeof q.key === 'string' ? q.key : '';
    const kiosk = deps.store.getKioskByPos(posExternalId);
    // Always compare, even for an unknown POS, so timing does not reveal which POS ids exist.
    const keyOk = sameKey(key, kiosk?.posKey ?? 'no-such-pos');
    if (!kiosk || !keyOk) {
      // aggregated per source: a prober must not be able to fill the disk with warnings
      deps.guards.refusals.note(
        req.ip,
        kiosk ? 'wrong POS key' : 'unknown POS',
        `POS url called with ${kiosk ? 'a wrong key' : 'an unknown POS'} (${printableId(posExternalId)}) from ${req.ip}: refused`,
      );
      // Same answer for both cases: an attacker learns nothing about which POS ids exist.
      return reply.code(400).send({ error: { type: 'invalid', message: 'unknown point of sale or wrong key' } });
    }

    const offer = deps.orders.offerFor(kiosk);
    if (offer.kind === 'none') {
      if (kiosk.generation === 'v1') {
        // v1 has no "just paid" state: "unavailable" is the closest (no order to serve).
        const type = offer.reason === 'kiosk_offline' ? 'timeout' : 'unavailable';
        return reply.code(400).send({ error: { type } });
      }
      const detail = offer.reason === 'just_paid' ? 'notihing_to_pay' : 'Waiting_for_order'; // MP's spelling
      return reply.code(202).send({ status: { status_detail: detail } });
    }

    deps.logger.info({ orderId: offer.order.id, kioskId: kiosk.id, generation: kiosk.generation }, `POS ${posExternalId}: serving order ${offer.order.id}`);
    return kiosk.generation === 'v1'
      ? reply.code(200).send(v1Order(deps.config, kiosk, offer.order, notificationUrl))
      : reply.code(200).header('order-version', '2').send(v2Order(kiosk, offer.order, notificationUrl));
  };

  const opts = { bodyLimit: deps.guards.limits.bodyBytes.pos, onRequest: deps.guards.posGate };
  app.get('/mp/pos/:posExternalId', opts, handler);
  // Mercado Pago does not document the method of the poll: answer POST the same way.
  app.post('/mp/pos/:posExternalId', opts, handler);
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
