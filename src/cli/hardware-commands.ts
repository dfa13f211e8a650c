import { controlRequest, openControlStream } from '../agent/control.js';
import type { HardwareReport } from '../agent/hardware.js';
import type { Fault } from '../devices/faults.js';
import type { DeviceReport, InputEvent } from '../devices/report.js';
import { table } from './agent-commands.js';
import { controlFailed, controlSocket, parseControlArgs, stdio, type Io } from './control-client.js';

// Technician commands for the hardware, over the running agent's control socket:
//   qrkiosk hardware              what was detected: profile, GPIO backend, pins, devices, faults
//   qrkiosk test buttons          live view of presses until Ctrl-C (sales paused meanwhile)
//   qrkiosk test dispense <slot>  pulse a slot's motor for real and watch the drop sensor
// Exit codes as the other technician commands: 0 ok, 1 refused/failed, 2 usage or agent unreachable.

export const HARDWARE_USAGE = `usage:
  qrkiosk hardware              [--socket PATH | --config FILE] [--json]
  qrkiosk test buttons          [--socket PATH | --config FILE] [--json]
  qrkiosk test dispense <slot>  [--socket PATH | --config FILE] [--json]
  qrkiosk test printer          [--socket PATH | --config FILE] [--json]
  qrkiosk test mdb-price <slot> [--socket PATH | --config FILE] [--json]`;

interface Parsed {
  socket: string;
  json: boolean;
  positionals: string[];
}

function parse(cmd: string, argv: string[], io: Io): Parsed | number {
  const parsed = parseControlArgs(cmd, argv, io, HARDWARE_USAGE, { help: { type: 'boolean', short: 'h' } });
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  if (values.help) {
    io.out(HARDWARE_USAGE);
    return 0;
  }
  const socket = controlSocket(values, io);
  if (typeof socket === 'number') return socket;
  return { socket, json: values.json ?? false, positionals };
}

// ---- qrkiosk hardware ---------------------------------------------------------------------------

export async function hardwareMain(argv: string[], io: Io = stdio): Promise<number> {
  const p = parse('hardware', argv, io);
  if (typeof p === 'number') return p;
  if (p.positionals.length > 0) {
    io.err(`qrkiosk hardware: unexpected argument "${p.positionals[0]}"\n\n${HARDWARE_USAGE}`);
    return 2;
  }
  let report: HardwareReport & { kioskId?: string };
  try {
    report = (await controlRequest(p.socket, 'hardware')) as HardwareReport & { kioskId?: string };
  } catch (err) {
    return controlFailed('hardware', err, io);
  }
  io.out(p.json ? JSON.stringify(report, null, 2) : formatHardware(report));
  return 0;
}

function clock(ms: number): string {
  return new Date(ms).toISOString().slice(11, 23);
}

function formatFault(f: Fault): string {
  return `${new Date(f.at).toISOString().replace('T', ' ').slice(0, 19)}  ${f.active ? 'ACTIVE ' : '       '}${f.device}: ${f.message}${f.clearedAt ? ` (cleared ${new Date(f.clearedAt).toISOString().slice(11, 19)})` : ''}`;
}

