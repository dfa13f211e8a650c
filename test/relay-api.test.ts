import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { Ajv2020 } from 'ajv/dist/2020.js';
import { afterEach, describe, expect, it } from 'vitest';
import { relayMain } from '../src/cli/relay-commands.js';
import { OPENAPI } from '../src/relay/routes/openapi.js';
import { CATALOG, COLLECTOR_ID, kioskWithOrder, PUBLIC_URL, startHarness, type Harness } from './relay-helpers.js';

// The REST API for integrations (src/relay/routes/api.ts): keys made by the real CLI, scopes
// enforced, and every route of the served OpenAPI document called and its answer checked against
// the schema the document gives for that status.

let h: Harness | undefined;
afterEach(async () => {
  await h?.cleanup();
  h = undefined;
});

type Operation = { 'x-scope'?: string; parameters?: Array<{ name: string; in: string; required: boolean }>; requestBody?: { content: Record<string, { schema: object }> }; responses: Record<string, { content?: Record<string, { schema: object }> }> };
type Doc = Omit<typeof OPENAPI, 'paths'> & { paths: Record<string, Partial<Record<'get' | 'post', Operation>>> };

function ajvFor(doc: Doc) {
  const ajv = new Ajv2020({ strict: true, allErrors: true, strictRequired: true });
  ajv.addKeyword('x-scope');
  ajv.addKeyword('components'); // the document's own container for the schemas the $refs point into
  ajv.addSchema({ $id: 'openapi', components: doc.components } as object);
  return ajv;
}

/** The schema a response of this path/method/status must match, with $refs into the document. */
function responseSchema(doc: Doc, path: string, status: number, method: 'get' | 'post' = 'get'): object {
  const r = doc.paths[path]![method]!.responses[String(status)];
  if (!r?.content) throw new Error(`${path} answered ${status}, which its OpenAPI entry does not document`);
  const s = JSON.stringify(r.content['application/json']!.schema).replaceAll('"#/components/', '"openapi#/components/');
  return JSON.parse(s) as object;
}

async function cli(...args: string[]): Promise<{ code: number; out: string[]; err: string[] }> {
  const out: string[] = [];
  const err: string[] = [];
  const code = await relayMain(args, { out: (l) => out.push(l), err: (l) => err.push(l) });
  return { code, out, err };
}

function configFile(hh: Harness): string {
  const file = join(hh.dir, 'relay-cli.yaml');
  writeFileSync(file, JSON.stringify({ publicUrl: PUBLIC_URL, store: hh.config.store, mercadopago: { collectorId: COLLECTOR_ID, accessToken: 'T' }, catalog: CATALOG, stock: hh.config.stock }));
  return file;
}

async function newKey(file: string, name: string, scopes: string): Promise<string> {
  const r = await cli('apikey', 'add', name, '--scopes', scopes, '--config', file);
  expect(r.code, r.err.join('\n')).toBe(0);
  return /(qrk_\S+)/.exec(r.out[0]!)![1]!;
}

async function get(path: string, key?: string) {
  const res = await fetch(`${h!.relay.url}${path}`, { headers: key ? { authorization: `Bearer ${key}` } : {} });
  return { status: res.status, body: (await res.json()) as unknown };
}

