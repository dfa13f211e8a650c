import { parseArgs } from 'node:util';
import { migrateSqliteToPostgres, MigrateError } from '../relay/store/postgres/copy-from-sqlite.js';
import type { RelayCliIo } from './relay-commands.js';

// `qrkiosk relay migrate --from sqlite:FILE --to postgres://… [--force]`: moves a stopped
// single-instance relay to PostgreSQL (src/relay/store/postgres/copy-from-sqlite.ts says how, and
// docs/postgres.md when). Exit 0: copied and verified; 1: refused or a mismatch (PostgreSQL left
// as it was); 2: a usage mistake.

export const MIGRATE_USAGE = `usage:
  qrkiosk relay migrate --from sqlite:FILE --to postgres://USER[:PASSWORD]@HOST[:PORT]/DATABASE [--force]

Copies every table of a SQLite relay database into PostgreSQL in one transaction, printing row
counts and a sha256 per table before (the file) and after (PostgreSQL); any difference rolls the
copy back. Stop the relay first. A target that already has relay rows is refused; --force
replaces them with the copy. Then set store.url in the relay config (and remove store.path).`;

export async function migrateCommand(argv: string[], io: RelayCliIo): Promise<number> {
  let values: { from?: string; to?: string; force?: boolean; help?: boolean };
  try {
    ({ values } = parseArgs({
      args: argv,
      options: { from: { type: 'string' }, to: { type: 'string' }, force: { type: 'boolean' }, help: { type: 'boolean', short: 'h' } },
      strict: true,
      allowPositionals: false,
    }));
  } catch (err) {
    io.err(`qrkiosk relay migrate: ${(err as Error).message.split('\n')[0]}\n${MIGRATE_USAGE}`);
    return 2;
  }
  if (values.help) {
    io.out(MIGRATE_USAGE);
    return 0;
  }
  const from = values.from ?? '';
  const to = values.to ?? '';
  if (!from.startsWith('sqlite:') || from.length <= 'sqlite:'.length) {
    io.err(`qrkiosk relay migrate: --from must be sqlite:FILE, the relay's store.path (got ${from ? JSON.stringify(from) : 'nothing'})\n${MIGRATE_USAGE}`);
    return 2;
  }
  if (!/^postgres(ql)?:\/\//.test(to)) {
    io.err(`qrkiosk relay migrate: --to must be a postgres:// url (got ${to ? 'something else' : 'nothing'})\n${MIGRATE_USAGE}`);
    return 2;
  }
  try {
    const report = await migrateSqliteToPostgres(from.slice('sqlite:'.length), to, { force: values.force === true, log: (l) => io.out(l) });
    const total = report.after.reduce((n, t) => n + t.rows, 0);
    io.out(`copied ${total} rows in ${report.after.length} tables; every count and checksum matches. Set store.url in the relay config and start the relay.`);
    return 0;
  } catch (err) {
    io.err(`qrkiosk relay migrate: ${err instanceof MigrateError ? '' : 'failed: '}${(err as Error).message}`);
    return 1;
  }
}
