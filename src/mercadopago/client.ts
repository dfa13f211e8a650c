// Typed HTTP client for the Mercado Pago endpoints qrkiosk uses, over the global fetch.
//
// Retry policy, and why:
// - 429/500/502/503/504 and network failures/timeouts are transient at Mercado Pago; retrying with
//   exponential backoff + full jitter spreads a fleet of relays instead of having them stampede.
// - GET (and PUT, which replaces state) are safe to repeat, so they are always retried.
// - A POST is retried ONLY when it carries X-Idempotency-Key: without it a timed-out POST may have
//   succeeded and a retry would create a second store/POS, or worse, a second refund. The caller must
//   pass a STABLE key (derived from what it is doing, e.g. "refund:<paymentId>:<reason>"), never a
//   random one, so that retries across process restarts also collapse into one operation.
// - Retry-After (seconds or HTTP-date) is honoured, capped at retryCapMs so a bogus header cannot
//   park a kiosk sale for an hour.

import type { Logger } from 'pino';
import {
  MpConnectionError,
  MpError,
  MpTimeoutError,
  errorFromResponse,
} from './errors.js';
import type { MpCallObserver } from './endpoints.js';
import type {
  CreatePosInput,
  CreateStoreInput,
  MercadoPagoApi,
  MerchantOrderSearch,
  MpDynamicQr,
  MpInstoreOrderInput,
  MpMerchantOrder,
  MpMobileOrderInput,
  MpOrder,
  MpOrderInput,
  MpOrderSearch,
  MpOrderSearchQuery,
  MpPayment,
  MpPos,
  MpRefund,
  MpSearchPage,
  MpStore,
} from './types.js';

export const DEFAULT_MP_BASE_URL = 'https://api.mercadopago.com';

export interface MercadoPagoClientOptions {
  baseUrl?: string;
  accessToken: string;
  /** per attempt, not overall */
  timeoutMs?: number;
  /** retries after the first attempt (so up to maxRetries + 1 requests) */
  maxRetries?: number;
  retryBaseMs?: number;
  retryCapMs?: number;
  logger?: Logger;
  /** [0,1) source for jitter; injectable so tests can make delays deterministic */
  random?: () => number;
  /** told of every HTTP attempt (latency, status or failure): the relay's metrics and health */
  onCall?: MpCallObserver;
}

export interface MpRequestOptions {
  query?: Record<string, string | number | undefined>;
  body?: unknown;
  /** stable key; makes a POST retryable and lets Mercado Pago de-duplicate it */
  idempotencyKey?: string;
  headers?: Record<string, string>;
}

/** GET /pos search result (not in the shared types because only setup code needs it). */
export interface MpPosSearch {
  paging: { total: number; offset: number; limit: number };
  results: MpPos[];
}

export type UpdatePosInput = Partial<Omit<CreatePosInput, 'external_id'>>;

const RETRYABLE_STATUS = new Set([429, 500, 502, 503, 504]);

/** Retry-After in ms: "120" (seconds) or an HTTP-date; undefined when absent or unparseable. */
export function parseRetryAfter(value: string | null | undefined, now = Date.now()): number | undefined {
  if (value === null || value === undefined) return undefined;
  const text = value.trim();
  if (text === '') return undefined;
  if (/^\d+(\.\d+)?$/.test(text)) return Math.round(Number(text) * 1000);
  const at = Date.parse(text);
  if (Number.isNaN(at)) return undefined;
  return Math.max(0, at - now);
}

function sleep(ms: number): Promise<void> {
  return new Promise((resolve) => setTimeout(resolve, ms));
}

function isTimeout(err: unknown): boolean {
  const name = (err as { name?: unknown } | null)?.name;
  return name === 'TimeoutError' || name === 'AbortError';
}

function networkReason(err: unknown): string {
  const cause = (err as { cause?: { code?: unknown; message?: unknown } } | null)?.cause;
  if (cause && typeof cause.code === 'string') return cause.code;
  if (cause && typeof cause.message === 'string') return cause.message;
  return err instanceof Error ? err.message : String(err);
}

export class MercadoPagoClient implements MercadoPagoApi {
  readonly baseUrl: string;
  private readonly accessToken: string;
  private readonly timeoutMs: number;
  private readonly maxRetries: number;
  private readonly retryBaseMs: number;
  private readonly retryCapMs: number;
  private readonly logger: Logger | undefined;
  private readonly random: () => number;
  private readonly onCall: MpCallObserver | undefined;

