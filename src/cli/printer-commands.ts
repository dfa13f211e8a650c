import { controlRequest } from '../agent/control.js';
import type { PrintResult } from '../devices/printer/printer.js';
import { controlFailed, controlSocket, parseControlArgs, stdio, type Io } from './control-client.js';

// `qrkiosk test printer`: the running agent prints a sample receipt (accents, a QR, the cut) on
// the kiosk's receipt printer, so a technician sees the code page, the width and the cutter
// work. Exit codes as the other technician commands: 0 printed, 1 failed, 2 usage/unreachable.

export const TEST_PRINTER_USAGE = 'qrkiosk test printer [--socket PATH | --config FILE] [--json]';

export async function testPrinterMain(argv: string[], io: Io = stdio): Promise<number> {
  const parsed = parseControlArgs('test printer', argv, io, `usage: ${TEST_PRINTER_USAGE}`, {});
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  if (positionals.length > 0) {
    io.err(`qrkiosk test printer: unexpected argument "${positionals[0]}"\n\nusage: ${TEST_PRINTER_USAGE}`);
    return 2;
  }
  const socket = controlSocket(values, io);
  if (typeof socket === 'number') return socket;
  let r: PrintResult;
  try {
    r = (await controlRequest(socket, 'test.printer', {}, { timeoutMs: 30_000 })) as PrintResult;
  } catch (err) {
    return controlFailed('test printer', err, io);
  }
  if (values.json) io.out(JSON.stringify(r, null, 2));
  else if (r.ok) io.out(`test receipt sent to ${r.printer} (${r.bytes} bytes): check accents, the QR and the cut`);
  else io.out(`test receipt NOT printed on ${r.printer}: ${r.error ?? 'unknown error'}`);
  return r.ok ? 0 : 1;
}
