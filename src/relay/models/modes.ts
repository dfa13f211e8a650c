import { CURRENCIES, type Currency } from '../../core/money.js';
import { PAYMENT_MODELS, type PaymentModelName } from '../../protocol/messages.js';

// The models, their variants, and which a new kiosk gets. Kept apart from the implementations
// so the CLI can validate `--model` without loading any HTTP code.

export const MODEL_MODES: Record<PaymentModelName, readonly string[]> = {
  // the POS url Mercado Pago polls; v1/v2 of the answer is the kiosk's `generation`, not a mode
  unattended: [],
  // the order is put on the POS's static QR: instore v2 (PUT …/orders) or the legacy mpmobile POST
  attended: ['v2', 'mpmobile'],
  // a QR per order: online (POST …/qrs), hybrid (PUT …/qrs: also on the POS QR), offline (composed here)
  dynamic: ['online', 'hybrid', 'offline'],
  // the Orders API, POST /v1/orders type qr, config.qr.mode
  orders: ['dynamic', 'static', 'hybrid'],
};

export const DEFAULT_MODE: Record<PaymentModelName, string | null> = {
  unattended: null,
  attended: 'v2',
  dynamic: 'online',
  orders: 'dynamic',
};

/**
 * Sites where Mercado Pago offers QR payments through the Orders API. Mercado Pago's own guides list
 * Argentina, Brazil, Chile and Uruguay; Mexico was removed in 2026; Colombia and Peru are not listed.
 * Kiosks elsewhere default to the legacy dynamic QR, which every QR site has.
 */
export const ORDERS_API_SITES: readonly string[] = ['MLA', 'MLB', 'MLC', 'MLU'];

/** The model a new kiosk gets: the Orders API dynamic QR where the site has it. */
export function defaultModelFor(currency: Currency): { model: PaymentModelName; mode: string | null } {
  return ORDERS_API_SITES.includes(CURRENCIES[currency].site)
    ? { model: 'orders', mode: 'dynamic' }
    : { model: 'dynamic', mode: 'online' };
}

export class ModelChoiceError extends Error {
  override name = 'ModelChoiceError';
}

/**
 * Parses `--model` as "<model>" or "<model>/<mode>" (e.g. orders/static, dynamic/offline) and checks
 * it against the site. Throws ModelChoiceError with what to write instead.
 */
export function parseModelChoice(text: string, currency: Currency): { model: PaymentModelName; mode: string | null } {
  const [name, mode, extra] = text.trim().split('/');
  if (!(PAYMENT_MODELS as readonly string[]).includes(name ?? '') || extra !== undefined) {
    throw new ModelChoiceError(
      `unknown payment model "${text}": write one of ${PAYMENT_MODELS.join(', ')}, optionally with a mode (${describeModes()})`,
    );
  }
  const model = name as PaymentModelName;
  const modes = MODEL_MODES[model];
  if (mode !== undefined && !modes.includes(mode)) {
    throw new ModelChoiceError(
      modes.length === 0
        ? `the ${model} model has no modes: write just "${model}" (its answer generation is --generation v1|v2)`
        : `unknown mode "${mode}" for the ${model} model: write one of ${modes.map((m) => `${model}/${m}`).join(', ')}`,
    );
  }
  if (model === 'orders' && !ORDERS_API_SITES.includes(CURRENCIES[currency].site)) {
    throw new ModelChoiceError(
      `Mercado Pago does not offer QR payments through the Orders API on site ${CURRENCIES[currency].site} (${currency}): ` +
        `use --model dynamic (a QR per order) or --model attended`,
    );
  }
  return { model, mode: mode ?? DEFAULT_MODE[model] };
}

export function describeModes(): string {
  return PAYMENT_MODELS.map((m) => (MODEL_MODES[m].length ? `${m}/${MODEL_MODES[m].join('|')}` : m)).join(', ');
}

/** "orders/dynamic", "unattended": how a kiosk's model is written back to the operator. */
export function modelLabel(model: PaymentModelName, mode: string | null): string {
  return mode ? `${model}/${mode}` : model;
}

/** Every model with each of its modes (a model without modes once, with mode null). */
export function modelVariants(): { model: PaymentModelName; mode: string | null; label: string }[] {
  return PAYMENT_MODELS.flatMap((model) =>
    (MODEL_MODES[model].length ? MODEL_MODES[model] : [null]).map((mode) => ({ model, mode, label: modelLabel(model, mode) })),
  );
}
