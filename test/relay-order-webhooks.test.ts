import { createServer, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterEach, describe, expect, it } from 'vitest';
import { EVENT_HEADER, SIGNATURE_HEADER, verifyWebhook } from '../src/relay/console/webhook-signature.js';
import { kioskWithOrder, startHarness, type Harness } from './relay-helpers.js';
import { waitFor } from './helpers/wait.js';

// Order events as signed webhooks, end to end: a real relay with a webhook channel for order.*,
// a real HTTP receiver on loopback; the delivery row is written with the order's own transaction.

let h: Harness | undefined;
let receiver: Server | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
  await new Promise<void>((r) => (receiver ? receiver.close(() => r()) : r()));
  receiver = undefined;
});

const SECRET = 'whsec_test_0123456789abcdef';

describe('order webhooks', { timeout: 60_000 }, () => {
  it('a new order is announced once to the channel that wants order.*, signed, with subject order:<id>', async () => {
    const got: Array<{ event: string; body: string; ok: boolean }> = [];
    receiver = createServer((req, res) => {
      let body = '';
      req.on('data', (d: Buffer) => (body += d.toString()));
      req.on('end', () => {
        const check = verifyWebhook(SECRET, body, req.headers[SIGNATURE_HEADER] as string | undefined, Math.floor(Date.now() / 1000));
        got.push({ event: String(req.headers[EVENT_HEADER]), body, ok: check.ok });
        res.writeHead(200).end('ok');
      });
    });
    await new Promise<void>((r) => receiver!.listen(0, '127.0.0.1', () => r()));
    const url = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}/hook`;
    h = await startHarness({ notify: { channels: [{ name: 'erp', events: ['order.*'], webhook: { url, secret: SECRET } }, { name: 'ops', events: ['alert.*'], webhook: { url, secret: SECRET } }] } });
    const kiosk = await kioskWithOrder(h, 'ord_hook0001');
    const rows = await waitFor('the order.created delivery delivered', async () => {
      const d = await h!.relay.store.deliveries({ limit: 10, subject: 'order:ord_hook0001' });
      return d.length === 1 && d[0]!.state === 'delivered' ? d : undefined;
    });
    expect(rows[0]).toMatchObject({ channel: 'erp', event: 'order.created' });
    expect(got).toHaveLength(1);
    expect(got[0]).toMatchObject({ event: 'order.created', ok: true });
    expect(JSON.parse(got[0]!.body)).toMatchObject({ type: 'order.created', data: { orderId: 'ord_hook0001', kioskId: 'k1', state: 'pending' } });
    kiosk.close();
  });
});
