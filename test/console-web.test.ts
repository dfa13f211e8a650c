import { existsSync, mkdirSync } from 'node:fs';
import { resolve } from 'node:path';
import { chromium, type Browser, type Page } from 'playwright-core';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { hashPassword } from '../src/relay/console/passwords.js';
import { skipWithout } from './helpers/ci.js';
import { KioskSystem } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// The operator's web console in real headless Chromium, against a real relay, a real agent
// process and the Mercado Pago emulator, all on loopback: a vend appears live (server-sent events,
// no reload) with its timeline; a killed agent shows offline; an operator's refund from the page
// reaches the emulator once; a viewer has no refund button and the relay refuses its request.
// QRKIOSK_SCREENSHOTS=1 also writes docs/console/*.png (desktop and phone widths).

const CHROMIUM = '/usr/bin/chromium';
const HAVE_CHROMIUM = !skipWithout(existsSync(CHROMIUM), CHROMIUM, 'chromium');
const PASSWORD = 'correct horse battery';
const SHOTS = process.env.QRKIOSK_SCREENSHOTS === '1';

let browser: Browser;
let sys: KioskSystem | undefined;

beforeAll(async () => {
  if (!HAVE_CHROMIUM) return;
  browser = await chromium.launch({ executablePath: CHROMIUM, args: ['--headless', '--no-sandbox', '--disable-gpu', '--no-first-run', '--disable-background-networking', '--disable-component-update', '--disable-sync'] });
}, 60_000);
afterAll(async () => {
  await browser?.close();
});
afterEach(async () => {
  await sys?.close();
  sys = undefined;
});

async function loggedIn(email: string, viewport = { width: 1280, height: 900 }): Promise<Page> {
  const page = await (await browser.newContext({ viewport })).newPage();
  await page.goto(`${sys!.relay.url}/console/login`);
  await page.fill('input[name=email]', email);
  await page.fill('input[name=password]', PASSWORD);
  await page.click('button[type=submit]');
  await page.waitForURL(`${sys!.relay.url}/console`);
  await page.waitForSelector('#live.on');
  return page;
}

/** Counts full page loads: the console must never reload to show news. */
async function loads(page: Page): Promise<() => number> {
  let n = 0;
  page.on('load', () => n++);
  return () => n;
}

