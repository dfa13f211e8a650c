import { createHash } from 'node:crypto';
import Database from 'better-sqlite3';
import pg from 'pg';
import { openPostgresStore, redactUrl } from './index.js';
import { PG_SCHEMA_VERSION } from './migrations.js';

// `qrkiosk relay migrate --from sqlite:FILE --to postgres://…`: moves a single-instance relay to
// PostgreSQL with nothing lost. The relay must be stopped (nothing may write the SQLite file after
// the copy starts). The PostgreSQL schema is created by the PostgreSQL store's own migrations,
// then every table of the file is copied, column for column (the schemas are the same:
// test/store-schema-parity.test.ts), inside ONE PostgreSQL transaction: a failure or a mismatch
// leaves the target as it was.
//
// Proof: per table a row count and a sha256 over every row, in primary-key order, each value
// written as its exact decimal or text form. Computed on the SQLite file ("before") and on the
// PostgreSQL rows read back inside the copy's transaction ("after"); any difference rolls the
// copy back and fails. Integers are read from SQLite as BigInt and written as decimal text, so no
// value ever passes through a float.
//
// A target that already has relay rows is refused (two relays' data must never be merged by
// accident); --force replaces them: the target's relay tables are emptied in the same
// transaction, so it still ends as an exact copy of the file or unchanged.

export class MigrateError extends Error {
  override name = 'MigrateError';
}

export interface TableReport {
  table: string;
  rows: number;
  sha256: string;
}

export interface MigrateReport {
  sourceVersion: number;
  targetVersion: number;
  before: TableReport[];
  after: TableReport[];
}

export interface MigrateOptions {
  /** replace the rows a non-empty target already has */
  force?: boolean;
  /** progress lines (the CLI prints them) */
  log?: (line: string) => void;
}

/** Tables that are bookkeeping of one database, not relay data: each side keeps its own. */
const NOT_COPIED = new Set(['schema_meta', 'sqlite_sequence']);
const PAGE = 2000;

interface TableInfo {
  name: string;
  columns: string[];
  pk: string[];
  /** the INTEGER PRIMARY KEY AUTOINCREMENT column, whose PostgreSQL identity must move past the copied ids */
  identity: string | null;
  /** tables whose rows this table's foreign keys point at */
  refs: string[];
}

const qi = (name: string) => `"${name.replace(/"/g, '""')}"`;

