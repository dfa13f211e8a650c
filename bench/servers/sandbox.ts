// The Mercado Pago emulator (src/sandbox) in its own process for bench/fleet-sales.ts: the relays
// read merchant orders from it over HTTP, and the load generators play the customer's app through
// its /_sandbox/* routes (scan, pay). In its own process so that neither the relays nor the load
// generators share its event loop. Prints {"url":...} when listening; SIGTERM closes it and exits
// (so `--cpu-prof` writes its profile).

import { parseArgs } from 'node:util';
import { pino } from 'pino';
import { startSandbox } from '../../src/sandbox/index.js';

const { values } = parseArgs({
  options: { token: { type: 'string' }, collector: { type: 'string' }, secret: { type: 'string' } },
});
if (!values.token || !values.collector || !values.secret) throw new Error('sandbox needs --token, --collector and --secret');

const sandbox = await startSandbox({
  accessToken: values.token,
  collectorId: Number(values.collector),
  currency: 'ARS',
  webhookSecret: values.secret,
  // the bench scans only once the relay has accepted the order: the first poll finds it ready
  pollIntervalMs: 50,
  pollGiveUpMs: 10_000,
  logger: pino({ level: 'silent' }),
});
process.once('SIGTERM', () => {
  void sandbox.close().then(() => process.exit(0));
});
console.log(JSON.stringify({ url: sandbox.url }));
