import { afterEach, describe, expect, it } from 'vitest';
import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { SMTPServer } from 'smtp-server';
import { eventMatches, openChannel, quietUntil, renderEmail, type Channel } from '../src/relay/console/channels.js';
import { signWebhook, verifyWebhook } from '../src/relay/console/webhook-signature.js';
import { DEFAULT_ALERT_RULES, evaluateAlerts, usualHours, type KioskFacts } from '../src/relay/console/alert-rules.js';

// The relay's outbound channels against real receivers on loopback: an HTTP server checking the
// webhook signature, and an SMTP server of our own (smtp-server) receiving the e-mail.

const closers: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  while (closers.length) await closers.pop()!();
});

async function httpReceiver(answer: (req: IncomingMessage, body: string, res: ServerResponse) => void) {
  const got: Array<{ headers: IncomingMessage['headers']; body: string }> = [];
  const server: Server = createServer((req, res) => {
    let body = '';
    req.on('data', (c: Buffer) => (body += c.toString()));
    req.on('end', () => {
      got.push({ headers: req.headers, body });
      answer(req, body, res);
    });
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', r));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return { url: `http://127.0.0.1:${(server.address() as AddressInfo).port}/hook`, got };
}

async function smtpReceiver(opts: { refuseRcpt?: string } = {}) {
  const mails: Array<{ from: string; to: string[]; data: string }> = [];
  const server = new SMTPServer({
    authOptional: true,
    disabledCommands: ['STARTTLS'],
    logger: false,
    onRcptTo(address, _session, cb) {
      if (opts.refuseRcpt && address.address === opts.refuseRcpt) {
        const err = new Error('no such mailbox') as Error & { responseCode: number };
        err.responseCode = 550;
        return cb(err);
      }
      cb();
    },
    onData(stream, session, cb) {
      let data = '';
      stream.on('data', (c: Buffer) => (data += c.toString()));
      stream.on('end', () => {
        mails.push({ from: session.envelope.mailFrom ? session.envelope.mailFrom.address : '', to: session.envelope.rcptTo.map((r) => r.address), data });
        cb();
      });
    },
  });
  await new Promise<void>((r) => server.listen(0, '127.0.0.1', () => r()));
  closers.push(() => new Promise<void>((r) => server.close(() => r())));
  return { port: (server.server.address() as AddressInfo).port, mails };
}

function track(c: Channel): Channel {
  closers.push(() => c.close());
  return c;
}

const ALERT = JSON.stringify({ id: 'd1', type: 'alert.fired', createdAt: '2026-12-01T10:00:00.000Z', data: { summary: 'kiosk k1 offline for 12 minutes', kioskId: 'k1' } });

describe('webhook channel', () => {
  it('posts the body signed, with the delivery id, and the receiver can verify it', async () => {
    const rx = await httpReceiver((_req, _b, res) => res.writeHead(204).end());
    const ch = track(openChannel({ name: 'ops', events: ['alert.*'], webhook: { url: rx.url, secret: 's3cret' } }));
    const now = Date.UTC(2026, 11, 1, 10, 0, 0);
    expect(await ch.send({ deliveryId: 'd1', event: 'alert.fired', payload: ALERT }, now)).toEqual({ ok: true, detail: 'HTTP 204' });
    const [req] = rx.got;
    expect(req!.body).toBe(ALERT);
    expect(req!.headers['x-qrkiosk-delivery']).toBe('d1');
    expect(req!.headers['x-qrkiosk-event']).toBe('alert.fired');
    expect(verifyWebhook('s3cret', req!.body, req!.headers['x-qrkiosk-signature'] as string, now / 1000)).toEqual({ ok: true, at: now / 1000 });
    expect(verifyWebhook('other', req!.body, req!.headers['x-qrkiosk-signature'] as string, now / 1000).ok).toBe(false);
    expect(verifyWebhook('s3cret', req!.body + ' ', req!.headers['x-qrkiosk-signature'] as string, now / 1000).ok).toBe(false);
    // a replay ten minutes later is outside the window
    expect(verifyWebhook('s3cret', req!.body, req!.headers['x-qrkiosk-signature'] as string, now / 1000 + 600)).toMatchObject({ ok: false, reason: expect.stringContaining('outside') });
  });

  it('5xx and 429 are "later"; other 4xx are permanent; a redirect is not followed', async () => {
    let status = 503;
    const rx = await httpReceiver((_req, _b, res) => res.writeHead(status, status === 302 ? { location: 'http://127.0.0.1:1/' } : {}).end());
    const ch = track(openChannel({ name: 'ops', events: ['*'], webhook: { url: rx.url, secret: 's' } }));
    const send = () => ch.send({ deliveryId: 'd', event: 'order.paid', payload: '{}' }, Date.now());
    expect(await send()).toMatchObject({ ok: false, permanent: false, error: 'the receiver answered HTTP 503' });
    status = 429;
    expect(await send()).toMatchObject({ ok: false, permanent: false });
    status = 410;
    expect(await send()).toMatchObject({ ok: false, permanent: true });
    status = 302;
    expect(await send()).toMatchObject({ ok: false, permanent: false });
    expect(rx.got).toHaveLength(4);
  });

  it('a receiver that never answers times out as "later"', async () => {
    const rx = await httpReceiver(() => {
      /* never answers */
    });
    const ch = track(openChannel({ name: 'ops', events: ['*'], webhook: { url: rx.url, secret: 's', timeoutSeconds: 0.3 } }));
    expect(await ch.send({ deliveryId: 'd', event: 'x', payload: '{}' }, Date.now())).toMatchObject({ ok: false, permanent: false, error: expect.stringContaining('no answer') });
  });

  it('an unreachable receiver is "later"', async () => {
    const ch = track(openChannel({ name: 'ops', events: ['*'], webhook: { url: 'http://127.0.0.1:1/hook', secret: 's' } }));
    expect(await ch.send({ deliveryId: 'd', event: 'x', payload: '{}' }, Date.now())).toMatchObject({ ok: false, permanent: false });
  });
});

describe('e-mail channel', () => {
  it('sends the alert as a readable e-mail through SMTP', async () => {
    const rx = await smtpReceiver();
    const ch = track(openChannel({ name: 'mail', events: ['alert.*'], email: { to: ['ops@example.com'], from: 'qrkiosk <alerts@example.com>', smtp: { host: '127.0.0.1', port: rx.port, secure: false } } }));
    const r = await ch.send({ deliveryId: 'd9', event: 'alert.fired', payload: ALERT }, Date.now());
    expect(r.ok).toBe(true);
    expect(rx.mails).toHaveLength(1);
    expect(rx.mails[0]!.to).toEqual(['ops@example.com']);
    expect(rx.mails[0]!.data).toContain('Subject: [qrkiosk] ALERT: kiosk k1 offline for 12 minutes');
    expect(rx.mails[0]!.data).toContain('X-Qrkiosk-Delivery: d9');
  });

  it('a refused recipient is permanent; a server that is down is "later"', async () => {
    const rx = await smtpReceiver({ refuseRcpt: 'gone@example.com' });
    const ch = track(openChannel({ name: 'mail', events: ['*'], email: { to: ['gone@example.com'], from: 'a@example.com', smtp: { host: '127.0.0.1', port: rx.port } } }));
    expect(await ch.send({ deliveryId: 'd', event: 'alert.fired', payload: ALERT }, Date.now())).toMatchObject({ ok: false, permanent: true });
    const down = track(openChannel({ name: 'mail', events: ['*'], email: { to: ['a@example.com'], from: 'a@example.com', smtp: { host: '127.0.0.1', port: 1, timeoutSeconds: 2 } } }));
    expect(await down.send({ deliveryId: 'd', event: 'alert.fired', payload: ALERT }, Date.now())).toMatchObject({ ok: false, permanent: false });
  });

  it('renders cleared alerts and unknown payloads', () => {
    expect(renderEmail({ deliveryId: 'd', event: 'alert.cleared', payload: ALERT }).subject).toBe('[qrkiosk] cleared: kiosk k1 offline for 12 minutes');
    expect(renderEmail({ deliveryId: 'd', event: 'order.paid', payload: 'not json' }).subject).toBe('[qrkiosk] order.paid');
  });
});

describe('event patterns and quiet hours', () => {
  it('matches exact names, prefixes and *', () => {
    expect(eventMatches(['alert.*'], 'alert.fired')).toBe(true);
    expect(eventMatches(['alert.*'], 'alerts.fired')).toBe(false);
    expect(eventMatches(['order.paid'], 'order.paid')).toBe(true);
    expect(eventMatches(['order.paid'], 'order.refunded')).toBe(false);
    expect(eventMatches(['*'], 'anything')).toBe(true);
  });

  it('holds inside a window that wraps midnight, until its end, in the given time zone', () => {
    const q = { from: '22:00', to: '07:00', timeZone: 'America/Argentina/Buenos_Aires' }; // UTC-3, no DST
    const at = (h: number, m = 0) => Date.UTC(2026, 11, 1, h + 3, m, 17); // local h:m:17
    expect(quietUntil(q, at(23, 30))).toBe(Date.UTC(2026, 11, 2, 10, 0, 0)); // 07:00 local next day
    expect(quietUntil(q, at(3))).toBe(Date.UTC(2026, 11, 1, 10, 0, 0));
    expect(quietUntil(q, at(7))).toBeUndefined();
    expect(quietUntil(q, at(21, 59))).toBeUndefined();
    expect(quietUntil({ ...q, from: '09:00', to: '17:00' }, at(12))).toBe(Date.UTC(2026, 11, 1, 20, 0, 0));
    expect(() => quietUntil({ ...q, from: '25:00' }, at(1))).toThrow(/HH:MM/);
  });
});

describe('alert rules', () => {
  const now = Date.UTC(2026, 11, 10, 18, 0, 0); // 15:00 in Buenos Aires
  const base: KioskFacts = { kioskId: 'k1', online: true, lastSeenAt: now, inService: true, faults: [], recentVends: [], salesTimes: [] };
  const rules = { ...DEFAULT_ALERT_RULES, timeZone: 'America/Argentina/Buenos_Aires' };

  it('offline past the threshold, not before, not when never seen or out of service', () => {
    const kinds = (k: Partial<KioskFacts>) => evaluateAlerts({ kiosks: [{ ...base, ...k }], failingRefunds: [] }, rules, now).map((c) => c.kind);
    expect(kinds({ online: false, lastSeenAt: now - 11 * 60_000 })).toEqual(['kiosk_offline']);
    expect(kinds({ online: false, lastSeenAt: now - 9 * 60_000 })).toEqual([]);
    expect(kinds({ online: false, lastSeenAt: null })).toEqual([]);
    expect(kinds({ online: false, lastSeenAt: now - 60 * 60_000, inService: false })).toEqual([]);
  });

  it('no sales in usual hours: fires for a kiosk that sells every afternoon and stopped', () => {
    // sold at 11:30-14:30 local on each of the last 10 days, nothing today
    const sales: number[] = [];
    for (let d = 1; d <= 10; d++) for (const h of [11, 12, 13, 14]) sales.push(now - d * 86_400_000 - (15 - h) * 3_600_000 + 30 * 60_000);
    expect([...usualHours(sales, now, rules)].sort((a, b) => a - b)).toEqual([11, 12, 13, 14]);
    const facts = { kiosks: [{ ...base, salesTimes: sales }], failingRefunds: [] };
    expect(evaluateAlerts(facts, rules, now).map((c) => c.kind)).toEqual(['no_sales']);
    // at 03:00 local the last 4 hours are not its selling hours
    expect(evaluateAlerts(facts, rules, now + 12 * 3_600_000).map((c) => c.kind)).toEqual([]);
    // a sale an hour ago: no alert
    expect(evaluateAlerts({ kiosks: [{ ...base, salesTimes: [...sales, now - 3_600_000] }], failingRefunds: [] }, rules, now)).toEqual([]);
  });

  it('vend failures in a row, hardware faults and failing refunds each make one condition', () => {
    const c = evaluateAlerts(
      {
        kiosks: [{ ...base, recentVends: ['failed', 'failed', 'failed', 'dispensed'], faults: [{ code: 'drop_sensor', message: 'drop sensor never sees a product', since: now - 1000 }] }],
        failingRefunds: [{ refundKey: 'rf1', orderId: 'o1', kioskId: 'k1', error: 'HTTP 500', gaveUp: false }],
      },
      rules,
      now,
    );
    expect(c.map((x) => `${x.kind}:${x.subject}`)).toEqual(['vend_failures:k1', 'hardware_fault:k1/drop_sensor', 'refund_failing:rf1']);
    expect(evaluateAlerts({ kiosks: [{ ...base, recentVends: ['failed', 'failed', 'dispensed', 'failed'] }], failingRefunds: [] }, rules, now)).toEqual([]);
  });

  it('a signature made by signWebhook verifies', () => {
    expect(verifyWebhook('k', 'body', signWebhook('k', 'body', 100), 100)).toEqual({ ok: true, at: 100 });
  });
});
