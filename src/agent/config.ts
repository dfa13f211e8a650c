import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import { z } from 'zod';
import { ConfigError, loadConfigFile, parseConfigText } from '../runtime/config-file.js';

// The agent's YAML config. Every message says what to write instead, because the person reading
// it is a technician on SSH at a kiosk, not the author of this file. The loader adds the file
// name, key path and line number.

/** An error message for a leaf: what is wrong ("missing"/"invalid") plus the fix. */
function hint(fix: string) {
  return (iss: { input?: unknown }) => (iss.input === undefined ? `missing: ${fix}` : `invalid: ${fix}`);
}

/** strict objects, so a typo ("dropWindow:") is an error instead of a silently ignored key */
function section<T extends z.ZodRawShape>(shape: T, fix: string) {
  const allowed = Object.keys(shape).join(', ');
  return z.strictObject(shape, {
    error: (iss) => {
      if (iss.code === 'unrecognized_keys') {
        return `unknown key(s) ${iss.keys.map((k) => `"${k}"`).join(', ')}: fix the spelling or remove it (allowed here: ${allowed})`;
      }
      return iss.input === undefined ? `missing: ${fix}` : `invalid: ${fix}`;
    },
  });
}

const RELAY_URL = /^wss?:\/\/[^/\s]+\/v1\/kiosk\/?$/;

const relaySchema = section(
  {
    url: z
      .string({ error: hint('write the relay address, e.g. url: wss://relay.example.com/v1/kiosk') })
      .regex(RELAY_URL, {
        error: 'must be a ws:// or wss:// URL whose path is /v1/kiosk, e.g. wss://relay.example.com/v1/kiosk',
      }),
    token: z
      .string({ error: hint('paste the token printed by `qrkiosk relay kiosk add`') })
      .min(8, { error: 'looks truncated: paste the whole token printed by `qrkiosk relay kiosk add`' })
      .optional(),
    tokenFile: z
      .string({ error: hint('a path to a file holding only the kiosk token, e.g. /etc/qrkiosk/token') })
      .min(1)
      .optional(),
    backoff: section(
      {
        baseMs: z
          .number({ error: hint('first reconnect delay in ms, e.g. baseMs: 500') })
          .int()
          .min(10, { error: 'use at least 10 (ms) so a down relay is not hammered' })
          .default(500),
        capMs: z
          .number({ error: hint('longest reconnect delay in ms, e.g. capMs: 60000') })
          .int()
          .min(10, { error: 'use at least 10 (ms)' })
          .default(60_000),
      },
      'backoff: { baseMs: 500, capMs: 60000 }',
    ).default({ baseMs: 500, capMs: 60_000 }),
    pingIntervalSeconds: z
      .number({ error: hint('seconds between liveness pings, e.g. pingIntervalSeconds: 15') })
      .positive({ error: 'must be more than 0 (seconds), e.g. 15' })
      .max(300, { error: 'use at most 300 seconds; a dead link would go unnoticed for too long' })
      .default(15),
  },
  'relay: { url: wss://relay.example.com/v1/kiosk, token: <token> }',
)
  .superRefine((r, ctx) => {
    if (r.token === undefined && r.tokenFile === undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['token'],
        message: 'missing: set relay.token (from `qrkiosk relay kiosk add`) or relay.tokenFile (a file holding it)',
      });
    }
    if (r.token !== undefined && r.tokenFile !== undefined) {
      ctx.addIssue({ code: 'custom', path: ['tokenFile'], message: 'set relay.token OR relay.tokenFile, not both: remove one' });
    }
    if (r.backoff.capMs < r.backoff.baseMs) {
      ctx.addIssue({ code: 'custom', path: ['backoff', 'capMs'], message: `must be >= baseMs (${r.backoff.baseMs})` });
    }
  });

const slotSchema = section(
  {
    slot: z
      .number({ error: hint('the button/spiral number, a whole number from 1, e.g. slot: 1') })
      .int({ error: 'must be a whole number from 1, e.g. slot: 1' })
      .positive({ error: 'must be a whole number from 1, e.g. slot: 1' }),
    sku: z
      .string({ error: hint('the product sku as listed in the relay catalog, e.g. sku: COLA-350') })
      .min(1, { error: 'must not be empty: write the product sku from the relay catalog' }),
    stock: z
      .number({ error: hint('how many units are loaded, e.g. stock: 8') })
      .int({ error: 'must be a whole number of units, e.g. stock: 8' })
      .nonnegative({ error: 'must be 0 or more units' }),
  },
  '- { slot: 1, sku: COLA-350, stock: 8 }',
);

