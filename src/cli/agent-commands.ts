import { parseArgs } from 'node:util';
import { ConfigError } from '../runtime/config-file.js';
import { createLogger } from '../runtime/log.js';
import { loadAgentConfig } from '../agent/config.js';
import { startAgent, type AgentStatus } from '../agent/agent.js';
import { controlRequest, type ControlCommand } from '../agent/control.js';
import type { JournalEntry } from '../agent/journal.js';
import { SystemdNotifier } from '../runtime/sd-notify.js';
import { formatMoney, isCurrency } from '../core/money.js';
import type { CancelResult, SelectResult } from '../agent/session.js';
import { controlFailed, controlSocket, parseControlArgs, stdio, type Io } from './control-client.js';

// `qrkiosk agent` (the long-running program systemd starts) and the technician commands that talk
// to it over the control socket. Exit codes: 0 ok, 1 refused/failed, 2 usage or agent unreachable.

export { DEFAULT_SOCKET, type Io } from './control-client.js';

const AGENT_USAGE = `usage: qrkiosk agent --config FILE

Runs the kiosk agent until SIGINT/SIGTERM. Logs are JSON lines on stderr; the customer screen
(display.driver: terminal) is drawn on stdout.`;

export async function agentMain(argv: string[], io: Io = stdio): Promise<number> {
  let values: { config?: string | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: 'string', short: 'c' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false,
    }));
  } catch (err) {
    io.err(`qrkiosk agent: ${(err as Error).message}\n\n${AGENT_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(AGENT_USAGE);
    return 0;
  }
  if (!values.config) {
    io.err(`qrkiosk agent: --config FILE is required\n\n${AGENT_USAGE}`);
    return 2;
  }
  let cfg;
  try {
    cfg = loadAgentConfig(values.config);
  } catch (err) {
    if (err instanceof ConfigError) {
      io.err(err.message);
      return 2;
    }
    throw err;
  }
  const logger = createLogger('agent');
  let agent;
  try {
    agent = await startAgent(cfg, { logger });
  } catch (err) {
    io.err(`qrkiosk agent: cannot start: ${(err as Error).message}`);
    return 1;
  }
  // Under systemd (Type=notify): ready once the journal is recovered and the socket is up; the
  // watchdog is petted only while a status read (which touches the journal) succeeds.
  const systemd = new SystemdNotifier(logger);
  const describe = () => {
    const s = agent.status();
    return `${s.state}; relay ${s.relay.state}; outbox ${s.outboxPending}`;
  };
  systemd.ready(describe());
  systemd.startWatchdog(() => {
    try {
      systemd.status(describe());
      return undefined;
    } catch (err) {
      return (err as Error).message;
    }
  });
  const signal = await new Promise<NodeJS.Signals>((resolve) => {
    process.once('SIGINT', () => resolve('SIGINT'));
    process.once('SIGTERM', () => resolve('SIGTERM'));
  });
  systemd.stopping();
  logger.info({ signal }, 'stopping (a vend in progress finishes first)');
  // A second signal while a vend finishes is answered with a log line, not an abrupt exit:
  // cutting the motor mid-pulse is worse than waiting two seconds.
  const again = () => logger.warn('already stopping; waiting for the vend in progress');
  process.on('SIGINT', again);
  process.on('SIGTERM', again);
  await agent.close();
  systemd.close();
  process.off('SIGINT', again);
  process.off('SIGTERM', again);
  return 0;
}

// ---- technician commands ------------------------------------------------------------------------

const TECH_USAGE = `usage:
  qrkiosk status  [--socket PATH | --config FILE] [--json]
  qrkiosk select <slot> [--socket PATH | --config FILE] [--json]
  qrkiosk cancel  [--socket PATH | --config FILE] [--json]
  qrkiosk journal [--limit N] [--socket PATH | --config FILE] [--json]`;

export async function technicianMain(cmd: string, argv: string[], io: Io = stdio): Promise<number> {
  if (!['status', 'select', 'cancel', 'journal'].includes(cmd)) {
    io.err(`qrkiosk: unknown technician command "${cmd}"\n\n${TECH_USAGE}`);
    return 2;
  }
  const parsed = parseControlArgs(cmd, argv, io, TECH_USAGE, { limit: { type: 'string', short: 'n' } });
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const socket = controlSocket(values, io);
  if (typeof socket === 'number') return socket;

  const args: Record<string, unknown> = {};
  if (cmd === 'select') {
    const slot = Number(positionals[0]);
    if (positionals.length !== 1 || !Number.isInteger(slot) || slot <= 0) {
      io.err(`qrkiosk select: give one slot number, e.g. qrkiosk select 3\n\n${TECH_USAGE}`);
      return 2;
    }
    args.slot = slot;
  } else if (positionals.length > 0) {
    io.err(`qrkiosk ${cmd}: unexpected argument "${positionals[0]}"\n\n${TECH_USAGE}`);
    return 2;
  }
  if (cmd === 'journal' && values.limit !== undefined) {
    const limit = Number(values.limit);
    if (!Number.isInteger(limit) || limit <= 0) {
      io.err('qrkiosk journal: --limit must be a positive whole number, e.g. --limit 20');
      return 2;
    }
    args.limit = limit;
  }

  let result: unknown;
  try {
    result = await controlRequest(socket, cmd as ControlCommand, args);
  } catch (err) {
    return controlFailed(cmd, err, io);
  }

  const refused = (cmd === 'select' || cmd === 'cancel') && !(result as { ok?: boolean }).ok;
  if (values.json) {
    io.out(JSON.stringify(result, null, 2));
  } else {
    switch (cmd) {
      case 'status':
        io.out(formatStatus(result as AgentStatus));
        break;
      case 'select':
        io.out(formatSelect(result as SelectResult));
        break;
      case 'cancel':
        io.out(formatCancel(result as CancelResult));
        break;
      case 'journal':
        io.out(formatJournal(result as JournalEntry[]));
        break;
    }
  }
  return refused ? 1 : 0;
}

// ---- human output -------------------------------------------------------------------------------

/** Left-aligned columns, header underlined: readable over SSH on an 80-column terminal. */
export function table(header: string[], rows: string[][]): string {
  const widths = header.map((h, i) => Math.max(h.length, ...rows.map((r) => (r[i] ?? '').length)));
  const line = (cells: string[]) =>
    cells
      .map((c, i) => (i === cells.length - 1 ? c : c.padEnd(widths[i]!)))
      .join('  ')
      .trimEnd();
  return [line(header), line(widths.map((w) => '-'.repeat(w))), ...rows.map(line)].join('\n');
}

function ago(ms: number | null | undefined, now = Date.now()): string {
  if (!ms) return 'never';
  return `${duration(now - ms)} ago`;
}

function duration(ms: number): string {
  const s = Math.max(0, Math.floor(ms / 1000));
  if (s < 60) return `${s}s`;
  if (s < 3600) return `${Math.floor(s / 60)}m ${s % 60}s`;
  return `${Math.floor(s / 3600)}h ${Math.floor((s % 3600) / 60)}m`;
}

function time(ms: number): string {
  return new Date(ms).toISOString().replace('T', ' ').slice(0, 19);
}

export function formatStatus(s: AgentStatus): string {
  const out: string[] = [];
  out.push(`kiosk    ${s.kioskId} (agent ${s.agentVersion}, up ${duration(s.uptimeSeconds * 1000)})`);
  out.push(`state    ${s.state}${s.screen ? `  (screen: ${s.screen})` : ''}`);
  if (s.service) out.push(`service  on since ${time(s.service.at)} UTC (${s.service.by}): no new sales; qrkiosk service off ends it`);
  if (s.updating) out.push('update   an update holds the vend lock: no new sales until the agent restarts');
  out.push(`relay    ${s.relay.online ? 'online' : s.relay.state}  ${s.relay.url}  (last welcome ${ago(s.relay.lastWelcomeAt)})`);
  if (s.order) {
    const o = s.order;
    out.push(
      `order    ${o.orderId}  slot ${o.slot}  ${o.product}  ${o.amountText}  ${o.state}` +
        (o.state === 'awaiting_payment' ? `  ${o.secondsLeft}s left` : '') +
        (o.paymentId ? `  payment ${o.paymentId}` : ''),
    );
  } else out.push('order    none');
  out.push(`outbox   ${s.outboxPending} frame(s) waiting for the relay's ack`);
  out.push('');
  out.push(
    table(
      ['SLOT', 'SKU', 'PRODUCT', 'PRICE', 'STOCK'],
      s.stock.map((r) => [String(r.slot), r.sku, r.product ?? '?', r.amountText ?? 'unknown', `${r.count}${r.jammed ? ' JAMMED' : ''}`]),
    ),
  );
  return out.join('\n');
}

export function formatSelect(r: SelectResult): string {
  if (!r.ok) return `refused (${r.reason}): ${r.message}`;
  return `order ${r.orderId}: slot ${r.slot} ${r.product} ${r.amountText}, payable until ${time(r.deadline)} UTC`;
}

export function formatCancel(r: CancelResult): string {
  return r.ok ? `order ${r.orderId} cancelled` : `nothing cancelled (${r.reason}): ${r.message}`;
}

export function formatJournal(entries: JournalEntry[]): string {
  if (entries.length === 0) return 'journal is empty';
  const rows = entries.map((e) => [
    time(e.createdAt),
    e.id,
    String(e.slot),
    e.sku,
    isCurrency(e.currency) ? formatMoney(e.amount, e.currency) : `${e.amount} ${e.currency}`,
    e.state,
    e.result ? `${e.result}${e.pulses !== null ? ` (${e.pulses} pulse${e.pulses === 1 ? '' : 's'})` : ''}` : '',
    e.paymentId ?? '',
  ]);
  const out = [table(['CREATED (UTC)', 'ORDER', 'SLOT', 'SKU', 'AMOUNT', 'STATE', 'RESULT', 'PAYMENT'], rows), ''];
  for (const e of entries) {
    out.push(`${e.id}:`);
    for (const st of e.steps) out.push(`  ${time(st.at)}  ${st.state.padEnd(16)}  ${st.detail ?? ''}`.trimEnd());
  }
  return out.join('\n');
}
