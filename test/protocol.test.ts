import { describe, expect, it } from 'vitest';
import { parseAgentFrame, parseRelayFrame, frame } from '../src/protocol/codec.js';

describe('protocol codec', () => {
  it('accepts a well-formed order.ready and fills defaults', () => {
    const f = frame({
      type: 'order.ready' as const,
      orderId: 'ord_abc123',
      slot: 3,
      sku: 'COLA',
      amount: 150000,
      currency: 'ARS',
      deadline: Date.now() + 60_000,
    });
    const r = parseAgentFrame(JSON.stringify(f));
    expect(r.ok).toBe(true);
    if (r.ok && r.msg.type === 'order.ready') expect(r.msg.quantity).toBe(1);
  });

  it('names what is wrong in a bad frame, never throws', () => {
    expect(parseAgentFrame('not json')).toMatchObject({ ok: false, code: 'malformed' });
    expect(parseAgentFrame('[1]')).toMatchObject({ ok: false, code: 'malformed' });
    expect(parseAgentFrame(JSON.stringify({ v: 9, id: 'x', type: 'hello' }))).toMatchObject({
      ok: false,
      code: 'unsupported_version',
      refId: 'x',
    });
    expect(parseAgentFrame(JSON.stringify({ v: 1, id: 'x', type: 'order.paid' }))).toMatchObject({
      ok: false,
      code: 'unknown_type', // order.paid flows relay -> agent only
    });
    const bad = parseAgentFrame(
      JSON.stringify({ v: 1, id: 'y', type: 'order.ready', orderId: 'ord_abc123', slot: 1, sku: 'A', amount: 1.5, currency: 'ARS', deadline: 1 }),
    );
    expect(bad).toMatchObject({ ok: false, code: 'invalid', refId: 'y' });
    if (!bad.ok) expect(bad.message).toMatch(/amount/);
    expect(parseRelayFrame(JSON.stringify({ v: 1, id: 'z', type: 'order.paid', orderId: 'ord_abc123', paymentId: '1', amount: 10, currency: 'XXX' }))).toMatchObject({ ok: false, code: 'invalid' });
  });

  it('words the mistakes a schema does not word itself in English (zod/mini alone says "Invalid input")', () => {
    const r = parseAgentFrame(
      JSON.stringify({ v: 1, id: 'w', type: 'order.ready', orderId: 'ord_abc123', slot: 1000, sku: '', amount: 10, currency: 'ARS', deadline: 1 }),
    );
    expect(r.ok).toBe(false);
    if (!r.ok) {
      expect(r.message).toContain('slot: Too big: expected number to be <=999');
      expect(r.message).toContain('sku: Too small: expected string to have >=1 characters');
    }
  });
});
