import { crc16, crcBytes } from './crc16.js';
import { ByteLink, hex } from './byte-link.js';

// DEX/UCS: how a route person's handheld reads a vending machine's audit over the machine's DEX
// jack (RS-232 levels, 9600 8N1). The handheld is the master; qrkiosk plays the handheld.
//
//   first handshake (master asks):   > ENQ              < DLE '0'
//                                    > DLE SOH <comm id: 10> <'R' = read> <'R00L06'> DLE ETX <crc lo> <crc hi>
//                                    < DLE '1'          > EOT
//   second handshake (machine):      < ENQ              > DLE '0'
//                                    < DLE SOH <response '00'> <comm id: 10> <revision/level: 6> DLE ETX <crc>
//                                    > DLE '1'          < EOT
//   data:                            < ENQ              > DLE '0'
//                                    < DLE STX <data> DLE ETB <crc>   > DLE '1'   (more blocks, acks alternate '0'/'1')
//                                    < DLE STX <data> DLE ETX <crc>   > DLE '0|1' < EOT
//
// The CRC covers the bytes between DLE SOH/STX and DLE ETX/ETB, plus the ETX/ETB itself, not the
// DLEs. A block whose CRC is wrong is answered NAK and the machine sends it again.

export const C = { SOH: 0x01, STX: 0x02, ETX: 0x03, EOT: 0x04, ENQ: 0x05, DLE: 0x10, NAK: 0x15, ETB: 0x17 } as const;
const ASCII = (s: string) => [...Buffer.from(s, 'latin1')];

export class DexProtocolError extends Error {
  constructor(readonly step: string, detail: string) {
    super(`DEX/UCS ${step}: ${detail}`);
    this.name = 'DexProtocolError';
  }
}

export interface DexUcsOptions {
  /** the handheld's communication id, 10 characters; machines rarely check it */
  communicationId?: string;
  /** per answer; the machine may need longer before its first data block (it assembles the audit) */
  answerMs?: number;
  firstBlockMs?: number;
  /** ENQ attempts before giving up on a machine that does not answer */
  enqTries?: number;
  /** NAKs per block before giving up */
  maxRetries?: number;
}

export interface DexUcsResult {
  data: Buffer;
  /** what the machine said about itself in the second handshake */
  machineCommunicationId: string;
  revision: string;
  blocks: number;
  retries: number;
}

async function expectPair(link: ByteLink, a: number, b: number, ms: number, step: string): Promise<void> {
  const got = await link.read(2, ms, step);
  if (got[0] !== a || got[1] !== b) throw new DexProtocolError(step, `expected ${hex([a, b])}, got ${hex(got)}`);
}

/** Reads one framed body after DLE SOH/STX: returns the payload and its terminator (ETX/ETB), CRC checked. */
export async function readFramed(link: ByteLink, ms: number, step: string, maxBytes = 8192): Promise<{ body: number[]; end: number; crcOk: boolean }> {
  const body: number[] = [];
  for (;;) {
    const b = await link.byte(ms, step);
    if (b !== C.DLE) {
      body.push(b);
    } else {
      const n = await link.byte(ms, step);
      if (n === C.DLE) body.push(C.DLE); // a DLE in the data is sent twice
      else if (n === C.ETX || n === C.ETB) {
        const [lo, hi] = await link.read(2, ms, `${step} CRC`);
        const crc = crc16([...body, n]);
        return { body, end: n, crcOk: (lo! | (hi! << 8)) === crc };
      } else throw new DexProtocolError(step, `DLE followed by ${hex([n])} inside a block`);
    }
    if (body.length > maxBytes) throw new DexProtocolError(step, `a block longer than ${maxBytes} bytes: not a DEX machine, or the line is noise`);
  }
}

/** Frames a body: DLE <start> body (DLEs doubled) DLE <end> crc. */
export function frame(start: number, body: readonly number[], end: number): number[] {
  const out = [C.DLE, start];
  for (const b of body) {
    out.push(b);
    if (b === C.DLE) out.push(C.DLE);
  }
  out.push(C.DLE, end, ...crcBytes(crc16([...body, end])));
  return out;
}

