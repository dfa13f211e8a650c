import Database from 'better-sqlite3';
import { mkdirSync } from 'node:fs';
import { dirname } from 'node:path';

export type Db = Database.Database;

// WAL lets readers (technician commands, metrics) run beside the writer; synchronous=FULL makes
// each committed transaction durable before the call returns, which the vend steps rely on.
export function openDatabase(path: string, opts: { migrations: readonly string[] }): Db {
  if (path !== ':memory:') mkdirSync(dirname(path), { recursive: true });
  const db = new Database(path);
  db.pragma('journal_mode = WAL');
  db.pragma('synchronous = FULL');
  db.pragma('foreign_keys = ON');
  db.pragma('busy_timeout = 5000');
  migrate(db, opts.migrations);
  cacheStatements(db);
  return db;
}

// better-sqlite3 compiles the SQL again on every db.prepare(); the stores and the journal call
// prepare() per query, and on the hot paths (the POS-url poll, every vend step) compiling cost
// more than running (profiled: bench/README.md). So prepare() returns the statement compiled the
// first time for the same text. Safe because nothing here iterates a statement (a busy statement
// cannot be shared) or switches its mode (pluck/raw/expand would leak to the next caller).
const STATEMENT_CACHE_LIMIT = 500;

function cacheStatements(db: Db): void {
  const compile = db.prepare.bind(db);
  const cache = new Map<string, Database.Statement>();
  db.prepare = ((sql: string) => {
    let st = cache.get(sql);
    if (!st) {
      // SQL built from a variable set of columns (patches) is bounded but not fixed: keep a cap.
      if (cache.size >= STATEMENT_CACHE_LIMIT) cache.clear();
      st = compile(sql);
      cache.set(sql, st);
    }
    return st;
  }) as Db['prepare'];
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
