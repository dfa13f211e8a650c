import { spawn, type ChildProcess } from 'node:child_process';
import { existsSync, mkdirSync, readdirSync, readlinkSync, rmdirSync, symlinkSync, unlinkSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { waitFor } from '../../helpers/wait.js';

// A USB receipt printer, all kernel: dummy_hcd joins a virtual USB host controller to a virtual
// device controller; on the device side, the kernel's printer gadget function (f_printer, made
// through configfs) is the printer, and on the host side the kernel's own usblp driver binds it as
// it binds a real thermal printer and makes /dev/usb/lpN. The drivers write to that, unchanged.
//
// The printer refuses data until something reads its gadget end (/dev/g_printerN): before that the
// gadget has no buffer queued on its OUT endpoint, the host's transfer never completes, and usblp
// behaves exactly as with a printer out of paper or with its cover open. `take()` starts reading:
// the printer prints, and what it received is kept for comparison.

const GADGETS = '/sys/kernel/config/usb_gadget';

export class UsbPrinter {
  /** the host side: what the kiosk opens */
  device = '';
  /** the gadget side: what the printer's mechanism reads */
  gadgetDevice = '';
  private reader: ChildProcess | undefined;
  private readonly chunks: Buffer[] = [];
  private bound = false;

  private constructor(private readonly dir: string) {}

  static async plug(name = 'lab'): Promise<UsbPrinter> {
    if (!existsSync(GADGETS)) throw new Error(`${GADGETS} missing: libcomposite not loaded or configfs not mounted (run inside the lab)`);
    const udcs = readdirSync('/sys/class/udc');
    if (udcs.length === 0) throw new Error('no USB device controller in /sys/class/udc: dummy_hcd is not loaded');
    const before = new Set(existsSync('/sys/class/usbmisc') ? readdirSync('/sys/class/usbmisc') : []);
    const dir = join(GADGETS, `qrkiosk-${name}-${process.pid}`);
    const p = new UsbPrinter(dir);
    const w = (rel: string, v: string) => writeFileSync(join(dir, rel), v);
    mkdirSync(dir);
    w('idVendor', '0x0416'); // the Winbond ids of many 58 mm USB thermal printers (0416:5011)
    w('idProduct', '0x5011');
    mkdirSync(join(dir, 'strings/0x409'));
    w('strings/0x409/manufacturer', 'qrkiosk lab');
    w('strings/0x409/product', 'POS58 lab printer');
    w('strings/0x409/serialnumber', String(process.pid));
    mkdirSync(join(dir, 'functions/printer.lp'));
    w('functions/printer.lp/pnp_string', 'MFG:qrkiosk;MDL:POS58 lab;CMD:ESC/POS;CLS:PRINTER;');
    mkdirSync(join(dir, 'configs/c.1'));
    symlinkSync(join(dir, 'functions/printer.lp'), join(dir, 'configs/c.1/printer.lp'));
    w('UDC', udcs[0]!);
    p.bound = true;
    const lp = await waitFor(
      'usblp to bind the printer and make /dev/usb/lpN',
      () => {
        const n = readdirSync('/sys/class/usbmisc').find((d) => d.startsWith('lp') && !before.has(d));
        return n && existsSync(`/dev/usb/${n}`) ? n : undefined;
      },
      30_000,
    );
    p.device = `/dev/usb/${lp}`;
    const g = readdirSync('/sys/class/usb_printer_gadget').find((d) => d.startsWith('g_printer'));
    if (!g) throw new Error('the printer gadget made no /sys/class/usb_printer_gadget/g_printerN');
    p.gadgetDevice = `/dev/${g}`;
    return p;
  }

  /** the printer starts taking data (paper loaded, cover closed) */
  take(): void {
    if (this.reader) return;
    this.reader = spawn('cat', [this.gadgetDevice], { stdio: ['ignore', 'pipe', 'inherit'] });
    this.reader.stdout!.on('data', (d: Buffer) => this.chunks.push(d));
  }

  /** every byte the printer received since take() */
  get received(): Buffer {
    return Buffer.concat(this.chunks);
  }

  /** the USB cable pulled: the device controller disconnects, usblp's device goes away */
  async unplug(): Promise<void> {
    if (!this.bound) return;
    writeFileSync(join(this.dir, 'UDC'), '\n');
    this.bound = false;
    const dev = this.device;
    await waitFor(`${dev} to disappear`, () => !existsSync(dev), 30_000);
  }

  async destroy(): Promise<void> {
    if (this.reader && this.reader.exitCode === null && this.reader.signalCode === null) {
      const gone = new Promise((r) => this.reader!.once('close', r));
      this.reader.kill('SIGKILL');
      await gone;
    }
    await this.unplug();
    unlinkSync(join(this.dir, 'configs/c.1/printer.lp'));
    rmdirSync(join(this.dir, 'configs/c.1'));
    rmdirSync(join(this.dir, 'functions/printer.lp'));
    rmdirSync(join(this.dir, 'strings/0x409'));
    rmdirSync(this.dir);
  }
}

/** whether this process has `path` open (a send in progress holds the printer's device open) */
export function openByUs(path: string): boolean {
  for (const fd of readdirSync('/proc/self/fd')) {
    try {
      if (readlinkSync(`/proc/self/fd/${fd}`) === path) return true;
    } catch {
      /* closed meanwhile */
    }
  }
  return false;
}
