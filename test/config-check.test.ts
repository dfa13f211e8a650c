import { spawnSync } from 'node:child_process';
import { mkdtempSync, rmSync, writeFileSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join, resolve } from 'node:path';
import { afterAll, describe, expect, it } from 'vitest';
import { checkConfigFile } from '../src/install/config-check.js';

// `qrkiosk config check`: all mistakes of a file in one run, each with line, key and fix.

const BIN = resolve(import.meta.dirname, '..', 'bin', 'qrkiosk.js');
const dir = mkdtempSync(join(tmpdir(), 'qrkiosk-check-'));
afterAll(() => rmSync(dir, { recursive: true, force: true }));

// five mistakes, on lines 4, 8, 10, 13 and 19
const FIVE = `kioskId: kiosk-01
relay:
  token: qk_0123456789abcdef
  url: wss://relay.example.com/kiosk
journal:
  path: /var/lib/qrkiosk/agent.sqlite
payment:
  deadlineSeconds: ninety
slots:
  - { slot: 0, sku: COLA, stock: 8 }
  - { slot: 2, sku: AGUA, stock: 8 }
hardware:
  buttonz: { driver: keyboard }
  display: { driver: terminal }
  dispenser:
    driver: sim
    pulseMs: 250
    dropWindowMs: 1500
    maxPulses: -1
`;

describe('qrkiosk config check', () => {
  it('reports all five mistakes of a file at once, each with its line, key path and fix', () => {
    const file = join(dir, 'five.yaml');
    writeFileSync(file, FIVE);
    const r = spawnSync(process.execPath, [BIN, 'config', 'check', file, '--no-machine'], { encoding: 'utf8' });
    expect(r.status).toBe(1);
    const lines = r.stdout.split('\n').filter((l) => l.startsWith(file));
    expect(lines).toHaveLength(5);
    expect(lines[0]).toMatch(new RegExp(`^${file}:4: key "relay.url": must be a ws:// or wss:// URL whose path is /v1/kiosk`));
    expect(r.stdout).toMatch(new RegExp(`${file}:8: key "payment.deadlineSeconds": invalid: `));
    expect(r.stdout).toMatch(new RegExp(`${file}:10: key "slots.0.slot": must be a whole number from 1`));
    expect(r.stdout).toMatch(new RegExp(`${file}:13: key "hardware": unknown key\\(s\\) "buttonz": fix the spelling or remove it`));
    expect(r.stdout).toMatch(new RegExp(`${file}:19: key "hardware.dispenser.maxPulses": `));
    expect(r.stdout).toContain('5 problem(s)');
  });

  it('checks the machine: a device that is not there, a missing service user, a relay host that does not resolve', async () => {
    const file = join(dir, 'machine.yaml');
    writeFileSync(
      file,
      FIVE.replace('wss://relay.example.com/kiosk', 'wss://relay.example.com/v1/kiosk')
        .replace('ninety', '90')
        .replace('slot: 0', 'slot: 1')
        .replace('buttonz', 'buttons')
        .replace('maxPulses: -1', 'maxPulses: 2')
        .replace('display: { driver: terminal }', 'display: { driver: framebuffer, framebuffer: { device: /dev/fb-not-here } }'),
    );
    const passwd = join(dir, 'passwd');
    writeFileSync(passwd, 'root:x:0:0:root:/root:/bin/bash\n');
    const report = await checkConfigFile(file, {
      machine: {
        groupFile: '/etc/group',
        passwdFile: passwd,
        user: 'qrkiosk',
        resolve: async (host) => {
          throw new Error(`getaddrinfo ENOTFOUND ${host}`);
        },
      },
    });
    expect(report.kind).toBe('agent');
    expect(report.problems.filter((p) => p.area === 'config')).toEqual([]);
    const machine = report.problems.map((p) => `${p.key}: ${p.message}`);
    expect(machine).toEqual([
      expect.stringMatching(/^\(machine\): there is no user qrkiosk here: run sudo qrkiosk install agent/),
      expect.stringMatching(/^hardware\.display\.framebuffer\.device: \/dev\/fb-not-here does not exist on this machine/),
      expect.stringMatching(/^relay\.url: the relay host relay\.example\.com does not resolve from here \(getaddrinfo ENOTFOUND/),
    ]);
  });

  it('says a good relay config is fine', () => {
    const file = join(dir, 'relay.yaml');
    writeFileSync(file, `publicUrl: https://relay.example.com\nstore: { path: ${join(dir, 'relay.sqlite')} }\nmercadopago: { collectorId: 123 }\ncatalog:\n  - { sku: COLA, name: Cola, price: "1500.00", currency: ARS }\n`);
    const r = spawnSync(process.execPath, [BIN, 'config', 'check', file], { encoding: 'utf8' });
    expect(r.stderr).toBe('');
    expect(r.stdout).toMatch(/relay config is fine, and this machine matches it/);
    expect(r.status).toBe(0);
  });
});
