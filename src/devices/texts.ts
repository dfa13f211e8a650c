// The few words a kiosk screen says, in the languages of Mercado Pago's markets. Chosen by the
// config's `locale` prefix (es-AR -> es). Kept tiny on purpose: a vending screen has no room for
// more, and every string here must fit a 20-column character display one day.

export type Lang = 'es' | 'pt' | 'en';

export interface Texts {
  idle: string;
  pay: string;
  secondsLeft: (s: number) => string;
  dispensing: string;
  thankYou: string;
  vendFailed: string;
  expired: string;
  rejected: string;
  outOfService: string;
  outOfStock: string;
  cancelHint: string;
  connecting: string;
  cancelled: string;
  refused: Record<'unknown_slot' | 'out_of_stock' | 'out_of_service' | 'busy' | 'price_unknown' | 'slot_jammed', string>;
}

const TEXTS: Record<Lang, Texts> = {
  es: {
    idle: 'Elegí un producto',
    pay: 'Escaneá el QR con Mercado Pago',
    secondsLeft: (s) => `${s} s para pagar`,
    dispensing: 'Entregando tu producto…',
    thankYou: '¡Gracias! Retirá tu producto',
    vendFailed: 'No pudimos entregar el producto. Tu dinero será devuelto',
    expired: 'Tiempo agotado. La compra fue cancelada',
    rejected: 'No se pudo iniciar la compra',
    outOfService: 'Fuera de servicio',
    outOfStock: 'agotado',
    cancelHint: 'Tecla C: cancelar',
    connecting: 'Conectando…',
    cancelled: 'Compra cancelada',
    refused: {
      unknown_slot: 'Ese producto no existe',
      out_of_stock: 'Producto agotado',
      out_of_service: 'Fuera de servicio, probá en un momento',
      busy: 'Hay una compra en curso',
      price_unknown: 'Producto sin precio',
      slot_jammed: 'Producto no disponible',
    },
  },
  pt: {
    idle: 'Escolha um produto',
    pay: 'Escaneie o QR com o Mercado Pago',
    secondsLeft: (s) => `${s} s para pagar`,
    dispensing: 'Entregando seu produto…',
    thankYou: 'Obrigado! Retire seu produto',
    vendFailed: 'Não conseguimos entregar o produto. Seu dinheiro será devolvido',
    expired: 'Tempo esgotado. A compra foi cancelada',
    rejected: 'Não foi possível iniciar a compra',
    outOfService: 'Fora de serviço',
    outOfStock: 'esgotado',
    cancelHint: 'Tecla C: cancelar',
    connecting: 'Conectando…',
    cancelled: 'Compra cancelada',
    refused: {
      unknown_slot: 'Esse produto não existe',
      out_of_stock: 'Produto esgotado',
      out_of_service: 'Fora de serviço, tente em instantes',
      busy: 'Há uma compra em andamento',
      price_unknown: 'Produto sem preço',
      slot_jammed: 'Produto indisponível',
    },
  },
  en: {
    idle: 'Choose a product',
    pay: 'Scan the QR with Mercado Pago',
    secondsLeft: (s) => `${s} s left to pay`,
    dispensing: 'Dispensing your product…',
    thankYou: 'Thank you! Take your product',
    vendFailed: 'We could not dispense the product. Your money is on its way back',
    expired: 'Time is up. The purchase was cancelled',
    rejected: 'The purchase could not start',
    outOfService: 'Out of service',
    outOfStock: 'sold out',
    cancelHint: 'Key C: cancel',
    connecting: 'Connecting…',
    cancelled: 'Purchase cancelled',
    refused: {
      unknown_slot: 'No such product',
      out_of_stock: 'Sold out',
      out_of_service: 'Out of service, try again in a moment',
      busy: 'A purchase is in progress',
      price_unknown: 'This product has no price',
      slot_jammed: 'Product unavailable',
    },
  },
};

export function langOf(locale: string): Lang {
  const p = locale.slice(0, 2).toLowerCase();
  return p === 'pt' || p === 'en' ? p : 'es';
}

export function texts(locale: string): Texts {
  return TEXTS[langOf(locale)];
}
