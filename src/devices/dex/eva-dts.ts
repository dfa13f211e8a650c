// EVA-DTS audit files: what a vending machine knows about its own sales, read over its DEX port.
// The file is a list of records, one per line ("segments"), each an identifier and fields
// separated by '*':
//
//   DXS*<sender>*VA*V1/1*1          transmission header (optional on some machines)
//   ST*001*0001                      audit starts
//   ID1*<serial>*<model>*<build>*<location>*<?>*<asset>      the machine
//   ID4*<decimal places>*<currency numeric>*<currency alpha> how to read every amount below
//   VA1*<value>*<count>*<value since reset>*<count since reset>   all paid vends
//   CA2*<value>*<count>*<value since reset>*<count since reset>   cash sales
//   DA2*...  DB2*...                 cashless device 1 / 2 sales (same four meters)
//   PA1*<selection>*<price>*<product id>     one column/selection ...
//   PA2*<count>*<value>*<count since reset>*<value since reset>   ... and its paid sales
//   EA1*<event>*<YYMMDD>*<HHMM>      one event (door opened at ...)
//   EA2*<event>*<since reset>*<since init>*<active>   an event's counters
//   G85*<check>                      batch check value (kept, not verified here)
//   SE*<segments from ST to SE>*0001 audit ends: the count catches a cut-off file
//   DXE*1*1                          transmission trailer
//
// Amounts are whole numbers in the machine's smallest unit: ID4's decimal places say where the
// point goes. A record that does not parse is never skipped: the audit is the operator's books,
// and a half-read file that looks whole is worse than an error that names the broken record.

export interface DexMeter {
  valueSinceInit: number | null;
  countSinceInit: number | null;
  valueSinceReset: number | null;
  countSinceReset: number | null;
}

export interface DexProduct {
  /** PA101: the selection / column as the machine names it ("11", "A3") */
  selection: string;
  /** PA102, in the machine's smallest unit */
  price: number | null;
  productId: string | null;
  /** PA2 */
  paid: { countSinceInit: number | null; valueSinceInit: number | null; countSinceReset: number | null; valueSinceReset: number | null } | null;
}

export interface DexEvent {
  code: string;
  /** a name for the codes we know, else null (the code is always kept) */
  name: string | null;
  /** EA1: when the single event happened (YYMMDD, HHMM as the machine wrote them) */
  date: string | null;
  time: string | null;
  /** EA2 counters */
  sinceReset: number | null;
  sinceInit: number | null;
  active: boolean | null;
}

export interface DexAudit {
  machine: { serial: string; model: string | null; location: string | null; asset: string | null };
  /** ID4: null when the file does not say (then amounts are read with the catalog's decimals) */
  decimals: number | null;
  currency: { numeric: string | null; alpha: string | null } | null;
  paid: DexMeter | null;
  cash: DexMeter | null;
  /** DA2 (cashless device 1) and DB2 (device 2) */
  cashless: { device1: DexMeter | null; device2: DexMeter | null };
  products: DexProduct[];
  events: DexEvent[];
  /** segments between ST and SE, both included */
  segments: number;
  /** the record identifiers we did not model, with how often they occurred */
  other: Record<string, number>;
}

/** What was wrong, with the record that was wrong. */
export class DexParseError extends Error {
  constructor(
    readonly record: string,
    readonly line: number,
    message: string,
  ) {
    super(`DEX audit, line ${line} (${record}): ${message}`);
    this.name = 'DexParseError';
  }
}

/** Event codes named by the public EVA-DTS event tables; anything else keeps its code only. */
export const KNOWN_EVENTS: Readonly<Record<string, string>> = {
  EGS: 'door open',
  EJL: 'delivery (drop) sensor error',
  EJB: 'motor jam',
  EAR: 'coin mechanism error',
  ENE: 'cash box full',
};

const ID = /^[A-Z][A-Z0-9]{1,3}$/;
const PRINTABLE = /^[\x20-\x7e]*$/;

