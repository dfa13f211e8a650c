// Money is an integer number of minor units (centavos) tagged with its currency. Never a float:
// Mercado Pago speaks decimals on the wire, so conversion happens only at that edge, exactly.

export const CURRENCIES = {
  ARS: { exponent: 2, numeric: '032', country: 'AR', site: 'MLA' },
  BRL: { exponent: 2, numeric: '986', country: 'BR', site: 'MLB' },
  MXN: { exponent: 2, numeric: '484', country: 'MX', site: 'MLM' },
  CLP: { exponent: 0, numeric: '152', country: 'CL', site: 'MLC' },
  COP: { exponent: 0, numeric: '170', country: 'CO', site: 'MCO' },
  PEN: { exponent: 2, numeric: '604', country: 'PE', site: 'MPE' },
  UYU: { exponent: 2, numeric: '858', country: 'UY', site: 'MLU' },
} as const;

export type Currency = keyof typeof CURRENCIES;
export const CURRENCY_CODES = Object.keys(CURRENCIES) as Currency[];

export interface Money {
  /** integer minor units; for CLP and COP these are whole pesos */
  readonly minor: number;
  readonly currency: Currency;
}

export class MoneyError extends Error {
  override name = 'MoneyError';
}

export function isCurrency(code: string): code is Currency {
  return Object.prototype.hasOwnProperty.call(CURRENCIES, code);
}

export function assertCurrency(code: string): Currency {
  if (!isCurrency(code)) {
    throw new MoneyError(`unknown currency "${code}": use one of ${CURRENCY_CODES.join(', ')}`);
  }
  return code;
}

export function money(minor: number, currency: Currency): Money {
  if (!Number.isSafeInteger(minor)) {
    throw new MoneyError(`amount ${minor} ${currency} is not a whole number of minor units`);
  }
  return { minor, currency };
}

const DECIMAL = /^(-?)(\d+)(?:\.(\d+))?$/;

/**
 * Parses a decimal amount ("15.00", "1500", 15.5 as Mercado Pago sends in JSON) into minor units.
 * Rejects more decimals than the currency has, unless they are all zeros ("1500.00" CLP is fine).
 */
export function parseAmount(value: string | number, currency: Currency): number {
  const text = typeof value === 'number' ? numberToPlainString(value) : value.trim();
  const m = DECIMAL.exec(text);
  if (!m) throw new MoneyError(`"${String(value)}" is not a decimal amount (expected e.g. 15.00)`);
  const [, sign, whole, fracRaw = ''] = m;
  const exp = CURRENCIES[currency].exponent;
  const frac = fracRaw.replace(/0+$/, '');
  if (frac.length > exp) {
    throw new MoneyError(
      `"${String(value)}" has more decimals than ${currency} allows (${exp}); round it before sending`,
    );
  }
  const minor = Number(whole) * 10 ** exp + (frac ? Number(frac.padEnd(exp, '0')) : 0);
  if (!Number.isSafeInteger(minor)) throw new MoneyError(`"${String(value)}" is too large`);
  return sign === '-' ? -minor : minor;
}

function numberToPlainString(n: number): string {
  if (!Number.isFinite(n)) throw new MoneyError(`${n} is not an amount`);
  // String(n) is the shortest text that reads back as the same double: exactly what the JSON
  // said ("15.5" stays "15.5"). Float arithmetic noise (0.30000000000000004) is refused below
  // as too many decimals, which is what we want: amounts must not be computed in floats.
  return String(n);
}

/** "15.00" for BRL 1500, "1500" for CLP 1500: the string form Mercado Pago's APIs take. */
export function toDecimalString(minor: number, currency: Currency): string {
  const exp = CURRENCIES[currency].exponent;
  const sign = minor < 0 ? '-' : '';
  const abs = Math.abs(minor);
  if (exp === 0) return `${sign}${abs}`;
  const div = 10 ** exp;
  return `${sign}${Math.floor(abs / div)}.${String(abs % div).padStart(exp, '0')}`;
}

/** The JSON number form (unit_price, total_amount in the legacy APIs). Exact for our ranges. */
export function toDecimalNumber(minor: number, currency: Currency): number {
  return Number(toDecimalString(minor, currency));
}

// How each country writes prices on a shelf label. Written out rather than taken from Intl because
// ICU versions differ between the Pi image and a laptop ("$1.500" vs "$ 1.500"), and a customer
// must see the same price text everywhere.
const STYLE: Record<Currency, { symbol: string; group: string; decimal: string }> = {
  ARS: { symbol: '$ ', group: '.', decimal: ',' },
  BRL: { symbol: 'R$ ', group: '.', decimal: ',' },
  MXN: { symbol: '$', group: ',', decimal: '.' },
  CLP: { symbol: '$ ', group: '.', decimal: ',' },
  COP: { symbol: '$ ', group: '.', decimal: ',' },
  PEN: { symbol: 'S/ ', group: ',', decimal: '.' },
  UYU: { symbol: '$ ', group: '.', decimal: ',' },
};

/** Human form for screens and logs: "$ 1.500,00" (ARS), "R$ 15,00" (BRL), "$ 1.500" (CLP). */
export function formatMoney(minor: number, currency: Currency): string {
  const { symbol, group, decimal } = STYLE[currency];
  const exp = CURRENCIES[currency].exponent;
  const abs = Math.abs(minor);
  const whole = String(Math.floor(abs / 10 ** exp)).replace(/\B(?=(\d{3})+(?!\d))/g, group);
  const frac = exp > 0 ? decimal + String(abs % 10 ** exp).padStart(exp, '0') : '';
  return `${minor < 0 ? '-' : ''}${symbol}${whole}${frac}`;
}
