import type { RelayStore } from './api.js';
import { openSqliteStore } from './sqlite/index.js';
import { StoreError } from './types.js';

// Chooses the relay's store from its configuration: `store.path` is a SQLite file (the default,
// one relay process), `store.url` a PostgreSQL database (several relay instances share it).

export interface StoreConfig {
  /** a SQLite file */
  path?: string;
  /** postgres://user:password@host:5432/database */
  url?: string;
}

export interface OpenStoreOptions {
  /** PostgreSQL: connections this instance may hold (postgres/index.ts) */
  poolSize?: number;
  /** PostgreSQL: shown in pg_stat_activity to tell the instances apart */
  applicationName?: string;
}

const POSTGRES_URL = /^postgres(ql)?:\/\//i;

/**
 * Opens the store `config` names, migrated and ready. A string is either a postgres:// url or a
 * SQLite path (what tests and the CLI pass).
 */
export async function openRelayStore(config: StoreConfig | string, opts: OpenStoreOptions = {}): Promise<RelayStore> {
  const c: StoreConfig = typeof config === 'string' ? (POSTGRES_URL.test(config) ? { url: config } : { path: config }) : config;
  if (c.url !== undefined && c.path !== undefined) {
    throw new StoreError('set either store.path (a SQLite file, one relay) or store.url (postgres://…, several relays), not both');
  }
  if (c.url !== undefined) return openPostgres(c.url, opts);
  if (c.path === undefined || c.path === '') {
    throw new StoreError('set store.path (a SQLite file, e.g. /var/lib/qrkiosk/relay.sqlite) or store.url (postgres://…)');
  }
  return openSqliteStore(c.path);
}

async function openPostgres(url: string, opts: OpenStoreOptions): Promise<RelayStore> {
  // Loaded only when asked for: a SQLite relay never loads the PostgreSQL driver.
  const { openPostgresStore } = await import('./postgres/index.js');
  return openPostgresStore(url, opts);
}
