import { createServer, type IncomingMessage, type Server, type ServerResponse } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, afterEach, beforeAll, describe, expect, it } from 'vitest';
import { MercadoPagoClient, parseRetryAfter, type MercadoPagoClientOptions } from '../src/mercadopago/client.js';
import {
  MpBadRequestError,
  MpConflictError,
  MpConnectionError,
  MpError,
  MpNotFoundError,
  MpRateLimitError,
  MpServerError,
  MpTimeoutError,
  MpUnauthorizedError,
} from '../src/mercadopago/errors.js';

interface Seen {
  method: string;
  url: string;
  headers: IncomingMessage['headers'];
  body: string;
  at: number;
}
type Reply = (res: ServerResponse, req: Seen) => void;

// A real loopback server: each request takes the next scripted reply (the last one repeats).
let server: Server;
let base: string;
let script: Reply[] = [];
let seen: Seen[] = [];
const hanging: ServerResponse[] = [];

function json(status: number, body: unknown, headers: Record<string, string> = {}): Reply {
  return (res) => {
    res.writeHead(status, { 'content-type': 'application/json', ...headers });
    res.end(JSON.stringify(body));
  };
}
const hang: Reply = (res) => {
  hanging.push(res);
};

beforeAll(async () => {
  server = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const s: Seen = { method: req.method!, url: req.url!, headers: req.headers, body, at: Date.now() };
      seen.push(s);
      const reply = script.length > 1 ? script.shift()! : script[0];
      if (!reply) {
        res.writeHead(500).end();
      } else {
        reply(res, s);
      }
    });
  });
  await new Promise<void>((resolve) => server.listen(0, '127.0.0.1', resolve));
  base = `http://127.0.0.1:${(server.address() as AddressInfo).port}`;
});

afterEach(() => {
  for (const res of hanging.splice(0)) res.destroy();
  script = [];
  seen = [];
});

afterAll(async () => {
  server.closeAllConnections();
  await new Promise<void>((resolve) => server.close(() => resolve()));
});

function client(opts: Partial<MercadoPagoClientOptions> = {}): MercadoPagoClient {
  return new MercadoPagoClient({
    baseUrl: base,
    accessToken: 'TEST-token',
    retryBaseMs: 1,
    retryCapMs: 20,
    timeoutMs: 2000,
    ...opts,
  });
}

async function rejection(p: Promise<unknown>): Promise<MpError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(MpError);
    return err as MpError;
  }
  throw new Error('expected the call to fail');
}

