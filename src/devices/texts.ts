// The few words a kiosk screen says, in the languages of Mercado Pago's markets. Chosen by the
// config's `locale` (es-AR -> es). Kept short on purpose: a vending screen has little room, and
// the smallest supported panel is 320x240.
//
// Spanish comes in two forms: Argentina and Uruguay (and a bare "es") read the voseo they use
// every day ("Elegí", "Escaneá"); the other Spanish-speaking sites (es-MX, es-CL, es-CO, es-PE)
// read the tú form ("Elige", "Escanea").

import { isCurrency, type Currency } from '../core/money.js';

export type Lang = 'es' | 'pt' | 'en';

export type RefusalText = Record<'unknown_slot' | 'out_of_stock' | 'out_of_service' | 'busy' | 'price_unknown' | 'slot_jammed' | 'price_mismatch', string>;

export interface Texts {
  lang: Lang;
  /** idle: the title */
  idle: string;
  /** idle: what to do, under the title */
  idleHint: string;
  /** pay: one line, for terminals and logs */
  pay: string;
  /** pay: the heading above the price */
  payTitle: string;
  /** pay: the steps beside the QR ("open Mercado Pago", "scan this QR") */
  paySteps: [string, string];
  secondsLeft: (s: number) => string;
  /** dispensing: the heading ("payment approved") */
  paid: string;
  dispensing: string;
  thankYou: string;
  thankYouTitle: string;
  takeProduct: string;
  vendFailed: string;
  vendFailedTitle: string;
  /** vend_failed: the refund is on its way */
  refundOnItsWay: string;
  /** the order reference a customer quotes to support */
  reference: (orderId: string) => string;
  expired: string;
  expiredTitle: string;
  expiredBody: string;
  rejected: string;
  rejectedBody: string;
  outOfService: string;
  outOfServiceWhy: Record<'offline' | 'fault' | 'service', string>;
  /** out of service: no sale can start */
  noSales: string;
  /** a sold-out product on the menu */
  outOfStock: string;
  /** the out_of_stock screen */
  outOfStockTitle: string;
  outOfStockBody: string;
  stockLeft: (n: number) => string;
  cancelHint: string;
  /** pay screen while the order's own QR is being made */
  preparingQr: string;
  connecting: string;
  cancelled: string;
  refused: RefusalText;
}

const ES_VOS: Texts = {
  lang: 'es',
  idle: 'Elegí un producto',
  idleHint: 'Apretá el botón del producto y pagá con Mercado Pago',
  pay: 'Escaneá el QR con Mercado Pago',
  payTitle: 'Pagá con Mercado Pago',
  paySteps: ['Abrí la app de Mercado Pago', 'Escaneá este código QR'],
  secondsLeft: (s) => `${s} s para pagar`,
  paid: '¡Pago aprobado!',
  dispensing: 'Entregando tu producto…',
  thankYou: '¡Gracias! Retirá tu producto',
  thankYouTitle: '¡Gracias!',
  takeProduct: 'Retirá tu producto',
  vendFailed: 'No pudimos entregar el producto. Tu dinero será devuelto',
  vendFailedTitle: 'No pudimos entregar el producto',
  refundOnItsWay: 'Te devolvemos el dinero en tu cuenta de Mercado Pago. No tenés que hacer nada.',
  reference: (id) => `Referencia: ${id}`,
  expired: 'Tiempo agotado. La compra fue cancelada',
  expiredTitle: 'Tiempo agotado',
  expiredBody: 'La compra fue cancelada. Si llegaste a pagar, te devolvemos el dinero.',
  rejected: 'No se pudo iniciar la compra',
  rejectedBody: 'Probá de nuevo en un momento.',
  outOfService: 'Fuera de servicio',
  outOfServiceWhy: {
    offline: 'Sin conexión. Volvemos en unos minutos.',
    fault: 'La máquina tiene una falla. Ya avisamos al técnico.',
    service: 'Mantenimiento en curso. Volvemos enseguida.',
  },
  noSales: 'No se pueden hacer compras ahora.',
  outOfStock: 'agotado',
  outOfStockTitle: 'Sin productos',
  outOfStockBody: 'No quedan productos en esta máquina. Volvé pronto.',
  stockLeft: (n) => `quedan ${n}`,
  cancelHint: 'Tecla C: cancelar',
  preparingQr: 'Generando tu código QR…',
  connecting: 'Conectando…',
  cancelled: 'Compra cancelada',
  refused: {
    unknown_slot: 'Ese producto no existe',
    out_of_stock: 'Producto agotado',
    out_of_service: 'Fuera de servicio, probá en un momento',
    busy: 'Hay una compra en curso',
    price_unknown: 'Producto sin precio',
    slot_jammed: 'Producto no disponible',
    price_mismatch: 'El precio de la máquina no coincide',
  },
};

