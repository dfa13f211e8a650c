import { createHmac, timingSafeEqual } from 'node:crypto';

// The signature on every webhook the relay sends (alerts, order events), so a receiver can tell
// it came from this relay and was not replayed:
//
//   X-Qrkiosk-Signature: t=<unix seconds>,v1=<hex HMAC-SHA256(secret, "<t>.<raw body>")>
//
// The timestamp is inside the signed text, so a receiver that refuses signatures older than a few
// minutes refuses replays; X-Qrkiosk-Delivery carries the delivery id, the same on every retry, for
// receivers that de-duplicate.

export const SIGNATURE_HEADER = 'x-qrkiosk-signature';
export const DELIVERY_HEADER = 'x-qrkiosk-delivery';
export const EVENT_HEADER = 'x-qrkiosk-event';

export function signWebhook(secret: string, body: string, atSeconds: number): string {
  const mac = createHmac('sha256', secret).update(`${atSeconds}.${body}`).digest('hex');
  return `t=${atSeconds},v1=${mac}`;
}

export type SignatureCheck = { ok: true; at: number } | { ok: false; reason: string };

/** For receivers (and our tests): checks the header against the raw body and the clock. */
export function verifyWebhook(secret: string, body: string, header: string | undefined, nowSeconds: number, toleranceSeconds = 300): SignatureCheck {
  if (!header) return { ok: false, reason: `no ${SIGNATURE_HEADER} header` };
  const parts = new Map(
    header.split(',').map((p) => {
      const i = p.indexOf('=');
      return [p.slice(0, i).trim(), p.slice(i + 1).trim()] as const;
    }),
  );
  const t = Number(parts.get('t'));
  const v1 = parts.get('v1') ?? '';
  if (!Number.isInteger(t) || !/^[0-9a-f]{64}$/.test(v1)) return { ok: false, reason: 'the header is not t=<seconds>,v1=<64 hex>' };
  if (Math.abs(nowSeconds - t) > toleranceSeconds) return { ok: false, reason: `signed ${nowSeconds - t} s ago: outside the ${toleranceSeconds} s window (a replay, or a clock off)` };
  const want = createHmac('sha256', secret).update(`${t}.${body}`).digest();
  const got = Buffer.from(v1, 'hex');
  if (!timingSafeEqual(want, got)) return { ok: false, reason: 'the signature does not match the body and secret' };
  return { ok: true, at: t };
}
