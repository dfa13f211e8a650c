import { parseArgs, type ParseArgsConfig } from 'node:util';
import { loadRelayConfig, type RelayConfig } from '../relay/config.js';
import { startRelay } from '../relay/server.js';
import { openRelayStore, posUrl, type RelayStore } from '../relay/store/index.js';
import { MercadoPagoClient } from '../mercadopago/client.js';
import { requireAccessToken } from '../relay/config.js';
import { defaultModelFor, describeModes, modelLabel, parseModelChoice, ModelChoiceError } from '../relay/models/modes.js';
import { provisionKiosk, ProvisionError, type ProvisionRow } from '../relay/provision.js';
import { watchConfigCatalog } from '../relay/config-watch.js';
import { ORDER_STATES, type OrderState } from '../core/relay-order.js';
import { formatMoney } from '../core/money.js';
import { createLogger } from '../runtime/log.js';
import { SystemdNotifier } from '../runtime/sd-notify.js';
import { commandKeyPath, loadOrCreateCommandKey } from '../relay/command-key.js';

// `qrkiosk relay ...`: run the relay, and provision kiosks in its database. argv is what follows
// "relay" on the command line. Every failure is one line on stderr and exit code 2, because these
// are run by a person on SSH who needs to know what to fix, not a stack trace.

const USAGE = `usage:
  qrkiosk relay --config FILE
  qrkiosk relay kiosk add <id> --config FILE --pos <externalId> [--model MODEL[/MODE]] [--store <storeExternalId>] [--generation v1|v2] [--qr <payload>]
  qrkiosk relay kiosk set-model <id> MODEL[/MODE] --config FILE
  qrkiosk relay kiosk list --config FILE [--json]
  qrkiosk relay kiosk set-qr <id> <payload> --config FILE
  qrkiosk relay kiosk rotate-token <id> --config FILE   (a running relay disconnects the old token at once)
  qrkiosk relay kiosk revoke <id> --config FILE   the kiosk is disconnected and refused until rotate-token
  qrkiosk relay kiosk service <id> in|out --reason TEXT --config FILE   signed commands, sent by the running relay
  qrkiosk relay kiosk stock <id> <slot> <count> | test-vend <id> <slot> | price <id> <sku> <amount> --config FILE
  qrkiosk relay kiosk commands <id> --config FILE [--json]   the commands sent to a kiosk and their answers
  qrkiosk relay orders --config FILE [--kiosk ID] [--state STATE] [--review] [--limit N] [--json]
  qrkiosk relay order <orderId> --config FILE [--json]
  qrkiosk relay provision <id> --config FILE --store <storeExternalId> [--store-name NAME] [--pos-name NAME] [--category MCC]
  qrkiosk relay dex list|show|export ...   the machines' own audits (qrkiosk relay dex help)
  qrkiosk relay operator add|list|disable|enable ...   console accounts (qrkiosk relay operator help)
  qrkiosk relay review clear <orderId> --decision TEXT --reason TEXT --config FILE
  qrkiosk relay refund <orderId> [--amount MINOR_UNITS] --reason TEXT --config FILE   full or partial refund of a dispensed order
  qrkiosk relay refund retry|approve <orderId> --reason TEXT --config FILE   retry a refused refund; approve one awaiting a second operator
  qrkiosk relay command-key --config FILE   the line for every kiosk's agent.yaml (relay.commandKey); makes the key if missing
  qrkiosk relay stock par <kiosk> <slot> <par> | pick-list <route> --config FILE   par levels, what to load where
  qrkiosk relay apikey add <name> --scopes a,b | list | revoke <id|name> --config FILE   keys for /api/v1
  qrkiosk relay migrate --from sqlite:FILE --to postgres://… [--force]   move a stopped relay to PostgreSQL

payment models (MODEL/MODE): ${describeModes()}
  default for a new kiosk: orders/dynamic where the site has the Orders API QR, else dynamic/online`;

class UsageError extends Error {
  override name = 'UsageError';
}

