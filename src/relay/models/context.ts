import type { MercadoPagoApi } from '../../mercadopago/types.js';
import type { RelayConfig } from '../config.js';

/** What every model needs: the API, the seller's ids, where notifications go, the clock. */
export interface ModelContext {
  mp: MercadoPagoApi;
  config: RelayConfig;
  now: () => number;
}

export function notificationUrl(config: RelayConfig): string {
  return `${config.publicUrl}/mp/notifications`;
}

/** "<title> (kiosk <id>, slot <n>)": what the customer's app shows as the description. */
export function describeOrder(order: { title: string; slot: number | null }, kioskId: string): string {
  return `${order.title} (kiosk ${kioskId}${order.slot ? `, slot ${order.slot}` : ''})`;
}

/** ISO 8601 with an explicit offset, as Mercado Pago's instore APIs show `expiration_date`. */
export function isoWithOffset(ms: number): string {
  return new Date(ms).toISOString().replace('Z', '+00:00');
}
