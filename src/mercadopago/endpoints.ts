// Mercado Pago endpoints as templates ("GET /merchant_orders/:id"), for metrics. A metric label
// must come from a small fixed set: a raw path carries order, payment and POS ids, and one label
// value per id would grow the metrics without bound (Prometheus keeps a series per value). Every
// path the client calls is listed here; anything else is "other" so an unlisted call still counts.

/** What the client reports after each HTTP attempt (a retried call reports each attempt). */
export interface MpCallReport {
  method: string;
  /** the path as called, without the query string */
  path: string;
  /** wall time of the attempt, seconds */
  seconds: number;
  /** the HTTP status when Mercado Pago answered */
  status?: number;
  /** why there was no answer */
  failure?: 'timeout' | 'network';
}

export type MpCallObserver = (call: MpCallReport) => void;

/** Path templates of the endpoints in client.ts; `:x` matches one path segment. */
const TEMPLATES: readonly string[] = [
  '/merchant_orders/search',
  '/merchant_orders/:id',
  '/v1/payments/:id/refunds',
  '/v1/payments/:id',
  '/users/:userId/stores',
  '/pos',
  '/pos/:id',
  '/instore/qr/seller/collectors/:userId/stores/:externalStoreId/pos/:externalPosId/orders',
  '/instore/qr/seller/collectors/:userId/pos/:externalPosId/orders',
  '/mpmobile/instore/qr/:userId/:externalPosId',
  '/instore/orders/qr/seller/collectors/:userId/pos/:externalPosId/qrs',
  '/v1/orders',
  '/v1/orders/:id',
  '/v1/orders/:id/cancel',
  '/v1/orders/:id/refund',
];

const PARSED = TEMPLATES.map((t) => ({ template: t, parts: t.split('/').slice(1) }));

/**
 * "GET /merchant_orders/:id" for "GET /merchant_orders/123?x=1". Literal segments win over
 * placeholders ("/merchant_orders/search" is not "/merchant_orders/:id"); an unknown path is
 * "<METHOD> other".
 */
export function mpEndpointTemplate(method: string, path: string): string {
  const clean = path.split(/[?#]/, 1)[0]!.replace(/\/+$/, '');
  const parts = clean.split('/').slice(1);
  let best: { template: string; literals: number } | undefined;
  for (const t of PARSED) {
    if (t.parts.length !== parts.length) continue;
    let literals = 0;
    let ok = true;
    for (let i = 0; i < parts.length; i++) {
      const want = t.parts[i]!;
      if (want.startsWith(':')) {
        if (parts[i] === '') ok = false;
      } else if (want === parts[i]) literals++;
      else ok = false;
      if (!ok) break;
    }
    if (ok && (!best || literals > best.literals)) best = { template: t.template, literals };
  }
  return `${method.toUpperCase()} ${best ? best.template : 'other'}`;
}
