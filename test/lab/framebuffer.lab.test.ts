import { execFileSync } from 'node:child_process';
import { existsSync, readFileSync } from 'node:fs';
import jsqr from 'jsqr';
import { afterEach, describe, expect, it } from 'vitest';
import { formatMoney } from '../../src/core/money.js';
import { FramebufferDisplay, readFbGeometry, type FrameEvent } from '../../src/devices/display.js';
import { frameToRgba } from '../../src/devices/display/surface.js';

// The framebuffer renderer, unchanged, on a real /dev/fb0 from the kernel's vfb driver, loaded
// once per depth with 800x480 (a common Pi panel; "M": computed CVT timings, the mode table has no 800x480). What the renderer wrote is read back
// from the device and the QR on it decoded.

const jsQR = jsqr.default;
const PAYLOAD = '00020101021243650016COM.MERCADOLIBRE02013063638f1192a-5fd1-4180-a180-8bcae3556bc35204000053039865802BR5925LAB KIOSK6009SAO PAULO62070503***6304B1A2';

function loadVfb(bpp: 16 | 32): void {
  const modroot = process.env.QRKIOSK_LAB_MODROOT;
  if (!modroot) throw new Error('QRKIOSK_LAB_MODROOT is not set: run through npm run test:lab');
  if (existsSync('/sys/module/vfb')) execFileSync('rmmod', ['vfb']);
  execFileSync('modprobe', ['-d', modroot, 'vfb', 'vfb_enable=1', 'videomemorysize=4194304', `mode_option=800x480M-${bpp}`]);
}

let display: FramebufferDisplay | undefined;
afterEach(() => {
  display?.close();
  display = undefined;
});

describe.each([16, 32] as const)('framebuffer renderer on vfb at %i bpp', (bpp) => {
  it('draws the pay screen; the bytes read back from /dev/fb0 decode to the QR payload', async () => {
    loadVfb(bpp);
    const g = readFbGeometry('/sys/class/graphics/fb0');
    expect(g).toMatchObject({ width: 800, height: 480, bpp });
    // the console on the same framebuffer would draw its cursor over the frame (docs/display.md)
    if (existsSync('/sys/class/graphics/fbcon/cursor_blink')) execFileSync('sh', ['-c', 'echo 0 > /sys/class/graphics/fbcon/cursor_blink']);
    display = new FramebufferDisplay({ device: '/dev/fb0', locale: 'es-AR', refreshMs: 0 });
    const frame = new Promise<FrameEvent>((resolve) => display!.once('frame', resolve));
    display.show({ screen: 'pay', product: 'Cola 350ml', amountText: formatMoney(150000, 'ARS'), qr: PAYLOAD, secondsLeft: 42, orderId: 'ord_lab' });
    await frame;
    const bytes = readFileSync('/dev/fb0').subarray(0, g.stride * g.height);
    const rgba = frameToRgba(Buffer.from(bytes), g);
    const found = jsQR(new Uint8ClampedArray(rgba.buffer, rgba.byteOffset, rgba.length), g.width, g.height);
    expect(found?.data).toBe(PAYLOAD);
  });
});
