import { parseArgs } from 'node:util';
import { assertCurrency } from '../core/money.js';
import { createLogger } from '../runtime/log.js';
import { startSandbox } from '../sandbox/index.js';

// `qrkiosk sandbox`: the Mercado Pago emulator as its own process, for trying the relay by hand.
export async function sandboxMain(argv: string[]): Promise<number> {
  const { values } = parseArgs({
    args: argv,
    options: {
      host: { type: 'string', default: '127.0.0.1' },
      port: { type: 'string', default: '9000' },
      token: { type: 'string', default: 'TEST-local' },
      collector: { type: 'string', default: '123456789' },
      currency: { type: 'string', default: 'ARS' },
      'webhook-secret': { type: 'string' },
      /** where Orders API webhooks go (the relay's notification endpoint) */
      'orders-webhook-url': { type: 'string' },
      /** the panel's notification URL, for merchant orders without one (offline QRs) */
      'panel-notification-url': { type: 'string' },
      /** accept payments of withdrawn orders (the race a relay must refund) */
      'late-payments': { type: 'boolean', default: false },
    },
  });
  const port = Number(values.port);
  const collectorId = Number(values.collector);
  if (!Number.isInteger(port) || port < 0 || port > 65535) {
    console.error(`qrkiosk sandbox: --port ${values.port} is not a port number (0-65535)`);
    return 2;
  }
  if (!Number.isSafeInteger(collectorId) || collectorId <= 0) {
    console.error(`qrkiosk sandbox: --collector ${values.collector} must be a Mercado Pago user id (a positive number)`);
    return 2;
  }
  const sandbox = await startSandbox({
    host: values.host,
    port,
    accessToken: values.token!,
    collectorId,
    currency: assertCurrency(values.currency!),
    ...(values['webhook-secret'] ? { webhookSecret: values['webhook-secret'] } : {}),
    ...(values['orders-webhook-url'] ? { ordersWebhookUrl: values['orders-webhook-url'] } : {}),
    ...(values['panel-notification-url'] ? { panelNotificationUrl: values['panel-notification-url'] } : {}),
    latePayments: values['late-payments'] === true,
    logger: createLogger('sandbox'),
  });
  console.log(`Mercado Pago sandbox at ${sandbox.url} (access token ${values.token}, collector ${collectorId})`);
  console.log(`customer: POST ${sandbox.url}/_sandbox/scan {"qr": "<payload>"}, then POST ${sandbox.url}/_sandbox/pay {"checkoutId": "..."}`);
  await new Promise<void>((resolve) => {
    process.once('SIGINT', resolve);
    process.once('SIGTERM', resolve);
  });
  await sandbox.close();
  return 0;
}
