// Outgoing notifications, shaped like Mercado Pago's, so the relay's receiving code is exercised
// with the real quirks: two forms (IPN with topic/id in the query, webhook with a JSON body and an
// HMAC signature), duplicates, and late arrivals.

import { createHmac } from 'node:crypto';
import type { Delivery, SignatureMode } from './types.js';

/**
 * The x-signature v1 value: hex HMAC-SHA256(secret, "id:<data.id>;request-id:<x-request-id>;ts:<ts>;").
 * Exported so tests (and only tests) can check what the relay should compute.
 */
export function webhookSignature(secret: string, dataId: string, requestId: string, ts: string | number): string {
  return createHmac('sha256', secret).update(`id:${dataId};request-id:${requestId};ts:${ts};`).digest('hex');
}

/**
 * Appends query parameters without re-serialising the query the seller configured (URLSearchParams
 * would re-encode it, and some sellers put a signed token there). Keeps any #fragment last.
 */
export function appendQuery(url: string, params: Record<string, string>): string {
  const hashAt = url.indexOf('#');
  const base = hashAt >= 0 ? url.slice(0, hashAt) : url;
  const hash = hashAt >= 0 ? url.slice(hashAt) : '';
  const extra = Object.entries(params)
    .map(([k, v]) => `${encodeURIComponent(k)}=${encodeURIComponent(v)}`)
    .join('&');
  if (!extra) return url;
  const sep = !base.includes('?') ? '?' : base.endsWith('?') || base.endsWith('&') ? '' : '&';
  return `${base}${sep}${extra}${hash}`;
}

export interface OutgoingRequest {
  batchId: number;
  merchantOrderId: number | null;
  orderId?: string;
  form: Delivery['form'];
  copy: number;
  method: string;
  url: string;
  headers: Record<string, string>;
  body?: string;
  signature: SignatureMode;
  requestId?: string;
}

/** Sends one request and records what happened; never throws (a failed delivery is data). */
export async function deliver(
  id: number,
  req: OutgoingRequest,
  opts: { timeoutMs: number; signal: AbortSignal },
): Promise<Delivery> {
  const startedAt = new Date();
  const record: Delivery = {
    id,
    batchId: req.batchId,
    merchantOrderId: req.merchantOrderId,
    form: req.form,
    copy: req.copy,
    method: req.method,
    url: req.url,
    signature: req.signature,
    headers: req.headers,
    startedAt: startedAt.toISOString(),
    durationMs: 0,
    httpStatus: null,
  };
  if (req.requestId !== undefined) record.requestId = req.requestId;
  if (req.orderId !== undefined) record.orderId = req.orderId;
  if (req.body !== undefined) record.body = req.body;
  try {
    const res = await fetch(req.url, {
      method: req.method,
      headers: req.headers,
      body: req.body,
      redirect: 'manual',
      signal: AbortSignal.any([opts.signal, AbortSignal.timeout(opts.timeoutMs)]),
    });
    record.httpStatus = res.status;
    const text = await res.text().catch(() => '');
    if (text) record.responseBody = text.slice(0, 500);
  } catch (err) {
    record.error = describeFetchError(err, opts.signal);
  }
  record.durationMs = Date.now() - startedAt.getTime();
  return record;
}

export function describeFetchError(err: unknown, lifetime?: AbortSignal): string {
  if (lifetime?.aborted) return 'sandbox closed before an answer arrived';
  const name = (err as { name?: unknown } | null)?.name;
  if (name === 'TimeoutError') return 'timed out';
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message;
  return err instanceof Error ? err.message : String(err);
}
