// The sandbox's emulation of every Mercado Pago QR model, driven over real loopback HTTP through
// the MercadoPagoClient the relay uses: attended (instore v2, mpmobile), dynamic and hybrid (/qrs),
// offline dynamic, and the Orders API; their validation errors; the customer paying each; order
// webhooks; late payments after a cancel; and a lost answer that must not make a second order.

import { createHmac } from 'node:crypto';
import { createServer, type IncomingHttpHeaders, type Server } from 'node:http';
import type { AddressInfo } from 'node:net';
import { afterAll, beforeAll, beforeEach, describe, expect, it } from 'vitest';
import { buildMercadoPagoQr, parseMercadoPagoQr } from '../src/emv/index.js';
import { MercadoPagoClient } from '../src/mercadopago/client.js';
import { MpBadRequestError, MpConflictError, MpError, MpNotFoundError } from '../src/mercadopago/errors.js';
import type { MpInstoreOrderInput, MpOrderInput, MpPos, MpQrMode } from '../src/mercadopago/types.js';
import { OrdersApiModel } from '../src/relay/models/index.js';
import {
  connectSandbox,
  startSandbox,
  type MerchantOrderScan,
  type OrdersApiScan,
  type Sandbox,
  type ScanResult,
} from '../src/sandbox/index.js';

const TOKEN = 'TEST-models-token';
const COLLECTOR = 246813579;
const SECRET = 'whsec-models';

interface Received {
  method: string;
  url: string;
  headers: IncomingHttpHeaders;
  body: string;
}

let receiver: Server;
let receiverBase: string;
let received: Received[] = [];
let waiters: { pred: (r: Received) => boolean; resolve: (r: Received) => void }[] = [];

/** Resolves with the first request (already received or still to come) that matches. */
function waitFor(pred: (r: Received) => boolean): Promise<Received> {
  const hit = received.find(pred);
  if (hit) return Promise.resolve(hit);
  return new Promise((resolve) => waiters.push({ pred, resolve }));
}

let sandbox: Sandbox;
let mp: MercadoPagoClient;
let storeId: number;
let posSeq = 0;

const notificationUrl = (): string => `${receiverBase}/mp/notifications`;
const ordersWebhookUrl = (): string => `${receiverBase}/mp/orders`;

async function newPos(prefix: string): Promise<MpPos> {
  return mp.createPos({ name: `Kiosk ${prefix}`, fixed_amount: true, store_id: storeId, external_id: `${prefix}${++posSeq}` });
}

async function failure(p: Promise<unknown>): Promise<MpError> {
  try {
    await p;
  } catch (err) {
    expect(err).toBeInstanceOf(MpError);
    return err as MpError;
  }
  throw new Error('expected Mercado Pago to refuse the request');
}

/** A request the client would never send (no idempotency key...), straight over HTTP. */
async function raw(method: string, path: string, body?: unknown, headers: Record<string, string> = {}): Promise<{ status: number; body: any }> {
  const res = await fetch(sandbox.url + path, {
    method,
    headers: { authorization: `Bearer ${TOKEN}`, ...(body === undefined ? {} : { 'content-type': 'application/json' }), ...headers },
    body: body === undefined ? undefined : JSON.stringify(body),
  });
  const text = await res.text();
  return { status: res.status, body: text ? JSON.parse(text) : undefined };
}

function v2Order(ref: string, extra: Partial<MpInstoreOrderInput> = {}): MpInstoreOrderInput {
  return {
    external_reference: ref,
    title: 'qrkiosk',
    notification_url: notificationUrl(),
    total_amount: 2501,
    items: [{ sku_number: 'COLA', title: 'Cola', unit_price: 1250.5, quantity: 2, unit_measure: 'unit', total_amount: 2501 }],
    ...extra,
  };
}

function orderInput(ref: string, pos: string, mode: MpQrMode, extra: Partial<MpOrderInput> = {}): MpOrderInput {
  return {
    type: 'qr',
    total_amount: '12.50',
    external_reference: ref,
    expiration_time: 'PT15M',
    config: { qr: { external_pos_id: pos, mode } },
    transactions: { payments: [{ amount: '12.50' }] },
    items: [{ title: 'Cola', unit_price: '12.50', quantity: 1, unit_measure: 'unit', external_code: 'COLA' }],
    ...extra,
  };
}

function ready(scan: ScanResult, model: MerchantOrderScan['model']): MerchantOrderScan {
  expect(scan).toMatchObject({ status: 'ready', model });
  return scan as MerchantOrderScan;
}

function readyOrder(scan: ScanResult): OrdersApiScan {
  expect(scan).toMatchObject({ status: 'ready', model: 'orders' });
  return scan as OrdersApiScan;
}

function signatureOver(r: Received, dataId: string): boolean {
  const header = String(r.headers['x-signature'] ?? '');
  const parts = Object.fromEntries(header.split(',').map((kv) => kv.split('=') as [string, string]));
  const manifest = `id:${dataId};request-id:${String(r.headers['x-request-id'])};ts:${parts.ts};`;
  return createHmac('sha256', SECRET).update(manifest).digest('hex') === parts.v1;
}

const orderWebhook = (id: string, action: string) => (r: Received): boolean => {
  if (!r.url.startsWith('/mp/orders')) return false;
  // a late delivery of an earlier test may carry any body: a predicate that threw would stop the
  // receiver from resolving the other waiters
  try {
    const body = JSON.parse(r.body || '{}') as { data?: { id?: string }; action?: string };
    return body.data?.id === id && body.action === action;
  } catch {
    return false;
  }
};