export interface RelayCliIo {
  out(line: string): void;
  err(line: string): void;
}

const defaultIo: RelayCliIo = {
  out: (l) => process.stdout.write(`${l}\n`),
  err: (l) => process.stderr.write(`${l}\n`),
};

export async function relayMain(argv: string[], io: RelayCliIo = defaultIo): Promise<number> {
  const args = argv[0] === 'relay' ? argv.slice(1) : argv;
  try {
    if (args[0] === 'kiosk') return await kioskCommand(args.slice(1), io);
    if (args[0] === 'provision') return await provision(args.slice(1), io);
    if (args[0] === 'orders') return await listOrders(args.slice(1), io);
    if (args[0] === 'order') return await showOrder(args.slice(1), io);
    if (args[0] === 'migrate') return await (await import('./relay-migrate-command.js')).migrateCommand(args.slice(1), io);
    if (args[0] === 'dex') return await (await import('./relay-dex-commands.js')).dexCommand(args.slice(1), io);
    if (args[0] === 'command-key') return commandKey(args.slice(1), io);
    if (args[0] === 'stock') return await (await import('./relay-stock-commands.js')).stockCommand(args.slice(1), io);
    if (args[0] === 'apikey') return await (await import('./relay-apikey-commands.js')).apikeyCommand(args.slice(1), io);
    if (args[0] === 'operator') return await (await import('./relay-operator-commands.js')).operatorCommand(args.slice(1), io);
    if (args[0] === 'refund') return await (await import('./relay-refund-commands.js')).refundCommand(args.slice(1), io);
    if (args[0] === 'review') return await (await import('./relay-operator-commands.js')).reviewCommand(args.slice(1), io);
    if (args[0] === 'help' || args[0] === '--help' || args[0] === '-h') {
      io.out(USAGE);
      return 0;
    }
    return await runRelay(args, io);
  } catch (err) {
    const msg = err instanceof Error ? err.message : String(err);
    io.err(`qrkiosk relay: ${msg.replace(/\s*\n\s*/g, '; ')}`);
    return 2;
  }
}

type Options = NonNullable<ParseArgsConfig['options']>;

function parse<O extends Options>(args: string[], options: O) {
  try {
    return parseArgs({ args, options, allowPositionals: true, strict: true });
  } catch (err) {
    throw new UsageError(`${(err as Error).message.split('\n')[0]} (see qrkiosk relay help)`);
  }
}

function configOf(values: Record<string, unknown>): RelayConfig {
  const path = values.config;
  if (typeof path !== 'string' || !path) throw new UsageError('--config FILE is required (the relay YAML)');
  return loadRelayConfig(path);
}

async function runRelay(args: string[], io: RelayCliIo): Promise<number> {
  const { values, positionals } = parse(args, { config: { type: 'string' } });
  if (positionals.length) throw new UsageError(`unexpected "${positionals[0]}"\n${USAGE}`);
  const config = configOf(values);
  const logger = createLogger('relay');
  const relay = await startRelay(config, { logger });
  io.err(`relay listening on ${relay.url}; Mercado Pago reaches it at ${config.publicUrl}`);
  const catalogWatch = watchConfigCatalog(values.config as string, config, (catalog) => relay.setCatalog(catalog), logger);
  const systemd = new SystemdNotifier(logger);
  // the store answering (a count of pending orders) is part of being healthy
  const health = async () => `${relay.hub.onlineCount()} kiosks online; ${await relay.store.countOrders('pending')} pending orders`;
  systemd.ready(await health());
  systemd.startWatchdog(async () => {
    try {
      systemd.status(await health());
      return undefined;
    } catch (err) {
      return `the relay store does not answer: ${(err as Error).message}`;
    }
  });
  const signal = await new Promise<string>((resolve) => {
    const stop = (sig: string) => {
      io.err(`${sig}: stopping the relay`);
      process.off('SIGINT', onInt);
      process.off('SIGTERM', onTerm);
      resolve(sig);
    };
    const onInt = () => stop('SIGINT');
    const onTerm = () => stop('SIGTERM');
    process.on('SIGINT', onInt);
    process.on('SIGTERM', onTerm);
  });
  systemd.stopping();
  catalogWatch.close();
  // SIGTERM (systemd, docker): /readyz answers 503 for observability.drainSeconds first, so the
  // load balancer moves kiosks and traffic away before the sockets close. Ctrl-C stops at once.
  if (signal === 'SIGTERM') await relay.ops.drain();
  await relay.close();
  systemd.close();
  return 0;
}

