import { execFileSync } from 'node:child_process';
import { chmodSync, existsSync, mkdirSync, mkdtempSync, readFileSync, rmSync, symlinkSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsqr from 'jsqr';
import { PNG } from 'pngjs';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent } from '../src/agent/agent.js';
import { parseAgentConfig } from '../src/agent/config.js';
import { formatMoney } from '../src/core/money.js';
import { SimButtons } from '../src/devices/buttons.js';
import { SimDispenser } from '../src/devices/dispenser.js';
import { FramebufferDisplay, FramebufferError, createDisplay, readFbGeometry, type FrameEvent, type Screen } from '../src/devices/display.js';
import { unblankPanel } from '../src/devices/display/framebuffer.js';
import { overlaps, type Box, type Layout } from '../src/devices/display/layout.js';
import { frameToLogicalRgba, frameToRgba, ROTATIONS, type FbGeometry, type Rotation } from '../src/devices/display/surface.js';
import { silentLogger } from '../src/runtime/log.js';
import { FakeRelay, POS_QR, agentConfig, nextEvent } from './agent-helpers.js';
import { waitFor } from './helpers/wait.js';
import { skipWithout } from './helpers/ci.js';

// jsqr is CommonJS: under NodeNext its default export is the module, whose .default is the decoder
const jsQR = jsqr.default;

// The framebuffer renderer on a regular file with a fake sysfs folder: every pixel format and
// rotation is drawn, read back as an image, and the QR decoded by real decoders (jsQR, and
// zbarimg from zbar-tools).

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const ZBAR = !skipWithout(existsSync('/usr/bin/zbarimg'), 'zbarimg', 'zbar-tools');

function tmp(prefix: string): string {
  const dir = mkdtempSync(join(tmpdir(), prefix));
  cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
  return dir;
}

interface FakeFb {
  device: string;
  sysfs: string;
  geom: FbGeometry;
}

/** A framebuffer as a regular file plus the sysfs attributes the driver would show. */
function fakeFb(g: FbGeometry & { virtualHeight?: number; modes?: string }): FakeFb {
  const dir = tmp('qrk-fb-');
  const sysfs = join(dir, 'sys', 'fb0');
  mkdirSync(sysfs, { recursive: true });
  writeFileSync(join(sysfs, 'bits_per_pixel'), `${g.bpp}\n`);
  writeFileSync(join(sysfs, 'virtual_size'), `${g.width},${g.virtualHeight ?? g.height}\n`);
  writeFileSync(join(sysfs, 'stride'), `${g.stride}\n`);
  writeFileSync(join(sysfs, 'name'), 'fake fb\n');
  if (g.modes) writeFileSync(join(sysfs, 'modes'), g.modes);
  const device = join(dir, 'fb0');
  writeFileSync(device, '');
  return { device, sysfs, geom: { width: g.width, height: g.height, bpp: g.bpp, stride: g.stride } };
}

function open(fb: FakeFb, rotation: Rotation = 0, locale = 'es-AR'): FramebufferDisplay {
  const d = new FramebufferDisplay({ device: fb.device, sysfs: fb.sysfs, rotation, locale, refreshMs: 0 });
  cleanups.push(() => d.close());
  return d;
}

async function showAndWait(d: FramebufferDisplay, s: Screen): Promise<FrameEvent> {
  const frame = nextEvent<FrameEvent>(d as never, 'frame', (e) => e.screen.screen === s.screen && e.screen.secondsLeft === s.secondsLeft && e.screen.amountText === s.amountText && e.screen.qr === s.qr);
  d.show(s);
  return frame;
}

function decodeJsqr(rgba: Uint8Array, w: number, h: number): string | undefined {
  return jsQR(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, rgba.length), w, h)?.data;
}

function pngOf(rgba: Uint8Array, w: number, h: number): Buffer {
  const png = new PNG({ width: w, height: h });
  png.data = Buffer.from(rgba);
  return PNG.sync.write(png);
}

function decodeZbar(png: Buffer): string | undefined {
  const dir = tmp('qrk-zbar-');
  const file = join(dir, 'frame.png');
  writeFileSync(file, png);
  try {
    return execFileSync('/usr/bin/zbarimg', ['-q', '--raw', file], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).replace(/\n$/, '');
  } catch {
    return undefined;
  }
}

