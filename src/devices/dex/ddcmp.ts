import { crc16, crcBytes } from './crc16.js';
import { ByteLink, hex } from './byte-link.js';

// DDCMP as EVA-DTS uses it (machines from many European makers speak it on the same jack as DEX;
// the link starts at 2400 baud). Two kinds of message, each with its own CRC-16 (crc16.ts):
//
//   control (8 bytes): 05 <type> <flags> <rr> <xx> <station> <crc lo> <crc hi>
//       type 06 START, 07 STACK (start acknowledged), 01 ACK (rr = last good data message), 02 NAK
//   data: 81 <count lo> <flags|count hi (6 bits)> <rr> <xx = our sequence> <station> <crc of the 6 header bytes>
//         <count bytes of data> <crc of the data>
//       flags 0x40 = select (the other side may answer), 0x80 = the last message of the audit
//
// The conversation (handheld = us):
//   > START                        < STACK
//   > data 77 E0 00 <security 2> <pass 2> <date DDMMYY bcd> <time HHMMSS bcd> 00 00 0C   "who are you" (route person)
//   < ACK  < data 88 ...  "I am"   > ACK
//   > data 77 E2 00 01 01 00 00 00 00   "read data": the audit list, read without resetting the interim meters
//   < ACK  < data 88 <ok = 01> ...      > ACK
//   < data 99 <block no> <audit text...>  > ACK     ... repeated, the last one flagged 0x80
//   > data 77 FF   "finis"          < ACK

export const DDCMP = { CONTROL: 0x05, DATA: 0x81, ACK: 0x01, NAK: 0x02, START: 0x06, STACK: 0x07, SELECT: 0x40, LAST: 0x80 } as const;

export class DdcmpError extends Error {
  constructor(readonly step: string, detail: string) {
    super(`DDCMP ${step}: ${detail}`);
    this.name = 'DdcmpError';
  }
}

export function controlMessage(type: number, rr: number, station = 1, flags = DDCMP.SELECT): number[] {
  const h = [DDCMP.CONTROL, type, flags, rr & 0xff, 0, station];
  return [...h, ...crcBytes(crc16(h))];
}

export function dataMessage(body: readonly number[], rr: number, xx: number, station = 1, last = false): number[] {
  const n = body.length;
  if (n > 0x3fff) throw new Error('DDCMP data message longer than 16383 bytes');
  const h = [DDCMP.DATA, n & 0xff, ((n >> 8) & 0x3f) | DDCMP.SELECT | (last ? DDCMP.LAST : 0), rr & 0xff, xx & 0xff, station];
  return [...h, ...crcBytes(crc16(h)), ...body, ...crcBytes(crc16(body))];
}

export type DdcmpMessage =
  | { kind: 'control'; type: number; rr: number }
  | { kind: 'data'; body: number[]; rr: number; xx: number; last: boolean; crcOk: boolean };

/** One message from the link: header CRC checked (a bad header cannot be trusted for its length). */
export async function readMessage(link: ByteLink, ms: number, step: string): Promise<DdcmpMessage> {
  const h = await link.read(8, ms, step);
  if (crc16(h.slice(0, 6)) !== (h[6]! | (h[7]! << 8))) throw new DdcmpError(step, `header CRC mismatch (${hex(h)}): line noise or not a DDCMP machine`);
  if (h[0] === DDCMP.CONTROL) return { kind: 'control', type: h[1]!, rr: h[3]! };
  if (h[0] !== DDCMP.DATA) throw new DdcmpError(step, `unknown message class ${hex([h[0]!])}`);
  const n = h[1]! | ((h[2]! & 0x3f) << 8);
  const rest = await link.read(n + 2, ms * 4, `${step} (data)`);
  const body = rest.slice(0, n);
  return { kind: 'data', body, rr: h[3]!, xx: h[4]!, last: (h[2]! & DDCMP.LAST) !== 0, crcOk: crc16(body) === (rest[n]! | (rest[n + 1]! << 8)) };
}

export interface DdcmpOptions {
  answerMs?: number;
  /** the machine's pass code for the route person (most machines: 0000) */
  passCode?: number;
  securityCode?: number;
  station?: number;
  now?: () => Date;
  maxRetries?: number;
}

