import { existsSync, readFileSync, writeFileSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { EscPos, encodeText } from '../src/devices/printer/escpos.js';
import { DeviceFileTransport, ReceiptPrinter, SerialPrinterTransport } from '../src/devices/printer/printer.js';
import { renderReceipt, type Receipt, type ReceiptLayout } from '../src/devices/printer/receipt.js';
import { SerialPort } from 'serialport';
import { captureLogger, tempDir } from './agent-helpers.js';
import { PtyPair, skipPty } from './helpers/pty-pair.js';

// ESC/POS output checked byte for byte. The expected streams are written out here by hand from
// the ESC/POS command definitions (Epson reference), not produced by the encoder under test.

const cleanups: Array<() => unknown> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

const hex = (s: string) => Buffer.from(s.replace(/\s+/g, ''), 'hex');
const ascii = (s: string) => Buffer.from(s, 'ascii');
const LF = hex('0A');

const RECEIPT: Receipt = {
  orderId: 'ord_ABCDEFGHIJKLMNOP',
  product: 'Café con leche',
  amount: 150000,
  currency: 'ARS',
  paymentId: '123456789012',
  time: '2025-03-01 14:05',
  kioskId: 'kiosk-01',
};

const LAYOUT: ReceiptLayout = {
  width: 32,
  charset: 'cp858',
  codeTable: 19,
  header: ['Kiosco Centro'],
  qrText: '{orderId}',
  qrModuleSize: 6,
  cut: 'partial',
  locale: 'es-AR',
};

/** The whole receipt, command by command. */
function expectedReceipt(): Buffer {
  return Buffer.concat([
    hex('1B 40'), // ESC @ initialise
    hex('1B 74 13'), // ESC t 19: code table PC858
    hex('1B 61 01'), // ESC a 1: centre
    hex('1B 45 01'), // ESC E 1: bold
    ascii('Kiosco Centro'), LF,
    hex('1B 45 00'),
    ascii('2025-03-01 14:05'), LF,
    hex('1B 61 00'), // left
    ascii('-'.repeat(32)), LF,
    ascii('Caf'), hex('82'), ascii(' con leche'), LF, // é is 0x82 in PC858
    hex('1B 45 01'),
    ascii('Total                 $ 1.500,00'), LF, // 5 + 17 spaces + 10 = 32 columns
    hex('1B 45 00'),
    ascii('-'.repeat(32)), LF,
    ascii('Pago Mercado Pago   123456789012'), LF,
    ascii('Pedido      ord_ABCDEFGHIJKLMNOP'), LF,
    ascii('Kiosco                  kiosk-01'), LF,
    hex('1B 61 01'), // centre the QR
    hex('1D 28 6B 04 00 31 41 32 00'), // GS ( k fn 65: model 2
    hex('1D 28 6B 03 00 31 43 06'), // fn 67: 6 dots per module
    hex('1D 28 6B 03 00 31 45 31'), // fn 69: error correction M
    hex('1D 28 6B 17 00 31 50 30'), ascii('ord_ABCDEFGHIJKLMNOP'), // fn 80: store, 20 bytes + 3 = 0x17
    hex('1D 28 6B 03 00 31 51 30'), // fn 81: print
    hex('AD'), ascii('Gracias por tu compra!'), LF, // ¡ is 0xAD in PC858
    hex('1B 64 03'), // ESC d 3: feed 3 lines
    hex('1D 56 01'), // GS V 1: partial cut
  ]);
}

describe('ESC/POS encoding', () => {
  it('renders the receipt as exactly the expected command stream', () => {
    const got = renderReceipt(RECEIPT, LAYOUT);
    const want = expectedReceipt();
    // hex first, so a mismatch shows where
    expect(got.toString('hex')).toBe(want.toString('hex'));
  });

  it("the QR holds the relay's receipt link when it sent one, else qrText with the order id", () => {
    const link = 'https://relay.example.com/r/ord_1.abcdefghijklmnopqrstuv';
    const store = (data: string) => Buffer.concat([hex('1D 28 6B'), Buffer.from([(data.length + 3) & 0xff, (data.length + 3) >> 8]), hex('31 50 30'), Buffer.from(data)]);
    const withLink = renderReceipt({ ...RECEIPT, link }, LAYOUT);
    expect(withLink.includes(store(link))).toBe(true);
    expect(withLink.includes(store(RECEIPT.orderId))).toBe(false);
    expect(renderReceipt(RECEIPT, { ...LAYOUT, qrText: 'https://shop.example/r/{orderId}' }).includes(store(`https://shop.example/r/${RECEIPT.orderId}`))).toBe(true);
  });

  it('counts the QR store length in UTF-8 bytes, not string length', () => {
    const data = 'Pedido ñandú €'; // 14 characters, 18 UTF-8 bytes
    const got = new EscPos({ charset: 'cp858' }).qr(data, { moduleSize: 4, level: 'H' }).bytes();
    expect(got.toString('hex')).toBe(
      Buffer.concat([
        hex('1D 28 6B 04 00 31 41 32 00'),
        hex('1D 28 6B 03 00 31 43 04'),
        hex('1D 28 6B 03 00 31 45 33'), // H
        hex('1D 28 6B 15 00 31 50 30'), // 18 + 3 = 21 = 0x15 (a .length count would say 0x11)
        hex('50 65 64 69 64 6F 20 C3 B1 61 6E 64 C3 BA 20 E2 82 AC'),
        hex('1D 28 6B 03 00 31 51 30'),
      ]).toString('hex'),
    );
    // more than 255 bytes: the high length byte is used
    const long = new EscPos({ charset: 'ascii' }).qr('A'.repeat(300)).bytes();
    expect(long.subarray(25, 33).toString('hex')).toBe(hex('1D 28 6B 2F 01 31 50 30').toString('hex'));
    expect(() => new EscPos().qr('')).toThrow(/empty/);
    expect(() => new EscPos().qr('x'.repeat(3000))).toThrow(/at most 2331 fit one symbol at error correction M/);
  });

  it('encodes text to PC858, or drops accents for printers without it', () => {
    expect(encodeText('Ñandú €5 ¿?', 'cp858').toString('hex')).toBe(hex('A5 61 6E 64 A3 20 D5 35 20 A8 3F').toString('hex'));
    expect(encodeText('Pão de queijo', 'cp858').toString('hex')).toBe(Buffer.concat([ascii('P'), hex('C6'), ascii('o de queijo')]).toString('hex'));
    expect(encodeText('Café ñandú', 'ascii').toString('ascii')).toBe('Cafe nandu');
    expect(encodeText('日本 →', 'cp858').toString('ascii')).toBe('?? ?');
    // ESC t is only sent when the text is in PC858
    expect(new EscPos({ charset: 'ascii' }).init().bytes().toString('hex')).toBe('1b40');
    expect(new EscPos({ charset: 'cp858', codeTable: 16 }).init().bytes().toString('hex')).toBe('1b40' + '1b7410');
    expect(new EscPos().size(2, 3).cut('full').bytes().toString('hex')).toBe('1d2112' + '1d5600');
  });

  it('wraps a long product name and keeps columns on 80 mm paper', () => {
    const got = renderReceipt({ ...RECEIPT, product: 'Alfajor triple de chocolate con dulce de leche' }, { ...LAYOUT, width: 48, header: [] });
    const text = got.toString('latin1');
    expect(text).toContain('Alfajor triple de chocolate con dulce de leche\n');
    const narrow = renderReceipt({ ...RECEIPT, product: 'Alfajor triple de chocolate con dulce de leche' }, LAYOUT).toString('latin1');
    expect(narrow).toContain('Alfajor triple de chocolate con\ndulce de leche\n');
    expect(text).toContain(`Total${' '.repeat(48 - 5 - 10)}$ 1.500,00\n`);
  });
});

describe('receipt printer transports', () => {
  it('writes to a device file (a stand-in for /dev/usb/lp0), appending job after job', async () => {
    const { dir, cleanup } = tempDir('qrk-lp-');
    cleanups.push(cleanup);
    const lp = join(dir, 'lp0');
    writeFileSync(lp, '');
    const cap = captureLogger();
    const printer = new ReceiptPrinter(new DeviceFileTransport(lp), LAYOUT, cap.logger);
    const a = printer.print(RECEIPT);
    const b = printer.print({ ...RECEIPT, orderId: 'ord_SECONDSECOND0000' });
    expect(await a).toMatchObject({ ok: true, bytes: expectedReceipt().length });
    expect((await b).ok).toBe(true);
    const written = readFileSync(lp);
    expect(written.subarray(0, expectedReceipt().length).equals(expectedReceipt())).toBe(true);
    expect(written.length).toBe(2 * expectedReceipt().length);
    // the same order twice is one receipt
    expect(await printer.print(RECEIPT)).toMatchObject({ ok: true, bytes: 0, error: 'already printed' });
    expect(readFileSync(lp).length).toBe(written.length);
    expect(printer.health()).toMatchObject({ printed: 2, failed: 0 });
  });

  it('a missing printer is an error result, never a created file or a thrown error', async () => {
    const { dir, cleanup } = tempDir('qrk-lp-');
    cleanups.push(cleanup);
    const lp = join(dir, 'lp0');
    const cap = captureLogger();
    const printer = new ReceiptPrinter(new DeviceFileTransport(lp), LAYOUT, cap.logger);
    const r = await printer.print(RECEIPT);
    expect(r).toMatchObject({ ok: false, error: expect.stringMatching(/not present/) });
    expect(existsSync(lp)).toBe(false);
    expect(printer.health()).toMatchObject({ printed: 0, failed: 1, lastError: expect.stringMatching(/not present/) });
    expect(cap.lines.some((l) => String(l.msg).startsWith('receipt not printed'))).toBe(true);
  });
});

describe.skipIf(skipPty)('serial receipt printer over a socat pty pair', () => {
  it('delivers every byte, binary commands included, to the printer end', async () => {
    const { dir, cleanup } = tempDir('qrk-prn-');
    cleanups.push(cleanup);
    const pair = new PtyPair(dir);
    cleanups.push(() => pair.kill());
    await pair.start();
    // the printer's end of the cable, read as raw bytes
    const printerEnd = new SerialPort({ path: pair.b, baudRate: 9600, autoOpen: false });
    await new Promise<void>((resolve, reject) => printerEnd.open((err) => (err ? reject(err) : resolve())));
    cleanups.push(() => new Promise<void>((resolve) => printerEnd.close(() => resolve())));
    const want = expectedReceipt();
    const chunks: Buffer[] = [];
    const all = new Promise<void>((resolve) => {
      let got = 0;
      printerEnd.on('data', (c: Buffer) => {
        chunks.push(c);
        got += c.length;
        if (got >= want.length) resolve();
      });
    });
    const printer = new ReceiptPrinter(new SerialPrinterTransport(pair.a, 9600), LAYOUT);
    expect(await printer.print(RECEIPT)).toMatchObject({ ok: true, bytes: want.length });
    await all;
    expect(Buffer.concat(chunks).toString('hex')).toBe(want.toString('hex'));
  });
});
