// One schema version means one schema in both stores (src/relay/store/SCHEMA-CHANGES.md): after
// migrating a SQLite file and a PostgreSQL database to the same version, they have the same
// tables, the same columns with the same nullability and kind of type, and the same indexes.
// `qrkiosk relay migrate` copies column for column on the strength of this.

import { readFileSync } from 'node:fs';
import Database from 'better-sqlite3';
import pg from 'pg';
import { afterAll, beforeAll, describe, expect, it } from 'vitest';
import { PG_MIGRATIONS, PG_SCHEMA_VERSION } from '../src/relay/store/postgres/index.js';
import { applyPgMigrations } from '../src/relay/store/postgres/schema.js';
import { createTestDatabase, skipWithoutPostgres, type TestDatabase } from './helpers/pg.js';
import { openTestStore, type TestStore } from './helpers/relay-stores.js';

const skip = await skipWithoutPostgres();

interface Column {
  type: 'integer' | 'text';
  notNull: boolean;
}
type Schema = Record<string, Record<string, Column>>;

/** SQLite's own tables (sqlite_sequence for AUTOINCREMENT) have no PostgreSQL twin. */
const SQLITE_INTERNAL = /^sqlite_/;

function sqliteType(t: string): Column['type'] {
  if (/INT/i.test(t)) return 'integer';
  if (/TEXT/i.test(t)) return 'text';
  throw new Error(`unexpected SQLite column type ${t}`);
}

function pgType(t: string): Column['type'] {
  if (t === 'bigint' || t === 'integer' || t === 'smallint') return 'integer';
  if (t === 'text') return 'text';
  throw new Error(`unexpected PostgreSQL column type ${t}`);
}

describe.skipIf(skip)('schema parity: SQLite and PostgreSQL', () => {
  let sqlite: TestStore;
  let db: TestDatabase;
  let sqliteVersion = 0;
  const sqliteSchema: Schema = {};
  const sqliteIndexes = new Set<string>();
  const pgSchema: Schema = {};
  const pgIndexes = new Set<string>();

  beforeAll(async () => {
    sqlite = await openTestStore('sqlite'); // migrated by the SQLite store itself
    const file = new Database(sqlite.where, { readonly: true });
    sqliteVersion = file.pragma('user_version', { simple: true }) as number;
    const tables = file.prepare(`SELECT name FROM sqlite_master WHERE type = 'table'`).all() as { name: string }[];
    for (const { name } of tables) {
      if (SQLITE_INTERNAL.test(name)) continue;
      const cols = file.prepare(`SELECT name, type, "notnull", pk FROM pragma_table_info(?)`).all(name) as { name: string; type: string; notnull: number; pk: number }[];
      // a SQLite INTEGER PRIMARY KEY is never null, whatever the declaration says
      sqliteSchema[name] = Object.fromEntries(cols.map((c) => [c.name, { type: sqliteType(c.type), notNull: c.notnull === 1 || c.pk > 0 }]));
    }
    for (const { name } of file.prepare(`SELECT name FROM sqlite_master WHERE type = 'index' AND name NOT LIKE 'sqlite_autoindex%'`).all() as { name: string }[]) {
      sqliteIndexes.add(name);
    }
    file.close();

    // PostgreSQL migrated to the SAME version with the real start-up path
    db = await createTestDatabase();
    const pool = new pg.Pool({ connectionString: db.url, max: 1 });
    const client = await pool.connect();
    try {
      await applyPgMigrations(client, 'parity test', PG_MIGRATIONS.slice(0, sqliteVersion));
      const cols = await client.query<{ table_name: string; column_name: string; data_type: string; is_nullable: string }>(
        `SELECT table_name, column_name, data_type, is_nullable FROM information_schema.columns WHERE table_schema = current_schema()`,
      );
      for (const c of cols.rows) {
        (pgSchema[c.table_name] ??= {})[c.column_name] = { type: pgType(c.data_type), notNull: c.is_nullable === 'NO' };
      }
      const idx = await client.query<{ indexname: string }>(
        `SELECT i.indexname FROM pg_indexes i WHERE i.schemaname = current_schema()
           AND NOT EXISTS (SELECT 1 FROM pg_constraint k WHERE k.conname = i.indexname)`,
      );
      for (const r of idx.rows) pgIndexes.add(r.indexname);
    } finally {
      client.release();
      await pool.end();
    }
  });

  afterAll(async () => {
    await sqlite?.cleanup();
    await db?.drop();
  });

  it('PostgreSQL knows every step SQLite has, and every step listed in SCHEMA-CHANGES.md', () => {
    expect(sqliteVersion).toBeGreaterThanOrEqual(5);
    expect(PG_SCHEMA_VERSION).toBeGreaterThanOrEqual(sqliteVersion);
    const listed = [...readFileSync(new URL('../src/relay/store/SCHEMA-CHANGES.md', import.meta.url), 'utf8').matchAll(/^## (\d+):/gm)].map((m) => Number(m[1]));
    expect(PG_SCHEMA_VERSION).toBe(Math.max(5, ...listed));
    expect(PG_MIGRATIONS.map((m) => m.version)).toEqual(PG_MIGRATIONS.map((_, i) => i + 1));
  });

  it('the same tables', () => {
    expect(Object.keys(pgSchema).sort()).toEqual(Object.keys(sqliteSchema).sort());
  });

  it('the same columns, nullability and kind of type in every table', () => {
    for (const table of Object.keys(sqliteSchema)) {
      expect({ table, columns: pgSchema[table] }).toEqual({ table, columns: sqliteSchema[table] });
    }
  });

  it('the same indexes (by name)', () => {
    expect([...pgIndexes].sort()).toEqual([...sqliteIndexes].sort());
  });
});
