import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { Catalog } from '../core/catalog.js';
import type { MercadoPagoApi } from '../mercadopago/types.js';
import { ActionError, ConsoleActions, type Actor } from '../relay/console/actions.js';
import { openChannel } from '../relay/console/channels.js';
import { orderDeliveries } from '../relay/console/order-webhooks.js';
import { loadRelayConfig, type RelayConfig } from '../relay/config.js';
import { PaymentModels } from '../relay/models/index.js';
import { OrderService } from '../relay/orders.js';
import { openRelayStore, type RelayStore } from '../relay/store/index.js';
import { createLogger } from '../runtime/log.js';

// `qrkiosk relay refund <order> [--amount N] --reason …`, `… refund retry <order>` and `… refund
// approve <order>`: the operator actions of relay/console/actions.ts from a shell. The CLI writes
// what the console writes (the order's move or the refund intents, and the audit row naming
// `cli:<user>`) in the relay's store; it never calls Mercado Pago itself: the running relay's
// refund worker finds the work on its next pass (within a few seconds) and asks Mercado Pago once
// per intent, with the intent's idempotency key.

export const REFUND_USAGE = `usage:
  qrkiosk relay refund <orderId> [--amount MINOR_UNITS] --reason TEXT --config FILE [--by NAME]   full refund, or part of it
  qrkiosk relay refund retry <orderId> [--refund ID] --reason TEXT --config FILE [--by NAME]     a refund Mercado Pago refused, as a new refund
  qrkiosk relay refund approve <orderId> [--reason TEXT] --config FILE [--by NAME]               a refund awaiting a second operator`;

interface Io {
  out(line: string): void;
  err(line: string): void;
}

/** Mercado Pago is the running relay's to call: the CLI only writes intents. */
const NO_MP = new Proxy({} as MercadoPagoApi, {
  get: (_t, name) => () => Promise.reject(new Error(`the CLI does not call Mercado Pago (${String(name)}): the running relay does`)),
});

/** The order service over the CLI's store handle: the same checked moves, order webhooks and all. */
function cliOrders(config: RelayConfig, store: RelayStore, now: () => number): OrderService {
  const channels = config.notify.channels.map(openChannel);
  return new OrderService({
    store,
    catalog: () => Catalog.fromInput(config.catalog),
    orders: config.orders,
    collectorId: config.mercadopago.collectorId,
    logger: createLogger('relay-cli'),
    now,
    isOnline: () => false,
    flush: () => undefined,
    onRefundNeeded: () => undefined, // the running relay's periodic pass picks the refund up
    models: new PaymentModels({ mp: NO_MP, config, now }),
    onOfferWork: () => undefined,
    orderDeliveries: (order, at) => orderDeliveries(channels, order, at),
  });
}

export async function refundCommand(args: string[], io: Io): Promise<number> {
  const { values, positionals } = parseArgs({
    args,
    options: { config: { type: 'string' }, amount: { type: 'string' }, reason: { type: 'string' }, refund: { type: 'string' }, by: { type: 'string' }, json: { type: 'boolean' } },
    allowPositionals: true,
    strict: true,
  });
  const verb = positionals[0] === 'retry' || positionals[0] === 'approve' ? positionals[0] : 'refund';
  const orderId = verb === 'refund' ? positionals[0] : positionals[1];
  if (!orderId || positionals.length > (verb === 'refund' ? 1 : 2)) throw new Error(REFUND_USAGE);
  if (typeof values.config !== 'string' || !values.config) throw new Error('--config FILE is required (the relay YAML)');
  if (values.amount !== undefined && !/^\d+$/.test(values.amount)) throw new Error('--amount is a whole number of minor units (e.g. 50000 for 500.00)');
  if (values.refund !== undefined && !/^\d+$/.test(values.refund)) throw new Error('--refund is a refund id (qrkiosk relay order <id> lists them)');
  const config = loadRelayConfig(values.config);
  // the machine's administrator (root or the relay's user on SSH), named in the audit
  const actor: Actor = { operatorId: null, name: `cli:${values.by || process.env.SUDO_USER || userInfo().username}`, role: 'admin' };
  const store = await openRelayStore(config.store);
  try {
    const actions = new ConsoleActions({
      store,
      orders: cliOrders(config, store, Date.now),
      commands: { issue: () => Promise.reject(new Error('kiosk commands: use qrkiosk relay kiosk …')) },
      logger: createLogger('relay-cli'),
      now: Date.now,
      approvalAbove: config.consoleWeb.refundApprovalAbove,
    });
    if (verb === 'retry') {
      const r = await actions.retryRefund(actor, orderId, values.reason, values.refund === undefined ? undefined : Number(values.refund));
      if (values.json) io.out(JSON.stringify(r));
      else for (const x of r.retried) io.out(`order ${orderId}: refund ${x.refundId} of payment ${x.paymentId} retried as a new refund by ${actor.name}; the running relay asks Mercado Pago`);
      return 0;
    }
    const r = verb === 'approve' ? await actions.approveRefund(actor, orderId, values.reason) : await actions.refund(actor, orderId, values.reason, { amount: values.amount === undefined ? undefined : Number(values.amount) });
    if (values.json) io.out(JSON.stringify({ state: r.state, amount: r.amount, orderState: r.order.state }));
    else if (r.state === 'awaiting_approval') io.out(`order ${orderId}: refund of ${r.amount} ${r.order.currency} by ${actor.name} awaits a second operator's approval (qrkiosk relay refund approve ${orderId})`);
    else io.out(`order ${orderId}: ${r.state === 'partial' ? 'partial refund' : 'refund'} of ${r.amount} ${r.order.currency} by ${actor.name}; the running relay asks Mercado Pago`);
    return 0;
  } catch (err) {
    if (err instanceof ActionError) throw new Error(err.message);
    throw err;
  } finally {
    await store.close();
  }
}
