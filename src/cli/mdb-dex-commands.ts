import { controlRequest } from '../agent/control.js';
import type { DexReadSummary } from '../agent/dex-auditor.js';
import type { PriceProbeResult } from '../devices/mdb/cashless.js';
import { controlFailed, controlSocket, parseControlArgs, stdio, type Io } from './control-client.js';

// Technician commands for a retrofitted vending machine, over the running agent's control socket:
//   qrkiosk test mdb-price <slot>   choose the slot's item on the machine: its price against the catalog
//   qrkiosk dex read                read the machine's audit over the DEX port now, send it to the relay
// Exit codes as the other technician commands: 0 ok, 1 refused/failed/mismatch, 2 usage or agent unreachable.

export const MDB_DEX_USAGE = `usage:
  qrkiosk test mdb-price <slot> [--timeout SECONDS] [--socket PATH | --config FILE] [--json]
  qrkiosk dex read              [--socket PATH | --config FILE] [--json]`;

type ProbeAnswer = PriceProbeResult | { ok: false; slot: number; reason: string; message: string };

export function formatProbe(r: ProbeAnswer): string {
  if (!r.ok) return `slot ${r.slot}: ${r.reason}: ${r.message}`;
  const head = `slot ${r.slot}: the machine asks ${r.machinePrice} for item ${r.item}`;
  const main = r.verdict.ok ? `${head}: OK, ${r.verdict.message} (the request was denied: nothing sold)` : `${head}: WRONG (${r.verdict.kind}): ${r.verdict.message}`;
  const s = r.setup;
  const where =
    s.source === 'bus'
      ? `reader scale read on the MDB bus at setup: scale factor ${s.scaleFactor}, ${s.decimalPlaces} decimal places`
      : s.source === 'config'
        ? `reader scale from hardware.mdb.setup (not read on the bus): scale factor ${s.scaleFactor}, ${s.decimalPlaces} decimal places`
        : 'reader scale unknown (not read on the bus, hardware.mdb.setup not set)';
  return [main, where, ...s.problems.map((p) => `also: ${p}`)].join('\n');
}

export async function testMdbPriceMain(argv: string[], io: Io = stdio): Promise<number> {
  const parsed = parseControlArgs('test mdb-price', argv, io, MDB_DEX_USAGE, { timeout: { type: 'string' } });
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const socket = controlSocket(values, io);
  if (typeof socket === 'number') return socket;
  const slot = Number(positionals[0]);
  const timeout = values.timeout === undefined ? 120 : Number(values.timeout);
  if (positionals.length !== 1 || !Number.isInteger(slot) || slot <= 0 || !Number.isFinite(timeout) || timeout <= 0 || timeout > 600) {
    io.err(`qrkiosk test mdb-price: give one slot number (and --timeout 1..600), e.g. qrkiosk test mdb-price 3\n\n${MDB_DEX_USAGE}`);
    return 2;
  }
  if (!values.json) io.out(`choose the item of slot ${slot} on the machine's keypad now (waiting up to ${timeout} s)...`);
  let r: ProbeAnswer;
  try {
    r = (await controlRequest(socket, 'test.mdb-price', { slot, timeoutSeconds: timeout }, { timeoutMs: (timeout + 10) * 1000 })) as ProbeAnswer;
  } catch (err) {
    return controlFailed('test mdb-price', err, io);
  }
  io.out(values.json ? JSON.stringify(r, null, 2) : formatProbe(r));
  return r.ok && r.verdict.ok ? 0 : 1;
}

export async function dexMain(argv: string[], io: Io = stdio): Promise<number> {
  const [sub, ...rest] = argv;
  if (sub !== 'read') {
    io.err(`qrkiosk dex: ${sub ? `unknown "${sub}"` : 'say what to do'}\n\n${MDB_DEX_USAGE}`);
    return 2;
  }
  const parsed = parseControlArgs('dex read', rest, io, MDB_DEX_USAGE, {});
  if (typeof parsed === 'number') return parsed;
  const socket = controlSocket(parsed.values, io);
  if (typeof socket === 'number') return socket;
  let r: DexReadSummary;
  try {
    r = (await controlRequest(socket, 'dex.read', {}, { timeoutMs: 300_000 })) as DexReadSummary;
  } catch (err) {
    return controlFailed('dex read', err, io);
  }
  io.out(
    parsed.values.json
      ? JSON.stringify(r, null, 2)
      : `machine ${r.machine}: audit read over ${r.protocol.toUpperCase()} in ${r.ms} ms (${r.blocks} blocks, ${r.retries} retries): ` +
          `${r.products} selections, ${r.events} events${r.truncated ? ' (more than one frame holds: truncated)' : ''}; queued for the relay as ${r.auditId}`,
  );
  return 0;
}
