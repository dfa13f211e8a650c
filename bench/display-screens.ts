// Regenerates the screenshots in docs/screens/ (shown in README.md and docs/display.md): every
// screen drawn by the framebuffer renderer (read back from the frame file) and by the kiosk web
// page (a headless Chromium screenshot). Not a benchmark; it lives beside them because it drives
// the same renderers. Run: npx tsx bench/display-screens.ts   (needs /usr/bin/chromium)

import { mkdirSync, mkdtempSync, readFileSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import { chromium } from 'playwright-core';
import { PNG } from 'pngjs';
import { formatMoney } from '../src/core/money.js';
import { FramebufferDisplay, WebDisplay, type FrameEvent, type Screen } from '../src/devices/display.js';
import { frameToLogicalRgba, type FbGeometry, type Rotation } from '../src/devices/display/surface.js';
import { BENCH_QR } from './display-render.js';

const OUT = new URL('../docs/screens/', import.meta.url).pathname;

const menu: Screen['products'] = [
  { slot: 1, name: 'Cola 350 ml', amountText: formatMoney(150000, 'ARS'), available: true },
  { slot: 2, name: 'Agua mineral sin gas 500 ml', amountText: formatMoney(90000, 'ARS'), available: true },
  { slot: 3, name: 'Alfajor triple de chocolate', amountText: formatMoney(120000, 'ARS'), available: false },
  { slot: 4, name: 'Papas fritas clásicas', amountText: formatMoney(210000, 'ARS'), available: true, stock: 2 },
];
const ORDER = 'ord_Zx81kQ2mTn4bVw9s';

export const SHOTS: Array<{ name: string; screen: Screen }> = [
  { name: 'idle', screen: { screen: 'idle', products: menu } },
  { name: 'pay', screen: { screen: 'pay', product: 'Cola 350 ml', amountText: formatMoney(150000, 'ARS'), qr: BENCH_QR, secondsLeft: 87, orderId: ORDER } },
  { name: 'pay-urgent', screen: { screen: 'pay', product: 'Cola 350 ml', amountText: formatMoney(150000, 'ARS'), qr: BENCH_QR, secondsLeft: 9, orderId: ORDER } },
  { name: 'dispensing', screen: { screen: 'dispensing', product: 'Cola 350 ml', orderId: ORDER } },
  { name: 'thank_you', screen: { screen: 'thank_you', orderId: ORDER } },
  { name: 'vend_failed', screen: { screen: 'vend_failed', orderId: ORDER } },
  { name: 'expired', screen: { screen: 'expired', orderId: ORDER } },
  { name: 'rejected', screen: { screen: 'rejected', orderId: ORDER, message: 'Precio desactualizado' } },
  { name: 'sold_out_button', screen: { screen: 'idle', products: menu, message: 'Producto agotado' } },
  { name: 'out_of_stock', screen: { screen: 'out_of_stock' } },
  { name: 'out_of_service-offline', screen: { screen: 'out_of_service', reason: 'offline' } },
  { name: 'out_of_service-fault', screen: { screen: 'out_of_service', reason: 'fault' } },
  { name: 'out_of_service-service', screen: { screen: 'out_of_service', reason: 'service' } },
];

const EXTRA: Array<{ name: string; screen: Screen; width: number; height: number; rotation: Rotation; locale: string }> = [
  {
    name: 'pay-320x240-clp',
    screen: { screen: 'pay', product: 'Alfajor triple de chocolate con dulce de leche', amountText: formatMoney(99990, 'CLP'), qr: `${BENCH_QR}${'0'.repeat(400 - BENCH_QR.length)}`, secondsLeft: 118 },
    width: 320,
    height: 240,
    rotation: 0,
    locale: 'es-CL',
  },
  {
    name: 'pay-480x800-pt',
    screen: { screen: 'pay', product: 'Água mineral 500 ml', amountText: formatMoney(450, 'BRL'), qr: BENCH_QR, secondsLeft: 64 },
    width: 480,
    height: 800,
    rotation: 0,
    locale: 'pt-BR',
  },
];

function png(rgba: Uint8Array, width: number, height: number): Buffer {
  const p = new PNG({ width, height });
  p.data = Buffer.from(rgba);
  return PNG.sync.write(p, { colorType: 2 });
}

async function framebufferShot(dir: string, s: Screen, g: FbGeometry, rotation: Rotation, locale: string): Promise<Buffer> {
  const sysfs = join(dir, 'sys');
  mkdirSync(sysfs, { recursive: true });
  writeFileSync(join(sysfs, 'bits_per_pixel'), `${g.bpp}\n`);
  writeFileSync(join(sysfs, 'virtual_size'), `${g.width},${g.height}\n`);
  writeFileSync(join(sysfs, 'stride'), `${g.stride}\n`);
  const device = join(dir, 'fb');
  writeFileSync(device, '');
  const d = new FramebufferDisplay({ device, sysfs, rotation, locale, refreshMs: 0 });
  const done = new Promise<void>((resolve) => d.once('frame', (_e: FrameEvent) => resolve()));
  d.show(s);
  await done;
  const img = frameToLogicalRgba(readFileSync(device), g, rotation);
  // close() would draw the shutdown screen over the file: read first
  d.close();
  return png(img.rgba, img.width, img.height);
}

async function main(): Promise<void> {
  mkdirSync(OUT, { recursive: true });
  const dir = mkdtempSync(join(tmpdir(), 'qrk-shots-'));
  const profile = mkdtempSync(join(tmpdir(), 'qrk-shots-chromium-'));
  const ctx = await chromium.launchPersistentContext(profile, {
    executablePath: '/usr/bin/chromium',
    args: ['--headless', '--no-sandbox', '--disable-gpu', '--disable-quic', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'],
    viewport: { width: 800, height: 480 },
  });
  try {
    const all = [
      ...SHOTS.map((s) => ({ ...s, width: 800, height: 480, rotation: 0 as Rotation, locale: 'es-AR' })),
      ...EXTRA,
    ];
    for (const shot of all) {
      const g: FbGeometry = { width: shot.width, height: shot.height, bpp: 32, stride: shot.width * 4 };
      writeFileSync(join(OUT, `fb-${shot.name}.png`), await framebufferShot(join(dir, shot.name), shot.screen, g, shot.rotation, shot.locale));
      const web = new WebDisplay({ port: 0, locale: shot.locale, rotation: shot.rotation });
      await web.ready;
      const page = await ctx.newPage();
      await page.setViewportSize({ width: shot.width, height: shot.height });
      await page.goto(web.url);
      web.show(shot.screen);
      await page.waitForSelector(`#screen[data-screen="${shot.screen.screen}"]`);
      writeFileSync(join(OUT, `web-${shot.name}.png`), await page.screenshot());
      await page.close();
      web.close();
      await web.whenClosed();
      console.log(`docs/screens/{fb,web}-${shot.name}.png`);
    }
  } finally {
    await ctx.close();
    rmSync(dir, { recursive: true, force: true });
    rmSync(profile, { recursive: true, force: true });
  }
}

await main();