function pay(over: Partial<Screen> = {}): Screen {
  return { screen: 'pay', product: 'Cola 350ml', amountText: formatMoney(150000, 'ARS'), qr: POS_QR, secondsLeft: 42, orderId: 'ord_abcdefghijklmnop', ...over };
}

function box(layout: Layout, role: string): Layout['boxes'][number] {
  const b = layout.boxes.find((x) => x.role === role);
  if (!b) throw new Error(`no ${role} box in the layout`);
  return b;
}

/** Logical pixels that differ between two frames, as a bounding box (undefined: identical). */
function diffBox(a: { width: number; height: number; rgba: Uint8Array }, b: { rgba: Uint8Array }): Box | undefined {
  let x0 = Infinity, y0 = Infinity, x1 = -1, y1 = -1;
  for (let y = 0; y < a.height; y++) {
    for (let x = 0; x < a.width; x++) {
      const o = (y * a.width + x) * 4;
      if (a.rgba[o] !== b.rgba[o] || a.rgba[o + 1] !== b.rgba[o + 1] || a.rgba[o + 2] !== b.rgba[o + 2]) {
        x0 = Math.min(x0, x);
        y0 = Math.min(y0, y);
        x1 = Math.max(x1, x);
        y1 = Math.max(y1, y);
      }
    }
  }
  return x1 < 0 ? undefined : { x: x0, y: y0, w: x1 - x0 + 1, h: y1 - y0 + 1 };
}

/**
 * Undoes a clockwise rotation of the picture: the customer's pixel (x, y) is on the panel at
 * 90: (W-1-y, x), 180: (W-1-x, H-1-y), 270: (y, H-1-x).
 */
function unrotate(dev: Uint8Array, W: number, H: number, rotation: Rotation): { width: number; height: number; rgba: Uint8Array } {
  const turned = rotation === 90 || rotation === 270;
  const w = turned ? H : W;
  const h = turned ? W : H;
  const out = new Uint8Array(w * h * 4);
  for (let y = 0; y < h; y++) {
    for (let x = 0; x < w; x++) {
      const [dx, dy] = rotation === 0 ? [x, y] : rotation === 90 ? [W - 1 - y, x] : rotation === 180 ? [W - 1 - x, H - 1 - y] : [y, H - 1 - x];
      out.set(dev.subarray((dy * W + dx) * 4, (dy * W + dx) * 4 + 4), (y * w + x) * 4);
    }
  }
  return { width: w, height: h, rgba: out };
}

function inside(inner: Box, outer: Box): boolean {
  return inner.x >= outer.x && inner.y >= outer.y && inner.x + inner.w <= outer.x + outer.w && inner.y + inner.h <= outer.y + outer.h;
}

const FORMATS: Array<{ name: string; g: FbGeometry }> = [
  { name: 'RGB565', g: { width: 800, height: 480, bpp: 16, stride: 1600 } },
  { name: 'XRGB8888', g: { width: 800, height: 480, bpp: 32, stride: 3200 } },
  { name: 'RGB565, padded rows', g: { width: 480, height: 320, bpp: 16, stride: 1024 } },
  { name: 'XRGB8888, padded rows', g: { width: 720, height: 480, bpp: 32, stride: 3072 } },
];

describe('framebuffer geometry from sysfs', () => {
  it('reads bpp, virtual size and stride; the visible mode wins over a double-height virtual size', () => {
    const fb = fakeFb({ width: 800, height: 480, bpp: 32, stride: 3200, virtualHeight: 960, modes: 'U:800x480p-0\n' });
    expect(readFbGeometry(fb.sysfs)).toEqual({ width: 800, height: 480, bpp: 32, stride: 3200 });
  });

  it('refuses what it cannot draw, naming the config key and the fix', () => {
    const dir = tmp('qrk-fbx-');
    expect(() => readFbGeometry(join(dir, 'nope'))).toThrow(/key "hardware\.display\.framebuffer\.sysfs": cannot read .*bits_per_pixel.*\/sys\/class\/graphics/);
    const eight = fakeFb({ width: 640, height: 480, bpp: 8 as never, stride: 640 });
    expect(() => readFbGeometry(eight.sysfs)).toThrow(/says 8; only 16 \(RGB565\), 24 and 32/);
    const short = fakeFb({ width: 640, height: 480, bpp: 32, stride: 2000 });
    expect(() => readFbGeometry(short.sysfs)).toThrow(FramebufferError);
    const fb = fakeFb({ width: 320, height: 240, bpp: 16, stride: 640 });
    expect(() => new FramebufferDisplay({ device: join(fb.sysfs, 'no-such-fb'), sysfs: fb.sysfs })).toThrow(/key "hardware\.display\.framebuffer\.device": cannot open .*ENOENT/);
  });
});

