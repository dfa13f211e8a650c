import { crc16Hex } from '../../emv/crc.js';

// The line protocol of our serial button panel / dispenser controller (docs/serial-panel.md is
// the reference a firmware author works from; keep the two in step).
//
//   $<TYPE>[,<field>...]*<CRC>\n
//
// CRC = CRC-16/CCITT-FALSE of the bytes between '$' and '*', 4 upper-case hex digits. A CRC
// rather than an XOR sum because a flipped bit in "VEND,7,3" must never read as another slot,
// and two swapped characters must not cancel out. '$' starts every frame so a receiver can
// resynchronise in the middle of noise.

export const MAX_FRAME = 96;

export type PanelResult = 'DROP' | 'NODROP' | 'JAM';
export type NakReason = 'SLOT' | 'BUSY' | 'FAULT';

/** panel -> agent */
export type PanelMessage =
  | { type: 'HB'; boot: string; status: string }
  | { type: 'SEL'; slot: number }
  | { type: 'CAN' }
  | { type: 'ACK'; id: string }
  | { type: 'NAK'; id: string; reason: NakReason }
  | { type: 'RES'; id: string; result: PanelResult; pulses: number };

/** agent -> panel */
export type AgentCommand = { type: 'HB'; seq: number } | { type: 'VEND'; id: string; slot: number };

export type Decoded<T> = { ok: true; msg: T } | { ok: false; reason: string };

const ID = /^[0-9A-Z]{1,8}$/;
const SLOT = /^[1-9][0-9]{0,2}$/;
const TOKEN = /^[0-9A-Z_-]{1,16}$/;
const BODY = /^[\x20-\x7e]+$/;

export function crcOf(body: string): string {
  return crc16Hex(body);
}

/** "$" + body + "*" + CRC, without the line terminator. */
export function frame(fields: Array<string | number>): string {
  const body = fields.map(String).join(',');
  return `$${body}*${crcOf(body)}`;
}

export function encodeCommand(c: AgentCommand): string {
  return c.type === 'HB' ? frame(['HB', c.seq]) : frame(['VEND', c.id, c.slot]);
}

export function encodePanel(m: PanelMessage): string {
  switch (m.type) {
    case 'HB':
      return frame(['HB', m.boot, m.status]);
    case 'SEL':
      return frame(['SEL', m.slot]);
    case 'CAN':
      return frame(['CAN']);
    case 'ACK':
      return frame(['ACK', m.id]);
    case 'NAK':
      return frame(['NAK', m.id, m.reason]);
    case 'RES':
      return frame(['RES', m.id, m.result, m.pulses]);
  }
}

/**
 * Splits and checks a frame: start marker, printable ASCII, CRC. Noise before a '$' (a
 * truncated frame whose newline was lost, line noise at power-up) is skipped: the frame starts
 * at the LAST '$' on the line, and what came before is reported as `skipped`.
 */
export function unframe(line: string): { ok: true; fields: string[]; skipped: string } | { ok: false; reason: string } {
  const start = line.lastIndexOf('$');
  if (start < 0) return { ok: false, reason: 'no "$" start marker' };
  const text = line.slice(start + 1);
  const skipped = line.slice(0, start);
  if (text.length + 1 > MAX_FRAME) return { ok: false, reason: `longer than ${MAX_FRAME} bytes` };
  const star = text.lastIndexOf('*');
  if (star < 0) return { ok: false, reason: 'no "*" before the checksum (truncated?)' };
  const body = text.slice(0, star);
  const crc = text.slice(star + 1);
  if (!/^[0-9A-F]{4}$/.test(crc)) return { ok: false, reason: `checksum "${crc}" is not 4 upper-case hex digits (truncated?)` };
  if (!BODY.test(body)) return { ok: false, reason: 'bytes outside printable ASCII' };
  const want = crcOf(body);
  if (crc !== want) return { ok: false, reason: `checksum mismatch: frame says ${crc}, content gives ${want}` };
  return { ok: true, fields: body.split(','), skipped };
}

function fail<T>(reason: string): Decoded<T> {
  return { ok: false, reason };
}

/** A checked frame into a panel message; a frame with a valid CRC but wrong fields is refused too. */
export function parsePanel(fields: string[]): Decoded<PanelMessage> {
  const [type, ...f] = fields;
  const n = (count: number) => f.length === count;
  switch (type) {
    case 'HB':
      if (!n(2) || !ID.test(f[0]!) || !TOKEN.test(f[1]!)) return fail('HB wants HB,<boot id>,<status>');
      return { ok: true, msg: { type: 'HB', boot: f[0]!, status: f[1]! } };
    case 'SEL':
      if (!n(1) || !SLOT.test(f[0]!)) return fail('SEL wants SEL,<slot 1-999>');
      return { ok: true, msg: { type: 'SEL', slot: Number(f[0]) } };
    case 'CAN':
      if (!n(0)) return fail('CAN takes no fields');
      return { ok: true, msg: { type: 'CAN' } };
    case 'ACK':
      if (!n(1) || !ID.test(f[0]!)) return fail('ACK wants ACK,<id>');
      return { ok: true, msg: { type: 'ACK', id: f[0]! } };
    case 'NAK':
      if (!n(2) || !ID.test(f[0]!) || !['SLOT', 'BUSY', 'FAULT'].includes(f[1]!)) return fail('NAK wants NAK,<id>,SLOT|BUSY|FAULT');
      return { ok: true, msg: { type: 'NAK', id: f[0]!, reason: f[1] as NakReason } };
    case 'RES':
      if (!n(3) || !ID.test(f[0]!) || !['DROP', 'NODROP', 'JAM'].includes(f[1]!) || !/^[0-9]$/.test(f[2]!)) {
        return fail('RES wants RES,<id>,DROP|NODROP|JAM,<pulses 0-9>');
      }
      return { ok: true, msg: { type: 'RES', id: f[0]!, result: f[1] as PanelResult, pulses: Number(f[2]) } };
    default:
      return fail(`unknown message type "${type ?? ''}"`);
  }
}

export function parseCommand(fields: string[]): Decoded<AgentCommand> {
  const [type, ...f] = fields;
  if (type === 'HB' && f.length === 1 && /^[0-9]{1,10}$/.test(f[0]!)) return { ok: true, msg: { type: 'HB', seq: Number(f[0]) } };
  if (type === 'VEND' && f.length === 2 && ID.test(f[0]!) && SLOT.test(f[1]!)) {
    return { ok: true, msg: { type: 'VEND', id: f[0]!, slot: Number(f[1]) } };
  }
  return fail(`not an agent command: ${fields.join(',')}`);
}

/** A line from the panel, fully checked. */
export function decodePanelLine(line: string): Decoded<PanelMessage> & { skipped?: string } {
  const u = unframe(line);
  if (!u.ok) return u;
  const p = parsePanel(u.fields);
  return u.skipped ? { ...p, skipped: u.skipped } : p;
}

export function decodeCommandLine(line: string): Decoded<AgentCommand> & { skipped?: string } {
  const u = unframe(line);
  if (!u.ok) return u;
  const p = parseCommand(u.fields);
  return u.skipped ? { ...p, skipped: u.skipped } : p;
}
