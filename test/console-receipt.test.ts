import { describe, expect, it } from 'vitest';
import { orderOfReceiptToken, receiptLang, receiptStepOf, receiptToken, renderReceiptPage, type ReceiptView } from '../src/relay/console/receipt-page.js';

// The customer's receipt page, rendered: the link cannot be guessed or altered, the page speaks the
// customer's language, tells a refund on its way from a refund done, and carries no personal data.

describe('receipt link', () => {
  it('round-trips, and any other order id or a changed MAC is refused', () => {
    const t = receiptToken('secret-1', 'ord_abc');
    expect(t).toMatch(/^ord_abc\.[A-Za-z0-9_-]{22}$/);
    expect(orderOfReceiptToken('secret-1', t)).toBe('ord_abc');
    expect(orderOfReceiptToken('secret-2', t)).toBeUndefined();
    expect(orderOfReceiptToken('secret-1', t.replace('ord_abc', 'ord_abd'))).toBeUndefined();
    expect(orderOfReceiptToken('secret-1', `${t.slice(0, -1)}${t.endsWith('A') ? 'B' : 'A'}`)).toBeUndefined();
    expect(orderOfReceiptToken('secret-1', 'ord_abc')).toBeUndefined();
    expect(orderOfReceiptToken('secret-1', `${'x'.repeat(300)}.${'A'.repeat(22)}`)).toBeUndefined();
  });

  it('language from Accept-Language, else the site default', () => {
    expect(receiptLang('pt-BR,pt;q=0.9,en;q=0.8', 'es')).toBe('pt');
    expect(receiptLang('fr-FR,en;q=0.5', 'es')).toBe('en');
    expect(receiptLang(undefined, 'pt')).toBe('pt');
  });
});

describe('receipt page', () => {
  const t0 = Date.UTC(2026, 11, 1, 15, 0, 0);
  const view: ReceiptView = {
    orderId: 'ord_1',
    product: 'Cola <350 ml>',
    amount: 150000,
    currency: 'ARS',
    state: 'refunding',
    steps: ['created', 'payment_verified', 'vend_failed'].map((e, i) => ({ kind: receiptStepOf(e)!, at: t0 + i * 60_000 })),
    refunds: [{ amount: null, currency: 'ARS', requestedAt: t0 + 3 * 60_000, doneAt: null }],
  };

  it('shows each step in order, the refund on its way, escaped', () => {
    const html = renderReceiptPage(view, 'es', 'America/Argentina/Buenos_Aires');
    const order = ['Elegiste el producto', 'Pago recibido', 'La máquina no pudo entregar', 'Devolución en camino'].map((s) => html.indexOf(s));
    expect(order.every((i) => i > 0)).toBe(true);
    expect([...order].sort((a, b) => a - b)).toEqual(order);
    expect(html).toContain('Cola &#60;350 ml&#62;');
    expect(html).not.toContain('<350');
    expect(html).toContain('$ 1.500,00');
    expect(html).toContain('12:00'); // 15:00 UTC in Buenos Aires
  });

  it('a finished refund says when, in Portuguese', () => {
    const done = { ...view, state: 'refunded' as const, refunds: [{ amount: 150000, currency: 'ARS', requestedAt: t0 + 180_000, doneAt: t0 + 240_000 }] };
    const html = renderReceiptPage(done, 'pt', 'America/Sao_Paulo');
    expect(html).toContain('Dinheiro devolvido');
    expect(html).not.toContain('Estorno a caminho');
    expect(html).toContain('lang="pt"');
  });

  it('an unknown order is one plain line', () => {
    expect(renderReceiptPage(undefined, 'en', 'UTC')).toContain('We could not find this purchase.');
  });
});