describe('framebuffer pay screen: every format and rotation decodes', () => {
  for (const f of FORMATS) {
    for (const rotation of ROTATIONS) {
      it(`${f.name} ${f.g.width}x${f.g.height} stride ${f.g.stride}, rotation ${rotation}`, async () => {
        const fb = fakeFb(f.g);
        const d = open(fb, rotation);
        const first = await showAndWait(d, pay());
        expect(first.full).toBe(true);
        const bytes = readFileSync(fb.device);
        expect(bytes.length).toBe(f.g.stride * f.g.height); // one whole frame, padding included

        // the panel's own picture (as mounted) decodes with both decoders
        const dev = frameToRgba(bytes, f.g);
        expect(decodeJsqr(dev, f.g.width, f.g.height)).toBe(POS_QR);
        if (ZBAR) expect(decodeZbar(pngOf(dev, f.g.width, f.g.height))).toBe(POS_QR);

        // rotation is a pure clockwise rotation: undone here with plain index arithmetic, it is
        // exactly the same screen drawn unrotated on a panel of the turned size
        const logical = unrotate(dev, f.g.width, f.g.height, rotation);
        expect(diffBox(logical, { rgba: frameToLogicalRgba(bytes, f.g, rotation).rgba })).toBeUndefined();
        const upright = fakeFb({ width: logical.width, height: logical.height, bpp: f.g.bpp, stride: (logical.width * f.g.bpp) / 8 });
        const d0 = open(upright, 0);
        await showAndWait(d0, pay());
        const ref = frameToRgba(readFileSync(upright.device), upright.geom);
        expect(diffBox(logical, { rgba: ref })).toBeUndefined();
        // ...and it did turn the picture: upside down is not the same picture
        if (rotation === 180) expect(diffBox(logical, { rgba: dev })).toBeDefined();

        // the price is drawn: another price changes the price's pixels and nothing else but the
        // price box (the QR and everything around it stay identical)
        const layoutA = d.lastLayout()!;
        await showAndWait(d, pay({ amountText: formatMoney(180000, 'ARS') }));
        const layoutB = d.lastLayout()!;
        const after = frameToLogicalRgba(readFileSync(fb.device), f.g, rotation);
        const changed = diffBox(logical, after);
        expect(changed).toBeDefined();
        const priceA = box(layoutA, 'price');
        const priceB = box(layoutB, 'price');
        const union = { x: Math.min(priceA.x, priceB.x), y: Math.min(priceA.y, priceB.y), w: Math.max(priceA.x + priceA.w, priceB.x + priceB.w) - Math.min(priceA.x, priceB.x), h: Math.max(priceA.h, priceB.h) };
        expect(inside(changed!, union), `changed ${JSON.stringify(changed)} outside the price ${JSON.stringify(union)}`).toBe(true);
        expect(overlaps(changed!, box(layoutB, 'qr'))).toBe(false);
      });
    }
  }
});

