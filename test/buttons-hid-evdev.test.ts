import { EventEmitter } from 'node:events';
import { closeSync, constants, existsSync, openSync, readFileSync, readdirSync, writeSync } from 'node:fs';
import { PassThrough, Readable } from 'node:stream';
import { afterEach, describe, expect, it, vi } from 'vitest';
import { EvdevButtons, EventParser, EV_KEY, encodeEvents, keyCode, nativeEventSize, type EvdevButtonsConfig } from '../src/devices/evdev-buttons.js';
import { EVIOCGRAB, GRAB_READER_PY } from '../src/devices/evdev-grab.js';
import { FaultLog } from '../src/devices/faults.js';
import { skipWithout } from './helpers/ci.js';
import { waitFor } from './helpers/wait.js';
import { FIRST_REPORT_WINDOW_MS, HidButtons, decodeReport, type HidApi, type HidButtonsConfig, type HidDeviceInfo } from '../src/devices/hid-buttons.js';

// USB HID encoder reports and evdev keypad event streams replayed from recorded byte fixtures
// (test/fixtures/hid, test/fixtures/evdev; README.md there shows them as hexdumps).

const fixture = (p: string) => readFileSync(new URL(`./fixtures/${p}`, import.meta.url));

const cleanups: Array<() => void> = [];
afterEach(() => {
  vi.useRealTimers();
  for (const c of cleanups.splice(0)) c();
});

// ---- HID ----------------------------------------------------------------------------------------

class FakeHidDevice extends EventEmitter {
  closed = false;
  close(): void {
    this.closed = true;
  }
}

function fakeHid(present: () => HidDeviceInfo[]): HidApi & { opened: FakeHidDevice[]; nthOpen: (n: number) => Promise<FakeHidDevice> } {
  const opened: FakeHidDevice[] = [];
  const events = new EventEmitter();
  return {
    opened,
    /** resolves when the n-th device (from 1) has been opened */
    nthOpen: (n) => (opened.length >= n ? Promise.resolve(opened[n - 1]!) : new Promise((resolve) => events.on('open', () => opened.length === n && resolve(opened[n - 1]!)))),
    devices: async (vid, pid) => present().filter((d) => d.vendorId === vid && d.productId === pid),
    open: async (path) => {
      if (!present().some((d) => d.path === path)) throw new Error(`cannot open device with path ${path}`);
      const d = new FakeHidDevice();
      opened.push(d);
      // after the driver got the handle and attached its listeners
      setImmediate(() => events.emit('open'));
      return d;
    },
  };
}

const ARCADE: HidButtonsConfig = {
  device: { vendorId: 0x0079, productId: 0x0006 },
  buttons: { 1: { byte: 5, mask: 0x10 }, 2: { byte: 5, mask: 0x20 }, 3: { byte: 5, mask: 0x40 }, 4: { byte: 5, mask: 0x80 }, 5: { byte: 6, mask: 0x01 }, 6: { byte: 6, mask: 0x02 } },
  cancel: { byte: 6, mask: 0x04 },
  holdToCancelMs: 0,
  stuckMs: 10_000,
  reconnectMs: 50,
};
const ENCODER: HidDeviceInfo = { vendorId: 0x0079, productId: 0x0006, path: '/dev/hidraw0', manufacturer: 'DragonRise Inc.', product: 'Generic   USB  Joystick' };

function reports(): Buffer[] {
  const all = fixture('hid/zero-delay-0079-0006.bin');
  expect(all.length % 8).toBe(0);
  return Array.from({ length: all.length / 8 }, (_, i) => all.subarray(i * 8, i * 8 + 8));
}

function nextFault(faults: FaultLog): Promise<unknown> {
  return new Promise((resolve) => {
    const off = faults.onFault((f) => {
      off();
      resolve(f);
    });
  });
}

