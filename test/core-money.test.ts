import { describe, expect, it } from 'vitest';
import {
  CURRENCY_CODES,
  MoneyError,
  formatMoney,
  parseAmount,
  toDecimalNumber,
  toDecimalString,
  assertCurrency,
} from '../src/core/money.js';

describe('money', () => {
  it('knows the seven Mercado Pago currencies, CLP and COP without cents', () => {
    expect(CURRENCY_CODES.sort()).toEqual(['ARS', 'BRL', 'CLP', 'COP', 'MXN', 'PEN', 'UYU']);
    expect(parseAmount('1500', 'CLP')).toBe(1500);
    expect(parseAmount('1500', 'COP')).toBe(1500);
    expect(parseAmount('15', 'BRL')).toBe(1500);
  });

  it('parses decimals exactly, including the numbers Mercado Pago sends in JSON', () => {
    expect(parseAmount('15.00', 'ARS')).toBe(1500);
    expect(parseAmount('0.1', 'ARS')).toBe(10);
    expect(parseAmount(0.3, 'BRL')).toBe(30);
    expect(() => parseAmount(0.1 + 0.2, 'BRL')).toThrow(/more decimals/); // float arithmetic leaked
    expect(parseAmount(15.5, 'MXN')).toBe(1550);
    expect(parseAmount('1500.00', 'CLP')).toBe(1500);
    expect(parseAmount(1234567.89, 'UYU')).toBe(123456789);
  });

  it('refuses amounts the currency cannot hold, with a message saying so', () => {
    expect(() => parseAmount('1500.5', 'CLP')).toThrow(/more decimals than CLP allows \(0\)/);
    expect(() => parseAmount('1.005', 'ARS')).toThrow(MoneyError);
    expect(() => parseAmount('12,50', 'ARS')).toThrow(/not a decimal amount/);
    expect(() => parseAmount(Number.NaN, 'ARS')).toThrow(MoneyError);
    expect(() => assertCurrency('USD')).toThrow(/unknown currency "USD"/);
  });

  it('writes the wire form per currency', () => {
    expect(toDecimalString(1500, 'BRL')).toBe('15.00');
    expect(toDecimalString(5, 'ARS')).toBe('0.05');
    expect(toDecimalString(1500, 'CLP')).toBe('1500');
    expect(toDecimalNumber(150050, 'PEN')).toBe(1500.5);
    expect(toDecimalString(-250, 'UYU')).toBe('-2.50');
  });

  it('formats for people per locale', () => {
    expect(formatMoney(150000, 'ARS')).toBe('$ 1.500,00');
    expect(formatMoney(1500, 'BRL')).toBe('R$ 15,00');
    expect(formatMoney(1500, 'CLP')).toBe('$ 1.500');
    expect(formatMoney(12345, 'COP')).toBe('$ 12.345');
    expect(formatMoney(150000, 'MXN')).toBe('$1,500.00');
    expect(formatMoney(-990, 'PEN')).toBe('-S/ 9.90');
  });
});
