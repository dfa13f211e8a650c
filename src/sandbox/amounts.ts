// Amount rules of Mercado Pago's QR APIs, checked where the sandbox receives an amount:
// - legacy instore APIs (attended, dynamic /qrs, mpmobile): JSON numbers with at most 2 decimals,
//   and whole numbers in currencies without minor units (COP, CLP: MP refuses "1500.5" COP);
// - Orders API: strings with exactly the currency's decimals ("10.00" ARS, "1500" CLP).
// Both return integer minor units; callers never do arithmetic on MP decimals.

import { CURRENCIES, MoneyError, parseAmount, type Currency } from '../core/money.js';

export class AmountRuleError extends Error {}

/** A legacy JSON-number amount; throws AmountRuleError naming the rule broken. */
export function legacyAmountMinor(value: unknown, currency: Currency, what: string): number {
  if (typeof value !== 'number' || !Number.isFinite(value)) {
    throw new AmountRuleError(`${what} must be a number, got ${JSON.stringify(value)}`);
  }
  if (value <= 0) throw new AmountRuleError(`${what} must be positive, got ${value}`);
  const decimals = (String(value).split('.')[1] ?? '').length;
  if (decimals > 2) throw new AmountRuleError(`${what} ${value} has ${decimals} decimals; Mercado Pago accepts at most 2`);
  try {
    return parseAmount(value, currency);
  } catch (err) {
    const why = err instanceof MoneyError ? err.message : String(err);
    throw new AmountRuleError(
      CURRENCIES[currency].exponent === 0
        ? `${what} ${value}: prices in ${currency} must be whole numbers (${why})`
        : `${what} ${value}: ${why}`,
    );
  }
}

/** An Orders API string amount, e.g. "10.00"; exactly the currency's decimals, positive. */
export function ordersAmountMinor(value: unknown, currency: Currency, what: string): number {
  const exp = CURRENCIES[currency].exponent;
  const pattern = exp === 0 ? /^\d+$/ : new RegExp(`^\\d+\\.\\d{${exp}}$`);
  if (typeof value !== 'string' || !pattern.test(value)) {
    const example = exp === 0 ? '"1500"' : `"10.${'0'.repeat(exp)}"`;
    throw new AmountRuleError(
      `${what} must be a string with exactly ${exp} decimals for ${currency} (e.g. ${example}), got ${JSON.stringify(value)}`,
    );
  }
  return parseAmount(value, currency);
}