export function parseEvaDts(input: string | Uint8Array): DexAudit {
  const text = typeof input === 'string' ? input : Buffer.from(input).toString('latin1');
  const lines = text.split(/\r?\n/);
  // one trailing newline (or none) is normal; strip only empty tail lines
  while (lines.length > 0 && lines.at(-1) === '') lines.pop();
  if (lines.length === 0) throw new DexParseError('(none)', 0, 'the audit is empty: nothing was read from the machine');

  const audit: DexAudit = {
    machine: { serial: '', model: null, location: null, asset: null },
    decimals: null,
    currency: null,
    paid: null,
    cash: null,
    cashless: { device1: null, device2: null },
    products: [],
    events: [],
    segments: 0,
    other: {},
  };
  let sawDxs = false;
  let inSet = false;
  let sawSe = false;
  let sawDxe = false;
  let stLine = 0;
  let lastId = '(none)';
  let product: DexProduct | undefined;
  const events = new Map<string, DexEvent>();

  lines.forEach((raw, i) => {
    const lineNo = i + 1;
    const line = raw.replace(/\r$/, '');
    const f = line.split('*');
    const id = f[0] ?? '';
    const fail = (msg: string): never => {
      throw new DexParseError(ID.test(id) ? id : `after ${lastId}`, lineNo, msg);
    };
    if (!ID.test(id)) fail(`"${printableSample(line)}" is not an EVA-DTS record (want an identifier like PA1 followed by '*'): the file is corrupted; read the machine again`);
    if (!PRINTABLE.test(line)) fail('bytes outside printable ASCII: the file is corrupted (noise on the DEX cable?); read the machine again');
    if (sawDxe) fail('records after DXE (the transmission trailer): two audits were joined or the file is corrupted');
    lastId = id;

    const num = (k: number, label = `${id}${String(k).padStart(2, '0')}`): number | null => {
      const v = f[k];
      if (v === undefined || v === '') return null;
      if (!/^-?\d{1,12}$/.test(v)) fail(`field ${label} "${printableSample(v)}" is not a whole number: the file is corrupted; read the machine again`);
      return Number(v);
    };
    const str = (k: number): string | null => {
      const v = f[k];
      return v === undefined || v === '' ? null : v;
    };
    const meter = (): DexMeter => ({ valueSinceInit: num(1), countSinceInit: num(2), valueSinceReset: num(3), countSinceReset: num(4) });

    if (id === 'DXS') {
      if (i !== 0) fail('DXS (transmission header) must be the first record');
      sawDxs = true;
      return;
    }
    if (id === 'DXE') {
      if (!sawSe) fail('DXE (transmission trailer) before SE: the audit set was cut off');
      sawDxe = true;
      return;
    }
    if (id === 'ST') {
      if (inSet || sawSe) fail('a second ST: only one audit per file is read');
      inSet = true;
      stLine = lineNo;
      audit.segments = 1;
      return;
    }
    if (!inSet) fail(`${id} before ST (the audit's first record): the start of the file is missing`);
    audit.segments++;
    switch (id) {
      case 'SE': {
        const declared = num(1, 'SE01');
        if (declared === null) fail('SE01 (the number of records) is missing');
        if (declared !== audit.segments) {
          fail(`SE says ${declared} records from ST (line ${stLine}) to SE, the file has ${audit.segments}: records were lost or added in transfer; read the machine again`);
        }
        inSet = false;
        sawSe = true;
        return;
      }
      case 'ID1':
        audit.machine = { serial: str(1) ?? '', model: str(2), location: str(4), asset: str(6) };
        if (!audit.machine.serial) fail('ID101 (the machine serial number) is empty');
        return;
      case 'ID4': {
        const d = num(1, 'ID401');
        if (d !== null && (d < 0 || d > 4)) fail(`ID401 decimal places ${d} is out of range (0-4)`);
        audit.decimals = d;
        audit.currency = { numeric: str(2), alpha: str(3) };
        return;
      }
      case 'VA1':
        audit.paid = meter();
        return;
      case 'CA2':
        audit.cash = meter();
        return;
      case 'DA2':
        audit.cashless.device1 = meter();
        return;
      case 'DB2':
        audit.cashless.device2 = meter();
        return;
      case 'PA1': {
        const sel = str(1);
        if (sel === null) fail('PA101 (the selection number) is empty');
        product = { selection: sel!, price: num(2), productId: str(3), paid: null };
        audit.products.push(product);
        return;
      }
      case 'PA2':
        if (!product) fail('PA2 (sales of a product) with no PA1 before it');
        product!.paid = { countSinceInit: num(1), valueSinceInit: num(2), countSinceReset: num(3), valueSinceReset: num(4) };
        return;
      case 'EA1':
      case 'EA2': {
        const code = str(1);
        if (code === null || !/^[A-Z0-9]{2,4}$/.test(code)) fail(`${id}01 (the event code) "${code ?? ''}" is not an event code`);
        let ev = events.get(code!);
        if (!ev) {
          ev = { code: code!, name: KNOWN_EVENTS[code!] ?? null, date: null, time: null, sinceReset: null, sinceInit: null, active: null };
          events.set(code!, ev);
          audit.events.push(ev);
        }
        if (id === 'EA1') {
          ev.date = str(2);
          ev.time = str(3);
          if (ev.date !== null && !/^\d{6}$/.test(ev.date)) fail(`EA102 date "${printableSample(ev.date)}" is not YYMMDD`);
        } else {
          ev.sinceReset = num(2);
          ev.sinceInit = num(3);
          const a = str(4);
          ev.active = a === null ? null : a === '1';
        }
        return;
      }
      default:
        audit.other[id] = (audit.other[id] ?? 0) + 1;
        return;
    }
  });

  const last = lines.length;
  if (!audit.machine.serial && audit.segments > 0 && !inSet) throw new DexParseError('ID1', last, 'the audit has no ID1 (machine identification): it cannot be matched to a machine');
  if (inSet) throw new DexParseError(lastId, last, `the file ends after ${lastId} without SE: the transfer was cut off; read the machine again`);
  if (!sawSe) throw new DexParseError(lastId, last, 'no ST...SE audit set in the file');
  if (sawDxs && !sawDxe) throw new DexParseError('SE', last, 'DXS was sent but DXE (the transmission trailer) is missing: the transfer was cut off; read the machine again');
  if (!audit.machine.serial) throw new DexParseError('ID1', last, 'the audit has no ID1 (machine identification): it cannot be matched to a machine');
  return audit;
}

function printableSample(s: string): string {
  const t = s.replace(/[^\x20-\x7e]/g, (c) => `\\x${c.charCodeAt(0).toString(16).padStart(2, '0')}`);
  return t.length > 40 ? `${t.slice(0, 40)}...` : t;
}

/** Total paid sales counted by the product records since the last reset (for the relay's comparison). */
export function productTotals(a: DexAudit): { count: number; value: number } {
  let count = 0;
  let value = 0;
  for (const p of a.products) {
    count += p.paid?.countSinceReset ?? 0;
    value += p.paid?.valueSinceReset ?? 0;
  }
  return { count, value };
}
