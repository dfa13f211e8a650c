import type { EventEmitter } from 'node:events';

// Both audit protocols are half-duplex byte conversations with a timeout on every answer: the
// handheld (us) says something, the machine has a few hundred milliseconds to reply. ByteLink
// queues what arrives and lets a protocol read "the next n bytes within t ms" in order.

/** The part of a serialport stream the link needs (a SerialPort, or a test's fake). */
export interface BytePort extends EventEmitter {
  write(data: Buffer, callback?: (err: Error | null | undefined) => void): boolean;
}

export class DexTimeout extends Error {
  constructor(readonly waitingFor: string, readonly ms: number) {
    super(`no answer from the machine within ${ms} ms while waiting for ${waitingFor}`);
    this.name = 'DexTimeout';
  }
}

export class ByteLink {
  private buf: number[] = [];
  private waiter: (() => void) | undefined;
  private closedWhy: string | undefined;
  /** every byte both ways, for a failed read's report */
  readonly trace: Array<{ dir: '>' | '<'; bytes: number[] }> = [];
  private readonly onData = (d: Buffer) => {
    this.buf.push(...d);
    const last = this.trace.at(-1);
    if (last?.dir === '<') last.bytes.push(...d);
    else this.trace.push({ dir: '<', bytes: [...d] });
    this.waiter?.();
  };
  private readonly onClose = () => {
    this.closedWhy = 'the serial port closed';
    this.waiter?.();
  };

  constructor(private readonly port: BytePort) {
    port.on('data', this.onData);
    port.on('close', this.onClose);
  }

  detach(): void {
    this.port.off('data', this.onData);
    this.port.off('close', this.onClose);
  }

  /** Drops whatever arrived unasked (line noise, a half answer to an earlier attempt). */
  flush(): void {
    this.buf = [];
  }

  write(bytes: readonly number[]): Promise<void> {
    this.trace.push({ dir: '>', bytes: [...bytes] });
    return new Promise((resolve, reject) => {
      this.port.write(Buffer.from(bytes), (err) => (err ? reject(err) : resolve()));
    });
  }

  /** Exactly n bytes, or DexTimeout naming what was expected. */
  async read(n: number, ms: number, what: string): Promise<number[]> {
    const deadline = Date.now() + ms;
    while (this.buf.length < n) {
      if (this.closedWhy) throw new Error(`${this.closedWhy} while waiting for ${what}`);
      const left = deadline - Date.now();
      if (left <= 0) throw new DexTimeout(what, ms);
      await new Promise<void>((resolve) => {
        const t = setTimeout(() => {
          this.waiter = undefined;
          resolve();
        }, left);
        this.waiter = () => {
          clearTimeout(t);
          this.waiter = undefined;
          resolve();
        };
      });
    }
    return this.buf.splice(0, n);
  }

  async byte(ms: number, what: string): Promise<number> {
    return (await this.read(1, ms, what))[0]!;
  }
}

export const hex = (bytes: readonly number[]): string => bytes.map((b) => b.toString(16).padStart(2, '0')).join(' ');
