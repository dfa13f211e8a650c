import type { Logger } from '../../runtime/log.js';
import type { Buttons } from '../buttons.js';
import type { Dispenser } from '../dispenser.js';
import type { FaultSink } from '../faults.js';
import { MdbCashless, MDB_DEFAULTS, mdbSetconf } from '../mdb/cashless.js';
import { currencyOfMdbCode } from '../mdb/bus-setup.js';
import { CURRENCIES } from '../../core/money.js';
import { DeviceFileTransport, ReceiptPrinter, SerialPrinterTransport, transportFor, type PrinterTransport } from '../printer/printer.js';
import type { MdbConfig, PrinterConfig, SerialPanelConfig } from './config.js';
import type { OpenPort } from './line-port.js';
import { SerialPanel } from './panel.js';

// Builds the serial devices from the agent config. The agent builds its buttons and its
// dispenser separately, but a serial panel (or an MDB machine) is ONE device behind both: the
// instance is shared per config object, so both faces talk over the same port.

interface Shared {
  panel?: SerialPanel;
  mdb?: MdbCashless;
}

const shared = new WeakMap<object, Shared>();

function slot(cfg: object): Shared {
  let s = shared.get(cfg);
  if (!s) shared.set(cfg, (s = {}));
  return s;
}

export interface SerialBuildOptions {
  logger?: Logger;
  faults?: FaultSink;
  /** tests: a binding-mock port instead of the real binding */
  openPort?: OpenPort;
}

export function serialPanelFor(owner: object, c: SerialPanelConfig, opts: SerialBuildOptions = {}): SerialPanel {
  const s = slot(owner);
  s.panel ??= new SerialPanel({
    path: c.path,
    baudRate: c.baudRate,
    heartbeatMs: c.heartbeatMs,
    heartbeatTimeoutMs: c.heartbeatTimeoutMs,
    ackTimeoutMs: c.ackTimeoutMs,
    maxSends: c.maxSends,
    resultTimeoutMs: c.resultTimeoutMs,
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.faults ? { faults: opts.faults } : {}),
    ...(opts.openPort ? { openPort: opts.openPort } : {}),
  });
  return s.panel;
}

/**
 * What the reader is to announce at setup, from hardware.mdb.setup: the decimal places default to
 * the currency's own (2 for ARS, 0 for CLP) when only the currency is given, so the reader and
 * the catalog agree by construction. Undefined = the config says nothing: the board's own setup.
 */
export function mdbReaderSetup(c: MdbConfig): { currencyCode?: string; scaleFactor: number; decimalPlaces: number } | undefined {
  if (!c.setup) return undefined;
  const cur = c.setup.currencyCode ? currencyOfMdbCode(c.setup.currencyCode) : undefined;
  const decimalPlaces = c.setup.decimalPlaces ?? (cur ? CURRENCIES[cur].exponent : 2);
  return { ...(c.setup.currencyCode ? { currencyCode: c.setup.currencyCode } : {}), scaleFactor: c.setup.scaleFactor, decimalPlaces };
}

export function mdbFor(owner: object, c: MdbConfig, opts: SerialBuildOptions = {}): MdbCashless {
  const s = slot(owner);
  const setup = mdbReaderSetup(c);
  s.mdb ??= new MdbCashless({
    path: c.path,
    baudRate: c.baudRate ?? MDB_DEFAULTS.baudRate,
    resultTimeoutMs: c.resultTimeoutMs,
    ...(c.items ? { items: new Map(Object.entries(c.items).map(([item, sl]) => [Number(item), sl])) } : {}),
    ...(c.trustMachinePriceWithin !== undefined ? { trustMachinePriceWithin: c.trustMachinePriceWithin } : {}),
    ...(c.style ? { style: c.style } : {}),
    selectTimeoutMs: c.selectTimeoutMs,
    setconf: mdbSetconf({ address: c.address, style: c.style, ...(setup ?? {}), setconf: c.setconf }),
    scale: setup ? { scaleFactor: setup.scaleFactor, decimalPlaces: setup.decimalPlaces, source: 'config' } : null,
    readSetup: c.readSetup,
    ...(setup ? { expectReader: setup } : {}),
    ...(opts.logger ? { logger: opts.logger } : {}),
    ...(opts.faults ? { faults: opts.faults } : {}),
    ...(opts.openPort ? { openPort: opts.openPort } : {}),
  });
  return s.mdb;
}

export function printerTransport(c: PrinterConfig, openPort?: OpenPort): PrinterTransport {
  switch (c.transport) {
    case 'file':
      return new DeviceFileTransport(c.path);
    case 'serial':
      return new SerialPrinterTransport(c.path, c.baudRate, openPort);
    case 'auto':
      return transportFor(c.path, c.baudRate, openPort);
  }
}

/** The receipt printer, or undefined when none is configured. */
export function receiptPrinterFor(c: PrinterConfig | undefined, locale: string, opts: SerialBuildOptions = {}): ReceiptPrinter | undefined {
  if (!c || c.driver === 'none') return undefined;
  return new ReceiptPrinter(
    printerTransport(c, opts.openPort),
    {
      width: c.width,
      charset: c.charset,
      codeTable: c.codeTable,
      header: c.header,
      qrText: c.qrText,
      qrModuleSize: c.qrModuleSize,
      cut: c.cut,
      locale,
    },
    opts.logger?.child({ part: 'printer' }),
    opts.faults,
    c.timeoutMs,
  );
}

/** What hardware.buttons / hardware.dispenser / hardware.serialPanel / hardware.mdb ask for. */
export interface SerialHardwareConfig {
  buttons: { driver: string };
  dispenser: { driver: string };
  serialPanel?: SerialPanelConfig | undefined;
  mdb?: MdbConfig | undefined;
}

/**
 * The buttons and/or dispenser faces of a serial panel or an MDB machine, when the config names
 * those drivers (undefined otherwise). `have`: faces the agent already has (tests inject them).
 * Nothing is opened yet: the port opens on buttons.start() or the first vend.
 */
export function openSerialDevices(
  hw: SerialHardwareConfig,
  opts: SerialBuildOptions & { have?: { buttons?: boolean; dispenser?: boolean } | undefined } = {},
): { buttons?: Buttons; dispenser?: Dispenser } {
  const out: { buttons?: Buttons; dispenser?: Dispenser } = {};
  const b = hw.buttons.driver;
  const d = hw.dispenser.driver;
  const build = { ...(opts.logger ? { logger: opts.logger } : {}), ...(opts.faults ? { faults: opts.faults } : {}), ...(opts.openPort ? { openPort: opts.openPort } : {}) };
  if (!opts.have?.buttons && b === 'serial-panel') out.buttons = serialPanelFor(hw, hw.serialPanel!, build).buttons;
  if (!opts.have?.dispenser && d === 'serial-panel') out.dispenser = serialPanelFor(hw, hw.serialPanel!, build).dispenser;
  if (!opts.have?.buttons && b === 'mdb') out.buttons = mdbFor(hw, hw.mdb!, build).buttons;
  if (!opts.have?.dispenser && d === 'mdb') {
    const mdb = mdbFor(hw, hw.mdb!, build);
    out.dispenser = mdb.dispenser;
    // card-first: no MDB buttons face starts the port, and the VMC must find its reader set up
    // and enabled before the first paid order, so the board is enabled now
    if (b !== 'mdb') mdb.start();
  }
  return out;
}
