import { EventEmitter } from 'node:events';
import { ByteLink, type BytePort } from './byte-link.js';
import { controlMessage, dataMessage, DDCMP, readMessage } from './ddcmp.js';
import { C, frame, readFramed } from './dex-ucs.js';

// A vending machine's DEX jack, simulated: it answers a handheld (our reader) with an EVA-DTS
// audit over DEX/UCS or DDCMP, on any byte port (the far end of a socat pty pair in the tests).
// It behaves like a machine at its worst when asked to: a block sent with a bad CRC once (the
// reader must NAK and get it again), a transfer that stops halfway (the reader must time out and
// say so, never return half an audit).

export interface DexTwinOptions {
  protocol: 'dex' | 'ddcmp';
  audit: string;
  /** bytes of audit per block / message */
  blockSize?: number;
  /** 0-based blocks whose first send has a broken CRC */
  corruptOnce?: number[];
  /** stop sending after this many blocks (the cable was pulled) */
  stopAfterBlocks?: number;
  /** DEX second-handshake response code (00 = OK) */
  responseCode?: string;
  communicationId?: string;
  answerMs?: number;
}

export class DexMachineTwin extends EventEmitter {
  private readonly link: ByteLink;
  private stopped = false;
  /** completed reads, and NAKs the reader sent */
  reads = 0;
  naks = 0;
  readonly errors: string[] = [];

  constructor(port: BytePort, private opts: DexTwinOptions) {
    super();
    this.link = new ByteLink(port);
    void this.run();
  }

  /** What the machine will send on the next read (its meters moved on). */
  setAudit(text: string): void {
    this.opts.audit = text;
  }

  stop(): void {
    this.stopped = true;
    this.link.detach();
  }

  private chunks(): number[][] {
    const bytes = [...Buffer.from(this.opts.audit, 'latin1')];
    const size = this.opts.blockSize ?? 245;
    const out: number[][] = [];
    for (let i = 0; i < bytes.length; i += size) out.push(bytes.slice(i, i + size));
    return out.length ? out : [[]];
  }

  private async run(): Promise<void> {
    while (!this.stopped) {
      try {
        if (this.opts.protocol === 'dex') await this.dexSession();
        else await this.ddcmpSession();
      } catch (err) {
        if (this.stopped) return;
        this.errors.push((err as Error).message);
        this.emit('error-step', (err as Error).message);
        this.link.flush();
      }
    }
  }

  // ---- DEX/UCS, machine side ----

  private async dexSession(): Promise<void> {
    const ms = this.opts.answerMs ?? 2000;
    // idle: wait for the handheld's ENQ, as long as it takes
    for (;;) {
      const b = await this.link.byte(3_600_000, 'ENQ');
      if (b === C.ENQ) break;
    }
    await this.link.write([C.DLE, 0x30]);
    const soh = await this.link.read(2, ms, 'DLE SOH');
    if (soh[0] !== C.DLE || soh[1] !== C.SOH) throw new Error('expected DLE SOH');
    const req = await readFramed(this.link, ms, 'request');
    if (!req.crcOk) throw new Error('request CRC');
    await this.link.write([C.DLE, 0x31]);
    if ((await this.link.byte(ms, 'EOT')) !== C.EOT) throw new Error('expected EOT');
    await this.link.write([C.ENQ]);
    const a = await this.link.read(2, ms, 'DLE 0');
    if (a[0] !== C.DLE || a[1] !== 0x30) throw new Error('expected DLE 0');
    const id = (this.opts.communicationId ?? 'VMC0000001').padEnd(10, ' ').slice(0, 10);
    await this.link.write(frame(C.SOH, [...Buffer.from(`${this.opts.responseCode ?? '00'}${id}R00L06`, 'latin1')], C.ETX));
    const b1 = await this.link.read(2, ms, 'DLE 1');
    if (b1[0] !== C.DLE || b1[1] !== 0x31) throw new Error('expected DLE 1');
    await this.link.write([C.EOT]);
    if ((this.opts.responseCode ?? '00') !== '00') return;
    await this.link.write([C.ENQ]);
    const first = await this.link.read(2, ms, 'DLE 0 before data');
    if (first[0] !== C.DLE) throw new Error('expected DLE before data');
    const chunks = this.chunks();
    const corrupt = new Set(this.opts.corruptOnce ?? []);
    for (let i = 0; i < chunks.length; i++) {
      if (this.opts.stopAfterBlocks !== undefined && i >= this.opts.stopAfterBlocks) {
        this.emit('stopped', i);
        await this.link.byte(3_600_000, 'nothing'); // hang, like a pulled cable
      }
      const end = i === chunks.length - 1 ? C.ETX : C.ETB;
      for (;;) {
        const f = frame(C.STX, chunks[i]!, end);
        if (corrupt.delete(i)) f[f.length - 1] = f.at(-1)! ^ 0xff;
        await this.link.write(f);
        const ans = await this.link.byte(ms, 'ack');
        if (ans === C.NAK) {
          this.naks++;
          continue;
        }
        if (ans !== C.DLE) throw new Error('expected DLE ack');
        await this.link.byte(ms, 'ack number');
        break;
      }
    }
    await this.link.write([C.EOT]);
    this.reads++;
    this.emit('read');
  }

