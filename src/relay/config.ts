import * as z from 'zod/mini';
import { transform, type IssueContext } from '../runtime/zod.js';
import { Catalog, CatalogError } from '../core/catalog.js';
import { MoneyError } from '../core/money.js';
import { ConfigError, loadConfigFile, parseConfigText } from '../runtime/config-file.js';
import { limitsSchema } from './limits.js';
import { alertsSchema, notifySchema } from './console/notify-config.js';
import { finishObservability, observabilityBaseSchema } from './observability/config.js';

// The relay's YAML configuration. Everything has a safe default except what only the operator can
// know (public URL, store path, Mercado Pago credentials, catalog). Errors name the key and line
// through runtime/config-file.ts so a technician can fix the file in one go. Objects are strict:
// a misspelt key ("webhookSecrett") is an error, not a silently ignored setting.

export const ACCESS_TOKEN_ENV = 'QRKIOSK_MP_ACCESS_TOKEN';

const positiveInt = z.number().check(z.int(), z.positive());

const catalogItem = z
  .strictObject({
    sku: z.string().check(z.minLength(1, 'write the product code, e.g. COLA')),
    name: z.string().check(z.minLength(1, 'write the product name shown to the customer')),
    price: z.union([z.string(), z.number()], { message: 'write the price as a decimal, e.g. "1500.00"' }),
    currency: z.string().check(z.minLength(3)),
  })
  .check(
    z.superRefine((item, ctx) => {
      // Price each product here, not at start-up, so a bad price is reported with its line number.
      // Per item (not on the whole config) so it is reported alongside unrelated errors.
      try {
        Catalog.fromInput([item]);
      } catch (err) {
        if (err instanceof MoneyError || err instanceof CatalogError) {
          ctx.addIssue({ code: 'custom', path: [/currency/.test(err.message) ? 'currency' : 'price'], message: err.message });
        } else throw err;
      }
    }),
  );

