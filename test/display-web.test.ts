import { execFileSync } from 'node:child_process';
import { existsSync, mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { request } from 'node:http';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import jsqr from 'jsqr';
import { chromium, type BrowserContext, type Page } from 'playwright-core';
import { PNG } from 'pngjs';
import { WebSocket } from 'ws';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent/agent.js';
import { parseAgentConfig } from '../src/agent/config.js';
import { formatMoney } from '../src/core/money.js';
import { SimButtons } from '../src/devices/buttons.js';
import { WebDisplay, createDisplay, type Screen } from '../src/devices/display.js';
import type { Dispenser, VendOutcome } from '../src/devices/dispenser.js';
import { silentLogger } from '../src/runtime/log.js';
import { FakeRelay, POS_QR, agentConfig } from './agent-helpers.js';
import { skipWithout } from './helpers/ci.js';

// jsqr is CommonJS: under NodeNext its default export is the module, whose .default is the decoder
const jsQR = jsqr.default;

// The kiosk page in real headless Chromium (Debian's, driven by playwright-core), fed by a real
// agent over a real WebSocket on loopback. The QR is decoded from screenshots.

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = !skipWithout(existsSync(CHROMIUM), CHROMIUM, 'chromium');
const ZBAR = !skipWithout(existsSync('/usr/bin/zbarimg'), 'zbarimg', 'zbar-tools');

const cleanups: Array<() => void | Promise<void>> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

let ctx: BrowserContext;
let profile: string;
beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  profile = mkdtempSync(join(tmpdir(), 'qrk-chromium-'));
  // a fresh profile every run; playwright hands it to Chromium as --user-data-dir
  ctx = await chromium.launchPersistentContext(profile, {
    executablePath: CHROMIUM,
    args: [
      '--headless',
      '--no-sandbox',
      '--disable-gpu',
      '--disable-quic',
      '--no-first-run',
      '--disable-background-networking',
      '--disable-component-update',
      '--disable-sync',
    ],
    viewport: { width: 800, height: 480 },
  });
}, 60_000);
afterAll(async () => {
  await ctx?.close();
  if (profile) rmSync(profile, { recursive: true, force: true });
});

async function newPage(width: number, height: number): Promise<Page> {
  const page = await ctx.newPage();
  await page.setViewportSize({ width, height });
  cleanups.push(() => page.close());
  return page;
}

async function startDisplay(opts: ConstructorParameters<typeof WebDisplay>[0] = {}): Promise<WebDisplay> {
  const d = new WebDisplay({ port: 0, locale: 'es-AR', ...opts });
  cleanups.push(async () => {
    d.close();
    await d.whenClosed();
  });
  await d.ready;
  return d;
}

async function decodeScreenshot(page: Page): Promise<{ jsqr?: string; zbar?: string; png: Buffer }> {
  const png = await page.screenshot();
  const img = PNG.sync.read(png);
  const jsqr = jsQR(new Uint8ClampedArray(img.data.buffer, img.data.byteOffset, img.data.length), img.width, img.height)?.data;
  let zbar: string | undefined;
  if (ZBAR) {
    const dir = mkdtempSync(join(tmpdir(), 'qrk-zbar-'));
    try {
      writeFileSync(join(dir, 's.png'), png);
      zbar = execFileSync('/usr/bin/zbarimg', ['-q', '--raw', join(dir, 's.png')], { encoding: 'utf8', stdio: ['ignore', 'pipe', 'ignore'] }).replace(/\n$/, '');
    } catch {
      zbar = undefined;
    } finally {
      rmSync(dir, { recursive: true, force: true });
    }
  }
  return { png, ...(jsqr !== undefined ? { jsqr } : {}), ...(zbar !== undefined ? { zbar } : {}) };
}

function onScreen(page: Page, screen: string, timeout = 10_000) {
  return page.waitForSelector(`body[data-screen="${screen}"] #screen[data-screen="${screen}"]`, { timeout });
}

/** A dispenser the test opens: the dispensing screen stays up until the test says the product fell. */
class GatedDispenser implements Dispenser {
  private release: (() => void) | undefined;
  vending = false;
  private started: Array<() => void> = [];
  vend(): Promise<VendOutcome> {
    this.vending = true;
    for (const s of this.started.splice(0)) s();
    return new Promise((resolve) => {
      this.release = () => resolve({ result: 'dispensed', pulses: 1 });
    });
  }
  whenVending(): Promise<void> {
    return this.vending ? Promise.resolve() : new Promise((r) => this.started.push(r));
  }
  drop(): void {
    this.release?.();
  }
  safe(): void {}
  close(): void {}
}

