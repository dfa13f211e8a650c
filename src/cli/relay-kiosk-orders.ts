import { userInfo } from 'node:os';
import { parseArgs } from 'node:util';
import { loadRelayConfig } from '../relay/config.js';
import { commandKeyPath, loadOrCreateCommandKey } from '../relay/command-key.js';
import { CommandInputError, KioskCommands } from '../relay/kiosk-commands.js';
import { openRelayStore } from '../relay/store/index.js';
import { assertCurrency, parseAmount, MoneyError } from '../core/money.js';
import { silentLogger } from '../runtime/log.js';

// `qrkiosk relay kiosk service|stock|test-vend|price`: an operator's signed command to one kiosk,
// from the shell. This process signs it with the relay's command key and records it in the store
// (state `issued`); the running relay (any instance) picks it up on its one-second tick and sends
// it to the kiosk when it is connected, until its expiry (KioskCommands.pickUp). The command's
// answer (applied at the kiosk's time, or refused and why) is shown by `qrkiosk relay kiosk
// commands <id>`.

export class KioskOrderUsage extends Error {
  override name = 'UsageError';
}

const USAGE = `usage:
  qrkiosk relay kiosk service <id> in|out --reason TEXT --config FILE [--by NAME] [--ttl SECONDS]
  qrkiosk relay kiosk stock <id> <slot> <count> --config FILE [--reason TEXT] [--by NAME] [--ttl SECONDS]
  qrkiosk relay kiosk test-vend <id> <slot> --config FILE [--reason TEXT] [--by NAME] [--ttl SECONDS]
  qrkiosk relay kiosk price <id> <sku> <amount> --config FILE [--reason TEXT] [--by NAME] [--ttl SECONDS]
      amount in the site currency as written on a price tag (e.g. 1800 or 1800.50)
  qrkiosk relay kiosk commands <id> --config FILE [--json]   the commands sent to the kiosk and their answers`;

export const KIOSK_ORDER_COMMANDS = new Set(['service', 'stock', 'test-vend', 'price', 'commands']);

interface Io {
  out(line: string): void;
  err(line: string): void;
}

function wholeNumber(text: string | undefined, what: string): number {
  if (!text || !/^\d+$/.test(text)) throw new KioskOrderUsage(`${what} must be a whole number, got ${JSON.stringify(text ?? '')}\n${USAGE}`);
  return Number(text);
}

export async function kioskOrderCommand(sub: string, args: string[], io: Io): Promise<number> {
  let parsed;
  try {
    parsed = parseArgs({
      args,
      options: { config: { type: 'string' }, reason: { type: 'string' }, by: { type: 'string' }, ttl: { type: 'string' }, json: { type: 'boolean' } },
      allowPositionals: true,
      strict: true,
    });
  } catch (err) {
    throw new KioskOrderUsage(`${(err as Error).message.split('\n')[0]}\n${USAGE}`);
  }
  const { values, positionals: p } = parsed;
  if (!values.config) throw new KioskOrderUsage(`--config FILE is required (the relay YAML)\n${USAGE}`);
  const config = loadRelayConfig(values.config);
  const [kioskId] = p;
  if (!kioskId) throw new KioskOrderUsage(USAGE);

  const store = await openRelayStore(config.store);
  try {
    if (sub === 'commands') {
      const list = await store.commandsOf(kioskId, 50);
      if (values.json) io.out(JSON.stringify(list, null, 2));
      else if (list.length === 0) io.out(`kiosk ${kioskId}: no commands`);
      else
        for (const c of list) {
          const when = c.kioskAt !== null ? ` at ${new Date(c.kioskAt).toISOString()} (kiosk clock)` : '';
          const why = c.refusal ? `: ${c.refusal.reason} ${c.refusal.message}` : '';
          io.out(`${c.id}  ${new Date(c.issuedAt).toISOString()}  ${c.kind}  ${c.state}${when}${why}  by ${c.issuedBy}${c.reason ? ` (${c.reason})` : ''}`);
        }
      return 0;
    }

    let action: object;
    if (sub === 'service') {
      const [, inOut] = p;
      if ((inOut !== 'in' && inOut !== 'out') || p.length !== 2) throw new KioskOrderUsage(`say "in" or "out" of service\n${USAGE}`);
      if (!values.reason?.trim()) throw new KioskOrderUsage(`--reason TEXT is required to put a kiosk in or out of service (it is recorded and shown on the kiosk's journal)\n${USAGE}`);
      action = { kind: 'service', inService: inOut === 'in' };
    } else if (sub === 'stock') {
      if (p.length !== 3) throw new KioskOrderUsage(USAGE);
      action = { kind: 'stock.set', slots: [{ slot: wholeNumber(p[1], 'slot'), count: wholeNumber(p[2], 'count') }] };
    } else if (sub === 'test-vend') {
      if (p.length !== 2) throw new KioskOrderUsage(USAGE);
      action = { kind: 'test.vend', slot: wholeNumber(p[1], 'slot') };
    } else {
      if (p.length !== 3) throw new KioskOrderUsage(USAGE);
      // the product's currency in the relay's catalog (a price change never changes the currency)
      const sku = p[1]!;
      const entry = config.catalog.find((c) => c.sku === sku);
      if (!entry) throw new KioskOrderUsage(`no product "${sku}" in the catalog of ${values.config}: one of ${config.catalog.map((c) => c.sku).join(', ')}`);
      let price: number;
      try {
        const currency = assertCurrency(entry.currency);
        price = parseAmount(p[2]!, currency);
        action = { kind: 'price.set', sku, price, currency };
      } catch (err) {
        if (err instanceof MoneyError) throw new KioskOrderUsage(`amount ${JSON.stringify(p[2])}: ${err.message}`);
        throw err;
      }
    }
    const ttlSeconds = values.ttl === undefined ? undefined : wholeNumber(values.ttl, '--ttl');
    const { signer, created } = loadOrCreateCommandKey(commandKeyPath(config));
    if (created) io.err(`made the command signing key ${commandKeyPath(config)}: every kiosk must trust it (qrkiosk relay command-key)`);
    const commands = new KioskCommands({
      recorder: store,
      signer,
      logger: silentLogger(),
      now: Date.now,
      ttlMs: config.commands.ttlSeconds * 1000,
      kioskExists: async (id) => (await store.getKiosk(id)) !== undefined,
    });
    const by = values.by ?? `cli:${userInfo().username}`;
    try {
      const rec = await commands.issue(kioskId, action, { by, ...(values.reason ? { reason: values.reason } : {}), ...(ttlSeconds !== undefined ? { ttlSeconds } : {}) });
      io.out(`command ${rec.id} to kiosk ${kioskId} recorded (valid until ${new Date(rec.expiresAt).toISOString()})`);
      io.out(`  the running relay sends it within a second while the kiosk is connected; see: qrkiosk relay kiosk commands ${kioskId} --config ${values.config}`);
      return 0;
    } catch (err) {
      if (err instanceof CommandInputError) {
        io.err(`qrkiosk relay kiosk ${sub}: ${err.message}`);
        return 2;
      }
      throw err;
    }
  } finally {
    await store.close();
  }
}
