import { writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { loadAgentConfig, parseAgentConfig, parseAgentConfigText, resolveToken } from '../src/agent/config.js';
import { ConfigError } from '../src/runtime/config-file.js';
import { tempDir } from './agent-helpers.js';

const cleanups: Array<() => void> = [];
afterEach(() => {
  for (const c of cleanups.splice(0)) c();
});

const GOOD = `kioskId: kiosk-01
relay:
  url: wss://relay.example.com/v1/kiosk
  token: abcdefghijklmnop
slots:
  - { slot: 1, sku: COLA, stock: 8 }
`;

function err(fn: () => unknown): string {
  try {
    fn();
  } catch (e) {
    expect(e).toBeInstanceOf(ConfigError);
    return (e as Error).message;
  }
  throw new Error('expected a ConfigError');
}

describe('agent config', () => {
  it('fills the documented defaults', () => {
    const c = parseAgentConfigText(GOOD, 'agent.yaml');
    expect(c.relay.backoff).toEqual({ baseMs: 500, capMs: 60_000 });
    expect(c.relay.pingIntervalSeconds).toBe(15);
    expect(c.control.socket).toBe('/run/qrkiosk/agent.sock');
    expect(c.payment.deadlineSeconds).toBe(90);
    expect(c.hardware.dispenser).toMatchObject({ driver: 'sim', pulseMs: 250, dropWindowMs: 1500, maxPulses: 2, sim: { fault: 'none', dropDelayMs: 120 } });
    expect(c.hardware.buttons.driver).toBe('keyboard');
    expect(c.hardware.display.driver).toBe('terminal');
  });

  it('names the key, the line and the fix', () => {
    const bad = GOOD.replace('wss://relay.example.com/v1/kiosk', 'https://relay.example.com/kiosk');
    const m = err(() => parseAgentConfigText(bad, 'agent.yaml'));
    expect(m).toContain('agent.yaml:3: key "relay.url"');
    expect(m).toContain('ws:// or wss://');
    expect(m).toContain('/v1/kiosk');
  });

  it('reports a missing token, a typo key, a bad enum and duplicate slots', () => {
    expect(err(() => parseAgentConfigText(GOOD.replace('  token: abcdefghijklmnop\n', ''), 'a.yaml'))).toMatch(
      /key "relay\.token": missing: set relay\.token .* or relay\.tokenFile/,
    );
    const typo = `${GOOD}hardware:\n  dispenser:\n    dropWindow: 100\n`;
    expect(err(() => parseAgentConfigText(typo, 'a.yaml'))).toMatch(/key "hardware\.dispenser": unknown key\(s\) "dropWindow".*dropWindowMs/);
    const fault = `${GOOD}hardware:\n  dispenser:\n    sim: { fault: explode }\n`;
    expect(err(() => parseAgentConfigText(fault, 'a.yaml'))).toMatch(/key "hardware\.dispenser\.sim\.fault": use one of none, jam, no_drop, slow_drop/);
    const dup = GOOD + '  - { slot: 1, sku: CHIPS, stock: 2 }\n';
    expect(err(() => parseAgentConfigText(dup, 'a.yaml'))).toMatch(/key "slots\.1\.slot": slot 1 is listed twice/);
    expect(err(() => parseAgentConfig({ kioskId: 'k', relay: { url: 'ws://h/v1/kiosk', token: 'abcdefghijkl' }, slots: [{ slot: 0, sku: 'A', stock: -1 }] }))).toMatch(
      /key "slots\.0\.slot": must be a whole number from 1/,
    );
  });

  it('resolves relative paths against the config file and reads tokenFile', () => {
    const { dir, cleanup } = tempDir('qrk-cfg-');
    cleanups.push(cleanup);
    writeFileSync(join(dir, 'token'), 'file-token-0123456789\n');
    const text = GOOD.replace('  token: abcdefghijklmnop\n', '  tokenFile: token\n') + 'journal: { path: data/agent.sqlite }\ncontrol: { socket: agent.sock }\n';
    writeFileSync(join(dir, 'agent.yaml'), text);
    const c = loadAgentConfig(join(dir, 'agent.yaml'));
    expect(c.journal.path).toBe(join(dir, 'data/agent.sqlite'));
    expect(c.control.socket).toBe(join(dir, 'agent.sock'));
    expect(resolveToken(c)).toBe('file-token-0123456789');
    writeFileSync(join(dir, 'bad.yaml'), text.replace('tokenFile: token', 'tokenFile: missing-token'));
    expect(err(() => loadAgentConfig(join(dir, 'bad.yaml')))).toMatch(/key "relay\.tokenFile": cannot read .*missing-token/);
    // technician commands only need the socket path
    expect(loadAgentConfig(join(dir, 'bad.yaml'), { readToken: false }).control.socket).toBe(join(dir, 'agent.sock'));
  });
});