export async function migrateSqliteToPostgres(sqlitePath: string, pgUrl: string, opts: MigrateOptions = {}): Promise<MigrateReport> {
  const log = opts.log ?? (() => undefined);
  let src: Database.Database;
  try {
    src = new Database(sqlitePath, { readonly: true, fileMustExist: true });
    src.pragma('user_version');
  } catch (err) {
    throw new MigrateError(`cannot open the SQLite relay database ${sqlitePath}: ${(err as Error).message}: give the path of store.path (e.g. sqlite:/var/lib/qrkiosk/relay.sqlite)`);
  }
  src.defaultSafeIntegers(true); // integers as BigInt: exact, whatever their size
  try {
    const sourceVersion = Number(src.pragma('user_version', { simple: true }));
    if (sourceVersion === 0) throw new MigrateError(`${sqlitePath} is not a relay database (schema version 0): check --from`);
    if (sourceVersion > PG_SCHEMA_VERSION) {
      throw new MigrateError(`${sqlitePath} has schema ${sourceVersion}, newer than this qrkiosk knows (${PG_SCHEMA_VERSION}): run migrate with the release that wrote it`);
    }
    // One read transaction: the copy and the "before" figures see one snapshot of the file.
    src.exec('BEGIN');
    const tables = orderByReferences(readTables(src));
    const before = tables.map((t) => sqliteReport(src, t));
    log(`source ${sqlitePath} (schema ${sourceVersion}):`);
    for (const r of before) log(`  ${r.table.padEnd(14)} ${String(r.rows).padStart(9)} rows  sha256 ${r.sha256}`);

    // The target's schema comes from the PostgreSQL store's migrations (advisory-locked).
    const store = await openPostgresStore(pgUrl, { poolSize: 1, applicationName: 'qrkiosk-migrate' });
    await store.close();
    const client = new pg.Client({ connectionString: pgUrl, application_name: 'qrkiosk-migrate' });
    await client.connect();
    try {
      await client.query('BEGIN');
      await client.query('SET LOCAL synchronous_commit = on');
      const targetTables = new Set(
        (await client.query<{ table_name: string }>(`SELECT table_name FROM information_schema.tables WHERE table_schema = current_schema()`)).rows.map((r) => r.table_name),
      );
      for (const t of tables) {
        if (!targetTables.has(t.name)) throw new MigrateError(`the PostgreSQL schema has no table ${t.name}: the two schemas differ, this is a qrkiosk bug`);
        const cols = new Set(
          (await client.query<{ column_name: string }>(`SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1`, [t.name])).rows.map(
            (r) => r.column_name,
          ),
        );
        const missing = t.columns.filter((c) => !cols.has(c));
        if (missing.length) throw new MigrateError(`the PostgreSQL table ${t.name} has no column ${missing.join(', ')}: the two schemas differ, this is a qrkiosk bug`);
      }
      const occupied: string[] = [];
      for (const t of tables) {
        const n = Number((await client.query(`SELECT COUNT(*) AS n FROM ${qi(t.name)}`)).rows[0].n);
        if (n > 0) occupied.push(`${t.name} (${n} rows)`);
      }
      if (occupied.length && !opts.force) {
        throw new MigrateError(
          `the PostgreSQL database ${redactUrl(pgUrl)} already has relay rows: ${occupied.join(', ')}: migrate into an empty database, or add --force to replace them with the copy`,
        );
      }
      if (occupied.length) {
        log(`--force: replacing the rows already in ${occupied.join(', ')}`);
        await client.query(`TRUNCATE ${tables.map((t) => qi(t.name)).join(', ')}`);
      }
      for (const t of tables) await copyTable(src, client, t);
      await moveIdentities(src, client, tables);
      const after: TableReport[] = [];
      for (const t of tables) after.push(await pgReport(client, t));
      log(`target ${redactUrl(pgUrl)} (schema ${PG_SCHEMA_VERSION}), before commit:`);
      for (const r of after) log(`  ${r.table.padEnd(14)} ${String(r.rows).padStart(9)} rows  sha256 ${r.sha256}`);
      const bad = before.filter((b, i) => b.rows !== after[i]!.rows || b.sha256 !== after[i]!.sha256);
      if (bad.length) {
        throw new MigrateError(
          `MISMATCH after copying ${bad.map((b) => b.table).join(', ')}: the copy was rolled back and PostgreSQL is unchanged; keep running on SQLite and report this`,
        );
      }
      await client.query('COMMIT');
      return { sourceVersion, targetVersion: PG_SCHEMA_VERSION, before, after };
    } catch (err) {
      await client.query('ROLLBACK').catch(() => undefined);
      throw err;
    } finally {
      await client.end().catch(() => undefined);
    }
  } finally {
    if (src.inTransaction) src.exec('ROLLBACK');
    src.close();
  }
}

function readTables(src: Database.Database): TableInfo[] {
  const names = (src.prepare(`SELECT name FROM sqlite_master WHERE type = 'table' ORDER BY name`).all() as { name: string }[])
    .map((r) => r.name)
    .filter((n) => !NOT_COPIED.has(n) && !n.startsWith('sqlite_'));
  return names.map((name) => {
    const cols = src.prepare(`SELECT name, type, pk FROM pragma_table_info(?) ORDER BY cid`).all(name) as { name: string; type: string; pk: bigint }[];
    const pk = cols.filter((c) => Number(c.pk) > 0).sort((a, b) => Number(a.pk) - Number(b.pk)).map((c) => c.name);
    const sql = (src.prepare(`SELECT sql FROM sqlite_master WHERE name = ?`).get(name) as { sql: string }).sql;
    const identity = pk.length === 1 && /AUTOINCREMENT/i.test(sql) ? pk[0]! : null;
    const refs = (src.prepare(`SELECT DISTINCT "table" AS t FROM pragma_foreign_key_list(?)`).all(name) as { t: string }[]).map((r) => r.t);
    if (!pk.length) throw new MigrateError(`table ${name} has no primary key: cannot checksum it in a stable order`);
    return { name, columns: cols.map((c) => c.name), pk, identity, refs };
  });
}

/** Tables referenced by a foreign key are copied before the tables that reference them. */
function orderByReferences(tables: TableInfo[]): TableInfo[] {
  const out: TableInfo[] = [];
  const done = new Set<string>();
  const visit = (t: TableInfo, path: string[]) => {
    if (done.has(t.name)) return;
    if (path.includes(t.name)) throw new MigrateError(`foreign keys form a cycle: ${[...path, t.name].join(' -> ')}`);
    for (const r of t.refs) {
      const ref = tables.find((x) => x.name === r);
      if (ref && ref !== t) visit(ref, [...path, t.name]);
    }
    done.add(t.name);
    out.push(t);
  };
  for (const t of tables) visit(t, []);
  return out;
}