const ES_TU: Texts = {
  ...ES_VOS,
  idle: 'Elige un producto',
  idleHint: 'Presiona el botón del producto y paga con Mercado Pago',
  pay: 'Escanea el QR con Mercado Pago',
  payTitle: 'Paga con Mercado Pago',
  paySteps: ['Abre la app de Mercado Pago', 'Escanea este código QR'],
  thankYou: '¡Gracias! Retira tu producto',
  takeProduct: 'Retira tu producto',
  refundOnItsWay: 'Te devolvemos el dinero en tu cuenta de Mercado Pago. No tienes que hacer nada.',
  expiredBody: 'La compra fue cancelada. Si alcanzaste a pagar, te devolvemos el dinero.',
  rejectedBody: 'Inténtalo de nuevo en un momento.',
  outOfStockBody: 'No quedan productos en esta máquina. Vuelve pronto.',
  refused: { ...ES_VOS.refused, out_of_service: 'Fuera de servicio, intenta en un momento' },
};

const PT: Texts = {
  lang: 'pt',
  idle: 'Escolha um produto',
  idleHint: 'Aperte o botão do produto e pague com o Mercado Pago',
  pay: 'Escaneie o QR com o Mercado Pago',
  payTitle: 'Pague com o Mercado Pago',
  paySteps: ['Abra o app do Mercado Pago', 'Escaneie este código QR'],
  secondsLeft: (s) => `${s} s para pagar`,
  paid: 'Pagamento aprovado!',
  dispensing: 'Entregando seu produto…',
  thankYou: 'Obrigado! Retire seu produto',
  thankYouTitle: 'Obrigado!',
  takeProduct: 'Retire seu produto',
  vendFailed: 'Não conseguimos entregar o produto. Seu dinheiro será devolvido',
  vendFailedTitle: 'Não conseguimos entregar o produto',
  refundOnItsWay: 'Seu dinheiro volta para a sua conta do Mercado Pago. Você não precisa fazer nada.',
  reference: (id) => `Referência: ${id}`,
  expired: 'Tempo esgotado. A compra foi cancelada',
  expiredTitle: 'Tempo esgotado',
  expiredBody: 'A compra foi cancelada. Se você chegou a pagar, devolvemos o dinheiro.',
  rejected: 'Não foi possível iniciar a compra',
  rejectedBody: 'Tente de novo em instantes.',
  outOfService: 'Fora de serviço',
  outOfServiceWhy: {
    offline: 'Sem conexão. Voltamos em alguns minutos.',
    fault: 'A máquina está com defeito. O técnico já foi avisado.',
    service: 'Em manutenção. Voltamos já.',
  },
  noSales: 'Não é possível comprar agora.',
  outOfStock: 'esgotado',
  outOfStockTitle: 'Sem produtos',
  outOfStockBody: 'Não há produtos nesta máquina. Volte em breve.',
  stockLeft: (n) => `restam ${n}`,
  cancelHint: 'Tecla C: cancelar',
  preparingQr: 'Gerando seu código QR…',
  connecting: 'Conectando…',
  cancelled: 'Compra cancelada',
  refused: {
    unknown_slot: 'Esse produto não existe',
    out_of_stock: 'Produto esgotado',
    out_of_service: 'Fora de serviço, tente em instantes',
    busy: 'Há uma compra em andamento',
    price_unknown: 'Produto sem preço',
    slot_jammed: 'Produto indisponível',
    price_mismatch: 'O preço da máquina não confere',
  },
};