describe('REST API', { timeout: 60_000 }, () => {
  it('the served OpenAPI document is 3.1 and its schemas compile in a JSON Schema 2020-12 validator (strict)', async () => {
    h = await startHarness();
    const { status, body } = await get('/api/openapi.json');
    expect(status).toBe(200);
    const doc = body as Doc;
    expect(doc.openapi).toBe('3.1.0');
    const ajv = ajvFor(doc);
    for (const name of Object.keys(doc.components.schemas)) expect(() => ajv.getSchema(`openapi#/components/schemas/${name}`)).not.toThrow();
    for (const [path, item] of Object.entries(doc.paths)) {
      for (const [method, op] of Object.entries(item) as Array<['get' | 'post', Operation]>) {
        for (const [status, r] of Object.entries(op.responses)) {
          expect(() => ajv.compile(responseSchema(doc, path, Number(status), method)), `${method} ${path} ${status}`).not.toThrow();
          expect(r.content).toBeDefined();
        }
        if (op.requestBody) expect(() => ajv.compile(op.requestBody!.content['application/json']!.schema), `${method} ${path} body`).not.toThrow();
        for (const p of op.parameters ?? []) if (p.in === 'path') expect(path).toContain(`{${p.name}}`);
        expect(op['x-scope'], `${method} ${path} names its scope`).toBeDefined();
      }
    }
  });

  it('every route in the document answers as documented; keys without the scope are refused (403), no or revoked key 401', async () => {
    h = await startHarness({ stock: { routes: { north: ['k1', 'k-never-seen'] }, lowPercent: 25 } });
    const file = configFile(h);
    const all = await newKey(file, 'erp', 'kiosks,orders,sales,stock');
    const salesOnly = await newKey(file, 'bi', 'sales');
    const stockOnly = await newKey(file, 'inventory', 'stock');
    expect((await cli('apikey', 'add', 'erp', '--scopes', 'orders', '--config', file)).err.join()).toMatch(/exists already/);
    expect((await cli('apikey', 'add', 'x', '--scopes', 'orders,refundz', '--config', file)).err.join()).toMatch(/not: refundz/);

    // a kiosk that reported its stock, with a par level set for one slot, and an order with a timeline
    const kiosk = await kioskWithOrder(h, 'ord_api00001');
    await h.relay.store.saveStatus({
      kioskId: 'k1',
      receivedAt: h.clock.t,
      status: {
        at: h.clock.t, agentVersion: '1.2.3', startedAt: h.clock.t - 1000, paymentModel: 'unattended', screen: 'idle', state: 'idle', service: null, updating: false, openOrder: null,
        stock: [
          { slot: 1, sku: 'COLA', count: 2, full: 10, jammed: false },
          { slot: 2, sku: 'AGUA', count: 7, full: 8, jammed: false },
        ],
        prices: [], faults: { active: [], recent: [] }, outboxPending: 0, truncated: false,
      } as never,
    });
    await h.relay.store.setParLevel('k1', 2, 12);

    const doc = (await get('/api/openapi.json')).body as Doc;
    const ajv = ajvFor(doc);
    const answers: Record<string, unknown> = {};
    for (const [path, item] of Object.entries(doc.paths)) {
      if (!item.get) continue; // the POST routes: below
      const url = path.replace('{orderId}', 'ord_api00001') + (item.get!.parameters?.some((p) => p.name === 'route' && p.required) ? '?route=north' : '');
      const { status, body } = await get(url, all);
      expect(status, `${url}: ${JSON.stringify(body)}`).toBe(200);
      const validate = ajv.compile(responseSchema(doc, path, 200));
      expect(validate(body), `${url}: ${JSON.stringify(validate.errors)}`).toBe(true);
      answers[path] = body;
      // and the documented refusals: no key, and a key without this route's scope
      const noKey = await get(url);
      expect(noKey.status).toBe(401);
      expect(ajv.compile(responseSchema(doc, path, 401))(noKey.body)).toBe(true);
      const wrong = await get(url, (item.get as { 'x-scope'?: string })['x-scope'] === 'sales' ? stockOnly : salesOnly);
      expect(wrong.status).toBe(403);
      expect(ajv.compile(responseSchema(doc, path, 403))(wrong.body)).toBe(true);
    }
    // the POST routes: no key 401, a key without the route's scope 403, a missing order 404, a
    // refund of an order that is not vended 409, a bad body 400; each answer as documented
    const refunds = await newKey(file, 'accounting', 'refunds,orders');
    const prices = await newKey(file, 'pricing', 'prices');
    const post = async (path: string, body: object, key?: string) => {
      const res = await fetch(`${h!.relay.url}${path}`, { method: 'POST', headers: { 'content-type': 'application/json', ...(key ? { authorization: `Bearer ${key}` } : {}) }, body: JSON.stringify(body) });
      return { status: res.status, body: (await res.json()) as unknown };
    };
    const posts = Object.entries(doc.paths).filter(([, item]) => item.post);
    expect(posts.map(([p]) => p).sort()).toEqual(['/api/v1/kiosks/{kioskId}/commands', '/api/v1/orders/{orderId}/refunds', '/api/v1/orders/{orderId}/refunds/approve', '/api/v1/orders/{orderId}/refunds/retry']);
    for (const [path, item] of posts) {
      const url = path.replace('{orderId}', 'ord_api00001').replace('{kioskId}', 'k1');
      const body = path.includes('/commands') ? { action: { kind: 'price.set', sku: 'COLA', price: 1600, currency: 'ARS' }, reason: 'new price list' } : { reason: 'customer called' };
      const check = (status: number, answer: unknown) => {
        const validate = ajv.compile(responseSchema(doc, path, status, 'post'));
        expect(validate(answer), `${url} ${status}: ${JSON.stringify(validate.errors)}`).toBe(true);
      };
      const noKey = await post(url, body);
      expect(noKey.status).toBe(401);
      check(401, noKey.body);
      const wrong = await post(url, body, item.post!['x-scope'] === 'refunds' ? prices : refunds);
      expect(wrong.status, JSON.stringify(wrong.body)).toBe(403);
      check(403, wrong.body);
      if (path.includes('{orderId}')) {
        const missing = await post(path.replace('{orderId}', 'ord_nope'), body, refunds);
        expect(missing.status).toBe(404);
        check(404, missing.body);
        const notNow = await post(url, body, refunds); // the order is pending: nothing to refund, retry or approve
        expect(notNow.status, JSON.stringify(notNow.body)).toBe(409);
        check(409, notNow.body);
        const noReason = await post(url, {}, refunds);
        expect([400, 409]).toContain(noReason.status); // approve needs no reason: its 409 comes first
        check(noReason.status, noReason.body);
      } else {
        const bad = await post(url, { action: { kind: 'price.set', sku: 'COLA', price: -1, currency: 'ARS' }, reason: 'x' }, prices);
        expect(bad.status).toBe(400);
        check(400, bad.body);
        // the scope follows the command's kind: stock.set needs `stock`; service is not the API's
        expect((await post(url, { action: { kind: 'stock.set', slots: [{ slot: 1, count: 3 }] }, reason: 'counted' }, prices)).status).toBe(403);
        const svc = await post(url, { action: { kind: 'service', inService: false }, reason: 'x' }, prices);
        expect(svc.status).toBe(400);
        check(400, svc.body);
        const ok = await post(url, body, prices);
        expect(ok.status, JSON.stringify(ok.body)).toBe(202);
        check(202, ok.body);
        expect((await h.relay.store.recentOperatorAudit(1))[0]).toMatchObject({ actor: 'api:pricing', action: 'kiosk.price.set', reason: 'new price list' });
      }
    }
    // nothing reached Mercado Pago
    expect(h.mp.refundCalls()).toEqual([]);

    // what the answers say
    const k1 = (answers['/api/v1/kiosks'] as { kiosks: Array<{ id: string; online: boolean; stock: Array<{ slot: number; par: number; low: boolean }> }> }).kiosks[0]!;
    expect(k1).toMatchObject({ id: 'k1', online: true });
    expect(k1.stock).toEqual([
      { slot: 1, sku: 'COLA', count: 2, par: 10, low: true, jammed: false },
      { slot: 2, sku: 'AGUA', count: 7, par: 12, low: false, jammed: false },
    ]);
    expect(answers['/api/v1/stock/pick-list']).toMatchObject({
      route: 'north',
      kiosks: [
        { kioskId: 'k1', known: true, lines: [{ slot: 1, sku: 'COLA', count: 2, par: 10, load: 8 }, { slot: 2, sku: 'AGUA', count: 7, par: 12, load: 5 }] },
        { kioskId: 'k-never-seen', known: false, statusAt: null, lines: [] },
      ],
      totals: [{ sku: 'AGUA', load: 5 }, { sku: 'COLA', load: 8 }],
    });
    // the CLI computes the same pick list
    const printed = await cli('stock', 'pick-list', 'north', '--config', file, '--json');
    expect(JSON.parse(printed.out.join('\n'))).toEqual(answers['/api/v1/stock/pick-list']);
    expect((await cli('stock', 'par', 'k1', '2', '0', '--config', file)).code).toBe(0);
    expect(((await get('/api/v1/stock/pick-list?route=north', all)).body as { totals: unknown }).totals).toEqual([{ sku: 'AGUA', load: 1 }, { sku: 'COLA', load: 8 }]);
    const one = answers['/api/v1/orders/{orderId}'] as { order: { id: string; state: string }; timeline: Array<{ event: string; source: string }> };
    expect(one.order).toMatchObject({ id: 'ord_api00001', state: 'pending' });
    expect(one.timeline[0]).toMatchObject({ event: 'created', source: 'kiosk' });

    // documented errors
    const missing = await get('/api/v1/orders/ord_nope', all);
    expect(missing.status).toBe(404);
    expect(ajv.compile(responseSchema(doc, '/api/v1/orders/{orderId}', 404))(missing.body)).toBe(true);
    expect((await get('/api/v1/stock/pick-list?route=south', all)).status).toBe(404);
    expect((await get('/api/v1/orders?limit=0', all)).status).toBe(400);
    expect((await get('/api/v1/sales?from=2026-13-01', all)).status).toBe(400);
    expect(answers['/api/v1/sales']).toMatchObject({ sales: [] }); // nothing vended yet (the store test covers the sums)

    // revoked by the CLI: refused at the next request
    expect((await cli('apikey', 'revoke', 'erp', '--config', file)).code).toBe(0);
    expect((await get('/api/v1/kiosks', all)).status).toBe(401);
    const listed = await cli('apikey', 'list', '--config', file, '--json');
    expect((JSON.parse(listed.out.join('\n')) as Array<{ name: string; revokedAt: number | null }>).map((k) => [k.name, k.revokedAt !== null])).toEqual([
      ['erp', true],
      ['bi', false],
      ['inventory', false],
      ['accounting', false],
      ['pricing', false],
    ]);
    expect(listed.out.join()).not.toMatch(/secretHash/);
    kiosk.close();
  });

  it('/api is rate limited per source beyond its burst, with the documented error', async () => {
    h = await startHarness({ limits: { api: { perSecond: 0.001, burst: 5 } } });
    const statuses: number[] = [];
    let last: unknown;
    for (let i = 0; i < 8; i++) {
      const r = await get('/api/v1/kiosks');
      statuses.push(r.status);
      last = r.body;
    }
    expect(statuses).toEqual([401, 401, 401, 401, 401, 429, 429, 429]);
    const doc = OPENAPI as unknown as Doc;
    expect(ajvFor(doc).compile(responseSchema(doc, '/api/v1/kiosks', 429))(last)).toBe(true);
  });
});