describe('USB HID arcade encoder (node-hid) from recorded reports', () => {
  it('decodes the recorded reports into slot presses and a cancel, two buttons held at once included', async () => {
    const api = fakeHid(() => [ENCODER]);
    const faults = new FaultLog();
    const b = new HidButtons(ARCADE, () => api, faults);
    cleanups.push(() => b.close());
    const events: string[] = [];
    b.onPress((s) => events.push(`press ${s}`));
    b.onCancel(() => events.push('cancel'));
    b.start();
    const dev = await api.nthOpen(1);
    for (const r of reports()) dev.emit('data', r);
    expect(events).toEqual(['press 1', 'press 3', 'press 4', 'press 6', 'cancel']);
    expect(faults.recent()).toEqual([]);
    expect(b.describe()).toMatchObject({ status: 'ok', detail: expect.stringContaining('/dev/hidraw0 0079:0006 "DragonRise Inc. Generic   USB  Joystick", 11 report(s)') });
  });

  it('a board that reports only on change: the first press after opening selects (after at most the first-report window)', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    const api = fakeHid(() => [ENCODER]);
    const b = new HidButtons(ARCADE, () => api);
    cleanups.push(() => b.close());
    const events: number[] = [];
    b.onPress((s) => events.push(s));
    b.start();
    const dev = await api.nthOpen(1);
    const [idle, down1, , down3] = reports();
    // the board sends nothing while nothing changes; minutes later the first customer presses 1
    await vi.advanceTimersByTimeAsync(120_000);
    dev.emit('data', down1);
    await vi.advanceTimersByTimeAsync(FIRST_REPORT_WINDOW_MS);
    expect(events).toEqual([1]);
    dev.emit('data', idle);
    dev.emit('data', down3);
    expect(events).toEqual([1, 3]);
    // a replug: again the first press counts, here a quick tap released inside the window
    dev.emit('error', new Error('could not read from HID device'));
    const again = api.nthOpen(2);
    await vi.advanceTimersByTimeAsync(ARCADE.reconnectMs);
    const dev2 = await again;
    dev2.emit('data', down3);
    await vi.advanceTimersByTimeAsync(30);
    dev2.emit('data', idle);
    expect(events).toEqual([1, 3, 3]);
  });

  it('a board that reports continuously: the first report is the state, so a button held while plugging in selects nothing', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'setInterval', 'clearInterval', 'Date'] });
    const api = fakeHid(() => [ENCODER]);
    const b = new HidButtons(ARCADE, () => api);
    cleanups.push(() => b.close());
    const events: number[] = [];
    b.onPress((s) => events.push(s));
    b.start();
    const dev = await api.nthOpen(1);
    const [idle, down1] = reports();
    // every 8 ms poll the board sends its state: button 1 is held from the start
    let state = down1;
    const stream = setInterval(() => dev.emit('data', state), 8);
    cleanups.push(() => clearInterval(stream));
    await vi.advanceTimersByTimeAsync(500);
    expect(events).toEqual([]);
    state = idle;
    await vi.advanceTimersByTimeAsync(100);
    state = down1;
    await vi.advanceTimersByTimeAsync(100);
    expect(events).toEqual([1]);
    // an idle continuous board: the first real press selects at once
    state = idle;
    await vi.advanceTimersByTimeAsync(100);
    dev.emit('error', new Error('could not read from HID device'));
    clearInterval(stream);
    const again = api.nthOpen(2);
    await vi.advanceTimersByTimeAsync(ARCADE.reconnectMs);
    const dev2 = await again;
    const stream2 = setInterval(() => dev2.emit('data', state), 8);
    cleanups.push(() => clearInterval(stream2));
    await vi.advanceTimersByTimeAsync(200);
    state = down1;
    await vi.advanceTimersByTimeAsync(8);
    expect(events).toEqual([1, 1]);
  });

  it('unplugged: reported once, retried, cleared when the encoder is back; nothing stays pressed', async () => {
    vi.useFakeTimers({ toFake: ['setTimeout', 'clearTimeout', 'Date'] });
    let present = true;
    const api = fakeHid(() => (present ? [ENCODER] : []));
    const faults = new FaultLog();
    const b = new HidButtons(ARCADE, () => api, faults);
    cleanups.push(() => b.close());
    const events: number[] = [];
    b.onPress((s) => events.push(s));
    b.start();
    const first = await api.nthOpen(1);
    const [idle, down1] = reports();
    first.emit('data', idle);
    first.emit('data', down1);
    present = false;
    api.opened[0]!.emit('error', new Error('could not read from HID device'));
    expect(api.opened[0]!.closed).toBe(true);
    expect(faults.active()).toEqual([expect.objectContaining({ device: 'USB HID 0079:0006', kind: 'disconnected', message: expect.stringMatching(/read error: could not read from HID device \(unplugged\?\)/) })]);
    expect(b.describe().status).toBe('disconnected');
    // four retries (reconnectMs 50) find nothing: still one report
    await vi.advanceTimersByTimeAsync(200);
    expect(faults.recent()).toHaveLength(1);
    present = true;
    const again = api.nthOpen(2);
    await vi.advanceTimersByTimeAsync(50);
    const second = await again;
    expect(faults.active()).toEqual([]);
    second.emit('data', idle);
    second.emit('data', down1);
    expect(events).toEqual([1, 1]);
  });

  it('decodeReport reads bits by byte and mask', () => {
    expect(decodeReport(Buffer.from([1, 0x7f, 0x7f, 0x7f, 0x7f, 0x4f, 0x03, 0]), [{ byte: 5, mask: 0x40 }, { byte: 6, mask: 0x02 }, { byte: 6, mask: 0x04 }, { byte: 9, mask: 1 }])).toEqual([true, true, false, false]);
  });
});

