import { constants } from 'node:fs';
import { open } from 'node:fs/promises';
import type { Logger } from '../../runtime/log.js';
import type { FaultSink } from '../faults.js';
import type { DeviceReport } from '../report.js';
import { openHint, openSerialPort, type OpenPort, type RawPort } from '../serial/line-port.js';
import { renderReceipt, type Receipt, type ReceiptLayout } from './receipt.js';

export { receiptTime } from './receipt.js';

// Getting receipt bytes to the printer. A USB printer appears as /dev/usb/lp0 (kernel usblp):
// the bytes are just written to it. A serial printer goes through serialport. Both are opened
// per receipt: a printer unplugged and plugged back between two sales just works, and nothing
// holds the device between jobs.
//
// A receipt is paper, not money or product: a printer that is missing, out of paper or jammed
// is logged and reported by `qrkiosk test printer`, and never stops or repeats a vend.
//
// Every send has a deadline. The kernel's USB printer driver (usblp) blocks write() for as long as
// the printer refuses data (paper out, cover open, offline), with no timeout of its own; a
// blocked write in Node's thread pool would also hold one of its four threads for good. So the
// device is opened O_NONBLOCK: usblp then answers EAGAIN while its last block is still pending, we
// retry until the deadline, and a receipt that does not go through in time is `print_failed` and
// the queue moves on to the next sale's receipt.

export interface PrinterTransport {
  readonly description: string;
  /** rejects with PrintTimeout when the printer has not taken every byte within timeoutMs */
  send(data: Buffer, timeoutMs: number): Promise<void>;
}

/** The printer did not take the receipt in time. */
export class PrintTimeout extends Error {
  override name = 'PrintTimeout';
}

/** default deadline of one receipt: a healthy thermal printer takes a receipt in well under 2 s */
export const PRINT_TIMEOUT_MS = 10_000;

const sleep = (ms: number) => new Promise((r) => setTimeout(r, ms));

/** /dev/usb/lp0 (or any file standing in for it in tests). */
export class DeviceFileTransport implements PrinterTransport {
  constructor(
    readonly path: string,
    /** how often to try again while the printer answers EAGAIN */
    private readonly retryMs = 50,
  ) {}

  get description(): string {
    return `device file ${this.path}`;
  }

  async send(data: Buffer, timeoutMs: number): Promise<void> {
    const deadline = Date.now() + timeoutMs;
    const refused = () =>
      new PrintTimeout(
        `printer ${this.path} did not accept data for ${timeoutMs} ms (paper out, cover open, jammed or offline?)`,
      );
    // no O_CREAT: with the printer unplugged, /dev/usb/lp0 must not become a regular file that
    // silently "prints" every receipt from then on. O_NONBLOCK: see the top of this file.
    const fh = await open(this.path, constants.O_WRONLY | constants.O_APPEND | constants.O_NONBLOCK).catch((err: NodeJS.ErrnoException) => {
      throw new Error(
        `cannot open printer ${this.path}: ${
          err.code === 'ENOENT'
            ? 'not present (USB cable? power?)'
            : err.code === 'EACCES'
              ? 'permission denied (install hardware/udev/99-qrkiosk.rules, or add the agent\'s user to the lp group)'
              : err.code === 'ENXIO'
                ? 'no printer behind it (unplugged or switched off)'
                : err.message
        }`,
      );
    });
    try {
      let off = 0;
      // the last write(0) returns 0 only once usblp's last block has reached the printer
      let drained = false;
      while (off < data.length || !drained) {
        try {
          const { bytesWritten } = await fh.write(data, off, data.length - off);
          if (off === data.length) drained = true;
          off += bytesWritten;
          continue;
        } catch (err) {
          const code = (err as NodeJS.ErrnoException).code;
          if (code !== 'EAGAIN' && code !== 'EWOULDBLOCK') throw err;
        }
        if (Date.now() >= deadline) throw refused();
        await sleep(this.retryMs);
      }
    } catch (err) {
      if (err instanceof PrintTimeout) throw err;
      const e = err as NodeJS.ErrnoException;
      // usblp: ENOSPC = paper out (with LPABORT), ENODEV = unplugged while printing
      throw new Error(`printer ${this.path}: ${e.code === 'ENOSPC' ? 'out of paper' : e.code === 'ENODEV' ? 'unplugged while printing' : e.message}`);
    } finally {
      // O_NONBLOCK: close does not wait for a printer that refuses data (usblp drops what is pending)
      await fh.close();
    }
  }
}

/** A printer on a serial port (or a USB-serial adapter). */
export class SerialPrinterTransport implements PrinterTransport {
  constructor(
    readonly path: string,
    readonly baudRate: number,
    private readonly openPort: OpenPort = openSerialPort,
  ) {}

  get description(): string {
    return `serial ${this.path} @ ${this.baudRate}`;
  }

