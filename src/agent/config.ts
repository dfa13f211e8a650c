import { readFileSync } from 'node:fs';
import { dirname, isAbsolute, resolve } from 'node:path';
import * as z from 'zod/mini';
import '../runtime/zod.js';
import { ConfigError, loadConfigFile, parseConfigText } from '../runtime/config-file.js';
import { hint, section } from '../runtime/schema-helpers.js';
import { MAX_SLOT } from '../protocol/messages.js';
import { CommandKeyError, parsePublicKeyText } from '../protocol/signed-command.js';
import {
  DISPENSER_DEFAULT,
  buttonsSchema,
  checkHardware,
  dispenserSchema,
  gpioSchema,
  profileInfoSchema,
  withProfile,
  withProfileBase,
} from './hardware-config.js';
import { checkSerialHardware, dexSchema, mdbSchema, printerSchema, serialPanelSchema } from '../devices/serial/config.js';

// The agent's YAML config. Every message says what to write instead, because the person reading
// it is a technician on SSH at a kiosk, not the author of this file. The loader adds the file
// name, key path and line number.

// hint() and section(): shared with the hardware profile schemas (src/agent/hardware-config.ts)

const RELAY_URL = /^wss?:\/\/[^/\s]+\/v1\/kiosk\/?$/;

const relaySchema = section(
  {
    url: z.string({ error: hint('write the relay address, e.g. url: wss://relay.example.com/v1/kiosk') }).check(
      z.regex(RELAY_URL, {
        error: 'must be a ws:// or wss:// URL whose path is /v1/kiosk, e.g. wss://relay.example.com/v1/kiosk',
      }),
    ),
    token: z.optional(
      z
        .string({ error: hint('paste the token printed by `qrkiosk relay kiosk add`') })
        .check(z.minLength(8, { error: 'looks truncated: paste the whole token printed by `qrkiosk relay kiosk add`' })),
    ),
    tokenFile: z.optional(z.string({ error: hint('a path to a file holding only the kiosk token, e.g. /etc/qrkiosk/token') }).check(z.minLength(1))),
    backoff: z._default(
      section(
        {
          baseMs: z._default(
            z
              .number({ error: hint('first reconnect delay in ms, e.g. baseMs: 500') })
              .check(z.int(), z.gte(10, { error: 'use at least 10 (ms) so a down relay is not hammered' })),
            500,
          ),
          capMs: z._default(
            z.number({ error: hint('longest reconnect delay in ms, e.g. capMs: 60000') }).check(z.int(), z.gte(10, { error: 'use at least 10 (ms)' })),
            60_000,
          ),
        },
        'backoff: { baseMs: 500, capMs: 60000 }',
      ),
      { baseMs: 500, capMs: 60_000 },
    ),
    // The relay's PUBLIC key for signed operator commands (docs/console-kiosk.md). Written here at
    // provisioning, with the token, because the kiosk must not learn whom to trust from the link
    // it is checking. Without it every remote command is refused.
    commandKey: z.optional(
      z.string({ error: hint('the line printed by `qrkiosk relay command-key`, e.g. commandKey: ed25519:AbC…') }).check(
        z.superRefine((text, ctx) => {
          try {
            parsePublicKeyText(text);
          } catch (err) {
            if (err instanceof CommandKeyError) ctx.addIssue({ code: 'custom', message: err.message });
            else throw err;
          }
        }),
      ),
    ),
    pingIntervalSeconds: z._default(
      z
        .number({ error: hint('seconds between liveness pings, e.g. pingIntervalSeconds: 15') })
        .check(
          z.positive({ error: 'must be more than 0 (seconds), e.g. 15' }),
          z.lte(300, { error: 'use at most 300 seconds; a dead link would go unnoticed for too long' }),
        ),
      15,
    ),
  },
  'relay: { url: wss://relay.example.com/v1/kiosk, token: <token> }',
).check(
  z.superRefine((r, ctx) => {
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
  }),
);