  // ---- DDCMP, machine side ----

  private async ddcmpSession(): Promise<void> {
    const ms = this.opts.answerMs ?? 2000;
    let xx = 0;
    let rr = 0;
    const start = await readMessage(this.link, 3_600_000, 'START');
    if (start.kind !== 'control' || start.type !== DDCMP.START) throw new Error('expected START');
    await this.link.write(controlMessage(DDCMP.STACK, 0));
    const take = async (what: string) => {
      const m = await readMessage(this.link, ms, what);
      if (m.kind !== 'data' || !m.crcOk) throw new Error(`expected ${what}`);
      rr = m.xx;
      await this.link.write(controlMessage(DDCMP.ACK, rr));
      return m;
    };
    const send = async (body: number[], last = false, corrupt = false) => {
      for (let first = true; ; first = false) {
        const msg = dataMessage(body, rr, xx + 1, 1, last);
        if (corrupt && first) msg[msg.length - 1] = msg.at(-1)! ^ 0xff;
        await this.link.write(msg);
        const a = await readMessage(this.link, ms, 'ACK');
        if (a.kind === 'control' && a.type === DDCMP.NAK) {
          this.naks++;
          continue;
        }
        if (a.kind !== 'control' || a.type !== DDCMP.ACK) throw new Error('expected ACK');
        xx++;
        return;
      }
    };
    const who = await take('who-are-you');
    if (who.body[0] !== 0x77 || who.body[1] !== 0xe0) throw new Error('expected who-are-you');
    await send([0x88, 0x01, 0x00, ...[...Buffer.from(this.opts.communicationId ?? 'VMC0000001', 'latin1')].slice(0, 10)]);
    const rd = await take('read-data');
    if (rd.body[0] !== 0x77 || rd.body[1] !== 0xe2) throw new Error('expected read-data');
    await send([0x88, 0x02, 0x01]);
    const chunks = this.chunks();
    const corrupt = new Set(this.opts.corruptOnce ?? []);
    for (let i = 0; i < chunks.length; i++) {
      if (this.opts.stopAfterBlocks !== undefined && i >= this.opts.stopAfterBlocks) {
        this.emit('stopped', i);
        await this.link.byte(3_600_000, 'nothing');
      }
      await send([0x99, (i + 1) & 0xff, ...chunks[i]!], i === chunks.length - 1, corrupt.delete(i));
    }
    const fin = await take('finis');
    if (fin.body[0] !== 0x77 || fin.body[1] !== 0xff) throw new Error('expected finis');
    this.reads++;
    this.emit('read');
  }
}
