import { createHmac, timingSafeEqual } from 'node:crypto';
import { formatMoney, isCurrency } from '../../core/money.js';
import type { OrderState } from '../../core/relay-order.js';

// The page a customer opens from the receipt's QR: what happened to their purchase, in their
// language, with no personal data (no payer, no card, no e-mail; the product, the amount, the
// times). The link is /r/<orderId>.<mac>: the MAC (HMAC-SHA256 of the order id with the relay's
// receipt secret, 128 bits kept) makes it unguessable even though order ids appear in logs, and
// lets the relay check it without storing anything.

export type ReceiptLang = 'es' | 'pt' | 'en';

const MAC_CHARS = 22; // 128 bits in base64url

export function receiptToken(secret: string, orderId: string): string {
  return `${orderId}.${createHmac('sha256', secret).update(orderId).digest('base64url').slice(0, MAC_CHARS)}`;
}

/** The order id a token stands for, or undefined if it was not made with `secret`. */
export function orderOfReceiptToken(secret: string, token: string): string | undefined {
  const dot = token.lastIndexOf('.');
  if (dot <= 0 || token.length > 200) return undefined;
  const orderId = token.slice(0, dot);
  const want = Buffer.from(receiptToken(secret, orderId));
  const got = Buffer.from(token);
  return want.length === got.length && timingSafeEqual(want, got) ? orderId : undefined;
}

/** Picks the page language from Accept-Language, else the catalog's site language. */
export function receiptLang(acceptLanguage: string | undefined, fallback: ReceiptLang): ReceiptLang {
  for (const part of (acceptLanguage ?? '').split(',')) {
    const tag = part.split(';')[0]!.trim().toLowerCase().slice(0, 2);
    if (tag === 'es' || tag === 'pt' || tag === 'en') return tag;
  }
  return fallback;
}

export interface ReceiptView {
  orderId: string;
  product: string;
  amount: number;
  currency: string;
  state: OrderState;
  /** history, oldest first: the relay's own events of the order */
  steps: Array<{ kind: ReceiptStep; at: number }>;
  /** refunds of the order: requested (on its way) or done */
  refunds: Array<{ amount: number | null; currency: string; requestedAt: number; doneAt: number | null }>;
}

export type ReceiptStep = 'selected' | 'paid' | 'dispensed' | 'vend_failed' | 'cancelled' | 'expired' | 'late_payment';

const TEXT: Record<ReceiptLang, Record<ReceiptStep | 'title' | 'refund_pending' | 'refund_done' | 'status' | 'total' | 'order' | 'none', string>> = {
  es: {
    title: 'Tu compra',
    selected: 'Elegiste el producto',
    paid: 'Pago recibido',
    dispensed: 'Producto entregado',
    vend_failed: 'La máquina no pudo entregar el producto',
    cancelled: 'Compra cancelada',
    expired: 'El tiempo para pagar terminó',
    late_payment: 'Pago recibido después de cancelar',
    refund_pending: 'Devolución en camino',
    refund_done: 'Dinero devuelto',
    status: 'Estado',
    total: 'Total',
    order: 'Pedido',
    none: 'No encontramos esta compra.',
  },
  pt: {
    title: 'Sua compra',
    selected: 'Você escolheu o produto',
    paid: 'Pagamento recebido',
    dispensed: 'Produto entregue',
    vend_failed: 'A máquina não conseguiu entregar o produto',
    cancelled: 'Compra cancelada',
    expired: 'O tempo para pagar terminou',
    late_payment: 'Pagamento recebido depois do cancelamento',
    refund_pending: 'Estorno a caminho',
    refund_done: 'Dinheiro devolvido',
    status: 'Situação',
    total: 'Total',
    order: 'Pedido',
    none: 'Não encontramos esta compra.',
  },
  en: {
    title: 'Your purchase',
    selected: 'You chose the product',
    paid: 'Payment received',
    dispensed: 'Product delivered',
    vend_failed: 'The machine could not deliver the product',
    cancelled: 'Purchase cancelled',
    expired: 'The time to pay ran out',
    late_payment: 'Payment received after the cancel',
    refund_pending: 'Refund on its way',
    refund_done: 'Money returned',
    status: 'Status',
    total: 'Total',
    order: 'Order',
    none: 'We could not find this purchase.',
  },
};

const LOCALE: Record<ReceiptLang, string> = { es: 'es-AR', pt: 'pt-BR', en: 'en-US' };

/** the currency's own style (symbol, separators): the amount reads as on the kiosk's screen */
function money(minor: number, currency: string): string {
  return isCurrency(currency) ? formatMoney(minor, currency) : `${minor} ${currency}`;
}

function esc(s: string): string {
  return s.replace(/[&<>"']/g, (c) => `&#${c.charCodeAt(0)};`);
}

/** The order's events as the customer's steps (only the ones a customer cares about). */
export function receiptStepOf(event: string): ReceiptStep | undefined {
  switch (event) {
    case 'created':
      return 'selected';
    case 'payment_verified':
      return 'paid';
    case 'vend_ok':
      return 'dispensed';
    case 'vend_failed':
      return 'vend_failed';
    case 'cancel':
      return 'cancelled';
    case 'expire':
      return 'expired';
    case 'late_payment':
      return 'late_payment';
    default:
      return undefined;
  }
}

export function renderReceiptPage(view: ReceiptView | undefined, lang: ReceiptLang, timeZone: string): string {
  const t = TEXT[lang];
  const when = new Intl.DateTimeFormat(LOCALE[lang], { timeZone, dateStyle: 'short', timeStyle: 'short' });
  const body = !view
    ? `<p>${esc(t.none)}</p>`
    : `<h2>${esc(view.product)}</h2>
<p class="total">${esc(t.total)}: <b>${esc(money(view.amount, view.currency))}</b></p>
<ol class="timeline">
${[
  ...view.steps.map((s) => ({ at: s.at, text: t[s.kind], bad: s.kind === 'vend_failed' || s.kind === 'late_payment' })),
  ...view.refunds.flatMap((r) => [
    ...(r.doneAt === null ? [{ at: r.requestedAt, text: `${t.refund_pending}${r.amount !== null ? `: ${money(r.amount, r.currency)}` : ''}`, bad: false }] : []),
    ...(r.doneAt !== null
      ? [{ at: r.doneAt, text: `${t.refund_done}${r.amount !== null ? `: ${money(r.amount, r.currency)}` : ''}`, bad: false }]
      : []),
  ]),
]
  .sort((a, b) => a.at - b.at)
  .map((s) => `<li${s.bad ? ' class="bad"' : ''}><time>${esc(when.format(new Date(s.at)))}</time> ${esc(s.text)}</li>`)
  .join('\n')}
</ol>
<p class="ref">${esc(t.order)}: <code>${esc(view.orderId)}</code></p>`;
  return `<!doctype html>
<html lang="${lang}"><head><meta charset="utf-8"><meta name="viewport" content="width=device-width,initial-scale=1">
<meta name="robots" content="noindex"><title>${esc(t.title)}</title>
<style>body{font-family:system-ui,sans-serif;max-width:32rem;margin:1rem auto;padding:0 1rem;color:#222}
h1{font-size:1.3rem}ol{list-style:none;padding:0}li{padding:.5rem 0;border-bottom:1px solid #eee}li.bad{color:#a40}
time{color:#666;font-size:.9rem;display:block}.ref{color:#666;font-size:.85rem}</style></head>
<body><h1>${esc(t.title)}</h1>
${body}
</body></html>`;
}
