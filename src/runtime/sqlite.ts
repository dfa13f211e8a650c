import Database from 'better-sqlite3';
import { chmodSync, closeSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ensureDir } from './dirs.js';

export type Db = Database.Database;

export interface OpenDatabaseOptions {
  migrations: readonly string[];
  /**
   * File permissions of the database (and, because SQLite copies them, of its -wal and -shm
   * files). The file is created with this mode before SQLite opens it, and an existing file is
   * narrowed to it, so there is never a moment where it is readable by others. Default: 0o600.
   */
  mode?: number;
  /** what the file is, for error messages ("relay database", "journal") */
  what?: string;
  /** the configuration key that sets the path, for error messages */
  key?: string;
}

/** The database file cannot be created, opened or written: names the file and what to do. */
export class DatabaseOpenError extends Error {
  override name = 'DatabaseOpenError';
}

// WAL lets readers (technician commands, metrics) run beside the writer; synchronous=FULL makes
// each committed transaction durable before the call returns, which the vend steps rely on.
export function openDatabase(path: string, opts: OpenDatabaseOptions): Db {
  const what = opts.what ?? 'database';
  const fix = opts.key ? ` or set ${opts.key} to a writable place` : '';
  const mode = opts.mode ?? 0o600;
  if (path !== ':memory:') {
    ensureDir(dirname(path), `the folder of the ${what}`, fix);
    createWithMode(path, mode, what, fix);
  }
  let db: Db;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db, opts.migrations);
    // A write (rolled back) proves the file can be written now, at start-up, rather than at the
    // first sale: SQLite silently opens a file it cannot write read-only.
    probeWrite(db);
  } catch (err) {
    throw new DatabaseOpenError(
      `cannot use the ${what} ${path}: ${(err as Error).message}: check that it is a SQLite file the service user can write (owner, permissions, free space)${fix}`,
    );
  }
  return db;
}

function createWithMode(path: string, mode: number, what: string, fix: string): void {
  try {
    // 'wx' creates the file with `mode` (minus the umask, which only removes bits); an existing
    // file is left as it is (a read-only one is reported by SQLite below, with its own words)
    try {
      closeSync(openSync(path, 'wx', mode));
    } catch (err) {
      if ((err as NodeJS.ErrnoException).code !== 'EEXIST') throw err;
    }
    const st = statSync(path);
    if (st.isDirectory()) throw new Error('it is a folder, not a file');
    // an older file (or a permissive umask) may allow more: narrow it, never widen it (only its
    // owner may; another user's file is reported by SQLite if we cannot use it)
    const current = st.mode & 0o777;
    if ((current & ~mode) !== 0 && st.uid === process.getuid?.()) chmodSync(path, current & mode);
  } catch (err) {
    throw new DatabaseOpenError(`cannot use the ${what} ${path}: ${(err as Error).message}${fix}`);
  }
}

function probeWrite(db: Db): void {
  const version = db.pragma('user_version', { simple: true }) as number;
  db.exec('BEGIN IMMEDIATE');
  try {
    db.pragma(`user_version = ${version}`);
  } finally {
    db.exec('ROLLBACK');
  }
}

/** Applies the numbered migrations not yet applied, each in its own transaction. */
function migrate(db: Db, migrations: readonly string[]): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  for (let i = current; i < migrations.length; i++) {
    db.transaction(() => {
      db.exec(migrations[i]!);
      db.pragma(`user_version = ${i + 1}`);
    })();
  }
}
