import * as z from 'zod/mini';
import '../../runtime/zod.js';
import { DEFAULT_ALERT_RULES } from './alert-rules.js';

// relay.yaml `notify` (where outbound messages go) and `alerts` (when a condition is worth a
// message). Built once at import, like the rest of the relay's schema.

const hhmm = z.string().check(z.regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'write a time of day as HH:MM, e.g. 22:00'));
const timeZone = z.string().check(
  z.refine(
    (tz) => {
      try {
        new Intl.DateTimeFormat('en', { timeZone: tz });
        return true;
      } catch {
        return false;
      }
    },
    { message: 'write an IANA time zone, e.g. America/Argentina/Buenos_Aires' },
  ),
);

const quietHours = z.strictObject({ from: hhmm, to: hhmm, timeZone });
const events = z
  .array(z.string().check(z.regex(/^(\*|[a-z_]+\.(\*|[a-z_]+))$/, 'name events like alert.fired, alert.*, order.paid or *')))
  .check(z.minLength(1, 'list the events this channel takes, e.g. [alert.*]'));
const name = z.string().check(z.regex(/^[A-Za-z0-9_.-]{1,40}$/, 'name the channel with letters, digits, _ . - (at most 40)'));

const webhookChannel = z.strictObject({
  name,
  events,
  quietHours: z.optional(quietHours),
  webhook: z.strictObject({
    url: z.url({ message: 'write the https URL that receives the webhooks' }),
    secret: z.string().check(z.minLength(16, 'use a webhook secret of at least 16 characters (it signs every body)')),
    timeoutSeconds: z.optional(z.number().check(z.positive(), z.lte(60))),
  }),
});

const emailChannel = z.strictObject({
  name,
  events,
  quietHours: z.optional(quietHours),
  email: z.strictObject({
    to: z.array(z.email({ message: 'write e-mail addresses, e.g. ops@example.com' })).check(z.minLength(1)),
    from: z.string().check(z.minLength(3, 'write the sender, e.g. "qrkiosk <alerts@example.com>"')),
    smtp: z.strictObject({
      host: z.string().check(z.minLength(1)),
      port: z.number().check(z.int(), z.gte(1), z.lte(65535)),
      secure: z.optional(z.boolean()),
      requireTls: z.optional(z.boolean()),
      user: z.optional(z.string()),
      password: z.optional(z.string()),
      timeoutSeconds: z.optional(z.number().check(z.positive(), z.lte(120))),
    }),
  }),
});

export const notifySchema = z._default(
  z.strictObject({
    channels: z
      ._default(z.array(z.union([webhookChannel, emailChannel])), [])
      .check(z.refine((cs) => new Set(cs.map((c) => c.name)).size === cs.length, { message: 'give every channel its own name' })),
    /** tries before a delivery is given up (visible in the console, retryable by an operator) */
    maxAttempts: z._default(z.number().check(z.int(), z.gte(1), z.lte(100)), 12),
  }),
  { channels: [], maxAttempts: 12 },
);

export const alertsSchema = z._default(
  z.strictObject({
    checkEverySeconds: z._default(z.number().check(z.positive(), z.lte(3600)), 30),
    offlineAfterMinutes: z._default(z.number().check(z.positive()), DEFAULT_ALERT_RULES.offlineAfterMinutes),
    noSalesHours: z._default(z.number().check(z.int(), z.gte(1), z.lte(72)), DEFAULT_ALERT_RULES.noSalesHours),
    usualHourMinDays: z._default(z.number().check(z.int(), z.gte(1), z.lte(14)), DEFAULT_ALERT_RULES.usualHourMinDays),
    vendFailuresInRow: z._default(z.number().check(z.int(), z.gte(1)), DEFAULT_ALERT_RULES.vendFailuresInRow),
    timeZone: z._default(timeZone, DEFAULT_ALERT_RULES.timeZone),
  }),
  { checkEverySeconds: 30, ...DEFAULT_ALERT_RULES },
);
