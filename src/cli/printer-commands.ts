import { parseArgs } from 'node:util';
import { loadAgentConfig } from '../agent/config.js';
import { ControlError, ControlUnavailable, controlRequest } from '../agent/control.js';
import type { PrintResult } from '../devices/printer/printer.js';
import { DEFAULT_SOCKET, type Io } from './agent-commands.js';

// `qrkiosk test printer`: the running agent prints a sample receipt (accents, a QR, the cut) on
// the kiosk's receipt printer, so a technician sees the code page, the width and the cutter
// work. Exit codes as the other technician commands: 0 printed, 1 failed, 2 usage/unreachable.

export const TEST_PRINTER_USAGE = 'qrkiosk test printer [--socket PATH | --config FILE] [--json]';

const stdio: Io = {
  out: (t) => process.stdout.write(t.endsWith('\n') ? t : t + '\n'),
  err: (t) => process.stderr.write(t.endsWith('\n') ? t : t + '\n'),
};

export async function testPrinterMain(argv: string[], io: Io = stdio): Promise<number> {
  let values: { socket?: string | undefined; config?: string | undefined; json?: boolean | undefined };
  let positionals: string[];
  try {
    ({ values, positionals } = parseArgs({
      args: argv,
      options: { socket: { type: 'string', short: 's' }, config: { type: 'string', short: 'c' }, json: { type: 'boolean' } },
      allowPositionals: true,
    }));
  } catch (err) {
    io.err(`qrkiosk test printer: ${(err as Error).message}\n\nusage: ${TEST_PRINTER_USAGE}`);
    return 2;
  }
  if (positionals.length > 0) {
    io.err(`qrkiosk test printer: unexpected argument "${positionals[0]}"\n\nusage: ${TEST_PRINTER_USAGE}`);
    return 2;
  }
  let socket = values.socket;
  if (!socket && values.config) {
    try {
      socket = loadAgentConfig(values.config, { readToken: false }).control.socket;
    } catch (err) {
      io.err((err as Error).message);
      return 2;
    }
  }
  let r: PrintResult;
  try {
    r = (await controlRequest(socket ?? DEFAULT_SOCKET, 'test.printer', {}, { timeoutMs: 30_000 })) as PrintResult;
  } catch (err) {
    if (err instanceof ControlUnavailable) {
      io.err(err.message);
      return 2;
    }
    if (err instanceof ControlError) {
      io.err(`qrkiosk test printer: ${err.message}`);
      return 1;
    }
    throw err;
  }
  if (values.json) io.out(JSON.stringify(r, null, 2));
  else if (r.ok) io.out(`test receipt sent to ${r.printer} (${r.bytes} bytes): check accents, the QR and the cut`);
  else io.out(`test receipt NOT printed on ${r.printer}: ${r.error ?? 'unknown error'}`);
  return r.ok ? 0 : 1;
}
