import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { fastify, type FastifyInstance } from 'fastify';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { parseMercadoPagoQr } from '../src/emv/index.js';
import { MercadoPagoClient } from '../src/mercadopago/client.js';
import {
  MpBadRequestError,
  MpConflictError,
  MpError,
  MpNotFoundError,
  MpUnauthorizedError,
} from '../src/mercadopago/errors.js';
import type { MpPos } from '../src/mercadopago/types.js';
import {
  connectSandbox,
  interpretPosAnswer,
  startSandbox,
  type MerchantOrderScan,
  type Sandbox,
} from '../src/sandbox/index.js';

const TOKEN = 'TEST-sandbox-token';
const COLLECTOR = 123456789;
const SECRET = 'whsec-test';

// ---- a tiny POS-url server: the part of the relay that answers Mercado Pago's app --------------

interface PosReply {
  status: number;
  body: unknown;
  headers?: Record<string, string>;
}
let posApp: FastifyInstance;
let posBase: string;
const posScripts = new Map<string, PosReply[]>();

function script(pos: string, ...replies: PosReply[]): void {
  posScripts.set(pos, replies);
}

// ---- a notification receiver: the relay's notification_url ------------------------------------

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}
let receiver: Server;
let receiverBase: string;
let received: Received[] = [];
let receiverStatus = 200;

let sandbox: Sandbox;
let mp: MercadoPagoClient;
let storeId: number;

const notificationUrl = (): string => `${receiverBase}/mp/notifications?kiosk=k1`;

function v1Ready(ref: string, items: { title: string; quantity: number; unit_price: number }[], extra: object = {}): PosReply {
  return {
    status: 200,
    body: {
      collector_id: COLLECTOR,
      items: items.map((i) => ({ ...i, currency_id: 'ARS', description: i.title })),
      external_reference: ref,
      notification_url: notificationUrl(),
      ...extra,
    },
  };
}

function v2Ready(ref: string, total: number, items: object[]): PosReply {
  return {
    status: 200,
    headers: { 'order-version': '2' },
    body: {
      external_reference: ref,
      total_amount: total,
      items,
      title: 'qrkiosk',
      notification_url: notificationUrl(),
    },
  };
}

const v1NotReady = (type = 'unavailable'): PosReply => ({ status: 400, body: { error: { type, message: 'wait' } } });
const v2NotReady = (detail = 'in_process'): PosReply => ({ status: 202, body: { status: { status_detail: detail } } });

async function createPos(externalId: string, withUrl = true): Promise<MpPos> {
  return mp.createPos({
    name: `Kiosk ${externalId}`,
    fixed_amount: true,
    store_id: storeId,
    external_id: externalId,
    ...(withUrl ? { url: `${posBase}/pos/${externalId}` } : {}),
  });
}

async function scanReady(pos: MpPos): Promise<MerchantOrderScan> {
  const result = await sandbox.scan({ qr: pos.qr_code! });
  expect(result).toMatchObject({ status: 'ready', model: 'unattended' });
  return result as MerchantOrderScan;
}

function verifySignature(r: Received): boolean {
  const header = String(r.headers['x-signature'] ?? '');
  const parts = Object.fromEntries(header.split(',').map((kv) => kv.split('=') as [string, string]));
  const dataId = new URL(r.url, 'http://x').searchParams.get('data.id');
  const manifest = `id:${dataId};request-id:${String(r.headers['x-request-id'])};ts:${parts.ts};`;
  return createHmac('sha256', SECRET).update(manifest).digest('hex') === parts.v1;
}

