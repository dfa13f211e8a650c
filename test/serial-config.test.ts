import { readFileSync } from 'node:fs';
import { describe, expect, it } from 'vitest';
import { parseAgentConfig, parseAgentConfigText } from '../src/agent/config.js';
import { mdbReaderSetup } from '../src/devices/serial/build.js';
import { mdbSetconf } from '../src/devices/mdb/cashless.js';

// Config of the serial devices: errors name the key and say what to write; the bundled
// serial-panel and mdb-retrofit profiles load.

const base = {
  kioskId: 'kiosk-01',
  relay: { url: 'wss://relay.example.com/v1/kiosk', token: 'token-0123456789' },
  slots: [
    { slot: 1, sku: 'COLA', stock: 5 },
    { slot: 2, sku: 'AGUA', stock: 5 },
  ],
};

function errorOf(hardware: unknown): string {
  try {
    parseAgentConfig({ ...base, hardware });
  } catch (err) {
    return (err as Error).message;
  }
  throw new Error('the config was accepted');
}

describe('serial device config', () => {
  it('fills the defaults of serialPanel, mdb and printer', () => {
    const c = parseAgentConfig({
      ...base,
      hardware: {
        buttons: { driver: 'serial-panel' },
        dispenser: { driver: 'serial-panel' },
        serialPanel: { path: '/dev/ttyUSB0' },
        printer: { header: ['Kiosco'] },
      },
    });
    expect(c.hardware.serialPanel).toEqual({
      path: '/dev/ttyUSB0',
      baudRate: 115200,
      heartbeatMs: 1000,
      heartbeatTimeoutMs: 3500,
      ackTimeoutMs: 1000,
      maxSends: 3,
      resultTimeoutMs: 30000,
    });
    expect(c.hardware.printer).toMatchObject({ driver: 'escpos', path: '/dev/usb/lp0', transport: 'auto', width: 32, charset: 'cp858', codeTable: 19, qrText: '{orderId}', cut: 'partial' });
    const m = parseAgentConfig({ ...base, hardware: { buttons: { driver: 'mdb' }, dispenser: { driver: 'mdb' }, mdb: { path: '/dev/ttyACM0', trustMachinePriceWithin: 0.5, items: { 11: 1, 12: 2 } } } });
    expect(m.hardware.mdb).toEqual({ path: '/dev/ttyACM0', baudRate: 115200, trustMachinePriceWithin: '0.5', items: { 11: 1, 12: 2 }, resultTimeoutMs: 60000, selectTimeoutMs: 60000, readSetup: true });
  });

  it('says which key is wrong and what to write', () => {
    expect(errorOf({ buttons: { driver: 'serial-panel' } })).toMatch(/key "hardware.serialPanel": missing: the serial-panel driver needs hardware.serialPanel: \{ path:/);
    expect(errorOf({ buttons: { driver: 'mdb' }, dispenser: { driver: 'sim' }, mdb: { path: '/dev/ttyACM0' } })).toMatch(
      /key "hardware.dispenser.driver": an MDB machine selects and dispenses itself: set both/,
    );
    expect(errorOf({ buttons: { driver: 'mdb' }, dispenser: { driver: 'mdb' } })).toMatch(/key "hardware.mdb": missing: the mdb driver needs hardware.mdb/);
    expect(errorOf({ buttons: { driver: 'mdb' }, dispenser: { driver: 'mdb' }, mdb: { path: '/dev/ttyACM0', items: { 11: 7 } } })).toMatch(
      /key "hardware.mdb.items.11": slot 7 is not in slots\[\]: add it there or map item 11 to a listed slot/,
    );
    expect(errorOf({ buttons: { driver: 'mdb' }, dispenser: { driver: 'mdb' }, mdb: { path: '/dev/ttyACM0', trustMachinePriceWithin: 'lots' } })).toMatch(
      /key "hardware.mdb.trustMachinePriceWithin": write a decimal amount/,
    );
    expect(errorOf({ buttons: { driver: 'serial-panel' }, serialPanel: { path: 'ttyUSB0' } })).toMatch(/key "hardware.serialPanel.path": write an absolute path/);
    expect(errorOf({ buttons: { driver: 'serial-panel' }, serialPanel: { path: '/dev/ttyUSB0', baud: 9600 } })).toMatch(
      /key "hardware.serialPanel": unknown key\(s\) "baud": fix the spelling/,
    );
    expect(errorOf({ serialPanel: { path: '/dev/ttyUSB0', baudRate: 12345 } })).toMatch(/key "hardware.serialPanel.baudRate": use a standard speed/);
    expect(errorOf({ printer: { qrText: 'https://shop.example/r/' } })).toMatch(/key "hardware.printer.qrText": must contain \{orderId\}/);
    expect(errorOf({ printer: { charset: 'utf8' } })).toMatch(/key "hardware.printer.charset": use cp858/);
  });

  it('loads the bundled serial-panel and mdb-retrofit profiles, with the config overriding the port', () => {
    const panel = parseAgentConfigText(
      `kioskId: k1
relay: { url: wss://relay.example.com/v1/kiosk, token: token-0123456789 }
slots: [{ slot: 1, sku: COLA, stock: 5 }]
hardware:
  profile: serial-panel
  serialPanel: { path: /dev/serial/by-id/usb-FTDI_FT232R_A10K3XYZ-if00-port0 }
`,
    );
    expect(panel.hardware.buttons.driver).toBe('serial-panel');
    expect(panel.hardware.dispenser.driver).toBe('serial-panel');
    expect(panel.hardware.serialPanel).toMatchObject({ path: '/dev/serial/by-id/usb-FTDI_FT232R_A10K3XYZ-if00-port0', baudRate: 115200 });
    expect(panel.hardware.profile?.name).toBe('serial-panel');
    const mdb = parseAgentConfigText(
      `kioskId: k1
relay: { url: wss://relay.example.com/v1/kiosk, token: token-0123456789 }
slots: [{ slot: 11, sku: COLA, stock: 9 }]
hardware:
  profile: mdb-retrofit
  mdb: { items: { 11: 11 } }
  printer: { path: /dev/usb/lp0 }
`,
    );
    expect(mdb.hardware.buttons.driver).toBe('mdb');
    expect(mdb.hardware.dispenser.driver).toBe('mdb');
    expect(mdb.hardware.mdb).toMatchObject({ path: '/dev/serial/by-id/usb-Qibixx_MDB-HAT_0-if00', baudRate: 115200, items: { 11: 11 } });
    expect(mdb.hardware.printer?.driver).toBe('escpos');
  });

  it('the hardware examples of docs/config.md are valid', () => {
    const doc = readFileSync('docs/config.md', 'utf8');
    const blocks = [...doc.matchAll(/```yaml\n(hardware:[\s\S]*?)```/g)].map((m) => m[1]!);
    const ours = blocks.filter((b) => /serialPanel|mdb:|printer:/.test(b));
    expect(ours.length).toBeGreaterThanOrEqual(2);
    for (const b of ours) {
      const text = `kioskId: k1\nrelay: { url: wss://relay.example.com/v1/kiosk, token: token-0123456789 }\nslots: [{ slot: 1, sku: A, stock: 1 }, { slot: 2, sku: B, stock: 1 }]\n${b}`;
      expect(() => parseAgentConfigText(text, 'docs/config.md'), b).not.toThrow();
    }
  });
});

describe('MDB style, cashless address, reader setup and the DEX port', () => {
  const mdb = (extra: Record<string, unknown>, buttons = 'mdb') => ({ buttons: { driver: buttons }, dispenser: { driver: 'mdb' }, mdb: { path: '/dev/ttyACM0', ...extra } });

  it('card-first beside a card reader, with the reader setup', () => {
    const c = parseAgentConfig({ ...base, hardware: mdb({ style: 'card-first', address: 2, setup: { currencyCode: '0x1032', decimalPlaces: 2 }, setconf: { 'mdb-level': 3 } }, 'none') });
    expect(c.hardware.mdb).toMatchObject({ style: 'card-first', address: 2, setup: { currencyCode: '0x1032', scaleFactor: 1, decimalPlaces: 2 }, setconf: { 'mdb-level': '3' } });
  });

  it('the reader\'s decimal places follow the currency unless set, and reach the board as C,SETCONF', () => {
    const setupOf = (setup: Record<string, unknown>) => mdbReaderSetup(parseAgentConfig({ ...base, hardware: mdb({ setup }) }).hardware.mdb!);
    expect(setupOf({ currencyCode: '0x1152' })).toEqual({ currencyCode: '0x1152', scaleFactor: 1, decimalPlaces: 0 }); // CLP: whole pesos
    expect(setupOf({ currencyCode: '0x1032' })).toEqual({ currencyCode: '0x1032', scaleFactor: 1, decimalPlaces: 2 }); // ARS
    expect(setupOf({ currencyCode: '0x1032', decimalPlaces: 0, scaleFactor: 5 })).toEqual({ currencyCode: '0x1032', scaleFactor: 5, decimalPlaces: 0 });
    expect(mdbSetconf({ address: 1, ...setupOf({ currencyCode: '0x1152' }) })).toEqual([
      ['mdb-addr', '0x10'],
      ['mdb-currency-code', '0x1152'],
      ['mdb-scale-factor', '1'],
      ['mdb-decimal-places', '0'],
    ]);
    // Qibixx takes 0..3 decimal places and a scale factor of 1..100
    expect(errorOf(mdb({ setup: { decimalPlaces: 4 } }))).toMatch(/hardware.mdb.setup.decimalPlaces/);
    expect(errorOf(mdb({ setup: { scaleFactor: 200 } }))).toMatch(/hardware.mdb.setup.scaleFactor/);
  });

  it('says what is wrong', () => {
    expect(errorOf(mdb({ style: 'card-first' }))).toMatch(/card-first: the customer picks on the kiosk .* not mdb/);
    expect(errorOf(mdb({ address: 3 }))).toMatch(/use 1 \(the only cashless device\) or 2 \(beside a card reader/);
    expect(errorOf(mdb({ setup: { currencyCode: '032' } }))).toMatch(/0x1 followed by the ISO 4217 number, e.g. 0x1032/);
    expect(errorOf(mdb({ style: 'first' }))).toMatch(/use selection-first .* or card-first/);
    expect(errorOf({ ...mdb({}), dex: { path: 'ttyUSB1' } })).toMatch(/key "hardware.dex.path": write an absolute path/);
    expect(errorOf({ ...mdb({}), dex: { path: '/dev/ttyUSB1', protocol: 'usb' } })).toMatch(/use dex \(DEX\/UCS\), ddcmp, or auto/);
  });

  it('fills the DEX port defaults', () => {
    const c = parseAgentConfig({ ...base, hardware: { ...mdb({}), dex: { path: '/dev/ttyUSB1' } } });
    expect(c.hardware.dex).toEqual({ path: '/dev/ttyUSB1', protocol: 'auto', answerMs: 1000, passCode: 0, everyMinutes: 60 });
  });
});