/** Exact text of a value: integers in decimal (BigInt from SQLite, int8 text from pg), text as is. */
function canonical(v: unknown): string | null {
  if (v === null || v === undefined) return null;
  if (typeof v === 'bigint' || typeof v === 'string') return String(v);
  if (typeof v === 'number') {
    if (!Number.isInteger(v)) throw new MigrateError(`a value ${v} is not a whole number: relay columns hold integers or text`);
    return String(v);
  }
  throw new MigrateError(`a value of type ${typeof v} (a blob?) where relay columns hold integers or text`);
}

function hashRow(hash: ReturnType<typeof createHash>, values: unknown[]): void {
  hash.update(JSON.stringify(values.map(canonical)));
  hash.update('\n');
}

function sqliteReport(src: Database.Database, t: TableInfo): TableReport {
  const hash = createHash('sha256');
  let rows = 0;
  // SQLite's BINARY collation compares bytes, as PostgreSQL's "C" does: the same order on both sides
  const stmt = src.prepare(`SELECT ${t.columns.map(qi).join(', ')} FROM ${qi(t.name)} ORDER BY ${t.pk.map(qi).join(', ')}`).raw(true);
  for (const row of stmt.iterate() as Iterable<unknown[]>) {
    hashRow(hash, row);
    rows++;
  }
  return { table: t.name, rows, sha256: hash.digest('hex') };
}

async function pgReport(client: pg.Client, t: TableInfo): Promise<TableReport> {
  const hash = createHash('sha256');
  let rows = 0;
  const isText = await textColumns(client, t.name);
  const orderBy = t.pk.map((c) => (isText.has(c) ? `${qi(c)} COLLATE "C"` : qi(c))).join(', ');
  for (let offset = 0; ; offset += PAGE) {
    const res = await client.query({
      text: `SELECT ${t.columns.map(qi).join(', ')} FROM ${qi(t.name)} ORDER BY ${orderBy} LIMIT ${PAGE} OFFSET ${offset}`,
      rowMode: 'array',
    });
    for (const row of res.rows as unknown[][]) {
      hashRow(hash, row);
      rows++;
    }
    if (res.rows.length < PAGE) break;
  }
  return { table: t.name, rows, sha256: hash.digest('hex') };
}

async function textColumns(client: pg.Client, table: string): Promise<Set<string>> {
  const r = await client.query<{ column_name: string }>(
    `SELECT column_name FROM information_schema.columns WHERE table_schema = current_schema() AND table_name = $1 AND data_type = 'text'`,
    [table],
  );
  return new Set(r.rows.map((x) => x.column_name));
}

async function copyTable(src: Database.Database, client: pg.Client, t: TableInfo): Promise<void> {
  const cols = t.columns.map(qi).join(', ');
  const perBatch = Math.max(1, Math.floor(30_000 / t.columns.length)); // PostgreSQL takes at most 65 535 parameters
  const stmt = src.prepare(`SELECT ${cols} FROM ${qi(t.name)} ORDER BY ${t.pk.map(qi).join(', ')}`).raw(true);
  // identity columns take the copied ids as they are (they are GENERATED BY DEFAULT)
  let batch: unknown[][] = [];
  const flush = async () => {
    if (!batch.length) return;
    const params: unknown[] = [];
    const tuples = batch.map((row) => `(${row.map((v) => (params.push(canonical(v)), `$${params.length}`)).join(', ')})`);
    await client.query(`INSERT INTO ${qi(t.name)} (${cols}) VALUES ${tuples.join(', ')}`, params);
    batch = [];
  };
  for (const row of stmt.iterate() as Iterable<unknown[]>) {
    batch.push(row);
    if (batch.length >= perBatch) await flush();
  }
  await flush();
}

/**
 * SQLite's AUTOINCREMENT never reuses an id, even of a deleted row (sqlite_sequence keeps the
 * highest ever given): the PostgreSQL identity continues after the higher of that and the
 * copied rows, so an outbox seq or a refund id is never given twice.
 */
async function moveIdentities(src: Database.Database, client: pg.Client, tables: TableInfo[]): Promise<void> {
  const hasSeq = src.prepare(`SELECT 1 FROM sqlite_master WHERE name = 'sqlite_sequence'`).get() !== undefined;
  for (const t of tables) {
    if (!t.identity) continue;
    const fromSeq = hasSeq ? ((src.prepare('SELECT seq FROM sqlite_sequence WHERE name = ?').get(t.name) as { seq: bigint } | undefined)?.seq ?? 0n) : 0n;
    const fromRows = (src.prepare(`SELECT MAX(${qi(t.identity)}) AS m FROM ${qi(t.name)}`).get() as { m: bigint | null }).m ?? 0n;
    const last = fromSeq > fromRows ? fromSeq : fromRows;
    if (last === 0n) continue;
    await client.query(`SELECT setval(pg_get_serial_sequence($1, $2), $3::bigint, true)`, [t.name, t.identity, String(last)]);
  }
}
