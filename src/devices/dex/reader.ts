import { SerialPort } from 'serialport';
import { ByteLink, type BytePort } from './byte-link.js';
import { readDdcmp } from './ddcmp.js';
import { readDexUcs } from './dex-ucs.js';
import { parseEvaDts, type DexAudit } from './eva-dts.js';

// One audit read: open the DEX port, speak DEX/UCS or DDCMP (or try DDCMP, then DEX/UCS, the way
// handhelds do when they do not know the machine), close the port, parse the text. The port is
// opened only for the read, so a technician can plug a handheld into the same adapter between
// reads, and a read that fails leaves nothing half-open.

export type DexProtocol = 'dex' | 'ddcmp' | 'auto';

export interface OpenedPort extends BytePort {
  close(callback?: (err: Error | null) => void): void;
}

export type OpenDexPort = (path: string, baudRate: number) => Promise<OpenedPort>;

export const openDexSerial: OpenDexPort = (path, baudRate) =>
  new Promise((resolve, reject) => {
    const port = new SerialPort({ path, baudRate, autoOpen: false, lock: true });
    port.open((err) => (err ? reject(new Error(`cannot open the DEX port ${path}: ${err.message} (check hardware.dex.path and the adapter)`)) : resolve(port)));
  });

export interface DexReadOptions {
  path: string;
  protocol: DexProtocol;
  /** DEX/UCS runs at 9600, DDCMP starts at 2400 */
  dexBaudRate?: number;
  ddcmpBaudRate?: number;
  passCode?: number;
  answerMs?: number;
  openPort?: OpenDexPort;
}

export interface DexReadResult {
  protocol: 'dex' | 'ddcmp';
  raw: Buffer;
  audit: DexAudit;
  blocks: number;
  retries: number;
  ms: number;
}

async function withPort<T>(open: OpenDexPort, path: string, baud: number, fn: (link: ByteLink) => Promise<T>): Promise<T> {
  const port = await open(path, baud);
  const link = new ByteLink(port);
  try {
    return await fn(link);
  } finally {
    link.detach();
    await new Promise<void>((resolve) => port.close(() => resolve()));
  }
}

export async function readAudit(opts: DexReadOptions): Promise<DexReadResult> {
  const open = opts.openPort ?? openDexSerial;
  const started = Date.now();
  const answerMs = opts.answerMs ?? 500;
  const viaDdcmp = () =>
    withPort(open, opts.path, opts.ddcmpBaudRate ?? 2400, (link) =>
      readDdcmp(link, { answerMs, ...(opts.passCode !== undefined ? { passCode: opts.passCode } : {}) }),
    ).then((r) => ({ protocol: 'ddcmp' as const, ...r }));
  const viaDex = () => withPort(open, opts.path, opts.dexBaudRate ?? 9600, (link) => readDexUcs(link, { answerMs, firstBlockMs: answerMs * 10 })).then((r) => ({ protocol: 'dex' as const, ...r }));

  let got: { protocol: 'dex' | 'ddcmp'; data: Buffer; blocks: number; retries: number };
  if (opts.protocol === 'dex') got = await viaDex();
  else if (opts.protocol === 'ddcmp') got = await viaDdcmp();
  else {
    try {
      got = await viaDdcmp();
    } catch (ddcmpErr) {
      try {
        got = await viaDex();
      } catch (dexErr) {
        throw new Error(`the machine answered neither DDCMP (${(ddcmpErr as Error).message}) nor DEX/UCS (${(dexErr as Error).message})`);
      }
    }
  }
  // the parser names the broken record when the transfer delivered a broken file
  const audit = parseEvaDts(got.data);
  return { protocol: got.protocol, raw: got.data, audit, blocks: got.blocks, retries: got.retries, ms: Date.now() - started };
}