/**
 * `qrkiosk relay command-key`: the public half of the relay's command signing key, as the line a
 * kiosk's agent.yaml needs. Makes the key (0600) when it does not exist yet, like the relay's
 * first start does.
 */
function commandKey(args: string[], io: RelayCliIo): number {
  const { values, positionals } = parse(args, { config: { type: 'string' } });
  if (positionals.length) throw new UsageError(`unexpected "${positionals[0]}": usage: qrkiosk relay command-key --config FILE`);
  const config = configOf(values);
  const path = commandKeyPath(config);
  const { signer, created } = loadOrCreateCommandKey(path);
  if (created) io.err(`made the command signing key ${path} (mode 0600): back it up; every kiosk trusts its public half`);
  io.out(`commandKey: ${signer.publicKeyText}`);
  io.err(`key id ${signer.keyId}: put the line above in the relay section of every kiosk's agent.yaml (relay.commandKey)`);
  return 0;
}

async function withStore<T>(config: RelayConfig, fn: (store: RelayStore) => Promise<T>): Promise<T> {
  const store = await openRelayStore(config.store);
  try {
    return await fn(store);
  } finally {
    await store.close();
  }
}

async function kioskCommand(args: string[], io: RelayCliIo): Promise<number> {
  const [sub, ...rest] = args;
  switch (sub) {
    case 'add': {
      const { values, positionals } = parse(rest, {
        config: { type: 'string' },
        pos: { type: 'string' },
        model: { type: 'string' },
        store: { type: 'string' },
        generation: { type: 'string' },
        qr: { type: 'string' },
      });
      const id = positionals[0];
      if (!id || positionals.length > 1) throw new UsageError('give exactly one kiosk id: qrkiosk relay kiosk add <id> --pos <externalId> --config FILE');
      if (typeof values.pos !== 'string') throw new UsageError('--pos <externalId> is required: the external_id of the Mercado Pago POS of this kiosk');
      const generation = values.generation ?? 'v2';
      if (generation !== 'v1' && generation !== 'v2') throw new UsageError(`--generation must be v1 or v2, not "${String(generation)}"`);
      const config = configOf(values);
      const site = siteCurrency(config);
      const choice = values.model === undefined ? defaultModelFor(site) : modelChoice(values.model, site);
      const added = await withStore(config, (store) =>
        store.addKiosk({
          id,
          posExternalId: values.pos as string,
          generation,
          posQr: typeof values.qr === 'string' ? values.qr : null,
          model: choice.model,
          modelMode: choice.mode,
          ...(typeof values.store === 'string' ? { storeExternalId: values.store } : {}),
        }),
      );
      io.out(`kiosk ${id} added (POS ${added.kiosk.posExternalId}, payment model ${modelLabel(choice.model, choice.mode)}${choice.model === 'unattended' ? `, response generation ${generation}` : ''})`);
      io.out('');
      io.out(`  token: ${added.token}`);
      io.out('');
      io.out('  WARNING: this token is shown ONCE and cannot be shown again (only its hash is stored).');
      io.out('  Put it in the kiosk agent config now; if it is lost, run: qrkiosk relay kiosk rotate-token ' + id);
      io.out('');
      const key = loadOrCreateCommandKey(commandKeyPath(config)).signer;
      io.out(`  the relay's command key, for the same agent.yaml (relay section): commandKey: ${key.publicKeyText}`);
      io.out('');
      if (choice.model === 'unattended') {
        const url = posUrl(config.publicUrl, added.kiosk);
        io.out(`  POS url to register at Mercado Pago (${url.length} characters): ${url}`);
      }
      io.out(`  Next: qrkiosk relay provision ${id} --store <storeExternalId> --config FILE (creates the store and POS at Mercado Pago)`);
      if (choice.model === 'orders') {
        io.out(`  Orders API notifications: in Your integrations > Webhooks, choose the event "Order (Mercado Pago)" and the url ${config.publicUrl}/mp/notifications`);
      }
      return 0;
    }
    case 'set-model': {
      const { values, positionals } = parse(rest, { config: { type: 'string' } });
      const [id, text] = positionals;
      if (!id || !text || positionals.length > 2) throw new UsageError('usage: qrkiosk relay kiosk set-model <id> MODEL[/MODE] --config FILE');
      const config = configOf(values);
      const choice = modelChoice(text, siteCurrency(config));
      // the check and the change in one transaction: an order created in between cannot slip through
      await withStore(config, (store) =>
        store.transaction(async (tx) => {
          const pending = await tx.pendingOrderOf(id);
          if (pending) throw new UsageError(`kiosk ${id} has order ${pending.id} waiting for payment: try again when it is paid, cancelled or expired`);
          await tx.setKioskModel(id, choice.model, choice.mode);
        }),
      );
      io.out(`kiosk ${id}: payment model now ${modelLabel(choice.model, choice.mode)}; a running relay tells the kiosk within a second`);
      if (choice.model === 'unattended') io.out(`  run qrkiosk relay provision ${id} --config FILE to give its POS the url Mercado Pago polls`);
      return 0;
    }
    case 'list': {
      const { values, positionals } = parse(rest, { config: { type: 'string' }, json: { type: 'boolean' } });
      if (positionals.length) throw new UsageError(`unexpected "${positionals[0]}"`);
      const config = configOf(values);
      const kiosks = await withStore(config, (store) => store.listKiosks());
      const rows = kiosks.map((k) => ({
        id: k.id,
        posExternalId: k.posExternalId,
        generation: k.generation,
        paymentModel: k.paymentModel,
        modelMode: k.modelMode,
        storeExternalId: k.storeExternalId,
        posUrl: posUrl(config.publicUrl, k),
        posQr: k.posQr,
        createdAt: new Date(k.createdAt).toISOString(),
      }));
      if (values.json) {
        io.out(JSON.stringify(rows, null, 2));
        return 0;
      }
      if (rows.length === 0) {
        io.out('no kiosks yet: qrkiosk relay kiosk add <id> --pos <externalId> --config FILE');
        return 0;
      }
      for (const r of rows) {
        const model = modelLabel(r.paymentModel, r.modelMode);
        io.out(`${r.id}  pos=${r.posExternalId}  ${model}${r.paymentModel === 'unattended' ? ` ${r.generation}` : ''}  qr=${r.posQr ? 'set' : 'MISSING'}${r.paymentModel === 'unattended' ? `  ${r.posUrl}` : ''}`);
      }
      return 0;
    }
    case 'set-qr': {
      const { values, positionals } = parse(rest, { config: { type: 'string' } });
      const [id, payload] = positionals;
      if (!id || !payload || positionals.length > 2) throw new UsageError("usage: qrkiosk relay kiosk set-qr <id> '<payload>' --config FILE");
      const config = configOf(values);
      await withStore(config, (store) => store.setKioskPosQr(id, payload));
      io.out(`kiosk ${id}: POS QR stored; a running relay sends it to the kiosk within a second`);
      return 0;
    }
    case 'rotate-token': {
      const { values, positionals } = parse(rest, { config: { type: 'string' } });
      const id = positionals[0];
      if (!id || positionals.length > 1) throw new UsageError('usage: qrkiosk relay kiosk rotate-token <id> --config FILE');
      const config = configOf(values);
      const token = await withStore(config, (store) => store.rotateKioskToken(id));
      io.out(`kiosk ${id}: new token: ${token}`);
      io.out('  WARNING: shown ONCE; the old token no longer works. Update the kiosk agent config now.');
      return 0;
    }
    case 'revoke': {
      const { values, positionals } = parse(rest, { config: { type: 'string' } });
      const id = positionals[0];
      if (!id || positionals.length > 1) throw new UsageError('usage: qrkiosk relay kiosk revoke <id> --config FILE');
      const config = configOf(values);
      // a new token nobody is shown: the old one stops working, and no working one exists
      await withStore(config, (store) => store.rotateKioskToken(id));
      io.out(`kiosk ${id}: token revoked; a running relay disconnects it within a second and refuses it from now on`);
      io.out(`  to let it back in: qrkiosk relay kiosk rotate-token ${id} --config FILE, and put the new token in its agent config`);
      return 0;
    }
    default: {
      const orders = await import('./relay-kiosk-orders.js');
      if (sub && orders.KIOSK_ORDER_COMMANDS.has(sub)) return await orders.kioskOrderCommand(sub, rest, io);
      throw new UsageError(sub ? `unknown kiosk command "${sub}"\n${USAGE}` : USAGE);
    }
  }
}