// Built once: zod compiles a schema on its first parse, and building it per call made every
// config parse cost milliseconds (the config fuzzer runs it 100,000 times; `config check` and the
// relay.yaml watcher call it too). The one thing that depends on the caller, the access token
// taken from the environment, is filled in after parsing (withEnvToken).
const RELAY_CONFIG_SCHEMA = z.strictObject({
  listen: z._default(
    z.strictObject({
      host: z._default(z.string().check(z.minLength(1)), '0.0.0.0'),
      port: z._default(z.number().check(z.int(), z.gte(0), z.lte(65535)), 8080),
    }),
    { host: '0.0.0.0', port: 8080 },
  ),
  // Mercado Pago calls us back here; it ends up inside every POS url, which MP caps at 300
  // characters, so a very long base URL would make the POS unusable.
  publicUrl: z.pipe(
    z
      .url({ message: 'write the https base URL Mercado Pago can reach, e.g. https://relay.example.com' })
      .check(z.maxLength(200, 'keep publicUrl under 200 characters: Mercado Pago caps POS urls at 300')),
    z.transform((u) => u.replace(/\/+$/, '')),
  ),
  // Where customers' phones open their receipt page (/r/<order>.<mac>, the printed receipt's QR):
  // default publicUrl. Set it when the address Mercado Pago calls is not the customers' (an
  // internal hostname, a path only Mercado Pago may reach); false: no link is sent, the kiosk's
  // receipt QR holds hardware.printer.qrText as before.
  receiptBaseUrl: z.optional(
    z.union([
      z.pipe(
        z.url({ message: 'write the https base URL customers open receipts on, e.g. https://relay.example.com, or false' }).check(z.maxLength(200)),
        z.transform((u) => u.replace(/\/+$/, '')),
      ),
      z.literal(false),
    ]),
  ),
  // One relay on a SQLite file (path), or several relay instances sharing PostgreSQL (url).
  store: z
    .strictObject({
      path: z.optional(z.string().check(z.minLength(1, 'write where the relay database lives, e.g. /var/lib/qrkiosk/relay.sqlite'))),
      url: z.optional(z.string().check(z.regex(/^postgres(ql)?:\/\/\S+$/i, 'write the PostgreSQL database as postgres://user:password@host:5432/database'))),
    })
    .check(
      z.refine((s) => (s.path === undefined) !== (s.url === undefined), {
        message:
          'set either store.path (a SQLite file, e.g. /var/lib/qrkiosk/relay.sqlite) or store.url (postgres://…, for several relay instances), one of the two',
      }),
    ),
  mercadopago: z.strictObject({
    baseUrl: z.pipe(
      z._default(z.url(), 'https://api.mercadopago.com'),
      z.transform((u) => u.replace(/\/+$/, '')),
    ),
    // Optional in the file: secrets are better kept in the environment (systemd EnvironmentFile).
    accessToken: z.optional(z.string().check(z.minLength(1))),
    collectorId: z.number().check(z.int(), z.positive({ message: 'write your Mercado Pago user id (a number)' })),
    sponsorId: z.optional(z.number().check(z.int(), z.positive())),
    webhookSecret: z.optional(z.string().check(z.minLength(1))),
    signatureToleranceSeconds: z._default(positiveInt, 600),
  }),
  catalog: z.array(catalogItem).check(
    z.minLength(1, 'list at least one product'),
    z.superRefine((items, ctx) => {
      try {
        Catalog.fromInput(items);
      } catch (err) {
        if (err instanceof CatalogError || err instanceof MoneyError) ctx.addIssue({ code: 'custom', message: err.message });
        else throw err;
      }
    }),
  ),
  orders: z._default(
    z.strictObject({
      maxPaymentSeconds: z._default(positiveInt, 120),
      contingencyAfterSeconds: z._default(positiveInt, 20),
      contingencyIntervalSeconds: z._default(positiveInt, 10),
      latePaymentWatchMinutes: z._default(positiveInt, 30),
      uncertainVendPolicy: z._default(z.enum(['refund', 'review']), 'refund'),
      // A paid order whose kiosk has not reported the vend after this long is flagged for a
      // person (never refunded: the product may have dropped; the kiosk's outbox still holds
      // the result and delivers it when the kiosk comes back).
      vendResultTimeoutSeconds: z._default(positiveInt, 300),
    }),
    {
      maxPaymentSeconds: 120,
      contingencyAfterSeconds: 20,
      contingencyIntervalSeconds: 10,
      latePaymentWatchMinutes: 30,
      uncertainVendPolicy: 'refund',
      vendResultTimeoutSeconds: 300,
    },
  ),
  hub: z._default(z.strictObject({ pingIntervalSeconds: z._default(positiveInt, 20) }), { pingIntervalSeconds: 20 }),
  // Operator commands to kiosks, signed with the relay's Ed25519 key (docs/console-kiosk.md).
  // keyFile: the private key (PEM, mode 0600), created at first start when missing; default
  // command-key.pem beside the store. ttlSeconds: how long a command may take to reach its kiosk.
  commands: z._default(
    z.strictObject({
      keyFile: z.optional(z.string().check(z.minLength(1, 'write where the command signing key lives, e.g. /var/lib/qrkiosk/command-key.pem'))),
      ttlSeconds: z._default(positiveInt.check(z.lte(86_400, 'a command may live at most 86400 seconds (a day): kiosks refuse older ones')), 600),
    }),
    { ttlSeconds: 600 },
  ),
  // where alerts and order events go (webhooks, e-mail) and when a condition alerts
  // (relay/console/notify-config.ts, docs/console.md)
  notify: notifySchema,
  alerts: alertsSchema,
  // The operator's web console (/console, relay/console/web/): how long a login lasts, and the
  // refund amount (minor units) above which a second operator must approve (null: never).
  consoleWeb: z._default(
    z.strictObject({
      sessionHours: z._default(positiveInt.check(z.lte(720, 'a console login may last at most 720 hours (30 days)')), 12),
      refundApprovalAbove: z._default(z.nullable(z.number().check(z.int('write refundApprovalAbove in minor units (an integer)'), z.nonnegative())), null),
    }),
    { sessionHours: 12, refundApprovalAbove: null },
  ),
  // limits on every public route (relay/limits.ts, docs/reliability.md)
  // stock and routes for the console's pick lists (src/relay/console/stock.ts)
  stock: z._default(
    z.strictObject({
      /** a route: a named list of kiosk ids a technician visits in one trip */
      routes: z._default(
        z.record(
          z.string().check(z.regex(/^[A-Za-z0-9_-]{1,40}$/, 'route names are letters, digits, - and _ (at most 40)')),
          z.array(z.string().check(z.minLength(1))).check(z.minLength(1)),
        ),
        {},
      ),
      /** a slot is low at or below this percent of its par level */
      lowPercent: z._default(z.number().check(z.int(), z.gte(0), z.lte(100)), 25),
    }),
    { routes: {}, lowPercent: 25 },
  ),
  limits: limitsSchema,
  // /metrics, /healthz, /readyz (relay/observability/config.ts, docs/deploy.md); what comes from
  // the environment is filled in after parsing (finishObservability)
  observability: observabilityBaseSchema,
  // What a QR the relay composes itself shows in the customer's app (dynamic model, offline
  // mode). EMVCo caps the name at 25 characters and the city at 15.
  qr: z._default(
    z.strictObject({
      merchantName: z._default(z.string().check(z.minLength(1), z.maxLength(25, 'EMVCo QRs carry at most 25 characters of merchant name')), 'qrkiosk'),
      merchantCity: z.optional(z.string().check(z.minLength(1), z.maxLength(15, 'EMVCo QRs carry at most 15 characters of city'))),
      mcc: z._default(z.string().check(z.regex(/^\d{4}$/, 'write the 4-digit merchant category code, e.g. "5814"')), '5814'),
    }),
    { merchantName: 'qrkiosk', mcc: '5814' },
  ),
});

