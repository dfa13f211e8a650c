import { hostname } from 'node:os';
import * as z from 'zod/mini';
import { transform, type IssueContext } from '../../runtime/zod.js';

// `observability:` in relay.yaml: what /metrics, /healthz and /readyz need (docs/deploy.md).
//
// /metrics faces the internet on the public listener (Mercado Pago must reach the relay), and it
// tells anyone who can read it how many kiosks and orders an operator has. So it is served:
// - on the public listener only with `Authorization: Bearer <metricsToken>`; without a token
//   configured it answers 404 there, and says how to turn it on;
// - on `adminListen` (a second listener the operator binds to a private address, e.g.
//   127.0.0.1:9464 or a VPN address), where the token is asked for only if one is configured.
// /healthz and /readyz are served on both: a load balancer must reach them without a secret,
// and they show only up/down, ages and counts.

export const METRICS_TOKEN_ENV = 'QRKIOSK_METRICS_TOKEN';

const positive = z.number().check(z.positive());

// Built once, without the environment (the relay's config schema is built once: see
// relay/config.ts); finishObservability adds what comes from the environment.
export const observabilityBaseSchema = z.prefault(
  z.strictObject({
    // Label on every series (`relay_instance`): which relay process said it. Not `instance`,
    // which Prometheus sets itself to the scraped address and would rename ours.
    instance: z.optional(z.string().check(z.regex(/^[A-Za-z0-9][A-Za-z0-9_.:-]{0,63}$/, 'write a short name such as relay-a (letters, digits, . _ : -)'))),
    metricsToken: z.optional(z.string().check(z.minLength(16, 'use at least 16 random characters, e.g. `openssl rand -hex 24`'))),
    adminListen: z.optional(
      z.strictObject({ host: z._default(z.string().check(z.minLength(1)), '127.0.0.1'), port: z.number().check(z.int(), z.gte(0), z.lte(65535)) }),
    ),
    health: z.prefault(
      z.strictObject({
        // how often the store is pinged in the background (every /healthz and /readyz pings too)
        storeCheckSeconds: z._default(positive, 5),
        // /healthz answers 503 when the store has failed every ping for this long
        storeDownSeconds: z._default(positive, 30),
        // ... or when every Mercado Pago call has failed (no answer, 5xx, 429) for this long
        mercadopagoDownSeconds: z._default(positive, 120),
        // a ping that takes longer than this counts as a failure
        pingTimeoutSeconds: z._default(positive, 2),
      }),
      {},
    ),
    // After SIGTERM: /readyz answers 503 for this long before the relay closes, so the load
    // balancer stops sending new work here (check interval x fall count, docs/deploy.md).
    drainSeconds: z._default(z.number().check(z.gte(0)), 10),
  }),
  {},
);

type ObservabilityParsed = z.output<typeof observabilityBaseSchema>;

/** The metrics token from the environment when the file has none, and the instance name. */
export function finishObservability(o: ObservabilityParsed, env: NodeJS.ProcessEnv, ctx: IssueContext, path: PropertyKey[] = []) {
  const metricsToken = o.metricsToken ?? (env[METRICS_TOKEN_ENV] || undefined);
  if (metricsToken !== undefined && metricsToken.length < 16) {
    ctx.addIssue({
      code: 'custom',
      path: [...path, 'metricsToken'],
      message: `${METRICS_TOKEN_ENV} is shorter than 16 characters: use e.g. \`openssl rand -hex 24\``,
    });
  }
  return {
    ...o,
    instance:
      o.instance ??
      (hostname()
        .replace(/[^A-Za-z0-9_.:-]/g, '-')
        .slice(0, 64) ||
        'relay'),
    metricsToken,
  };
}

export function observabilitySchema(env: NodeJS.ProcessEnv = process.env) {
  return z.pipe(
    observabilityBaseSchema,
    transform((o: ObservabilityParsed, ctx) => finishObservability(o, env, ctx)),
  );
}

export type ObservabilityConfig = ReturnType<typeof finishObservability>;
