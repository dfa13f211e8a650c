// The Qibixx MDB Pi HAT / MDB-USB text protocol, cashless-slave side (the board plays a card
// reader inside an existing vending machine; the machine's controller, the VMC, is the MDB bus
// master). ASCII lines, 115200 baud. Upper case = a command to the board, lower case = what the
// board reports. Only the part qrkiosk uses is modelled; anything else is passed on as `other`.
//
//   C,0 / C,1              disable / enable the cashless slave
//   c,STATUS,INACTIVE      the VMC has not set the reader up yet
//   c,STATUS,DISABLED      set up, not enabled by the VMC
//   c,STATUS,ENABLED       enabled, no session
//   c,STATUS,IDLE          a session is open (before a selection, or after a vend)
//   c,STATUS,VEND,<price>,<item>   the customer chose <item> on the machine, which asks <price>
//   C,VEND,<price>         approve that vend (we send back the machine's own price text)
//   C,STOP                 deny the request / end the session
//   c,VEND,SUCCESS         the machine dispensed
//   c,ERR,VEND <n>         the machine could not dispense (n = 3 in the docs' example)
//   C,START,<funds>        card-first ("authorization first"): open a session with funds; the
//                          VMC then lets the customer choose and asks c,STATUS,VEND as above
//   C,SETCONF,<par>=<val>  reader setup, sent while disabled (C,0), answered c,SET,OK; the board
//                          forgets it at power-off. Names used: mdb-addr (0x10 first cashless
//                          device, 0x60 second), mdb-currency-code, mdb-always-idle (1 = selection
//                          first); others can be given in hardware.mdb.setconf
//   c,STATUS,REVALUE...    the VMC asks to put money back on the "card": refused (C,STOP)
//   X,1 / X,0              sniffer on / off (answered x,ACK): every MDB block on the bus is then
//                          printed as x,<status>,<time>,... (bus-setup.ts); qrkiosk turns it on
//                          around an enable to read the setup exchange, then off again
//
// There is no checksum. A line that does not parse is logged and ignored; a truncated line
// that still parses (an item "15" cut to "1") cannot be detected here, which is one reason the
// machine's price is checked against the catalog before anything is approved.

import { parseSniffLine, type SniffBlock } from './bus-setup.js';

export type CashlessState = 'INACTIVE' | 'DISABLED' | 'ENABLED' | 'IDLE' | 'VEND';

export type BoardLine =
  /** IDLE = a session is open; it may carry the funds left (c,STATUS,IDLE,<funds>) */
  | { kind: 'status'; state: Exclude<CashlessState, 'VEND'>; funds?: string }
  | { kind: 'vend_request'; price: string; item: number }
  | { kind: 'revalue_request'; text: string }
  | { kind: 'set_ok' }
  | { kind: 'vend_success' }
  | { kind: 'vend_failure'; code: string }
  | { kind: 'error'; text: string }
  /** a block the sniffer saw on the MDB bus (only while X,1 is on) */
  | { kind: 'sniff'; block: SniffBlock }
  /** well-formed lines we have no use for: version, ACKs (x,ACK too), master side, settings */
  | { kind: 'other'; text: string }
  | { kind: 'garbled'; reason: string };

const PRICE = /^\d{1,7}(\.\d{1,4})?$/;
const ITEM = /^\d{1,5}$/;
const PRINTABLE = /^[\x20-\x7e]+$/;