/**
 * `qrkiosk relay provision <id>`: makes the kiosk's point of sale exist at Mercado Pago with this
 * relay's POS url (creating the store when needed), and stores the POS QR for the kiosk's screen.
 * Safe to run again: an existing POS is found by its external_id and only its url is corrected,
 * e.g. after the relay moved to another address.
 */
async function provision(args: string[], io: RelayCliIo): Promise<number> {
  const { values, positionals } = parse(args, {
    config: { type: 'string' },
    store: { type: 'string' },
    'store-name': { type: 'string' },
    'pos-name': { type: 'string' },
    category: { type: 'string' },
  });
  const id = positionals[0];
  if (!id || positionals.length > 1) throw new UsageError('usage: qrkiosk relay provision <kioskId> --config FILE --store <storeExternalId>');
  const config = configOf(values);
  const category = values.category === undefined ? undefined : Number(values.category);
  if (category !== undefined && !Number.isInteger(category)) throw new UsageError(`--category must be a numeric MCC, not "${values.category}"`);
  const mp = new MercadoPagoClient({ baseUrl: config.mercadopago.baseUrl, accessToken: requireAccessToken(config) });
  const store = await openRelayStore(config.store);
  try {
    const kiosk = await store.getKiosk(id);
    if (!kiosk) throw new UsageError(`no kiosk "${id}": add it first with qrkiosk relay kiosk add ${id} --pos <externalId> --config FILE`);
    let rows: ProvisionRow[];
    try {
      rows = await provisionKiosk(mp, config, store, kiosk, {
        ...(typeof values.store === 'string' ? { storeExternalId: values.store } : {}),
        ...(typeof values['store-name'] === 'string' ? { storeName: values['store-name'] } : {}),
        ...(typeof values['pos-name'] === 'string' ? { posName: values['pos-name'] } : {}),
        ...(category !== undefined ? { category } : {}),
      });
    } catch (err) {
      if (err instanceof ProvisionError) {
        printRows(err.rows, io);
        throw new UsageError(err.message);
      }
      throw err;
    }
    printRows(rows, io);
    return 0;
  } finally {
    await store.close();
  }
}

