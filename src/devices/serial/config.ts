import { z } from 'zod';
import { hint, section } from '../../runtime/schema-helpers.js';

// Agent config sections of the serial devices: hardware.serialPanel, hardware.mdb,
// hardware.printer (docs/config.md), and the `serial-panel` / `mdb` variants of the buttons and
// dispenser drivers. Kept next to the drivers; src/agent/config.ts and hardware-config.ts only
// mount them. A panel or an MDB machine is ONE device behind both the buttons and the dispenser,
// so its port settings live in their own section instead of being written twice.

/** hardware.buttons variants (added to BUTTON_VARIANTS) */
export const SERIAL_BUTTON_VARIANTS = [
  section({ driver: z.literal('serial-panel') }, 'buttons: { driver: serial-panel } (the port is set in hardware.serialPanel)'),
  section({ driver: z.literal('mdb') }, 'buttons: { driver: mdb } (the port is set in hardware.mdb)'),
] as const;

/** hardware.dispenser variants (added to DISPENSER_VARIANTS) */
export const SERIAL_DISPENSER_VARIANTS = [
  section({ driver: z.literal('serial-panel') }, 'dispenser: { driver: serial-panel } (the port is set in hardware.serialPanel)'),
  section({ driver: z.literal('mdb') }, 'dispenser: { driver: mdb } (the port is set in hardware.mdb)'),
] as const;

