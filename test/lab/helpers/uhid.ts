import { execFileSync } from 'node:child_process';
import { closeSync, existsSync, openSync, readdirSync, readFileSync, writeSync } from 'node:fs';

// A USB HID device made by the kernel from user space (/dev/uhid, linux/uhid.h): the kernel
// creates a real hid device and a /dev/hidrawN for it, so node-hid meets it exactly as it meets a
// board plugged into a Pi's USB port. Events are `struct uhid_event` (packed): a u32 type, then
// the request.

const UHID_DESTROY = 1;
const UHID_CREATE2 = 11;
const UHID_INPUT2 = 12;
const BUS_USB = 0x03;
/** sizeof(struct uhid_event): type + the largest request (create2: 128+64+64+2+2+4*4+4096) */
const EVENT_SIZE = 4 + 128 + 64 + 64 + 2 + 2 + 4 * 4 + 4096;

/**
 * The report descriptor of a "Zero Delay"-style arcade encoder, as such boards describe
 * themselves: a joystick with X and Y (8 bits each) and 12 buttons (then 4 bits of padding), no
 * report id. A 4-byte input report: X, Y, buttons 1-8, buttons 9-12; an 8-byte output report.
 */
export const ENCODER_DESCRIPTOR = Buffer.from([
  0x05, 0x01, // Usage Page (Generic Desktop)
  0x09, 0x04, // Usage (Joystick)
  0xa1, 0x01, // Collection (Application)
  0x09, 0x30, //   Usage (X)
  0x09, 0x31, //   Usage (Y)
  0x15, 0x00, //   Logical Minimum (0)
  0x26, 0xff, 0x00, // Logical Maximum (255)
  0x75, 0x08, //   Report Size (8)
  0x95, 0x02, //   Report Count (2)
  0x81, 0x02, //   Input (Data, Variable, Absolute)
  0x05, 0x09, //   Usage Page (Button)
  0x19, 0x01, //   Usage Minimum (1)
  0x29, 0x0c, //   Usage Maximum (12)
  0x15, 0x00, //   Logical Minimum (0)
  0x25, 0x01, //   Logical Maximum (1)
  0x75, 0x01, //   Report Size (1)
  0x95, 0x0c, //   Report Count (12)
  0x81, 0x02, //   Input (Data, Variable, Absolute)
  0x75, 0x01, //   Report Size (1)
  0x95, 0x04, //   Report Count (4)
  0x81, 0x03, //   Input (Constant): padding
  0x06, 0x00, 0xff, // Usage Page (vendor): the board's rumble output report, which the
  0x09, 0x01, //   Usage (1)                  kernel's DragonRise driver (hid-dr) requires
  0x15, 0x00, //   Logical Minimum (0)
  0x26, 0xff, 0x00, // Logical Maximum (255)
  0x75, 0x08, //   Report Size (8)
  0x95, 0x08, //   Report Count (8)
  0x91, 0x02, //   Output (Data, Variable, Absolute)
  0xc0, // End Collection
]);

function hex4(n: number): string {
  return n.toString(16).padStart(4, '0');
}

export interface UhidDeviceSpec {
  name: string;
  vendorId: number;
  productId: number;
  descriptor: Buffer;
}

/**
 * A virtual encoder that, like the real boards, sends a report only when a button changes:
 * nothing at all between plugging in and the first press.
 */
export class VirtualEncoder {
  private fd: number | undefined;
  private buttons = 0;

  constructor(private readonly spec: UhidDeviceSpec) {}

  /** plugs the device in */
  create(): void {
    if (this.fd !== undefined) throw new Error('already created');
    this.fd = openSync('/dev/uhid', 'r+');
    const ev = Buffer.alloc(EVENT_SIZE);
    let o = 0;
    o = ev.writeUInt32LE(UHID_CREATE2, o);
    ev.write(this.spec.name, o, 127, 'utf8');
    o += 128;
    ev.write('usb-lab-1/input0', o, 63, 'utf8');
    o += 64;
    o += 64; // uniq
    o = ev.writeUInt16LE(this.spec.descriptor.length, o);
    o = ev.writeUInt16LE(BUS_USB, o);
    o = ev.writeUInt32LE(this.spec.vendorId, o);
    o = ev.writeUInt32LE(this.spec.productId, o);
    o = ev.writeUInt32LE(0x0100, o); // version
    o = ev.writeUInt32LE(0, o); // country
    this.spec.descriptor.copy(ev, o);
    writeSync(this.fd, ev);
    this.buttons = 0;
    this.loadDriver();
  }

  /**
   * What udev does on a real system: load the kernel driver for the new device's modalias. A
   * 0079:0006 board is claimed by hid-dr (DragonRise), not hid-generic; either gives a hidraw node.
   */
  private loadDriver(): void {
    const id = `0003:${hex4(this.spec.vendorId)}:${hex4(this.spec.productId)}`.toUpperCase();
    const bus = '/sys/bus/hid/devices';
    const deadline = Date.now() + 30_000;
    let dev: string | undefined;
    while (!(dev = readdirSync(bus).find((d) => d.startsWith(id)))) {
      if (Date.now() > deadline) throw new Error(`uhid: no ${id} device appeared under ${bus}`);
      execFileSync('sleep', ['0.05']);
    }
    const modroot = process.env.QRKIOSK_LAB_MODROOT;
    const alias = readFileSync(`${bus}/${dev}/modalias`, 'utf8').trim();
    execFileSync('modprobe', [...(modroot ? ['-d', modroot] : []), '-q', alias]);
    if (!existsSync(`${bus}/${dev}/driver`)) {
      // the driver module was already loaded before the device appeared: ask for a probe
      execFileSync('sh', ['-c', `echo ${dev} > /sys/bus/hid/drivers_probe`]);
    }
  }

  /** a button (1-12) goes down or up; a report is sent only if that changes the state */
  set(button: number, down: boolean): void {
    const bit = 1 << (button - 1);
    const next = down ? this.buttons | bit : this.buttons & ~bit;
    if (next === this.buttons) return;
    this.buttons = next;
    this.send(Buffer.from([0x80, 0x80, next & 0xff, (next >> 8) & 0x0f]));
  }

  private send(report: Buffer): void {
    if (this.fd === undefined) throw new Error('not created');
    const ev = Buffer.alloc(4 + 2 + report.length);
    ev.writeUInt32LE(UHID_INPUT2, 0);
    ev.writeUInt16LE(report.length, 4);
    report.copy(ev, 6);
    writeSync(this.fd, ev);
  }

  /** unplugs it (the kernel removes the hid device and its hidraw node) */
  destroy(): void {
    if (this.fd === undefined) return;
    const ev = Buffer.alloc(4);
    ev.writeUInt32LE(UHID_DESTROY, 0);
    writeSync(this.fd, ev);
    closeSync(this.fd);
    this.fd = undefined;
  }
}
