import type { MercadoPagoApi, MpMerchantOrder } from '../../mercadopago/types.js';
import type { PaymentState, SearchWindow, WindowPage } from './types.js';

// The legacy models (unattended, attended, dynamic) all end in a merchant order: Mercado Pago's
// record of what was paid for our external_reference. One reader serves the three.

export function fromMerchantOrder(mo: MpMerchantOrder): PaymentState {
  const state: PaymentState = {
    kind: 'merchant_order',
    mpId: String(mo.id),
    status: mo.status,
    externalReference: mo.external_reference ?? null,
    complete: mo.status === 'closed',
    payments: (mo.payments ?? []).map((p) => ({ id: String(p.id), status: p.status, amount: p.transaction_amount, currency: p.currency_id })),
  };
  if (mo.collector?.id !== undefined && mo.collector.id !== null) state.collectorId = String(mo.collector.id);
  return state;
}

export async function searchMerchantOrders(mp: MercadoPagoApi, externalReference: string): Promise<PaymentState[]> {
  const page = await mp.searchMerchantOrders({ external_reference: externalReference });
  return (page.elements ?? []).map(fromMerchantOrder);
}

/** One page of every merchant order created in the window (the contingency search's batch). */
export async function searchMerchantOrderWindow(mp: MercadoPagoApi, w: SearchWindow): Promise<WindowPage> {
  const page = await mp.searchMerchantOrders({
    date_created_from: new Date(w.fromMs).toISOString(),
    date_created_to: new Date(w.toMs).toISOString(),
    limit: w.limit,
    offset: w.offset,
  });
  const elements = page.elements ?? [];
  return { states: elements.map(fromMerchantOrder), total: page.total, size: elements.length };
}

/** A merchant order by id; null when it does not exist for our token. */
export async function readMerchantOrder(mp: MercadoPagoApi, id: string): Promise<PaymentState | null> {
  try {
    return fromMerchantOrder(await mp.getMerchantOrder(id));
  } catch (err) {
    if (isNotFound(err)) return null;
    throw err;
  }
}

/** Mercado Pago answered 404 (by status, so wrapped API objects in tests count too). */
export function isNotFound(err: unknown): boolean {
  const e = err as { name?: string; status?: number; statusCode?: number } | null;
  return !!e && (e.name === 'MpNotFoundError' || e.status === 404 || e.statusCode === 404);
}