const slotSchema = section(
  {
    slot: z
      .number({ error: hint('the button/spiral number, a whole number from 1, e.g. slot: 1') })
      .check(
        z.int({ error: 'must be a whole number from 1, e.g. slot: 1' }),
        z.positive({ error: 'must be a whole number from 1, e.g. slot: 1' }),
        z.lte(MAX_SLOT, { error: `must be a whole number from 1 to ${MAX_SLOT}, e.g. slot: 1` }),
      ),
    sku: z
      .string({ error: hint('the product sku as listed in the relay catalog, e.g. sku: COLA-350') })
      .check(z.minLength(1, { error: 'must not be empty: write the product sku from the relay catalog' })),
    stock: z
      .number({ error: hint('how many units are loaded, e.g. stock: 8') })
      .check(z.int({ error: 'must be a whole number of units, e.g. stock: 8' }), z.nonnegative({ error: 'must be 0 or more units' })),
  },
  '- { slot: 1, sku: COLA-350, stock: 8 }',
);

// buttons, dispenser and gpio (drivers, pins, hardware profiles): src/agent/hardware-config.ts
export const hardwareSchema = withProfile(
  section(
    {
      profile: z.optional(profileInfoSchema),
      gpio: z.optional(gpioSchema),
      buttons: z._default(buttonsSchema, { driver: 'keyboard' }),
      dispenser: z._default(dispenserSchema, DISPENSER_DEFAULT),
      // one device behind both buttons and dispenser; the receipt printer (src/devices/serial/config.ts)
      serialPanel: z.optional(serialPanelSchema),
      mdb: z.optional(mdbSchema),
      dex: z.optional(dexSchema),
      printer: z.optional(printerSchema),
      display: z._default(
        section(
          {
            driver: z._default(
              z.enum(['terminal', 'framebuffer', 'web', 'log', 'none'], { error: 'use one of terminal, framebuffer, web, log, none' }),
              'terminal',
            ),
            // optional, defaults applied by createDisplay (src/devices/display.ts)
            rotation: z.optional(
              z.union([z.literal(0), z.literal(90), z.literal(180), z.literal(270)], {
                error: 'use 0, 90, 180 or 270 (degrees clockwise the picture is turned to match how the panel is mounted)',
              }),
            ),
            framebuffer: z.optional(
              section(
                {
                  device: z.optional(
                    z
                      .string({ error: hint('the framebuffer device, e.g. device: /dev/fb0 (`ls /dev/fb*`)') })
                      .check(z.regex(/^\//, { error: 'write an absolute path, e.g. /dev/fb0 or /dev/fb1' })),
                  ),
                  sysfs: z.optional(
                    z
                      .string({ error: hint("the device's sysfs folder, e.g. sysfs: /sys/class/graphics/fb0") })
                      .check(z.regex(/^\//, { error: 'write an absolute path, e.g. /sys/class/graphics/fb0' })),
                  ),
                },
                'framebuffer: { device: /dev/fb0 }',
              ),
            ),
            web: z.optional(
              section(
                {
                  host: z.optional(z.literal('127.0.0.1', { error: 'the kiosk page is served on loopback only: host: 127.0.0.1 (or leave it out)' })),
                  port: z.optional(
                    z
                      .number({ error: hint('the local port of the kiosk page, e.g. port: 8090') })
                      .check(
                        z.int({ error: 'must be a whole number from 1 to 65535, e.g. 8090' }),
                        z.gte(1, { error: 'must be a whole number from 1 to 65535, e.g. 8090' }),
                        z.lte(65535, { error: 'must be a whole number from 1 to 65535, e.g. 8090' }),
                      ),
                  ),
                },
                'web: { port: 8090 }',
              ),
            ),
          },
          'display: { driver: terminal }',
        ),
        { driver: 'terminal' },
      ),
    },
    'hardware: { profile: gpio-spiral-4 } or { buttons: {driver: keyboard}, dispenser: {driver: sim}, display: {driver: terminal} }',
  ),
);

export const AgentConfigSchema = section(
  {
    kioskId: z
      .string({ error: hint('the kiosk id registered at the relay, e.g. kioskId: kiosk-01') })
      .check(z.regex(/^[A-Za-z0-9_.-]{1,64}$/, { error: 'use letters, digits, "-", "_" or "." (at most 64), e.g. kiosk-01' })),
    relay: relaySchema,
    journal: z._default(
      section(
        {
          path: z.string({ error: hint('where the agent keeps its SQLite journal, e.g. path: /var/lib/qrkiosk/agent.sqlite') }).check(z.minLength(1)),
        },
        'journal: { path: /var/lib/qrkiosk/agent.sqlite }',
      ),
      { path: '/var/lib/qrkiosk/agent.sqlite' },
    ),
    control: z._default(
      section(
        {
          socket: z._default(
            z
              .string({ error: hint('unix socket path for technician commands, e.g. socket: /run/qrkiosk/agent.sock') })
              .check(z.minLength(1), z.maxLength(100, { error: 'unix socket paths must be short (<= 100 characters): pick a shorter path' })),
            '/run/qrkiosk/agent.sock',
          ),
          group: z.optional(
            z.union([z.string().check(z.minLength(1)), z.number().check(z.int(), z.nonnegative())], {
              error: 'write a group name or numeric gid allowed to use the socket, e.g. group: qrkiosk',
            }),
          ),
        },
        'control: { socket: /run/qrkiosk/agent.sock }',
      ),
      { socket: '/run/qrkiosk/agent.sock' },
    ),
    payment: z._default(
      section(
        {
          deadlineSeconds: z._default(
            z
              .number({ error: hint('seconds the QR stays payable, e.g. deadlineSeconds: 90') })
              .check(
                z.positive({ error: 'must be more than 0 seconds, e.g. 90' }),
                z.lte(600, { error: 'use at most 600 seconds; customers do not wait longer' }),
              ),
            90,
          ),
        },
        'payment: { deadlineSeconds: 90 }',
      ),
      { deadlineSeconds: 90 },
    ),
    locale: z.optional(
      z
        .string({ error: hint('screen language, e.g. locale: es-AR (es, pt or en)') })
        .check(z.regex(/^(es|pt|en)([-_][A-Za-z]{2})?$/, { error: 'use es, pt or en, optionally with a region: es-AR, pt-BR, en' })),
    ),
    slots: z
      .array(slotSchema, { error: hint('list the slots: slots: [{ slot: 1, sku: COLA-350, stock: 8 }]') })
      .check(z.minLength(1, { error: 'list at least one slot: slots: [{ slot: 1, sku: COLA-350, stock: 8 }]' })),
    hardware: z._default(hardwareSchema, {
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
).check(
  z.superRefine((c, ctx) => {
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
    // one pin per function; every slot has a motor when the dispenser is on GPIO
    checkHardware(
      c.hardware,
      c.slots.map((s) => s.slot),
      (i) => ctx.addIssue({ code: 'custom', ...i }),
    );
    // serial panel / MDB: the port section is there, MDB on both sides, items map to listed slots
    checkSerialHardware(c.hardware, c.slots, (path, message) => ctx.addIssue({ code: 'custom', path, message }));
  }),
);

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
  const base = dirname(resolve(path));
  // a relative hardware.profile path is relative to this file, like the other paths
  const cfg = withProfileBase(base, () => loadConfigFile(path, AgentConfigSchema));
  const abs = (p: string) => (isAbsolute(p) ? p : resolve(base, p));
  cfg.journal.path = abs(cfg.journal.path);
  cfg.control.socket = abs(cfg.control.socket);
  if (cfg.relay.tokenFile) cfg.relay.tokenFile = abs(cfg.relay.tokenFile);
  const disp = cfg.hardware.dispenser;
  if (disp.driver === 'sim' && disp.sim.pulseLog) disp.sim.pulseLog = abs(disp.sim.pulseLog);
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
