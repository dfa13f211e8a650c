import type Database from 'better-sqlite3';
import { crashPoint } from '../../../runtime/crash-hook.js';
import type { Db } from '../../../runtime/sqlite.js';
import type { Row } from '../rows.js';

// The one SQLite connection, as the per-table modules of this folder use it: prepared statements
// (runtime/sqlite.ts caches them), rows mapped to records, and a synchronous atomic block. The
// modules are synchronous on purpose: better-sqlite3 is, and ./index.ts decides when they may run
// (the store lock), which is what makes the async interface safe on one connection.

export type { Row };

/** The synchronous form of an async store interface: what a per-table module implements. */
export type Sync<T> = {
  [K in keyof T]: T[K] extends (...args: infer A) => Promise<infer R> ? (...args: A) => R : never;
};

export class SqliteConn {
  constructor(readonly db: Db) {}

  /** The first row `sql` selects, as a record; undefined when there is none. */
  one<T>(fromRow: (r: Row) => T, sql: string, ...params: unknown[]): T | undefined {
    const r = this.db.prepare(sql).get(...params) as Row | undefined;
    return r ? fromRow(r) : undefined;
  }

  /** Every row `sql` selects, as records. */
  many<T>(fromRow: (r: Row) => T, sql: string, ...params: unknown[]): T[] {
    return (this.db.prepare(sql).all(...params) as Row[]).map(fromRow);
  }

  /** `sql` selects COUNT(*) AS n. */
  count(sql: string, ...params: unknown[]): number {
    return (this.db.prepare(sql).get(...params) as { n: number }).n;
  }

  run(sql: string, ...params: unknown[]): Database.RunResult {
    return this.db.prepare(sql).run(...params);
  }

  /**
   * Runs fn atomically: a savepoint inside a transaction already open (the caller's commits it),
   * else its own transaction with the relay's crash-test points around the commit.
   */
  atomically<T>(fn: () => T): T {
    if (this.db.inTransaction) return this.db.transaction(fn)();
    const result = this.db.transaction(() => {
      const r = fn();
      crashPoint('relay.uncommitted'); // crash test hook: written, not committed
      return r;
    })();
    crashPoint('relay.committed'); // crash test hook: on disk
    return result;
  }
}
