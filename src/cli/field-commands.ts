import { spawn } from 'node:child_process';
import { createReadStream, existsSync, statSync, watch } from 'node:fs';
import { userInfo } from 'node:os';
import { createInterface } from 'node:readline';
import { controlRequest } from '../agent/control.js';
import type { ResolveResult, ServiceMode } from '../agent/session.js';
import type { CommandRow } from '../agent/journal.js';
import { table } from './agent-commands.js';
import { controlFailed, controlSocket, parseControlArgs, stdio, type Io } from './control-client.js';

// The technician commands a visit needs: correct the stock after loading, take the kiosk out of
// sale while working on it, settle by hand a vend the kiosk could not see, and read the log.

const USAGE = `usage:
  qrkiosk stock show                     counts per slot
  qrkiosk stock set <slot> <count>       after counting a slot by hand
  qrkiosk stock refill [slot]            a slot (or all) back to the full count of agent.yaml
  qrkiosk service on|off                 out of service for customers (an open vend finishes)
  qrkiosk resolve <order> dispensed|refund   settle a vend you checked by hand; sent to the relay
  qrkiosk commands                       the operator's signed commands received from the relay
  qrkiosk logs [--follow] [--order ID] [--file FILE]   the agent's log, readable
  (all but logs: [--socket PATH | --config FILE] [--json])`;

/** The technician's name as recorded with a change: the sudo caller, else the login. */
export function whoAmI(): string {
  return process.env.SUDO_USER || userInfo().username || 'unknown';
}

export async function fieldMain(cmd: string, argv: string[], io: Io = stdio): Promise<number> {
  if (cmd === 'logs') return logsMain(argv, io);
  const parsed = parseControlArgs(cmd, argv, io, USAGE, {});
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const socket = controlSocket(values, io);
  if (typeof socket === 'number') return socket;
  const usage = (what: string) => {
    io.err(`qrkiosk ${cmd}: ${what}\n\n${USAGE}`);
    return 2;
  };
  let request: { cmd: 'stock' | 'service' | 'resolve' | 'commands'; args: Record<string, unknown> };
  const by = whoAmI();
  switch (cmd) {
    case 'stock': {
      const [action = 'show', slot, count] = positionals;
      if (action === 'show' && positionals.length <= 1) request = { cmd, args: { action } };
      else if (action === 'set' && positionals.length === 3) request = { cmd, args: { action, slot: Number(slot), count: Number(count), by } };
      else if (action === 'refill' && positionals.length <= 2) request = { cmd, args: { action, ...(slot ? { slot: Number(slot) } : {}), by } };
      else return usage('say show, set <slot> <count> or refill [slot]');
      break;
    }
    case 'service': {
      if (positionals.length !== 1 || !['on', 'off'].includes(positionals[0]!)) return usage('say on or off');
      request = { cmd, args: { on: positionals[0] === 'on', by } };
      break;
    }
    case 'resolve': {
      const [orderId, resolution] = positionals;
      if (positionals.length !== 2 || !orderId || (resolution !== 'dispensed' && resolution !== 'refund')) {
        return usage('give the order and what you found, e.g. qrkiosk resolve ord_abc123 refund');
      }
      request = { cmd, args: { orderId, resolution, by } };
      break;
    }
    case 'commands': {
      if (positionals.length) return usage('takes no arguments');
      request = { cmd, args: { limit: 50 } };
      break;
    }
    default:
      return usage(`unknown command ${cmd}`);
  }
  let result: unknown;
  try {
    result = await controlRequest(socket, request.cmd, request.args);
  } catch (err) {
    return controlFailed(cmd, err, io);
  }
  if (values.json) {
    io.out(JSON.stringify(result, null, 2));
  } else if (cmd === 'stock') {
    const r = result as { slots: Array<{ slot: number; sku: string; count: number; full: number }> };
    io.out(table(['SLOT', 'SKU', 'COUNT', 'FULL'], r.slots.map((s) => [String(s.slot), s.sku, String(s.count), String(s.full)])));
  } else if (cmd === 'commands') {
    const rows = result as CommandRow[];
    if (rows.length === 0) io.out('no commands from the relay yet');
    else {
      const when = (t: number | null) => (t ? new Date(t).toISOString().replace('T', ' ').slice(0, 19) : '-');
      io.out(table(['RECEIVED', 'COMMAND', 'KIND', 'BY', 'STATE', 'WHAT'], rows.map((c) => [when(c.receivedAt), c.id, c.kind, c.issuedBy, c.state, c.message ?? ''])));
    }
  } else if (cmd === 'service') {
    const r = result as { service: ServiceMode | null; openOrder: string | null };
    io.out(
      r.service
        ? `service mode on (${r.service.by}): customers see "out of service"${r.openOrder ? `; order ${r.openOrder} still finishes` : ''}. End it with: qrkiosk service off`
        : 'service mode off: selling again',
    );
  } else {
    const r = result as ResolveResult;
    if (!r.ok) {
      io.err(`qrkiosk resolve: ${r.message}`);
      return 1;
    }
    io.out(`order ${r.orderId}: recorded as ${r.resolution} by ${r.by} at ${new Date(r.at).toISOString()}; the relay is told (${r.resolution === 'refund' ? 'it refunds the customer' : 'it keeps the payment'})`);
  }
  return 0;
}

