import { createHmac } from 'node:crypto';
import { describe, expect, it } from 'vitest';
import { classifyNotification, verifyWebhookSignatureAnyCase } from '../src/relay/notifications.js';

// Orders API notifications: `type: order` (Mercado Pago's guides also write `orders`), and a
// signature whose manifest carries data.id verbatim (current senders) or lower-cased (older ones).

const SECRET = 'secret-of-the-app';
const ID = 'ORD01JE48XZBYRK6W22V7DFQRABEV';

function sign(id: string, requestId: string, ts: number, secret = SECRET): string {
  const v1 = createHmac('sha256', secret).update(`id:${id};request-id:${requestId};ts:${ts};`).digest('hex');
  return `ts=${ts},v1=${v1}`;
}

describe('Orders API webhooks', () => {
  it('classifies type order and orders as the order topic, with data.id as the resource', () => {
    for (const type of ['order', 'orders']) {
      const c = classifyNotification({ 'data.id': ID, type }, { type, action: 'order.processed', data: { id: ID } });
      expect(c).toMatchObject({ form: 'webhook', topic: 'order', resourceId: ID });
    }
  });

  it('verifies data.id signed verbatim or lower-cased, refuses another key', () => {
    const now = 1_800_000_000_000;
    const ts = now / 1000;
    const args = { secret: SECRET, requestId: 'req-1', dataId: ID, nowMs: now, toleranceSeconds: 600 };
    expect(verifyWebhookSignatureAnyCase({ ...args, signatureHeader: sign(ID, 'req-1', ts) }).ok).toBe(true);
    expect(verifyWebhookSignatureAnyCase({ ...args, signatureHeader: sign(ID.toLowerCase(), 'req-1', ts) }).ok).toBe(true);
    const forged = verifyWebhookSignatureAnyCase({ ...args, signatureHeader: sign(ID, 'req-1', ts, 'another-secret') });
    expect(forged).toEqual({ ok: false, reason: 'v1 does not match' });
    const stale = verifyWebhookSignatureAnyCase({ ...args, signatureHeader: sign(ID, 'req-1', ts - 3600) });
    expect(stale.ok).toBe(false);
  });
});
