import { resolve } from 'node:path';
import { InstallError, runInstall, type InstallReport } from '../install/install.js';
import { NotARelease, runningReleaseDir, type Role } from '../install/layout.js';
import { commandArgs } from './command-args.js';
import { stdio, type Io } from './control-client.js';

// `qrkiosk install agent|relay`: the one command between an unpacked release and a running service.

const USAGE = `usage: sudo qrkiosk install agent|relay [--profile NAME] [--token-file FILE] [--from DIR] [--dry-run] [--root DIR] [--json]

Installs the release this command runs from: the ${'`'}qrkiosk${'`'} user and the device groups that exist,
/opt/qrkiosk/releases/<version> and the current link, /etc/qrkiosk/*.yaml from a profile (only when
absent, never overwritten), the token file (0400), the systemd units and udev rules, then enables
and starts the service. Running it again changes nothing.
  --profile NAME     hardware profile for a new agent.yaml (hardware/profiles/NAME.yaml)
  --token-file FILE  copy the kiosk token from FILE into /etc/qrkiosk/token
  --from DIR         install the unpacked release in DIR instead of the one this command runs from
  --dry-run          print every step, touch nothing
  --root DIR         install into the directory tree DIR (useradd and systemctl are printed, not run)`;

export async function installMain(argv: string[], io: Io = stdio): Promise<number> {
  const parsed = commandArgs(
    'install',
    argv,
    {
      'dry-run': { type: 'boolean' },
      root: { type: 'string' },
      profile: { type: 'string' },
      'token-file': { type: 'string' },
      from: { type: 'string' },
      json: { type: 'boolean' }
    },
    USAGE,
    io,
  );
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  const role = positionals[0];
  if (positionals.length !== 1 || (role !== 'agent' && role !== 'relay')) {
    io.err(`qrkiosk install: say what to install: agent (the kiosk) or relay (the server)\n\n${USAGE}`);
    return 2;
  }
  let report: InstallReport;
  try {
    report = runInstall({
      role: role as Role,
      root: values.root ? resolve(values.root) : '/',
      dryRun: values['dry-run'] ?? false,
      releaseDir: values.from ? resolve(values.from) : runningReleaseDir(),
      ...(values.profile ? { profile: values.profile } : {}),
      ...(values['token-file'] ? { tokenFile: values['token-file'] } : {}),
    });
  } catch (err) {
    if (err instanceof InstallError || err instanceof NotARelease) {
      io.err(`qrkiosk install: ${err.message}`);
      return 1;
    }
    throw err;
  }
  if (values.json) {
    io.out(JSON.stringify(report, null, 2));
    return 0;
  }
  io.out(formatInstall(report));
  return 0;
}

const MARK: Record<InstallReport['steps'][number]['outcome'], string> = {
  done: 'done   ',
  already: 'already',
  would: 'would  ',
  skipped: 'printed',
};

export function formatInstall(r: InstallReport): string {
  const where = r.root === '/' ? '' : ` into ${r.root}`;
  const out = [`qrkiosk ${r.version}: install ${r.role}${where}${r.dryRun ? ' (dry run: nothing is changed)' : ''}`, ''];
  for (const s of r.steps) out.push(`  ${MARK[s.outcome]}  ${s.what}`);
  out.push('');
  out.push(r.dryRun ? 'Nothing was changed.' : r.changed === 0 ? 'Nothing to change: already installed.' : `${r.changed} change(s) made.`);
  if (r.todo.length > 0) {
    out.push('', 'Left for you:');
    for (const t of r.todo) out.push(`  - ${t}`);
  }
  return out.join('\n');
}
