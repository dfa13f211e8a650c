import { MoneyError, formatMoney, isCurrency, parseAmount } from '../../core/money.js';
import type { PriceProbeResult } from './cashless.js';

// A vending machine on MDB asks its own price for the item the customer chose. The customer is
// always charged the relay's catalog price (the relay refuses any other amount), so a machine
// price that differs means the machine and the catalog disagree about what is being sold: the
// sale is refused, unless the operator said a small difference is fine (the machine's price list
// lags a catalog change by a few cents, or the machine cannot show the catalog's exact price).

export type PriceCheck =
  | { ok: true; machine: number; difference: number }
  | { ok: false; detail: string };

/**
 * machinePrice: the decimal text the machine sent ("1500.00"); trustWithin: decimal bound in the
 * same currency, absent = must be equal; catalog: the product's price in minor units.
 */
export function checkMachinePrice(
  machinePrice: string,
  trustWithin: string | undefined,
  catalog: { price: number; currency: string },
): PriceCheck {
  if (!isCurrency(catalog.currency)) return { ok: false, detail: `catalog currency ${catalog.currency} is unknown` };
  const cur = catalog.currency;
  let machine: number;
  try {
    machine = parseAmount(machinePrice, cur);
  } catch (err) {
    const why = err instanceof MoneyError ? err.message : String(err);
    return { ok: false, detail: `machine price "${machinePrice}" is not a ${cur} amount: ${why}` };
  }
  let bound = 0;
  if (trustWithin !== undefined) {
    try {
      bound = parseAmount(trustWithin, cur);
    } catch (err) {
      return { ok: false, detail: `hardware.mdb.trustMachinePriceWithin "${trustWithin}" is not a ${cur} amount: ${(err as Error).message}` };
    }
  }
  const difference = machine - catalog.price;
  if (Math.abs(difference) > bound) {
    const limit = bound === 0 ? 'machine prices are not trusted (hardware.mdb.trustMachinePriceWithin)' : `more than the trusted ${formatMoney(bound, cur)}`;
    return {
      ok: false,
      detail: `machine asks ${formatMoney(machine, cur)}, catalog says ${formatMoney(catalog.price, cur)}: ${limit}`,
    };
  }
  return { ok: true, machine, difference };
}

/**
 * The dispenser face of an MDB machine can also run the price scale check. Here, not in
 * cashless.ts, so the agent can ask it of any dispenser without loading the MDB driver.
 */
export interface PriceProbe {
  probePrice(slot: number, catalog: { price: number; currency: string }, timeoutMs: number): Promise<PriceProbeResult>;
  /** the slots' catalog prices against the machine's setup; the problems found (also raised as a fault) */
  checkCatalog(catalog: Array<{ slot: number; price: number; currency: string }>): string[];
}

export function canProbePrice(d: object): d is PriceProbe {
  return typeof (d as Partial<PriceProbe>).probePrice === 'function';
}