describe.skipIf(!HAVE_CHROMIUM)('operator console in Chromium', { timeout: 180_000 }, () => {
  it('a vend appears live with its timeline, an operator refund reaches the emulator once, a viewer cannot refund, an admin price change shows applied, a killed agent shows offline', async () => {
    sys = await KioskSystem.start();
    const store = sys.relay.store;
    await store.addOperator('ana@example.com', 'operator', await hashPassword(PASSWORD), Date.now());
    await store.addOperator('vic@example.com', 'viewer', await hashPassword(PASSWORD), Date.now());
    await store.addOperator('adm@example.com', 'admin', await hashPassword(PASSWORD), Date.now());
    await sys.startAgent();

    const page = await loggedIn('ana@example.com');
    const reloads = await loads(page);
    await page.waitForSelector('[data-kiosk="kiosk-e2e"].online');
    await page.waitForSelector('[data-kiosk="kiosk-e2e"] .stock td:text("COLA")');

    // a customer buys: the row appears and moves to vended on the open page
    const sel = await sys.select(1);
    expect(sel.ok).toBe(true);
    const orderId = sel.orderId!;
    await page.waitForSelector(`tr[data-order="${orderId}"][data-state="pending"]`);
    const scan = await sys.customerScans(orderId);
    await sys.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
    await sys.waitRelayState(orderId, 'vended');
    await page.waitForSelector(`tr[data-order="${orderId}"][data-state="vended"]`);
    await page.click(`tr[data-order="${orderId}"]`);
    await page.waitForSelector('.timeline li[data-step="dispensed"]');
    const steps = await page.$$eval('.timeline li', (lis) => lis.map((li) => `${li.getAttribute('data-step')}/${li.getAttribute('data-source')}`));
    expect(steps).toEqual(expect.arrayContaining(['selected/kiosk', 'paid/mercadopago', 'dispensing/relay', 'dispensed/kiosk']));
    expect(steps.indexOf('selected/kiosk')).toBeLessThan(steps.indexOf('paid/mercadopago'));
    expect(steps.indexOf('paid/mercadopago')).toBeLessThan(steps.indexOf('dispensed/kiosk'));

    if (SHOTS) {
      mkdirSync(resolve(import.meta.dirname, '..', 'docs', 'console'), { recursive: true });
      await page.screenshot({ path: resolve(import.meta.dirname, '..', 'docs', 'console', 'desktop.png'), fullPage: true });
      const phone = await loggedIn('vic@example.com', { width: 390, height: 844 });
      await phone.waitForSelector(`tr[data-order="${orderId}"]`);
      await phone.screenshot({ path: resolve(import.meta.dirname, '..', 'docs', 'console', 'phone.png'), fullPage: true });
      await phone.context().close();
    }

    // a viewer: no refund button, and the relay refuses the request itself
    const viewer = await loggedIn('vic@example.com');
    await viewer.waitForSelector(`tr[data-order="${orderId}"][data-state="vended"]`);
    await viewer.click(`tr[data-order="${orderId}"]`);
    await viewer.waitForSelector('.timeline li[data-step="dispensed"]');
    expect(await viewer.$('#refund')).toBeNull();
    const refused = await viewer.evaluate(async (id) => {
      const r = await fetch(`/console/api/orders/${id}/refund`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-requested-with': 'qrkiosk-console' }, body: JSON.stringify({ reason: 'viewer tries' }) });
      return r.status;
    }, orderId);
    expect(refused).toBe(403);
    // the operator's session without the console's header: refused as cross-site (CSRF)
    const csrf = await page.evaluate(async (id) => (await fetch(`/console/api/orders/${id}/refund`, { method: 'POST', headers: { 'content-type': 'application/json' }, body: JSON.stringify({ reason: 'x' }) })).status, orderId);
    expect(csrf).toBe(403);
    expect(await store.getOrder(orderId)).toMatchObject({ state: 'vended' });

    // the operator refunds from the page, with a reason
    page.once('dialog', (d) => void d.accept('customer says the can was warm'));
    await page.click('#refund');
    await sys.waitRelayState(orderId, 'refunded', 30_000);
    await page.waitForSelector(`tr[data-order="${orderId}"][data-state="refunded"]`);
    await page.waitForSelector('.timeline li[data-step="refund"][data-source="operator"]');
    await sys.relay.whenIdle();
    const refunds = await sys.sandbox.refunds();
    expect(refunds).toHaveLength(1);
    expect(refunds[0]!.externalReference).toBe(orderId);
    expect(String(refunds[0]!.paymentId)).toBe((await store.getOrder(orderId))!.paymentIds[0]);
    const audit = await store.operatorAuditOf(orderId);
    expect(audit).toMatchObject([{ actor: 'ana@example.com', action: 'refund', reason: 'customer says the can was warm' }]);
    // a second refund of the same order is refused (it is no longer vended)
    const again = await page.evaluate(async (id) => (await fetch(`/console/api/orders/${id}/refund`, { method: 'POST', headers: { 'content-type': 'application/json', 'x-requested-with': 'qrkiosk-console' }, body: JSON.stringify({ reason: 'again' }) })).status, orderId);
    expect(again).toBe(409);
    expect(await sys.sandbox.refunds()).toHaveLength(1);

    // an admin changes a price from the page: the kiosk applies it and the console shows when
    const admin = await loggedIn('adm@example.com');
    const answers = ['COLA', '175000', 'new price list'];
    admin.on('dialog', (d) => void d.accept(answers.shift()));
    await admin.click('[data-kiosk="kiosk-e2e"] button:text("Change price")');
    const applied = await admin.waitForSelector('[data-kiosk="kiosk-e2e"] .prices li:has-text("applied at")');
    expect(await applied.textContent()).toContain('price.set by adm@example.com');
    expect((await sys.status()).stock.find((x) => x.slot === 1)?.price).toBe(175_000);
    await admin.context().close();

    // the agent dies: the page shows the kiosk offline without reloading
    const killedAt = Date.now();
    await sys.killAgent();
    await page.waitForSelector('[data-kiosk="kiosk-e2e"].offline', { timeout: 60_000 });
    const offlineAfterMs = Date.now() - killedAt;
    console.log(`console showed the kiosk offline ${offlineAfterMs} ms after SIGKILL`);
    expect(reloads()).toBe(0);
    await viewer.context().close();
    await page.context().close();
  });
});