export async function readDexUcs(link: ByteLink, opts: DexUcsOptions = {}): Promise<DexUcsResult> {
  const answerMs = opts.answerMs ?? 500;
  const firstBlockMs = opts.firstBlockMs ?? 5000;
  const commId = (opts.communicationId ?? 'QRKIOSK001').padEnd(10, ' ').slice(0, 10);
  const maxRetries = opts.maxRetries ?? 3;

  // ---- first handshake ----
  let answered = false;
  for (let i = 0; i < (opts.enqTries ?? 3) && !answered; i++) {
    link.flush();
    await link.write([C.ENQ]);
    try {
      await expectPair(link, C.DLE, 0x30, answerMs, 'first handshake (DLE 0 after ENQ)');
      answered = true;
    } catch (err) {
      if (!(err instanceof Error && err.name === 'DexTimeout')) throw err;
    }
  }
  if (!answered) throw new DexProtocolError('first handshake', `the machine did not answer ENQ ${opts.enqTries ?? 3} times: check the DEX cable (TX/RX crossed?), the jack, and that the machine has DEX enabled`);
  await link.write(frame(C.SOH, ASCII(`${commId}RR00L06`), C.ETX));
  await expectPair(link, C.DLE, 0x31, answerMs, 'first handshake (DLE 1 after our request)');
  await link.write([C.EOT]);

  // ---- second handshake ----
  const enq = await link.byte(answerMs * 4, 'second handshake (ENQ from the machine)');
  if (enq !== C.ENQ) throw new DexProtocolError('second handshake', `expected ENQ, got ${hex([enq])}`);
  await link.write([C.DLE, 0x30]);
  await expectPair(link, C.DLE, C.SOH, answerMs, 'second handshake (DLE SOH)');
  const hs = await readFramed(link, answerMs, 'second handshake');
  if (!hs.crcOk) throw new DexProtocolError('second handshake', 'CRC mismatch in the machine\'s answer: line noise; read again');
  const hsText = Buffer.from(hs.body).toString('latin1');
  const response = hsText.slice(0, 2);
  if (response !== '00') throw new DexProtocolError('second handshake', `the machine answered response code "${response}" (00 = OK): it refuses the read`);
  await link.write([C.DLE, 0x31]);
  const eot = await link.byte(answerMs, 'second handshake (EOT)');
  if (eot !== C.EOT) throw new DexProtocolError('second handshake', `expected EOT, got ${hex([eot])}`);

  // ---- data ----
  const enq2 = await link.byte(firstBlockMs, 'the first data block (ENQ)');
  if (enq2 !== C.ENQ) throw new DexProtocolError('data transfer', `expected ENQ before the data, got ${hex([enq2])}`);
  let ack = 0;
  const data: number[] = [];
  let blocks = 0;
  let retries = 0;
  let sendAck = true;
  for (;;) {
    if (sendAck) {
      await link.write([C.DLE, 0x30 + (ack & 1)]);
      ack++;
    }
    await expectPair(link, C.DLE, C.STX, firstBlockMs, `data block ${blocks + 1} (DLE STX)`);
    const blk = await readFramed(link, answerMs * 2, `data block ${blocks + 1}`);
    if (!blk.crcOk) {
      if (++retries > maxRetries * (blocks + 1)) throw new DexProtocolError('data transfer', `block ${blocks + 1} failed its CRC ${maxRetries} times: line noise or a bad cable`);
      await link.write([C.NAK]);
      sendAck = false;
      continue;
    }
    sendAck = true;
    blocks++;
    data.push(...blk.body);
    if (blk.end === C.ETX) {
      await link.write([C.DLE, 0x30 + (ack & 1)]);
      const end = await link.byte(answerMs, 'end of transfer (EOT)');
      if (end !== C.EOT) throw new DexProtocolError('data transfer', `expected EOT after the last block, got ${hex([end])}`);
      break;
    }
  }
  return {
    data: Buffer.from(data),
    machineCommunicationId: hsText.slice(2, 12).trim(),
    revision: hsText.slice(12, 18),
    blocks,
    retries,
  };
}