describe('framebuffer unblanking', () => {
  const G = { width: 320, height: 240, bpp: 16 as const, stride: 640 };

  it('writes 0 to the blank attribute when allowed, and says so in `qrkiosk hardware`', () => {
    const fb = fakeFb(G);
    writeFileSync(join(fb.sysfs, 'blank'), '1');
    const d = open(fb);
    expect(readFileSync(join(fb.sysfs, 'blank'), 'utf8')).toBe('0');
    expect(d.describe()).toMatchObject({ role: 'display', driver: 'framebuffer', status: 'ok', detail: expect.stringMatching(/320x240 16 bpp, rotation 0, .*unblank: ok$/) });
  });

  it('not allowed or not there: never silent, UNAVAILABLE with the reason and the fix', () => {
    const fb = fakeFb(G);
    const d = open(fb);
    expect(d.unblank).toEqual({ ok: false, reason: expect.stringMatching(/blank does not exist \(this framebuffer driver has no blanking control\)/) });
    expect(d.describe().detail).toMatch(/unblank: UNAVAILABLE \(.*no blanking control\)/);
    // a kernel file that refuses the write, for any user (root included)
    symlinkSync('/proc/version', join(fb.sysfs, 'blank'));
    expect(unblankPanel(fb.sysfs)).toEqual({ ok: false, reason: expect.stringMatching(/blank: .*EIO/) });
    rmSync(join(fb.sysfs, 'blank'));
    if (process.getuid?.() !== 0) {
      writeFileSync(join(fb.sysfs, 'blank'), '1');
      chmodSync(join(fb.sysfs, 'blank'), 0o444);
      expect(unblankPanel(fb.sysfs)).toEqual({ ok: false, reason: expect.stringMatching(/writable only by root: install hardware\/udev\/99-qrkiosk\.rules .*consoleblank=0/) });
    }
  });
});