// ---- logs ---------------------------------------------------------------------------------------

const LEVELS: Record<number, string> = { 10: 'TRACE', 20: 'DEBUG', 30: 'INFO', 40: 'WARN', 50: 'ERROR', 60: 'FATAL' };
const SKIP = new Set(['level', 'time', 'msg', 'pid', 'hostname', 'name', 'v']);

/** One pino JSON line as text a person reads on an 80-column SSH session; undefined when filtered out. */
export function prettyLogLine(line: string, orderId?: string): string | undefined {
  let rec: Record<string, unknown>;
  try {
    rec = JSON.parse(line) as Record<string, unknown>;
  } catch {
    // not JSON (a crash trace, a line from node itself): shown as it is
    return orderId && !line.includes(orderId) ? undefined : line;
  }
  if (orderId && rec.orderId !== orderId && !JSON.stringify(rec).includes(orderId)) return undefined;
  const time = typeof rec.time === 'number' ? new Date(rec.time).toISOString().replace('T', ' ').slice(0, 23) : '';
  const level = LEVELS[Number(rec.level)] ?? String(rec.level ?? '');
  const extra = Object.entries(rec)
    .filter(([k]) => !SKIP.has(k))
    .map(([k, v]) => `${k}=${typeof v === 'string' ? v : JSON.stringify(v)}`)
    .join(' ');
  return `${time} ${level.padEnd(5)} ${String(rec.msg ?? '')}${extra ? `  ${extra}` : ''}`;
}

async function logsMain(argv: string[], io: Io): Promise<number> {
  const parsed = parseControlArgs('logs', argv, io, USAGE, {
    follow: { type: 'boolean', short: 'f' },
    order: { type: 'string' },
    file: { type: 'string' },
    lines: { type: 'string', short: 'n' },
  });
  if (typeof parsed === 'number') return parsed;
  const { values } = parsed;
  const emit = (line: string) => {
    const text = prettyLogLine(line, values.order);
    if (text !== undefined) io.out(text);
  };
  if (values.file) {
    if (!existsSync(values.file)) {
      io.err(`qrkiosk logs: no file ${values.file}`);
      return 1;
    }
    return followFile(values.file, values.follow ?? false, emit);
  }
  // under systemd the agent's stderr is in the journal; -o cat gives back the JSON lines as written
  const args = ['-u', 'qrkiosk-agent', '-o', 'cat', '--no-pager', ...(values.follow ? ['-f'] : []), ...(values.lines ? ['-n', values.lines] : [])];
  return new Promise((resolve) => {
    const child = spawn('journalctl', args, { stdio: ['ignore', 'pipe', 'inherit'] });
    child.once('error', (err) => {
      io.err(`qrkiosk logs: cannot run journalctl (${err.message}): give the log file with --file`);
      resolve(1);
    });
    createInterface({ input: child.stdout }).on('line', emit);
    child.once('close', (code) => resolve(code ?? 0));
  });
}

/** Prints the file, and with follow keeps printing what is appended (like tail -f) until Ctrl-C. */
function followFile(path: string, follow: boolean, emit: (line: string) => void): Promise<number> {
  return new Promise((resolve) => {
    let offset = 0;
    let rest = '';
    let reading = false;
    let again = false;
    const readMore = () => {
      if (reading) {
        again = true;
        return;
      }
      reading = true;
      const size = statSync(path).size;
      if (size < offset) offset = 0; // rotated or truncated
      const stream = createReadStream(path, { start: offset, encoding: 'utf8' });
      stream.on('data', (chunk) => {
        offset += Buffer.byteLength(chunk as string);
        const lines = (rest + (chunk as string)).split('\n');
        rest = lines.pop() ?? '';
        for (const l of lines) if (l.trim()) emit(l);
      });
      stream.once('close', () => {
        reading = false;
        if (!follow) {
          if (rest.trim()) emit(rest);
          resolve(0);
        } else if (again) {
          again = false;
          readMore();
        }
      });
    };
    readMore();
    if (follow) {
      const w = watch(path, () => readMore());
      process.once('SIGINT', () => {
        w.close();
        resolve(0);
      });
    }
  });
}
