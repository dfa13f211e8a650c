import type { StatusBody } from '../fleet-recorder.js';

// Stock and routes: what each slot holds (the kiosk's latest status snapshot), its par level (the
// operator's, stock_par in the store, else the slot's configured full count the kiosk reports),
// which slots are low, and the pick list of a route: what to load where (par - count).

export interface SlotStock {
  slot: number;
  sku: string;
  count: number;
  par: number;
  /** at or below lowPercent of par (a par of 0 is never low) */
  low: boolean;
  jammed: boolean;
}

export function slotStock(status: StatusBody | null, pars: ReadonlyMap<number, number>, lowPercent: number): SlotStock[] {
  return (status?.stock ?? []).map((s) => {
    const par = pars.get(s.slot) ?? s.full;
    return { slot: s.slot, sku: s.sku, count: s.count, par, low: par > 0 && s.count * 100 <= par * lowPercent, jammed: s.jammed };
  });
}

export interface PickLine {
  slot: number;
  sku: string;
  count: number;
  par: number;
  load: number;
}

export interface PickList {
  route: string;
  kiosks: Array<{ kioskId: string; known: boolean; statusAt: number | null; lines: PickLine[] }>;
  /** what to take from the warehouse: per sku, the sum over the route */
  totals: Array<{ sku: string; load: number }>;
}

/** The route's pick list from each kiosk's latest snapshot; a kiosk that never reported is listed with no lines. */
export function pickList(route: string, kioskIds: readonly string[], snapshot: (kioskId: string) => { status: StatusBody | null; pars: ReadonlyMap<number, number>; known: boolean }): PickList {
  const totals = new Map<string, number>();
  const kiosks = kioskIds.map((kioskId) => {
    const { status, pars, known } = snapshot(kioskId);
    const lines = slotStock(status, pars, 0)
      .map((s) => ({ slot: s.slot, sku: s.sku, count: s.count, par: s.par, load: Math.max(0, s.par - s.count) }))
      .filter((l) => l.load > 0);
    for (const l of lines) totals.set(l.sku, (totals.get(l.sku) ?? 0) + l.load);
    return { kioskId, known, statusAt: status?.at ?? null, lines };
  });
  return { route, kiosks, totals: [...totals].sort(([a], [b]) => a.localeCompare(b)).map(([sku, load]) => ({ sku, load })) };
}
