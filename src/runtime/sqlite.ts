import Database from 'better-sqlite3';
import { chmodSync, closeSync, openSync, statSync } from 'node:fs';
import { dirname } from 'node:path';
import { ensureDir } from './dirs.js';

export type Db = Database.Database;

/**
 * One schema step. `additive` steps (a new table, a new nullable column) leave the database usable
 * by code that stops before them: after an update is rolled back, the older program must still open
 * the journal the newer one migrated, or the kiosk stays down. A step that is not additive (a
 * renamed column, changed meaning) makes older code refuse the file with a message saying why.
 */
export interface Migration {
  sql: string;
  additive: boolean;
}

/** The file was migrated by newer code in a way this code cannot use. */
export class SchemaTooNew extends Error {
  override name = 'SchemaTooNew';
}

export interface OpenDatabaseOptions {
  /** a plain string is a step that is not additive */
  migrations: readonly (string | Migration)[];
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
  let db: Db | undefined;
  try {
    db = new Database(path);
    db.pragma('journal_mode = WAL');
    db.pragma('synchronous = FULL');
    db.pragma('foreign_keys = ON');
    db.pragma('busy_timeout = 5000');
    migrate(db, path, opts.migrations.map((m) => (typeof m === 'string' ? { sql: m, additive: false } : m)));
    // A write (rolled back) proves the file can be written now, at start-up, rather than at the
    // first sale: SQLite silently opens a file it cannot write read-only.
    probeWrite(db);
  } catch (err) {
    db?.close();
    if (err instanceof SchemaTooNew) throw err;
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

/**
 * Applies the numbered migrations not yet applied, each in its own transaction, and keeps in
 * schema_meta the oldest schema version whose code can still use the file. Code that knows fewer
 * migrations than the file has opens it when that oldest version is within what it knows.
 */
function migrate(db: Db, path: string, migrations: readonly Migration[]): void {
  const current = db.pragma('user_version', { simple: true }) as number;
  const oldestReader = (): number => {
    if (!tableExists(db, 'schema_meta')) return current;
    const r = db.prepare(`SELECT value FROM schema_meta WHERE key = 'oldest_reader'`).get() as { value: number } | undefined;
    return r?.value ?? current;
  };
  if (current > migrations.length) {
    const needs = oldestReader();
    if (needs > migrations.length) {
      throw new SchemaTooNew(
        `${path} has schema ${current}, written by a newer qrkiosk, and needs code that knows schema ${needs} or more; this program knows ${migrations.length}: ` +
          'run the newer release again (qrkiosk update <version>), or restore the file from before that update',
      );
    }
    return; // newer, but only by additive steps: usable as it is
  }
  for (let i = current; i < migrations.length; i++) {
    const m = migrations[i]!;
    db.transaction(() => {
      db.exec(m.sql);
      db.exec(`CREATE TABLE IF NOT EXISTS schema_meta (key TEXT PRIMARY KEY, value INTEGER NOT NULL)`);
      const before = (db.prepare(`SELECT value FROM schema_meta WHERE key = 'oldest_reader'`).get() as { value: number } | undefined)?.value ?? i;
      const oldest = m.additive ? Math.max(1, before) : i + 1;
      db.prepare(`INSERT INTO schema_meta (key, value) VALUES ('oldest_reader', ?) ON CONFLICT(key) DO UPDATE SET value = excluded.value`).run(oldest);
      db.pragma(`user_version = ${i + 1}`);
    })();
  }
}

function tableExists(db: Db, name: string): boolean {
  return db.prepare(`SELECT 1 FROM sqlite_master WHERE type = 'table' AND name = ?`).get(name) !== undefined;
}
