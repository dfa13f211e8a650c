import { readFileSync, readdirSync } from 'node:fs';
import { basename, isAbsolute, join, resolve } from 'node:path';
import { parse as parseYaml } from 'yaml';
import * as z from 'zod/mini';
import { preprocess } from '../runtime/zod.js';
import { ConfigError, parseConfigText } from '../runtime/config-file.js';
import { hint, section } from '../runtime/schema-helpers.js';
import { packageRoot } from '../runtime/package-root.js';
import { keyCode } from '../devices/evdev-keys.js';
import { SERIAL_BUTTON_VARIANTS, SERIAL_DISPENSER_VARIANTS } from '../devices/serial/config.js';

// The `hardware:` part of the agent config: which drivers run, on which pins, and the hardware
// profiles in hardware/profiles/ that a config can name instead of spelling all of it out.
//
//   hardware:
//     profile: gpio-spiral-4          # a bundled profile by name, or a path to a profile file
//     dispenser: { pulseMs: 300 }     # anything written next to it overrides the profile
//     display: { driver: terminal }
//
// Overrides merge key by key into the profile's sections, so `dispenser: { pulseMs: 300 }` keeps
// the profile's pins. A section naming a different `driver` replaces the profile's section as a
// whole (a gpio profile's pin map means nothing to a sim dispenser).
//
// Drivers are discriminated unions on `driver`. To add one, add a variant to BUTTON_VARIANTS or
// DISPENSER_VARIANTS below; the error for an unknown driver lists them automatically.

const slotKey = z.string().check(z.regex(/^[1-9]\d*$/, { error: 'slot numbers are whole numbers from 1, e.g. 1: 17' }));

/** A header pin by BCM number. GPIO0/1 belong to the HAT EEPROM; 28+ are not on the header. */
export function bcmPin(fix: string) {
  return z
    .number({ error: hint(fix) })
    .check(
      z.int({ error: `use a whole BCM number from 2 to 27 (${fix})` }),
      z.gte(2, { error: 'GPIO0 and GPIO1 are reserved for the HAT ID EEPROM: use a BCM number from 2 to 27' }),
      z.lte(27, { error: 'the 40-pin header has GPIO2-GPIO27: write the BCM number (GPIO17 = 17), not the physical pin number' }),
    );
}

function slotPins(fix: string) {
  return z.record(slotKey, bcmPin(fix), { error: hint(fix) }).check(z.refine((m) => Object.keys(m).length > 0, { error: `list at least one slot: ${fix}` }));
}

const pull = z.enum(['up', 'down', 'none', 'as-is'], {
  error: 'use up (button or open-collector sensor to GND), down, none or as-is',
});

const holdToCancelMs = z._default(
  z.number({ error: hint('ms a product button is held to cancel the order, 0 = off, e.g. holdToCancelMs: 2000') }).check(
    z.int(),
    z.refine((v) => v === 0 || (v >= 500 && v <= 30_000), { error: 'use 0 (off) or 500-30000 ms, e.g. 2000' }),
  ),
  0,
);

const stuckMs = z._default(
  z.number({ error: hint('ms a button may stay pressed before it is reported stuck, 0 = off, e.g. stuckMs: 10000') }).check(
    z.int(),
    z.refine((v) => v === 0 || (v >= 1000 && v <= 600_000), { error: 'use 0 (off) or 1000-600000 ms, e.g. 10000' }),
  ),
  10_000,
);

const reconnectMs = z._default(
  z
    .number({ error: hint('ms between attempts to reopen an unplugged device, e.g. reconnectMs: 2000') })
    .check(z.int(), z.gte(100, { error: 'use at least 100 ms' }), z.lte(60_000, { error: 'use at most 60000 ms' })),
  2000,
);

// ---- gpio ---------------------------------------------------------------------------------------