beforeAll(async () => {
  receiver = createServer((req, res) => {
    let body = '';
    req.setEncoding('utf8');
    req.on('data', (c: string) => (body += c));
    req.on('end', () => {
      const r = { method: req.method!, url: req.url!, headers: req.headers, body };
      received.push(r);
      waiters = waiters.filter((w) => {
        let hit = false;
        try {
          hit = w.pred(r);
        } catch {
          hit = false;
        }
        if (hit) w.resolve(r);
        return !hit;
      });
      res.writeHead(200, { 'content-type': 'application/json' }).end('{"ok":true}');
    });
  });
  await new Promise<void>((resolve) => receiver.listen(0, '127.0.0.1', resolve));
  receiverBase = `http://127.0.0.1:${(receiver.address() as AddressInfo).port}`;
  sandbox = await startSandbox({
    accessToken: TOKEN,
    collectorId: COLLECTOR,
    currency: 'ARS',
    webhookSecret: SECRET,
    ordersWebhookUrl: ordersWebhookUrl(),
    panelNotificationUrl: `${receiverBase}/mp/panel`,
  });
  mp = new MercadoPagoClient({ baseUrl: sandbox.url, accessToken: TOKEN, retryBaseMs: 1, retryCapMs: 10 });
  const store = await mp.createStore(COLLECTOR, { name: 'Kiosco Central', external_id: 'STORE1', location: { city_name: 'Rosario' } });
  storeId = Number(store.id);
  await mp.createStore(COLLECTOR, { name: 'Otro', external_id: 'STORE2' });
});

afterAll(async () => {
  await sandbox?.close();
  receiver?.closeAllConnections();
  await new Promise<void>((resolve) => receiver.close(() => resolve()));
});

beforeEach(async () => {
  await sandbox.clearFaults();
});

describe('attended, instore v2 (PUT/GET/DELETE on the POS)', () => {
  it('puts an order on the POS, the customer scans the sticker and pays, and the POS is empty again', async () => {
    const pos = await newPos('ATT');
    await expect(mp.putPosOrder(COLLECTOR, 'STORE1', pos.external_id, v2Order('att-1'))).resolves.toBeUndefined();
    expect(await mp.request('GET', `/instore/qr/seller/collectors/${COLLECTOR}/pos/${pos.external_id}/orders`)).toMatchObject({
      external_reference: 'att-1',
      total_amount: 2501,
    });

    const scan = ready(await sandbox.scan({ qr: pos.qr_code! }), 'attended');
    expect(scan).toMatchObject({ totalMinor: 250100, externalReference: 'att-1', generation: 'v2', posId: pos.id });
    expect(scan.inStoreOrderId).toMatch(/^[0-9a-f-]{36}$/);
    // a second scan of the same order reuses its merchant order
    expect(ready(await sandbox.scan({ qr: pos.qr_code! }), 'attended').merchantOrderId).toBe(scan.merchantOrderId);

    const paid = await sandbox.pay({ checkoutId: scan.checkoutId });
    expect(paid).toMatchObject({ model: 'attended', status: 'approved', merchantOrderStatus: 'closed', lateAfterWithdrawal: false });
    const ipn = await waitFor((r) => r.url === `/mp/notifications?topic=merchant_order&id=${scan.merchantOrderId}`);
    expect(ipn.method).toBe('POST');
    expect(await mp.getMerchantOrder(scan.merchantOrderId)).toMatchObject({ status: 'closed', external_reference: 'att-1' });

    const gone = await failure(mp.request('GET', `/instore/qr/seller/collectors/${COLLECTOR}/pos/${pos.external_id}/orders`));
    expect(gone).toBeInstanceOf(MpNotFoundError);
    expect(gone.code).toBe('point_of_sale_in_store_order_not_found');
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });
  });

  it('refuses what Mercado Pago refuses, with its error keys', async () => {
    const pos = await newPos('ATTV');
    const put = (body: unknown, store = 'STORE1', posId = pos.external_id, user: number = COLLECTOR): Promise<MpError> =>
      failure(mp.putPosOrder(user, store, posId, body as MpInstoreOrderInput));
    const cases: [unknown, string][] = [
      [v2Order('v-1', { total_amount: 2500 }), 'invalid_total_amount'],
      [v2Order('v-2', { items: [{ title: 'Cola', unit_price: 1250.505, quantity: 2, unit_measure: 'unit', total_amount: 2501.01 }] }), 'invalid_unit_price'],
      [v2Order('v-3', { title: '' }), 'invalid_title'],
      [v2Order('v-4', { items: [{ title: 'Cola', unit_price: 1250.5, quantity: 2, unit_measure: 'kg' as 'unit', total_amount: 2501 }] }), 'invalid_unit_measure'],
      [v2Order('v-5', { items: [{ title: 'Cola', unit_price: 1250.5, quantity: 2, unit_measure: 'unit', total_amount: 2000 }] }), 'invalid_items.total_amount'],
      [v2Order('v-6', { expiration_date: '2020-01-01T00:00:00.000-03:00' }), 'invalid_expiration_date'],
      [v2Order('v-7', { expiration_date: 'tomorrow' }), 'invalid_expiration_date'],
      [v2Order('has space'), 'invalid_external_reference'],
      [v2Order('v-8', { notification_url: 'ftp://x' }), 'invalid_notification_url'],
      [v2Order('v-9', { items: [] }), 'error_creating_seller_qr_order'],
      [v2Order('v-10', { items: [{ title: 'Cola', unit_price: 1250.5, quantity: 0, unit_measure: 'unit', total_amount: 0 }] }), 'invalid_quantity'],
    ];
    for (const [body, key] of cases) {
      const err = await put(body);
      expect(err, key).toBeInstanceOf(MpBadRequestError);
      expect(err.code, key).toBe(key);
    }
    expect((await put(v2Order('v-11'), 'STORE1', 'NOSUCHPOS')).code).toBe('invalid_externalPosId');
    expect((await put(v2Order('v-12'), 'NOSUCHSTORE')).code).toBe('invalid_externalStoreId');
    expect((await put(v2Order('v-13'), 'STORE2')).code).toBe('invalid_externalPosId'); // the POS is in another store
    expect((await put(v2Order('v-14'), 'STORE1', pos.external_id, 999)).code).toBe('invalid_collectorId');
    // nothing was put on the POS by any refused request
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });
  });

  it('DELETE withdraws the order: a scan finds nothing, a pay of an earlier checkout is refused, unless the payment lands anyway', async () => {
    const pos = await newPos('ATTD');
    await mp.putPosOrder(COLLECTOR, 'STORE1', pos.external_id, v2Order('att-del'));
    const scan = ready(await sandbox.scan({ qr: pos.qr_code! }), 'attended');
    await mp.deletePosOrder(COLLECTOR, pos.external_id);
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });
    expect((await failure(mp.deletePosOrder(COLLECTOR, pos.external_id))).code).toBe('point_of_sale_in_store_order_not_found');
    await expect(sandbox.pay({ checkoutId: scan.checkoutId })).rejects.toMatchObject({ code: 'order_not_payable' });
    expect(await mp.getMerchantOrder(scan.merchantOrderId)).toMatchObject({ status: 'expired', order_status: 'expired', payments: [] });

    // the race: the payment lands after the delete; the relay must refund it, once
    const late = await sandbox.pay({ checkoutId: scan.checkoutId, landAfterCancel: true });
    expect(late).toMatchObject({ status: 'approved', lateAfterWithdrawal: true, merchantOrderStatus: 'closed' });
    await waitFor((r) => r.url.includes(`id=${late.merchantOrderId}`));
    const key = `refund:att-del`;
    await mp.refundPayment(late.paymentId, { idempotencyKey: key });
    await mp.refundPayment(late.paymentId, { idempotencyKey: key });
    const ledger = (await sandbox.refunds()).filter((r) => r.externalReference === 'att-del');
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ api: 'payments', amountMinor: 250100, replays: 1 });
  });

  it('a new PUT replaces the order on the POS: the old checkout can no longer be paid', async () => {
    const pos = await newPos('ATTR');
    await mp.putPosOrder(COLLECTOR, 'STORE1', pos.external_id, v2Order('att-old'));
    const old = ready(await sandbox.scan({ qr: pos.qr_code! }), 'attended');
    await mp.putPosOrder(COLLECTOR, 'STORE1', pos.external_id, v2Order('att-new'));
    await expect(sandbox.pay({ checkoutId: old.checkoutId })).rejects.toMatchObject({ code: 'order_not_payable' });
    expect(ready(await sandbox.scan({ qr: pos.qr_code! }), 'attended').externalReference).toBe('att-new');
  });

  it('whole pesos only in COP', async () => {
    const cop = await startSandbox({ accessToken: TOKEN, collectorId: COLLECTOR, currency: 'COP' });
    try {
      const client = new MercadoPagoClient({ baseUrl: cop.url, accessToken: TOKEN, maxRetries: 0 });
      await client.createStore(COLLECTOR, { name: 'Tienda', external_id: 'S1' });
      await client.createPos({ name: 'Caja', fixed_amount: true, external_store_id: 'S1', external_id: 'C1' });
      const body = v2Order('cop-1', {
        total_amount: 1500.5,
        items: [{ title: 'Tinto', unit_price: 1500.5, quantity: 1, unit_measure: 'unit', total_amount: 1500.5 }],
      });
      const fractional = await failure(client.putPosOrder(COLLECTOR, 'S1', 'C1', body));
      expect(fractional.code).toBe('invalid_total_amount');
      expect(fractional.message).toContain('whole numbers');
      const unit = v2Order('cop-3', { total_amount: 1500, items: [{ title: 'Tinto', unit_price: 1500.5, quantity: 1, unit_measure: 'unit', total_amount: 1500 }] });
      expect((await failure(client.putPosOrder(COLLECTOR, 'S1', 'C1', unit))).code).toBe('invalid_unit_price');
      const whole = v2Order('cop-2', { total_amount: 1500, items: [{ title: 'Tinto', unit_price: 1500, quantity: 1, unit_measure: 'unit', total_amount: 1500 }] });
      await expect(client.putPosOrder(COLLECTOR, 'S1', 'C1', whole)).resolves.toBeUndefined();
    } finally {
      await cop.close();
    }
  });
});

