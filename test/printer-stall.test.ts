import { execFileSync } from 'node:child_process';
import { closeSync, constants, openSync, readSync, writeSync } from 'node:fs';
import { join } from 'node:path';
import { afterEach, describe, expect, it } from 'vitest';
import { startAgent, type Agent } from '../src/agent/agent.js';
import type { HardwareReport } from '../src/agent/hardware.js';
import { FaultLog } from '../src/devices/faults.js';
import { EscPos, QR_MAX_BYTES } from '../src/devices/printer/escpos.js';
import { DeviceFileTransport, PrintTimeout, ReceiptPrinter } from '../src/devices/printer/printer.js';
import type { Receipt, ReceiptLayout } from '../src/devices/printer/receipt.js';
import { FakeRelay, agentConfig, captureLogger, nextEvent, tempDir } from './agent-helpers.js';
import { waitFor } from './helpers/wait.js';

// A USB receipt printer that refuses data (paper out, cover open) makes the kernel's usblp driver
// block write() with no end; opened O_NONBLOCK it answers EAGAIN instead. The stand-in: a FIFO
// whose reader holds it open and never reads, filled to the brim beforehand — every further
// non-blocking write is EAGAIN, a blocking one would wait for ever, exactly like that printer.

const cleanups: Array<() => Promise<void> | void> = [];
afterEach(async () => {
  for (const c of cleanups.splice(0).reverse()) await c();
});

/** A printer that stopped taking data: returns its path and a way to make it take data again. */
function stalledPrinter(dir: string): { path: string; resume: () => void } {
  const path = join(dir, 'lp0');
  execFileSync('mkfifo', [path]);
  // the printer's side: open, never read (until resume)
  const reader = openSync(path, constants.O_RDONLY | constants.O_NONBLOCK);
  const filler = openSync(path, constants.O_WRONLY | constants.O_NONBLOCK);
  const chunk = Buffer.alloc(4096, 0x20);
  for (;;) {
    try {
      writeSync(filler, chunk);
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code === 'EAGAIN') break;
      throw err;
    }
  }
  closeSync(filler);
  let reading: NodeJS.Timeout | undefined;
  const drain = () => {
    const buf = Buffer.alloc(65536);
    try {
      while (readSync(reader, buf) > 0) {
        /* the printer prints */
      }
    } catch {
      /* EAGAIN: empty for now */
    }
  };
  cleanups.push(() => {
    clearInterval(reading);
    closeSync(reader);
  });
  return { path, resume: () => (reading = setInterval(drain, 5)) };
}

const RECEIPT: Receipt = { orderId: 'ord_STALLSTALL000000', product: 'Cola', amount: 150000, currency: 'ARS', paymentId: 'pay_1', time: '2026-12-01 10:00', kioskId: 'k1' };
const LAYOUT: ReceiptLayout = { width: 32, charset: 'cp858', codeTable: 19, header: [], qrText: '{orderId}', qrModuleSize: 6, cut: 'partial', locale: 'es-AR' };

describe('a printer that never accepts data', () => {
  it('print_failed within the timeout, a fault for the technician; the next receipt goes out once the printer takes data again', async () => {
    const { dir, cleanup } = tempDir('qrk-lpstall-');
    cleanups.push(cleanup);
    const lp = stalledPrinter(dir);
    const faults = new FaultLog();
    const printer = new ReceiptPrinter(new DeviceFileTransport(lp.path, 20), LAYOUT, undefined, faults, 1000);
    const started = Date.now();
    const r = await printer.print(RECEIPT);
    const took = Date.now() - started;
    expect(r).toMatchObject({ ok: false, error: `printer ${lp.path} did not accept data for 1000 ms (paper out, cover open, jammed or offline?)` });
    expect(took).toBeGreaterThanOrEqual(1000);
    expect(faults.active()).toEqual([expect.objectContaining({ device: `printer device file ${lp.path}`, kind: 'print_failed' })]);
    // paper loaded: the next receipt prints and the fault clears
    lp.resume();
    expect(await printer.print({ ...RECEIPT, orderId: 'ord_NEXTNEXTNEXT00000' })).toMatchObject({ ok: true });
    expect(faults.active()).toEqual([]);
    expect(printer.health()).toMatchObject({ printed: 1, failed: 1 });
  });

  it('the agent sells on: the receipt of the first sale fails within the timeout, the second sale is dispensed', async () => {
    const relay = await FakeRelay.start();
    cleanups.push(() => relay.close());
    const { dir, cleanup } = tempDir('qrk-lpstall-');
    cleanups.push(cleanup);
    const lp = stalledPrinter(dir);
    const cap = captureLogger();
    const config = agentConfig(dir, relay.url);
    (config.hardware as Record<string, unknown>).printer = { path: lp.path, transport: 'file', timeoutMs: 1000 };
    const agent: Agent = await startAgent(config, { logger: cap.logger, control: false, timings: { resultScreenMs: 60, offlineGraceMs: 60, tickMs: 1000 } });
    cleanups.push(() => agent.close());
    if (!agent.status().relay.online) await nextEvent<string>(agent as never, 'link', (s) => s === 'online');
    const sell = async () => {
      // after a sale the thank-you screen shows for resultScreenMs: the next press is taken after it
      const r = await waitFor('the kiosk to take an order', () => {
        const s = agent.select(1);
        if (!s.ok && s.reason !== 'busy') throw new Error(`select refused: ${s.reason} ${s.message}`);
        return s.ok ? s : undefined;
      });
      await relay.waitType('order.ready', (m) => m.orderId === r.orderId);
      relay.send({ type: 'order.paid', orderId: r.orderId, paymentId: `pay_${r.orderId}`, amount: 150000, currency: 'ARS' });
      const result = await relay.waitType('vend.result', (m) => m.orderId === r.orderId);
      return { orderId: r.orderId, result: result.msg.result };
    };
    const first = await sell();
    expect(first.result).toBe('dispensed');
    const failed = await cap.waitFor((l) => String(l.msg).startsWith('receipt not printed') && l.orderId === first.orderId, 20_000);
    expect(String(failed.err)).toMatch(/did not accept data for 1000 ms/);
    expect((agent as unknown as { hardwareReport(): HardwareReport }).hardwareReport().faults.active).toEqual([expect.objectContaining({ kind: 'print_failed' })]);
    // the next customer is served
    const second = await sell();
    expect(second.result).toBe('dispensed');
  });
});

describe('QR size limit follows the error-correction level used', () => {
  it('receipts print at level M: 2331 bytes fit, 2332 do not; level L allows 2953', () => {
    expect(QR_MAX_BYTES).toEqual({ L: 2953, M: 2331, Q: 1663, H: 1273 });
    expect(() => new EscPos().qr('x'.repeat(2331), { level: 'M' })).not.toThrow();
    expect(() => new EscPos().qr('x'.repeat(2332), { level: 'M' })).toThrow(/2332 bytes; at most 2331 fit one symbol at error correction M/);
    expect(() => new EscPos().qr('x'.repeat(2332))).toThrow(/at error correction M/);
    expect(() => new EscPos().qr('x'.repeat(2953), { level: 'L' })).not.toThrow();
    expect(() => new EscPos().qr('é'.repeat(700), { level: 'H' })).toThrow(/1400 bytes; at most 1273/);
  });
});