  constructor(opts: MercadoPagoClientOptions) {
    if (!opts.accessToken) {
      throw new TypeError('MercadoPagoClient needs an accessToken (the seller\'s MP access token)');
    }
    this.baseUrl = (opts.baseUrl ?? DEFAULT_MP_BASE_URL).replace(/\/+$/, '');
    this.accessToken = opts.accessToken;
    this.timeoutMs = opts.timeoutMs ?? 10_000;
    this.maxRetries = Math.max(0, opts.maxRetries ?? 3);
    this.retryBaseMs = opts.retryBaseMs ?? 500;
    this.retryCapMs = opts.retryCapMs ?? 30_000;
    this.logger = opts.logger;
    this.random = opts.random ?? Math.random;
    this.onCall = opts.onCall;
  }

  // ---- endpoints -------------------------------------------------------------------------------

  getMerchantOrder(id: number | string): Promise<MpMerchantOrder> {
    return this.request('GET', `/merchant_orders/${encodeURIComponent(String(id))}`);
  }

  searchMerchantOrders(query: MerchantOrderSearch): Promise<MpSearchPage<MpMerchantOrder>> {
    const q: Record<string, string> = {};
    for (const [k, v] of Object.entries(query)) if (v !== undefined) q[k] = String(v);
    return this.request('GET', '/merchant_orders/search', { query: q });
  }

  getPayment(id: number | string): Promise<MpPayment> {
    return this.request('GET', `/v1/payments/${encodeURIComponent(String(id))}`);
  }

  /**
   * Full refund when `amount` (MP decimal) is omitted. The idempotency key is mandatory and must be
   * stable for the logical refund: a retry or a replay then returns the first refund, never a second.
   */
  refundPayment(paymentId: number | string, opts: { idempotencyKey: string; amount?: number }): Promise<MpRefund> {
    if (!opts || typeof opts.idempotencyKey !== 'string' || opts.idempotencyKey.trim() === '') {
      throw new TypeError(
        'refundPayment needs a stable idempotencyKey (e.g. derived from the sale id), so retries never refund twice',
      );
    }
    return this.request('POST', `/v1/payments/${encodeURIComponent(String(paymentId))}/refunds`, {
      body: opts.amount === undefined ? {} : { amount: opts.amount },
      idempotencyKey: opts.idempotencyKey,
    });
  }

  /** Lists the refunds of a payment (to reconcile after a crash between refund and bookkeeping). */
  listRefunds(paymentId: number | string): Promise<MpRefund[]> {
    return this.request('GET', `/v1/payments/${encodeURIComponent(String(paymentId))}/refunds`);
  }

  /** Not retried on failure unless `idempotencyKey` is given: a blind retry could create two stores. */
  createStore(userId: number | string, input: CreateStoreInput, opts: { idempotencyKey?: string } = {}): Promise<MpStore> {
    return this.request('POST', `/users/${encodeURIComponent(String(userId))}/stores`, {
      body: input,
      ...(opts.idempotencyKey ? { idempotencyKey: opts.idempotencyKey } : {}),
    });
  }

  /** Not retried on failure unless `idempotencyKey` is given; a 409 means the external_id exists: use findPos. */
  createPos(input: CreatePosInput, opts: { idempotencyKey?: string } = {}): Promise<MpPos> {
    return this.request('POST', '/pos', {
      body: input,
      ...(opts.idempotencyKey ? { idempotencyKey: opts.idempotencyKey } : {}),
    });
  }

  getPos(id: number | string): Promise<MpPos> {
    return this.request('GET', `/pos/${encodeURIComponent(String(id))}`);
  }

  /** GET /pos?external_id=…: how setup finds the POS it created on a previous run. */
  findPos(query: { external_id?: string; store_id?: number | string; external_store_id?: string }): Promise<MpPosSearch> {
    return this.request('GET', '/pos', {
      query: {
        external_id: query.external_id,
        store_id: query.store_id,
        external_store_id: query.external_store_id,
      },
    });
  }

  /** PUT /pos/{id}: e.g. point the POS url at a relay that moved. */
  updatePos(id: number | string, patch: UpdatePosInput): Promise<MpPos> {
    return this.request('PUT', `/pos/${encodeURIComponent(String(id))}`, { body: patch });
  }

  // ---- attended model (legacy instore orders on the POS's static QR) ------------------------------