type ParsedRelayConfig = z.output<typeof RELAY_CONFIG_SCHEMA>;

/**
 * What comes from the environment (systemd EnvironmentFile): the access token when the file has
 * none, the metrics token and the instance name (finishObservability, which may add an issue).
 */
function withEnv(config: ParsedRelayConfig, env: NodeJS.ProcessEnv, ctx: IssueContext) {
  const accessToken: string | undefined = config.mercadopago.accessToken ?? env[ACCESS_TOKEN_ENV] ?? undefined;
  const observability = finishObservability(config.observability, env, ctx, ['observability']);
  return { ...config, mercadopago: { ...config.mercadopago, accessToken }, observability };
}

/**
 * The schema reading the environment from `env` (tests pass their own). The wrapper is a cheap
 * pipe over the schema built once; the schema itself is not rebuilt.
 */
export function relayConfigSchema(env: NodeJS.ProcessEnv = process.env) {
  return z.pipe(
    RELAY_CONFIG_SCHEMA,
    transform((c: ParsedRelayConfig, ctx) => withEnv(c, env, ctx)),
  );
}

export type RelayConfig = ReturnType<typeof withEnv>;
export type RelayConfigInput = z.input<typeof RELAY_CONFIG_SCHEMA>;

export function loadRelayConfig(path: string, env: NodeJS.ProcessEnv = process.env): RelayConfig {
  return loadConfigFile(path, relayConfigSchema(env));
}

export function parseRelayConfigText(text: string, source = 'relay.yaml', env: NodeJS.ProcessEnv = process.env): RelayConfig {
  return parseConfigText(text, relayConfigSchema(env), source);
}

/** Applies defaults to a config written in code (tests, embedding). Throws ConfigError. */
export function parseRelayConfig(input: RelayConfigInput, env: NodeJS.ProcessEnv = process.env): RelayConfig {
  const parsed = relayConfigSchema(env).safeParse(input);
  if (parsed.success) return parsed.data;
  throw new ConfigError(parsed.error.issues.map((i) => `key "${i.path.map(String).join('.') || '(top level)'}": ${i.message}`).join('\n'));
}

/**
 * The token is optional in the file because kiosk provisioning commands do not need it; running
 * the relay does. Called by startRelay when it has to build the real Mercado Pago client.
 */
export function requireAccessToken(config: RelayConfig): string {
  const t = config.mercadopago.accessToken;
  if (!t) {
    throw new ConfigError(`key "mercadopago.accessToken" is missing: write it in the config or set ${ACCESS_TOKEN_ENV} in the environment`);
  }
  return t;
}