export function parseBoardLine(raw: string): BoardLine {
  const line = raw.trim();
  if (!PRINTABLE.test(line)) return { kind: 'garbled', reason: 'bytes outside printable ASCII' };
  const f = line.split(',');
  if (f[0] === 'c') {
    if (f[1] === 'STATUS') {
      const st = f[2];
      if (st === 'VEND') {
        if (f.length !== 5) return { kind: 'garbled', reason: 'c,STATUS,VEND wants <price>,<item> (truncated?)' };
        if (!PRICE.test(f[3]!)) return { kind: 'garbled', reason: `price "${f[3]}" is not a decimal amount` };
        if (!ITEM.test(f[4]!) || Number(f[4]) > 65535) return { kind: 'garbled', reason: `item "${f[4]}" is not an MDB item number` };
        return { kind: 'vend_request', price: f[3]!, item: Number(f[4]) };
      }
      if (st === 'IDLE') {
        if (f.length > 4) return { kind: 'garbled', reason: 'c,STATUS,IDLE takes at most the funds' };
        if (f.length === 4 && !PRICE.test(f[3]!)) return { kind: 'garbled', reason: `funds "${f[3]}" is not a decimal amount` };
        return f.length === 4 ? { kind: 'status', state: 'IDLE', funds: f[3]! } : { kind: 'status', state: 'IDLE' };
      }
      if (st === 'INACTIVE' || st === 'DISABLED' || st === 'ENABLED') {
        if (f.length !== 3) return { kind: 'garbled', reason: `c,STATUS,${st} takes no fields` };
        return { kind: 'status', state: st };
      }
      if (st === 'REVALUE') return { kind: 'revalue_request', text: line };
      return { kind: 'garbled', reason: `unknown cashless status "${st ?? ''}" (truncated?)` };
    }
    if (f[1] === 'VEND') {
      if (f[2] === 'SUCCESS' && f.length === 3) return { kind: 'vend_success' };
      return { kind: 'garbled', reason: `unknown vend report "${line}"` };
    }
    if (f[1] === 'ERR') {
      const text = f.slice(2).join(',');
      const m = /^VEND\s+(\d+)$/.exec(text);
      if (m) return { kind: 'vend_failure', code: m[1]! };
      if (text.startsWith('VEND')) return { kind: 'garbled', reason: `vend error without a code: "${line}" (truncated?)` };
      return { kind: 'error', text };
    }
    if (f[1] === 'REVALUE') return { kind: 'revalue_request', text: line };
    if (f[1] === 'SET' && f[2] === 'OK' && f.length === 3) return { kind: 'set_ok' };
    // c,START,... acknowledgements and the like
    return { kind: 'other', text: line };
  }
  if (f[0] === 'x') {
    const block = parseSniffLine(line);
    // x,ACK / x,NACK answer X,1 and X,0
    if (block) return { kind: 'sniff', block };
    if (f.length === 2) return { kind: 'other', text: line };
    return { kind: 'garbled', reason: 'sniffer line is not x,<status>,<time>,[<command>,]<data> (truncated?)' };
  }
  if (/^[a-z],/.test(line) || /^[a-z]$/.test(line)) return { kind: 'other', text: line };
  return { kind: 'garbled', reason: 'not a Qibixx reply line (expected "c,...", "v,...", "r,...")' };
}

export const Commands = {
  disable: 'C,0',
  enable: 'C,1',
  approve: (price: string) => `C,VEND,${price}`,
  deny: 'C,STOP',
  /** card-first: a session with these funds */
  start: (funds: string) => `C,START,${funds}`,
  setconf: (param: string, value: string) => `C,SETCONF,${param}=${value}`,
  /** the bus sniffer, to read the setup exchange */
  sniff: (on: boolean) => (on ? 'X,1' : 'X,0'),
} as const;

/** A command line sent to the board, parsed (the twin and the tests use it). */
export type BoardCommand =
  | { kind: 'enable'; on: boolean }
  | { kind: 'approve'; price: string }
  | { kind: 'deny' }
  | { kind: 'start'; funds: string }
  | { kind: 'setconf'; param: string; value: string }
  | { kind: 'sniff'; on: boolean }
  | { kind: 'other'; text: string };

export function parseBoardCommand(raw: string): BoardCommand {
  const line = raw.trim();
  if (line === 'C,0' || line === 'C,1') return { kind: 'enable', on: line === 'C,1' };
  if (line === 'C,STOP') return { kind: 'deny' };
  if (line === 'X,0' || line === 'X,1') return { kind: 'sniff', on: line === 'X,1' };
  const m = /^C,VEND,(\d{1,7}(?:\.\d{1,4})?)$/.exec(line);
  if (m) return { kind: 'approve', price: m[1]! };
  const s = /^C,START,(\d{1,7}(?:\.\d{1,4})?)$/.exec(line);
  if (s) return { kind: 'start', funds: s[1]! };
  const c = /^C,SETCONF,([a-z0-9-]+)=([^,\s]+)$/.exec(line);
  if (c) return { kind: 'setconf', param: c[1]!, value: c[2]! };
  return { kind: 'other', text: line };
}