beforeAll(async () => {
  posApp = fastify();
  posApp.get('/pos/:id', async (req, reply) => {
    const queue = posScripts.get((req.params as { id: string }).id) ?? [];
    const next = queue.length > 1 ? queue.shift()! : queue[0] ?? { status: 400, body: { error: { type: 'unavailable' } } };
    return reply.code(next.status).headers(next.headers ?? {}).send(next.body);
  });
  await posApp.listen({ host: '127.0.0.1', port: 0 });
  posBase = `http://127.0.0.1:${(posApp.server.address() as AddressInfo).port}`;

  receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      received.push({ method: req.method!, url: req.url!, headers: req.headers, body });
      res.writeHead(receiverStatus, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverBase = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;

  sandbox = await startSandbox({
    accessToken: TOKEN,
    collectorId: COLLECTOR,
    currency: 'ARS',
    webhookSecret: SECRET,
    pollIntervalMs: 10,
    pollGiveUpMs: 2000,
  });
  mp = new MercadoPagoClient({ baseUrl: sandbox.url, accessToken: TOKEN, retryBaseMs: 1, retryCapMs: 10 });
  const store = await mp.createStore(COLLECTOR, {
    name: 'Kiosco Central',
    external_id: 'STORE1',
    location: { city_name: 'Córdoba', street_name: 'Av. Siempre Viva', street_number: '742' },
  });
  storeId = Number(store.id);
});

afterAll(async () => {
  await sandbox?.close();
  await posApp?.close();
  receiver?.closeAllConnections();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

beforeEach(() => {
  received = [];
  receiverStatus = 200;
});

describe('sandbox: stores and POS', () => {
  it('creates a POS whose QR names the collector and the POS', async () => {
    const pos = await createPos('POSQR1');
    expect(pos).toMatchObject({ external_id: 'POSQR1', fixed_amount: true, store_id: storeId, user_id: COLLECTOR });
    expect(typeof pos.id).toBe('number');
    expect(pos.uuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(pos.qr?.image).toBe(`${sandbox.url}/_sandbox/qr/${pos.id}.png`);
    const qr = parseMercadoPagoQr(pos.qr_code!);
    expect(qr).toMatchObject({
      initiation: 'static',
      collectorId: String(COLLECTOR),
      terminalLabel: 'POSQR1',
      currency: 'ARS',
      country: 'AR',
      merchantName: 'Kiosco Central',
      merchantCity: 'Córdoba',
    });
    expect(await mp.getPos(pos.id)).toMatchObject({ id: pos.id, qr_code: pos.qr_code });
    const found = await mp.findPos({ external_id: 'POSQR1' });
    expect(found.results.map((p) => p.id)).toEqual([pos.id]);

    const png = await fetch(pos.qr!.image!);
    expect(png.status).toBe(200);
    expect(png.headers.get('content-type')).toBe('image/png');
    expect(Buffer.from(await png.arrayBuffer()).subarray(1, 4).toString()).toBe('PNG');
  });

  it('validates POS input like Mercado Pago', async () => {
    const base = { name: 'Caja', fixed_amount: true, store_id: storeId };
    const code = async (p: Promise<unknown>): Promise<MpError> => {
      try {
        await p;
      } catch (err) {
        return err as MpError;
      }
      throw new Error('expected failure');
    };
    const dup = await createPos('POSDUP');
    expect(dup.id).toBeGreaterThan(0);
    expect(await code(createPos('POSDUP'))).toBeInstanceOf(MpConflictError);
    const tooLong = await code(mp.createPos({ ...base, name: 'n'.repeat(45), external_id: 'A1' }));
    expect(tooLong).toBeInstanceOf(MpBadRequestError);
    expect(tooLong.code).toBe('NAME_TOO_LONG');
    expect((await code(mp.createPos({ ...base, external_id: 'has-dash' }))).code).toBe('INVALID_EXTERNAL_ID');
    expect((await code(mp.createPos({ ...base, external_id: 'x'.repeat(40) }))).code).toBe('EXTERNAL_ID_TOO_LONG');
    expect(
      (await code(mp.createPos({ ...base, fixed_amount: false, external_id: 'OPEN1', url: `${posBase}/pos/OPEN1` }))).code,
    ).toBe('FIXED_AMOUNT_FALSE');
    expect((await code(mp.createPos({ ...base, external_id: 'U1', url: 'ftp://x' }))).code).toBe('INVALID_URL');
    expect((await code(mp.getPos(999))).constructor).toBe(MpNotFoundError);

    const bad = new MercadoPagoClient({ baseUrl: sandbox.url, accessToken: 'wrong' });
    const unauth = await code(bad.getPos(dup.id));
    expect(unauth).toBeInstanceOf(MpUnauthorizedError);
    expect((unauth.body as { message: string }).message).toBe('invalid_token');
  });

  it('puts a long external_id in the QR as #<pos id> and still finds the POS', async () => {
    const long = 'K'.repeat(30);
    const pos = await createPos(long);
    expect(parseMercadoPagoQr(pos.qr_code!).terminalLabel).toBe(`#${pos.id}`);
    script(long, v1Ready('long-1', [{ title: 'Agua', quantity: 1, unit_price: 100 }]));
    const r = await scanReady(pos);
    expect(r.posId).toBe(pos.id);
  });
});

describe('sandbox: a sale', () => {
  it('v1: polls until ready, then pay notifies (IPN + signed webhook) and closes the order', async () => {
    const pos = await createPos('POSV1');
    script(
      'POSV1',
      v1NotReady('unavailable'),
      v1NotReady('in_process'),
      v1Ready('sale-v1', [
        { title: 'Alfajor', quantity: 2, unit_price: 850.5 },
        { title: 'Agua', quantity: 1, unit_price: 1200 },
      ]),
    );
    const scan = await scanReady(pos);
    expect(scan).toMatchObject({
      generation: 'v1',
      polls: 3,
      totalMinor: 290100,
      currency: 'ARS',
      externalReference: 'sale-v1',
      posId: pos.id,
    });
    const polls = (await sandbox.pollLog()).filter((p) => p.scanId === scan.scanId);
    expect(polls.map((p) => p.httpStatus)).toEqual([400, 400, 200]);

    const opened = await mp.getMerchantOrder(scan.merchantOrderId);
    expect(opened).toMatchObject({ status: 'opened', paid_amount: 0, total_amount: 2901, payments: [] });
    expect(opened.notification_url).toBe(notificationUrl());
    expect(opened.items).toHaveLength(2);

    const paid = await sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'both' } });
    expect(paid).toMatchObject({ status: 'approved', merchantOrderStatus: 'closed', merchantOrderId: scan.merchantOrderId });
    const deliveries = await paid.deliveries;
    expect(deliveries.map((d) => [d.form, d.httpStatus])).toEqual([
      ['ipn', 200],
      ['webhook', 200],
    ]);

    expect(received).toHaveLength(2);
    const [ipn, webhook] = received as [Received, Received];
    expect(ipn.method).toBe('POST');
    expect(ipn.url).toBe(`/mp/notifications?kiosk=k1&topic=merchant_order&id=${scan.merchantOrderId}`);
    expect(webhook.url).toBe(`/mp/notifications?kiosk=k1&data.id=${scan.merchantOrderId}&type=topic_merchant_order_wh`);
    expect(JSON.parse(webhook.body)).toMatchObject({
      live_mode: false,
      type: 'topic_merchant_order_wh',
      user_id: COLLECTOR,
      api_version: 'v1',
      action: 'update',
      data: { id: String(scan.merchantOrderId) },
    });
    expect(webhook.headers['x-request-id']).toMatch(/^[0-9a-f-]{36}$/);
    expect(verifySignature(webhook)).toBe(true);

    const closed = await mp.getMerchantOrder(scan.merchantOrderId);
    expect(closed).toMatchObject({ status: 'closed', paid_amount: 2901, refunded_amount: 0 });
    expect(closed.payments).toHaveLength(1);
    expect(closed.payments[0]).toMatchObject({ id: paid.paymentId, status: 'approved', transaction_amount: 2901 });

    const payment = await mp.getPayment(paid.paymentId);
    expect(payment).toMatchObject({
      id: paid.paymentId,
      status: 'approved',
      transaction_amount: 2901,
      currency_id: 'ARS',
      external_reference: 'sale-v1',
      order: { id: scan.merchantOrderId, type: 'mercadopago' },
    });

    const search = await mp.searchMerchantOrders({ external_reference: 'sale-v1' });
    expect(search.total).toBe(1);
    expect(search.elements?.[0]?.id).toBe(scan.merchantOrderId);
    const none = await mp.searchMerchantOrders({ external_reference: 'never-sold' });
    expect(none).toMatchObject({ total: 0, elements: null });
    // the contingency search's batch: every merchant order created in a window, a page at a time
    const hour = 3_600_000;
    const range = { date_created_from: new Date(Date.now() - hour).toISOString(), date_created_to: new Date(Date.now() + hour).toISOString() };
    const window = await mp.searchMerchantOrders({ ...range, limit: 100, offset: 0 });
    expect(window.elements?.map((m) => m.id)).toContain(scan.merchantOrderId);
    const onePage = await mp.searchMerchantOrders({ ...range, limit: 1, offset: 0 });
    expect(onePage.elements).toHaveLength(1);
    expect(onePage.total).toBe(window.total);
    const before = await mp.searchMerchantOrders({ date_created_to: new Date(Date.now() - hour).toISOString() });
    expect(before).toMatchObject({ total: 0, elements: null });
    await expect(mp.searchMerchantOrders({ date_created_from: 'yesterday' })).rejects.toMatchObject({ status: 400 });
  });

  it('v2: 202 while not ready, then order-version 2 in the site currency', async () => {
    const pos = await createPos('POSV2');
    script(
      'POSV2',
      v2NotReady('Waiting_for_order'),
      v2NotReady('notihing_to_pay'),
      v2Ready('sale-v2', 30, [
        { sku_number: 'A1', title: 'Chicle', quantity: 3, unit_measure: 'unit', unit_price: 10, total_amount: 30 },
      ]),
    );
    const scan = await scanReady(pos);
    expect(scan).toMatchObject({ generation: 'v2', polls: 3, totalMinor: 3000, currency: 'ARS' });
    const mo = await mp.getMerchantOrder(scan.merchantOrderId);
    expect(mo.items[0]).toMatchObject({ sku_number: 'A1', currency_id: 'ARS', unit_price: 10, total_amount: 30 });
    const paid = await sandbox.pay({ checkoutId: scan.checkoutId });
    const [ipn] = await paid.deliveries;
    expect(ipn).toMatchObject({ form: 'ipn', httpStatus: 200 });
    expect((await mp.getMerchantOrder(scan.merchantOrderId)).status).toBe('closed');
  });

  it('underpayment leaves the order opened; a second payment closes it', async () => {
    const pos = await createPos('POSUNDER');
    script('POSUNDER', v1Ready('sale-under', [{ title: 'Cafe', quantity: 1, unit_price: 1000 }]));
    const scan = await scanReady(pos);
    const first = await sandbox.pay({ checkoutId: scan.checkoutId, amountMinor: 60000, notify: false });
    expect(first.merchantOrderStatus).toBe('opened');
    expect(await first.deliveries).toEqual([]);
    expect(received).toHaveLength(0);
    expect(await mp.getMerchantOrder(scan.merchantOrderId)).toMatchObject({
      status: 'opened',
      paid_amount: 600,
      total_amount: 1000,
      order_status: 'partially_paid',
    });
    const rejected = await sandbox.pay({ checkoutId: scan.checkoutId, outcome: 'rejected', notify: false });
    expect(rejected.merchantOrderStatus).toBe('opened');
    const second = await sandbox.pay({ checkoutId: scan.checkoutId, amountMinor: 40000, notify: false });
    expect(second.merchantOrderStatus).toBe('closed');
    const mo = await mp.getMerchantOrder(scan.merchantOrderId);
    expect(mo.payments.map((p) => p.status)).toEqual(['approved', 'rejected', 'approved']);
    expect(mo.paid_amount).toBe(1000);
  });

  it('duplicates, late, forged and unsigned notifications, and failed deliveries are recorded', async () => {
    const pos = await createPos('POSNOTIF');
    script('POSNOTIF', v1Ready('sale-notif', [{ title: 'Jugo', quantity: 1, unit_price: 500 }]));
    const scan = await scanReady(pos);
    const paid = await sandbox.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook', copies: 3 } });
    const copies = await paid.deliveries;
    expect(copies.map((d) => d.copy)).toEqual([1, 2, 3]);
    expect(received).toHaveLength(3);
    expect(new Set(received.map((r) => JSON.parse(r.body).id)).size).toBe(1);
    expect(received.every(verifySignature)).toBe(true);

    received = [];
    const forged = await sandbox.notify({ merchantOrderId: scan.merchantOrderId, form: 'webhook', signature: 'forged' });
    await forged.deliveries;
    expect(received[0]!.headers['x-signature']).toBeDefined();
    expect(verifySignature(received[0]!)).toBe(false);

    received = [];
    const unsigned = await sandbox.notify({ merchantOrderId: scan.merchantOrderId, form: 'webhook', signature: 'none' });
    await unsigned.deliveries;
    expect(received[0]!.headers['x-signature']).toBeUndefined();

    received = [];
    receiverStatus = 500;
    const late = await sandbox.notify({ merchantOrderId: scan.merchantOrderId, delayMs: 30 });
    expect(received).toHaveLength(0);
    const [failed] = await late.deliveries;
    expect(failed).toMatchObject({ form: 'ipn', httpStatus: 500 });
    expect(received).toHaveLength(1);

    const raw = await sandbox.notifyRaw({
      url: `${receiverBase}/mp/notifications`,
      query: { topic: 'merchant_order', id: '999999' },
    });
    expect(raw).toMatchObject({ form: 'raw', httpStatus: 500 });
    expect(received[1]!.url).toBe('/mp/notifications?topic=merchant_order&id=999999');

    const log = await sandbox.deliveries();
    expect(log.filter((d) => d.merchantOrderId === scan.merchantOrderId)).toHaveLength(6);
  });
});

describe('sandbox: POS answers that are not a sale', () => {
  it('rejects a v2 total that is not the sum of the items', async () => {
    const pos = await createPos('POSBADV2');
    script(
      'POSBADV2',
      v2Ready('bad-v2', 50, [{ title: 'Chicle', quantity: 3, unit_measure: 'unit', unit_price: 10, total_amount: 30 }]),
    );
    const before = (await sandbox.merchantOrders()).length;
    const r = await sandbox.scan({ qr: pos.qr_code! });
    expect(r.status).toBe('invalid');
    if (r.status !== 'invalid') throw new Error('unreachable');
    expect(r.error).toMatch(/total_amount/);
    expect(r.last.httpStatus).toBe(200);
    expect(r.polls).toBe(1);
    expect((await sandbox.merchantOrders()).length).toBe(before);
  });

  it('rejects v1 bodies for another collector, fractional quantities or too many decimals', async () => {
    const pos = await createPos('POSBADV1');
    const cases: [PosReply, RegExp][] = [
      [v1Ready('x', [{ title: 'A', quantity: 1, unit_price: 10 }], { collector_id: 42 }), /collector_id/],
      [v1Ready('x', [{ title: 'A', quantity: 1.5, unit_price: 10 }]), /quantity/],
      [v1Ready('x', [{ title: 'A', quantity: 1, unit_price: 10.123 }]), /decimals/],
      [v1Ready('x', []), /at least one item/],
    ];
    for (const [reply, why] of cases) {
      script('POSBADV1', reply);
      const r = await sandbox.scan({ qr: pos.qr_code! });
      expect(r.status, String(why)).toBe('invalid');
      expect(r.status === 'invalid' && r.error).toMatch(why);
    }
  });

  it('stops on "invalid", gives up in time, or stops after maxPolls', async () => {
    const pos = await createPos('POSWAIT');
    script('POSWAIT', v1NotReady('invalid'));
    const invalid = await sandbox.scan({ qr: pos.qr_code! });
    expect(invalid).toMatchObject({ status: 'invalid', polls: 1, last: { httpStatus: 400 } });

    script('POSWAIT', v1NotReady('unavailable'));
    const gaveUp = await sandbox.scan({ qr: pos.qr_code!, giveUpMs: 60, intervalMs: 10 });
    expect(gaveUp.status).toBe('gave_up');
    expect(gaveUp.polls).toBeGreaterThanOrEqual(2);

    script('POSWAIT', v2NotReady());
    const notReady = await sandbox.scan({ qr: pos.qr_code!, maxPolls: 2 });
    expect(notReady).toMatchObject({ status: 'not_ready', polls: 2, last: { httpStatus: 202 } });
  });

  it('refuses QRs that are not ours', async () => {
    await expect(sandbox.scan({ qr: 'not a qr' })).rejects.toMatchObject({ code: 'invalid_qr' });
    // a POS without url and without an order on it: the app's waiting screen (attended model)
    const attended = await createPos('POSNOURL', false);
    expect(await sandbox.scan({ qr: attended.qr_code! })).toMatchObject({ status: 'waiting_for_order', posId: attended.id });
  });
});

describe('sandbox: refunds', () => {
  async function paidSale(ext: string, unitPrice: number): Promise<{ paymentId: number; merchantOrderId: number }> {
    const pos = await createPos(ext);
    script(ext, v1Ready(`sale-${ext}`, [{ title: 'Snack', quantity: 1, unit_price: unitPrice }]));
    const scan = await scanReady(pos);
    const paid = await sandbox.pay({ checkoutId: scan.checkoutId, notify: false });
    return { paymentId: Number(paid.paymentId), merchantOrderId: scan.merchantOrderId };
  }

  it('the same idempotency key returns the same refund and refunds once', async () => {
    const { paymentId, merchantOrderId } = await paidSale('POSREF1', 1500);
    const first = await mp.refundPayment(paymentId, { idempotencyKey: `refund:${paymentId}:vend-failed` });
    const again = await mp.refundPayment(paymentId, { idempotencyKey: `refund:${paymentId}:vend-failed` });
    expect(again).toEqual(first);
    expect(first).toMatchObject({ payment_id: paymentId, amount: 1500, status: 'approved' });

    const records = (await sandbox.refunds()).filter((r) => r.paymentId === paymentId);
    expect(records).toHaveLength(1);
    expect(records[0]).toMatchObject({
      amountMinor: 150000,
      idempotencyKey: `refund:${paymentId}:vend-failed`,
      replays: 1,
      merchantOrderId,
    });
    expect(await mp.getPayment(paymentId)).toMatchObject({ status: 'refunded', transaction_amount_refunded: 1500 });
    expect(await mp.getMerchantOrder(merchantOrderId)).toMatchObject({ status: 'closed', refunded_amount: 1500 });
    expect(await mp.listRefunds(paymentId)).toHaveLength(1);

    // fully refunded: a new refund is refused with MP's "invalid state" cause
    const err = await mp.refundPayment(paymentId, { idempotencyKey: 'another' }).catch((e: unknown) => e);
    expect(err).toBeInstanceOf(MpBadRequestError);
    expect((err as MpError).code).toBe('2063');
  });

  it('partial refunds up to the remaining amount', async () => {
    const { paymentId, merchantOrderId } = await paidSale('POSREF2', 1000);
    await mp.refundPayment(paymentId, { idempotencyKey: 'p1', amount: 250.5 });
    expect(await mp.getPayment(paymentId)).toMatchObject({ status: 'approved', transaction_amount_refunded: 250.5 });
    const over = await mp.refundPayment(paymentId, { idempotencyKey: 'p2', amount: 800 }).catch((e: unknown) => e);
    expect(over).toBeInstanceOf(MpBadRequestError);
    expect((over as MpError).message).toMatch(/exceeds the refundable 749.5/);
    const rest = await mp.refundPayment(paymentId, { idempotencyKey: 'p3' });
    expect(rest.amount).toBe(749.5);
    expect(await mp.getPayment(paymentId)).toMatchObject({ status: 'refunded' });
    expect(await mp.getMerchantOrder(merchantOrderId)).toMatchObject({ refunded_amount: 1000, order_status: 'reverted' });
  });

  it('requires X-Idempotency-Key (MP code 4292) and refuses unapproved payments', async () => {
    const { paymentId } = await paidSale('POSREF3', 100);
    const res = await fetch(`${sandbox.url}/v1/payments/${paymentId}/refunds`, {
      method: 'POST',
      headers: { authorization: `Bearer ${TOKEN}`, 'content-type': 'application/json' },
      body: '{}',
    });
    expect(res.status).toBe(400);
    const body = (await res.json()) as { message: string; cause: { code: number }[] };
    expect(body.message).toMatch(/X-Idempotency-Key/);
    expect(body.cause[0]!.code).toBe(4292);

    // replaying a key answers 200 with the stored refund; a brand new one 201
    const headers = { authorization: `Bearer ${TOKEN}`, 'x-idempotency-key': 'raw-1' };
    const created = await fetch(`${sandbox.url}/v1/payments/${paymentId}/refunds`, { method: 'POST', headers });
    const replay = await fetch(`${sandbox.url}/v1/payments/${paymentId}/refunds`, { method: 'POST', headers });
    expect([created.status, replay.status]).toEqual([201, 200]);

    const pos = await createPos('POSREF4');
    script('POSREF4', v1Ready('sale-rejected', [{ title: 'Snack', quantity: 1, unit_price: 100 }]));
    const scan = await scanReady(pos);
    const rejected = await sandbox.pay({ checkoutId: scan.checkoutId, outcome: 'rejected', notify: false });
    const err = await mp.refundPayment(rejected.paymentId, { idempotencyKey: 'r' }).catch((e: unknown) => e);
    expect((err as MpError).code).toBe('2063');
  });
});

describe('sandbox: faults', () => {
  it('fails an endpoint n times so the client retries through it', async () => {
    const { merchantOrderId } = await (async () => {
      const pos = await createPos('POSFAULT');
      script('POSFAULT', v1Ready('sale-fault', [{ title: 'Snack', quantity: 1, unit_price: 100 }]));
      return scanReady(pos);
    })();
    const fault = await sandbox.setFault({ endpoint: 'getMerchantOrder', status: 503, times: 2 });
    expect((await mp.getMerchantOrder(merchantOrderId)).id).toBe(merchantOrderId);
    expect((await sandbox.faults()).find((f) => f.id === fault.id)).toMatchObject({ hits: 2, remaining: 0 });

    await sandbox.setFault({ path: /^\/merchant_orders\/search/, status: 429, times: 1, retryAfter: '0' });
    expect((await mp.searchMerchantOrders({ external_reference: 'sale-fault' })).total).toBe(1);

    await sandbox.setFault({ endpoint: 'getPayment', status: 500, times: 10 });
    const err = await new MercadoPagoClient({ baseUrl: sandbox.url, accessToken: TOKEN, maxRetries: 1, retryBaseMs: 1 })
      .getPayment(1)
      .catch((e: unknown) => e);
    expect((err as MpError).status).toBe(500);
    await sandbox.clearFaults();
    expect(await sandbox.faults()).toEqual([]);
  });
});

describe('sandbox over HTTP (/_sandbox)', () => {
  it('drives scan, pay and inspection from another "process"', async () => {
    const remote = connectSandbox(sandbox.url);
    const pos = await createPos('POSREMOTE');
    expect((await remote.pointsOfSale()).some((p) => p.id === pos.id)).toBe(true);
    script('POSREMOTE', v1NotReady(), v1Ready('sale-remote', [{ title: 'Snack', quantity: 1, unit_price: 100 }]));
    const scan = await remote.scan({ qr: pos.qr_code! });
    expect(scan).toMatchObject({ status: 'ready', polls: 2, totalMinor: 10000 });
    if (scan.status !== 'ready') throw new Error('unreachable');
    const paid = await remote.pay({ checkoutId: scan.checkoutId, notify: { form: 'webhook' } });
    expect(paid.merchantOrderStatus).toBe('closed');
    const deliveries = await paid.deliveries;
    expect(deliveries).toHaveLength(1);
    expect(deliveries[0]).toMatchObject({ form: 'webhook', httpStatus: 200, signature: 'valid' });
    expect(verifySignature(received[0]!)).toBe(true);

    const fault = await remote.setFault({ path: /^\/v1\/payments\/\d+$/, status: 500, times: 1 });
    expect(fault.path).toBe('^\\/v1\\/payments\\/\\d+$');
    expect((await mp.getPayment(paid.paymentId)).id).toBe(paid.paymentId);

    await expect(remote.pay({ checkoutId: 'nope' })).rejects.toMatchObject({ status: 404, code: 'unknown_checkout' });
    const res = await fetch(`${sandbox.url}/_sandbox/pay`, {
      method: 'POST',
      headers: { 'content-type': 'application/json' },
      body: JSON.stringify({ checkoutId: scan.checkoutId, wait: true, notify: { form: 'ipn', copies: 2 } }),
    });
    const body = (await res.json()) as { deliveries: unknown[]; merchantOrderStatus: string };
    expect(body.deliveries).toHaveLength(2);
    expect((await remote.payments()).filter((p) => p.order?.id === scan.merchantOrderId)).toHaveLength(2);
  });
});

describe('interpretPosAnswer', () => {
  const ctx = { collectorId: COLLECTOR, currency: 'ARS' as const };
  it('accepts the flat v1 error form and refuses a ready answer that is not JSON', () => {
    expect(interpretPosAnswer(400, undefined, { type: 'in_process' }, ctx)).toEqual({ kind: 'not_ready', reason: 'in_process' });
    expect(interpretPosAnswer(503, undefined, 'down', ctx).kind).toBe('unexpected');
    const ready = v1Ready('r', [{ title: 'A', quantity: 1, unit_price: 1 }]).body;
    expect(interpretPosAnswer(200, undefined, ready, { ...ctx, contentType: 'text/plain' }).kind).toBe('invalid');
    expect(interpretPosAnswer(200, undefined, ready, { ...ctx, contentType: 'application/json; charset=utf-8' }).kind).toBe(
      'ready',
    );
  });
});
