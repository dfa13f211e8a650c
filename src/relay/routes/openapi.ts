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
      'Kiosks, orders with their timeline and refunds, sales, stock with pick lists; refunds (full, partial, retry, approve) and price, catalog and stock commands, for integrations. Authenticate with `Authorization: Bearer qrk_…` (an API key made with `qrkiosk relay apikey add <name> --scopes …`); each route names the scope it needs. Money is integer minor units with its currency; times are epoch milliseconds.',
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
              required: ['order', 'timeline', 'refunds'],
              additionalProperties: false,
              properties: {
                order: { $ref: '#/components/schemas/Order' },
                timeline: { type: 'array', items: { $ref: '#/components/schemas/TimelineStep' } },
                refunds: { type: 'array', items: { $ref: '#/components/schemas/Refund' } },
              },
            },
            'the order, its timeline (oldest step first) and its refunds (each partial refund and each attempt its own row)',
          ),
          '404': json(err, 'no such order'),
          ...errors,
        },
      },
    },
    '/api/v1/orders/{orderId}/refunds': {
      post: {
        operationId: 'refundOrder',
        summary:
          'Refund a dispensed (vended) order with a reason: all that is still refundable (no amount), or part of it (amount, minor units); several partial refunds may follow each other up to the order amount. Above the configured approval amount the refund waits for a second approver (another key or operator). Send Idempotency-Key to make a repeated call answer the first (scope: refunds)',
        'x-scope': 'refunds',
        parameters: [
          { name: 'orderId', in: 'path', required: true, schema: { type: 'string' } },
          { name: 'Idempotency-Key', in: 'header', required: false, schema: { type: 'string', pattern: '^[A-Za-z0-9._:-]{1,100}$' } },
        ],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['reason'],
                additionalProperties: false,
                properties: { reason: { type: 'string', minLength: 1, maxLength: 500 }, amount: { type: 'integer', minimum: 1, description: 'minor units; absent: all that is still refundable' } },
              },
            },
          },
        },
        responses: {
          '202': json({ $ref: '#/components/schemas/RefundAccepted' }, 'accepted: the relay asks Mercado Pago once (GET the order to follow it)'),
          '400': json(err, 'no reason, or an amount that is not a whole number above 0 or above what is refundable'),
          '404': json(err, 'no such order'),
          '409': json(err, 'the order is not vended, nothing is left to refund, or a refund awaits approval'),
          ...errors,
        },
      },
    },
    '/api/v1/orders/{orderId}/refunds/retry': {
      post: {
        operationId: 'retryRefund',
        summary:
          "Try again a refund Mercado Pago refused (failed, rejected, cancelled): a new refund with a new idempotency key, same payment and amount; only while the refund's last attempt was refused, so two calls at once make one new attempt (scope: refunds)",
        'x-scope': 'refunds',
        parameters: [{ name: 'orderId', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: { type: 'object', required: ['reason'], additionalProperties: false, properties: { reason: { type: 'string', minLength: 1, maxLength: 500 }, refundId: { type: 'integer', description: 'which refund (default: every refused one of the order)' } } },
            },
          },
        },
        responses: {
          '202': json(
            {
              type: 'object',
              required: ['retried'],
              additionalProperties: false,
              properties: { retried: { type: 'array', items: { type: 'object', required: ['refundId', 'paymentId', 'amount'], additionalProperties: false, properties: { refundId: { type: 'integer' }, paymentId: { type: 'string' }, amount: nullable('integer') } } } },
            },
            'the refused refunds tried again',
          ),
          '400': json(err, 'no reason'),
          '404': json(err, 'no such order'),
          '409': json(err, 'no refused refund to retry (it succeeded, is on its way, or was retried already)'),
          ...errors,
        },
      },
    },
    '/api/v1/orders/{orderId}/refunds/approve': {
      post: {
        operationId: 'approveRefund',
        summary: 'Approve the refund awaiting a second approver; whoever asked for it cannot (scope: refunds)',
        'x-scope': 'refunds',
        parameters: [{ name: 'orderId', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: { required: false, content: { 'application/json': { schema: { type: 'object', additionalProperties: false, properties: { reason: { type: 'string', maxLength: 500 } } } } } },
        responses: {
          '202': json({ $ref: '#/components/schemas/RefundAccepted' }, 'approved: the relay asks Mercado Pago once'),
          '400': json(err, 'a bad reason'),
          '404': json(err, 'no such order'),
          '409': json(err, 'no refund of the order awaits approval'),
          ...errors,
        },
      },
    },
    '/api/v1/kiosks/{kioskId}/commands': {
      post: {
        operationId: 'kioskCommand',
        summary:
          "A signed command to a kiosk, sent while it is connected until it expires: price.set and catalog.set (scope: prices), stock.set (scope: stock); the kiosk's answer shows in GET /api/v1/kiosks (scope: prices, or stock for stock.set)",
        'x-scope': 'prices',
        parameters: [{ name: 'kioskId', in: 'path', required: true, schema: { type: 'string' } }],
        requestBody: {
          required: true,
          content: {
            'application/json': {
              schema: {
                type: 'object',
                required: ['action', 'reason'],
                additionalProperties: false,
                properties: {
                  reason: { type: 'string', minLength: 1, maxLength: 500 },
                  action: {
                    description: 'price.set {kind, sku, price (minor units), currency}; catalog.set {kind, catalog: [{sku, name, price, currency}]}; stock.set {kind, slots: [{slot, count}]} (docs/console-kiosk.md)',
                    type: 'object',
                    required: ['kind'],
                    properties: { kind: { type: 'string', enum: ['price.set', 'catalog.set', 'stock.set'] } },
                  },
                },
              },
            },
          },
        },
        responses: {
          '202': json({ type: 'object', required: ['commandId'], additionalProperties: false, properties: { commandId: { type: 'string' } } }, 'the command, recorded and signed'),
          '400': json(err, 'an unknown kind, a bad command or no reason'),
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
      Refund: {
        type: 'object',
        required: ['id', 'paymentId', 'reason', 'status', 'requestedAmount', 'amount', 'currency', 'requestedAt', 'completedAt', 'error'],
        additionalProperties: false,
        properties: {
          id: { type: 'integer' },
          paymentId: { type: 'string' },
          reason: { type: 'string', enum: ['order', 'surplus', 'partial'], description: 'order: the whole order; partial: an operator refunded part of it; surplus: a payment the order did not need' },
          status: { type: 'string', description: 'requested (Mercado Pago not answered yet), approved, in_process, external, or refused: failed, rejected, cancelled (retry with /refunds/retry)' },
          requestedAmount: { ...nullable('integer'), description: 'minor units asked; null: all that remained of the payment' },
          amount: { ...nullable('integer'), description: 'minor units Mercado Pago refunded' },
          currency: { type: 'string' },
          requestedAt: { type: 'integer' },
          completedAt: nullable('integer'),
          error: nullable('string'),
        },
      },
      RefundAccepted: {
        type: 'object',
        required: ['state', 'amount', 'currency', 'order'],
        additionalProperties: false,
        properties: {
          state: { type: 'string', enum: ['refunding', 'partial', 'awaiting_approval'], description: 'refunding: the whole order; partial: part of it, the order stays vended; awaiting_approval: a second approver must approve' },
          amount: { type: 'integer', description: 'minor units' },
          currency: { type: 'string' },
          order: { $ref: '#/components/schemas/Order' },
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
