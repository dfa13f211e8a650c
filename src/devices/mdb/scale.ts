import { CURRENCIES, formatMoney, isCurrency, parseAmount } from '../../core/money.js';
import { unitsToMinor, type VmcPrices } from './bus-setup.js';

// The most common price error in an MDB retrofit: the machine's prices and the reader's idea of
// them differ by a power of ten. MDB sends prices as whole numbers of a "scaled" unit; the reader
// announces at setup how to read them (scale factor, decimal places), and the board turns them
// into the decimal text we see. A machine set for 1 decimal place talking to a reader that says 2
// turns 1.50 into 0.15 (or 15.00 the other way round). `qrkiosk test mdb-price <slot>` has the
// technician choose a known product on the machine and runs this on the price that arrives.

export interface ScaleSetup {
  scaleFactor: number;
  decimalPlaces: number;
  /** bus = read off the MDB bus at setup (what the board really announced); config = hardware.mdb.setup */
  source?: 'bus' | 'config';
}

export type ScaleVerdict =
  | { ok: true; machine: number; catalog: number; message: string }
  | {
      ok: false;
      kind: 'decimal_places' | 'scale_factor' | 'different_price' | 'unreadable';
      machine: number | null;
      catalog: number;
      /** machine / catalog */
      ratio: number | null;
      message: string;
    };

export function diagnoseScale(machinePrice: string, catalog: { price: number; currency: string }, setup: ScaleSetup | null): ScaleVerdict {
  if (!isCurrency(catalog.currency)) {
    return { ok: false, kind: 'unreadable', machine: null, catalog: catalog.price, ratio: null, message: `catalog currency ${catalog.currency} is unknown` };
  }
  const cur = catalog.currency;
  let machine: number;
  try {
    machine = parseAmount(machinePrice, cur);
  } catch {
    // more decimals than the currency has: itself a sign of wrong decimal places
    const digits = machinePrice.split('.')[1]?.length ?? 0;
    return {
      ok: false,
      kind: 'decimal_places',
      machine: null,
      catalog: catalog.price,
      ratio: null,
      message: `the machine price "${machinePrice}" has ${digits} decimal places, ${cur} has fewer: the decimal places set on the reader (hardware.mdb.setup.decimalPlaces${setup ? ` = ${setup.decimalPlaces}` : ''}) do not match the machine's price setting`,
    };
  }
  const want = formatMoney(catalog.price, cur);
  const got = formatMoney(machine, cur);
  if (machine === catalog.price) return { ok: true, machine, catalog: catalog.price, message: `machine price ${got} matches the catalog` };
  if (machine === 0 || catalog.price === 0) {
    return { ok: false, kind: 'different_price', machine, catalog: catalog.price, ratio: null, message: `machine asks ${got}, catalog says ${want}` };
  }
  const ratio = machine / catalog.price;
  const exp = Math.log10(ratio);
  const where = !setup
    ? 'the reader setup is the board\'s stored one (hardware.mdb.setup not set, and not read at setup)'
    : setup.source === 'bus'
      ? `the reader announced scale factor ${setup.scaleFactor} and ${setup.decimalPlaces} decimal places at setup (read on the MDB bus)`
      : `the reader announces scale factor ${setup.scaleFactor} and ${setup.decimalPlaces} decimal places (hardware.mdb.setup)`;
  if (Math.abs(exp - Math.round(exp)) < 1e-9 && Math.round(exp) !== 0) {
    const k = Math.round(exp);
    const fix = setup ? `set hardware.mdb.setup.decimalPlaces to ${setup.decimalPlaces - k}, or set the machine's decimal point to ${setup.decimalPlaces} places` : 'make the machine\'s decimal point and the reader\'s decimal places agree';
    return {
      ok: false,
      kind: 'decimal_places',
      machine,
      catalog: catalog.price,
      ratio,
      message: `machine asks ${got}, catalog says ${want}: ${k > 0 ? `${10 ** k}x too high` : `${10 ** -k}x too low`}, the decimal places differ by ${Math.abs(k)}; ${where}: ${fix}`,
    };
  }
  const r = ratio >= 1 ? ratio : 1 / ratio;
  if (Number.isInteger(Math.round(r * 1e9) / 1e9) && r <= 255) {
    return {
      ok: false,
      kind: 'scale_factor',
      machine,
      catalog: catalog.price,
      ratio,
      message: `machine asks ${got}, catalog says ${want}: ${ratio > 1 ? `${r}x too high` : `${r}x too low`}, a scale factor mismatch; ${where}: make the machine and the reader use the same scale factor`,
    };
  }
  return {
    ok: false,
    kind: 'different_price',
    machine,
    catalog: catalog.price,
    ratio,
    message: `machine asks ${got}, catalog says ${want}: not a scale error, the prices differ (change the machine's price or the catalog)`,
  };
}

/** MDB money on levels 1 and 2 (and level 3 without the 32-bit option) is 16 bits. */
export const MDB_16BIT_MAX = 0xffff;

/**
 * A catalog price against what the VMC said at setup: its max/min prices (in the reader's scaled
 * units) and whether the price can be sent on the bus at all. Each problem is one sentence; a
 * max/min off by a power of ten names the decimal places, like the price check does.
 */
export function diagnosePriceRange(
  catalog: { price: number; currency: string },
  reader: { scaleFactor: number; decimalPlaces: number },
  prices: VmcPrices | null,
  /** true when money on this bus is certainly 16 bits (the VMC or the reader is below level 3) */
  sixteenBit: boolean,
): string[] {
  if (!isCurrency(catalog.currency)) return [`catalog currency ${catalog.currency} is unknown`];
  const cur = catalog.currency;
  const out: string[] = [];
  const want = formatMoney(catalog.price, cur);
  const tenfold = (ratio: number) => {
    const k = Math.round(Math.log10(ratio));
    return k !== 0 && Math.abs(Math.log10(ratio) - k) < 1e-9 ? `: ${10 ** Math.abs(k)}x, the machine's decimal point and the reader's ${reader.decimalPlaces} decimal places differ by ${Math.abs(k)}` : '';
  };
  const show = (minor: number) => (Number.isInteger(minor) ? formatMoney(minor, cur) : `${minor / 10 ** CURRENCIES[cur].exponent} ${cur}`);
  if (prices?.max != null) {
    const max = unitsToMinor(prices.max, reader, cur);
    if (catalog.price > max) out.push(`the machine said at setup its highest price is ${show(max)}, below the catalog's ${want}${tenfold(catalog.price / max)}`);
  }
  if (prices?.min != null) {
    const min = unitsToMinor(prices.min, reader, cur);
    if (catalog.price < min) out.push(`the machine said at setup its lowest price is ${show(min)}, above the catalog's ${want}${tenfold(catalog.price / min)}`);
  }
  // the catalog price in bus units: minor x 10^(decimals - exponent) / scale factor
  const units = (catalog.price * 10 ** reader.decimalPlaces) / 10 ** CURRENCIES[cur].exponent / reader.scaleFactor;
  if (!Number.isInteger(units)) {
    out.push(`${want} cannot be written in the reader's units (scale factor ${reader.scaleFactor}, ${reader.decimalPlaces} decimal places): it is ${units} units`);
  } else if (sixteenBit && units > MDB_16BIT_MAX) {
    out.push(`${want} is ${units} units at scale factor ${reader.scaleFactor} and ${reader.decimalPlaces} decimal places, more than the ${MDB_16BIT_MAX} a 16-bit MDB price can carry: use fewer decimal places or a larger scale factor (hardware.mdb.setup), and the same on the machine`);
  }
  return out;
}