  async send(data: Buffer, timeoutMs: number): Promise<void> {
    const port: RawPort & { drain?: (cb: (err: Error | null) => void) => void } = this.openPort(this.path, this.baudRate);
    port.on('error', () => {}); // reported through the callbacks below
    await new Promise<void>((resolve, reject) =>
      port.open((err) => (err ? reject(new Error(`cannot open printer ${this.path}: ${openHint(err.message)}`)) : resolve())),
    );
    let timer: NodeJS.Timeout | undefined;
    // a printer holding XOFF or CTS low never lets the write or the drain finish
    const expired = new Promise<never>((_, reject) => {
      timer = setTimeout(
        () => reject(new PrintTimeout(`printer ${this.path} did not accept data for ${timeoutMs} ms (paper out, cover open, offline, or flow control held)`)),
        timeoutMs,
      );
    });
    try {
      await Promise.race([
        (async () => {
          await new Promise<void>((resolve, reject) => port.write(data, (err) => (err ? reject(err) : resolve())));
          // closing before the bytes left the UART would cut the receipt short
          if (port.drain) await new Promise<void>((resolve, reject) => port.drain!((err) => (err ? reject(err) : resolve())));
        })(),
        expired,
      ]);
    } finally {
      clearTimeout(timer);
      // closing also drops what a stalled printer did not take
      await new Promise<void>((resolve) => port.close(() => resolve()));
    }
  }
}

/** /dev/usb/lp* and plain files are written directly; anything else is a serial port. */
export function transportFor(path: string, baudRate: number, openPort?: OpenPort): PrinterTransport {
  if (path.startsWith('/dev/usb/lp') || !path.startsWith('/dev/')) return new DeviceFileTransport(path);
  return new SerialPrinterTransport(path, baudRate, openPort);
}

export interface PrintResult {
  ok: boolean;
  bytes: number;
  printer: string;
  error?: string;
}

export interface PrinterHealth {
  driver: 'escpos';
  printer: string;
  printed: number;
  failed: number;
  lastError: string | null;
  lastPrintedAt: number | null;
}

export class ReceiptPrinter {
  private queue: Promise<unknown> = Promise.resolve();
  private printed = 0;
  private failed = 0;
  private lastError: string | null = null;
  private lastPrintedAt: number | null = null;
  /** orders already printed by this process: a state event seen twice prints one receipt */
  private readonly done = new Set<string>();

  constructor(
    private readonly transport: PrinterTransport,
    private readonly layout: ReceiptLayout,
    private readonly logger?: Logger,
    private readonly faults?: FaultSink,
    /** the most one receipt may take to reach the printer */
    private readonly timeoutMs = PRINT_TIMEOUT_MS,
  ) {}

  /** `qrkiosk hardware` */
  describe(): DeviceReport {
    const h = this.health();
    return {
      role: 'printer',
      driver: 'escpos',
      status: h.lastError ? 'fault' : 'ok',
      detail: `${h.printer}, ${this.layout.width} columns, ${this.layout.charset}; ${h.printed} printed, ${h.failed} failed${h.lastError ? `; last error: ${h.lastError}` : ''}`,
    };
  }

  /** Prints one receipt after the jobs before it; never rejects. */
  print(r: Receipt, opts: { test?: boolean } = {}): Promise<PrintResult> {
    if (!opts.test) {
      if (this.done.has(r.orderId)) {
        return Promise.resolve({ ok: true, bytes: 0, printer: this.transport.description, error: 'already printed' });
      }
      this.done.add(r.orderId);
      if (this.done.size > 100) this.done.delete(this.done.values().next().value!);
    }
    const job = this.queue.then(() => this.run(r, opts));
    this.queue = job;
    return job;
  }

  /** Resolves when every queued receipt has been sent (or failed). */
  async idle(): Promise<void> {
    await this.queue;
  }

  /** A sample receipt for `qrkiosk test printer`. */
  printTest(kioskId: string, time: string): Promise<PrintResult> {
    return this.print(
      { orderId: 'ord_TEST000000000000', product: 'Café con leche / Pão de queijo', amount: 123456, currency: 'ARS', paymentId: '00000000000', time, kioskId },
      { test: true },
    );
  }

  health(): PrinterHealth {
    return { driver: 'escpos', printer: this.transport.description, printed: this.printed, failed: this.failed, lastError: this.lastError, lastPrintedAt: this.lastPrintedAt };
  }

  private async run(r: Receipt, opts: { test?: boolean }): Promise<PrintResult> {
    let data: Buffer;
    try {
      data = renderReceipt(r, this.layout, opts);
      await this.transport.send(data, this.timeoutMs);
    } catch (err) {
      this.failed++;
      this.lastError = (err as Error).message;
      this.faults?.condition(`printer ${this.transport.description}`, 'print_failed', `receipt not printed: ${this.lastError}`);
      this.logger?.error({ orderId: r.orderId, err: this.lastError }, `receipt not printed: ${this.lastError}`);
      return { ok: false, bytes: 0, printer: this.transport.description, error: this.lastError };
    }
    this.printed++;
    this.lastPrintedAt = Date.now();
    if (this.lastError) this.faults?.clear(`printer ${this.transport.description}`, 'print_failed', 'printing again');
    this.lastError = null;
    this.logger?.info({ orderId: r.orderId, bytes: data.length, test: opts.test === true }, 'receipt printed');
    return { ok: true, bytes: data.length, printer: this.transport.description };
  }
}
