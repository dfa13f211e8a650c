// Opens a relay store of either kind for the tests that run the same bodies against both
// (test/store-contract.test.ts): a SQLite file in a temp folder, or a fresh PostgreSQL database
// (test/helpers/pg.ts). Each returns the RelayStore of src/relay/store/api.ts and a cleanup.

import { mkdtempSync, rmSync } from 'node:fs';
import { tmpdir } from 'node:os';
import { join } from 'node:path';
import type { RelayStore } from '../../src/relay/store/api.js';
import { openSqliteStore } from '../../src/relay/store/sqlite/index.js';
import { openPostgresStore, type PostgresStoreOptions } from '../../src/relay/store/postgres/index.js';
import { createTestDatabase, type TestDatabase } from './pg.js';

export type StoreKind = 'sqlite' | 'postgres';
export const STORE_KINDS: readonly StoreKind[] = ['sqlite', 'postgres'];

export interface TestStore {
  store: RelayStore;
  /** the SQLite file or the PostgreSQL url */
  where: string;
  /** opens a second store on the same database (a second relay instance) */
  reopen(opts?: PostgresStoreOptions): Promise<RelayStore>;
  cleanup(): Promise<void>;
}

export async function openTestStore(kind: StoreKind, opts: PostgresStoreOptions = {}): Promise<TestStore> {
  if (kind === 'postgres') {
    const db: TestDatabase = await createTestDatabase();
    const opened: RelayStore[] = [];
    const open = async (o: PostgresStoreOptions = opts) => {
      const s = await openPostgresStore(db.url, { poolSize: 4, ...o });
      opened.push(s);
      return s;
    };
    const store = await open();
    return {
      store,
      where: db.url,
      reopen: open,
      async cleanup() {
        for (const s of opened) await s.close().catch(() => undefined);
        await db.drop();
      },
    };
  }
  const dir = mkdtempSync(join(tmpdir(), 'qk-store-'));
  const path = join(dir, 'relay.sqlite');
  const opened: RelayStore[] = [];
  const open = async () => {
    const s = await openSqliteTestStore(path);
    opened.push(s);
    return s;
  };
  const store = await open();
  return {
    store,
    where: path,
    reopen: () => open(),
    async cleanup() {
      for (const s of opened) await s.close();
      rmSync(dir, { recursive: true, force: true });
    },
  };
}

/** The SQLite relay store on `path` (created and migrated when new). */
export async function openSqliteTestStore(path: string): Promise<RelayStore> {
  return openSqliteStore(path);
}