  putPosOrder(userId: number | string, externalStoreId: string, externalPosId: string, input: MpInstoreOrderInput): Promise<void> {
    return this.request(
      'PUT',
      `/instore/qr/seller/collectors/${seg(userId)}/stores/${seg(externalStoreId)}/pos/${seg(externalPosId)}/orders`,
      { body: input },
    );
  }

  deletePosOrder(userId: number | string, externalPosId: string): Promise<void> {
    return this.request('DELETE', `/instore/qr/seller/collectors/${seg(userId)}/pos/${seg(externalPosId)}/orders`);
  }

  postMobilePosOrder(userId: number | string, externalPosId: string, input: MpMobileOrderInput, ttlSeconds: number): Promise<void> {
    // A POST without an idempotency key is not retried by request(); this one replaces the POS's
    // current order, so repeating it is harmless: mark it retryable with a key derived from the order.
    return this.request('POST', `/mpmobile/instore/qr/${seg(userId)}/${seg(externalPosId)}`, {
      body: input,
      idempotencyKey: `mpmobile:${input.external_reference}`,
      headers: { 'x-ttl-store-preference': String(Math.max(1, Math.floor(ttlSeconds))) },
    });
  }

  deleteMobilePosOrder(userId: number | string, externalPosId: string): Promise<void> {
    return this.request('DELETE', `/mpmobile/instore/qr/${seg(userId)}/${seg(externalPosId)}`);
  }

  // ---- dynamic model ------------------------------------------------------------------------------

  createDynamicQr(userId: number | string, externalPosId: string, input: MpInstoreOrderInput, mode: 'dynamic' | 'hybrid'): Promise<MpDynamicQr> {
    const path = `/instore/orders/qr/seller/collectors/${seg(userId)}/pos/${seg(externalPosId)}/qrs`;
    // POST makes a new QR each call: retried only with a key, so a lost answer cannot make two.
    return mode === 'hybrid'
      ? this.request('PUT', path, { body: input })
      : this.request('POST', path, { body: input, idempotencyKey: `qrs:${input.external_reference}` });
  }

  // ---- Orders API -----------------------------------------------------------------------------------

  createOrder(input: MpOrderInput, opts: { idempotencyKey: string }): Promise<MpOrder> {
    requireKey('createOrder', opts?.idempotencyKey);
    return this.request('POST', '/v1/orders', { body: input, idempotencyKey: opts.idempotencyKey });
  }

  getOrder(id: string): Promise<MpOrder> {
    return this.request('GET', `/v1/orders/${seg(id)}`);
  }

  cancelOrder(id: string, opts: { idempotencyKey: string }): Promise<MpOrder> {
    requireKey('cancelOrder', opts?.idempotencyKey);
    return this.request('POST', `/v1/orders/${seg(id)}/cancel`, { idempotencyKey: opts.idempotencyKey });
  }

  refundOrder(id: string, opts: { idempotencyKey: string; transactions?: { id: string; amount: string }[] }): Promise<MpOrder> {
    requireKey('refundOrder', opts?.idempotencyKey);
    return this.request('POST', `/v1/orders/${seg(id)}/refund`, {
      ...(opts.transactions ? { body: { transactions: opts.transactions } } : {}),
      idempotencyKey: opts.idempotencyKey,
    });
  }

  searchOrders(query: MpOrderSearchQuery): Promise<MpOrderSearch> {
    return this.request('GET', '/v1/orders', { query: { ...query } });
  }

  // ---- transport -------------------------------------------------------------------------------