const d = describe.skipIf(!HAVE_CHROMIUM);

d('kiosk web page in headless Chromium', () => {
  it('follows the agent through idle -> pay -> paid -> thank you; the QR decodes from the screenshot and the countdown moves', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const dir = mkdtempSync(join(tmpdir(), 'qrk-web-'));
    cleanups.push(() => rmSync(dir, { recursive: true, force: true }));
    const display = await startDisplay();
    const dispenser = new GatedDispenser();
    const agent: Agent = await startAgent(agentConfig(dir, relay.url), {
      logger: silentLogger(),
      control: false,
      buttons: new SimButtons(),
      dispenser,
      display,
      timings: { resultScreenMs: 60_000 },
    });
    cleanups.push(() => agent.close());

    const page = await newPage(800, 480);
    const foreign: string[] = [];
    page.on('request', (r) => {
      if (!r.url().startsWith(display.url.replace(/\/$/, '')) && !r.url().startsWith('data:')) foreign.push(r.url());
    });
    await page.goto(display.url);

    // idle: what to do, the menu with prices, the empty slot sold out
    await page.waitForFunction(() => document.querySelector('#screen .item') !== null && !document.getElementById('screen')!.textContent!.includes('Conectando'), undefined, { timeout: 10_000 });
    await onScreen(page, 'idle');
    const idle = await page.locator('#screen').innerText();
    expect(idle).toContain('Elegí un producto');
    expect(idle).toContain('Cola 350ml');
    expect(idle).toContain(formatMoney(150000, 'ARS'));
    expect(idle).toMatch(/Chips[\s\S]*agotado/);

    // pay
    const sel = agent.select(1);
    if (!sel.ok) throw new Error(sel.message);
    await onScreen(page, 'pay');
    const shot = await decodeScreenshot(page);
    expect(shot.jsqr).toBe(POS_QR);
    if (ZBAR) expect(shot.zbar).toBe(POS_QR);
    const payText = await page.locator('#screen').innerText();
    for (const want of ['Cola 350ml', '$ 1.500,00', 'Pagá con Mercado Pago', 'Abrí la app de Mercado Pago', 'Escaneá este código QR', 'Tecla C: cancelar']) {
      expect(payText).toContain(want);
    }
    await expect(page.locator('.price').isVisible()).resolves.toBe(true);
    // the QR is drawn at a whole number of pixels per module
    const qr = await page.evaluate(() => {
      const svg = document.querySelector('.qr svg')!;
      return { w: Number(svg.getAttribute('width')), modules: Number(svg.getAttribute('data-modules')) };
    });
    expect(qr.w % qr.modules).toBe(0);
    expect(qr.w / qr.modules).toBeGreaterThanOrEqual(3);

    // the countdown moves, by a text change on the same screen (not a rebuilt page: no flicker)
    const first = await page.locator('#count').innerText();
    expect(first).toMatch(/^\d+ s para pagar$/);
    await page.evaluate(() => {
      (window as unknown as { __screen: Element | null }).__screen = document.getElementById('screen');
    });
    await page.waitForFunction((t) => document.getElementById('count')?.textContent !== t, first, { timeout: 5000 });
    const second = await page.locator('#count').innerText();
    expect(Number.parseInt(second, 10)).toBeLessThan(Number.parseInt(first, 10));
    expect(await page.evaluate(() => (window as unknown as { __screen: Element | null }).__screen === document.getElementById('screen'))).toBe(true);

    // paid: the dispensing screen while the motor runs
    relay.send({ type: 'order.paid', orderId: sel.orderId, paymentId: 'pay_777', amount: 150000, currency: 'ARS' });
    await dispenser.whenVending();
    await onScreen(page, 'dispensing');
    const paidText = await page.locator('#screen').innerText();
    expect(paidText).toContain('¡Pago aprobado!');
    expect(paidText).toContain('Cola 350ml');
    expect((await decodeScreenshot(page)).jsqr).toBeUndefined(); // the QR is gone once paid

    // thank you
    dispenser.drop();
    await onScreen(page, 'thank_you');
    const thanks = await page.locator('#screen').innerText();
    expect(thanks).toContain('¡Gracias!');
    expect(thanks).toContain('Retirá tu producto');

    expect(foreign).toEqual([]); // works offline: nothing but the agent's own page and socket
  }, 60_000);

  it('recovers when the agent restarts: says so meanwhile (no stale QR), then shows the new agent\'s screen', async () => {
    const first = await startDisplay();
    const port = Number(new URL(first.url).port);
    const page = await newPage(800, 480);
    await page.goto(first.url);
    first.show({ screen: 'pay', product: 'Cola 350ml', amountText: '$ 1.500,00', qr: POS_QR, secondsLeft: 80 });
    await onScreen(page, 'pay');
    expect((await decodeScreenshot(page)).jsqr).toBe(POS_QR);

    // the agent stops: its last word is "out of service", then the link is down
    first.close();
    await first.whenClosed();
    await onScreen(page, 'out_of_service');
    await page.waitForSelector('body[data-link="down"] #overlay.on', { timeout: 10_000 });
    expect(await page.locator('#overlay').innerText()).toBe('Conectando…');
    expect((await decodeScreenshot(page)).jsqr).toBeUndefined();

    // a new agent on the same port: the page finds it by itself
    const second = await startDisplay({ port });
    second.show({ screen: 'idle', products: [{ slot: 1, name: 'Agua 500ml', amountText: '$ 900,00', available: true }] });
    await onScreen(page, 'idle', 15_000);
    await page.waitForSelector('body[data-link="up"]');
    expect(await page.locator('#overlay').isVisible()).toBe(false);
    expect(await page.locator('#screen').innerText()).toContain('Agua 500ml');
  }, 60_000);

  for (const [w, h] of [
    [320, 240],
    [240, 320],
  ] as const) {
    it(`a ${w}x${h} panel fits a long name, a 5-digit CLP price and a 400-character QR without clipping the QR`, async () => {
      const display = await startDisplay({ locale: 'es-CL' });
      const page = await newPage(w, h);
      await page.goto(display.url);
      const payload = `00020101021226${'7'.repeat(2)}0014COM.MERCADOPAGO`.padEnd(396, 'X0Y1') + '6304';
      expect(payload).toHaveLength(400);
      const price = formatMoney(99990, 'CLP');
      display.show({ screen: 'pay', product: 'Alfajor triple de chocolate con dulce de leche y nueces, edición especial', amountText: price, qr: payload, secondsLeft: 120 });
      await onScreen(page, 'pay');
      const geo = await page.evaluate(() => {
        const r = (e: Element) => {
          const b = e.getBoundingClientRect();
          return { x: b.left, y: b.top, w: b.width, h: b.height };
        };
        const svg = document.querySelector('.qr svg')!;
        const texts = [...document.querySelectorAll('#screen .ptitle, #screen .product, #screen .price, #screen .steps li, #screen .count, #screen .hint')].map((e) => ({
          cls: e.className,
          text: (e as HTMLElement).innerText,
          ...r(e),
          overflowX: (e as HTMLElement).scrollWidth > (e as HTMLElement).clientWidth + 1,
          overflowY: (e as HTMLElement).scrollHeight > (e as HTMLElement).clientHeight + 1,
        }));
        return { qr: r(svg), texts, vw: window.innerWidth, vh: window.innerHeight };
      });
      const within = (b: { x: number; y: number; w: number; h: number }) => b.x >= -0.5 && b.y >= -0.5 && b.x + b.w <= geo.vw + 0.5 && b.y + b.h <= geo.vh + 0.5;
      expect(within(geo.qr), `QR ${JSON.stringify(geo.qr)}`).toBe(true);
      for (const t of geo.texts) {
        expect(within(t), `${t.cls} "${t.text}" clipped: ${JSON.stringify(t)}`).toBe(true);
        // squeezed by its column (the product name is cut to two lines on purpose)
        if (t.cls !== 'product') expect(t.overflowY, `${t.cls} "${t.text}" is cut: ${JSON.stringify(t)}`).toBe(false);
        const apart = t.x + t.w <= geo.qr.x + 0.5 || geo.qr.x + geo.qr.w <= t.x + 0.5 || t.y + t.h <= geo.qr.y + 0.5 || geo.qr.y + geo.qr.h <= t.y + 0.5;
        expect(apart, `${t.cls} "${t.text}" covers the QR`).toBe(true);
      }
      const priceEl = geo.texts.find((t) => t.cls === 'price')!;
      expect(priceEl.text).toBe(price);
      expect(priceEl.overflowX).toBe(false);
      expect(geo.texts.find((t) => t.cls === 'count')?.text).toBe('120 s para pagar');
      expect(geo.texts.some((t) => /Abre la app/.test(t.text))).toBe(true); // es-CL: tú
      const shot = await decodeScreenshot(page);
      expect(shot.jsqr).toBe(payload);
      if (ZBAR) expect(shot.zbar).toBe(payload);
    }, 30_000);
  }

  it('rotation 90 turns the page for a panel mounted on its side; the QR still decodes', async () => {
    const display = await startDisplay({ rotation: 90 });
    const page = await newPage(480, 800); // the panel as the driver sees it
    await page.goto(display.url);
    display.show({ screen: 'pay', product: 'Cola 350ml', amountText: '$ 1.500,00', qr: POS_QR, secondsLeft: 60 });
    await onScreen(page, 'pay');
    // laid out as the customer sees it: landscape 800x480
    expect(await page.locator('#screen.land').count()).toBe(1);
    const shot = await decodeScreenshot(page);
    expect(shot.jsqr).toBe(POS_QR);
    const img = PNG.sync.read(shot.png);
    expect([img.width, img.height]).toEqual([480, 800]);
  }, 30_000);

  it('answers only on loopback, only to its own host name and origin', async () => {
    expect(() => new WebDisplay({ host: '0.0.0.0' })).toThrow(/key "hardware\.display\.web\.host".*loopback only/);
    const base = agentConfig('/tmp', 'ws://127.0.0.1:1/v1/kiosk') as Record<string, unknown>;
    expect(() => parseAgentConfig({ ...base, hardware: { display: { driver: 'web', web: { host: '0.0.0.0' } } } })).toThrow(/key "hardware\.display\.web\.host": the kiosk page is served on loopback only/);
    expect(() => parseAgentConfig({ ...base, hardware: { display: { driver: 'web', web: { port: 70000 } } } })).toThrow(/key "hardware\.display\.web\.port": must be a whole number from 1 to 65535/);
    const parsed = parseAgentConfig({ ...base, hardware: { display: { driver: 'web', web: { port: 0 + 8090 } } } });
    expect(parsed.hardware.display).toMatchObject({ driver: 'web', web: { port: 8090 } });

    const display = await startDisplay();
    const port = Number(new URL(display.url).port);
    const get = (host: string, path = '/') =>
      new Promise<{ status: number; csp?: string }>((resolve, reject) => {
        const req = request({ host: '127.0.0.1', port, path, headers: { host } }, (res) => {
          res.resume();
          resolve({ status: res.statusCode!, ...(res.headers['content-security-policy'] ? { csp: String(res.headers['content-security-policy']) } : {}) });
        });
        req.on('error', reject);
        req.end();
      });
    const own = await get(`127.0.0.1:${port}`);
    expect(own.status).toBe(200);
    expect(own.csp).toContain("default-src 'none'");
    expect((await get(`evil.example:${port}`)).status).toBe(421);
    expect((await get(`127.0.0.1:${port}`, '/nope')).status).toBe(404);

    const ws = (origin: string) =>
      new Promise<string>((resolve) => {
        const s = new WebSocket(`ws://127.0.0.1:${port}/ws`, { origin });
        s.once('message', (m) => {
          resolve(JSON.parse(m.toString()).type as string);
          s.close();
        });
        s.once('error', () => resolve('refused'));
      });
    expect(await ws(`http://127.0.0.1:${port}`)).toBe('hello');
    expect(await ws('http://evil.example')).toBe('refused');

    // createDisplay (what the agent's buildDisplay calls) builds the web display from the config
    const built = createDisplay({ driver: 'web', web: { port: 0 } }, { locale: 'pt-BR', logger: silentLogger() }) as WebDisplay;
    cleanups.push(async () => {
      built.close();
      await built.whenClosed();
    });
    expect(built).toBeInstanceOf(WebDisplay);
    await built.ready;
    const page = await newPage(800, 480);
    await page.goto(built.url);
    built.show({ screen: 'vend_failed', orderId: 'ord_Zx81kQ2mTn4bVw9s' } satisfies Screen);
    await onScreen(page, 'vend_failed');
    const text = await page.locator('#screen').innerText();
    expect(text).toContain('Não conseguimos entregar o produto');
    expect(text).toContain('Referência: ord_Zx81kQ2mTn4bVw9s');
    expect(await page.getAttribute('html', 'lang')).toBe('pt');
  }, 30_000);
});