function formatDevice(d: DeviceReport): string {
  const out = [`${d.role.padEnd(9)} ${d.driver}  ${d.status === 'ok' ? 'ok' : d.status.toUpperCase()}  ${d.detail}`];
  if (d.lines?.length) {
    out.push(
      table(
        ['FUNCTION', 'NAME', 'WHERE', 'STATE'],
        d.lines.map((l) => [l.function, l.name, l.where, l.state ?? '']),
      )
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
  }
  return out.join('\n');
}

export function formatHardware(r: HardwareReport & { kioskId?: string }): string {
  const out: string[] = [];
  if (r.kioskId) out.push(`kiosk     ${r.kioskId}`);
  out.push(`profile   ${r.profile ? `${r.profile.name}  (${r.profile.source})` : 'none (hardware written in the agent config)'}`);
  if (r.profile?.description) out.push(`          ${r.profile.description}`);
  if (r.gpio) {
    out.push(`gpio      ${r.gpio.backend}: ${r.gpio.detail}`);
    if (r.gpio.reason) out.push(`          why: ${r.gpio.reason}`);
    for (const w of r.gpio.warnings) out.push(`          WARNING: ${w}`);
  } else out.push('gpio      not used');
  out.push('');
  for (const d of r.devices) {
    out.push(formatDevice(d));
    out.push('');
  }
  if (r.gpio?.processes?.length) {
    out.push('processes');
    out.push(
      table(
        ['PID', 'TOOL', 'ROLE', 'RESTARTS'],
        r.gpio.processes.map((p) => [p.pid === undefined ? 'DOWN' : String(p.pid), p.command, p.role, String(p.restarts)]),
      )
        .split('\n')
        .map((l) => `  ${l}`)
        .join('\n'),
    );
    out.push('');
  }
  out.push(`faults    ${r.faults.active.length ? `${r.faults.active.length} active` : 'none active'}`);
  for (const f of r.faults.recent) out.push(`  ${formatFault(f)}`);
  return out.join('\n').trimEnd();
}

// ---- qrkiosk test ... ---------------------------------------------------------------------------

export interface TestOptions {
  /** ends `test buttons` (default: Ctrl-C) */
  signal?: AbortSignal;
}

export async function testMain(argv: string[], io: Io = stdio, opts: TestOptions = {}): Promise<number> {
  const [what, ...rest] = argv;
  switch (what) {
    case 'buttons':
      return testButtons(rest, io, opts);
    case 'dispense':
      return testDispense(rest, io);
    case 'printer':
      // a sample receipt on the kiosk's printer (src/cli/printer-commands.ts)
      return (await import('./printer-commands.js')).testPrinterMain(rest, io);
    case 'mdb-price':
      // the machine's price against the catalog (src/cli/mdb-dex-commands.ts)
      return (await import('./mdb-dex-commands.js')).testMdbPriceMain(rest, io);
    default:
      io.err(`qrkiosk test: ${what ? `unknown test "${what}"` : 'say what to test'}\n\n${HARDWARE_USAGE}`);
      return 2;
  }
}

type DispenseAnswer = { ok: true; slot: number; result: string; pulses: number; detail?: string } | { ok: false; reason: string; message: string };

async function testDispense(argv: string[], io: Io): Promise<number> {
  const p = parse('test dispense', argv, io);
  if (typeof p === 'number') return p;
  const slot = Number(p.positionals[0]);
  if (p.positionals.length !== 1 || !Number.isInteger(slot) || slot <= 0) {
    io.err(`qrkiosk test dispense: give one slot number, e.g. qrkiosk test dispense 3\n\n${HARDWARE_USAGE}`);
    return 2;
  }
  let r: DispenseAnswer;
  try {
    // a vend takes up to maxPulses x (pulseMs + dropWindowMs) (at most 5 x (10 s + 30 s)): wait for it
    r = (await controlRequest(p.socket, 'test.dispense', { slot }, { timeoutMs: 240_000 })) as DispenseAnswer;
  } catch (err) {
    return controlFailed('test dispense', err, io);
  }
  if (p.json) io.out(JSON.stringify(r, null, 2));
  else if (!r.ok) io.out(`refused (${r.reason}): ${r.message}`);
  else {
    const pulses = `${r.pulses} pulse${r.pulses === 1 ? '' : 's'}`;
    io.out(
      r.result === 'dispensed'
        ? `slot ${r.slot}: dispensed after ${pulses}${r.detail ? ` (${r.detail})` : ''}. The stock count was not changed.`
        : `slot ${r.slot}: ${r.result.toUpperCase()} after ${pulses}${r.detail ? `: ${r.detail}` : ''}`,
    );
  }
  return r.ok && r.result === 'dispensed' ? 0 : 1;
}

type ButtonEvent =
  | { type: 'press'; at: number; slot: number }
  | { type: 'cancel'; at: number }
  | ({ type: 'input' } & InputEvent)
  | ({ type: 'fault' } & Fault);

export function formatButtonEvent(e: ButtonEvent): string {
  switch (e.type) {
    case 'input':
      return `${clock(e.at)}  ${e.input.padEnd(22)} ${e.state === 'down' ? 'DOWN' : 'up  '}${e.bounces ? `  (${e.bounces} bounce${e.bounces === 1 ? '' : 's'} filtered)` : ''}`;
    case 'press':
      return `${clock(e.at)}  -> selects slot ${e.slot}`;
    case 'cancel':
      return `${clock(e.at)}  -> cancel`;
    case 'fault':
      return `${clock(e.at)}  FAULT ${e.device}: ${e.message}`;
  }
}

async function testButtons(argv: string[], io: Io, opts: TestOptions): Promise<number> {
  const p = parse('test buttons', argv, io);
  if (typeof p === 'number') return p;
  if (p.positionals.length > 0) {
    io.err(`qrkiosk test buttons: unexpected argument "${p.positionals[0]}"\n\n${HARDWARE_USAGE}`);
    return 2;
  }
  let signal = opts.signal;
  let removeSigint: (() => void) | undefined;
  if (!signal) {
    const ac = new AbortController();
    const onSigint = () => ac.abort();
    process.once('SIGINT', onSigint);
    removeSigint = () => process.off('SIGINT', onSigint);
    signal = ac.signal;
  }
  try {
    let stream;
    try {
      stream = await openControlStream(p.socket, 'test.buttons', {}, (event) => {
        const e = event as ButtonEvent;
        io.out(p.json ? JSON.stringify(e) : formatButtonEvent(e));
      });
    } catch (err) {
      return controlFailed('test buttons', err, io);
    }
    const initial = stream.initial as { kioskId?: string; buttons: DeviceReport | null };
    if (p.json) io.out(JSON.stringify({ type: 'start', ...initial }));
    else {
      io.out(`Watching the buttons of ${initial.kioskId ?? 'the kiosk'}. Presses are shown here and sell nothing until you stop (Ctrl-C).`);
      if (initial.buttons) io.out(formatDevice(initial.buttons));
      io.out('');
    }
    const stop = () => stream.close();
    if (signal.aborted) stop();
    else signal.addEventListener('abort', stop, { once: true });
    const end = await stream.done;
    signal.removeEventListener('abort', stop);
    if (end.how === 'closed') return 0;
    io.err(`qrkiosk test buttons: ${end.how === 'ended' ? `the agent ended the test (${end.reason})` : 'the connection to the agent was lost'}`);
    return 1;
  } finally {
    removeSigint?.();
  }
}
