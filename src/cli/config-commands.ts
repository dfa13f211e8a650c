import { checkConfigFile, type ConfigKind } from '../install/config-check.js';
import { formatProblem } from '../runtime/config-file.js';
import { commandArgs } from './command-args.js';
import { stdio, type Io } from './control-client.js';

// `qrkiosk config check FILE`: exit 0 when the file and the machine are fine, 1 with every problem.

const USAGE = `usage: qrkiosk config check FILE [--kind agent|relay] [--no-machine] [--user NAME] [--json]

Lists every mistake in an agent or relay config at once (line, key, what to write instead), then
checks this machine against it: devices there, the service user (default qrkiosk) allowed to open
them, the relay's host name resolving. --no-machine checks only the file.`;

export async function configMain(argv: string[], io: Io = stdio): Promise<number> {
  const parsed = commandArgs(
    'config',
    argv,
    {
      kind: { type: 'string' },
      'no-machine': { type: 'boolean' },
      user: { type: 'string' },
      json: { type: 'boolean' }
    },
    USAGE,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  if (positionals[0] !== 'check' || positionals.length !== 2) {
    io.err(`qrkiosk config: say which file to check, e.g. qrkiosk config check /etc/qrkiosk/agent.yaml\n\n${USAGE}`);
    return 2;
  }
  if (values.kind !== undefined && values.kind !== 'agent' && values.kind !== 'relay') {
    io.err(`qrkiosk config check: --kind is agent or relay, not "${values.kind}"`);
    return 2;
  }
  const file = positionals[1]!;
  const { THIS_MACHINE } = await import('../install/config-check.js');
  const report = await checkConfigFile(file, {
    ...(values.kind ? { kind: values.kind as ConfigKind } : {}),
    machine: values['no-machine'] ? false : { ...THIS_MACHINE, ...(values.user ? { user: values.user } : {}) },
  });
  if (values.json) {
    io.out(JSON.stringify(report, null, 2));
  } else if (report.problems.length === 0) {
    io.out(`${file}: ${report.kind} config is fine${values['no-machine'] ? '' : ', and this machine matches it'}`);
  } else {
    const lines = report.problems.map((p) => (p.area === 'machine' ? `${file}: machine: key "${p.key}": ${p.message}` : formatProblem(file, p)));
    io.out([...lines, '', `${report.problems.length} problem(s) in ${file} (${report.kind} config)`].join('\n'));
  }
  return report.problems.length === 0 ? 0 : 1;
}