// ---- evdev --------------------------------------------------------------------------------------

const KEYPAD: EvdevButtonsConfig = {
  device: '/dev/input/by-id/usb-keypad-event-kbd',
  entry: 'direct',
  keys: { KP1: 1, KP2: 2, KP3: 3 },
  cancelKeys: ['KPDOT'],
  enterKeys: ['KPENTER'],
  codeTimeoutMs: 5000,
  eventSize: 24,
  holdToCancelMs: 0,
  stuckMs: 10_000,
  reconnectMs: 50,
};

/** feeds the bytes in chunks of odd sizes, like reads that end mid-record */
function chunked(buf: Buffer, sizes: number[]): Buffer[] {
  const out: Buffer[] = [];
  let off = 0;
  for (let i = 0; off < buf.length; i++) {
    const n = sizes[i % sizes.length]!;
    out.push(buf.subarray(off, off + n));
    off += n;
  }
  return out;
}

describe('evdev numeric keypad from recorded event streams', () => {
  it('parses 24-byte (64-bit) and 16-byte (32-bit) input_event records to the same key events', () => {
    const b64 = fixture('evdev/keypad-direct-64bit.bin');
    const b32 = fixture('evdev/keypad-direct-32bit.bin');
    expect(b64.length % 24).toBe(0);
    expect(b32.length % 16).toBe(0);
    const e64 = new EventParser(24).push(b64);
    const e32 = new EventParser(16).push(b32);
    expect(e64).toEqual(e32);
    expect(e64.filter((e) => e.type === EV_KEY).map((e) => [e.code, e.value])).toEqual([
      [79, 1], [79, 0], [81, 1], [81, 2], [81, 2], [81, 0], [83, 1], [83, 0],
    ]);
    expect(e64[0]).toEqual({ sec: 1700000000, usec: 80000, type: 4, code: 4, value: 0x70059 });
    // a record split across reads waits for its second half
    const p = new EventParser(24);
    expect(p.push(b64.subarray(0, 30))).toHaveLength(1);
    expect(p.push(b64.subarray(30, 48))).toHaveLength(1);
    expect(encodeEvents(e64, 16)).toEqual(b32);
    expect(nativeEventSize('arm64')).toBe(24);
    expect(nativeEventSize('arm')).toBe(16);
    expect(nativeEventSize('x64')).toBe(24);
  });

  for (const [file, size] of [['evdev/keypad-direct-64bit.bin', 24], ['evdev/keypad-direct-32bit.bin', 16]] as const) {
    it(`direct entry from ${file}: presses, autorepeat ignored, cancel; reads split mid-record`, () => {
      const stream = new PassThrough();
      const b = new EvdevButtons({ ...KEYPAD, eventSize: size }, () => stream, new FaultLog());
      cleanups.push(() => b.close());
      const events: string[] = [];
      b.onPress((s) => events.push(`press ${s}`));
      b.onCancel(() => events.push('cancel'));
      b.start();
      for (const c of chunked(fixture(file), [7, 40, 13, 1, 64])) b.feed(c);
      expect(events).toEqual(['press 1', 'press 3', 'cancel']);
    });
  }

  it('code entry: "1" "2" Enter selects slot 12, "3" Enter slot 3; the typed digits time out', () => {
    vi.useFakeTimers();
    const stream = new PassThrough();
    const b = new EvdevButtons({ ...KEYPAD, entry: 'code', keys: {} }, () => stream);
    cleanups.push(() => b.close());
    const events: number[] = [];
    b.onPress((s) => events.push(s));
    b.start();
    b.feed(fixture('evdev/keypad-code-64bit.bin'));
    expect(events).toEqual([12, 3]);
    // "4", then nothing for 5 s: forgotten
    const enc = (code: number, value: number) => encodeEvents([{ sec: 1, usec: 0, type: EV_KEY, code, value }], 24);
    b.feed(enc(keyCode('KP4')!, 1));
    b.feed(enc(keyCode('KP4')!, 0));
    expect(b.typed).toBe('4');
    vi.advanceTimersByTime(5000);
    expect(b.typed).toBe('');
    b.feed(enc(keyCode('KPENTER')!, 1));
    expect(events).toEqual([12, 3]);
  });

  it('reads the device like a file: the recorded stream through a real file read, then EOF is a lost device that is reopened', async () => {
    const faults = new FaultLog();
    let opens = 0;
    let reopened!: () => void;
    const secondOpen = new Promise<void>((r) => (reopened = r));
    const b = new EvdevButtons(
      KEYPAD,
      () => {
        if (++opens === 2) reopened();
        return Readable.from([fixture('evdev/keypad-direct-64bit.bin')]);
      },
      faults,
    );
    cleanups.push(() => b.close());
    const events: string[] = [];
    b.onPress((s) => events.push(`press ${s}`));
    b.onCancel(() => events.push('cancel'));
    b.start();
    await secondOpen;
    expect(events.slice(0, 3)).toEqual(['press 1', 'press 3', 'cancel']);
    expect(faults.recent()[0]).toMatchObject({ device: 'keypad /dev/input/by-id/usb-keypad-event-kbd', kind: 'disconnected', message: expect.stringMatching(/device closed \(unplugged\?\)/) });
  });

  it('a missing or forbidden device says why', async () => {
    const faults = new FaultLog();
    const b = new EvdevButtons({ ...KEYPAD, reconnectMs: 10_000 }, () => {
      const s = new PassThrough();
      setImmediate(() => s.emit('error', Object.assign(new Error("EACCES: permission denied, open '/dev/input/event3'"), { code: 'EACCES' })));
      return s;
    }, faults);
    cleanups.push(() => b.close());
    const fault = nextFault(faults);
    b.start();
    await fault;
    expect(faults.active()[0]!.message).toMatch(/permission denied.*group input.*99-qrkiosk\.rules/);
  });
});