function printRows(rows: ProvisionRow[], io: RelayCliIo): void {
  if (rows.length === 0) return;
  const w = Math.max(...rows.map((r) => r.what.length));
  for (const r of rows) io.out(`${r.what.padEnd(w)}  ${r.action.padEnd(9)}  ${r.detail}`);
}

function siteCurrency(config: RelayConfig) {
  return config.catalog[0]!.currency as Parameters<typeof defaultModelFor>[0];
}

function modelChoice(text: string, currency: Parameters<typeof defaultModelFor>[0]) {
  try {
    return parseModelChoice(text, currency);
  } catch (err) {
    if (err instanceof ModelChoiceError) throw new UsageError(err.message);
    throw err;
  }
}

function isoTime(ms: number | null): string {
  return ms ? new Date(ms).toISOString().replace('T', ' ').slice(0, 19) : '-';
}

/** `qrkiosk relay orders`: what the operator checks first when a customer calls. */
async function listOrders(args: string[], io: RelayCliIo): Promise<number> {
  const { values, positionals } = parse(args, {
    config: { type: 'string' },
    kiosk: { type: 'string' },
    state: { type: 'string' },
    review: { type: 'boolean' },
    limit: { type: 'string' },
    json: { type: 'boolean' },
  });
  if (positionals.length) throw new UsageError(`unexpected "${positionals[0]}"`);
  const limit = values.limit === undefined ? 50 : Number(values.limit);
  if (!Number.isInteger(limit) || limit <= 0) throw new UsageError('--limit must be a positive whole number, e.g. --limit 50');
  const state = values.state;
  if (state !== undefined && !(ORDER_STATES as readonly string[]).includes(state)) {
    throw new UsageError(`--state must be one of ${ORDER_STATES.join(', ')}`);
  }
  const config = configOf(values);
  const orders = await withStore(config, async (store) =>
    values.review
      ? (await store.ordersNeedingReview()).slice(-limit)
      : store.recentOrders({
          limit,
          ...(values.kiosk ? { kioskId: values.kiosk } : {}),
          ...(state ? { state: state as OrderState } : {}),
        }),
  );
  if (values.json) {
    io.out(JSON.stringify(orders, null, 2));
    return 0;
  }
  if (orders.length === 0) {
    io.out(values.review ? 'no orders need review' : 'no orders');
    return 0;
  }
  for (const o of orders) {
    io.out(
      `${isoTime(o.createdAt)}  ${o.id}  ${o.kioskId}  ${o.sku}  ${formatMoney(o.amount, o.currency)}  ${o.state}` +
        `${o.paymentIds.length ? `  payments ${o.paymentIds.join(',')}` : ''}${o.needsReview ? `  REVIEW: ${o.needsReview}` : ''}`,
    );
  }
  return 0;
}

