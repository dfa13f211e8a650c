import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { verifyWebhook } from '../src/relay/console/webhook-signature.js';
import { KioskSystem } from './helpers/system.js';
import { waitFor } from './helpers/wait.js';

// Alerts end to end: a real relay, a real agent process, a webhook receiver and an SMTP server of
// our own on loopback. The kiosk's agent is killed: past the offline threshold the operator gets
// one signed webhook and one e-mail, however many checks run meanwhile; the agent comes back: one
// "cleared" of each.

const SECRET = 'alerts-webhook-secret-0123';
const closers: Array<() => Promise<void> | void> = [];
let sys: KioskSystem | undefined;
afterEach(async () => {
  await sys?.close();
  sys = undefined;
  while (closers.length) await closers.pop()!();
});

describe('alerts', () => {
  it('a kiosk offline past the threshold: one webhook and one e-mail; back online: one cleared of each', async () => {
    const hooks: Array<{ event: string; body: string; sig: string }> = [];
    const web: Server = createServer((req, res) => {
      let body = '';
      req.on('data', (c: Buffer) => (body += c.toString()));
      req.on('end', () => {
        hooks.push({ event: String(req.headers['x-qrkiosk-event']), body, sig: String(req.headers['x-qrkiosk-signature']) });
        res.writeHead(204).end();
      });
    });
    await new Promise<void>((r) => web.listen(0, '127.0.0.1', r));
    closers.push(() => new Promise<void>((r) => web.close(() => r())));
    const mails: string[] = [];
    const smtp = new SMTPServer({
      authOptional: true,
      disabledCommands: ['STARTTLS'],
      logger: false,
      onData(stream, _s, cb) {
        let data = '';
        stream.on('data', (c: Buffer) => (data += c.toString()));
        stream.on('end', () => {
          mails.push(data);
          cb();
        });
      },
    });
    await new Promise<void>((r) => smtp.listen(0, '127.0.0.1', () => r()));
    closers.push(() => new Promise<void>((r) => smtp.close(() => r())));

    sys = await KioskSystem.start({
      relayExtra: {
        notify: {
          channels: [
            { name: 'ops-hook', events: ['alert.*'], webhook: { url: `http://127.0.0.1:${(web.address() as AddressInfo).port}/alerts`, secret: SECRET } },
            { name: 'ops-mail', events: ['alert.*'], email: { to: ['ops@example.com'], from: 'qrkiosk <alerts@example.com>', smtp: { host: '127.0.0.1', port: (smtp.server.address() as AddressInfo).port, secure: false } } },
          ],
        },
        // 3 s offline is "offline" here; checks every 200 ms, so many checks see the same condition
        alerts: { offlineAfterMinutes: 0.05, checkEverySeconds: 0.2 },
      },
    });
    await sys.startAgent();
    await sys.killAgent();
    await waitFor('the offline alert delivered by webhook and e-mail', () => hooks.length >= 1 && mails.length >= 1, 30_000);
    const fired = JSON.parse(hooks[0]!.body) as { type: string; data: { kind: string; kioskId: string } };
    expect(fired.type).toBe('alert.fired');
    expect(fired.data).toMatchObject({ kind: 'kiosk_offline', kioskId: 'kiosk-e2e' });
    expect(verifyWebhook(SECRET, hooks[0]!.body, hooks[0]!.sig, Math.floor(Date.now() / 1000)).ok).toBe(true);
    expect(mails[0]).toContain('ALERT: kiosk kiosk-e2e offline');
    // more checks pass while it stays offline: nothing new is sent
    const checks = await Promise.all([sys.relay.notify.check(), sys.relay.notify.check()]);
    expect(checks.every((c) => c.fired === 0)).toBe(true);
    await sys.startAgent();
    await waitFor('the cleared alert delivered by webhook and e-mail', () => hooks.length >= 2 && mails.length >= 2, 30_000);
    await sys.relay.notify.worker.idle();
    expect(hooks.map((h) => h.event)).toEqual(['alert.fired', 'alert.cleared']);
    expect(mails).toHaveLength(2);
    expect(mails[1]).toContain('cleared: kiosk kiosk-e2e offline');
    const rows = await sys.relay.store.deliveries({ limit: 10 });
    expect(rows.map((r) => r.state)).toEqual(['delivered', 'delivered', 'delivered', 'delivered']);
  });
});

describe('receipt page', () => {
  it('after a real vend the receipt link shows the timeline in the customer language; a changed link is 404', async () => {
    sys = await KioskSystem.start();
    await sys.startAgent();
    const { orderId } = await sys.select(1);
    const scan = await sys.customerScans(orderId!);
    await sys.sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
    await sys.waitRelayState(orderId!, 'vended');
    // the public url names the relay's publicUrl; ask the relay itself on the same path
    const path = new URL(sys.relay.receiptUrl(orderId!)).pathname;
    expect(path).toMatch(new RegExp(`^/r/${orderId}\\.[A-Za-z0-9_-]{22}$`));
    const page = await fetch(`${sys.relay.url}${path}`, { headers: { 'accept-language': 'pt-BR,pt;q=0.9' } });
    expect(page.status).toBe(200);
    expect(page.headers.get('cache-control')).toBe('no-store');
    const html = await page.text();
    expect(html).toContain('Pagamento recebido');
    expect(html).toContain('Produto entregue');
    expect(html).toContain('Cola 350 ml');
    const forged = await fetch(`${sys.relay.url}${path.slice(0, -1)}${path.endsWith('A') ? 'B' : 'A'}`);
    expect(forged.status).toBe(404);
    expect(await forged.text()).not.toContain('Cola');
  });
});