describe('attended, mpmobile (legacy v1)', () => {
  const mobileOrder = (ref: string, extra: object = {}) => ({
    external_reference: ref,
    notification_url: notificationUrl(),
    items: [{ id: 'COLA', title: 'Cola', currency_id: 'ARS', unit_price: 1500, quantity: 1 }],
    ...extra,
  });

  it('posts an order with a TTL, the customer pays it, DELETE empties the POS', async () => {
    const pos = await newPos('MOB');
    await mp.postMobilePosOrder(COLLECTOR, pos.external_id, mobileOrder('mob-1'), 300);
    const [info] = (await sandbox.instoreOrders()).filter((o) => o.externalReference === 'mob-1');
    expect(info).toMatchObject({ api: 'mpmobile', state: 'open', onPos: true });
    const ttl = Date.parse(info!.expiresAt!) - Date.parse(info!.dateCreated);
    expect(ttl).toBeGreaterThan(295_000);
    expect(ttl).toBeLessThanOrEqual(301_000);

    const scan = ready(await sandbox.scan({ qr: pos.qr_code! }), 'attended');
    expect(scan).toMatchObject({ generation: 'v1', totalMinor: 150000 });
    await sandbox.pay({ checkoutId: scan.checkoutId, notify: false });
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });

    await mp.postMobilePosOrder(COLLECTOR, pos.external_id, mobileOrder('mob-2'), 300);
    await mp.deleteMobilePosOrder(COLLECTOR, pos.external_id);
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });
    expect((await failure(mp.deleteMobilePosOrder(COLLECTOR, pos.external_id))).status).toBe(404);
  });

  it('expires after its TTL and refuses bad items', async () => {
    const pos = await newPos('MOBX');
    await mp.postMobilePosOrder(COLLECTOR, pos.external_id, mobileOrder('mob-exp'), 60);
    const id = (await sandbox.instoreOrders()).find((o) => o.externalReference === 'mob-exp')!.id;
    await sandbox.expire({ inStoreOrderId: id });
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });

    const bad = (extra: object) => failure(mp.postMobilePosOrder(COLLECTOR, pos.external_id, mobileOrder('mob-bad', extra) as never, 60));
    expect((await bad({ items: [{ title: 'Cola', currency_id: 'BRL', unit_price: 1, quantity: 1 }] })).code).toBe('invalid_items');
    expect((await bad({ items: [{ title: 'Cola', currency_id: 'ARS', unit_price: 1.001, quantity: 1 }] })).code).toBe('invalid_items');
    expect((await failure(mp.postMobilePosOrder(1, pos.external_id, mobileOrder('mob-bad'), 60))).code).toBe('invalid_collector_id');
  });
});

