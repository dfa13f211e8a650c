// Builds EVA-DTS audit files from the record definitions (docs/dex-audit.md), for machines of
// different shapes, and states the figures a correct parser must find in them.

export interface MachineShape {
  name: string;
  serial: string;
  model: string;
  decimals: number;
  currency: [string, string];
  envelope: boolean;
  products: Array<{ selection: string; price: number; productId?: string; count: number; value: number; countReset: number; valueReset: number }>;
  cash: [number, number, number, number];
  cashless1: [number, number, number, number] | null;
  cashless2: [number, number, number, number] | null;
  events: Array<{ code: string; date?: string; time?: string; sinceReset?: number; sinceInit?: number; active?: boolean }>;
  /** records a parser does not model (must be counted, not break it) */
  extra: string[];
  eol: '\r\n' | '\n';
}

export function buildEvaDts(m: MachineShape): string {
  const body: string[] = [];
  body.push('ST*001*0001');
  body.push(`ID1*${m.serial}*${m.model}*0*Lobby 2**${m.serial.slice(-4)}`);
  body.push(`ID4*${m.decimals}*${m.currency[0]}*${m.currency[1]}`);
  const sum = (k: 'count' | 'value' | 'countReset' | 'valueReset') => m.products.reduce((s, p) => s + p[k], 0);
  body.push(`VA1*${sum('value')}*${sum('count')}*${sum('valueReset')}*${sum('countReset')}`);
  body.push(`CA2*${m.cash.join('*')}`);
  if (m.cashless1) body.push(`DA2*${m.cashless1.join('*')}`);
  if (m.cashless2) body.push(`DB2*${m.cashless2.join('*')}`);
  for (const p of m.products) {
    body.push(`PA1*${p.selection}*${p.price}*${p.productId ?? ''}`);
    body.push(`PA2*${p.count}*${p.value}*${p.countReset}*${p.valueReset}`);
  }
  for (const e of m.events) {
    if (e.date) body.push(`EA1*${e.code}*${e.date}*${e.time ?? ''}`);
    if (e.sinceReset !== undefined) body.push(`EA2*${e.code}*${e.sinceReset}*${e.sinceInit ?? ''}*${e.active === undefined ? '' : e.active ? 1 : 0}`);
  }
  body.push(...m.extra);
  body.push('G85*1A2B');
  body.push(`SE*${body.length + 1}*0001`);
  const lines = m.envelope ? [`DXS*${m.serial.slice(0, 10)}*VA*V1/1*1`, ...body, 'DXE*1*1'] : body;
  return lines.join(m.eol) + m.eol;
}

/** A snack spiral machine, pesos with 2 decimals, cash and one card reader, a door opened and a failed drop. */
export const SNACK: MachineShape = {
  name: 'snack spiral machine',
  serial: 'AMS0123456',
  model: 'AMS39-VCF',
  decimals: 2,
  currency: ['032', 'ARS'],
  envelope: true,
  products: [
    { selection: '11', price: 150000, productId: 'SKU-COLA', count: 120, value: 18000000, countReset: 12, valueReset: 1800000 },
    { selection: '12', price: 99000, productId: 'SKU-CHIPS', count: 80, value: 7920000, countReset: 8, valueReset: 792000 },
    { selection: '13', price: 200000, count: 0, value: 0, countReset: 0, valueReset: 0 },
  ],
  cash: [20000000, 140, 2000000, 14],
  cashless1: [5920000, 60, 592000, 6],
  cashless2: null,
  events: [
    { code: 'EGS', date: '261130', time: '1412', sinceReset: 3, sinceInit: 41, active: false },
    { code: 'EJL', sinceReset: 1, sinceInit: 4, active: false },
  ],
  extra: ['LA1*0*11*150000*12', 'MA5*SWITCH*1*ON', 'TA2*0*0*0*0'],
  eol: '\r\n',
};

/** A coffee machine, reais with 2 decimals, two cashless devices (a card reader and qrkiosk), LF only, no DXS envelope. */
export const COFFEE: MachineShape = {
  name: 'hot drinks machine',
  serial: 'NEC7788990',
  model: 'KIKKO MAX',
  decimals: 2,
  currency: ['986', 'BRL'],
  envelope: false,
  products: [
    { selection: '1', price: 450, count: 3000, value: 1350000, countReset: 300, valueReset: 135000 },
    { selection: '2', price: 600, count: 1500, value: 900000, countReset: 150, valueReset: 90000 },
  ],
  cash: [1500000, 3300, 150000, 330],
  cashless1: [600000, 1000, 60000, 100],
  cashless2: [150000, 200, 15000, 20],
  events: [{ code: 'EAR', sinceReset: 2, sinceInit: 9, active: true }],
  extra: [],
  eol: '\n',
};

/** A can vender priced in whole pesos (0 decimals, Chile), many columns. */
export const CANS: MachineShape = {
  name: 'can vender, whole units',
  serial: 'DN501E0042',
  model: 'DN501E',
  decimals: 0,
  currency: ['152', 'CLP'],
  envelope: true,
  products: Array.from({ length: 10 }, (_, i) => ({ selection: `${i + 1}`, price: 1200, count: 10 * (i + 1), value: 12000 * (i + 1), countReset: i, valueReset: 1200 * i })),
  cash: [660000, 550, 54000, 45],
  cashless1: null,
  cashless2: null,
  events: [{ code: 'EGS', date: '261201', time: '0700' }],
  extra: ['PA3*1*1200', 'CA3*0*0*0*0'],
  eol: '\r\n',
};
