import { describe, expect, it } from 'vitest';
import { DexParseError, parseEvaDts, productTotals } from '../src/devices/dex/eva-dts.js';
import { crc16 } from '../src/devices/dex/crc16.js';
import { buildEvaDts, CANS, COFFEE, SNACK } from './helpers/eva-dts.js';

// EVA-DTS files built from the record definitions for three machine shapes, parsed to the figures
// they were built with; truncated and corrupted files give an error that names the record.

function parseError(text: string): DexParseError {
  try {
    parseEvaDts(text);
  } catch (err) {
    expect(err).toBeInstanceOf(DexParseError);
    return err as DexParseError;
  }
  throw new Error('parsed a broken file without complaint');
}

describe('EVA-DTS parser', () => {
  it('a snack machine: machine id, products with prices and counts, cash and cashless meters, events', () => {
    const a = parseEvaDts(buildEvaDts(SNACK));
    expect(a.machine).toEqual({ serial: 'AMS0123456', model: 'AMS39-VCF', location: 'Lobby 2', asset: '3456' });
    expect(a.decimals).toBe(2);
    expect(a.currency).toEqual({ numeric: '032', alpha: 'ARS' });
    expect(a.products).toHaveLength(3);
    expect(a.products[0]).toEqual({
      selection: '11',
      price: 150000,
      productId: 'SKU-COLA',
      paid: { countSinceInit: 120, valueSinceInit: 18000000, countSinceReset: 12, valueSinceReset: 1800000 },
    });
    expect(a.products[2]!.productId).toBeNull();
    expect(a.cash).toEqual({ valueSinceInit: 20000000, countSinceInit: 140, valueSinceReset: 2000000, countSinceReset: 14 });
    expect(a.cashless.device1).toEqual({ valueSinceInit: 5920000, countSinceInit: 60, valueSinceReset: 592000, countSinceReset: 6 });
    expect(a.cashless.device2).toBeNull();
    expect(a.paid).toEqual({ valueSinceInit: 25920000, countSinceInit: 200, valueSinceReset: 2592000, countSinceReset: 20 });
    expect(a.events).toEqual([
      { code: 'EGS', name: 'door open', date: '261130', time: '1412', sinceReset: 3, sinceInit: 41, active: false },
      { code: 'EJL', name: 'delivery (drop) sensor error', date: null, time: null, sinceReset: 1, sinceInit: 4, active: false },
    ]);
    expect(a.other).toEqual({ LA1: 1, MA5: 1, TA2: 1, G85: 1 });
    expect(productTotals(a)).toEqual({ count: 20, value: 2592000 });
  });

  it('a coffee machine with two cashless devices, LF line ends and no DXS envelope', () => {
    const a = parseEvaDts(buildEvaDts(COFFEE));
    expect(a.machine.serial).toBe('NEC7788990');
    expect(a.currency?.alpha).toBe('BRL');
    expect(a.products.map((p) => [p.selection, p.price, p.paid?.countSinceReset])).toEqual([
      ['1', 450, 300],
      ['2', 600, 150],
    ]);
    expect(a.cashless.device2).toEqual({ valueSinceInit: 150000, countSinceInit: 200, valueSinceReset: 15000, countSinceReset: 20 });
    expect(a.events[0]).toMatchObject({ code: 'EAR', name: 'coin mechanism error', active: true });
  });

  it('a can vender priced in whole units with ten columns', () => {
    const a = parseEvaDts(buildEvaDts(CANS));
    expect(a.decimals).toBe(0);
    expect(a.products).toHaveLength(10);
    expect(productTotals(a)).toEqual({ count: 45, value: 54000 });
    expect(a.events).toEqual([{ code: 'EGS', name: 'door open', date: '261201', time: '0700', sinceReset: null, sinceInit: null, active: null }]);
    expect(a.other).toMatchObject({ PA3: 1, CA3: 1 });
  });

  it('a file cut off anywhere is refused, naming the last record read', () => {
    const full = buildEvaDts(SNACK);
    const lines = full.split('\r\n').filter(Boolean);
    // cut after every record but the last (DXE): each cut must be caught
    for (let n = 1; n < lines.length; n++) {
      const cut = lines.slice(0, n).join('\r\n') + '\r\n';
      const e = parseError(cut);
      expect(e.message, `cut after ${n} records`).toMatch(/cut off|missing|no ST|no ID1/);
    }
    const e = parseError(lines.slice(0, 9).join('\r\n'));
    expect(e.record).toBe(lines[8]!.split('*')[0]);
    expect(e.message).toContain('without SE');
    // cut inside a line: the SE count no longer matches or a field is broken
    const mid = full.slice(0, full.indexOf('PA2*80') + 5);
    expect(parseError(mid).message).toMatch(/PA2|without SE/);
  });

  it('a lost or doubled record in the middle is caught by the SE count', () => {
    const lines = buildEvaDts(SNACK).split('\r\n');
    const dropped = lines.filter((l) => !l.startsWith('CA2')).join('\r\n');
    const e = parseError(dropped);
    expect(e.record).toBe('SE');
    expect(e.message).toMatch(/SE says 20 records .* the file has 19/);
  });

  it('corruption names the record and the field', () => {
    const text = buildEvaDts(SNACK);
    const e1 = parseError(text.replace('PA2*80*7920000', 'PA2*8O*7920000'));
    expect(e1.record).toBe('PA2');
    expect(e1.message).toContain('field PA201 "8O" is not a whole number');
    const e2 = parseError(text.replace('CA2*', 'C\x82*'));
    expect(e2.message).toMatch(/not an EVA-DTS record/);
    const e3 = parseError(text.replace('ID4*2', 'ID4*2\x00'));
    expect(e3.record).toBe('ID4');
    expect(e3.message).toContain('printable');
    const e4 = parseError(text.replace('PA1*11*', 'PA1**'));
    expect(e4.message).toContain('PA101');
    expect(parseError('').message).toContain('empty');
  });

  it('crc16 is CRC-16/ARC (the DEX/DDCMP check value of "123456789" is 0xBB3D)', () => {
    expect(crc16([...Buffer.from('123456789')])).toBe(0xbb3d);
  });
});
