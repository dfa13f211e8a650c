import type { MercadoPagoApi } from '../mercadopago/types.js';
import { Pacer, type BucketSpec } from '../runtime/rate-limit.js';

// A view of the Mercado Pago API whose reads take turns at a fixed rate. Notifications and the
// contingency search each get their own view, so a flood of one cannot use up the other's calls
// and neither can make us hammer Mercado Pago (which answers 429 and may block the token).
// Reads are recognised by name (get…, search…), so reads added to MercadoPagoApi later (Orders
// API) are paced too; everything else (refunds, provisioning) passes straight through.

export interface PacedApi {
  api: MercadoPagoApi;
  pacer: Pacer;
  close(): void;
}

export function pacedReads(mp: MercadoPagoApi, spec: BucketSpec): PacedApi {
  const pacer = new Pacer(spec);
  const api = new Proxy(mp, {
    get(target, prop, receiver) {
      const value = Reflect.get(target, prop, receiver) as unknown;
      if (typeof value !== 'function') return value;
      const fn = value as (...args: unknown[]) => unknown;
      if (typeof prop === 'string' && /^(get|search)/.test(prop)) {
        return async (...args: unknown[]) => {
          await pacer.turn();
          return fn.apply(target, args);
        };
      }
      return fn.bind(target);
    },
  });
  return { api, pacer, close: () => pacer.close() };
}