describe('framebuffer behaviour', () => {
  it('frames drawn over the cached screen (countdown put back, QR square redrawn) equal frames drawn from scratch', async () => {
    const idle: Screen = { screen: 'idle', products: [{ slot: 1, name: 'Cola 350ml', amountText: formatMoney(150000, 'ARS'), available: true }] };
    const other = `${POS_QR.slice(0, -8)}-another`;
    // every frame of a kiosk's day on one display (the second 90 s countdown comes from the
    // kept pixels), each compared with a new display's first frame
    const day: Screen[] = [pay({ secondsLeft: 90 }), pay({ secondsLeft: 89 }), idle, pay({ qr: other, orderId: 'ord_other0000000', secondsLeft: 16 }), pay({ qr: other, orderId: 'ord_other0000000', secondsLeft: 15 }), pay({ qr: other, orderId: 'ord_other0000000', secondsLeft: 14 }), idle, pay({ secondsLeft: 7 }), pay({ secondsLeft: 100 }), idle, pay({ secondsLeft: 90 }), pay({ qr: other, orderId: 'ord_other0000001', secondsLeft: 90 })];
    for (const [g, rotation] of [[{ width: 800, height: 480, bpp: 32, stride: 3200 }, 90], [{ width: 320, height: 240, bpp: 16, stride: 640 }, 0]] as const) {
      const fb = fakeFb(g);
      const d = open(fb, rotation);
      for (const [i, s] of day.entries()) {
        await showAndWait(d, s);
        const fresh = fakeFb(g);
        const d0 = open(fresh, rotation);
        await showAndWait(d0, s);
        expect(readFileSync(fb.device).equals(readFileSync(fresh.device)), `frame ${i} (${s.screen} ${s.secondsLeft ?? ''}) at ${g.width}x${g.height} rotation ${rotation}`).toBe(true);
      }
    }
  });

  it('showNow() draws and writes the frame before returning, announces it after; the show() of the same screen after it draws nothing', async () => {
    const fb = fakeFb({ width: 800, height: 480, bpp: 32, stride: 3200 });
    const d = open(fb);
    const frames: FrameEvent[] = [];
    d.on('frame', (e: FrameEvent) => frames.push(e));
    const first = nextEvent<FrameEvent>(d as never, 'frame', (e) => e.screen.secondsLeft === 42);
    expect(d.lastLayout()).toBeUndefined();
    const before = performance.now();
    d.showNow(pay());
    const after = performance.now();
    expect(d.lastLayout()).toBeDefined(); // drawn inside showNow()
    // written inside showNow(): the QR is on the device before the caller goes on (its fsync)
    expect(decodeJsqr(frameToRgba(readFileSync(fb.device), fb.geom), 800, 480)).toBe(POS_QR);
    expect(frames).toEqual([]); // announced only after the caller returned
    d.show(pay());
    const e = await first;
    expect(e.writtenAt).toBeGreaterThanOrEqual(before);
    expect(e.writtenAt).toBeLessThanOrEqual(after);
    expect(decodeJsqr(frameToRgba(readFileSync(fb.device), fb.geom), 800, 480)).toBe(POS_QR);
    // the next screen is drawn as usual, and only once the pay frame was written
    await showAndWait(d, pay({ secondsLeft: 41 }));
    expect(frames.map((f) => f.screen.secondsLeft)).toEqual([42, 41]);
  });

  it('a countdown tick redraws only the countdown, over the cached screen, as a whole frame', async () => {
    const fb = fakeFb({ width: 800, height: 480, bpp: 32, stride: 3200 });
    const d = open(fb);
    await showAndWait(d, pay({ secondsLeft: 42 }));
    const before = frameToLogicalRgba(readFileSync(fb.device), fb.geom, 0);
    const tick = await showAndWait(d, pay({ secondsLeft: 41 }));
    expect(tick.full).toBe(false);
    const bytes = readFileSync(fb.device);
    expect(bytes.length).toBe(3200 * 480);
    const changed = diffBox(before, frameToLogicalRgba(bytes, fb.geom, 0));
    const count = box(d.lastLayout()!, 'countdown');
    expect(changed).toBeDefined();
    expect(inside(changed!, count)).toBe(true);
    // the countdown turns urgent (red) at 15 s: the pill's colour changes
    await showAndWait(d, pay({ secondsLeft: 9 }));
    const urgent = frameToLogicalRgba(readFileSync(fb.device), fb.geom, 0);
    const o = ((count.y + 2) * 800 + count.x + Math.floor(count.w / 2)) * 4;
    expect([urgent.rgba[o], urgent.rgba[o + 1], urgent.rgba[o + 2]]).toEqual([0xc6, 0x28, 0x28]);
  });

  it('the next order after the idle screen reuses the painted screen, decodes its own QR, and writes only changed rows', async () => {
    const fb = fakeFb({ width: 800, height: 480, bpp: 32, stride: 3200 });
    const d = open(fb);
    const idle: Screen = { screen: 'idle', products: [{ slot: 1, name: 'Cola 350ml', amountText: formatMoney(150000, 'ARS'), available: true }] };
    expect((await showAndWait(d, pay())).full).toBe(true);
    expect((await showAndWait(d, idle)).full).toBe(true);
    // a new order for the same product, with its own QR payload: no repaint of text and shapes
    const second = `${POS_QR.slice(0, -8)}-second`;
    const again = await showAndWait(d, pay({ qr: second, orderId: 'ord_second000' }));
    expect(again.full).toBe(false);
    expect(decodeJsqr(frameToRgba(readFileSync(fb.device), fb.geom), 800, 480)).toBe(second);
    expect((await showAndWait(d, idle)).full).toBe(false);
    expect(decodeJsqr(frameToRgba(readFileSync(fb.device), fb.geom), 800, 480)).toBeUndefined();
    // a countdown tick rewrites only the rows of the countdown: scribble elsewhere survives it
    await showAndWait(d, pay({ qr: second, orderId: 'ord_second000', secondsLeft: 30 }));
    const count = box(d.lastLayout()!, 'countdown');
    const bytes = readFileSync(fb.device);
    const outside = count.y > 10 ? 0 : (count.y + count.h + 5) * 3200;
    bytes.fill(0x55, outside, outside + 16);
    writeFileSync(fb.device, bytes);
    await showAndWait(d, pay({ qr: second, orderId: 'ord_second000', secondsLeft: 29 }));
    expect([...readFileSync(fb.device).subarray(outside, outside + 16)]).toEqual(new Array(16).fill(0x55));
  });

  it("a completed sale's screens do not push the pay screen out: the next order is a copy, and each screen's pixels are its own", async () => {
    const fb = fakeFb({ width: 800, height: 480, bpp: 32, stride: 3200 });
    const d = open(fb);
    const idle: Screen = { screen: 'idle', products: [{ slot: 1, name: 'Cola 350ml', amountText: formatMoney(150000, 'ARS'), available: true }] };
    const sale: Screen[] = [
      { screen: 'dispensing', orderId: 'ord_1', product: 'Cola 350ml' },
      { screen: 'thank_you', orderId: 'ord_1', product: 'Cola 350ml' },
    ];
    // what each screen looks like drawn alone, on a display that drew nothing before
    const alone = async (s: Screen): Promise<Buffer> => {
      const other = fakeFb({ width: 800, height: 480, bpp: 32, stride: 3200 });
      await showAndWait(open(other), s);
      return readFileSync(other.device);
    };
    // a kiosk starts out of service (relay not reached yet), then sells
    const offline: Screen = { screen: 'out_of_service', reason: 'offline' };
    await showAndWait(d, offline);
    expect(readFileSync(fb.device).equals(await alone(offline))).toBe(true);
    await showAndWait(d, idle);
    expect(readFileSync(fb.device).equals(await alone(idle))).toBe(true);
    expect((await showAndWait(d, pay())).full).toBe(true);
    for (const s of sale) {
      await showAndWait(d, s);
      expect(readFileSync(fb.device).equals(await alone(s))).toBe(true);
    }
    expect((await showAndWait(d, idle)).full).toBe(false);
    expect(readFileSync(fb.device).equals(await alone(idle))).toBe(true);
    // the next customer: the pay screen is still painted, only its QR is new
    const second = `${POS_QR.slice(0, -8)}-second`;
    const again = await showAndWait(d, pay({ qr: second, orderId: 'ord_second000' }));
    expect(again.full).toBe(false);
    expect(readFileSync(fb.device).equals(await alone(pay({ qr: second, orderId: 'ord_second000' })))).toBe(true);
    // and again after the second sale, whose screens are drawn over the frames the pay screen used
    for (const s of sale) await showAndWait(d, s);
    expect(readFileSync(fb.device).equals(await alone(sale[1]!))).toBe(true);
    await showAndWait(d, idle);
    expect((await showAndWait(d, pay())).full).toBe(false);
    expect(decodeJsqr(frameToRgba(readFileSync(fb.device), fb.geom), 800, 480)).toBe(POS_QR);
  });

  it('one kept surface per screen: a newer idle or another product\'s pay screen repaints the older one, never pushes the other screen out', async () => {
    const fb = fakeFb({ width: 800, height: 480, bpp: 32, stride: 3200 });
    const d = open(fb);
    const alone = async (s: Screen): Promise<Buffer> => {
      const other = fakeFb({ width: 800, height: 480, bpp: 32, stride: 3200 });
      await showAndWait(open(other), s);
      return readFileSync(other.device);
    };
    const products = [{ slot: 1, name: 'Cola 350ml', amountText: formatMoney(150000, 'ARS'), available: true }];
    // a kiosk starts on idle saying it is connecting, then the catalog comes
    await showAndWait(d, { screen: 'idle', products, message: 'Conectando...' });
    const idle: Screen = { screen: 'idle', products };
    await showAndWait(d, idle);
    expect(readFileSync(fb.device).equals(await alone(idle))).toBe(true);
    // two customers in a row press different products (the first one cancels)
    await showAndWait(d, pay());
    const chips = pay({ product: 'Chips', amountText: formatMoney(90000, 'ARS'), orderId: 'ord_chips0000001' });
    expect((await showAndWait(d, chips)).full).toBe(true);
    expect(readFileSync(fb.device).equals(await alone(chips))).toBe(true);
    // the idle screen is still painted: going back to it is a copy, not a repaint
    expect((await showAndWait(d, idle)).full).toBe(false);
    expect(readFileSync(fb.device).equals(await alone(idle))).toBe(true);
    // and the pay screen kept is the newest product's
    expect((await showAndWait(d, chips)).full).toBe(false);
    expect(readFileSync(fb.device).equals(await alone(chips))).toBe(true);
  });

  it('show() returns before drawing; a burst of screens is coalesced into the newest', async () => {
    const fb = fakeFb({ width: 800, height: 480, bpp: 16, stride: 1600 });
    const d = open(fb);
    const frames: FrameEvent[] = [];
    d.on('frame', (e: FrameEvent) => frames.push(e));
    const payloads = [1, 2, 3, 4, 5].map((i) => `${POS_QR.slice(0, -8)}-${i}`);
    for (const qr of payloads) d.show(pay({ qr }));
    // nothing was drawn or written inside show(): the vend path never waits for pixels
    expect(d.framesWritten).toBe(0);
    expect(readFileSync(fb.device).length).toBe(0);
    await waitFor('the newest screen on the panel', () => frames.find((f) => f.screen.qr === payloads[4]));
    expect(frames.length).toBeLessThan(payloads.length);
    expect(decodeJsqr(frameToRgba(readFileSync(fb.device), fb.geom), 800, 480)).toBe(payloads[4]);
  });

  it('close() leaves an out-of-service screen (never a stale QR) and releases the device', async () => {
    const fb = fakeFb({ width: 480, height: 320, bpp: 32, stride: 1920 });
    const d = new FramebufferDisplay({ device: fb.device, sysfs: fb.sysfs, refreshMs: 0 });
    await showAndWait(d, pay());
    expect(decodeJsqr(frameToRgba(readFileSync(fb.device), fb.geom), 480, 320)).toBe(POS_QR);
    const closed = nextEvent(d as never, 'closed');
    d.close();
    await closed;
    const rgba = frameToRgba(readFileSync(fb.device), fb.geom);
    expect(decodeJsqr(rgba, 480, 320)).toBeUndefined();
    // the whole panel is the out-of-service colour behind the text
    expect([rgba[0], rgba[1], rgba[2]]).toEqual([0xb3, 0x26, 0x1e]);
    d.show(pay()); // ignored after close
    expect(d.last()?.screen).toBe('pay');
  });

  it('the smallest panel (320x240, either way up) fits a long name, a 5-digit CLP price and a 400-character QR', async () => {
    const payload = `00020101021226${'7'.repeat(2)}0014COM.MERCADOPAGO`.padEnd(396, 'X0Y1') + '6304';
    expect(payload).toHaveLength(400);
    const price = formatMoney(99990, 'CLP');
    expect(price).toBe('$ 99.990');
    const name = 'Alfajor triple de chocolate con dulce de leche y nueces, edición especial';
    for (const rotation of [0, 90] as const) {
      const fb = fakeFb({ width: 320, height: 240, bpp: 16, stride: 640 });
      const d = open(fb, rotation, 'es-CL');
      await showAndWait(d, pay({ product: name, amountText: price, qr: payload, secondsLeft: 120 }));
      const layout = d.lastLayout()!;
      const panel = { x: 0, y: 0, w: layout.width, h: layout.height };
      expect(layout.problems).toEqual([]);
      const qr = box(layout, 'qr');
      expect(inside(qr, panel), `QR ${JSON.stringify(qr)} inside ${JSON.stringify(panel)}`).toBe(true);
      for (const b of layout.boxes) {
        expect(inside(b, panel), `${b.role} "${b.text ?? ''}" ${JSON.stringify(b)} is clipped`).toBe(true);
        if (b.role !== 'qr') expect(overlaps(b, qr), `${b.role} "${b.text ?? ''}" covers the QR`).toBe(false);
      }
      // the price whole, the name started (wrapped or cut with …), the countdown there
      expect(box(layout, 'price').text).toBe(price);
      expect(layout.boxes.find((b) => b.role === 'product')?.text).toMatch(/^Alfajor/);
      expect(layout.boxes.some((b) => b.role === 'countdown')).toBe(true);
      expect(layout.boxes.find((b) => b.role === 'step')?.text).toMatch(/Abre la app|Escanea/); // es-CL: tú
      const rgba = frameToRgba(readFileSync(fb.device), fb.geom);
      expect(decodeJsqr(rgba, 320, 240)).toBe(payload);
      if (ZBAR) expect(decodeZbar(pngOf(rgba, 320, 240))).toBe(payload);
    }
  });

  it('every screen fits the panel in es, pt and en, at 320x240 and 1920x1080', async () => {
    const screens: Screen[] = [
      { screen: 'idle', products: Array.from({ length: 12 }, (_, i) => ({ slot: i + 1, name: `Producto número ${i + 1} con nombre largo`, amountText: formatMoney(150000 + i * 100, 'BRL'), available: i % 4 !== 3 })), message: 'Producto agotado' },
      pay(),
      { screen: 'dispensing', product: 'Cola 350ml' },
      { screen: 'thank_you' },
      { screen: 'vend_failed', orderId: 'ord_Zx81kQ2mTn4bVw9s' },
      { screen: 'expired', orderId: 'ord_Zx81kQ2mTn4bVw9s' },
      { screen: 'rejected', orderId: 'ord_Zx81kQ2mTn4bVw9s', message: 'Precio desactualizado' },
      { screen: 'out_of_stock' },
      { screen: 'out_of_service', reason: 'offline' },
      { screen: 'out_of_service', reason: 'fault' },
      { screen: 'out_of_service', reason: 'service' },
    ];
    {
      for (const g of [
        { width: 320, height: 240, bpp: 16 as const, stride: 640 },
        { width: 1920, height: 1080, bpp: 32 as const, stride: 7680 },
      ]) {
        for (const locale of ['es-AR', 'pt-BR', 'en']) {
          const fb = fakeFb(g);
          const d = open(fb, 0, locale);
          for (const s of screens) {
            await showAndWait(d, s);
            const layout = d.lastLayout()!;
            const panel = { x: 0, y: 0, w: layout.width, h: layout.height };
            expect(layout.problems, `${s.screen} ${locale} ${g.width}x${g.height}`).toEqual([]);
            for (const b of layout.boxes) expect(inside(b, panel), `${s.screen} ${locale}: ${b.role} "${b.text ?? ''}" clipped`).toBe(true);
            if (s.screen === 'vend_failed') expect(layout.boxes.some((b) => b.text?.includes('ord_Zx81kQ2mTn4bVw9s'))).toBe(true);
          }
        }
      }
    }
  }, 60_000);
});

