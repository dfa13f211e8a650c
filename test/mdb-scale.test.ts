import { describe, expect, it } from 'vitest';
import { diagnoseScale } from '../src/devices/mdb/scale.js';

// The scale check behind `qrkiosk test mdb-price <slot>`: a wrong number of decimal places (the
// most common price error of a retrofit) is told apart from a scale factor and from a plain
// price difference, with what to change.

const COLA = { price: 150000, currency: 'ARS' }; // $ 1.500,00
const setup = { scaleFactor: 1, decimalPlaces: 2 };

describe('price scale diagnosis', () => {
  it('the same price is OK', () => {
    expect(diagnoseScale('1500.00', COLA, setup)).toMatchObject({ ok: true, machine: 150000 });
    expect(diagnoseScale('1500', COLA, setup)).toMatchObject({ ok: true });
  });

  it('a machine set for one decimal place fewer reads 10x too low, and the fix is named', () => {
    const v = diagnoseScale('150.00', COLA, setup);
    expect(v).toMatchObject({ ok: false, kind: 'decimal_places', ratio: 0.1 });
    expect(v.message).toContain('10x too low, the decimal places differ by 1');
    expect(v.message).toContain('set hardware.mdb.setup.decimalPlaces to 3, or set the machine\'s decimal point to 2 places');
  });

  it('10x and 100x too high', () => {
    expect(diagnoseScale('15000.00', COLA, setup)).toMatchObject({ ok: false, kind: 'decimal_places', ratio: 10 });
    const v = diagnoseScale('150000', COLA, setup);
    expect(v).toMatchObject({ kind: 'decimal_places', ratio: 100 });
    expect(v.message).toContain('100x too high');
    expect(v.message).toContain('decimalPlaces to 0');
  });

  it('more decimals than the currency has is a decimal places error too', () => {
    expect(diagnoseScale('1.505', COLA, setup)).toMatchObject({ ok: false, kind: 'decimal_places' });
  });

  it('a scale factor mismatch and a plain price difference are told apart', () => {
    expect(diagnoseScale('7500.00', COLA, setup)).toMatchObject({ ok: false, kind: 'scale_factor', ratio: 5 });
    expect(diagnoseScale('300.00', COLA, setup)).toMatchObject({ ok: false, kind: 'scale_factor' });
    const d = diagnoseScale('1400.00', COLA, null);
    expect(d).toMatchObject({ ok: false, kind: 'different_price' });
    expect(d.message).toContain('not a scale error');
  });

  it('whole-unit currencies', () => {
    expect(diagnoseScale('12.00', { price: 1200, currency: 'CLP' }, { scaleFactor: 1, decimalPlaces: 0 })).toMatchObject({ ok: false, kind: 'decimal_places', ratio: 0.01 });
    expect(diagnoseScale('1200', { price: 1200, currency: 'CLP' }, null)).toMatchObject({ ok: true });
  });
});
