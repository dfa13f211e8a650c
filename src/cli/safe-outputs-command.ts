import { dirname, resolve } from 'node:path';
import { parseArgs } from 'node:util';
import * as z from 'zod/mini';
import '../runtime/zod.js';
import { hardwareSchema, loadAgentConfig } from '../agent/config.js';
import { answers } from '../agent/control.js';
import { withProfileBase } from '../agent/hardware-config.js';
import { driveOutputsSafe, type SafeOutputSpec, type SafeOutputsReport } from '../devices/gpio/safe-outputs.js';
import { ConfigError, loadConfigFile } from '../runtime/config-file.js';
import { stdio, type Io } from './control-client.js';

// `qrkiosk safe-outputs --config FILE`: every motor output of the config to its safe (off) level,
// without the agent. systemd runs it after every end of the agent (ExecStopPost= in
// qrkiosk-agent.service) and once at boot before the agent (qrkiosk-safe-outputs.service); a
// technician runs it by hand when a motor keeps turning. Exit codes: 0 every output driven safe,
// 1 some output could not be reached (the message says why), 2 usage or config error.

export const SAFE_OUTPUTS_USAGE = `usage: qrkiosk safe-outputs --config FILE [--json] [--force]

Drives every GPIO motor output of the agent config to its safe (off) level, with whichever GPIO
backend can reach it (sysfs export left by the agent, the libgpiod tools, or a new sysfs export).
Refuses while an agent answers on the config's control socket (it holds the outputs and may be
pulsing a motor for a paying customer) unless --force.`;

interface HardwareView {
  hardware: z.infer<typeof hardwareSchema>;
  control?: { socket?: string };
}

/**
 * The config's hardware: the whole config when it is valid; only its hardware section when
 * something else in it is wrong (a mistyped relay url must not keep the motors from being stopped).
 */
function loadHardware(path: string, io: Io): HardwareView {
  try {
    return loadAgentConfig(path, { readToken: false });
  } catch (err) {
    if (!(err instanceof ConfigError)) throw err;
    const lenient = z.looseObject({ hardware: hardwareSchema, control: z.optional(z.looseObject({ socket: z.optional(z.string()) })) });
    const base = dirname(resolve(path));
    const view = withProfileBase(base, () => loadConfigFile(path, lenient));
    io.err(`qrkiosk safe-outputs: the config has other problems (the agent will not start):\n${err.message}\nUsing its hardware section.`);
    return view;
  }
}

export function safeOutputSpecs(hw: HardwareView['hardware']): SafeOutputSpec[] {
  const d = hw.dispenser;
  if (d.driver !== 'gpio') return [];
  const safeLevel = d.motors.activeLow ? 1 : 0;
  return Object.entries(d.motors.pins).map(([slot, bcm]) => ({ bcm, safeLevel, role: `slot ${slot} motor` }));
}

export async function safeOutputsMain(argv: string[], io: Io = stdio, env?: NodeJS.ProcessEnv): Promise<number> {
  let values: { config?: string | undefined; json?: boolean | undefined; force?: boolean | undefined; help?: boolean | undefined };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { config: { type: 'string', short: 'c' }, json: { type: 'boolean' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      allowPositionals: false,
    }));
  } catch (err) {
    io.err(`qrkiosk safe-outputs: ${(err as Error).message}\n\n${SAFE_OUTPUTS_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(SAFE_OUTPUTS_USAGE);
    return 0;
  }
  if (!values.config) {
    io.err(`qrkiosk safe-outputs: --config FILE is required (the agent's config, e.g. /etc/qrkiosk/agent.yaml)\n\n${SAFE_OUTPUTS_USAGE}`);
    return 2;
  }
  let view: HardwareView;
  try {
    view = loadHardware(values.config, io);
  } catch (err) {
    io.err((err as Error).message);
    return 2;
  }
  const outputs = safeOutputSpecs(view.hardware);
  if (outputs.length === 0) {
    io.out(values.json ? JSON.stringify({ results: [], notes: ['no GPIO outputs in this config'] }) : 'no GPIO motor outputs in this config: nothing to do');
    return 0;
  }
  const socket = view.control?.socket ?? '/run/qrkiosk/agent.sock';
  if (!values.force && (await answers(socket))) {
    io.err(
      `qrkiosk safe-outputs: an agent is running (it answers on ${socket}) and holds the outputs at their safe level between pulses. ` +
        'Stop it first (sudo systemctl stop qrkiosk-agent: this command then runs by itself), or use --force to cut a pulse in progress.',
    );
    return 1;
  }
  const g = view.hardware.gpio;
  const report: SafeOutputsReport = await driveOutputsSafe({
    backend: g?.backend ?? 'auto',
    outputs,
    ...(g?.sysfsRoot ? { sysfsRoot: g.sysfsRoot } : {}),
    ...(g?.chipLabel ? { chipLabel: g.chipLabel } : {}),
    ...(g?.lineNames ? { lineNames: Object.fromEntries(Object.entries(g.lineNames).map(([k, v]) => [Number(k), v])) } : {}),
    ...(env ? { env } : {}),
  });
  if (values.json) io.out(JSON.stringify(report, null, 2));
  else {
    for (const r of report.results) {
      io.out(
        r.ok ? `GPIO${r.bcm} (${r.role}): safe, level ${r.safeLevel} (${r.how})` : `GPIO${r.bcm} (${r.role}): FAILED to drive level ${r.safeLevel}: ${r.error}`,
      );
    }
    if (report.results.some((r) => !r.ok)) for (const n of report.notes) io.err(`  ${n}`);
  }
  return report.results.every((r) => r.ok) ? 0 : 1;
}
