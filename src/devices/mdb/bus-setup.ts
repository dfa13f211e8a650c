import { CURRENCIES, formatMoney, type Currency } from '../../core/money.js';

// What the machine and the reader told each other at MDB setup, read off the bus.
//
// The Qibixx board has no command that reads its cashless setup back, but its sniffer does
// (X,1 on, X,0 off): every MDB block on the bus is printed as
//
//   x,<status>,<timestamp>,<command>,<data hex>   a block from the VMC (status 00)
//   x,<status>,<timestamp>,<data hex>|ACK         a peripheral's answer (status 80)
//
// (status: high bit = sent by a peripheral, low bits = a bus error; timestamp in 0.1 ms). When
// the board is enabled (C,1) the VMC sets the cashless device up again, and three blocks carry
// what qrkiosk needs (MDB 4.x, cashless device section; the command byte is the device's address
// + 1: 0x11 for the first cashless device, 0x61 for the second):
//
//   VMC:    11 00 <level> <columns> <rows> <display>          SETUP, config data
//   reader: 01 <level> <cc hi> <cc lo> <scale> <decimals> <max response s> <options>
//                                                             READER CONFIG DATA (direct answer
//                                                             or the answer to a later POLL)
//   VMC:    11 01 <max hi> <max lo> <min hi> <min lo>         SETUP, max/min prices, in the
//                                                             reader's scaled units
//           11 01 <max: 4 bytes> <min: 4 bytes> <currency: 2> the same with 32-bit money (level 3)
//
// The reader config data is the board's own announcement of the scale factor and decimal places
// (what it took from C,SETCONF, or its defaults when it took nothing), so this is the check that
// the board really announces what the config asked for. The VMC's max/min prices are what the
// machine believes its dearest and cheapest selections cost, in those units: a machine whose
// decimal point disagrees with the reader's shows it here before anyone chooses a product.

export interface SniffBlock {
  /** 'vmc' = sent by the bus master, 'peripheral' = an answer */
  from: 'vmc' | 'peripheral';
  /** low bits of the status byte: a bus error the sniffer saw (0 = none) */
  error: number;
  /** VMC blocks: the address + command byte (0x11 = SETUP of the first cashless device) */
  command: number | null;
  /** the data bytes (without the MDB checksum); null for a bare ACK */
  data: Buffer | null;
}

const HEX = /^(?:[0-9a-fA-F]{2})*$/;

/** One sniffer line (`x,...`), or null when it is not a well-formed block (x,ACK and the like). */
export function parseSniffLine(line: string): SniffBlock | null {
  const f = line.trim().split(',');
  if (f[0] !== 'x' || f.length < 4 || !/^[0-9a-fA-F]{2}$/.test(f[1]!) || !/^\d{1,12}$/.test(f[2]!)) return null;
  const status = parseInt(f[1]!, 16);
  const from = status & 0x80 ? 'peripheral' : 'vmc';
  const error = status & 0x7f;
  if (from === 'peripheral') {
    if (f.length !== 4) return null;
    if (f[3] === 'ACK') return { from, error, command: null, data: null };
    return HEX.test(f[3]!) && f[3]!.length > 0 ? { from, error, command: null, data: Buffer.from(f[3]!, 'hex') } : null;
  }
  if (f.length === 4) return f[3] === 'ACK' ? { from, error, command: null, data: null } : null;
  if (f.length !== 5 || !/^[0-9a-fA-F]{2}$/.test(f[3]!) || !HEX.test(f[4]!)) return null;
  return { from, error, command: parseInt(f[3]!, 16), data: Buffer.from(f[4]!, 'hex') };
}

export interface VmcConfig {
  featureLevel: number;
  displayColumns: number;
  displayRows: number;
  displayInfo: number;
}

export interface ReaderConfig {
  featureLevel: number;
  /** as C,SETCONF writes it: 0x1 + the ISO 4217 number, e.g. "0x1032" (ARS) */
  currencyCode: string;
  scaleFactor: number;
  decimalPlaces: number;
  maxResponseSeconds: number;
  options: number;
}

export interface VmcPrices {
  /** in the reader's scaled units; null = the VMC did not say (0xFFFF / 0x0000) */
  max: number | null;
  min: number | null;
  /** the 32-bit form carries the currency again */
  currencyCode?: string;
}

export interface BusSetup {
  vmc: VmcConfig | null;
  reader: ReaderConfig | null;
  prices: VmcPrices | null;
  /** sniffed blocks with a bus error bit, while reading */
  busErrors: number;
}

function currencyHex(hi: number, lo: number): string {
  return `0x${hi.toString(16).padStart(2, '0')}${lo.toString(16).padStart(2, '0')}`;
}

/**
 * Collects the setup exchange of one cashless device (address 0x10 or 0x60) from sniffed blocks.
 * A peripheral block answers the VMC block just before it; only answers to our address count.
 */
export class SetupExchange {
  readonly setup: BusSetup = { vmc: null, reader: null, prices: null, busErrors: 0 };
  private lastVmcCommand: number | null = null;
  constructor(private readonly address: number) {}

