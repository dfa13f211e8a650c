import type { PoolClient } from 'pg';
import { SchemaTooNew } from '../../../runtime/sqlite.js';
import { PG_MIGRATIONS, type PgMigration } from './migrations.js';

// Applies the missing migrations at start. Everything happens in ONE transaction holding an
// advisory lock (per database and schema), so two relay instances started together do not race:
// the second waits for the first to commit, then finds the schema current and does nothing. A
// failed step rolls every step of this start back (PostgreSQL DDL is transactional), so the
// schema is never left half-way.
//
// Bookkeeping mirrors runtime/sqlite.ts: schema_meta holds `version` (SQLite keeps it in
// user_version) and `oldest_reader`, the oldest schema version whose code can still use the
// database; code that knows fewer steps opens a newer schema only when that is within what it knows.

const LOCK_SQL = `SELECT pg_advisory_xact_lock(hashtext('qrkiosk relay schema ' || current_schema()))`;

export async function applyPgMigrations(
  client: PoolClient,
  where: string,
  migrations: readonly PgMigration[] = PG_MIGRATIONS,
): Promise<{ from: number; to: number }> {
  await client.query('BEGIN');
  try {
    await client.query(LOCK_SQL);
    await client.query(`CREATE TABLE IF NOT EXISTS schema_meta (key TEXT PRIMARY KEY, value BIGINT NOT NULL)`);
    const meta = await readMeta(client);
    const current = meta.get('version') ?? 0;
    if (current > migrations.length) {
      const needs = meta.get('oldest_reader') ?? current;
      if (needs > migrations.length) {
        throw new SchemaTooNew(
          `${where} has schema ${current}, written by a newer qrkiosk, and needs code that knows schema ${needs} or more; this program knows ${migrations.length}: ` +
            'run the newer release on every relay instance, or restore the database from before that update',
        );
      }
      await client.query('COMMIT');
      return { from: current, to: current };
    }
    let oldest = meta.get('oldest_reader') ?? current;
    for (let i = current; i < migrations.length; i++) {
      const m = migrations[i]!;
      if (m.version !== i + 1) throw new Error(`PostgreSQL migration ${i + 1} is numbered ${m.version}: the list must be 1, 2, 3, ...`);
      await client.query(m.sql);
      oldest = m.additive ? Math.max(1, oldest) : i + 1;
    }
    await setMeta(client, 'version', Math.max(current, migrations.length));
    await setMeta(client, 'oldest_reader', oldest);
    await client.query('COMMIT');
    return { from: current, to: migrations.length };
  } catch (err) {
    await client.query('ROLLBACK').catch(() => undefined);
    throw err;
  }
}

async function readMeta(client: PoolClient): Promise<Map<string, number>> {
  const res = await client.query<{ key: string; value: string | number }>('SELECT key, value FROM schema_meta');
  return new Map(res.rows.map((r) => [r.key, Number(r.value)]));
}

async function setMeta(client: PoolClient, key: string, value: number): Promise<void> {
  await client.query('INSERT INTO schema_meta (key, value) VALUES ($1, $2) ON CONFLICT (key) DO UPDATE SET value = excluded.value', [key, value]);
}

/** The schema version a database is at (0 when never migrated). */
export async function pgSchemaVersion(client: PoolClient): Promise<number> {
  const exists = await client.query(`SELECT 1 FROM information_schema.tables WHERE table_schema = current_schema() AND table_name = 'schema_meta'`);
  if (exists.rowCount === 0) return 0;
  const r = await client.query<{ value: string }>(`SELECT value FROM schema_meta WHERE key = 'version'`);
  return r.rows[0] ? Number(r.rows[0].value) : 0;
}
