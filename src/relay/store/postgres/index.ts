import pg from 'pg';
import { SchemaTooNew } from '../../../runtime/sqlite.js';
import { StoreError } from '../types.js';
import { applyPgMigrations } from './schema.js';
import { pgTypes } from './rows.js';
import { PostgresRelayStore } from './store.js';

export { PostgresRelayStore } from './store.js';
export { PG_MIGRATIONS, PG_SCHEMA_VERSION } from './migrations.js';

export interface PostgresStoreOptions {
  /**
   * Connections this instance may hold. Every instance's pool counts against the server's
   * max_connections (docs/postgres.md). Default 10.
   */
  poolSize?: number;
  /** how long to wait for a free connection before a query fails (ms); default 10 000 */
  connectTimeoutMs?: number;
  /** shown in pg_stat_activity, to tell the instances apart; default "qrkiosk-relay" */
  applicationName?: string;
  /** apply the missing migrations at start (default true); false only checks the version */
  migrate?: boolean;
}

/** The database cannot be reached or used: names the address (never the password) and what to do. */
export class PostgresOpenError extends Error {
  override name = 'PostgresOpenError';
}

/** "postgres://user:***@host:port/db": the url as it can be logged. */
export function redactUrl(url: string): string {
  try {
    const u = new URL(url);
    if (u.password) u.password = '***';
    return u.toString();
  } catch {
    return '(not a url)';
  }
}

/**
 * Opens the relay's store on PostgreSQL (`store.url: postgres://…`): a pool, the schema migrated
 * (under an advisory lock, so instances started together do not race), ready to use.
 */
export async function openPostgresStore(url: string, opts: PostgresStoreOptions = {}): Promise<PostgresRelayStore> {
  let parsed: URL;
  try {
    parsed = new URL(url);
  } catch {
    throw new PostgresOpenError(`store.url is not a URL: write it as postgres://user:password@host:5432/database`);
  }
  if (parsed.protocol !== 'postgres:' && parsed.protocol !== 'postgresql:') {
    throw new PostgresOpenError(`store.url ${redactUrl(url)} must start with postgres:// (for a SQLite file set store.path instead)`);
  }
  const poolSize = opts.poolSize ?? 10;
  if (!Number.isInteger(poolSize) || poolSize < 1) throw new PostgresOpenError(`the pool size must be a whole number of connections, 1 or more, not ${poolSize}`);
  const pool = new pg.Pool({
    connectionString: url,
    max: poolSize,
    connectionTimeoutMillis: opts.connectTimeoutMs ?? 10_000,
    application_name: opts.applicationName ?? 'qrkiosk-relay',
    types: pgTypes,
  });
  // An idle pooled connection that the server drops (restart, failover) emits 'error' on the
  // pool; unhandled, that would crash the process. The pool discards it and the next query opens
  // a new one, so there is nothing else to do here.
  pool.on('error', () => undefined);
  const where = `the relay database ${redactUrl(url)}`;
  let client: pg.PoolClient;
  try {
    client = await pool.connect();
  } catch (err) {
    await pool.end().catch(() => undefined);
    throw new PostgresOpenError(
      `cannot connect to ${where}: ${(err as Error).message}: check that PostgreSQL runs there, that the user, password and database in store.url exist, and that pg_hba.conf lets this host in`,
    );
  }
  try {
    if (opts.migrate !== false) await applyPgMigrations(client, where);
    client.release();
  } catch (err) {
    client.release();
    await pool.end().catch(() => undefined);
    if (err instanceof SchemaTooNew || err instanceof StoreError) throw err;
    throw new PostgresOpenError(`cannot migrate ${where}: ${(err as Error).message}: the user in store.url must be able to create tables in its schema`);
  }
  return new PostgresRelayStore(pool);
}