export interface DdcmpResult {
  data: Buffer;
  blocks: number;
  retries: number;
}

const bcd = (n: number) => ((Math.floor(n / 10) % 10) << 4) | (n % 10);

export async function readDdcmp(link: ByteLink, opts: DdcmpOptions = {}): Promise<DdcmpResult> {
  const ms = opts.answerMs ?? 500;
  const st = opts.station ?? 1;
  const maxRetries = opts.maxRetries ?? 3;
  let xx = 0; // our last sequence number
  let rr = 0; // the last data message we accepted
  let retries = 0;

  const expectAck = async (step: string) => {
    const m = await readMessage(link, ms, step);
    if (m.kind !== 'control' || m.type !== DDCMP.ACK) throw new DdcmpError(step, m.kind === 'control' && m.type === DDCMP.NAK ? 'the machine refused our message (NAK)' : 'expected ACK');
  };
  /** a data message from the machine, NAKed and read again while its CRC fails */
  const receive = async (step: string) => {
    for (let tries = 0; ; tries++) {
      const m = await readMessage(link, ms * 2, step);
      if (m.kind !== 'data') throw new DdcmpError(step, `expected a data message, got control type ${hex([m.type])}`);
      if (m.crcOk) {
        rr = m.xx;
        await link.write(controlMessage(DDCMP.ACK, rr, st));
        return m;
      }
      if (tries >= maxRetries) throw new DdcmpError(step, `data CRC failed ${maxRetries + 1} times: line noise or a bad cable`);
      retries++;
      await link.write(controlMessage(DDCMP.NAK, rr, st));
    }
  };

  link.flush();
  await link.write(controlMessage(DDCMP.START, 0, st));
  const stack = await readMessage(link, ms, 'start (STACK)').catch((err: unknown) => {
    throw new DdcmpError('start', `the machine did not acknowledge START (${(err as Error).message}): it may speak DEX/UCS instead, or the cable is wrong`);
  });
  if (stack.kind !== 'control' || stack.type !== DDCMP.STACK) throw new DdcmpError('start', 'expected STACK');

  const now = (opts.now ?? (() => new Date()))();
  const pass = opts.passCode ?? 0;
  const sec = opts.securityCode ?? 0;
  const whoAreYou = [
    0x77, 0xe0, 0x00,
    (sec >> 8) & 0xff, sec & 0xff,
    (pass >> 8) & 0xff, pass & 0xff,
    bcd(now.getUTCDate()), bcd(now.getUTCMonth() + 1), bcd(now.getUTCFullYear() % 100),
    bcd(now.getUTCHours()), bcd(now.getUTCMinutes()), bcd(now.getUTCSeconds()),
    0x00, 0x00, 0x0c,
  ];
  await link.write(dataMessage(whoAreYou, rr, ++xx, st));
  await expectAck('who-are-you (ACK)');
  const iam = await receive('who-are-you (I am)');
  if (iam.body[0] !== 0x88) throw new DdcmpError('who-are-you', `unexpected answer ${hex(iam.body.slice(0, 4))}`);

  await link.write(dataMessage([0x77, 0xe2, 0x00, 0x01, 0x01, 0x00, 0x00, 0x00, 0x00], rr, ++xx, st));
  await expectAck('read-data (ACK)');
  const ok = await receive('read-data (answer)');
  if (ok.body[0] !== 0x88 || ok.body[2] !== 0x01) {
    throw new DdcmpError('read-data', `the machine refused the audit read (${hex(ok.body.slice(0, 4))}): check the pass code (hardware.dex.passCode)`);
  }

  const data: number[] = [];
  let blocks = 0;
  for (;;) {
    const m = await receive(`audit block ${blocks + 1}`);
    if (m.body[0] !== 0x99) throw new DdcmpError(`audit block ${blocks + 1}`, `expected a data block (99 ...), got ${hex(m.body.slice(0, 2))}`);
    data.push(...m.body.slice(2));
    blocks++;
    if (m.last) break;
  }
  await link.write(dataMessage([0x77, 0xff], rr, ++xx, st));
  await expectAck('finis (ACK)');
  return { data: Buffer.from(data), blocks, retries };
}