  /**
   * One logical call: JSON in/out, bearer auth, per-attempt timeout, retries per the policy above.
   * Resolves with the parsed JSON body (undefined for an empty body); rejects with an MpError subclass.
   */
  async request<T>(method: string, path: string, opts: MpRequestOptions = {}): Promise<T> {
    const upper = method.toUpperCase();
    const pathWithQuery = path + this.queryString(opts.query);
    const url = this.baseUrl + pathWithQuery;
    const retryable =
      upper === 'GET' || upper === 'HEAD' || upper === 'PUT' || upper === 'DELETE' || !!opts.idempotencyKey;

    const headers: Record<string, string> = {
      accept: 'application/json',
      authorization: `Bearer ${this.accessToken}`,
      'user-agent': 'qrkiosk',
      ...opts.headers,
    };
    let payload: string | undefined;
    if (opts.body !== undefined) {
      payload = JSON.stringify(opts.body);
      headers['content-type'] = 'application/json';
    }
    if (opts.idempotencyKey) headers['x-idempotency-key'] = opts.idempotencyKey;

    for (let attempt = 1; ; attempt++) {
      const started = Date.now();
      let status: number;
      let text: string;
      let responseHeaders: Headers;
      try {
        const res = await fetch(url, {
          method: upper,
          headers,
          body: payload,
          signal: AbortSignal.timeout(this.timeoutMs),
        });
        status = res.status;
        responseHeaders = res.headers;
        text = await res.text();
      } catch (err) {
        this.onCall?.({ method: upper, path, seconds: (Date.now() - started) / 1000, failure: isTimeout(err) ? 'timeout' : 'network' });
        const failure = isTimeout(err)
          ? new MpTimeoutError(
              `Mercado Pago ${upper} ${pathWithQuery} did not answer within ${this.timeoutMs} ms (attempt ${attempt}). Check connectivity to ${this.baseUrl}${
                upper === 'POST' ? '; the operation may have happened: verify before repeating it, or repeat it with the same idempotency key' : ''
              }.`,
              { method: upper, path: pathWithQuery, attempts: attempt, cause: err },
            )
          : new MpConnectionError(
              `Could not reach Mercado Pago for ${upper} ${pathWithQuery} (${networkReason(err)}, attempt ${attempt}). Check the network, DNS and the base URL ${this.baseUrl}.`,
              { method: upper, path: pathWithQuery, attempts: attempt, cause: err },
            );
        if (retryable && attempt <= this.maxRetries) {
          const delay = this.backoff(attempt);
          this.logger?.warn(
            { method: upper, path: pathWithQuery, attempt, delayMs: delay, err: failure.name },
            'Mercado Pago request failed without a response; retrying',
          );
          await sleep(delay);
          continue;
        }
        throw failure;
      }

      this.onCall?.({ method: upper, path, seconds: (Date.now() - started) / 1000, status });
      const body = parseBody(text);
      this.logger?.debug({ method: upper, path: pathWithQuery, status, attempt, ms: Date.now() - started }, 'mp request');

      if (status >= 200 && status < 300) {
        if (body.kind === 'text') {
          throw new MpError(
            `Mercado Pago ${upper} ${pathWithQuery} answered ${status} with a body that is not JSON; is the base URL ${this.baseUrl} really Mercado Pago?`,
            { status, code: 'invalid_response', body: body.value, method: upper, path: pathWithQuery, attempts: attempt },
          );
        }
        return body.value as T;
      }

      const retryAfterMs = parseRetryAfter(responseHeaders.get('retry-after'));
      if (retryable && RETRYABLE_STATUS.has(status) && attempt <= this.maxRetries) {
        const delay = retryAfterMs !== undefined ? Math.min(retryAfterMs, this.retryCapMs) : this.backoff(attempt);
        this.logger?.warn(
          { method: upper, path: pathWithQuery, status, attempt, delayMs: delay },
          'Mercado Pago answered a transient error; retrying',
        );
        await sleep(delay);
        continue;
      }
      throw errorFromResponse({
        status,
        body: body.value,
        method: upper,
        path: pathWithQuery,
        attempts: attempt,
        ...(retryAfterMs !== undefined ? { retryAfterMs } : {}),
      });
    }
  }

  /** Full jitter: uniform in [0, min(cap, base * 2^(attempt-1))]. */
  private backoff(attempt: number): number {
    const ceiling = Math.min(this.retryCapMs, this.retryBaseMs * 2 ** (attempt - 1));
    return Math.floor(this.random() * ceiling);
  }

  private queryString(query: MpRequestOptions['query']): string {
    if (!query) return '';
    const params = new URLSearchParams();
    for (const [k, v] of Object.entries(query)) {
      if (v !== undefined) params.append(k, String(v));
    }
    const s = params.toString();
    return s ? `?${s}` : '';
  }
}

/** A path segment, encoded. */
function seg(v: number | string): string {
  return encodeURIComponent(String(v));
}

function requireKey(what: string, key: string | undefined): void {
  if (typeof key !== 'string' || key.trim() === '') {
    throw new TypeError(`${what} needs a stable idempotencyKey derived from our order id, so a retry never acts twice`);
  }
}

function parseBody(text: string): { kind: 'json' | 'text'; value: unknown } {
  if (text === '') return { kind: 'json', value: undefined };
  try {
    return { kind: 'json', value: JSON.parse(text) as unknown };
  } catch {
    return { kind: 'text', value: text };
  }
}
