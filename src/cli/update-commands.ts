import { resolve } from 'node:path';
import { NotARelease } from '../install/layout.js';
import { UpdateError, runUpdate } from '../install/update.js';
import { commandArgs } from './command-args.js';
import { stdio, type Io } from './control-client.js';

// `qrkiosk update <tarball|version>`: exit 0 updated (or already current), 1 rolled back or failed.

const USAGE = `usage: sudo qrkiosk update <release tarball | version> [--deadline SECONDS] [--root DIR]

Unpacks the release beside the running one, waits for an open vend to finish (no new sales
meanwhile), switches /opt/qrkiosk/current, restarts, and keeps the new release only if it reports
READY and reaches the relay within the deadline (default 90 s). Otherwise it switches back by itself
and says why. A version already under /opt/qrkiosk/releases switches to it (also to go back).`;

export async function updateMain(argv: string[], io: Io = stdio): Promise<number> {
  const parsed = commandArgs('update', argv, { deadline: { type: 'string' }, root: { type: 'string' }, json: { type: 'boolean' } }, USAGE, io);
  if (typeof parsed === 'number') return parsed;
  const { values, positionals } = parsed;
  if (positionals.length !== 1) {
    io.err(`qrkiosk update: give one release tarball or version\n\n${USAGE}`);
    return 2;
  }
  const deadline = values.deadline === undefined ? 90 : Number(values.deadline);
  if (!Number.isFinite(deadline) || deadline <= 0) {
    io.err('qrkiosk update: --deadline is a number of seconds, e.g. --deadline 90');
    return 2;
  }
  const root = values.root ? resolve(values.root) : '/';
  if (root === '/' && typeof process.getuid === 'function' && process.getuid() !== 0) {
    io.err('qrkiosk update: it switches /opt/qrkiosk/current and restarts services: run it with sudo');
    return 2;
  }
  const source = /\.(tar\.gz|tgz)$/.test(positionals[0]!) ? resolve(positionals[0]!) : positionals[0]!;
  try {
    const r = await runUpdate({ source, root, deadlineMs: deadline * 1000, log: (l) => io.out(`update: ${l}`) });
    if (values.json) io.out(JSON.stringify(r));
    if (r.result === 'rolled_back') {
      io.err(`qrkiosk update: ${r.to} was not kept: ${r.reason}${r.rollbackOk ? `; ${r.from} runs again` : `; and ${r.from} did not come back either`}`);
      return 1;
    }
    return 0;
  } catch (err) {
    if (err instanceof UpdateError || err instanceof NotARelease) {
      io.err(`qrkiosk update: ${err.message}`);
      return 1;
    }
    throw err;
  }
}
