import type { KioskConsole } from '../../kiosk-console.js';
import type { OrderRecord, RelayStore } from '../../store/index.js';

// What the console page shows, computed from the store and the fleet status: one JSON snapshot
// (sent on every change through /console/events), an order's timeline, and sales.

export type TimelineSource = 'kiosk' | 'mercadopago' | 'operator' | 'relay';

export interface TimelineEntry {
  at: number;
  /** selected, offered, paid, dispensing, dispensed, refunding, refunded, ... or the raw event */
  step: string;
  source: TimelineSource;
  /** who: the kiosk id, the payment/refund id, the operator */
  who: string;
  detail: string | null;
}

/** What each order event means on the timeline, and who caused it. */
const EVENT_STEPS: Record<string, { step: string; source: TimelineSource }> = {
  created: { step: 'selected', source: 'kiosk' },
  rejected: { step: 'rejected', source: 'relay' },
  mp_offered: { step: 'offered', source: 'mercadopago' },
  payment_verified: { step: 'paid', source: 'mercadopago' },
  vend_ok: { step: 'dispensed', source: 'kiosk' },
  vend_failed: { step: 'vend failed', source: 'kiosk' },
  cancel: { step: 'cancelled', source: 'kiosk' },
  expire: { step: 'expired', source: 'relay' },
  late_payment: { step: 'late payment', source: 'mercadopago' },
  refund_done: { step: 'refunded', source: 'mercadopago' },
  operator_refund: { step: 'refunding', source: 'operator' },
  vend_overdue: { step: 'vend overdue', source: 'relay' },
};

export async function orderTimeline(store: RelayStore, order: OrderRecord): Promise<TimelineEntry[]> {
  const out: TimelineEntry[] = [];
  for (const e of await store.orderEvents(order.id)) {
    const known = EVENT_STEPS[e.event];
    out.push({ at: e.at, step: known?.step ?? e.event, source: known?.source ?? (e.event.startsWith('mp_') ? 'mercadopago' : 'relay'), who: known?.source === 'kiosk' ? order.kioskId : known?.source === 'mercadopago' ? 'Mercado Pago' : 'relay', detail: e.detail });
    // paid means the kiosk was told to dispense: the dispensing step starts then
    if (e.event === 'payment_verified') out.push({ at: e.at, step: 'dispensing', source: 'relay', who: order.kioskId, detail: 'order.paid sent to the kiosk' });
  }
  for (const r of await store.refundsOf(order.id)) {
    out.push({ at: r.requestedAt, step: 'refund requested', source: 'relay', who: `payment ${r.paymentId}`, detail: r.requestedAmount !== null ? `${r.reason} ${r.requestedAmount} ${order.currency}` : r.reason });
    if (r.completedAt !== null) out.push({ at: r.completedAt, step: `refund ${r.status}`, source: 'mercadopago', who: r.mpRefundId ? `refund ${r.mpRefundId}` : `payment ${r.paymentId}`, detail: r.amount !== null ? `${r.amount} ${r.currency ?? ''}`.trim() : null });
  }
  for (const a of await store.operatorAuditOf(order.id)) {
    out.push({ at: a.at, step: a.action === 'refund.requested' ? 'refund awaiting approval' : a.action, source: 'operator', who: a.actor, detail: a.reason });
  }
  // stable: equal times keep the order written above (event, then what followed from it)
  return out.map((e, i) => ({ e, i })).sort((x, y) => x.e.at - y.e.at || x.i - y.i).map((x) => x.e);
}

export interface SalesRow {
  day: string;
  kioskId: string;
  sku: string;
  title: string;
  count: number;
  amount: number;
  currency: string;
}

/** Dispensed (vended) sales per UTC day, kiosk and product, from the newest `limit` orders. */
export async function salesRows(store: RelayStore, limit = 5000): Promise<SalesRow[]> {
  const rows = new Map<string, SalesRow>();
  for (const o of await store.recentOrders({ limit, state: 'vended' })) {
    const day = new Date(o.paidAt ?? o.createdAt).toISOString().slice(0, 10);
    const key = `${day}|${o.kioskId}|${o.sku}|${o.currency}`;
    const r = rows.get(key) ?? { day, kioskId: o.kioskId, sku: o.sku, title: o.title, count: 0, amount: 0, currency: o.currency };
    r.count += o.quantity;
    r.amount += o.amount;
    rows.set(key, r);
  }
  return [...rows.values()].sort((a, b) => a.day.localeCompare(b.day) || a.kioskId.localeCompare(b.kioskId) || a.sku.localeCompare(b.sku));
}

