import { createRequire } from 'node:module';
import type { Logger } from '../runtime/log.js';
import { ButtonChannel, DeviceButtons } from './button-logic.js';
import type { FaultSink } from './faults.js';
import type { DeviceReport } from './report.js';

// Arcade buttons on a USB encoder board ("Zero Delay" and friends, usually 0079:0006) read
// through node-hid (hidraw). The encoder sends an input report whenever a button changes; which
// byte and bit belong to which button differs between boards, so the profile maps each slot to
// `{ byte, mask }` — capture the real reports with `hexdump -C /dev/hidrawN` while pressing each
// button (hardware/TROUBLESHOOTING.md). Bytes are counted in the report as node-hid delivers it
// (that is also what hexdump shows for a device without report ids).
//
// The first report after opening. Boards come in two kinds, and the driver cannot ask which:
//   - report on change (most encoders: Linux leaves their idle rate alone and they send nothing
//     while nothing changes): the first report IS a change, from all released — usually the
//     first customer's press after a boot or a replug, which must select;
//   - report continuously (every poll interval, 1-10 ms): the first report is just the current
//     state — a button already held while the board was plugged in must select nothing.
// So nothing is taken as pressed before the first report, and the first report is held for
// FIRST_REPORT_WINDOW_MS: a second report with the same buttons inside the window means the board
// repeats itself (continuous: the first was the state); a different one, or none, means it
// reports changes (the first was a press; a quick tap that is already released again counts).
// The decision costs the first press after a connect at most the window, never the press.
//
// The board debounces in its firmware, so no debounce here; stuck detection and hold-to-cancel
// work as for GPIO buttons. Unplugging is normal in the field (a loose USB cable): the driver
// reports it once, retries every reconnectMs, and clears the fault when the board is back.
// node-hid is loaded only when this driver starts: its native part needs libusb at run time.

export interface HidBit {
  byte: number;
  mask: number;
}

export interface HidButtonsConfig {
  device: { vendorId: number; productId: number; path?: string; serialNumber?: string };
  /** slot -> where its bit is */
  buttons: Record<number, HidBit>;
  cancel?: HidBit;
  holdToCancelMs: number;
  stuckMs: number;
  reconnectMs: number;
}

export interface HidDeviceInfo {
  vendorId: number;
  productId: number;
  path?: string | undefined;
  product?: string | undefined;
  manufacturer?: string | undefined;
  serialNumber?: string | undefined;
}

export interface HidHandle {
  on(event: 'data', listener: (data: Buffer) => void): unknown;
  on(event: 'error', listener: (err: Error) => void): unknown;
  removeAllListeners(): unknown;
  close(): unknown;
}

/** The part of node-hid this driver uses (tests replay recorded reports through a fake). */
export interface HidApi {
  devices(vendorId: number, productId: number): Promise<HidDeviceInfo[]>;
  open(path: string): Promise<HidHandle>;
}

export function loadNodeHid(): HidApi {
  const require = createRequire(import.meta.url);
  const HID = require('node-hid') as {
    devicesAsync(vid: number, pid: number): Promise<HidDeviceInfo[]>;
    HIDAsync: { open(path: string): Promise<HidHandle> };
  };
  return { devices: (vid, pid) => HID.devicesAsync(vid, pid), open: (path) => HID.HIDAsync.open(path) };
}

/** how long the first report after a connect waits to learn whether the board repeats itself */
export const FIRST_REPORT_WINDOW_MS = 100;

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

export function describeBit(b: HidBit): string {
  return `byte ${b.byte} mask 0x${b.mask.toString(16).padStart(2, '0')}`;
}

/** Which mapped bits a report has set. */
export function decodeReport(report: Buffer, bits: HidBit[]): boolean[] {
  return bits.map((b) => ((report[b.byte] ?? 0) & b.mask) !== 0);
}

export class HidButtons extends DeviceButtons {
  private readonly channels: Array<{ bit: HidBit; channel: ButtonChannel }> = [];
  private handle: HidHandle | undefined;
  private connected: HidDeviceInfo | undefined;
  private fresh = true;
  /** the first report of this connection, waiting for the board's kind (see the top of the file) */
  private first: { levels: boolean[]; timer: NodeJS.Timeout } | undefined;
  private timer: NodeJS.Timeout | undefined;
  private stopped = false;
  private api: HidApi | undefined;
  private reports = 0;

  constructor(
    private readonly cfg: HidButtonsConfig,
    private readonly apiFactory: () => HidApi = loadNodeHid,
    private readonly faults?: FaultSink,
    logger?: Logger,
  ) {
    super('hid', logger);
    for (const [slot, bit] of Object.entries(cfg.buttons)) {
      const fn = `slot ${slot}`;
      this.channels.push({
        bit,
        channel: new ButtonChannel(
          { name: `${fn} (${describeBit(bit)})`, function: fn, debounceMs: 0, holdMs: cfg.holdToCancelMs, stuckMs: cfg.stuckMs },
          this.slotActions(Number(slot)),
          faults,
        ),
      });
    }
    if (cfg.cancel) {
      const bit = cfg.cancel;
      this.channels.push({
        bit,
        channel: new ButtonChannel(
          { name: `cancel (${describeBit(bit)})`, function: 'cancel', debounceMs: 0, holdMs: 0, stuckMs: cfg.stuckMs },
          this.cancelActions(),
          faults,
        ),
      });
    }
  }