  /** true when the block completed the picture (reader config and max/min prices seen) */
  take(b: SniffBlock): boolean {
    if (b.error) this.setup.busErrors++;
    if (b.from === 'vmc') {
      if (b.command !== null) this.lastVmcCommand = b.command;
      if (b.command === (this.address | 1) && b.data && !b.error) this.vmcSetup(b.data);
    } else if (b.data && !b.error && this.lastVmcCommand !== null && (this.lastVmcCommand & 0xf8) === this.address) {
      const d = b.data;
      // reader config data, as the direct answer to SETUP or to a later POLL
      if (d.length === 8 && d[0] === 0x01) {
        this.setup.reader = {
          featureLevel: d[1]!,
          currencyCode: currencyHex(d[2]!, d[3]!),
          scaleFactor: d[4]!,
          decimalPlaces: d[5]!,
          maxResponseSeconds: d[6]!,
          options: d[7]!,
        };
      }
    }
    return this.complete();
  }

  complete(): boolean {
    return this.setup.reader !== null && this.setup.prices !== null;
  }

  private vmcSetup(d: Buffer): void {
    if (d[0] === 0x00 && d.length === 5) {
      this.setup.vmc = { featureLevel: d[1]!, displayColumns: d[2]!, displayRows: d[3]!, displayInfo: d[4]! };
    } else if (d[0] === 0x01 && d.length === 5) {
      const max = d.readUInt16BE(1);
      const min = d.readUInt16BE(3);
      this.setup.prices = { max: max === 0xffff ? null : max, min: min === 0 ? null : min };
    } else if (d[0] === 0x01 && d.length === 11) {
      const max = d.readUInt32BE(1);
      const min = d.readUInt32BE(5);
      this.setup.prices = { max: max === 0xffffffff ? null : max, min: min === 0 ? null : min, currencyCode: currencyHex(d[9]!, d[10]!) };
    }
  }
}

/** The MDB currency code of an ISO currency, as C,SETCONF,mdb-currency-code takes it ("0x1032"). */
export function mdbCurrencyCode(currency: Currency): string {
  return `0x1${CURRENCIES[currency].numeric}`;
}

/** The ISO currency of an MDB currency code, when it is one qrkiosk knows. */
export function currencyOfMdbCode(code: string): Currency | undefined {
  const m = /^0x1(\d{3})$/i.exec(code);
  if (!m) return undefined;
  return (Object.keys(CURRENCIES) as Currency[]).find((c) => CURRENCIES[c].numeric === m[1]);
}

/**
 * Scaled bus units -> minor units of the currency: amount = units x scale factor / 10^decimals.
 * Not necessarily whole (a reader with more decimals than the currency has).
 */
export function unitsToMinor(units: number, reader: Pick<ReaderConfig, 'scaleFactor' | 'decimalPlaces'>, currency: Currency): number {
  return (units * reader.scaleFactor * 10 ** CURRENCIES[currency].exponent) / 10 ** reader.decimalPlaces;
}

export interface ExpectedReader {
  scaleFactor?: number;
  decimalPlaces?: number;
  currencyCode?: string;
}

/** Where what the reader announced differs from what the config asked for; empty = agrees. */
export function readerMismatches(reader: ReaderConfig, want: ExpectedReader): string[] {
  const out: string[] = [];
  if (want.scaleFactor !== undefined && reader.scaleFactor !== want.scaleFactor) {
    out.push(`scale factor ${reader.scaleFactor} (hardware.mdb.setup.scaleFactor is ${want.scaleFactor})`);
  }
  if (want.decimalPlaces !== undefined && reader.decimalPlaces !== want.decimalPlaces) {
    out.push(`${reader.decimalPlaces} decimal places (hardware.mdb.setup.decimalPlaces is ${want.decimalPlaces})`);
  }
  if (want.currencyCode !== undefined && reader.currencyCode.toLowerCase() !== want.currencyCode.toLowerCase()) {
    const c = currencyOfMdbCode(reader.currencyCode);
    out.push(`currency ${reader.currencyCode}${c ? ` (${c})` : ''} (hardware.mdb.setup.currencyCode is ${want.currencyCode})`);
  }
  return out;
}

/**
 * Money on the bus is certainly 16 bits when the VMC or the reader is below level 3 (only level
 * 3 can switch to 32-bit money); false = unknown or 32 bits.
 */
export function sixteenBitMoney(s: BusSetup | null): boolean {
  const levels = [s?.vmc?.featureLevel, s?.reader?.featureLevel].filter((l): l is number => l !== undefined);
  return levels.some((l) => l < 3);
}

/** One line for logs and `qrkiosk hardware`. */
export function describeBusSetup(s: BusSetup, currency?: Currency): string {
  const parts: string[] = [];
  if (s.vmc) parts.push(`VMC level ${s.vmc.featureLevel}`);
  if (s.reader) {
    const c = currencyOfMdbCode(s.reader.currencyCode);
    parts.push(
      `reader announced level ${s.reader.featureLevel}, currency ${s.reader.currencyCode}${c ? ` (${c})` : ''}, scale factor ${s.reader.scaleFactor}, ${s.reader.decimalPlaces} decimal places, answers within ${s.reader.maxResponseSeconds} s`,
    );
  } else parts.push('reader config data not seen');
  if (s.prices) {
    const show = (u: number | null, none: string) => {
      if (u === null) return none;
      if (!s.reader || !currency) return `${u} units`;
      const minor = unitsToMinor(u, s.reader, currency);
      return Number.isInteger(minor) ? formatMoney(minor, currency) : `${u} units`;
    };
    parts.push(`VMC prices ${show(s.prices.min, 'no minimum')} .. ${show(s.prices.max, 'no maximum')}`);
  } else parts.push('VMC max/min prices not seen');
  if (s.busErrors) parts.push(`${s.busErrors} blocks with bus errors while reading`);
  return parts.join('; ');
}
