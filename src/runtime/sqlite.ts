import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

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

// WAL lets readers (technician commands, metrics) run beside the writer; synchronous=FULL makes
// each committed transaction durable before the call returns, which the vend steps rely on.
export function openDatabase(path: string, opts: { migrations: readonly (string | Migration)[] }): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  try {
    migrate(db, path, opts.migrations.map((m) => (typeof m === 'string' ? { sql: m, additive: false } : m)));
  } catch (err) {
    db.close();
    throw err;
  }
  return db;
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
