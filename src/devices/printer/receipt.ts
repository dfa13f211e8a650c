import { formatMoney, isCurrency } from '../../core/money.js';
import { EscPos, type Charset, type CutMode } from './escpos.js';

// The customer's receipt after a vend: product, amount, the Mercado Pago payment id (what the
// customer's app shows and what support searches for) and a QR of the order reference, so a
// technician or support agent can scan the paper instead of typing the id.

export interface Receipt {
  orderId: string;
  product: string;
  /** minor units */
  amount: number;
  currency: string;
  paymentId: string | null;
  /** already formatted local time, e.g. "2025-03-01 14:05" */
  time: string;
  kioskId: string;
  /** the customer's receipt page the relay sent (order.paid receiptUrl): the QR opens it; absent: qrText */
  link?: string;
}

export interface ReceiptLayout {
  /** characters per line: 32 on 58 mm paper, 48 on 80 mm (font A) */
  width: number;
  charset: Charset;
  codeTable?: number;
  /** printed centred and bold at the top, e.g. the shop's name */
  header: string[];
  /** the QR content when the relay sent no receipt link; "{orderId}" is replaced by the order id */
  qrText: string;
  qrModuleSize: number;
  cut: CutMode;
  locale: string;
}

interface Labels {
  product: string;
  total: string;
  payment: string;
  order: string;
  kiosk: string;
  thanks: string;
  test: string;
}

const LABELS: Record<'es' | 'pt' | 'en', Labels> = {
  es: { product: 'Producto', total: 'Total', payment: 'Pago Mercado Pago', order: 'Pedido', kiosk: 'Kiosco', thanks: '¡Gracias por tu compra!', test: 'PRUEBA DE IMPRESORA' },
  pt: { product: 'Produto', total: 'Total', payment: 'Pagamento Mercado Pago', order: 'Pedido', kiosk: 'Quiosque', thanks: 'Obrigado pela compra!', test: 'TESTE DE IMPRESSORA' },
  en: { product: 'Product', total: 'Total', payment: 'Mercado Pago payment', order: 'Order', kiosk: 'Kiosk', thanks: 'Thank you!', test: 'PRINTER TEST' },
};

export function receiptLabels(locale: string): Labels {
  const lang = locale.slice(0, 2);
  return lang === 'pt' || lang === 'en' ? LABELS[lang] : LABELS.es;
}

/** Word wrap to `width` columns; a word longer than a line is cut. */
export function wrap(text: string, width: number): string[] {
  const out: string[] = [];
  let cur = '';
  for (const word of text.split(/\s+/).filter(Boolean)) {
    let w = word;
    while (w.length > width) {
      if (cur) out.push(cur);
      cur = '';
      out.push(w.slice(0, width));
      w = w.slice(width);
    }
    if (!cur) cur = w;
    else if (cur.length + 1 + w.length <= width) cur += ` ${w}`;
    else {
      out.push(cur);
      cur = w;
    }
  }
  if (cur) out.push(cur);
  return out.length ? out : [''];
}

/** "label ........ value" in one line of `width`; a value too long goes on its own line. */
export function twoColumns(label: string, value: string, width: number): string[] {
  if (label.length + 1 + value.length <= width) return [label + ' '.repeat(width - label.length - value.length) + value];
  return [label, ' '.repeat(Math.max(0, width - value.length)) + value];
}

export function money(amount: number, currency: string): string {
  return isCurrency(currency) ? formatMoney(amount, currency) : `${amount} ${currency}`;
}

export function qrContent(template: string, orderId: string): string {
  return template.split('{orderId}').join(orderId);
}

/** The bytes of one receipt. */
export function renderReceipt(r: Receipt, l: ReceiptLayout, opts: { test?: boolean } = {}): Buffer {
  const t = receiptLabels(l.locale);
  const p = new EscPos({ charset: l.charset, ...(l.codeTable !== undefined ? { codeTable: l.codeTable } : {}) });
  const rule = '-'.repeat(l.width);
  p.init().align('center');
  if (opts.test) p.bold(true).line(t.test).bold(false);
  if (l.header.length) {
    p.bold(true);
    for (const h of l.header) for (const w of wrap(h, l.width)) p.line(w);
    p.bold(false);
  }
  p.line(r.time).align('left').line(rule);
  for (const w of wrap(r.product, l.width)) p.line(w);
  p.bold(true);
  for (const s of twoColumns(t.total, money(r.amount, r.currency), l.width)) p.line(s);
  p.bold(false).line(rule);
  if (r.paymentId) for (const s of twoColumns(t.payment, r.paymentId, l.width)) p.line(s);
  for (const s of twoColumns(t.order, r.orderId, l.width)) p.line(s);
  for (const s of twoColumns(t.kiosk, r.kioskId, l.width)) p.line(s);
  // the relay's receipt page when it sent one (the customer sees what happened, refunds included)
  p.align('center').qr(r.link ?? qrContent(l.qrText, r.orderId), { moduleSize: l.qrModuleSize, level: 'M' });
  p.line(t.thanks).feed(3).cut(l.cut);
  return p.bytes();
}

/** Local time as "YYYY-MM-DD HH:MM", written out so every Pi image prints the same form. */
export function receiptTime(ms: number): string {
  const d = new Date(ms);
  const p = (n: number) => String(n).padStart(2, '0');
  return `${d.getFullYear()}-${p(d.getMonth() + 1)}-${p(d.getDate())} ${p(d.getHours())}:${p(d.getMinutes())}`;
}