export const gpioSchema = section(
  {
    backend: z._default(z.enum(['auto', 'onoff', 'libgpiod'], { error: 'use one of auto, onoff, libgpiod' }), 'auto'),
    sysfsRoot: z._default(
      z
        .string({ error: hint('the sysfs GPIO folder, e.g. sysfsRoot: /sys/class/gpio') })
        .check(z.regex(/^\//, { error: 'write an absolute path, e.g. /sys/class/gpio' })),
      '/sys/class/gpio',
    ),
    chipLabel: z.optional(
      z.string({ error: hint('label of the GPIO chip of your header when it is not a Raspberry Pi, e.g. chipLabel: pinctrl-bcm2711') }).check(z.minLength(1)),
    ),
    lineNames: z.optional(
      z.record(z.string().check(z.regex(/^\d+$/, { error: 'keys are BCM numbers, e.g. 4: GPIO_GCLK' })), z.string().check(z.minLength(1)), {
        error: hint('BCM number -> line name when a line is not called GPIO<n>, e.g. lineNames: { 4: GPIO_GCLK }'),
      }),
    ),
  },
  'gpio: { backend: auto }',
);

// ---- buttons ------------------------------------------------------------------------------------

const gpioButtons = section(
  {
    driver: z.literal('gpio'),
    pins: slotPins('map slot -> BCM pin of its button, e.g. pins: { 1: 17, 2: 27 }'),
    cancel: z.optional(bcmPin('BCM pin of the cancel button, e.g. cancel: 26')),
    activeLow: z._default(z.boolean({ error: hint('true when a pressed button connects the pin to GND (the usual wiring)') }), true),
    pull: z._default(pull, 'up'),
    debounceMs: z._default(
      z
        .number({ error: hint('ms a level must stay stable to count, e.g. debounceMs: 30') })
        .check(
          z.int(),
          z.gte(1, { error: 'use at least 1 ms (5-50 suits push buttons)' }),
          z.lte(500, { error: 'use at most 500 ms or presses feel sluggish' }),
        ),
      30,
    ),
    holdToCancelMs,
    stuckMs,
  },
  'buttons: { driver: gpio, pins: { 1: 17 } }',
).check(
  z.superRefine((b, ctx) => {
    if (b.activeLow && b.pull === 'down') {
      ctx.addIssue({
        code: 'custom',
        path: ['pull'],
        message: 'a button to GND (activeLow: true) needs pull: up; with pull: down it never reads released',
      });
    }
    if (!b.activeLow && b.pull === 'up') {
      ctx.addIssue({ code: 'custom', path: ['pull'], message: 'a button to 3.3 V (activeLow: false) needs pull: down (or none with an external resistor)' });
    }
  }),
);

const hidBit = section(
  {
    byte: z.number({ error: hint('byte offset in the report, e.g. byte: 5') }).check(z.int(), z.gte(0), z.lte(63, { error: 'reports are at most 64 bytes' })),
    mask: z.number({ error: hint('bit mask in that byte, e.g. mask: 0x10') }).check(z.int(), z.gte(1), z.lte(255, { error: 'a byte mask is 0x01-0xff' })),
  },
  '{ byte: 5, mask: 0x10 }',
);

const hidButtons = section(
  {
    driver: z.literal('hid'),
    device: section(
      {
        vendorId: z.number({ error: hint('USB vendor id as lsusb shows it, e.g. vendorId: 0x0079') }).check(z.int(), z.gte(0), z.lte(0xffff)),
        productId: z.number({ error: hint('USB product id as lsusb shows it, e.g. productId: 0x0006') }).check(z.int(), z.gte(0), z.lte(0xffff)),
        path: z.optional(z.string().check(z.regex(/^\//, { error: 'an absolute hidraw path, e.g. /dev/hidraw0' }))),
        serialNumber: z.optional(z.string().check(z.minLength(1))),
      },
      'device: { vendorId: 0x0079, productId: 0x0006 }',
    ),
    buttons: z
      .record(slotKey, hidBit, { error: hint('map slot -> bit of its button, e.g. buttons: { 1: { byte: 5, mask: 0x10 } }') })
      .check(z.refine((m) => Object.keys(m).length > 0, { error: 'map at least one slot' })),
    cancel: z.optional(hidBit),
    holdToCancelMs,
    stuckMs,
    reconnectMs,
  },
  'buttons: { driver: hid, device: { vendorId: 0x0079, productId: 0x0006 }, buttons: { 1: { byte: 5, mask: 0x10 } } }',
);

const keyList = z.array(z.string().check(z.minLength(1)), { error: hint('a list of key names, e.g. [KPDOT, ESC]') });

const evdevButtons = section(
  {
    driver: z.literal('evdev'),
    device: z
      .string({ error: hint('the keypad device, e.g. device: /dev/input/by-id/usb-...-event-kbd (ls /dev/input/by-id/)') })
      .check(z.regex(/^\//, { error: 'write an absolute path, e.g. /dev/input/by-id/usb-...-event-kbd' })),
    entry: z._default(z.enum(['direct', 'code'], { error: 'use direct (one key per slot) or code (type the slot number, then Enter)' }), 'direct'),
    keys: z._default(
      z.record(z.string().check(z.minLength(1)), z.number().check(z.int(), z.positive({ error: 'slots are whole numbers from 1' })), {
        error: hint('map key -> slot, e.g. keys: { KP1: 1, KP2: 2 }'),
      }),
      {},
    ),
    cancelKeys: z._default(keyList, ['KPDOT', 'ESC']),
    enterKeys: z._default(keyList, ['KPENTER', 'ENTER']),
    codeTimeoutMs: z._default(z.number().check(z.int(), z.gte(1000, { error: 'use at least 1000 ms' }), z.lte(60_000)), 5000),
    eventSize: z._default(
      z.union([z.literal('auto'), z.literal(16), z.literal(24)], {
        error: 'use auto (the size the kernel gives the keypad reader: right on any Pi), or force 16 (32-bit) or 24 (64-bit) input_event records',
      }),
      'auto',
    ),
    holdToCancelMs,
    stuckMs,
    reconnectMs,
  },
  'buttons: { driver: evdev, device: /dev/input/by-id/...-event-kbd, keys: { KP1: 1 } }',
).check(
  z.superRefine((b, ctx) => {
    for (const k of Object.keys(b.keys)) {
      if (keyCode(k) === undefined)
        ctx.addIssue({ code: 'custom', path: ['keys', k], message: `unknown key "${k}": use names like KP1, KP0, KPENTER, 1 or a numeric code` });
    }
    for (const [field, list] of [
      ['cancelKeys', b.cancelKeys],
      ['enterKeys', b.enterKeys],
    ] as const) {
      list.forEach((k, i) => {
        if (keyCode(k) === undefined) ctx.addIssue({ code: 'custom', path: [field, i], message: `unknown key "${k}": use names like KPDOT, ESC, KPENTER` });
      });
    }
    if (b.entry === 'direct' && Object.keys(b.keys).length === 0) {
      ctx.addIssue({ code: 'custom', path: ['keys'], message: 'entry: direct needs keys, e.g. keys: { KP1: 1, KP2: 2 } (or use entry: code)' });
    }
  }),
);

/** Every buttons driver. Add a variant here for a new one. */
export const BUTTON_VARIANTS = [
  section({ driver: z.literal('keyboard') }, 'buttons: { driver: keyboard }'),
  section({ driver: z.literal('sim') }, 'buttons: { driver: sim }'),
  section({ driver: z.literal('none') }, 'buttons: { driver: none }'),
  gpioButtons,
  hidButtons,
  evdevButtons,
  // serial-panel and mdb: the port is in hardware.serialPanel / hardware.mdb (src/devices/serial/config.ts)
  ...SERIAL_BUTTON_VARIANTS,
] as const;

function driverNames(variants: readonly z.core.$ZodType[]): string {
  return variants
    .map((v) => {
      const s = v instanceof z.ZodMiniPipe ? v._zod.def.in : v;
      const driver = (s._zod.def as { shape?: { driver?: z.core.$ZodType } }).shape?.driver;
      const values = (driver?._zod.def as { values?: unknown[] } | undefined)?.values;
      return String(values?.[0] ?? '?');
    })
    .join(', ');
}

/** Fills `driver` when it is left out, so existing configs keep meaning what they meant. */
function withDefaultDriver<T extends z.core.$ZodType>(fallback: string, schema: T) {
  return preprocess((raw: z.input<T>) => {
    if (raw !== null && typeof raw === 'object' && !Array.isArray(raw) && (raw as { driver?: unknown }).driver === undefined) {
      return { driver: fallback, ...(raw as object) };
    }
    return raw;
  }, schema);
}

export const buttonsSchema = withDefaultDriver(
  'keyboard',
  z.discriminatedUnion('driver', [...BUTTON_VARIANTS], { error: `use one of ${driverNames(BUTTON_VARIANTS)}` }),
);

// ---- dispenser ----------------------------------------------------------------------------------

const pulseMs = z._default(z.number({ error: hint('motor pulse length in ms, e.g. pulseMs: 250') }).check(z.int(), z.positive(), z.lte(10_000)), 250);
const dropWindowMs = z._default(
  z.number({ error: hint('ms to watch the drop sensor after each pulse ends, e.g. dropWindowMs: 1500') }).check(z.int(), z.positive(), z.lte(30_000)),
  1500,
);
const maxPulses = z._default(
  z
    .number({ error: hint('pulses to try before giving up, e.g. maxPulses: 2') })
    .check(z.int(), z.gte(1, { error: 'must be at least 1' }), z.lte(5, { error: 'use at most 5: more risks dropping two products' })),
  2,
);

const simSchema = section(
  {
    fault: z._default(z.enum(['none', 'jam', 'no_drop', 'slow_drop'], { error: 'use one of none, jam, no_drop, slow_drop' }), 'none'),
    dropDelayMs: z._default(z.number({ error: hint('ms after the pulse starts when the product falls, e.g. 120') }).check(z.int(), z.nonnegative()), 120),
    slowDropMs: z._default(z.number({ error: hint('ms after the pulse starts when a slow product falls, e.g. 2000') }).check(z.int(), z.nonnegative()), 2000),
    pulseLog: z.optional(z.string({ error: hint('a file path; the simulated motor appends one JSON line per pulse') }).check(z.minLength(1))),
  },
  'sim: { fault: none }',
);

const simDispenser = section(
  {
    driver: z.literal('sim'),
    pulseMs,
    dropWindowMs,
    maxPulses,
    sim: z._default(simSchema, { fault: 'none', dropDelayMs: 120, slowDropMs: 2000 }),
  },
  'dispenser: { driver: sim }',
);

/** How to tell a relay board's polarity: the message of a missing or wrong motors.activeLow. */
export const MOTOR_POLARITY_HELP =
  'write activeLow: true or false for your relay board. true = a relay switches ON when its IN pin is LOW ' +
  '(most opto-isolated relay boards, the ones marked "low level trigger"); false = ON when IN is HIGH. ' +
  "To tell: with the agent stopped and the motors' supply unplugged, power the board and touch one IN pin " +
  'to GND with a wire: if that relay clicks (its LED lights), write true. Wrong here means every motor ' +
  'turns from the moment the agent starts.';

const gpioDispenser = section(
  {
    driver: z.literal('gpio'),
    pulseMs,
    maxPulseMs: z._default(
      z
        .number({ error: hint('the longest a motor output may ever stay on, in ms, e.g. maxPulseMs: 2000') })
        .check(z.int(), z.positive(), z.lte(10_000, { error: 'use at most 10000 ms: a spiral motor on longer than that is stuck' })),
      2000,
    ),
    dropWindowMs,
    maxPulses,
    motors: section(
      {
        // Required, never defaulted: with the wrong polarity the level the agent holds as "off"
        // switches every motor ON from the agent's start (see MOTOR_POLARITY_HELP)
        activeLow: z.boolean({ error: (iss) => `${iss.input === undefined ? 'missing' : 'invalid'}: ${MOTOR_POLARITY_HELP}` }),
        pins: slotPins('map slot -> BCM pin of its motor relay, e.g. pins: { 1: 5, 2: 6 }'),
      },
      'motors: { activeLow: true, pins: { 1: 5 } } (activeLow: true for most relay boards; see hardware/TROUBLESHOOTING.md)',
    ),
    sensor: section(
      {
        pin: bcmPin('BCM pin of the drop sensor output, e.g. pin: 16'),
        activeLow: z._default(z.boolean({ error: hint('true when the sensor output goes LOW while the beam is interrupted') }), false),
        pull: z._default(pull, 'up'),
        clearMs: z._default(
          z
            .number({ error: hint('ms after a drop by which the beam must be clear again, 0 = no check, e.g. clearMs: 3000') })
            .check(z.int(), z.nonnegative(), z.lte(60_000)),
          3000,
        ),
      },
      'sensor: { pin: 16 }',
    ),
    feedback: z.optional(
      section(
        {
          pins: slotPins('map slot -> BCM pin of its motor cam/home switch, e.g. pins: { 1: 12 }'),
          activeLow: z._default(z.boolean(), true),
          pull: z._default(pull, 'up'),
        },
        'feedback: { pins: { 1: 12 } }',
      ),
    ),
  },
  'dispenser: { driver: gpio, motors: { activeLow: true, pins: { 1: 5 } }, sensor: { pin: 16 } }',
).check(
  z.superRefine((d, ctx) => {
    if (d.pulseMs > d.maxPulseMs) {
      ctx.addIssue({
        code: 'custom',
        path: ['pulseMs'],
        message: `must be <= maxPulseMs (${d.maxPulseMs}): raise maxPulseMs only if the motor really needs it`,
      });
    }
  }),
);

/** Every dispenser driver. Add a variant here for a new one. */
export const DISPENSER_VARIANTS = [simDispenser, gpioDispenser, ...SERIAL_DISPENSER_VARIANTS] as const;

export const dispenserSchema = withDefaultDriver(
  'sim',
  z.discriminatedUnion('driver', [...DISPENSER_VARIANTS], { error: `use one of ${driverNames(DISPENSER_VARIANTS)}` }),
);

export const DISPENSER_DEFAULT = {
  driver: 'sim' as const,
  pulseMs: 250,
  dropWindowMs: 1500,
  maxPulses: 2,
  sim: { fault: 'none' as const, dropDelayMs: 120, slowDropMs: 2000 },
};

/** What `hardware.profile` became after loading: shown by `qrkiosk hardware`. */
export const profileInfoSchema = z.object({ name: z.string(), source: z.string(), description: z.optional(z.string()) });

// ---- profiles -----------------------------------------------------------------------------------

/** hardware/profiles/ of the package (the checkout or the installed release) */
export const BUNDLED_PROFILES_DIR = join(packageRoot(), 'hardware', 'profiles');

const PROFILE_NAME = /^[a-z0-9][a-z0-9-]*$/;

// Relative profile paths are relative to the config file, like every other path in it. The schema
// cannot receive that folder as an argument, so loadAgentConfig sets it around the (synchronous)
// parse with withProfileBase.
let profileBase: string | undefined;

export function withProfileBase<T>(dir: string, fn: () => T): T {
  const prev = profileBase;
  profileBase = dir;
  try {
    return fn();
  } finally {
    profileBase = prev;
  }
}

export function bundledProfiles(): string[] {
  try {
    return readdirSync(BUNDLED_PROFILES_DIR)
      .filter((f) => f.endsWith('.yaml'))
      .map((f) => f.slice(0, -'.yaml'.length))
      .sort();
  } catch {
    return [];
  }
}

export function resolveProfilePath(ref: string, base = profileBase ?? process.cwd()): string {
  if (PROFILE_NAME.test(ref)) return join(BUNDLED_PROFILES_DIR, `${ref}.yaml`);
  return isAbsolute(ref) ? ref : resolve(base, ref);
}

function isPlainObject(v: unknown): v is Record<string, unknown> {
  return v !== null && typeof v === 'object' && !Array.isArray(v);
}

function deepMerge(base: Record<string, unknown>, over: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...base };
  for (const [k, v] of Object.entries(over)) {
    const b = out[k];
    out[k] = isPlainObject(b) && isPlainObject(v) ? deepMerge(b, v) : v;
  }
  return out;
}

/** Profile sections overridden by the config's own keys (see the top of this file). */
export function mergeHardware(profile: Record<string, unknown>, inline: Record<string, unknown>): Record<string, unknown> {
  const out: Record<string, unknown> = { ...profile };
  for (const [k, v] of Object.entries(inline)) {
    const p = out[k];
    if (isPlainObject(p) && isPlainObject(v)) {
      out[k] = v.driver !== undefined && v.driver !== p.driver ? v : deepMerge(p, v);
    } else out[k] = v;
  }
  return out;
}

export interface LoadedProfile {
  name: string;
  source: string;
  description?: string;
  /** the profile's hardware keys as written (no defaults applied: the config's keys merge in first) */
  hardware: Record<string, unknown>;
}

/**
 * Reads a profile and checks it on its own against the hardware schema, so a mistake in it is
 * reported with the profile's file and line.
 */
export function loadProfile(ref: string, hardware: z.core.$ZodType, base?: string): LoadedProfile {
  const source = resolveProfilePath(ref, base);
  let text: string;
  try {
    text = readFileSync(source, 'utf8');
  } catch (err) {
    const named = PROFILE_NAME.test(ref);
    throw new ConfigError(
      named
        ? `there is no bundled profile "${ref}" (bundled: ${bundledProfiles().join(', ') || 'none'}); or write a path to your own profile file`
        : `cannot read profile file ${source}: ${(err as Error).message} — write a bundled profile name (${bundledProfiles().join(', ')}) or the right path`,
    );
  }
  const raw: unknown = parseYaml(text) ?? {};
  if (!isPlainObject(raw)) throw new ConfigError(`${source}: a profile is a YAML mapping (description:, gpio:, buttons:, dispenser: ...)`);
  const { description, name: _name, ...hw } = raw;
  if ('profile' in hw) throw new ConfigError(`${source}: key "profile": a profile cannot name another profile; copy the keys you need`);
  // validate the profile alone, with its own line numbers (description/name are profile metadata)
  const profileSchema = preprocess((v: unknown) => {
    if (!isPlainObject(v)) return v;
    const { description: _d, name: _n, ...rest } = v;
    return rest;
  }, hardware);
  parseConfigText(text, profileSchema, source);
  return {
    name: PROFILE_NAME.test(ref) ? ref : basename(source).replace(/\.ya?ml$/, ''),
    source,
    ...(typeof description === 'string' ? { description } : {}),
    hardware: hw,
  };
}

/**
 * Wraps the hardware section: a `profile:` key is replaced by the profile's keys (with the
 * section's own keys merged over them) before validation.
 */
export function withProfile<T extends z.core.$ZodType>(inner: T) {
  return preprocess((raw: Omit<z.input<T>, 'profile'> & { profile?: string }, ctx) => {
    if (!isPlainObject(raw) || raw.profile === undefined) return raw;
    // an already validated config parsed again (startAgent accepts either): the profile is merged
    if (isPlainObject(raw.profile) && typeof raw.profile.source === 'string' && typeof raw.profile.name === 'string') return raw;
    if (typeof raw.profile !== 'string' || raw.profile.trim() === '') {
      ctx.addIssue({
        code: 'custom',
        path: ['profile'],
        message: `write a profile name (${bundledProfiles().join(', ')}) or a path to a profile file`,
        input: raw.profile,
      });
      return z.NEVER;
    }
    let p: LoadedProfile;
    try {
      p = loadProfile(raw.profile, inner);
    } catch (err) {
      ctx.addIssue({ code: 'custom', path: ['profile'], message: (err as Error).message, input: raw.profile });
      return z.NEVER;
    }
    const { profile: _p, ...inline } = raw as Record<string, unknown>;
    return {
      ...mergeHardware(p.hardware, inline),
      profile: { name: p.name, source: p.source, ...(p.description ? { description: p.description } : {}) },
    };
  }, inner);
}

// ---- checks across sections ---------------------------------------------------------------------

interface HardwareView {
  buttons: { driver: string };
  dispenser: { driver: string };
}
type GpioButtonsView = { pins?: Record<string, number>; cancel?: number };
type GpioDispenserView = { motors?: { pins: Record<string, number> }; sensor?: { pin: number }; feedback?: { pins: Record<string, number> } };

/**
 * One pin, one function; every slot of the config has a motor when the dispenser is on GPIO.
 * `path` is where the hardware section sits in the config (["hardware"]).
 */
export function checkHardware(
  hw: HardwareView,
  slots: number[],
  addIssue: (issue: { path: Array<string | number>; message: string }) => void,
  path: Array<string | number> = ['hardware'],
): void {
  const used = new Map<number, string>();
  const claim = (bcm: number | undefined, keyPath: Array<string | number>) => {
    if (bcm === undefined) return;
    const key = keyPath.join('.');
    const other = used.get(bcm);
    if (other) addIssue({ path: [...path, ...keyPath], message: `GPIO${bcm} is already used by hardware.${other}: give each function its own pin` });
    else used.set(bcm, key);
  };
  if (hw.buttons.driver === 'gpio') {
    const b = hw.buttons as GpioButtonsView;
    for (const [slot, bcm] of Object.entries(b.pins ?? {})) claim(bcm, ['buttons', 'pins', slot]);
    claim(b.cancel, ['buttons', 'cancel']);
  }
  if (hw.dispenser.driver === 'gpio') {
    const d = hw.dispenser as GpioDispenserView;
    for (const [slot, bcm] of Object.entries(d.motors?.pins ?? {})) claim(bcm, ['dispenser', 'motors', 'pins', slot]);
    claim(d.sensor?.pin, ['dispenser', 'sensor', 'pin']);
    for (const [slot, bcm] of Object.entries(d.feedback?.pins ?? {})) claim(bcm, ['dispenser', 'feedback', 'pins', slot]);
    const motors = d.motors?.pins ?? {};
    for (const slot of slots) {
      if (motors[String(slot)] === undefined) {
        addIssue({
          path: [...path, 'dispenser', 'motors', 'pins'],
          message: `slot ${slot} (in slots) has no motor: add "${slot}: <BCM pin>" here or remove the slot`,
        });
      }
    }
  }
}