function csvField(v: string | number): string {
  const s = String(v);
  // a leading = + - @ would be a formula in a spreadsheet
  const safe = /^[=+\-@]/.test(s) ? `'${s}` : s;
  return /[",\n]/.test(safe) ? `"${safe.replace(/"/g, '""')}"` : safe;
}

export function salesCsv(rows: SalesRow[]): string {
  const lines = ['day,kiosk,sku,product,count,amount_minor,currency'];
  for (const r of rows) lines.push([r.day, r.kioskId, r.sku, r.title, r.count, r.amount, r.currency].map(csvField).join(','));
  return `${lines.join('\n')}\n`;
}

export interface ConsoleState {
  at: number;
  kiosks: Array<{
    id: string;
    model: string;
    online: boolean;
    lastSeen: number | null;
    screen: string | null;
    state: string | null;
    agentVersion: string | null;
    service: unknown;
    stock: Array<{ slot: number; sku: string; count: number; full: number; jammed: boolean }>;
    faults: Array<{ device: string; kind: string; message: string; at: number }>;
    prices: Array<{ sku: string; price: number; currency: string }>;
    /** the kiosk's price commands and when it applied them */
    priceCommands: Array<{ id: string; kind: string; state: string; issuedAt: number; appliedAt: number | null; by: string }>;
  }>;
  orders: Array<Pick<OrderRecord, 'id' | 'kioskId' | 'sku' | 'title' | 'amount' | 'currency' | 'state' | 'createdAt' | 'updatedAt' | 'needsReview'> & { awaitingApproval: boolean }>;
  review: Array<Pick<OrderRecord, 'id' | 'kioskId' | 'title' | 'amount' | 'currency' | 'state' | 'needsReview' | 'createdAt'>>;
  sales: SalesRow[];
}

export async function consoleState(store: RelayStore, kc: KioskConsole, now: number): Promise<ConsoleState> {
  const fleet = new Map((await kc.fleet.kiosks()).map((k) => [k.kioskId, k]));
  const kiosks: ConsoleState['kiosks'] = [];
  for (const k of await store.listKiosks()) {
    const f = fleet.get(k.id);
    const s = f?.status ?? null;
    const cmds = (await kc.commands.list(k.id, 20)).filter((c) => c.kind === 'price.set' || c.kind === 'catalog.set');
    kiosks.push({
      id: k.id,
      model: s?.paymentModel ?? k.paymentModel,
      online: f?.online ?? false,
      // online: it is seen now (the page says so); offline: when it went away, or its last report
      lastSeen: f?.online ? (f.statusReceivedAt ?? f.since) : (f?.since ?? f?.statusReceivedAt ?? null),
      screen: s?.screen ?? null,
      state: s?.state ?? null,
      agentVersion: s?.agentVersion ?? null,
      service: s?.service ?? null,
      stock: s?.stock ?? [],
      faults: (s?.faults.active ?? []).map((x) => ({ device: x.device, kind: x.kind, message: x.message, at: x.at })),
      prices: s?.prices ?? [],
      priceCommands: cmds.map((c) => ({ id: c.id, kind: c.kind, state: c.state, issuedAt: c.issuedAt, appliedAt: c.state === 'applied' ? (c.kioskAt ?? c.answeredAt) : null, by: c.issuedBy })),
    });
  }
  const recent = await store.recentOrders({ limit: 50 });
  const orders: ConsoleState['orders'] = [];
  for (const o of recent) {
    const awaiting = (await store.operatorAuditOf(o.id)).reduce((w, a) => (a.action === 'refund.requested' ? true : a.action === 'refund' || a.action === 'refund.partial' || a.action === 'refund.approved' ? false : w), false);
    orders.push({ id: o.id, kioskId: o.kioskId, sku: o.sku, title: o.title, amount: o.amount, currency: o.currency, state: o.state, createdAt: o.createdAt, updatedAt: o.updatedAt, needsReview: o.needsReview, awaitingApproval: awaiting });
  }
  const review = (await store.ordersNeedingReview()).map((o) => ({ id: o.id, kioskId: o.kioskId, title: o.title, amount: o.amount, currency: o.currency, state: o.state, needsReview: o.needsReview, createdAt: o.createdAt }));
  return { at: now, kiosks, orders, review, sales: await salesRows(store) };
}