const devicePath = (example: string) =>
  z
    .string({ error: hint(`the device path, e.g. path: ${example}`) })
    .regex(/^\//, { error: `write an absolute path, e.g. ${example} (ls -l /dev/serial/by-id/)` });

const baud = (dflt: number) =>
  z
    .number({ error: hint(`serial speed, e.g. baudRate: ${dflt}`) })
    .int()
    .refine((b) => [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400].includes(b), {
      error: `use a standard speed: 9600, 19200, 38400, 57600, 115200 (the device's manual says which; ${dflt} is usual)`,
    })
    .default(dflt);

const ms = (what: string, dflt: number, min: number, max: number) =>
  z
    .number({ error: hint(`${what} in ms, e.g. ${dflt}`) })
    .int({ error: `whole milliseconds, e.g. ${dflt}` })
    .min(min, { error: `use at least ${min} (ms)` })
    .max(max, { error: `use at most ${max} (ms)` })
    .default(dflt);

const DECIMAL = /^\d{1,7}(\.\d{1,4})?$/;

export const serialPanelSchema = section(
  {
    path: devicePath('/dev/serial/by-id/usb-qrkiosk_panel-if00'),
    baudRate: baud(115200),
    heartbeatMs: ms('how often the agent sends its heartbeat', 1000, 100, 10_000),
    heartbeatTimeoutMs: ms('silence after which the panel counts as silent', 3500, 300, 60_000),
    ackTimeoutMs: ms('wait for the panel to acknowledge a VEND before sending it again', 1000, 50, 10_000),
    maxSends: z
      .number({ error: hint('VEND sends before giving up, e.g. maxSends: 3') })
      .int()
      .min(1, { error: 'must be at least 1' })
      .max(10, { error: 'use at most 10' })
      .default(3),
    resultTimeoutMs: ms('how long the panel has to report a vend result', 30_000, 1000, 300_000),
  },
  'serialPanel: { path: /dev/serial/by-id/usb-..., baudRate: 115200 }',
);

export const mdbSchema = section(
  {
    path: devicePath('/dev/serial/by-id/usb-Qibixx_MDB-HAT_0-if00'),
    baudRate: baud(115200),
    items: z
      .record(
        z.string().regex(/^\d{1,5}$/, { error: 'item numbers are whole numbers 0-65535, e.g. 11' }),
        z
          .number({ error: 'map each machine item to a slot number, e.g. 11: 1' })
          .int({ error: 'map each machine item to a slot number, e.g. 11: 1' })
          .positive({ error: 'map each machine item to a slot number from 1, e.g. 11: 1' }),
        { error: hint('machine item number -> slot, e.g. items: { 11: 1, 12: 2 }; leave it out when item N is slot N') },
      )
      .optional(),
    trustMachinePriceWithin: z
      .union([z.string(), z.number()], { error: hint('a decimal amount, e.g. trustMachinePriceWithin: "0.50"') })
      .transform((v) => String(v))
      .refine((v) => DECIMAL.test(v), { error: 'write a decimal amount in the catalog currency, e.g. "0.50" (or leave it out: prices must match)' })
      .optional(),
    resultTimeoutMs: ms('how long the machine has to report the vend after approval', 60_000, 5000, 600_000),
    style: z
      .enum(['selection-first', 'card-first'], {
        error: 'use selection-first (the customer chooses on the machine, then pays) or card-first (pays at the kiosk, then chooses on the machine)',
      })
      .optional(),
    selectTimeoutMs: ms('card-first: how long the customer has to choose on the machine once paid', 60_000, 10_000, 300_000),
    address: z
      .union([z.literal(1), z.literal(2)], { error: 'use 1 (the only cashless device) or 2 (beside a card reader that keeps address 1)' })
      .optional(),
    setup: section(
      {
        currencyCode: z
          .string()
          .regex(/^0x1\d{3}$/, { error: 'MDB currency code: 0x1 followed by the ISO 4217 number, e.g. 0x1032 for ARS, 0x1986 for BRL' })
          .optional(),
        // Qibixx takes 1..100 (mdb-scale-factor) and 0..3 (mdb-decimal-places)
        scaleFactor: z.number({ error: hint('the scale factor the reader announces, e.g. scaleFactor: 1') }).int().min(1).max(100).default(1),
        decimalPlaces: z
          .number({ error: hint('the decimal places the reader announces, e.g. decimalPlaces: 2 (default: the currency\'s own, from currencyCode)') })
          .int()
          .min(0)
          .max(3)
          .optional(),
      },
      'setup: { currencyCode: 0x1032, scaleFactor: 1, decimalPlaces: 2 }',
    ).optional(),
    readSetup: z
      .boolean({ error: hint('true reads the machine\'s setup off the bus (the board\'s sniffer) on every enable, false trusts hardware.mdb.setup') })
      .default(true),
    setconf: z
      .record(z.string().regex(/^[a-z0-9-]+$/, { error: 'Qibixx parameter names look like mdb-always-idle' }), z.union([z.string(), z.number()]).transform(String), {
        error: hint('extra C,SETCONF parameters for the board, e.g. setconf: { mdb-always-idle: 1 }'),
      })
      .optional(),
  },
  'mdb: { path: /dev/serial/by-id/usb-Qibixx_MDB-HAT_0-if00 }',
);

export const dexSchema = section(
  {
    path: devicePath('/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A1-if00-port0'),
    protocol: z.enum(['dex', 'ddcmp', 'auto'], { error: 'use dex (DEX/UCS), ddcmp, or auto (try DDCMP, then DEX/UCS)' }).default('auto'),
    answerMs: ms('how long the machine has to answer each step', 1000, 100, 10_000),
    passCode: z.number({ error: hint('the machine\'s DDCMP pass code, e.g. passCode: 0') }).int().min(0).max(0xffff).default(0),
    everyMinutes: z
      .number({ error: hint('read the audit every N minutes, e.g. everyMinutes: 60 (0 = only on qrkiosk dex read)') })
      .int()
      .min(0)
      .max(7 * 24 * 60)
      .default(60),
  },
  'dex: { path: /dev/serial/by-id/usb-FTDI_..., protocol: auto }',
);

export const printerSchema = section(
  {
    driver: z.enum(['escpos', 'none'], { error: 'use escpos (an ESC/POS receipt printer) or none' }).default('escpos'),
    path: devicePath('/dev/usb/lp0').default('/dev/usb/lp0'),
    transport: z
      .enum(['auto', 'file', 'serial'], { error: 'use auto, file (/dev/usb/lp0) or serial (/dev/ttyUSB0...)' })
      .default('auto'),
    baudRate: baud(9600),
    width: z
      .number({ error: hint('characters per line: 32 (58 mm paper) or 48 (80 mm)') })
      .int()
      .min(24, { error: 'use 32 for 58 mm paper or 48 for 80 mm' })
      .max(64, { error: 'use 32 for 58 mm paper or 48 for 80 mm' })
      .default(32),
    charset: z.enum(['cp858', 'ascii'], { error: 'use cp858 (accents, ñ, €) or ascii (accents dropped, for printers without PC858)' }).default('cp858'),
    codeTable: z
      .number({ error: hint("the printer's ESC t number for PC858, e.g. codeTable: 19") })
      .int()
      .min(0)
      .max(255)
      .default(19),
    header: z.array(z.string().max(64), { error: hint('lines printed at the top, e.g. header: ["Kiosco Centro"]') }).max(4).default([]),
    qrText: z
      .string({ error: hint('what the receipt QR holds; {orderId} is replaced by the order id') })
      .min(1)
      .max(300)
      .refine((s) => s.includes('{orderId}'), { error: 'must contain {orderId}, e.g. "{orderId}" or "https://shop.example/r/{orderId}"' })
      .default('{orderId}'),
    qrModuleSize: z.number({ error: hint('QR dots per module, e.g. 6') }).int().min(1).max(16).default(6),
    cut: z.enum(['partial', 'full', 'none'], { error: 'use partial, full or none (printers without a cutter)' }).default('partial'),
    timeoutMs: z
      .number({ error: hint('ms a receipt may take to reach the printer before it counts as print_failed, e.g. timeoutMs: 10000') })
      .int()
      .min(1000, { error: 'use at least 1000 ms' })
      .max(120_000, { error: 'use at most 120000 ms' })
      .default(10_000),
  },
  'printer: { path: /dev/usb/lp0 }',
);

export type SerialPanelConfig = z.output<typeof serialPanelSchema>;
export type MdbConfig = z.output<typeof mdbSchema>;
export type DexConfig = z.output<typeof dexSchema>;
export type PrinterConfig = z.output<typeof printerSchema>;

/** The cross-checks that need the whole hardware section (mounted in the agent's superRefine). */
export interface SerialHardwareView {
  buttons: { driver: string };
  dispenser: { driver: string };
  serialPanel?: SerialPanelConfig | undefined;
  mdb?: MdbConfig | undefined;
}

export function checkSerialHardware(
  hw: SerialHardwareView,
  slots: ReadonlyArray<{ slot: number }>,
  issue: (path: Array<string | number>, message: string) => void,
): void {
  const usesPanel = hw.buttons.driver === 'serial-panel' || hw.dispenser.driver === 'serial-panel';
  if (usesPanel && !hw.serialPanel) {
    issue(['hardware', 'serialPanel'], 'missing: the serial-panel driver needs hardware.serialPanel: { path: /dev/serial/by-id/... }');
  }
  const mdbButtons = hw.buttons.driver === 'mdb';
  const mdbDispenser = hw.dispenser.driver === 'mdb';
  if ((mdbButtons || mdbDispenser) && !hw.mdb) {
    issue(['hardware', 'mdb'], 'missing: the mdb driver needs hardware.mdb: { path: /dev/serial/by-id/usb-Qibixx_MDB-HAT_0-if00 }');
  }
  if (mdbButtons && hw.mdb?.style === 'card-first') {
    // card-first: the machine keypad only chooses inside a paid session; the kiosk's own buttons pick
    issue(['hardware', 'buttons', 'driver'], 'card-first: the customer picks on the kiosk (its buttons or screen) and pays before the machine is touched: set hardware.buttons to the kiosk\'s own buttons, not mdb');
  } else if (mdbButtons !== mdbDispenser && !(mdbDispenser && hw.mdb?.style === 'card-first')) {
    // the machine's keypad chooses and the machine vends what was chosen: one without the other
    // cannot sell anything
    issue(
      ['hardware', mdbButtons ? 'dispenser' : 'buttons', 'driver'],
      'an MDB machine selects and dispenses itself: set both hardware.buttons.driver and hardware.dispenser.driver to mdb',
    );
  }
  if (hw.mdb?.items) {
    const have = new Set(slots.map((s) => s.slot));
    for (const [item, slot] of Object.entries(hw.mdb.items)) {
      if (Number(item) > 65535) issue(['hardware', 'mdb', 'items', item], 'MDB item numbers go up to 65535');
      if (!have.has(slot)) issue(['hardware', 'mdb', 'items', item], `slot ${slot} is not in slots[]: add it there or map item ${item} to a listed slot`);
    }
  }
}
