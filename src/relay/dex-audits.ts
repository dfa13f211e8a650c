import { CURRENCIES, formatMoney, isCurrency } from '../core/money.js';
import type { DexAuditRecord, RelayStore } from './store/index.js';

// A machine's own books next to qrkiosk's: for the period between two audit reads of the same
// machine, what the machine counted on qrkiosk's cashless device (EVA-DTS DA2 for device 1, DB2
// for device 2) and per selection, against the vends the relay recorded as dispensed. A
// difference is what an operator looks at: a vend the machine counts but qrkiosk never charged
// (or the reverse) is money or product gone astray.

type Meter = DexAuditRecord['body']['cash'];

export interface AuditComparison {
  auditId: string;
  kioskId: string;
  machineSerial: string;
  /** (from, to]: from the previous read of the machine (null: first read, nothing to compare) */
  period: { from: number | null; to: number };
  currency: string | null;
  machine: {
    /** qrkiosk's cashless device meters, difference between the two reads */
    cashlessCount: number | null;
    /** in qrkiosk's minor units (converted from the machine's decimals) */
    cashlessValue: number | null;
    cashCount: number | null;
    cashValue: number | null;
    products: Array<{ selection: string; count: number | null }>;
    events: Array<{ code: string; name: string | null; count: number | null }>;
  };
  qrkiosk: { count: number; amount: number; bySlot: Array<{ slot: number | null; count: number; amount: number }> };
  difference: { count: number | null; amount: number | null };
}

function delta(now: number | null | undefined, before: number | null | undefined): number | null {
  if (now === null || now === undefined || before === null || before === undefined) return null;
  return now - before;
}

/** Machine units (ID4 decimals) -> the currency's minor units; null when it cannot be said exactly. */
export function toMinor(value: number | null, decimals: number | null, currency: string | null): number | null {
  if (value === null) return null;
  if (!currency || !isCurrency(currency)) return decimals === null ? value : null;
  const exp = CURRENCIES[currency].exponent;
  const d = decimals ?? exp;
  if (d === exp) return value;
  if (d < exp) return value * 10 ** (exp - d);
  const f = 10 ** (d - exp);
  return value % f === 0 ? value / f : null;
}

export async function compareAudit(store: RelayStore, audit: DexAuditRecord): Promise<AuditComparison> {
  const prev = await store.previousDexAudit(audit.kioskId, audit.machineSerial, audit.readAt);
  const b = audit.body;
  const p = prev?.body;
  const dev = b.cashlessDevice ?? 1;
  const meter = (x: typeof b | undefined): Meter => (x ? (dev === 2 ? x.cashless2 : x.cashless1) : null);
  const cur = b.currency;
  const conv = (v: number | null) => toMinor(v, b.decimals, cur);
  const own = prev ? await store.dispensedBySlot(audit.kioskId, prev.readAt, audit.readAt) : [];
  const ownCount = own.reduce((s, r) => s + r.count, 0);
  const ownAmount = own.reduce((s, r) => s + r.amount, 0);
  const cashlessCount = p ? delta(meter(b)?.countSinceInit, meter(p)?.countSinceInit) : null;
  const cashlessValue = p ? conv(delta(meter(b)?.valueSinceInit, meter(p)?.valueSinceInit)) : null;
  const prevProducts = new Map((p?.products ?? []).map((x) => [x.selection, x]));
  const prevEvents = new Map((p?.events ?? []).map((x) => [x.code, x]));
  return {
    auditId: audit.auditId,
    kioskId: audit.kioskId,
    machineSerial: audit.machineSerial,
    period: { from: prev?.readAt ?? null, to: audit.readAt },
    currency: cur,
    machine: {
      cashlessCount,
      cashlessValue,
      cashCount: p ? delta(b.cash?.countSinceInit, p.cash?.countSinceInit) : null,
      cashValue: p ? conv(delta(b.cash?.valueSinceInit, p.cash?.valueSinceInit)) : null,
      products: b.products.map((x) => ({ selection: x.selection, count: p ? delta(x.countSinceInit, prevProducts.get(x.selection)?.countSinceInit) : null })),
      events: b.events.map((e) => ({ code: e.code, name: e.name, count: p ? delta(e.sinceInit, prevEvents.get(e.code)?.sinceInit ?? (prevEvents.has(e.code) ? null : 0)) : null })),
    },
    qrkiosk: { count: ownCount, amount: ownAmount, bySlot: own.map((r) => ({ slot: r.slot, count: r.count, amount: r.amount })) },
    difference: {
      count: cashlessCount === null ? null : cashlessCount - ownCount,
      amount: cashlessValue === null ? null : cashlessValue - ownAmount,
    },
  };
}