describe('dynamic QR (/qrs): POST = the order\'s own QR, PUT = hybrid', () => {
  it('returns qr_data as Mercado Pago does; the customer scans it and pays once', async () => {
    const pos = await newPos('DYN');
    const qr = await mp.createDynamicQr(COLLECTOR, pos.external_id, v2Order('dyn-1'), 'dynamic');
    const decoded = parseMercadoPagoQr(qr.qr_data);
    expect(decoded).toMatchObject({ initiation: 'dynamic', orderUuid: qr.in_store_order_id, terminalLabel: pos.external_id, currency: 'ARS' });
    expect(decoded.amountMinor).toBeUndefined();
    expect(decoded.collectorId).toBeUndefined();
    expect(qr.qr_data).toContain('0016COM.MERCADOLIBRE');
    // a dynamic order is not on the POS sticker
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });

    const scan = ready(await sandbox.scan({ qr: qr.qr_data }), 'dynamic');
    expect(scan).toMatchObject({ inStoreOrderId: qr.in_store_order_id, totalMinor: 250100 });
    await sandbox.pay({ checkoutId: scan.checkoutId, notify: false });
    expect(await sandbox.scan({ qr: qr.qr_data })).toMatchObject({ status: 'nothing_to_pay' });
  });

  it('hybrid: payable from the sticker or the QR; paying through one disables the other', async () => {
    const pos = await newPos('HYB');
    const qr = await mp.createDynamicQr(COLLECTOR, pos.external_id, v2Order('hyb-1'), 'hybrid');
    const viaSticker = ready(await sandbox.scan({ qr: pos.qr_code! }), 'dynamic');
    const viaQr = ready(await sandbox.scan({ qr: qr.qr_data }), 'dynamic');
    expect(viaSticker.inStoreOrderId).toBe(qr.in_store_order_id);
    expect(viaQr.merchantOrderId).toBe(viaSticker.merchantOrderId);
    await sandbox.pay({ checkoutId: viaSticker.checkoutId, notify: false });
    await expect(sandbox.pay({ checkoutId: viaQr.checkoutId })).rejects.toMatchObject({ code: 'order_not_payable' });
    expect(await sandbox.scan({ qr: qr.qr_data })).toMatchObject({ status: 'nothing_to_pay' });
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });
  });

  it('validates like instore v2, and honours the idempotency key of a POST', async () => {
    const pos = await newPos('DYNV');
    expect((await failure(mp.createDynamicQr(COLLECTOR, pos.external_id, v2Order('dv-1', { total_amount: 1 }), 'dynamic'))).code).toBe(
      'invalid_total_amount',
    );
    expect((await failure(mp.createDynamicQr(COLLECTOR, 'NOPOS', v2Order('dv-2'), 'hybrid'))).code).toBe('invalid_externalPosId');
    const first = await mp.createDynamicQr(COLLECTOR, pos.external_id, v2Order('dv-3'), 'dynamic');
    const again = await mp.createDynamicQr(COLLECTOR, pos.external_id, v2Order('dv-3'), 'dynamic');
    expect(again).toEqual(first);
    // the same key (derived from external_reference by the client) with another body is a conflict
    const other = await failure(mp.createDynamicQr(COLLECTOR, pos.external_id, v2Order('dv-3', { title: 'changed' }), 'dynamic'));
    expect(other).toBeInstanceOf(MpConflictError);
  });

  it('a create whose answer was lost (504 after the effect) and retried makes one order', async () => {
    const pos = await newPos('DYNL');
    const fault = await sandbox.setFault({ endpoint: 'createDynamicQr', method: 'POST', status: 504, afterEffect: true });
    const qr = await mp.createDynamicQr(COLLECTOR, pos.external_id, v2Order('dyn-lost'), 'dynamic');
    expect((await sandbox.faults()).find((f) => f.id === fault.id)).toMatchObject({ hits: 1, afterEffect: true });
    const made = (await sandbox.instoreOrders()).filter((o) => o.externalReference === 'dyn-lost');
    expect(made.map((o) => o.id)).toEqual([qr.in_store_order_id]);
  });

  it('in Brazil the qr_data carries the Pix template too', async () => {
    const brl = await startSandbox({ accessToken: TOKEN, collectorId: COLLECTOR, currency: 'BRL' });
    try {
      const client = new MercadoPagoClient({ baseUrl: brl.url, accessToken: TOKEN, maxRetries: 0 });
      await client.createStore(COLLECTOR, { name: 'Loja', external_id: 'S1' });
      await client.createPos({ name: 'Caixa', fixed_amount: true, external_store_id: 'S1', external_id: 'C1' });
      const qr = await client.createDynamicQr(COLLECTOR, 'C1', v2Order('pix-1'), 'dynamic');
      const decoded = parseMercadoPagoQr(qr.qr_data);
      expect(decoded).toMatchObject({ orderUuid: qr.in_store_order_id, currency: 'BRL', pixUrl: `pix-qr.mercadopago.com/instore/o/v2/${qr.in_store_order_id}` });
      expect((await brl.scan({ qr: qr.qr_data })).status).toBe('ready');
    } finally {
      await brl.close();
    }
  });
});