describe('display.driver: framebuffer in the agent', () => {
  it('config keys are checked and the agent draws its pay screen on the device', async () => {
    expect(() => parseAgentConfig({ ...agentConfig('/tmp', 'ws://127.0.0.1:1/v1/kiosk'), hardware: { display: { driver: 'framebuffer', rotation: 45 } } })).toThrow(/key "hardware\.display\.rotation": use 0, 90, 180 or 270/);
    expect(() => parseAgentConfig({ ...agentConfig('/tmp', 'ws://127.0.0.1:1/v1/kiosk'), hardware: { display: { driver: 'framebuffer', framebuffer: { device: 'fb0' } } } })).toThrow(/key "hardware\.display\.framebuffer\.device": write an absolute path/);
    expect(() => parseAgentConfig({ ...agentConfig('/tmp', 'ws://127.0.0.1:1/v1/kiosk'), hardware: { display: { driver: 'framebufer' } } })).toThrow(/key "hardware\.display\.driver": use one of terminal, framebuffer, web, log, none/);
    expect(() => parseAgentConfig({ ...agentConfig('/tmp', 'ws://127.0.0.1:1/v1/kiosk'), hardware: { display: { driver: 'framebuffer', framebuffer: { dev: '/dev/fb0' } } } })).toThrow(/key "hardware\.display\.framebuffer": unknown key\(s\) "dev"/);

    const fb = fakeFb({ width: 480, height: 320, bpp: 16, stride: 960 });
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const dir = tmp('qrk-fbagent-');
    const base = agentConfig(dir, relay.url) as Record<string, unknown> & { hardware: Record<string, unknown> };
    const config = { ...base, hardware: { ...base.hardware, display: { driver: 'framebuffer', rotation: 180, framebuffer: { device: fb.device, sysfs: fb.sysfs } } } };
    // createDisplay is what the agent's buildDisplay calls
    const probe = createDisplay(parseAgentConfig(config).hardware.display, { locale: 'es-AR', logger: silentLogger() });
    expect(probe).toBeInstanceOf(FramebufferDisplay);
    expect((probe as FramebufferDisplay).rotation).toBe(180);
    probe.close();
    const agent = await startAgent(config as never, {
      logger: silentLogger(),
      control: false,
      buttons: new SimButtons(),
      dispenser: new SimDispenser({ pulseMs: 5, dropWindowMs: 50, maxPulses: 1, fault: 'none', dropDelayMs: 2, slowDropMs: 100 }),
    });
    cleanups.push(() => agent.close());
    await waitFor('agent online', () => agent.status().relay.online);
    const r = agent.select(1);
    expect(r.ok).toBe(true);
    await waitFor('the pay screen on the framebuffer file', () => {
      const bytes = readFileSync(fb.device);
      return bytes.length === 960 * 320 && decodeJsqr(frameToRgba(bytes, fb.geom), 480, 320) === POS_QR;
    });
  });
});
