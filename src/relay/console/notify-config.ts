import { z } from 'zod';
import { DEFAULT_ALERT_RULES } from './alert-rules.js';

// relay.yaml `notify` (where outbound messages go) and `alerts` (when a condition is worth a
// message). Built once at import, like the rest of the relay's schema.

const hhmm = z.string().regex(/^([01]\d|2[0-3]):[0-5]\d$/, 'write a time of day as HH:MM, e.g. 22:00');
const timeZone = z.string().refine(
  (tz) => {
    try {
      new Intl.DateTimeFormat('en', { timeZone: tz });
      return true;
    } catch {
      return false;
    }
  },
  { message: 'write an IANA time zone, e.g. America/Argentina/Buenos_Aires' },
);

const quietHours = z.strictObject({ from: hhmm, to: hhmm, timeZone });
const events = z.array(z.string().regex(/^(\*|[a-z_]+\.(\*|[a-z_]+))$/, 'name events like alert.fired, alert.*, order.paid or *')).min(1, 'list the events this channel takes, e.g. [alert.*]');
const name = z.string().regex(/^[A-Za-z0-9_.-]{1,40}$/, 'name the channel with letters, digits, _ . - (at most 40)');

const webhookChannel = z.strictObject({
  name,
  events,
  quietHours: quietHours.optional(),
  webhook: z.strictObject({
    url: z.url({ message: 'write the https URL that receives the webhooks' }),
    secret: z.string().min(16, 'use a webhook secret of at least 16 characters (it signs every body)'),
    timeoutSeconds: z.number().positive().max(60).optional(),
  }),
});

const emailChannel = z.strictObject({
  name,
  events,
  quietHours: quietHours.optional(),
  email: z.strictObject({
    to: z.array(z.email({ message: 'write e-mail addresses, e.g. ops@example.com' })).min(1),
    from: z.string().min(3, 'write the sender, e.g. "qrkiosk <alerts@example.com>"'),
    smtp: z.strictObject({
      host: z.string().min(1),
      port: z.number().int().min(1).max(65535),
      secure: z.boolean().optional(),
      requireTls: z.boolean().optional(),
      user: z.string().optional(),
      password: z.string().optional(),
      timeoutSeconds: z.number().positive().max(120).optional(),
    }),
  }),
});

export const notifySchema = z
  .strictObject({
    channels: z
      .array(z.union([webhookChannel, emailChannel]))
      .default([])
      .refine((cs) => new Set(cs.map((c) => c.name)).size === cs.length, { message: 'give every channel its own name' }),
    /** tries before a delivery is given up (visible in the console, retryable by an operator) */
    maxAttempts: z.number().int().min(1).max(100).default(12),
  })
  .default({ channels: [], maxAttempts: 12 });

export const alertsSchema = z
  .strictObject({
    checkEverySeconds: z.number().positive().max(3600).default(30),
    offlineAfterMinutes: z.number().positive().default(DEFAULT_ALERT_RULES.offlineAfterMinutes),
    noSalesHours: z.number().int().min(1).max(72).default(DEFAULT_ALERT_RULES.noSalesHours),
    usualHourMinDays: z.number().int().min(1).max(14).default(DEFAULT_ALERT_RULES.usualHourMinDays),
    vendFailuresInRow: z.number().int().min(1).default(DEFAULT_ALERT_RULES.vendFailuresInRow),
    timeZone: timeZone.default(DEFAULT_ALERT_RULES.timeZone),
  })
  .default({ checkEverySeconds: 30, ...DEFAULT_ALERT_RULES });