describe('offline dynamic QR (built by the seller)', () => {
  it('opens a merchant order for the QR\'s amount and reference; notifications go to the panel URL', async () => {
    const pos = await newPos('OFF');
    const qr = buildMercadoPagoQr({
      collectorId: COLLECTOR,
      currency: 'ARS',
      amountMinor: 12345,
      merchantName: 'Kiosco Central',
      merchantCity: 'Rosario',
      referenceLabel: 'ord_offline1',
      terminalLabel: pos.external_id,
    });
    const scan = ready(await sandbox.scan({ qr }), 'offline');
    expect(scan).toMatchObject({ totalMinor: 12345, externalReference: 'ord_offline1', posId: pos.id });
    const paid = await sandbox.pay({ checkoutId: scan.checkoutId });
    const ipn = await waitFor((r) => r.url === `/mp/panel?topic=merchant_order&id=${paid.merchantOrderId}`);
    expect(ipn.method).toBe('POST');
    expect(await mp.getMerchantOrder(scan.merchantOrderId)).toMatchObject({ status: 'closed', total_amount: 123.45 });
    // nothing can withdraw an offline QR: a second scan is a second merchant order
    expect(ready(await sandbox.scan({ qr }), 'offline').merchantOrderId).not.toBe(scan.merchantOrderId);

    const foreign = buildMercadoPagoQr({ collectorId: 1, currency: 'ARS', amountMinor: 100, merchantName: 'X', merchantCity: 'Y', referenceLabel: 'r' });
    await expect(sandbox.scan({ qr: foreign })).rejects.toMatchObject({ code: 'unknown_collector' });
  });
});

