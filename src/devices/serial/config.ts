import * as z from 'zod/mini';
import '../../runtime/zod.js';
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
    .check(z.regex(/^\//, { error: `write an absolute path, e.g. ${example} (ls -l /dev/serial/by-id/)` }));

const baud = (dflt: number) =>
  z._default(
    z.number({ error: hint(`serial speed, e.g. baudRate: ${dflt}`) }).check(
      z.int(),
      z.refine((b) => [1200, 2400, 4800, 9600, 19200, 38400, 57600, 115200, 230400].includes(b), {
        error: `use a standard speed: 9600, 19200, 38400, 57600, 115200 (the device's manual says which; ${dflt} is usual)`,
      }),
    ),
    dflt,
  );

const ms = (what: string, dflt: number, min: number, max: number) =>
  z._default(
    z
      .number({ error: hint(`${what} in ms, e.g. ${dflt}`) })
      .check(
        z.int({ error: `whole milliseconds, e.g. ${dflt}` }),
        z.gte(min, { error: `use at least ${min} (ms)` }),
        z.lte(max, { error: `use at most ${max} (ms)` }),
      ),
    dflt,
  );

const DECIMAL = /^\d{1,7}(\.\d{1,4})?$/;

export const serialPanelSchema = section(
  {
    path: devicePath('/dev/serial/by-id/usb-qrkiosk_panel-if00'),
    baudRate: baud(115200),
    heartbeatMs: ms('how often the agent sends its heartbeat', 1000, 100, 10_000),
    heartbeatTimeoutMs: ms('silence after which the panel counts as silent', 3500, 300, 60_000),
    ackTimeoutMs: ms('wait for the panel to acknowledge a VEND before sending it again', 1000, 50, 10_000),
    maxSends: z._default(
      z
        .number({ error: hint('VEND sends before giving up, e.g. maxSends: 3') })
        .check(z.int(), z.gte(1, { error: 'must be at least 1' }), z.lte(10, { error: 'use at most 10' })),
      3,
    ),
    resultTimeoutMs: ms('how long the panel has to report a vend result', 30_000, 1000, 300_000),
  },
  'serialPanel: { path: /dev/serial/by-id/usb-..., baudRate: 115200 }',
);

export const mdbSchema = section(
  {
    path: devicePath('/dev/serial/by-id/usb-Qibixx_MDB-HAT_0-if00'),
    baudRate: baud(115200),
    items: z.optional(
      z.record(
        z.string().check(z.regex(/^\d{1,5}$/, { error: 'item numbers are whole numbers 0-65535, e.g. 11' })),
        z
          .number({ error: 'map each machine item to a slot number, e.g. 11: 1' })
          .check(
            z.int({ error: 'map each machine item to a slot number, e.g. 11: 1' }),
            z.positive({ error: 'map each machine item to a slot number from 1, e.g. 11: 1' }),
          ),
        { error: hint('machine item number -> slot, e.g. items: { 11: 1, 12: 2 }; leave it out when item N is slot N') },
      ),
    ),
    trustMachinePriceWithin: z.optional(
      z
        .pipe(
          z.union([z.string(), z.number()], { error: hint('a decimal amount, e.g. trustMachinePriceWithin: "0.50"') }),
          z.transform((v) => String(v)),
        )
        .check(z.refine((v) => DECIMAL.test(v), { error: 'write a decimal amount in the catalog currency, e.g. "0.50" (or leave it out: prices must match)' })),
    ),
    resultTimeoutMs: ms('how long the machine has to report the vend after approval', 60_000, 5000, 600_000),
    style: z.optional(
      z.enum(['selection-first', 'card-first'], {
        error: 'use selection-first (the customer chooses on the machine, then pays) or card-first (pays at the kiosk, then chooses on the machine)',
      }),
    ),
    selectTimeoutMs: ms('card-first: how long the customer has to choose on the machine once paid', 60_000, 10_000, 300_000),
    address: z.optional(z.union([z.literal(1), z.literal(2)], { error: 'use 1 (the only cashless device) or 2 (beside a card reader that keeps address 1)' })),
    setup: z.optional(
      section(
        {
          currencyCode: z.optional(
            z.string().check(z.regex(/^0x1\d{3}$/, { error: 'MDB currency code: 0x1 followed by the ISO 4217 number, e.g. 0x1032 for ARS, 0x1986 for BRL' })),
          ),
          // Qibixx takes 1..100 (mdb-scale-factor) and 0..3 (mdb-decimal-places)
          scaleFactor: z._default(
            z.number({ error: hint('the scale factor the reader announces, e.g. scaleFactor: 1') }).check(z.int(), z.gte(1), z.lte(100)),
            1,
          ),
          decimalPlaces: z.optional(
            z
              .number({ error: hint("the decimal places the reader announces, e.g. decimalPlaces: 2 (default: the currency's own, from currencyCode)") })
              .check(z.int(), z.gte(0), z.lte(3)),
          ),
        },
        'setup: { currencyCode: 0x1032, scaleFactor: 1, decimalPlaces: 2 }',
      ),
    ),
    readSetup: z._default(
      z.boolean({ error: hint("true reads the machine's setup off the bus (the board's sniffer) on every enable, false trusts hardware.mdb.setup") }),
      true,
    ),
    setconf: z.optional(
      z.record(
        z.string().check(z.regex(/^[a-z0-9-]+$/, { error: 'Qibixx parameter names look like mdb-always-idle' })),
        z.pipe(z.union([z.string(), z.number()]), z.transform(String)),
        {
          error: hint('extra C,SETCONF parameters for the board, e.g. setconf: { mdb-always-idle: 1 }'),
        },
      ),
    ),
  },
  'mdb: { path: /dev/serial/by-id/usb-Qibixx_MDB-HAT_0-if00 }',
);

export const dexSchema = section(
  {
    path: devicePath('/dev/serial/by-id/usb-FTDI_FT232R_USB_UART_A1-if00-port0'),
    protocol: z._default(z.enum(['dex', 'ddcmp', 'auto'], { error: 'use dex (DEX/UCS), ddcmp, or auto (try DDCMP, then DEX/UCS)' }), 'auto'),
    answerMs: ms('how long the machine has to answer each step', 1000, 100, 10_000),
    passCode: z._default(z.number({ error: hint("the machine's DDCMP pass code, e.g. passCode: 0") }).check(z.int(), z.gte(0), z.lte(0xffff)), 0),
    everyMinutes: z._default(
      z
        .number({ error: hint('read the audit every N minutes, e.g. everyMinutes: 60 (0 = only on qrkiosk dex read)') })
        .check(z.int(), z.gte(0), z.lte(7 * 24 * 60)),
      60,
    ),
  },
  'dex: { path: /dev/serial/by-id/usb-FTDI_..., protocol: auto }',
);

export const printerSchema = section(
  {
    driver: z._default(z.enum(['escpos', 'none'], { error: 'use escpos (an ESC/POS receipt printer) or none' }), 'escpos'),
    path: z._default(devicePath('/dev/usb/lp0'), '/dev/usb/lp0'),
    transport: z._default(z.enum(['auto', 'file', 'serial'], { error: 'use auto, file (/dev/usb/lp0) or serial (/dev/ttyUSB0...)' }), 'auto'),
    baudRate: baud(9600),
    width: z._default(
      z
        .number({ error: hint('characters per line: 32 (58 mm paper) or 48 (80 mm)') })
        .check(z.int(), z.gte(24, { error: 'use 32 for 58 mm paper or 48 for 80 mm' }), z.lte(64, { error: 'use 32 for 58 mm paper or 48 for 80 mm' })),
      32,
    ),
    charset: z._default(z.enum(['cp858', 'ascii'], { error: 'use cp858 (accents, ñ, €) or ascii (accents dropped, for printers without PC858)' }), 'cp858'),
    codeTable: z._default(z.number({ error: hint("the printer's ESC t number for PC858, e.g. codeTable: 19") }).check(z.int(), z.gte(0), z.lte(255)), 19),
    header: z._default(
      z.array(z.string().check(z.maxLength(64)), { error: hint('lines printed at the top, e.g. header: ["Kiosco Centro"]') }).check(z.maxLength(4)),
      [],
    ),
    qrText: z._default(
      z.string({ error: hint('what the receipt QR holds; {orderId} is replaced by the order id') }).check(
        z.minLength(1),
        z.maxLength(300),
        z.refine((s) => s.includes('{orderId}'), { error: 'must contain {orderId}, e.g. "{orderId}" or "https://shop.example/r/{orderId}"' }),
      ),
      '{orderId}',
    ),
    qrModuleSize: z._default(z.number({ error: hint('QR dots per module, e.g. 6') }).check(z.int(), z.gte(1), z.lte(16)), 6),
    cut: z._default(z.enum(['partial', 'full', 'none'], { error: 'use partial, full or none (printers without a cutter)' }), 'partial'),
    timeoutMs: z._default(
      z
        .number({ error: hint('ms a receipt may take to reach the printer before it counts as print_failed, e.g. timeoutMs: 10000') })
        .check(z.int(), z.gte(1000, { error: 'use at least 1000 ms' }), z.lte(120_000, { error: 'use at most 120000 ms' })),
      10_000,
    ),
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
    issue(
      ['hardware', 'buttons', 'driver'],
      "card-first: the customer picks on the kiosk (its buttons or screen) and pays before the machine is touched: set hardware.buttons to the kiosk's own buttons, not mdb",
    );
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
