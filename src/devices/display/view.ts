import type { Texts } from '../texts.js';
import type { Screen, ScreenName } from './model.js';

// The words and emphasis of each screen, decided once for every renderer: the framebuffer, the
// kiosk web page and the terminal all draw a View, so they cannot disagree on what a screen says.

export type Tone = 'brand' | 'ok' | 'warn' | 'error' | 'neutral';
export type Icon = 'check' | 'cross' | 'clock' | 'arrow' | 'bang' | 'wrench';

export interface ViewProduct {
  slot: number;
  name: string;
  price?: string;
  available: boolean;
  /** "agotado" or "quedan 3" */
  note?: string;
}

export interface View {
  screen: ScreenName;
  tone: Tone;
  icon?: Icon;
  title: string;
  /** pay: the product and its price, the price drawn large */
  product?: string;
  price?: string;
  /** pay: the QR payload */
  qr?: string;
  /** pay: what to do, in order */
  steps?: string[];
  /** pay: seconds left, and its text */
  seconds?: number;
  countdown?: string;
  /** explanation lines under the title */
  body: string[];
  /** "Referencia: ord_…" */
  reference?: string;
  /** a small hint at the bottom ("Tecla C: cancelar") */
  hint?: string;
  /** the session's extra message ("Producto agotado", "Conectando…"), shown as a banner */
  banner?: string;
  products?: ViewProduct[];
}

/** Seconds at or under which the countdown turns urgent. */
export const URGENT_SECONDS = 15;

export function viewOf(s: Screen, t: Texts): View {
  const banner = s.message ? { banner: s.message } : {};
  switch (s.screen) {
    case 'idle':
      return {
        screen: s.screen,
        tone: 'brand',
        title: t.idle,
        body: [t.idleHint],
        products: (s.products ?? []).map((p) => ({
          slot: p.slot,
          name: p.name,
          ...(p.amountText ? { price: p.amountText } : {}),
          available: p.available,
          ...(!p.available ? { note: t.outOfStock } : p.stock !== undefined && p.stock <= 3 ? { note: t.stockLeft(p.stock) } : {}),
        })),
        ...banner,
      };
    case 'pay':
      return {
        screen: s.screen,
        tone: 'brand',
        title: t.payTitle,
        ...(s.product !== undefined ? { product: s.product } : {}),
        ...(s.amountText !== undefined ? { price: s.amountText } : {}),
        ...(s.qr !== undefined ? { qr: s.qr } : {}),
        steps: [...t.paySteps],
        ...(s.secondsLeft !== undefined ? { seconds: s.secondsLeft, countdown: t.secondsLeft(s.secondsLeft) } : {}),
        body: s.message ? [s.message] : [],
        hint: t.cancelHint,
        ...banner,
      };
    case 'dispensing':
      return {
        screen: s.screen,
        tone: 'ok',
        icon: 'arrow',
        title: t.paid,
        body: [s.product ? `${t.dispensing} ${s.product}` : t.dispensing],
        ...banner,
      };
    case 'thank_you':
      return { screen: s.screen, tone: 'ok', icon: 'check', title: t.thankYouTitle, body: [t.takeProduct], ...banner };
    case 'vend_failed':
      return {
        screen: s.screen,
        tone: 'error',
        icon: 'cross',
        title: t.vendFailedTitle,
        body: [t.refundOnItsWay],
        ...(s.orderId ? { reference: t.reference(s.orderId) } : {}),
        ...banner,
      };
    case 'expired':
      return {
        screen: s.screen,
        tone: 'warn',
        icon: 'clock',
        title: t.expiredTitle,
        body: [t.expiredBody],
        ...(s.orderId ? { reference: t.reference(s.orderId) } : {}),
        ...banner,
      };
    case 'rejected':
      return {
        screen: s.screen,
        tone: 'warn',
        icon: 'bang',
        title: t.rejected,
        body: s.message ? [s.message, t.rejectedBody] : [t.rejectedBody],
        ...(s.orderId ? { reference: t.reference(s.orderId) } : {}),
      };
    case 'out_of_stock':
      return { screen: s.screen, tone: 'warn', icon: 'bang', title: t.outOfStockTitle, body: [t.outOfStockBody], ...banner };
    case 'out_of_service':
      return {
        screen: s.screen,
        tone: 'error',
        icon: s.reason === 'service' ? 'wrench' : 'cross',
        title: t.outOfService,
        body: [...(s.reason ? [t.outOfServiceWhy[s.reason]] : []), ...(s.message ? [s.message] : []), t.noSales],
        ...banner,
      };
  }
}

/** The view as lines of plain text (terminal, logs). The first line is the heading. */
export function viewLines(v: View): string[] {
  const out: string[] = [];
  switch (v.screen) {
    case 'pay':
      out.push([v.product, v.price].filter(Boolean).join('  '));
      out.push(v.steps?.join(' · ') ?? v.title);
      if (v.countdown) out.push(v.countdown);
      if (v.hint) out.push(v.hint);
      break;
    case 'idle':
      out.push(v.title);
      for (const p of v.products ?? []) {
        out.push(`  [${p.slot}] ${p.name}${p.price ? `  ${p.price}` : ''}${p.note ? `  (${p.note})` : ''}`);
      }
      break;
    default:
      out.push(v.title, ...v.body);
      if (v.reference) out.push(v.reference);
  }
  if (v.banner) out.push(v.banner);
  return out;
}
