// The relay's REST API for the rest of the business, as an OpenAPI 3.1 document (served at
// /api/openapi.json). The schemas here are also what test/relay-api.test.ts checks every answer
// against, so the document cannot drift from what the routes return.

const err = { $ref: '#/components/schemas/Error' };
const errors = {
  '401': { description: 'no key, an unknown or revoked key', content: { 'application/json': { schema: err } } },
  '403': { description: 'the key lacks the scope this route needs', content: { 'application/json': { schema: err } } },
  '429': { description: 'too many requests from this source', content: { 'application/json': { schema: err } } },
};
const json = (schema: object, description: string) => ({ description, content: { 'application/json': { schema } } });
const nullable = (type: string) => ({ type: [type, 'null'] });

export const OPENAPI = {
  openapi: '3.1.0',
  info: {
    title: 'qrkiosk relay API',
    version: '1.0.0',
    description:
      'Kiosks, orders with their timeline, and stock with pick lists, for integrations. Authenticate with `Authorization: Bearer qrk_…` (an API key made with `qrkiosk relay apikey add <name> --scopes …`); each route names the scope it needs. Money is integer minor units with its currency; times are epoch milliseconds.',
  },
  servers: [{ url: '/' }],
  security: [{ apiKey: [] }],
  paths: {
    '/api/v1/kiosks': {
      get: {
        operationId: 'listKiosks',
        summary: 'Every kiosk: online, last seen, screen, stock per slot with par and low marks, faults (scope: kiosks)',
        'x-scope': 'kiosks',
        responses: { '200': json({ type: 'object', required: ['kiosks'], additionalProperties: false, properties: { kiosks: { type: 'array', items: { $ref: '#/components/schemas/Kiosk' } } } }, 'the kiosks, by id'), ...errors },
      },
    },
    '/api/v1/orders': {
      get: {
        operationId: 'listOrders',
        summary: 'Recent orders, newest first (scope: orders)',
        'x-scope': 'orders',
        parameters: [
          { name: 'kiosk', in: 'query', required: false, schema: { type: 'string' } },
          { name: 'state', in: 'query', required: false, schema: { type: 'string' } },
          { name: 'limit', in: 'query', required: false, schema: { type: 'integer', minimum: 1, maximum: 500, default: 50 } },
        ],
        responses: {
          '200': json({ type: 'object', required: ['orders'], additionalProperties: false, properties: { orders: { type: 'array', items: { $ref: '#/components/schemas/Order' } } } }, 'the orders'),
          '400': json(err, 'a bad query parameter'),
          ...errors,
        },
      },
    },
    '/api/v1/orders/{orderId}': {
      get: {
        operationId: 'getOrder',
        summary: 'One order with its timeline: every step with its time and source (scope: orders)',
        'x-scope': 'orders',
        parameters: [{ name: 'orderId', in: 'path', required: true, schema: { type: 'string' } }],
        responses: {
          '200': json(
            {
              type: 'object',
              required: ['order', 'timeline'],
              additionalProperties: false,
              properties: { order: { $ref: '#/components/schemas/Order' }, timeline: { type: 'array', items: { $ref: '#/components/schemas/TimelineStep' } } },
            },
            'the order and its timeline, oldest step first',
          ),
          '404': json(err, 'no such order'),
          ...errors,
        },
      },
    },
    '/api/v1/sales': {
      get: {
        operationId: 'sales',
        summary: 'Sales per day (UTC), kiosk and product: vended orders by the day they were paid; default the last 7 days (scope: sales)',
        'x-scope': 'sales',
        parameters: [
          { name: 'from', in: 'query', required: false, schema: { type: 'string', format: 'date' } },
          { name: 'to', in: 'query', required: false, schema: { type: 'string', format: 'date' } },
          { name: 'kiosk', in: 'query', required: false, schema: { type: 'string' } },
        ],
        responses: {
          '200': json(
            {
              type: 'object',
              required: ['from', 'to', 'sales'],
              additionalProperties: false,
              properties: {
                from: { type: 'string' },
                to: { type: 'string' },
                sales: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['day', 'kioskId', 'sku', 'currency', 'units', 'amount'],
                    additionalProperties: false,
                    properties: { day: { type: 'string' }, kioskId: { type: 'string' }, sku: { type: 'string' }, currency: { type: 'string' }, units: { type: 'integer' }, amount: { type: 'integer', description: 'minor units' } },
                  },
                },
              },
            },
            'the sales, by day, kiosk, product, currency',
          ),
          '400': json(err, 'a bad day or range'),
          ...errors,
        },
      },
    },
    '/api/v1/stock/pick-list': {
      get: {
        operationId: 'pickList',
        summary: "What to load where on a route (config stock.routes): par level minus the count in each kiosk's latest report (scope: stock)",
        'x-scope': 'stock',
        parameters: [{ name: 'route', in: 'query', required: true, schema: { type: 'string' } }],
        responses: { '200': json({ $ref: '#/components/schemas/PickList' }, 'the pick list'), '404': json(err, 'no such route'), ...errors },
      },
    },
  },
  components: {
    securitySchemes: { apiKey: { type: 'http', scheme: 'bearer', description: 'an API key, qrk_…' } },
    schemas: {
      Error: {
        type: 'object',
        required: ['error'],
        additionalProperties: false,
        properties: { error: { type: 'object', required: ['code', 'message'], additionalProperties: false, properties: { code: { type: 'string' }, message: { type: 'string' } } } },
      },
      Slot: {
        type: 'object',
        required: ['slot', 'sku', 'count', 'par', 'low', 'jammed'],
        additionalProperties: false,
        properties: { slot: { type: 'integer' }, sku: { type: 'string' }, count: { type: 'integer', minimum: 0 }, par: { type: 'integer', minimum: 0 }, low: { type: 'boolean' }, jammed: { type: 'boolean' } },
      },
      Kiosk: {
        type: 'object',
        required: ['id', 'online', 'since', 'lastReportAt', 'screen', 'agentVersion', 'paymentModel', 'stock', 'faults'],
        additionalProperties: false,
        properties: {
          id: { type: 'string' },
          online: { type: 'boolean' },
          since: nullable('integer'),
          lastReportAt: nullable('integer'),
          screen: nullable('string'),
          agentVersion: nullable('string'),
          paymentModel: { type: 'string' },
          stock: { type: 'array', items: { $ref: '#/components/schemas/Slot' } },
          faults: { type: 'array', items: { type: 'object', required: ['code', 'message', 'since'], additionalProperties: false, properties: { code: { type: 'string' }, message: { type: 'string' }, since: { type: 'integer' } } } },
        },
      },
      Order: {
        type: 'object',
        required: ['id', 'kioskId', 'slot', 'sku', 'title', 'quantity', 'amount', 'currency', 'state', 'createdAt', 'updatedAt', 'paidAt', 'needsReview'],
        additionalProperties: false,
        properties: {
          id: { type: 'string' },
          kioskId: { type: 'string' },
          slot: nullable('integer'),
          sku: { type: 'string' },
          title: { type: 'string' },
          quantity: { type: 'integer' },
          amount: { type: 'integer', description: 'minor units' },
          currency: { type: 'string' },
          state: { type: 'string' },
          createdAt: { type: 'integer' },
          updatedAt: { type: 'integer' },
          paidAt: nullable('integer'),
          needsReview: nullable('string'),
        },
      },
      TimelineStep: {
        type: 'object',
        required: ['at', 'from', 'to', 'event', 'source', 'detail'],
        additionalProperties: false,
        properties: {
          at: { type: 'integer' },
          from: nullable('string'),
          to: { type: 'string' },
          event: { type: 'string' },
          source: { type: 'string', enum: ['kiosk', 'mercadopago', 'operator', 'relay'] },
          detail: nullable('string'),
        },
      },
      PickList: {
        type: 'object',
        required: ['route', 'kiosks', 'totals'],
        additionalProperties: false,
        properties: {
          route: { type: 'string' },
          kiosks: {
            type: 'array',
            items: {
              type: 'object',
              required: ['kioskId', 'known', 'statusAt', 'lines'],
              additionalProperties: false,
              properties: {
                kioskId: { type: 'string' },
                known: { type: 'boolean' },
                statusAt: nullable('integer'),
                lines: {
                  type: 'array',
                  items: {
                    type: 'object',
                    required: ['slot', 'sku', 'count', 'par', 'load'],
                    additionalProperties: false,
                    properties: { slot: { type: 'integer' }, sku: { type: 'string' }, count: { type: 'integer' }, par: { type: 'integer' }, load: { type: 'integer', minimum: 1 } },
                  },
                },
              },
            },
          },
          totals: { type: 'array', items: { type: 'object', required: ['sku', 'load'], additionalProperties: false, properties: { sku: { type: 'string' }, load: { type: 'integer' } } } },
        },
      },
    },
  },
} as const;