describe('Orders API (/v1/orders, type qr)', () => {
  it('creates a dynamic order; the customer scans its qr_data and pays; a signed order webhook follows', async () => {
    const pos = await newPos('ORD');
    const order = await mp.createOrder(orderInput('ord_dyn1', pos.external_id, 'dynamic'), { idempotencyKey: 'create:ord_dyn1' });
    expect(order).toMatchObject({
      type: 'qr',
      status: 'created',
      total_amount: '12.50',
      external_reference: 'ord_dyn1',
      currency: 'ARS',
      expiration_time: 'PT15M',
      config: { qr: { external_pos_id: pos.external_id, mode: 'dynamic' } },
    });
    expect(order.id).toMatch(/^ORD[0-9A-Z]{26}$/);
    const decoded = parseMercadoPagoQr(order.type_response!.qr_data!);
    expect(decoded.orderUuid).toMatch(/^[0-9a-f-]{36}$/);
    expect(decoded.amountMinor).toBeUndefined();

    const scan = readyOrder(await sandbox.scan({ qr: order.type_response!.qr_data! }));
    expect(scan).toMatchObject({ orderId: order.id, mode: 'dynamic', totalMinor: 1250 });
    const paid = await sandbox.pay({ checkoutId: scan.checkoutId });
    expect(paid).toMatchObject({ model: 'orders', orderId: order.id, orderStatus: 'processed', status: 'approved' });

    const hook = await waitFor(orderWebhook(order.id, 'order.processed'));
    expect(hook.url).toBe(`/mp/orders?data.id=${order.id}&type=order`);
    expect(JSON.parse(hook.body)).toMatchObject({ type: 'order', action: 'order.processed', data: { id: order.id } });
    expect(signatureOver(hook, order.id)).toBe(true); // data.id verbatim
    expect(signatureOver(hook, order.id.toLowerCase())).toBe(false);

    const read = await mp.getOrder(order.id);
    expect(read).toMatchObject({ status: 'processed', status_detail: 'accredited', total_paid_amount: '12.50' });
    expect(read.transactions?.payments?.[0]).toMatchObject({ id: paid.paymentId, status: 'processed', amount: '12.50' });
    expect(await sandbox.scan({ qr: order.type_response!.qr_data! })).toMatchObject({ status: 'nothing_to_pay' });
  });

  it('static and hybrid orders sit on the POS sticker; paying a hybrid one disables its QR', async () => {
    const pos = await newPos('ORDS');
    const stat = await mp.createOrder(orderInput('ord_static1', pos.external_id, 'static'), { idempotencyKey: 'create:ord_static1' });
    expect(stat.type_response?.qr_data).toBeUndefined();
    const conflict = await failure(mp.createOrder(orderInput('ord_static2', pos.external_id, 'hybrid'), { idempotencyKey: 'create:ord_static2' }));
    expect(conflict).toMatchObject({ status: 409, code: 'pos_has_open_order' });
    const scan = readyOrder(await sandbox.scan({ qr: pos.qr_code! }));
    expect(scan).toMatchObject({ orderId: stat.id, mode: 'static' });
    await sandbox.pay({ checkoutId: scan.checkoutId, notify: false });
    expect((await mp.getOrder(stat.id)).status).toBe('processed');

    const hyb = await mp.createOrder(orderInput('ord_hybrid1', pos.external_id, 'hybrid'), { idempotencyKey: 'create:ord_hybrid1' });
    const viaSticker = readyOrder(await sandbox.scan({ qr: pos.qr_code! }));
    const viaQr = readyOrder(await sandbox.scan({ qr: hyb.type_response!.qr_data! }));
    expect(viaSticker.orderId).toBe(hyb.id);
    expect(viaQr.orderId).toBe(hyb.id);
    await sandbox.pay({ checkoutId: viaQr.checkoutId, notify: false });
    await expect(sandbox.pay({ checkoutId: viaSticker.checkoutId })).rejects.toMatchObject({ code: 'order_not_payable' });
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });
  });

  it('the idempotency key: same body gives the first order back, a different body is a conflict', async () => {
    const pos = await newPos('ORDK');
    const input = orderInput('ord_key1', pos.external_id, 'dynamic');
    const first = await mp.createOrder(input, { idempotencyKey: 'create:ord_key1' });
    const again = await mp.createOrder(input, { idempotencyKey: 'create:ord_key1' });
    expect(again).toEqual(first);
    const changed = await failure(mp.createOrder({ ...input, total_amount: '13.00', transactions: { payments: [{ amount: '13.00' }] }, items: [] }, { idempotencyKey: 'create:ord_key1' }));
    expect(changed).toBeInstanceOf(MpConflictError);
    expect(changed.code).toBe('idempotency_key_already_used');
    expect((await sandbox.orders()).filter((o) => o.external_reference === 'ord_key1')).toHaveLength(1);
    const noKey = await raw('POST', '/v1/orders', input);
    expect(noKey).toMatchObject({ status: 400, body: { errors: [{ code: 'empty_required_header' }] } });
    const longKey = await raw('POST', '/v1/orders', input, { 'x-idempotency-key': 'k'.repeat(129) });
    expect(longKey.body.errors[0].code).toBe('invalid_idempotency_key_length');
  });

  it('refuses bad amounts, totals, POS, references, expirations and properties', async () => {
    const pos = await newPos('ORDV');
    const base = orderInput('ord_v', pos.external_id, 'dynamic');
    let n = 0;
    const refuse = async (body: unknown): Promise<MpError> => failure(mp.createOrder(body as MpOrderInput, { idempotencyKey: `bad-${++n}` }));
    const amount = (a: string): Partial<MpOrderInput> => ({ total_amount: a, transactions: { payments: [{ amount: a }] }, items: [{ title: 'x', unit_price: a, quantity: 1 }] });
    expect((await refuse({ ...base, ...amount('12.505') })).code).toBe('property_value');
    expect((await refuse({ ...base, ...amount('12') })).code).toBe('property_value'); // ARS needs exactly 2 decimals
    expect((await refuse({ ...base, ...amount('0.00') })).code).toBe('invalid_total_amount');
    expect((await refuse({ ...base, total_amount: '20.00', transactions: { payments: [{ amount: '20.00' }] } })).code).toBe('invalid_total_amount'); // items sum 12.50
    expect((await refuse({ ...base, transactions: { payments: [{ amount: '10.00' }] } })).code).toBe('invalid_total_amount');
    expect((await refuse({ ...base, config: { qr: { external_pos_id: 'NOPOS', mode: 'dynamic' } } })).code).toBe('property_value');
    expect((await refuse({ ...base, config: { qr: { external_pos_id: pos.external_id, mode: 'qr' } } })).code).toBe('property_value');
    expect((await refuse({ ...base, external_reference: 'has space' })).code).toBe('property_value');
    expect((await refuse({ ...base, external_reference: 'x'.repeat(65) })).code).toBe('property_value');
    expect((await refuse({ ...base, expiration_time: '15 minutes' })).code).toBe('property_value');
    expect((await refuse({ ...base, expiration_time: 'PT0S' })).code).toBe('property_value');
    expect((await refuse({ ...base, type: 'online' })).code).toBe('property_value');
    expect((await refuse({ ...base, notification_url: 'http://x' })).code).toBe('unsupported_properties');
    const { external_reference: _drop, ...noRef } = base;
    expect((await refuse(noRef)).code).toBe('required_properties');
    expect((await refuse({ ...base, transactions: { payments: [{ amount: '6.25' }, { amount: '6.25' }] } })).code).toBe('maximum_items');
    expect((await sandbox.orders()).filter((o) => o.external_reference === 'ord_v')).toHaveLength(0);
  });

  it('amounts in CLP are whole pesos', async () => {
    const clp = await startSandbox({ accessToken: TOKEN, collectorId: COLLECTOR, currency: 'CLP' });
    try {
      const client = new MercadoPagoClient({ baseUrl: clp.url, accessToken: TOKEN, maxRetries: 0 });
      await client.createStore(COLLECTOR, { name: 'Tienda', external_id: 'S1' });
      await client.createPos({ name: 'Caja', fixed_amount: true, external_store_id: 'S1', external_id: 'C1' });
      const input = (a: string): MpOrderInput => ({ ...orderInput('clp_1', 'C1', 'dynamic'), total_amount: a, transactions: { payments: [{ amount: a }] }, items: [{ title: 'x', unit_price: a, quantity: 1 }] });
      expect((await failure(client.createOrder(input('1500.00'), { idempotencyKey: 'c1' }))).code).toBe('property_value');
      expect(await client.createOrder(input('1500'), { idempotencyKey: 'c2' })).toMatchObject({ total_amount: '1500', currency: 'CLP' });
    } finally {
      await clp.close();
    }
  });

  it('cancel leaves nothing payable; double cancel, cancel after payment and refund of an unpaid order are refused', async () => {
    const pos = await newPos('ORDC');
    const order = await mp.createOrder(orderInput('ord_cancel1', pos.external_id, 'hybrid'), { idempotencyKey: 'create:ord_cancel1' });
    const scan = readyOrder(await sandbox.scan({ qr: order.type_response!.qr_data! }));
    expect((await failure(mp.refundOrder(order.id, { idempotencyKey: 'refund:ord_cancel1' }))).code).toBe('order_not_processed');

    const canceled = await mp.cancelOrder(order.id, { idempotencyKey: 'cancel:ord_cancel1' });
    expect(canceled).toMatchObject({ status: 'canceled', status_detail: 'canceled' });
    await waitFor(orderWebhook(order.id, 'order.canceled'));
    expect(await mp.cancelOrder(order.id, { idempotencyKey: 'cancel:ord_cancel1' })).toMatchObject({ status: 'canceled' }); // replay
    const twice = await failure(mp.cancelOrder(order.id, { idempotencyKey: 'cancel:other' }));
    expect(twice).toMatchObject({ status: 409, code: 'order_already_canceled' });

    expect(await sandbox.scan({ qr: order.type_response!.qr_data! })).toMatchObject({ status: 'nothing_to_pay' });
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });
    await expect(sandbox.pay({ checkoutId: scan.checkoutId })).rejects.toMatchObject({ code: 'order_not_payable' });

    const paidOrder = await mp.createOrder(orderInput('ord_cancel2', pos.external_id, 'dynamic'), { idempotencyKey: 'create:ord_cancel2' });
    const s2 = readyOrder(await sandbox.scan({ qr: paidOrder.type_response!.qr_data! }));
    await sandbox.pay({ checkoutId: s2.checkoutId, notify: false });
    expect((await failure(mp.cancelOrder(paidOrder.id, { idempotencyKey: 'cancel:ord_cancel2' }))).code).toBe('cannot_cancel_processed_order');
  });

  it('a payment that lands after the cancel turns the order processed; the relay refunds it exactly once', async () => {
    const pos = await newPos('ORDL');
    const order = await mp.createOrder(orderInput('ord_late1', pos.external_id, 'dynamic'), { idempotencyKey: 'create:ord_late1' });
    const scan = readyOrder(await sandbox.scan({ qr: order.type_response!.qr_data! }));
    await mp.cancelOrder(order.id, { idempotencyKey: 'cancel:ord_late1' });
    const late = await sandbox.pay({ checkoutId: scan.checkoutId, landAfterCancel: true });
    expect(late).toMatchObject({ lateAfterWithdrawal: true, orderStatus: 'processed' });
    await waitFor(orderWebhook(order.id, 'order.processed'));
    expect((await mp.getOrder(order.id)).status).toBe('processed');

    expect(await mp.refundOrder(order.id, { idempotencyKey: 'refund:ord_late1' })).toMatchObject({ status: 'refunded' });
    expect(await mp.refundOrder(order.id, { idempotencyKey: 'refund:ord_late1' })).toMatchObject({ status: 'refunded' });
    expect((await failure(mp.refundOrder(order.id, { idempotencyKey: 'refund:other' }))).code).toBe('order_already_refunded');
    await waitFor(orderWebhook(order.id, 'order.refunded'));
    const ledger = (await sandbox.refunds()).filter((r) => r.orderId === order.id);
    expect(ledger).toHaveLength(1);
    expect(ledger[0]).toMatchObject({ api: 'orders', amountMinor: 1250, paymentId: late.paymentId, replays: 1, externalReference: 'ord_late1' });
    const noKey = await raw('POST', `/v1/orders/${order.id}/refund`);
    expect(noKey.body.errors[0].code).toBe('empty_required_header');
  });

  it('partial refunds by transaction, and the refundable amount is enforced', async () => {
    const pos = await newPos('ORDP');
    const order = await mp.createOrder(orderInput('ord_part1', pos.external_id, 'dynamic'), { idempotencyKey: 'create:ord_part1' });
    const scan = readyOrder(await sandbox.scan({ qr: order.type_response!.qr_data! }));
    const paid = await sandbox.pay({ checkoutId: scan.checkoutId, notify: false });
    const txId = String(paid.paymentId);
    const part = await mp.refundOrder(order.id, { idempotencyKey: 'r1', transactions: [{ id: txId, amount: '2.50' }] });
    expect(part).toMatchObject({ status: 'processed', status_detail: 'partially_refunded' });
    const over = await failure(mp.refundOrder(order.id, { idempotencyKey: 'r2', transactions: [{ id: txId, amount: '10.01' }] }));
    expect(over.code).toBe('refund_amount_exceeds');
    expect(await mp.refundOrder(order.id, { idempotencyKey: 'r3', transactions: [{ id: txId, amount: '10.00' }] })).toMatchObject({ status: 'refunded' });
    expect((await sandbox.refunds()).filter((r) => r.orderId === order.id).map((r) => r.amountMinor)).toEqual([250, 1000]);

    // an underpaid order is not processed, yet the money it holds can be refunded after the cancel
    const under = await mp.createOrder(orderInput('ord_part2', pos.external_id, 'dynamic'), { idempotencyKey: 'create:ord_part2' });
    const s2 = readyOrder(await sandbox.scan({ qr: under.type_response!.qr_data! }));
    await sandbox.pay({ checkoutId: s2.checkoutId, amountMinor: 1000, notify: false });
    expect(await mp.getOrder(under.id)).toMatchObject({ status: 'created', status_detail: 'partially_paid', total_paid_amount: '10.00' });
    await mp.cancelOrder(under.id, { idempotencyKey: 'cancel:ord_part2' });
    expect(await mp.refundOrder(under.id, { idempotencyKey: 'refund:ord_part2' })).toMatchObject({ status: 'canceled', status_detail: 'refunded' });
    expect((await sandbox.refunds()).filter((r) => r.orderId === under.id).map((r) => r.amountMinor)).toEqual([1000]);
  });

  it('expires: by its expiration_time (webhook), or at once on request; expired orders cannot be paid or canceled', async () => {
    const pos = await newPos('ORDE');
    const short = await mp.createOrder({ ...orderInput('ord_exp1', pos.external_id, 'dynamic'), expiration_time: 'PT1S' }, { idempotencyKey: 'create:ord_exp1' });
    await waitFor(orderWebhook(short.id, 'order.expired'));
    expect(await mp.getOrder(short.id)).toMatchObject({ status: 'expired', status_detail: 'expired' });

    const order = await mp.createOrder(orderInput('ord_exp2', pos.external_id, 'static'), { idempotencyKey: 'create:ord_exp2' });
    const scan = readyOrder(await sandbox.scan({ qr: pos.qr_code! }));
    await sandbox.expire({ orderId: order.id });
    expect((await mp.getOrder(order.id)).status).toBe('expired');
    expect((await failure(mp.cancelOrder(order.id, { idempotencyKey: 'cancel:ord_exp2' }))).code).toBe('order_expired');
    await expect(sandbox.pay({ checkoutId: scan.checkoutId })).rejects.toMatchObject({ code: 'order_not_payable' });
    expect(await sandbox.scan({ qr: pos.qr_code! })).toMatchObject({ status: 'waiting_for_order' });
  });

  it('searches by external_reference within dates', async () => {
    const pos = await newPos('ORDQ');
    const order = await mp.createOrder(orderInput('ord_search1', pos.external_id, 'dynamic'), { idempotencyKey: 'create:ord_search1' });
    const begin = new Date(Date.now() - 60_000).toISOString();
    const end = new Date(Date.now() + 60_000).toISOString();
    const found = await mp.searchOrders({ begin_date: begin, end_date: end, external_reference: 'ord_search1' });
    expect(found.data.map((o) => o.id)).toEqual([order.id]);
    expect(found.paging).toMatchObject({ total: 1 });
    const none = await mp.searchOrders({ begin_date: begin, end_date: end, external_reference: 'nope' });
    expect(none.data).toEqual([]);
    expect((await raw('GET', '/v1/orders?external_reference=ord_search1')).body.errors[0].code).toBe('required_properties');
  });

  it("the contingency search's batch: every order created in a window, page by page (OrdersApiModel.searchWindow)", async () => {
    const pos = await newPos('ORDW');
    const ids: string[] = [];
    for (let i = 0; i < 5; i++) ids.push((await mp.createOrder(orderInput(`ord_window${i}`, pos.external_id, 'dynamic'), { idempotencyKey: `create:ord_window${i}` })).id);
    const model = new OrdersApiModel({ mp, config: { catalog: [{ currency: 'ARS' }] } as never, now: Date.now });
    const w = { fromMs: Date.now() - 60_000, toMs: Date.now() + 60_000, limit: 2 };
    const seen: string[] = [];
    let offset = 0;
    let total = Infinity;
    while (offset < total) {
      const page = await model.searchWindow({ ...w, offset });
      total = page.total;
      offset += page.size;
      if (page.size === 0) break;
      seen.push(...page.states.map((st) => st.mpId));
    }
    for (const id of ids) expect(seen).toContain(id);
    expect(new Set(seen).size).toBe(seen.length);
  });

  it('refuses a bad webhook configuration at start and at runtime', async () => {
    await expect(startSandbox({ accessToken: TOKEN, collectorId: COLLECTOR, ordersWebhookUrl: 'relay/orders' })).rejects.toThrow(/ordersWebhookUrl/);
    await expect(startSandbox({ accessToken: TOKEN, collectorId: COLLECTOR, ordersSignature: 'valid' })).rejects.toThrow(/webhookSecret/);
    await expect(sandbox.configure({ panelNotificationUrl: 'ftp://x' })).rejects.toMatchObject({ code: 'bad_config' });
  });

  it('ids: malformed is 400 invalid_path_param, unknown is 404', async () => {
    expect((await failure(mp.getOrder('123'))).code).toBe('invalid_path_param');
    const missing = await failure(mp.getOrder(`ORD${'0'.repeat(26)}`));
    expect(missing).toBeInstanceOf(MpNotFoundError);
    expect(missing.code).toBe('order_not_found');
  });

  it('a create whose answer is lost (504 after the effect, or a dropped connection) and retried makes one order', async () => {
    const pos = await newPos('ORDF');
    for (const [ref, fault] of [
      ['ord_lost1', { status: 504 }],
      ['ord_lost2', { status: 502, dropConnection: true }],
    ] as const) {
      await sandbox.setFault({ endpoint: 'createOrder', afterEffect: true, ...fault });
      const order = await mp.createOrder(orderInput(ref, pos.external_id, 'dynamic'), { idempotencyKey: `create:${ref}` });
      const made = (await sandbox.orders()).filter((o) => o.external_reference === ref);
      expect(made.map((o) => o.id)).toEqual([order.id]);
    }
    const hits = (await sandbox.faults()).map((f) => f.hits);
    expect(hits).toEqual([1, 1]);
  });

  it('plain faults reach the new endpoints too', async () => {
    const pos = await newPos('ORDG');
    const order = await mp.createOrder(orderInput('ord_fault1', pos.external_id, 'dynamic'), { idempotencyKey: 'create:ord_fault1' });
    const fault = await sandbox.setFault({ endpoint: 'getOrder', status: 503, times: 2 });
    expect((await mp.getOrder(order.id)).id).toBe(order.id);
    expect((await sandbox.faults()).find((f) => f.id === fault.id)).toMatchObject({ hits: 2, remaining: 0 });
    const cut = await sandbox.setFault({ endpoint: 'getOrder', status: 503, dropConnection: true });
    expect((await mp.getOrder(order.id)).id).toBe(order.id); // a GET is retried after a network error
    expect((await sandbox.faults()).find((f) => f.id === cut.id)).toMatchObject({ hits: 1, dropConnection: true });
    await sandbox.setFault({ endpoint: 'putPosOrder', status: 500, times: 1 });
    await expect(mp.putPosOrder(COLLECTOR, 'STORE1', pos.external_id, v2Order('att-fault'))).resolves.toBeUndefined();
  });

  it('webhook signatures: verbatim by default, the old lowercase way, or none; replayed copies on request', async () => {
    const pos = await newPos('ORDW');
    const order = await mp.createOrder(orderInput('ord_sig1', pos.external_id, 'dynamic'), { idempotencyKey: 'create:ord_sig1' });
    const remote = connectSandbox(sandbox.url);
    try {
      await remote.configure({ ordersSignature: 'lowercase' });
      const lower = await remote.notifyOrder({ orderId: order.id, action: 'order.action_required' });
      const [d] = await lower.deliveries;
      expect(d).toMatchObject({ httpStatus: 200, orderId: order.id, signature: 'lowercase' });
      const hook = await waitFor((r) => r.headers['x-request-id'] === d!.requestId);
      expect(signatureOver(hook, order.id.toLowerCase())).toBe(true);
      expect(signatureOver(hook, order.id)).toBe(false);

      await remote.configure({ ordersSignature: 'none' });
      const unsigned = await sandbox.notifyOrder({ orderId: order.id, copies: 2 });
      const copies = await unsigned.deliveries;
      expect(copies).toHaveLength(2);
      expect(copies.every((c) => c.headers['x-signature'] === undefined)).toBe(true);
      expect(JSON.parse(copies[0]!.body!)).toMatchObject({ action: 'order.action_required', type: 'order' });
    } finally {
      await sandbox.configure({ ordersSignature: 'valid' });
    }
    expect((await remote.orders()).some((o) => o.id === order.id)).toBe(true);
  });
});