describe('MercadoPagoClient', () => {
  it('sends bearer auth and JSON, and parses the answer', async () => {
    script = [json(200, { id: 42, status: 'closed' })];
    const mo = await client().getMerchantOrder(42);
    expect(mo).toEqual({ id: 42, status: 'closed' });
    expect(seen).toHaveLength(1);
    expect(seen[0]!.method).toBe('GET');
    expect(seen[0]!.url).toBe('/merchant_orders/42');
    expect(seen[0]!.headers.authorization).toBe('Bearer TEST-token');
    expect(seen[0]!.headers.accept).toBe('application/json');
  });

  it('encodes the search query', async () => {
    script = [json(200, { elements: [], total: 0 })];
    await client().searchMerchantOrders({ external_reference: 'kiosk-1:order 7&x' });
    expect(seen[0]!.url).toBe('/merchant_orders/search?external_reference=kiosk-1%3Aorder+7%26x');
  });

  it('retries a GET on 503 and then succeeds', async () => {
    script = [json(503, { message: 'unavailable' }), json(503, {}), json(200, { id: 7, status: 'approved' })];
    const payment = await client().getPayment(7);
    expect(payment.id).toBe(7);
    expect(seen.map((s) => s.url)).toEqual(['/v1/payments/7', '/v1/payments/7', '/v1/payments/7']);
  });

  it('honours Retry-After on 429, capped at retryCapMs', async () => {
    script = [json(429, { message: 'too_many_requests' }, { 'retry-after': '3600' }), json(200, { id: 1 })];
    // jitter source 0 makes the plain backoff 0 ms, so any wait we measure came from Retry-After
    const started = Date.now();
    await client({ retryCapMs: 60, random: () => 0 }).getPayment(1);
    expect(seen).toHaveLength(2);
    const waited = seen[1]!.at - seen[0]!.at;
    expect(waited).toBeGreaterThanOrEqual(50);
    // capped: an hour was asked for; any bound far below it proves the cap whatever the load
    expect(Date.now() - started).toBeLessThan(60_000);
  });

  it('gives MpRateLimitError with retryAfterMs when 429 persists', async () => {
    script = [json(429, { message: 'too_many_requests' }, { 'retry-after': '0' })];
    const err = await rejection(client({ maxRetries: 2 }).getPayment(1));
    expect(err).toBeInstanceOf(MpRateLimitError);
    expect((err as MpRateLimitError).retryAfterMs).toBe(0);
    expect(err.attempts).toBe(3);
    expect(seen).toHaveLength(3);
  });

  it('does not retry a POST without an idempotency key', async () => {
    script = [json(503, { message: 'unavailable' }), json(201, { id: 1 })];
    const err = await rejection(
      client().createPos({ name: 'Caja', fixed_amount: true, external_id: 'POS1', external_store_id: 'S1' }),
    );
    expect(err).toBeInstanceOf(MpServerError);
    expect(err.status).toBe(503);
    expect(seen).toHaveLength(1);
    expect(seen[0]!.headers['x-idempotency-key']).toBeUndefined();
    expect(JSON.parse(seen[0]!.body)).toMatchObject({ external_id: 'POS1' });
  });

  it('retries a refund (it always carries the key) with the same key and body', async () => {
    script = [json(502, {}), json(201, { id: 99, payment_id: 5, amount: 10, status: 'approved' })];
    const refund = await client().refundPayment(5, { idempotencyKey: 'refund:5:vend-failed' });
    expect(refund.id).toBe(99);
    expect(seen).toHaveLength(2);
    for (const s of seen) {
      expect(s.method).toBe('POST');
      expect(s.url).toBe('/v1/payments/5/refunds');
      expect(s.headers['x-idempotency-key']).toBe('refund:5:vend-failed');
      expect(s.headers['content-type']).toBe('application/json');
      expect(s.body).toBe('{}');
    }
  });

  it('sends the amount for a partial refund and insists on a key', async () => {
    script = [json(201, { id: 1, payment_id: 5, amount: 2.5, status: 'approved' })];
    await client().refundPayment(5, { idempotencyKey: 'k', amount: 2.5 });
    expect(JSON.parse(seen[0]!.body)).toEqual({ amount: 2.5 });
    expect(() => client().refundPayment(5, { idempotencyKey: '' })).toThrow(/idempotencyKey/);
  });

  it('maps error statuses to types with the MP code and endpoint', async () => {
    const c = client({ maxRetries: 0 });
    script = [
      json(400, {
        message: 'X-Idempotency-Key header is required',
        error: 'bad_request',
        status: 400,
        cause: [{ code: 4292, description: "Header X-Idempotency-Key can't be null" }],
      }),
    ];
    const bad = await rejection(c.getPayment(1));
    expect(bad).toBeInstanceOf(MpBadRequestError);
    expect(bad.code).toBe('4292');
    expect(bad.status).toBe(400);
    expect(bad.method).toBe('GET');
    expect(bad.path).toBe('/v1/payments/1');
    expect(bad.message).toContain('GET /v1/payments/1');
    expect(bad.body).toMatchObject({ error: 'bad_request' });

    script = [json(401, { message: 'invalid_token' })];
    const unauth = await rejection(c.getPayment(1));
    expect(unauth).toBeInstanceOf(MpUnauthorizedError);
    expect(unauth.code).toBe('invalid_token');
    expect(unauth.message).toMatch(/access token/);

    script = [json(403, { message: 'forbidden', error: 'forbidden' })];
    expect(await rejection(c.getPayment(1))).toBeInstanceOf(MpUnauthorizedError);

    script = [json(404, { message: 'Payment not found', error: 'not_found', status: 404, cause: [] })];
    const nf = await rejection(c.getPayment(1));
    expect(nf).toBeInstanceOf(MpNotFoundError);
    expect(nf.code).toBe('not_found');

    script = [json(409, { message: 'external_id already exists', error: 'conflict' })];
    expect(await rejection(c.createStore(1, { name: 's' }))).toBeInstanceOf(MpConflictError);

    script = [(res) => res.writeHead(500, { 'content-type': 'text/plain' }).end('boom')];
    const server5 = await rejection(c.getPos(3));
    expect(server5).toBeInstanceOf(MpServerError);
    expect(server5.body).toBe('boom');
  });

  it('gives up on 5xx after maxRetries and says how many attempts it made', async () => {
    script = [json(500, { message: 'internal_error' })];
    const err = await rejection(client({ maxRetries: 2 }).getMerchantOrder(1));
    expect(err).toBeInstanceOf(MpServerError);
    expect(err.attempts).toBe(3);
    expect(err.message).toMatch(/after 3 attempts/);
    expect(seen).toHaveLength(3);
  });

  it('times out a silent server', async () => {
    script = [hang];
    const err = await rejection(client({ timeoutMs: 100, maxRetries: 0 }).getPayment(1));
    expect(err).toBeInstanceOf(MpTimeoutError);
    expect(err.status).toBeUndefined();
    expect(err.message).toContain('100 ms');
  });

  it('retries a GET after a timeout', async () => {
    script = [hang, json(200, { id: 3 })];
    // the timeout must be long enough for the second (answering) request on a loaded machine,
    // or it times out too and a third attempt is counted: 2 s, the hang makes it happen anyway
    const payment = await client({ timeoutMs: 2000 }).getPayment(3);
    expect(payment.id).toBe(3);
    expect(seen).toHaveLength(2);
  });

  it('does not retry a keyless POST that timed out (it may have happened)', async () => {
    script = [hang, json(201, { id: 1 })];
    const err = await rejection(client({ timeoutMs: 100 }).createStore(1, { name: 'Shop' }));
    expect(err).toBeInstanceOf(MpTimeoutError);
    expect(err.message).toMatch(/may have happened/);
    expect(seen).toHaveLength(1);
  });

  it('reports a refused connection', async () => {
    const probe = createServer();
    await new Promise<void>((resolve) => probe.listen(0, '127.0.0.1', resolve));
    const port = (probe.address() as AddressInfo).port;
    await new Promise<void>((resolve) => probe.close(() => resolve()));
    const err = await rejection(
      new MercadoPagoClient({ baseUrl: `http://127.0.0.1:${port}`, accessToken: 't', maxRetries: 1, retryBaseMs: 1 }).getPayment(1),
    );
    expect(err).toBeInstanceOf(MpConnectionError);
    expect(err.attempts).toBe(2);
    expect(err.message).toMatch(/ECONNREFUSED/);
  });
});

describe('parseRetryAfter', () => {
  it('reads seconds and HTTP-dates', () => {
    expect(parseRetryAfter('2')).toBe(2000);
    expect(parseRetryAfter(null)).toBeUndefined();
    expect(parseRetryAfter('soon')).toBeUndefined();
    const now = Date.parse('2025-01-01T00:00:00Z');
    expect(parseRetryAfter('Wed, 01 Jan 2025 00:00:05 GMT', now)).toBe(5000);
    expect(parseRetryAfter('Tue, 31 Dec 2024 23:00:00 GMT', now)).toBe(0);
  });
});
