import { formatMoney, isCurrency, parseAmount } from '../../core/money.js';

// The most common price error in an MDB retrofit: the machine's prices and the reader's idea of
// them differ by a power of ten. MDB sends prices as whole numbers of a "scaled" unit; the reader
// announces at setup how to read them (scale factor, decimal places), and the board turns them
// into the decimal text we see. A machine set for 1 decimal place talking to a reader that says 2
// turns 1.50 into 0.15 (or 15.00 the other way round). `qrkiosk test mdb-price <slot>` has the
// technician choose a known product on the machine and runs this on the price that arrives.

export interface ScaleSetup {
  scaleFactor: number;
  decimalPlaces: number;
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
  const where = setup ? `the reader announces scale factor ${setup.scaleFactor} and ${setup.decimalPlaces} decimal places (hardware.mdb.setup)` : 'the reader setup is the board\'s stored one (hardware.mdb.setup not set)';
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