const money = (minor: number | null, currency: string | null) =>
  minor === null ? '?' : currency && isCurrency(currency) ? formatMoney(minor, currency) : String(minor);

/** The comparison as a technician reads it. */
export function formatComparison(c: AuditComparison): string {
  const out: string[] = [];
  const when = (t: number) => new Date(t).toISOString().replace('T', ' ').slice(0, 16);
  out.push(`audit ${c.auditId}: kiosk ${c.kioskId}, machine ${c.machineSerial}, read ${when(c.period.to)} UTC`);
  if (c.period.from === null) {
    out.push('first audit of this machine: the next read will be compared with this one');
    return out.join('\n');
  }
  out.push(`period ${when(c.period.from)} .. ${when(c.period.to)} UTC`);
  out.push(`machine, qrkiosk's cashless device: ${c.machine.cashlessCount ?? '?'} vends, ${money(c.machine.cashlessValue, c.currency)}`);
  out.push(`qrkiosk, dispensed:                 ${c.qrkiosk.count} vends, ${money(c.qrkiosk.amount, c.currency)}`);
  const dc = c.difference.count;
  const da = c.difference.amount;
  out.push(
    dc === 0 && da === 0
      ? 'difference: none'
      : `difference: ${dc === null ? '?' : dc > 0 ? `+${dc}` : dc} vends, ${da === null ? '?' : money(da, c.currency)} (machine minus qrkiosk) <-- check`,
  );
  out.push(`machine, cash: ${c.machine.cashCount ?? '?'} vends, ${money(c.machine.cashValue, c.currency)}`);
  const sold = c.machine.products.filter((p) => p.count);
  if (sold.length) out.push(`selections sold (all payments): ${sold.map((p) => `${p.selection} x${p.count}`).join(', ')}`);
  const ev = c.machine.events.filter((e) => e.count);
  if (ev.length) out.push(`events: ${ev.map((e) => `${e.code}${e.name ? ` (${e.name})` : ''} x${e.count}`).join(', ')}`);
  return out.join('\n');
}

function csvField(v: unknown): string {
  const s = v === null || v === undefined ? '' : String(v);
  return /[",\r\n]/.test(s) ? `"${s.replace(/"/g, '""')}"` : s;
}

export const DEX_CSV_HEADER = [
  'audit_id', 'kiosk_id', 'machine_serial', 'read_at', 'record', 'key', 'name', 'price',
  'count_since_init', 'value_since_init', 'count_since_reset', 'value_since_reset', 'decimals', 'currency',
] as const;

/** One CSV row per meter, selection and event of each audit (values in the machine's units, see decimals). */
export function auditsCsv(audits: readonly DexAuditRecord[]): string {
  const rows: unknown[][] = [DEX_CSV_HEADER as unknown as unknown[]];
  for (const a of audits) {
    const b = a.body;
    const head = [a.auditId, a.kioskId, a.machineSerial, new Date(a.readAt).toISOString()];
    const tail = [b.decimals, b.currency];
    const meter = (record: string, m: Meter) => {
      if (m) rows.push([...head, record, '', '', '', m.countSinceInit, m.valueSinceInit, m.countSinceReset, m.valueSinceReset, ...tail]);
    };
    meter('paid', b.paid);
    meter('cash', b.cash);
    meter('cashless1', b.cashless1);
    meter('cashless2', b.cashless2);
    for (const p of b.products) {
      rows.push([...head, 'product', p.selection, p.productId, p.price, p.countSinceInit, p.valueSinceInit, p.countSinceReset, p.valueSinceReset, ...tail]);
    }
    for (const e of b.events) rows.push([...head, 'event', e.code, e.name, '', e.sinceInit, '', e.sinceReset, '', ...tail]);
  }
  return rows.map((r) => r.map(csvField).join(',')).join('\r\n') + '\r\n';
}