describe('reading a real event device file through the grabbing reader', () => {
  it('openEventDevice: the records of the device in one 24-byte layout, whatever the device\'s size; then its end', async () => {
    const { openEventDevice } = await import('../src/devices/evdev-buttons.js');
    const read = async (file: string, eventSize: 'auto' | 16 | 24) => {
      const chunks: Buffer[] = [];
      const s = openEventDevice(new URL(`./fixtures/${file}`, import.meta.url).pathname, { eventSize });
      const info = new Promise((r) => s.once('open', r));
      s.on('data', (c: Buffer) => chunks.push(c));
      await new Promise((r) => s.once('end', r));
      return { bytes: Buffer.concat(chunks), info: await info };
    };
    const b64 = await read('evdev/keypad-direct-64bit.bin', 24);
    expect(b64.bytes).toEqual(fixture('evdev/keypad-direct-64bit.bin'));
    // a plain file cannot be grabbed: said so, and read anyway
    expect(b64.info).toEqual({ size: 24, grabbed: false, reason: expect.stringMatching(/^ENOTTY /) });
    // a 32-bit reader's 16-byte records arrive as the same 24-byte records
    const b32 = await read('evdev/keypad-direct-32bit.bin', 16);
    expect(b32.bytes).toEqual(fixture('evdev/keypad-direct-64bit.bin'));
    expect(b32.info).toMatchObject({ size: 16 });
  });

  it('a missing device is ENOENT from the open itself; a missing python3 says what to install', async () => {
    const { openEventDevice } = await import('../src/devices/evdev-buttons.js');
    const missing = openEventDevice('/dev/input/no-such-event');
    const err = await new Promise<NodeJS.ErrnoException>((r) => missing.once('error', r));
    expect(err).toMatchObject({ code: 'ENOENT', message: expect.stringContaining("open '/dev/input/no-such-event'") });
    const noPython = openEventDevice(new URL('./fixtures/evdev/keypad-direct-64bit.bin', import.meta.url).pathname, { python: 'python3-not-installed' });
    const err2 = await new Promise<NodeJS.ErrnoException>((r) => noPython.once('error', r));
    expect(err2).toMatchObject({ code: 'ENOPYTHON', message: expect.stringMatching(/python3-not-installed is not installed: .*apt install python3/) });
  });

  it('the reader\'s EVIOCGRAB is the one of <linux/input.h>', () => {
    if (skipWithout(existsSync('/usr/include/linux/input.h'), '/usr/include/linux/input.h', 'linux-libc-dev')) return;
    const header = readFileSync('/usr/include/linux/input.h', 'utf8');
    const m = /#define EVIOCGRAB\s+_IOW\('(.)', (0x[0-9a-f]+), int\)/.exec(header);
    expect(m).not.toBeNull();
    // asm-generic/ioctl.h: dir << 30 | size << 16 | type << 8 | nr, _IOC_WRITE = 1, sizeof(int) = 4
    const ioctl = ((1 << 30) | (4 << 16) | (m![1]!.charCodeAt(0) << 8) | Number(m![2])) >>> 0;
    expect(EVIOCGRAB).toBe(ioctl);
    expect(GRAB_READER_PY).toContain(`EVIOCGRAB = ${ioctl}`);
  });

  it('keys typed on an idle device reach the agent through the reader; closing ends the reader (no blocked read left behind)', async () => {
    const { execFileSync } = await import('node:child_process');
    const { tempDir } = await import('./agent-helpers.js');
    const { dir, cleanup } = tempDir('qrk-evdev-');
    cleanups.push(cleanup);
    // a FIFO with a writer that sends nothing blocks a reader exactly like an idle keypad
    const fifo = `${dir}/event0`;
    execFileSync('mkfifo', [fifo]);
    const writer = openSync(fifo, constants.O_RDWR);
    cleanups.push(() => closeSync(writer));
    const b = new EvdevButtons({ ...KEYPAD, device: fifo, eventSize: 16 }, undefined, new FaultLog());
    cleanups.push(() => b.close());
    const events: string[] = [];
    const pressed = new Promise<void>((resolve) =>
      b.onPress((s) => {
        events.push(`press ${s}`);
        resolve();
      }),
    );
    b.start();
    // a 32-bit keypad stream: KP1 down, SYN, KP1 up, SYN
    const rec = (type: number, code: number, value: number) => ({ sec: 1, usec: 0, type, code, value });
    writeSync(writer, encodeEvents([rec(EV_KEY, keyCode('KP1')!, 1), rec(0, 0, 0), rec(EV_KEY, keyCode('KP1')!, 0), rec(0, 0, 0)], 16));
    await pressed;
    expect(events).toEqual(['press 1']);
    // the reader's status line (stderr) may come after its first records (stdout)
    await waitFor('the reader to say how it reads', () => b.describe().detail.includes('grabbed'));
    expect(b.describe().detail).toMatch(/16-byte events, NOT grabbed \(ENOTTY .*\): keys also reach the console/);
    // the reader: this process's python3 child
    const pids = readdirSync('/proc')
      .filter((d) => /^\d+$/.test(d))
      .filter((d) => {
        try {
          const stat = readFileSync(`/proc/${d}/stat`, 'utf8');
          return Number(stat.slice(stat.lastIndexOf(')') + 2).split(' ')[1]) === process.pid && readFileSync(`/proc/${d}/cmdline`, 'utf8').includes('EVIOCGRAB');
        } catch {
          return false;
        }
      })
      .map(Number);
    expect(pids).toHaveLength(1);
    b.close();
    await waitFor('the reader to end', () => pids.every((p) => { try { process.kill(p, 0); return false; } catch { return true; } }));
  });
});