const simSchema = section(
  {
    fault: z
      .enum(['none', 'jam', 'no_drop', 'slow_drop'], { error: 'use one of none, jam, no_drop, slow_drop' })
      .default('none'),
    dropDelayMs: z.number({ error: hint('ms after the pulse starts when the product falls, e.g. 120') }).int().nonnegative().default(120),
    slowDropMs: z.number({ error: hint('ms after the pulse starts when a slow product falls, e.g. 2000') }).int().nonnegative().default(2000),
    pulseLog: z.string({ error: hint('a file path; the simulated motor appends one JSON line per pulse') }).min(1).optional(),
  },
  'sim: { fault: none }',
);

const hardwareSchema = section(
  {
    buttons: section(
      { driver: z.enum(['keyboard', 'sim', 'none'], { error: 'use one of keyboard, sim, none' }).default('keyboard') },
      'buttons: { driver: keyboard }',
    ).default({ driver: 'keyboard' }),
    dispenser: section(
      {
        driver: z.enum(['sim'], { error: 'only "sim" exists for now: driver: sim' }).default('sim'),
        pulseMs: z.number({ error: hint('motor pulse length in ms, e.g. pulseMs: 250') }).int().positive().max(10_000).default(250),
        dropWindowMs: z
          .number({ error: hint('ms to watch the drop sensor after each pulse starts, e.g. dropWindowMs: 1500') })
          .int()
          .positive()
          .max(30_000)
          .default(1500),
        maxPulses: z
          .number({ error: hint('pulses to try before giving up, e.g. maxPulses: 2') })
          .int()
          .min(1, { error: 'must be at least 1' })
          .max(5, { error: 'use at most 5: more risks dropping two products' })
          .default(2),
        sim: simSchema.default({ fault: 'none', dropDelayMs: 120, slowDropMs: 2000 }),
      },
      'dispenser: { driver: sim }',
    ).default({
      driver: 'sim',
      pulseMs: 250,
      dropWindowMs: 1500,
      maxPulses: 2,
      sim: { fault: 'none', dropDelayMs: 120, slowDropMs: 2000 },
    }),
    display: section(
      { driver: z.enum(['terminal', 'log', 'none'], { error: 'use one of terminal, log, none' }).default('terminal') },
      'display: { driver: terminal }',
    ).default({ driver: 'terminal' }),
  },
  'hardware: { buttons: {driver: keyboard}, dispenser: {driver: sim}, display: {driver: terminal} }',
);

export const AgentConfigSchema = section(
  {
    kioskId: z
      .string({ error: hint('the kiosk id registered at the relay, e.g. kioskId: kiosk-01') })
      .regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'use letters, digits, "-", "_" or "." (at most 64), e.g. kiosk-01' }),
    relay: relaySchema,
    journal: section(
      {
        path: z
          .string({ error: hint('where the agent keeps its SQLite journal, e.g. path: /var/lib/qrkiosk/agent.sqlite') })
          .min(1),
      },
      'journal: { path: /var/lib/qrkiosk/agent.sqlite }',
    ).default({ path: '/var/lib/qrkiosk/agent.sqlite' }),
    control: section(
      {
        socket: z
          .string({ error: hint('unix socket path for technician commands, e.g. socket: /run/qrkiosk/agent.sock') })
          .min(1)
          .max(100, { error: 'unix socket paths must be short (<= 100 characters): pick a shorter path' })
          .default('/run/qrkiosk/agent.sock'),
        group: z
          .union([z.string().min(1), z.number().int().nonnegative()], {
            error: 'write a group name or numeric gid allowed to use the socket, e.g. group: qrkiosk',
          })
          .optional(),
      },
      'control: { socket: /run/qrkiosk/agent.sock }',
    ).default({ socket: '/run/qrkiosk/agent.sock' }),
    payment: section(
      {
        deadlineSeconds: z
          .number({ error: hint('seconds the QR stays payable, e.g. deadlineSeconds: 90') })
          .positive({ error: 'must be more than 0 seconds, e.g. 90' })
          .max(600, { error: 'use at most 600 seconds; customers do not wait longer' })
          .default(90),
      },
      'payment: { deadlineSeconds: 90 }',
    ).default({ deadlineSeconds: 90 }),
    locale: z
      .string({ error: hint('screen language, e.g. locale: es-AR (es, pt or en)') })
      .regex(/^(es|pt|en)([-_][A-Za-z]{2})?$/, { error: 'use es, pt or en, optionally with a region: es-AR, pt-BR, en' })
      .default('es-AR'),
    slots: z
      .array(slotSchema, { error: hint('list the slots: slots: [{ slot: 1, sku: COLA-350, stock: 8 }]') })
      .min(1, { error: 'list at least one slot: slots: [{ slot: 1, sku: COLA-350, stock: 8 }]' }),
    hardware: hardwareSchema.default({
      buttons: { driver: 'keyboard' },
      dispenser: {
        driver: 'sim',
        pulseMs: 250,
        dropWindowMs: 1500,
        maxPulses: 2,
        sim: { fault: 'none', dropDelayMs: 120, slowDropMs: 2000 },
      },
      display: { driver: 'terminal' },
    }),
  },
  'see docs: kioskId, relay, slots are required',
).superRefine((c, ctx) => {
  const seen = new Map<number, number>();
  c.slots.forEach((s, i) => {
    const first = seen.get(s.slot);
    if (first !== undefined) {
      ctx.addIssue({
        code: 'custom',
        path: ['slots', i, 'slot'],
        message: `slot ${s.slot} is listed twice (also slots.${first}): give each slot its own number`,
      });
    } else seen.set(s.slot, i);
  });
  const d = c.hardware.dispenser;
  if (d.pulseMs > d.dropWindowMs) {
    ctx.addIssue({
      code: 'custom',
      path: ['hardware', 'dispenser', 'dropWindowMs'],
      message: `must be >= pulseMs (${d.pulseMs}): the sensor is watched while the motor turns and a while after`,
    });
  }
});