  private get deviceName(): string {
    const d = this.cfg.device;
    return `USB HID ${hex4(d.vendorId)}:${hex4(d.productId)}${d.path ? ` ${d.path}` : ''}`;
  }

  start(): void {
    if (this.timer || this.handle) return;
    this.stopped = false;
    void this.connect();
  }

  private retry(): void {
    if (this.stopped) return;
    this.timer = setTimeout(() => {
      this.timer = undefined;
      void this.connect();
    }, this.cfg.reconnectMs);
  }

  private async connect(): Promise<void> {
    if (this.stopped) return;
    let path = this.cfg.device.path;
    let info: HidDeviceInfo | undefined;
    try {
      this.api ??= this.apiFactory();
      if (!path) {
        const found = (await this.api.devices(this.cfg.device.vendorId, this.cfg.device.productId)).filter(
          (d) => !this.cfg.device.serialNumber || d.serialNumber === this.cfg.device.serialNumber,
        );
        info = found.find((d) => d.path);
        path = info?.path ?? undefined;
      }
      if (!path) {
        this.faults?.condition(this.deviceName, 'disconnected', `not found: check the USB cable; lsusb should list ${hex4(this.cfg.device.vendorId)}:${hex4(this.cfg.device.productId)}`);
        return this.retry();
      }
      const handle = await this.api.open(path);
      if (this.stopped) {
        handle.close();
        return;
      }
      this.handle = handle;
      this.connected = info ?? { vendorId: this.cfg.device.vendorId, productId: this.cfg.device.productId, path };
      this.fresh = true;
      // nothing is known to be pressed until the board says so
      for (const c of this.channels) c.channel.init(false);
      handle.on('data', (data) => this.report(data));
      handle.on('error', (err) => this.lost(err));
      this.faults?.clear(this.deviceName, 'disconnected', `connected at ${path}`);
      this.logger?.info({ path }, `${this.deviceName}: connected`);
    } catch (err) {
      const e = err as Error;
      const hint = /cannot open|permission|EACCES/i.test(e.message)
        ? ' (permission: the agent user needs the hidraw udev rule in hardware/udev/99-qrkiosk.rules)'
        : /libusb/i.test(e.message)
          ? ' (install libusb-1.0-0)'
          : '';
      this.faults?.condition(this.deviceName, 'disconnected', `cannot open${path ? ` ${path}` : ''}: ${e.message}${hint}`);
      this.retry();
    }
  }

  /** One input report from the encoder. */
  report(data: Buffer): void {
    this.reports++;
    const levels = decodeReport(data, this.channels.map((c) => c.bit));
    if (this.fresh) {
      this.fresh = false;
      // no second report in the window: a board that reports changes, and this was one
      const timer = setTimeout(() => this.settleFirst(false), FIRST_REPORT_WINDOW_MS);
      this.first = { levels, timer };
      return;
    }
    if (this.first) this.settleFirst(levels.every((l, i) => l === this.first!.levels[i]));
    this.feed(levels);
  }

  /** repeats: the board streams its state, the first report was the state; else it was a change */
  private settleFirst(repeats: boolean): void {
    const f = this.first;
    if (!f) return;
    this.first = undefined;
    clearTimeout(f.timer);
    this.logger?.debug({ kind: repeats ? 'continuous' : 'on change' }, `${this.deviceName}: reports ${repeats ? 'continuously' : 'on change'}`);
    if (repeats) this.channels.forEach((c, i) => c.channel.init(f.levels[i]!));
    else this.feed(f.levels);
  }

  private feed(levels: boolean[]): void {
    this.channels.forEach((c, i) => c.channel.feed(levels[i]!));
  }

  private dropFirst(): void {
    if (this.first) clearTimeout(this.first.timer);
    this.first = undefined;
  }

  private lost(err: Error): void {
    const h = this.handle;
    this.handle = undefined;
    this.connected = undefined;
    if (h) {
      h.removeAllListeners();
      try {
        h.close();
      } catch {
        /* already gone with the device */
      }
    }
    // nothing is pressed on a board that is not there
    this.dropFirst();
    for (const c of this.channels) c.channel.init(false);
    this.faults?.condition(this.deviceName, 'disconnected', `read error: ${err.message} (unplugged?); retrying every ${this.cfg.reconnectMs} ms`);
    this.retry();
  }

  describe(): DeviceReport {
    const d = this.connected;
    return {
      role: 'buttons',
      driver: 'hid',
      status: this.handle ? 'ok' : 'disconnected',
      detail: this.handle
        ? `${d?.path ?? '?'} ${hex4(this.cfg.device.vendorId)}:${hex4(this.cfg.device.productId)}${d?.product ? ` "${d.manufacturer ? `${d.manufacturer} ` : ''}${d.product}"` : ''}, ${this.reports} report(s)`
        : `${this.deviceName} not connected`,
      lines: this.channels.map((c) => ({
        function: c.channel.opts.function,
        name: describeBit(c.bit),
        where: d?.path ?? '-',
        state: c.channel.isStuck ? 'STUCK' : c.channel.pressed ? 'pressed' : 'released',
      })),
    };
  }

  override close(): void {
    this.stopped = true;
    if (this.timer) clearTimeout(this.timer);
    this.timer = undefined;
    this.dropFirst();
    const h = this.handle;
    this.handle = undefined;
    if (h) {
      h.removeAllListeners();
      try {
        h.close();
      } catch {
        /* gone */
      }
    }
    for (const c of this.channels) c.channel.dispose();
    super.close();
  }
}