/** `qrkiosk relay order <id>`: one order with its history, payments and refunds. */
async function showOrder(args: string[], io: RelayCliIo): Promise<number> {
  const { values, positionals } = parse(args, { config: { type: 'string' }, json: { type: 'boolean' } });
  const id = positionals[0];
  if (!id || positionals.length > 1) throw new UsageError('usage: qrkiosk relay order <orderId> --config FILE');
  const config = configOf(values);
  const detail = await withStore(config, async (store) => {
    const order = await store.getOrder(id);
    if (!order) return undefined;
    return { order, events: await store.orderEvents(id), payments: await store.paymentsOf(id), refunds: await store.refundsOf(id) };
  });
  if (!detail) throw new UsageError(`no order "${id}" (order ids look like ord_…; see qrkiosk relay orders)`);
  if (values.json) {
    io.out(JSON.stringify(detail, null, 2));
    return 0;
  }
  const { order: o, events, payments, refunds } = detail;
  io.out(`${o.id}  kiosk ${o.kioskId}  ${o.quantity} x ${o.title} (${o.sku})  ${formatMoney(o.amount, o.currency)}  state ${o.state}`);
  if (o.claimedAmount !== o.amount) io.out(`  kiosk claimed ${o.claimedAmount} ${o.claimedCurrency} (refused)`);
  if (o.merchantOrderId) io.out(`  merchant order ${o.merchantOrderId}`);
  if (o.needsReview) io.out(`  NEEDS REVIEW: ${o.needsReview}`);
  io.out('history:');
  for (const e of events) io.out(`  ${isoTime(e.at)}  ${e.from ?? '-'} -> ${e.to}  (${e.event})${e.detail ? `  ${e.detail}` : ''}`);
  if (payments.length) io.out('payments:');
  for (const p of payments) io.out(`  ${JSON.stringify(p)}`);
  if (refunds.length) io.out('refunds:');
  for (const r of refunds) io.out(`  ${JSON.stringify(r)}`);
  return 0;
}