export type AgentConfig = z.output<typeof AgentConfigSchema>;
/** What a test or embedding program may pass: defaults are filled by the schema. */
export type AgentConfigInput = z.input<typeof AgentConfigSchema>;

/** Validates an in-memory config (tests, demo). Throws ConfigError naming the key. */
export function parseAgentConfig(input: AgentConfigInput | unknown, source = 'agent config'): AgentConfig {
  const parsed = AgentConfigSchema.safeParse(input);
  if (parsed.success) return parsed.data;
  throw new ConfigError(
    parsed.error.issues
      .slice(0, 5)
      .map((i) => `${source}: key "${i.path.map(String).join('.') || '(top level)'}": ${i.message}`)
      .join('\n'),
  );
}

/** Parses YAML text (with line numbers in errors). */
export function parseAgentConfigText(text: string, source = 'agent config'): AgentConfig {
  return parseConfigText(text, AgentConfigSchema, source);
}

/**
 * Reads and validates the YAML file; relative paths in it (journal, socket, tokenFile, pulseLog)
 * are resolved against the file's directory so a config works the same from any cwd.
 * Throws ConfigError (file:line: key "a.b": what to write).
 */
export function loadAgentConfig(path: string, opts: { readToken?: boolean } = {}): AgentConfig {
  const cfg = loadConfigFile(path, AgentConfigSchema);
  const base = dirname(resolve(path));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  cfg.journal.path = abs(cfg.journal.path);
  cfg.control.socket = abs(cfg.control.socket);
  if (cfg.relay.tokenFile) cfg.relay.tokenFile = abs(cfg.relay.tokenFile);
  if (cfg.hardware.dispenser.sim.pulseLog) cfg.hardware.dispenser.sim.pulseLog = abs(cfg.hardware.dispenser.sim.pulseLog);
  // Read the token now so a missing file is a start-up error, not a reconnect loop. Technician
  // commands only need the socket path and may not be allowed to read the token.
  if (opts.readToken !== false) resolveToken(cfg);
  return cfg;
}

/** The kiosk token: relay.token, or the trimmed content of relay.tokenFile. */
export function resolveToken(cfg: AgentConfig): string {
  if (cfg.relay.token) return cfg.relay.token;
  const file = cfg.relay.tokenFile!;
  let text: string;
  try {
    text = readFileSync(file, 'utf8').trim();
  } catch (err) {
    throw new ConfigError(
      `key "relay.tokenFile": cannot read ${file}: ${(err as Error).message} — put the token from \`qrkiosk relay kiosk add\` in that file`,
    );
  }
  if (text.length < 8) {
    throw new ConfigError(`key "relay.tokenFile": ${file} does not hold a token — put the token from \`qrkiosk relay kiosk add\` in it`);
  }
  return text;
}
