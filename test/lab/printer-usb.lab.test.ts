import { afterEach, describe, expect, it } from 'vitest';
import { FaultLog } from '../../src/devices/faults.js';
import { DeviceFileTransport, ReceiptPrinter } from '../../src/devices/printer/printer.js';
import { renderReceipt, type Receipt, type ReceiptLayout } from '../../src/devices/printer/receipt.js';
import { waitFor } from '../helpers/wait.js';
import { openByUs, UsbPrinter } from './helpers/usb-printer.js';

// The receipt printer driver, unchanged, writing to a real /dev/usb/lp0 made by the kernel's usblp
// driver for a USB printer (dummy_hcd + the printer gadget, test/lab/helpers/usb-printer.ts). A
// printer that refuses data makes usblp hold the transfer with no deadline of its own: the driver
// must give up at its own deadline without a blocked thread, and a printer that comes back must
// print the next receipt exactly, with nothing of the one that was given up.

const LAYOUT: ReceiptLayout = { width: 32, charset: 'cp858', codeTable: 19, header: ['Kiosco Lab'], qrText: '{orderId}', qrModuleSize: 6, cut: 'partial', locale: 'es-AR' };
const receipt = (n: number): Receipt => ({ orderId: `ord_LABPRINT${String(n).padStart(10, '0')}`, product: 'Café con leche', amount: 150000, currency: 'ARS', paymentId: `pay_${n}`, time: '2026-12-01 10:00', kioskId: 'kiosk-lab' });

let printer: UsbPrinter | undefined;
afterEach(async () => {
  await printer?.destroy();
  printer = undefined;
});

describe('USB receipt printer through the kernel usblp driver', () => {
  it('refusing data: print_failed at the deadline; once it takes data the next receipt arrives byte for byte, nothing of the refused one', async () => {
    printer = await UsbPrinter.plug();
    const p = printer;
    const faults = new FaultLog();
    const device = `printer device file ${p.device}`;
    const rp = new ReceiptPrinter(new DeviceFileTransport(p.device), LAYOUT, undefined, faults, 3000);

    const started = Date.now();
    const refused = await rp.print(receipt(1));
    expect(Date.now() - started).toBeGreaterThanOrEqual(3000);
    expect(refused).toMatchObject({ ok: false, error: `printer ${p.device} did not accept data for 3000 ms (paper out, cover open, jammed or offline?)` });
    expect(faults.active()).toEqual([expect.objectContaining({ device, kind: 'print_failed' })]);
    expect(openByUs(p.device)).toBe(false); // the send closed the device: usblp dropped the pending block

    p.take();
    const second = receipt(2);
    const printed = await rp.print(second);
    expect(printed).toMatchObject({ ok: true, bytes: renderReceipt(second, LAYOUT).length });
    const want = renderReceipt(second, LAYOUT);
    // resolved once usblp's last block reached the printer: every byte is on its side already
    await waitFor('the printer to hand the receipt to its mechanism', () => p.received.length >= want.length, 30_000);
    expect(p.received.equals(want)).toBe(true);
    expect(faults.active()).toEqual([]);
    expect(rp.health()).toMatchObject({ printed: 1, failed: 1 });
  });

  it('unplugged while refusing data: "unplugged while printing"; then "not present" until it is back', async () => {
    printer = await UsbPrinter.plug();
    const p = printer;
    const path = p.device;
    const rp = new ReceiptPrinter(new DeviceFileTransport(path), LAYOUT, undefined, new FaultLog(), 120_000);
    const stuck = rp.print(receipt(3));
    await waitFor('the send to hold the printer open', () => openByUs(path), 30_000);
    await p.unplug();
    expect(await stuck).toMatchObject({ ok: false, error: `printer ${path}: unplugged while printing` });
    expect(await rp.print(receipt(4))).toMatchObject({ ok: false, error: `cannot open printer ${path}: not present (USB cable? power?)` });
  });
});
