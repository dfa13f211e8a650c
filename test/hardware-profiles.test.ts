import { copyFileSync, readFileSync, readdirSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { parse as parseYaml } from 'yaml';
import { loadAgentConfig, parseAgentConfig, parseAgentConfigText, type AgentConfig } from '../src/agent/config.js';
import { BUNDLED_PROFILES_DIR, mergeHardware } from '../src/agent/hardware-config.js';
import { gpioPins } from '../src/agent/hardware.js';
import { ConfigError } from '../src/runtime/config-file.js';
import { tempDir } from './agent-helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const BASE = `kioskId: k1
relay: { url: 'ws://relay.example/v1/kiosk', token: abcdefghijklmnop }
slots:
  - { slot: 1, sku: A, stock: 1 }
  - { slot: 2, sku: B, stock: 1 }
`;

function cfg(hardware: string, slots = ''): AgentConfig {
  return parseAgentConfigText(BASE + slots + hardware, 'agent.yaml');
}

function err(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

/** physical header pin of each BCM number (the same on Pi 3, 4 and 5) */
const PHYSICAL: Record<number, number> = {
  2: 3, 3: 5, 4: 7, 14: 8, 15: 10, 17: 11, 18: 12, 27: 13, 22: 15, 23: 16, 24: 18, 10: 19, 9: 21, 25: 22, 11: 23, 8: 24, 7: 26,
  5: 29, 6: 31, 12: 32, 13: 33, 19: 35, 16: 36, 26: 37, 20: 38, 21: 40,
};

describe('hardware profiles', () => {
  const profiles = readdirSync(BUNDLED_PROFILES_DIR).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5));

  it('the bundled GPIO, HID and keypad profiles exist', () => {
    expect(profiles).toEqual(expect.arrayContaining(['gpio-spiral-4', 'arcade-hid-6', 'keypad-spiral-12']));
  });

  for (const name of readdirSync(BUNDLED_PROFILES_DIR).filter((f) => f.endsWith('.yaml')).map((f) => f.slice(0, -5))) {
    it(`${name} is a valid profile an agent config can name`, () => {
      const c = cfg(`hardware:\n  profile: ${name}\n`);
      expect(c.hardware.profile).toMatchObject({ name, source: join(BUNDLED_PROFILES_DIR, `${name}.yaml`), description: expect.any(String) });
    });
  }

  it('gpio-spiral-4 gives the documented drivers and pins', () => {
    const c = cfg('hardware:\n  profile: gpio-spiral-4\n');
    expect(c.hardware.buttons).toEqual({ driver: 'gpio', pins: { 1: 17, 2: 27, 3: 22, 4: 23 }, cancel: 24, activeLow: true, pull: 'up', debounceMs: 30, holdToCancelMs: 0, stuckMs: 10_000 });
    expect(c.hardware.dispenser).toMatchObject({ driver: 'gpio', pulseMs: 250, maxPulseMs: 2000, motors: { activeLow: true, pins: { 1: 5, 2: 6, 3: 13, 4: 26 } }, sensor: { pin: 16, activeLow: false, pull: 'up' } });
    expect(c.hardware.gpio).toEqual({ backend: 'auto', sysfsRoot: '/sys/class/gpio' });
    expect(gpioPins(c).sort((a, b) => a - b)).toEqual([5, 6, 13, 16, 17, 22, 23, 24, 26, 27]);
  });

  it('keys next to the profile override it key by key; another driver replaces the section', () => {
    const c = cfg('hardware:\n  profile: gpio-spiral-4\n  dispenser: { pulseMs: 300, motors: { pins: { 5: 19 } } }\n  buttons: { driver: sim }\n');
    expect(c.hardware.dispenser).toMatchObject({ driver: 'gpio', pulseMs: 300, dropWindowMs: 1500, motors: { activeLow: true, pins: { 1: 5, 2: 6, 3: 13, 4: 26, 5: 19 } } });
    expect(c.hardware.buttons).toEqual({ driver: 'sim' });
    expect(mergeHardware({ a: { driver: 'x', k: 1 }, b: 2 }, { a: { driver: 'y' }, c: 3 })).toEqual({ a: { driver: 'y' }, b: 2, c: 3 });
  });

  it('a profile by path is relative to the config file; an already parsed config parses again unchanged', () => {
    const { dir, cleanup } = tempDir('qrk-prof-');
    cleanups.push(cleanup);
    copyFileSync(join(BUNDLED_PROFILES_DIR, 'gpio-spiral-4.yaml'), join(dir, 'my-machine.yaml'));
    writeFileSync(join(dir, 'agent.yaml'), `${BASE}hardware:\n  profile: ./my-machine.yaml\n`);
    const c = loadAgentConfig(join(dir, 'agent.yaml'));
    expect(c.hardware.profile).toMatchObject({ name: 'my-machine', source: join(dir, 'my-machine.yaml') });
    expect(parseAgentConfig(c)).toEqual(c);
  });

  it('mistakes in a profile are reported with the profile file and line', () => {
    const { dir, cleanup } = tempDir('qrk-prof-');
    cleanups.push(cleanup);
    writeFileSync(join(dir, 'bad.yaml'), 'description: broken\nbuttons:\n  driver: gpio\n  pins: { 1: 40 }\n');
    writeFileSync(join(dir, 'agent.yaml'), `${BASE}hardware:\n  profile: bad.yaml\n`);
    const m = err(() => loadAgentConfig(join(dir, 'agent.yaml')));
    expect(m).toContain('agent.yaml:7: key "hardware.profile":');
    expect(m).toContain(`${join(dir, 'bad.yaml')}:4: key "buttons.pins.1": the 40-pin header has GPIO2-GPIO27: write the BCM number (GPIO17 = 17), not the physical pin number`);
    writeFileSync(join(dir, 'nested.yaml'), 'profile: gpio-spiral-4\n');
    writeFileSync(join(dir, 'agent2.yaml'), `${BASE}hardware:\n  profile: nested.yaml\n`);
    expect(err(() => loadAgentConfig(join(dir, 'agent2.yaml')))).toContain('a profile cannot name another profile');
  });

  it('a profile must say its relay polarity (motors.activeLow): no default can be right for every board', () => {
    const { dir, cleanup } = tempDir('qrk-prof-');
    cleanups.push(cleanup);
    const text = readFileSync(join(BUNDLED_PROFILES_DIR, 'gpio-spiral-4.yaml'), 'utf8');
    const without = text.replace(/^\s+activeLow: true\s+# IN low = relay on.*\n/m, '');
    expect(without).not.toBe(text);
    writeFileSync(join(dir, 'mine.yaml'), without);
    writeFileSync(join(dir, 'agent.yaml'), `${BASE}hardware:\n  profile: mine.yaml\n`);
    expect(err(() => loadAgentConfig(join(dir, 'agent.yaml')))).toMatch(/mine\.yaml: key "dispenser\.motors\.activeLow": missing: write activeLow: true or false/);
    // every bundled profile with GPIO motors writes it out
    for (const name of profiles) {
      const raw = parseYaml(readFileSync(join(BUNDLED_PROFILES_DIR, `${name}.yaml`), 'utf8')) as { dispenser?: { driver?: string; motors?: { activeLow?: unknown } } };
      if (raw.dispenser?.driver === 'gpio') expect(typeof raw.dispenser.motors?.activeLow, name).toBe('boolean');
    }
  });
});

describe('hardware config errors name the key and the fix', () => {
  it.each([
    ['hardware:\n  profile: gpio-spirl-4\n', /key "hardware\.profile": there is no bundled profile "gpio-spirl-4" \(bundled: .*gpio-spiral-4.*\)/],
    ['hardware:\n  profile: 4\n', /key "hardware\.profile": write a profile name \(.*gpio-spiral-4.*\) or a path/],
    ['hardware:\n  buttons: { driver: gpoi }\n', /key "hardware\.buttons\.driver": use one of keyboard, sim, none, gpio, hid, evdev/],
    ['hardware:\n  buttons: { driver: gpio, pins: { 1: 1 } }\n', /agent\.yaml:7: key "hardware\.buttons\.pins\.1": GPIO0 and GPIO1 are reserved for the HAT ID EEPROM/],
    ['hardware:\n  buttons: { driver: gpio, pins: {} }\n', /key "hardware\.buttons\.pins": list at least one slot/],
    ['hardware:\n  buttons: { driver: gpio, pins: { 1: 17 }, pull: down }\n', /key "hardware\.buttons\.pull": a button to GND \(activeLow: true\) needs pull: up/],
    ['hardware:\n  buttons: { driver: gpio, pins: { 1: 17 }, holdToCancelMs: 100 }\n', /key "hardware\.buttons\.holdToCancelMs": use 0 \(off\) or 500-30000 ms/],
    ['hardware:\n  buttons: { driver: gpio, pins: { 1: 17, 2: 17 } }\n', /key "hardware\.buttons\.pins\.2": GPIO17 is already used by hardware\.buttons\.pins\.1: give each function its own pin/],
    [
      'hardware:\n  profile: gpio-spiral-4\n  buttons: { pins: { 2: 16 } }\n',
      /key "hardware\.dispenser\.sensor\.pin": GPIO16 is already used by hardware\.buttons\.pins\.2/,
    ],
    ['hardware:\n  dispenser: { driver: gpio, motors: { activeLow: true, pins: { 1: 5 } }, sensor: { pin: 16 } }\n', /key "hardware\.dispenser\.motors\.pins": slot 2 \(in slots\) has no motor: add "2: <BCM pin>"/],
    ['hardware:\n  dispenser: { driver: gpio, pulseMs: 3000, motors: { activeLow: true, pins: { 1: 5, 2: 6 } }, sensor: { pin: 16 } }\n', /key "hardware\.dispenser\.pulseMs": must be <= maxPulseMs \(2000\)/],
    ['hardware:\n  dispenser: { driver: gpio, motors: { activeLow: false, pins: { 1: 5, 2: 6 } } }\n', /key "hardware\.dispenser\.sensor": missing: sensor: \{ pin: 16 \}/],
    ['hardware:\n  dispenser: { driver: gpio, motors: { activeLow: true, pin: { 1: 5 } }, sensor: { pin: 16 } }\n', /unknown key\(s\) "pin": fix the spelling or remove it \(allowed here: activeLow, pins\)/],
    ['hardware:\n  buttons: { driver: hid, device: { vendorId: 0x0079, productId: 6 }, buttons: { 1: { byte: 5, mask: 256 } } }\n', /key "hardware\.buttons\.buttons\.1\.mask": .*a byte mask is 0x01-0xff/],
    ['hardware:\n  buttons: { driver: evdev, device: /dev/input/event0, keys: { KP11: 1 } }\n', /key "hardware\.buttons\.keys\.KP11": unknown key "KP11"/],
    ['hardware:\n  buttons: { driver: evdev, device: /dev/input/event0 }\n', /key "hardware\.buttons\.keys": entry: direct needs keys/],
    [
      'hardware:\n  dispenser: { driver: gpio, motors: { pins: { 1: 5, 2: 6 } }, sensor: { pin: 16 } }\n',
      /agent\.yaml: key "hardware\.dispenser\.motors\.activeLow": missing: write activeLow: true or false for your relay board\. true = a relay switches ON when its IN pin is LOW \(most opto-isolated relay boards.*touch one IN pin to GND.*every motor turns from the moment the agent starts/,
    ],
    ['hardware:\n  dispenser: { driver: gpio, motors: { activeLow: low, pins: { 1: 5, 2: 6 } }, sensor: { pin: 16 } }\n', /key "hardware\.dispenser\.motors\.activeLow": invalid: write activeLow: true or false/],
    ['hardware:\n  gpio: { backend: pigpio }\n', /key "hardware\.gpio\.backend": use one of auto, onoff, libgpiod/],
  ])('%s', (hw, re) => {
    expect(err(() => cfg(hw))).toMatch(re);
  });

  it('existing configs without a driver keep meaning sim and keyboard', () => {
    const c = cfg('hardware:\n  dispenser: { pulseMs: 100 }\n');
    expect(c.hardware.dispenser).toMatchObject({ driver: 'sim', pulseMs: 100 });
    expect(c.hardware.buttons).toEqual({ driver: 'keyboard' });
  });
});

describe('hardware docs stay true', () => {
  it('every hardware example in docs/config.md is a valid config', () => {
    const doc = readFileSync('docs/config.md', 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n([\s\S]*?)```/g)].map((m) => m[1]!).filter((b) => b.startsWith('hardware:'));
    expect(blocks.length).toBeGreaterThanOrEqual(4);
    const slots = '  - { slot: 3, sku: C, stock: 1 }\n  - { slot: 4, sku: D, stock: 1 }\n';
    for (const b of blocks) expect(() => cfg(b, slots), b).not.toThrow();
  });

  it('WIRING.md has a row for every pin of every GPIO profile, with the right physical pin', () => {
    const wiring = readFileSync('hardware/WIRING.md', 'utf8');
    for (const name of ['gpio-spiral-4', 'arcade-hid-6', 'keypad-spiral-12']) {
      const section = wiring.split(`\n## ${name}\n`)[1]?.split('\n## ')[0];
      expect(section, `WIRING.md section ## ${name}`).toBeDefined();
      // the profile as written (its own schema check is the test above)
      const c = parseYaml(readFileSync(join(BUNDLED_PROFILES_DIR, `${name}.yaml`), 'utf8')) as {
        buttons: { driver: string; pins?: Record<string, number>; cancel?: number };
        dispenser: { driver: string; motors: { pins: Record<string, number> }; sensor: { pin: number } };
      };
      const rows: Array<[string, number]> = [];
      if (c.buttons.driver === 'gpio') {
        for (const [slot, bcm] of Object.entries(c.buttons.pins ?? {})) rows.push([`slot ${slot} button`, bcm]);
        if (c.buttons.cancel !== undefined) rows.push(['cancel button', c.buttons.cancel]);
      }
      if (c.dispenser.driver === 'gpio') {
        for (const [slot, bcm] of Object.entries(c.dispenser.motors.pins)) rows.push([`slot ${slot} motor relay`, bcm]);
        rows.push(['drop sensor', c.dispenser.sensor.pin]);
      }
      expect(rows.length).toBeGreaterThan(4);
      for (const [fn, bcm] of rows) {
        expect(section, `${name}: ${fn}`).toContain(`| ${fn} | GPIO${bcm} | ${PHYSICAL[bcm]} |`);
      }
    }
  });

  it('the udev rules cover every device kind with group qrkiosk, one valid rule per line', () => {
    const rules = readFileSync('hardware/udev/99-qrkiosk.rules', 'utf8')
      .split('\n')
      .filter((l) => l.trim() && !l.startsWith('#'));
    for (const r of rules) {
      for (const part of r.split(/,\s*(?=[A-Z]+(?:\{[^}]+\})?(?:==|!=|=|\+=))/)) {
        expect(part.trim(), r).toMatch(/^[A-Z_]+(\{[A-Za-z_]+\})?(==|!=|=|\+=)"[^"]*"$/);
      }
      expect(r).toMatch(/GROUP="qrkiosk"|chgrp (-R )?qrkiosk/);
    }
    const all = rules.join('\n');
    for (const kind of ['KERNEL=="gpiochip[0-9]*"', '/sys/class/gpio/export', 'SUBSYSTEM=="hidraw"', 'KERNEL=="event[0-9]*"', 'KERNEL=="ttyAMA[0-9]*"', 'KERNEL=="ttyUSB[0-9]*"', 'KERNEL=="fb[0-9]*"', 'SUBSYSTEM=="usbmisc", KERNEL=="lp[0-9]*"', '/sys%p/blank']) {
      expect(all).toContain(kind);
    }
  });
});
