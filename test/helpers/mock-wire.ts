import { EventEmitter } from 'node:events';
import { SerialPortMock } from 'serialport';
import type { LineEnd, OpenPort } from '../../src/devices/serial/line-port.js';

// The binding instance SerialPortMock uses. Importing '@serialport/binding-mock' from ESM loads
// its .mjs build, a second copy whose ports SerialPortMock (CommonJS) never sees.
const MockBinding = SerialPortMock.binding;

/** The part of binding-mock's MockPortBinding used here (its types do not resolve under NodeNext). */
interface MockPortBinding {
  emitData(data: Buffer | string): void;
  write(data: Buffer): Promise<void>;
}

// The device end of a @serialport/binding-mock port: what the agent writes arrives here as
// lines, what the test (or a twin) writes is fed to the agent as received bytes. Binding-mock
// has no peer and no unplug; `unplug()` closes the stream with a DisconnectedError, exactly what
// serialport does itself when a read fails on a vanished device.

export class MockWire extends EventEmitter implements LineEnd {
  current: SerialPortMock | undefined;
  /** every line the agent wrote, in order */
  readonly fromAgent: string[] = [];
  /** lines the agent writes that the test wants lost on the way (a noisy cable) */
  dropFromAgent: (line: string) => boolean = () => false;
  /** lines the device writes that never reach the agent */
  dropToAgent: (line: string) => boolean = () => false;
  private buf = '';
  opens = 0;

  constructor(readonly path: string) {
    super();
    MockBinding.createPort(path, { echo: false, record: false });
  }

  readonly openPort: OpenPort = (path, baudRate) => {
    const sp = new SerialPortMock({ path, baudRate, autoOpen: false });
    sp.once('open', () => {
      this.current = sp;
      this.opens++;
      const b = sp.port as MockPortBinding;
      const write = b.write.bind(b);
      b.write = async (data: Buffer) => {
        await write(data);
        this.onBytes(data);
      };
      this.emit('open');
    });
    return sp;
  };

  get isOpen(): boolean {
    return this.current?.isOpen === true;
  }

  private onBytes(data: Buffer): void {
    this.buf += data.toString('latin1');
    let nl: number;
    while ((nl = this.buf.indexOf('\n')) >= 0) {
      const line = this.buf.slice(0, nl).replace(/\r$/, '');
      this.buf = this.buf.slice(nl + 1);
      if (this.dropFromAgent(line)) {
        this.emit('dropped', line);
        continue;
      }
      this.fromAgent.push(line);
      this.emit('line', line);
    }
  }

  /** Bytes to the agent, as they are. */
  writeRaw(data: string | Buffer): boolean {
    const b = this.current?.port as MockPortBinding | undefined;
    if (!this.current?.isOpen || !b) return false;
    b.emitData(data);
    return true;
  }

  write(line: string): boolean {
    if (this.dropToAgent(line)) return this.isOpen;
    return this.writeRaw(`${line}\n`);
  }

  /** The cable is pulled: the agent's port closes with a disconnect error. */
  unplug(): Promise<void> {
    const sp = this.current;
    this.current = undefined;
    this.buf = '';
    if (!sp?.isOpen) return Promise.resolve();
    return new Promise((resolve) => sp.close(() => resolve(), Object.assign(new Error('device disconnected (test)'), { disconnected: true })));
  }

  /** Resolves with the next line from the agent matching pred (or one already received after `from`). */
  nextLine(pred: (l: string) => boolean = () => true, timeoutMs = 20_000, from = this.fromAgent.length): Promise<string> {
    const hit = this.fromAgent.slice(from).find(pred);
    if (hit !== undefined) return Promise.resolve(hit);
    return new Promise((resolve, reject) => {
      const timer = setTimeout(() => {
        this.off('line', on);
        reject(new Error(`the agent wrote no matching line within ${timeoutMs} ms; got: ${this.fromAgent.slice(-10).join(' | ')}`));
      }, timeoutMs);
      const on = (l: string) => {
        if (!pred(l)) return;
        clearTimeout(timer);
        this.off('line', on);
        resolve(l);
      };
      this.on('line', on);
    });
  }

  waitOpen(): Promise<void> {
    if (this.isOpen) return Promise.resolve();
    return new Promise((resolve) => this.once('open', () => resolve()));
  }
}

export function resetMockPorts(): void {
  MockBinding.reset();
}