const EN: Texts = {
  lang: 'en',
  idle: 'Choose a product',
  idleHint: "Press the product's button and pay with Mercado Pago",
  pay: 'Scan the QR with Mercado Pago',
  payTitle: 'Pay with Mercado Pago',
  paySteps: ['Open the Mercado Pago app', 'Scan this QR code'],
  secondsLeft: (s) => `${s} s left to pay`,
  paid: 'Payment approved!',
  dispensing: 'Dispensing your product…',
  thankYou: 'Thank you! Take your product',
  thankYouTitle: 'Thank you!',
  takeProduct: 'Take your product',
  vendFailed: 'We could not dispense the product. Your money is on its way back',
  vendFailedTitle: 'We could not dispense the product',
  refundOnItsWay: 'Your money is on its way back to your Mercado Pago account. You need not do anything.',
  reference: (id) => `Reference: ${id}`,
  expired: 'Time is up. The purchase was cancelled',
  expiredTitle: 'Time is up',
  expiredBody: 'The purchase was cancelled. If you did pay, the money is returned.',
  rejected: 'The purchase could not start',
  rejectedBody: 'Please try again in a moment.',
  outOfService: 'Out of service',
  outOfServiceWhy: {
    offline: 'No connection. Back in a few minutes.',
    fault: 'The machine has a fault. A technician has been told.',
    service: 'Maintenance in progress. Back shortly.',
  },
  noSales: 'No purchases can be made now.',
  outOfStock: 'sold out',
  outOfStockTitle: 'Sold out',
  outOfStockBody: 'This machine has no products left. Please come back soon.',
  stockLeft: (n) => `${n} left`,
  cancelHint: 'Key C: cancel',
  preparingQr: 'Preparing your QR code…',
  connecting: 'Connecting…',
  cancelled: 'Purchase cancelled',
  refused: {
    unknown_slot: 'No such product',
    out_of_stock: 'Sold out',
    out_of_service: 'Out of service, try again in a moment',
    busy: 'A purchase is in progress',
    price_unknown: 'This product has no price',
    slot_jammed: 'Product unavailable',
    price_mismatch: "The machine's price does not match",
  },
};

export function langOf(locale: string): Lang {
  const p = locale.slice(0, 2).toLowerCase();
  return p === 'pt' || p === 'en' ? p : 'es';
}

/** The texts for a locale: es, es-AR, es-UY (voseo), es-MX, es-CL, es-CO, es-PE (tú), pt, pt-BR, en. */
export function texts(locale: string): Texts {
  const lang = langOf(locale);
  if (lang === 'pt') return PT;
  if (lang === 'en') return EN;
  const region = locale.slice(3, 5).toUpperCase();
  return region === '' || region === 'AR' || region === 'UY' ? ES_VOS : ES_TU;
}

/** The locale a kiosk of a Mercado Pago site (told by its currency) speaks when none is chosen. */
export const SITE_LOCALE: Record<Currency, string> = {
  ARS: 'es-AR',
  BRL: 'pt-BR',
  MXN: 'es-MX',
  CLP: 'es-CL',
  COP: 'es-CO',
  PEN: 'es-PE',
  UYU: 'es-UY',
};

export function localeForCurrency(currency: string): string | undefined {
  return isCurrency(currency) ? SITE_LOCALE[currency] : undefined;
}

/** The texts a screen asks for (the session stamps its language on each screen), else the renderer's own. */
export function textsFor(screen: { locale?: string }, fallback: Texts): Texts {
  return screen.locale ? texts(screen.locale) : fallback;
}
